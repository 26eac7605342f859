//! Image references: `[domain/]path[:tag][@digest]`, parsed and normalised
//! with the grammar of `github.com/distribution/reference`
//! (`ParseNormalizedNamed`, the function Docker uses), including the domain
//! split and Docker Hub's normalisation.

use std::fmt;
use std::str::FromStr;

use crate::path::{MAX_PATH_LENGTH, first_invalid_component};

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// The historical name of Docker Hub, normalised to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";

/// The tag [`Reference::with_default_tag`] adds, as Docker does.
pub const DEFAULT_TAG: &str = "latest";

/// The longest tag Docker accepts.
pub const MAX_TAG_LENGTH: usize = 128;

/// The namespace Docker Hub puts single-component ("official") names in.
pub(crate) const OFFICIAL_REPO_PREFIX: &str = "library/";

/// An example shown in error messages.
pub(crate) const EXAMPLE_REFERENCE: &str = "registry.example.com:5000/team/app:1.0";

/// A parsed, normalised image reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Why an image reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is the empty string.
    #[error(
        "invalid reference format: repository name must have at least one component \
         (the reference is empty; a valid reference looks like `{EXAMPLE_REFERENCE}`)"
    )]
    Empty,
    /// The reference contains whitespace, a control character or non-ASCII text.
    #[error(
        "invalid reference format: character {character:?} is not allowed \
         (a reference is printable ASCII without spaces, like `{EXAMPLE_REFERENCE}`)"
    )]
    InvalidCharacter {
        /// The first offending character.
        character: char,
    },
    /// The reference is a bare 64-character hex string, which Docker reserves for image IDs.
    #[error(
        "invalid repository name ({reference}), cannot specify 64-byte hexadecimal strings \
         (that is an image ID, not a name; a valid reference looks like `{EXAMPLE_REFERENCE}`)"
    )]
    HexIdentifier {
        /// The input.
        reference: String,
    },
    /// The repository path contains capital letters.
    #[error(
        "invalid reference format: repository name ({repository}) must be lowercase \
         (only the registry host may contain capitals, like `{EXAMPLE_REFERENCE}`)"
    )]
    Uppercase {
        /// The repository name as Docker reports it (the path up to the first `:`).
        repository: String,
    },
    /// The registry host is neither a domain name nor a bracketed IPv6 address.
    #[error(
        "invalid reference format: registry host `{domain}` is not a valid domain name \
         or bracketed IPv6 address, optionally with a port \
         (like `registry.example.com:5000` or `[::1]:5000` in `{EXAMPLE_REFERENCE}`)"
    )]
    InvalidDomain {
        /// The domain part, port included.
        domain: String,
    },
    /// The registry port is not a number.
    #[error(
        "invalid reference format: port `{port}` of registry `{domain}` must be digits only \
         (like `:5000` in `{EXAMPLE_REFERENCE}`)"
    )]
    InvalidPort {
        /// The domain part, port included.
        domain: String,
        /// The text after the host's `:`.
        port: String,
    },
    /// A `/`-separated component of the repository path breaks the grammar.
    #[error(
        "invalid reference format: repository path component {} in `{path}` is not valid \
         (components are lowercase letters and digits separated by `.`, `_`, `__` or dashes, \
         joined by single `/`, like `team/app` in `{EXAMPLE_REFERENCE}`)",
        describe_component(.component)
    )]
    InvalidPathComponent {
        /// The offending component (possibly empty).
        component: String,
        /// The whole repository path.
        path: String,
    },
    /// The tag is empty, too long or contains a forbidden character.
    #[error(
        "invalid reference format: tag `{tag}` is not valid (a tag is 1 to {MAX_TAG_LENGTH} \
         letters, digits, `_`, `.` or `-`, not starting with `.` or `-`, like `:1.0` in \
         `{EXAMPLE_REFERENCE}`)"
    )]
    InvalidTag {
        /// The text after the `:`.
        tag: String,
    },
    /// The digest is not `algorithm:hex`, or its hex is not lowercase.
    #[error(
        "invalid reference format: digest `{digest}` is not valid (a digest is \
         `algorithm:hex` with lowercase hex, like \
         `registry.example.com/team/app@sha256:` followed by 64 hex digits)"
    )]
    InvalidDigestFormat {
        /// The text after the `@`.
        digest: String,
    },
    /// The digest names an algorithm other than sha256, sha384 or sha512.
    #[error("unsupported digest algorithm `{algorithm}` (use sha256, sha384 or sha512)")]
    UnsupportedDigest {
        /// The algorithm named.
        algorithm: String,
    },
    /// The digest's hex has the wrong length for its algorithm.
    #[error(
        "invalid checksum digest length: a {algorithm} digest has {expected} hex digits, \
         this one has {actual}"
    )]
    InvalidDigestLength {
        /// The algorithm named.
        algorithm: String,
        /// The number of hex digits the algorithm produces.
        expected: usize,
        /// The number of hex digits given.
        actual: usize,
    },
    /// The repository path is longer than [`MAX_PATH_LENGTH`].
    #[error(
        "repository name must not be more than {MAX_PATH_LENGTH} characters \
         (the path without the registry host is {length})"
    )]
    NameTooLong {
        /// The length of the path.
        length: usize,
    },
}

impl Reference {
    /// Parses `s` with Docker's `ParseNormalizedNamed` semantics.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some(character) = first_forbidden_char(s) {
            return Err(ReferenceError::InvalidCharacter { character });
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexIdentifier {
                reference: s.to_owned(),
            });
        }

        let (domain, remainder) = split_docker_domain(s);

        // Docker checks case on the remainder up to the first ':' before the grammar.
        let remote = remainder
            .split_once(':')
            .map_or(remainder.as_str(), |(r, _)| r);
        if remote.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                repository: remote.to_owned(),
            });
        }

        // The grammar, left to right. Neither path nor tag contains '@', and the
        // path contains no ':', so the first of each splits the remainder.
        check_domain(&domain).map_err(|fault| match fault {
            DomainFault::Host => ReferenceError::InvalidDomain {
                domain: domain.clone(),
            },
            DomainFault::Port(port) => ReferenceError::InvalidPort {
                domain: domain.clone(),
                port: port.to_owned(),
            },
        })?;
        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_and_tag.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (name_and_tag, None),
        };
        if let Some(component) = first_invalid_component(path) {
            return Err(ReferenceError::InvalidPathComponent {
                component: component.to_owned(),
                path: path.to_owned(),
            });
        }
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(ReferenceError::InvalidTag {
                tag: tag.to_owned(),
            });
        }
        let digest_parts = match digest {
            Some(d) => match split_digest(d) {
                Some(parts) => Some(parts),
                None => {
                    return Err(ReferenceError::InvalidDigestFormat {
                        digest: d.to_owned(),
                    });
                }
            },
            None => None,
        };

        // Then, as in distribution/reference, the length and the digest's algorithm.
        if path.len() > MAX_PATH_LENGTH {
            return Err(ReferenceError::NameTooLong { length: path.len() });
        }
        if let Some((algorithm, hex)) = digest_parts {
            validate_digest(algorithm, hex)?;
        }

        Ok(Reference {
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
            domain,
        })
    }

    /// The registry host, with its port if any (e.g. `docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path without the domain, e.g. `library/ubuntu`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`algorithm:hex`), if the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The repository name, `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Adds the tag `latest` when there is neither tag nor digest (Docker's `TagNameOnly`).
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The short form Docker shows users (`FamiliarString`), e.g. `ubuntu:22.04`.
    pub fn familiar(&self) -> String {
        let name = if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        };
        with_suffixes(name, self.tag(), self.digest())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&with_suffixes(self.name(), self.tag(), self.digest()))
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Appends `:tag` and `@digest` when present.
pub(crate) fn with_suffixes(mut name: String, tag: Option<&str>, digest: Option<&str>) -> String {
    if let Some(tag) = tag {
        name.push(':');
        name.push_str(tag);
    }
    if let Some(digest) = digest {
        name.push('@');
        name.push_str(digest);
    }
    name
}

/// Quotes a path component for a message, naming the empty one.
pub(crate) fn describe_component(component: &str) -> String {
    if component.is_empty() {
        "(empty: a leading, trailing or doubled `/`)".to_owned()
    } else {
        format!("`{component}`")
    }
}

/// The first character that can never appear in a reference or uri.
pub(crate) fn first_forbidden_char(s: &str) -> Option<char> {
    s.chars().find(|c| !c.is_ascii_graphic())
}

/// Docker's `splitDockerDomain`: decides whether the first segment is a registry host.
pub(crate) fn split_docker_domain(s: &str) -> (String, String) {
    let (domain, remainder) = match s.split_once('/') {
        Some((first, rest))
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            if first == LEGACY_DEFAULT_DOMAIN {
                (DEFAULT_DOMAIN, rest)
            } else {
                (first, rest)
            }
        }
        _ => (DEFAULT_DOMAIN, s),
    };
    let remainder = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        with_official_prefix(remainder)
    } else {
        remainder.to_owned()
    };
    (domain.to_owned(), remainder)
}

/// Docker Hub's name for a one-component path: `library/<path>`.
pub(crate) fn with_official_prefix(path: &str) -> String {
    format!("{OFFICIAL_REPO_PREFIX}{path}")
}

/// Splits a domain into its host (an IPv6 host keeps its brackets) and what
/// follows it (empty, or `:port` when the domain is well formed).
pub(crate) fn split_host_port(domain: &str) -> (&str, &str) {
    let host_end = if domain.starts_with('[') {
        domain.find(']').map_or(domain.len(), |i| i + 1)
    } else {
        domain.find(':').unwrap_or(domain.len())
    };
    domain.split_at(host_end)
}

/// What is wrong with a domain.
pub(crate) enum DomainFault<'a> {
    /// The host part breaks the grammar.
    Host,
    /// The port is not `[0-9]+`.
    Port(&'a str),
}

/// `host [":" port]`, host being a domain name or a bracketed IPv6 address.
pub(crate) fn check_domain(domain: &str) -> Result<(), DomainFault<'_>> {
    let (host, after) = split_host_port(domain);
    let port = match after {
        "" => None,
        _ => Some(after.strip_prefix(':').ok_or(DomainFault::Host)?),
    };
    if let Some(bracketed) = host.strip_prefix('[') {
        let inner = bracketed.strip_suffix(']').ok_or(DomainFault::Host)?;
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(DomainFault::Host);
        }
    } else if !host.split('.').all(is_domain_component) {
        return Err(DomainFault::Host);
    }
    match port {
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
            Err(DomainFault::Port(p))
        }
        _ => Ok(()),
    }
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
pub(crate) fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        }
        _ => false,
    }
}

/// `[\w][\w.-]{0,127}`.
pub(crate) fn is_tag(t: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let b = t.as_bytes();
    match b.first() {
        Some(first) => {
            b.len() <= MAX_TAG_LENGTH
                && word(first)
                && b.iter().all(|x| word(x) || *x == b'.' || *x == b'-')
        }
        None => false,
    }
}

/// Splits `algorithm:hex` if it matches
/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`.
pub(crate) fn split_digest(d: &str) -> Option<(&str, &str)> {
    let (algorithm, hex) = d.split_once(':')?;
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        b.first().is_some_and(u8::is_ascii_alphabetic) && b.iter().all(u8::is_ascii_alphanumeric)
    });
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (algorithm_ok && hex_ok).then_some((algorithm, hex))
}

/// go-digest's `Digest.Validate` for the algorithms distribution/reference registers.
pub(crate) fn validate_digest(algorithm: &str, hex: &str) -> Result<(), ReferenceError> {
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        // go-digest only calls an algorithm unsupported if it is lowercase;
        // otherwise the digest does not match its own format.
        _ if algorithm.bytes().any(|b| b.is_ascii_uppercase()) => {
            return Err(ReferenceError::InvalidDigestFormat {
                digest: format!("{algorithm}:{hex}"),
            });
        }
        _ => {
            return Err(ReferenceError::UnsupportedDigest {
                algorithm: algorithm.to_owned(),
            });
        }
    };
    if hex.len() != expected {
        return Err(ReferenceError::InvalidDigestLength {
            algorithm: algorithm.to_owned(),
            expected,
            actual: hex.len(),
        });
    }
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::InvalidDigestFormat {
            digest: format!("{algorithm}:{hex}"),
        });
    }
    Ok(())
}
