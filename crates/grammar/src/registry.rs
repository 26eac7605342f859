//! A registry component's `uri`: a registry host and an optional namespace
//! path in it, and containment (segment by segment, never by string prefix).

use std::fmt;
use std::str::FromStr;

use crate::path::{MAX_PATH_LENGTH, RepositoryPath, RepositoryPathError, first_invalid_component};
use crate::reference::*;

/// An example shown in registry uri error messages.
const EXAMPLE_URI: &str = "registry.example.com/team";

/// A registry component's `uri`: a registry host and an optional namespace path in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RegistryUri {
    domain: String,
    path: Option<String>,
}

/// Why a registry uri was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryUriError {
    /// The uri is empty, blank or only slashes.
    #[error("registry uri is required (for example `{EXAMPLE_URI}`)")]
    Required,
    /// The uri contains whitespace, a control character or non-ASCII text.
    #[error(
        "registry uri must not contain {character:?} (a registry uri is printable ASCII \
         without spaces, like `{EXAMPLE_URI}`)"
    )]
    InvalidCharacter {
        /// The first offending character.
        character: char,
    },
    /// The uri starts with a scheme such as `https://`.
    #[error("registry uri must not have a scheme: use `{suggestion}`, not `{uri}`")]
    SchemeNotAllowed {
        /// The input.
        uri: String,
        /// The uri without its scheme.
        suggestion: String,
    },
    /// The first segment is neither a domain name nor a bracketed IPv6 address.
    #[error(
        "registry uri host `{domain}` is not a valid domain name or bracketed IPv6 address, \
         optionally with a port (like `registry.example.com:5000` or `[::1]:5000`)"
    )]
    InvalidDomain {
        /// The first segment.
        domain: String,
    },
    /// The registry port is not a number.
    #[error(
        "registry uri port `{port}` of `{domain}` must be digits only \
         (like `registry.example.com:5000`)"
    )]
    InvalidPort {
        /// The first segment.
        domain: String,
        /// The text after the host's `:`.
        port: String,
    },
    /// The namespace path contains capital letters.
    #[error("registry uri path `{path}` must be lowercase (like `{EXAMPLE_URI}`)")]
    Uppercase {
        /// The path after the host.
        path: String,
    },
    /// A `/`-separated component of the namespace path breaks the grammar.
    #[error(
        "registry uri path component {} in `{path}` is not valid (components are lowercase \
         letters and digits separated by `.`, `_`, `__` or dashes, joined by single `/`, \
         like `{EXAMPLE_URI}`)",
        describe_component(.component)
    )]
    InvalidPathComponent {
        /// The offending component (possibly empty).
        component: String,
        /// The path after the host.
        path: String,
    },
    /// The uri ends in a tag, as an image reference would.
    #[error(
        "registry uri `{uri}` has a tag, but a registry uri has no tag: it names a registry \
         or a namespace in it, like `{EXAMPLE_URI}`"
    )]
    TagNotAllowed {
        /// The input.
        uri: String,
    },
    /// The uri ends in a digest, as an image reference would.
    #[error(
        "registry uri `{uri}` has a digest, but a registry uri has no digest: it names a \
         registry or a namespace in it, like `{EXAMPLE_URI}`"
    )]
    DigestNotAllowed {
        /// The input.
        uri: String,
    },
    /// The namespace path is longer than [`MAX_PATH_LENGTH`], so it could contain nothing.
    #[error(
        "registry uri path must not be more than {MAX_PATH_LENGTH} characters (it is {length})"
    )]
    NameTooLong {
        /// The length of the path.
        length: usize,
    },
}

impl RegistryUri {
    /// Parse a registry component's `uri` the way ZenML's base config does, made strict.
    pub fn parse(s: &str) -> Result<RegistryUri, RegistryUriError> {
        if s.trim().is_empty() {
            return Err(RegistryUriError::Required);
        }
        if let Some(character) = first_forbidden_char(s) {
            return Err(RegistryUriError::InvalidCharacter { character });
        }
        if let Some((_, rest)) = s.split_once("://") {
            let rest = rest.trim_end_matches('/');
            let suggestion = if rest.is_empty() { EXAMPLE_URI } else { rest };
            return Err(RegistryUriError::SchemeNotAllowed {
                uri: s.to_owned(),
                suggestion: suggestion.to_owned(),
            });
        }
        let trimmed = s.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(RegistryUriError::Required);
        }
        let (host, path) = match trimmed.split_once('/') {
            Some((h, p)) => (h, Some(p)),
            None => (trimmed, None),
        };

        check_domain(host).map_err(|fault| match fault {
            DomainFault::Host => RegistryUriError::InvalidDomain {
                domain: host.to_owned(),
            },
            DomainFault::Port(port) => RegistryUriError::InvalidPort {
                domain: host.to_owned(),
                port: port.to_owned(),
            },
        })?;
        let mut domain = host.to_ascii_lowercase();
        if domain == LEGACY_DEFAULT_DOMAIN {
            domain = DEFAULT_DOMAIN.to_owned();
        }

        if let Some(path) = path {
            if path.contains('@') {
                return Err(RegistryUriError::DigestNotAllowed { uri: s.to_owned() });
            }
            if path.contains(':') {
                return Err(RegistryUriError::TagNotAllowed { uri: s.to_owned() });
            }
            if path.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(RegistryUriError::Uppercase {
                    path: path.to_owned(),
                });
            }
            if let Some(component) = first_invalid_component(path) {
                return Err(RegistryUriError::InvalidPathComponent {
                    component: component.to_owned(),
                    path: path.to_owned(),
                });
            }
            if path.len() > MAX_PATH_LENGTH {
                return Err(RegistryUriError::NameTooLong { length: path.len() });
            }
        }

        Ok(RegistryUri {
            domain,
            path: path.map(str::to_owned),
        })
    }

    /// The registry host, lowercased, with its port if any.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The namespace path inside the registry, if the uri has one.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// Segment-aware containment of a parsed reference.
    pub fn contains(&self, r: &Reference) -> bool {
        self.domain.eq_ignore_ascii_case(r.domain()) && self.contains_path(r.path())
    }

    /// Segment-aware containment of a repository path on this uri's registry.
    pub fn contains_repository(&self, repository: &RepositoryPath) -> bool {
        self.contains_path(repository.as_str())
    }

    /// Segment-aware containment of a namespace path (`None`: the whole
    /// registry), for callers that compare registry hosts their own way
    /// (the egress allowlist compares resolved hosts and ports).
    pub fn contains_namespace(&self, path: Option<&str>) -> bool {
        match path {
            Some(path) => self.contains_path(path),
            None => self.path.is_none(),
        }
    }

    /// Whether `path` is this uri's namespace path or below it, segment by segment.
    fn contains_path(&self, path: &str) -> bool {
        match &self.path {
            None => true,
            Some(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
        }
    }

    /// Parses a bare repository path on this registry, normalised as Docker
    /// does (a one-component name on Docker Hub is `library/<name>`).
    pub fn repository(&self, path: &str) -> Result<RepositoryPath, RepositoryPathError> {
        let parsed = RepositoryPath::parse(path)?;
        if self.domain == DEFAULT_DOMAIN && !parsed.as_str().contains('/') {
            return RepositoryPath::parse(&with_official_prefix(parsed.as_str()));
        }
        Ok(parsed)
    }

    /// Whether the registry host names this machine (`localhost`, 127.0.0.0/8 or `[::1]`).
    pub fn is_loopback(&self) -> bool {
        let host = split_host_port(&self.domain).0;
        host == "localhost"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
            || host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
                .is_some_and(|ip| ip.is_loopback())
    }

    /// The registry host without its port (an IPv6 host keeps its brackets).
    pub fn host(&self) -> &str {
        split_host_port(&self.domain).0
    }

    /// The registry port, if the uri names one and it fits in 16 bits.
    pub fn port(&self) -> Option<u16> {
        split_host_port(&self.domain)
            .1
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
    }

    /// ZenML's is_local: the normalised uri is exactly `localhost:PORT` with a 4 or 5 digit port.
    pub fn is_local(&self) -> bool {
        if self.path.is_some() {
            return false;
        }
        match self.domain.strip_prefix("localhost:") {
            Some(port) => (4..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()),
            None => false,
        }
    }
}

impl fmt::Display for RegistryUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}/{}", self.domain, path),
            None => f.write_str(&self.domain),
        }
    }
}

impl FromStr for RegistryUri {
    type Err = RegistryUriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegistryUri::parse(s)
    }
}
