//! Image references and registry URIs, parsed by the trusted host.
//!
//! A flavor runs untrusted, so the host never takes its word on what is being
//! pushed or where: it parses the image reference itself, with the grammar and
//! normalisation of `github.com/distribution/reference` (`ParseNormalizedNamed`,
//! the function Docker uses), and checks that the image lies inside the
//! registry component's `uri` segment by segment, not by string prefix as
//! ZenML's `image_name.startswith(uri)` does. Everything here is a pure
//! function over strings, so it can be table-tested exhaustively.
//!
//! This is the one place each of these rules is written: the repository path
//! grammar ([`RepositoryPath`], also used inside [`Reference`] and
//! [`RegistryUri`]), the domain split and Docker Hub's normalisation, and
//! containment ([`RegistryUri::contains`] for an image,
//! [`RegistryUri::contains_repository`] for a bare path a flavor asks about).
//! The push and the registry API take these parsed values, never strings.

use std::fmt;
use std::str::FromStr;

/// The registry Docker assumes when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// The historical name of Docker Hub, normalised to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";

/// The tag [`Reference::with_default_tag`] adds, as Docker does.
pub const DEFAULT_TAG: &str = "latest";

/// The longest repository path (the name without the domain) Docker accepts.
pub const MAX_PATH_LENGTH: usize = 255;

/// The longest tag Docker accepts.
pub const MAX_TAG_LENGTH: usize = 128;

/// The namespace Docker Hub puts single-component ("official") names in.
const OFFICIAL_REPO_PREFIX: &str = "library/";

/// An example shown in error messages.
const EXAMPLE_REFERENCE: &str = "registry.example.com:5000/team/app:1.0";

/// An example shown in registry uri error messages.
const EXAMPLE_URI: &str = "registry.example.com/team";

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
        if self.domain == DEFAULT_DOMAIN && !parsed.0.contains('/') {
            return RepositoryPath::parse(&with_official_prefix(&parsed.0));
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

/// A repository path (the name without the domain) that passed the grammar, e.g. `team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RepositoryPath(String);

/// The most characters of a refused path an error message repeats.
const MAX_QUOTED: usize = 300;

/// Why a bare repository path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryPathError {
    /// The path is the empty string.
    #[error("repository path is empty (a repository path looks like `team/app`)")]
    Empty,
    /// A `/`-separated component breaks the grammar.
    #[error(
        "repository path {path:?} is not valid: component {component:?} must be lowercase \
         letters and digits separated by `.`, `_`, `__` or dashes, with components joined \
         by single `/` (like `team/app`)"
    )]
    InvalidPathComponent {
        /// The offending component (possibly empty), cut to a few hundred characters.
        component: String,
        /// The whole path, cut to a few hundred characters.
        path: String,
    },
    /// The path is longer than [`MAX_PATH_LENGTH`].
    #[error("repository path must not be more than {MAX_PATH_LENGTH} characters (it is {length})")]
    NameTooLong {
        /// The length of the path.
        length: usize,
    },
}

impl RepositoryPath {
    /// Checks `s` against the reference path grammar:
    /// `component ("/" component)*`, at most [`MAX_PATH_LENGTH`] characters.
    pub fn parse(s: &str) -> Result<RepositoryPath, RepositoryPathError> {
        if s.is_empty() {
            return Err(RepositoryPathError::Empty);
        }
        if let Some(component) = first_invalid_component(s) {
            return Err(RepositoryPathError::InvalidPathComponent {
                component: component.chars().take(MAX_QUOTED).collect(),
                path: s.chars().take(MAX_QUOTED).collect(),
            });
        }
        if s.len() > MAX_PATH_LENGTH {
            return Err(RepositoryPathError::NameTooLong { length: s.len() });
        }
        Ok(RepositoryPath(s.to_owned()))
    }

    /// The path, e.g. `team/app`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepositoryPath {
    type Err = RepositoryPathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RepositoryPath::parse(s)
    }
}

impl AsRef<str> for RepositoryPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Appends `:tag` and `@digest` when present.
fn with_suffixes(mut name: String, tag: Option<&str>, digest: Option<&str>) -> String {
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
fn describe_component(component: &str) -> String {
    if component.is_empty() {
        "(empty: a leading, trailing or doubled `/`)".to_owned()
    } else {
        format!("`{component}`")
    }
}

/// The first character that can never appear in a reference or uri.
fn first_forbidden_char(s: &str) -> Option<char> {
    s.chars().find(|c| !c.is_ascii_graphic())
}

/// Docker's `splitDockerDomain`: decides whether the first segment is a registry host.
fn split_docker_domain(s: &str) -> (String, String) {
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
fn with_official_prefix(path: &str) -> String {
    format!("{OFFICIAL_REPO_PREFIX}{path}")
}

/// Splits a domain into its host (an IPv6 host keeps its brackets) and what
/// follows it (empty, or `:port` when the domain is well formed).
fn split_host_port(domain: &str) -> (&str, &str) {
    let host_end = if domain.starts_with('[') {
        domain.find(']').map_or(domain.len(), |i| i + 1)
    } else {
        domain.find(':').unwrap_or(domain.len())
    };
    domain.split_at(host_end)
}

/// What is wrong with a domain.
enum DomainFault<'a> {
    /// The host part breaks the grammar.
    Host,
    /// The port is not `[0-9]+`.
    Port(&'a str),
}

/// `host [":" port]`, host being a domain name or a bracketed IPv6 address.
fn check_domain(domain: &str) -> Result<(), DomainFault<'_>> {
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
fn is_domain_component(c: &str) -> bool {
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

/// The first `/`-separated component of `path` that breaks the grammar.
fn first_invalid_component(path: &str) -> Option<&str> {
    path.split('/').find(|c| !is_path_component(c))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        // A run of one or more lowercase letters and digits.
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // One separator: '.', '_', "__", or one or more '-'.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(t: &str) -> bool {
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
fn split_digest(d: &str) -> Option<(&str, &str)> {
    let (algorithm, hex) = d.split_once(':')?;
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        b.first().is_some_and(u8::is_ascii_alphabetic) && b.iter().all(u8::is_ascii_alphanumeric)
    });
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (algorithm_ok && hex_ok).then_some((algorithm, hex))
}

/// go-digest's `Digest.Validate` for the algorithms distribution/reference registers.
fn validate_digest(algorithm: &str, hex: &str) -> Result<(), ReferenceError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a table case expects: the four parts, or the error variant's name.
    enum Want<'a> {
        Valid(&'a str, &'a str, Option<&'a str>, Option<&'a str>),
        Invalid(&'a str),
    }
    use Want::{Invalid as E, Valid as V};

    fn kind(e: &ReferenceError) -> &'static str {
        match e {
            ReferenceError::Empty => "Empty",
            ReferenceError::InvalidCharacter { .. } => "InvalidCharacter",
            ReferenceError::HexIdentifier { .. } => "HexIdentifier",
            ReferenceError::Uppercase { .. } => "Uppercase",
            ReferenceError::InvalidDomain { .. } => "InvalidDomain",
            ReferenceError::InvalidPort { .. } => "InvalidPort",
            ReferenceError::InvalidPathComponent { .. } => "InvalidPathComponent",
            ReferenceError::InvalidTag { .. } => "InvalidTag",
            ReferenceError::InvalidDigestFormat { .. } => "InvalidDigestFormat",
            ReferenceError::UnsupportedDigest { .. } => "UnsupportedDigest",
            ReferenceError::InvalidDigestLength { .. } => "InvalidDigestLength",
            ReferenceError::NameTooLong { .. } => "NameTooLong",
        }
    }

    fn uri_kind(e: &RegistryUriError) -> &'static str {
        match e {
            RegistryUriError::Required => "Required",
            RegistryUriError::InvalidCharacter { .. } => "InvalidCharacter",
            RegistryUriError::SchemeNotAllowed { .. } => "SchemeNotAllowed",
            RegistryUriError::InvalidDomain { .. } => "InvalidDomain",
            RegistryUriError::InvalidPort { .. } => "InvalidPort",
            RegistryUriError::Uppercase { .. } => "Uppercase",
            RegistryUriError::InvalidPathComponent { .. } => "InvalidPathComponent",
            RegistryUriError::TagNotAllowed { .. } => "TagNotAllowed",
            RegistryUriError::DigestNotAllowed { .. } => "DigestNotAllowed",
            RegistryUriError::NameTooLong { .. } => "NameTooLong",
        }
    }

    fn hex(n: usize) -> String {
        "0123456789abcdef".chars().cycle().take(n).collect()
    }

    /// Long strings the generated table cases are built from.
    struct Fixtures {
        h64: String,
        sha256: String,
        sha384: String,
        sha512: String,
        library_h64: String,
        path255: String,
        path256: String,
        tag128: String,
        long_domain: String,
        name247: String,
        library_name247: String,
    }

    impl Fixtures {
        fn new() -> Fixtures {
            let h64 = hex(64);
            let name247 = "x".repeat(247);
            Fixtures {
                sha256: format!("sha256:{h64}"),
                sha384: format!("sha384:{}", hex(96)),
                sha512: format!("sha512:{}", hex(128)),
                library_h64: format!("library/{h64}"),
                path255: format!("a/{}", "b".repeat(253)),
                path256: format!("a/{}", "b".repeat(254)),
                tag128: "t".repeat(128),
                long_domain: format!("{}.com:5000", "d".repeat(60)),
                library_name247: format!("library/{name247}"),
                name247,
                h64,
            }
        }
    }

    /// Cases whose input has to be built: (input, expectation).
    fn built_cases(f: &Fixtures) -> Vec<(String, Want<'_>)> {
        let h64 = &f.h64;
        let sha256 = &f.sha256;
        let hash = Some(f.sha256.as_str());
        let app = "library/app";
        vec![
            (h64.clone(), E("HexIdentifier")),
            (
                format!("{h64}:tag"),
                V("docker.io", &f.library_h64, Some("tag"), None),
            ),
            (
                format!("docker.io/{h64}"),
                V("docker.io", &f.library_h64, None, None),
            ),
            (h64.to_uppercase(), E("Uppercase")),
            (format!("app@{sha256}"), V("docker.io", app, None, hash)),
            (
                format!("app:tag@{sha256}"),
                V("docker.io", app, Some("tag"), hash),
            ),
            (
                format!("localhost:5000/a/b@{sha256}"),
                V("localhost:5000", "a/b", None, hash),
            ),
            (
                format!("app@{}", f.sha384),
                V("docker.io", app, None, Some(&f.sha384)),
            ),
            (
                format!("docker.io/library/ubuntu@{}", f.sha512),
                V("docker.io", "library/ubuntu", None, Some(&f.sha512)),
            ),
            (format!("app@sha256:{}", hex(63)), E("InvalidDigestLength")),
            (format!("app@sha256:{}", hex(65)), E("InvalidDigestLength")),
            (format!("app@sha512:{h64}"), E("InvalidDigestLength")),
            (
                format!("app@sha256:{}", h64.to_uppercase()),
                E("InvalidDigestFormat"),
            ),
            (format!("app@md5:{}", hex(32)), E("UnsupportedDigest")),
            (format!("app@sha3-256:{h64}"), E("InvalidDigestFormat")),
            (format!("app@sha3.x:{h64}"), E("UnsupportedDigest")),
            (
                format!("localhost/app:t@SHA256:{h64}"),
                E("InvalidDigestFormat"),
            ),
            (format!("app@SHA256:{h64}"), E("Uppercase")),
            (format!("app@sha256:{}", hex(31)), E("InvalidDigestFormat")),
            (format!("app@sha256:{}g", hex(63)), E("InvalidDigestFormat")),
            (format!("app@{sha256}:tag"), E("InvalidDigestFormat")),
            ("app@".to_owned(), E("InvalidDigestFormat")),
            ("app@sha256:".to_owned(), E("InvalidDigestFormat")),
            (
                format!("app:{}", f.tag128),
                V("docker.io", app, Some(&f.tag128), None),
            ),
            (format!("app:{}t", f.tag128), E("InvalidTag")),
            (f.path255.clone(), V("docker.io", &f.path255, None, None)),
            (f.path256.clone(), E("NameTooLong")),
            (
                format!("{}/{}", f.long_domain, f.path255),
                V(&f.long_domain, &f.path255, None, None),
            ),
            (format!("registry.io/{}", f.path256), E("NameTooLong")),
            (
                f.name247.clone(),
                V("docker.io", &f.library_name247, None, None),
            ),
            (format!("{}x", f.name247), E("NameTooLong")),
            (format!("{}@md5:{}", f.path256, hex(32)), E("NameTooLong")),
        ]
    }

    const CASES: &[(&str, Want)] = &[
        // Normalisation onto Docker Hub.
        ("ubuntu", V("docker.io", "library/ubuntu", None, None)),
        (
            "ubuntu:22.04",
            V("docker.io", "library/ubuntu", Some("22.04"), None),
        ),
        (
            "library/ubuntu",
            V("docker.io", "library/ubuntu", None, None),
        ),
        (
            "docker.io/ubuntu",
            V("docker.io", "library/ubuntu", None, None),
        ),
        (
            "docker.io/library/ubuntu:latest",
            V("docker.io", "library/ubuntu", Some("latest"), None),
        ),
        (
            "index.docker.io/foo",
            V("docker.io", "library/foo", None, None),
        ),
        (
            "index.docker.io/user/foo",
            V("docker.io", "user/foo", None, None),
        ),
        (
            "docker.io/user/app:1",
            V("docker.io", "user/app", Some("1"), None),
        ),
        ("user/app", V("docker.io", "user/app", None, None)),
        (
            "user/team/app:v1",
            V("docker.io", "user/team/app", Some("v1"), None),
        ),
        ("Docker.io/ubuntu", V("Docker.io", "ubuntu", None, None)),
        ("localhost", V("docker.io", "library/localhost", None, None)),
        (
            "index.docker.io",
            V("docker.io", "library/index.docker.io", None, None),
        ),
        ("foo.bar", V("docker.io", "library/foo.bar", None, None)),
        // Other registries.
        ("localhost/app", V("localhost", "app", None, None)),
        (
            "localhost:5000/a/b:t",
            V("localhost:5000", "a/b", Some("t"), None),
        ),
        ("Foo/bar", V("Foo", "bar", None, None)),
        (
            "REGISTRY.Example.COM/team/app",
            V("REGISTRY.Example.COM", "team/app", None, None),
        ),
        (
            "registry.example.com:5000/team/app:1.0",
            V("registry.example.com:5000", "team/app", Some("1.0"), None),
        ),
        ("[::1]:5000/app", V("[::1]:5000", "app", None, None)),
        ("[2001:db8::1]/app", V("[2001:db8::1]", "app", None, None)),
        (
            "[2001:DB8::1]:443/app:x",
            V("[2001:DB8::1]:443", "app", Some("x"), None),
        ),
        ("192.168.1.1:5000/x", V("192.168.1.1:5000", "x", None, None)),
        ("my-registry.io/x", V("my-registry.io", "x", None, None)),
        ("a.b.c.d:1/x/y/z", V("a.b.c.d:1", "x/y/z", None, None)),
        ("reg:5000/app", V("reg:5000", "app", None, None)),
        // Path components.
        ("a__b", V("docker.io", "library/a__b", None, None)),
        ("a_b.c-d", V("docker.io", "library/a_b.c-d", None, None)),
        ("a--b", V("docker.io", "library/a--b", None, None)),
        ("a---b/c.d", V("docker.io", "a---b/c.d", None, None)),
        ("0/1/2", V("docker.io", "0/1/2", None, None)),
        ("a___b", E("InvalidPathComponent")),
        ("a-", E("InvalidPathComponent")),
        ("-a", E("InvalidPathComponent")),
        ("a.-b", E("InvalidPathComponent")),
        ("a._b", E("InvalidPathComponent")),
        ("a..b", E("InvalidPathComponent")),
        ("a_-b", E("InvalidPathComponent")),
        ("a.", E("InvalidPathComponent")),
        ("_a", E("InvalidPathComponent")),
        ("a//b", E("InvalidPathComponent")),
        ("/a", E("InvalidPathComponent")),
        ("a/", E("InvalidPathComponent")),
        ("localhost/", E("InvalidPathComponent")),
        ("docker.io/", E("InvalidPathComponent")),
        ("registry.io/a+b", E("InvalidPathComponent")),
        // Case.
        ("foo/Bar", E("Uppercase")),
        ("Ubuntu", E("Uppercase")),
        ("localhost:5000/App:tag", E("Uppercase")),
        (
            "app:TAG_1",
            V("docker.io", "library/app", Some("TAG_1"), None),
        ),
        // Domains and ports.
        ("example.com:port/x", E("InvalidPort")),
        ("example.com:/x", E("InvalidPort")),
        ("example.com:50:00/x", E("InvalidPort")),
        ("[::1]:abc/x", E("InvalidPort")),
        ("a..b/x", E("InvalidDomain")),
        ("-a.com/x", E("InvalidDomain")),
        ("a-.com/x", E("InvalidDomain")),
        (".a.com/x", E("InvalidDomain")),
        ("a.com./x", E("InvalidDomain")),
        ("a_b.com/x", E("InvalidDomain")),
        ("::1/app", E("InvalidDomain")),
        ("[]/app", E("InvalidPathComponent")),
        ("[]:5000/app", E("InvalidDomain")),
        ("[::g]/app", E("InvalidDomain")),
        ("[::1/app", E("InvalidDomain")),
        ("[::1]x/app", E("InvalidDomain")),
        ("Foo_Bar/app", E("InvalidDomain")),
        // Tags.
        ("app:", E("InvalidTag")),
        ("app:-tag", E("InvalidTag")),
        ("app:.tag", E("InvalidTag")),
        (
            "app:_tag",
            V("docker.io", "library/app", Some("_tag"), None),
        ),
        ("app:a:b", E("InvalidTag")),
        ("app:t/x", E("InvalidPort")),
        ("app:t+x", E("InvalidTag")),
        // Empty, whitespace, non-ASCII.
        ("", E("Empty")),
        (" ", E("InvalidCharacter")),
        (" ubuntu", E("InvalidCharacter")),
        ("ubuntu ", E("InvalidCharacter")),
        ("ubu ntu", E("InvalidCharacter")),
        ("ubuntu:22.04\n", E("InvalidCharacter")),
        ("ubuntu\t", E("InvalidCharacter")),
        ("registry.io/\u{0}app", E("InvalidCharacter")),
        ("ubüntu", E("InvalidCharacter")),
        ("ｕbuntu", E("InvalidCharacter")),
        ("registry.io/app:tägs", E("InvalidCharacter")),
        // Schemes and other junk.
        ("https://registry.io/app", E("InvalidPort")),
        ("registry.io/app@@sha256", E("InvalidDigestFormat")),
        (":tag", E("InvalidPathComponent")),
        ("@sha256:abc", E("InvalidPathComponent")),
    ];

    fn check(input: &str, want: &Want) {
        let got = Reference::parse(input);
        match (want, &got) {
            (V(domain, path, tag, digest), Ok(r)) => {
                assert_eq!(r.domain(), *domain, "domain of {input:?}");
                assert_eq!(r.path(), *path, "path of {input:?}");
                assert_eq!(r.tag(), *tag, "tag of {input:?}");
                assert_eq!(r.digest(), *digest, "digest of {input:?}");
            }
            (E(expected), Err(e)) => assert_eq!(kind(e), *expected, "{input:?}: {e}"),
            (V(..), Err(e)) => panic!("{input:?} should parse, got: {e}"),
            (E(expected), Ok(r)) => panic!("{input:?} should fail with {expected}, got {r:?}"),
        }
    }

    #[test]
    fn reference_table_matches_distribution_reference() {
        for (input, want) in CASES {
            check(input, want);
        }
        let fixtures = Fixtures::new();
        let built = built_cases(&fixtures);
        for (input, want) in &built {
            check(input, want);
        }
        assert!(CASES.len() + built.len() >= 80);
    }

    #[test]
    fn display_round_trips_to_the_same_reference() {
        let digest = format!("sha256:{}", hex(64));
        let inputs = [
            "ubuntu".to_owned(),
            "ubuntu:22.04".to_owned(),
            "Foo/bar".to_owned(),
            "[::1]:5000/app:1".to_owned(),
            "localhost:5000/a/b:t".to_owned(),
            format!("registry.io/team/app:1@{digest}"),
            format!("app@{digest}"),
        ];
        for input in inputs {
            let r = Reference::parse(&input).expect("valid");
            let shown = r.to_string();
            assert_eq!(
                Reference::parse(&shown),
                Ok(r.clone()),
                "{input} -> {shown}"
            );
            assert_eq!(shown.parse::<Reference>(), Ok(r));
        }
        assert_eq!(
            Reference::parse("ubuntu").map(|r| r.to_string()),
            Ok("docker.io/library/ubuntu".to_owned())
        );
        assert_eq!(
            Reference::parse(&format!("a:b@{digest}")).map(|r| r.to_string()),
            Ok(format!("docker.io/library/a:b@{digest}"))
        );
    }

    #[test]
    fn name_is_domain_and_path() {
        let r = Reference::parse("localhost:5000/a/b:t").expect("valid");
        assert_eq!(r.name(), "localhost:5000/a/b");
        let r = Reference::parse("ubuntu:1").expect("valid");
        assert_eq!(r.name(), "docker.io/library/ubuntu");
    }

    #[test]
    fn default_tag_is_added_only_without_tag_or_digest() {
        let digest = format!("sha256:{}", hex(64));
        let tagged = |s: &str| {
            Reference::parse(s)
                .expect("valid")
                .with_default_tag()
                .to_string()
        };
        assert_eq!(tagged("ubuntu"), "docker.io/library/ubuntu:latest");
        assert_eq!(tagged("ubuntu:22.04"), "docker.io/library/ubuntu:22.04");
        assert_eq!(
            tagged(&format!("ubuntu@{digest}")),
            format!("docker.io/library/ubuntu@{digest}")
        );
        assert_eq!(tagged("localhost/app"), "localhost/app:latest");
    }

    #[test]
    fn familiar_strips_docker_hub_and_library_only() {
        let digest = format!("sha256:{}", hex(64));
        let cases = [
            ("ubuntu", "ubuntu".to_owned()),
            ("docker.io/library/ubuntu:22.04", "ubuntu:22.04".to_owned()),
            ("index.docker.io/library/ubuntu", "ubuntu".to_owned()),
            ("user/app:1", "user/app:1".to_owned()),
            ("library/a/b", "library/a/b".to_owned()),
            (
                "localhost:5000/library/app",
                "localhost:5000/library/app".to_owned(),
            ),
            ("registry.io/app:1", "registry.io/app:1".to_owned()),
            (&*format!("ubuntu:1@{digest}"), format!("ubuntu:1@{digest}")),
        ];
        for (input, want) in cases {
            let r = Reference::parse(input).expect("valid");
            assert_eq!(r.familiar(), want, "familiar of {input}");
        }
    }

    #[test]
    fn errors_say_which_part_is_wrong_and_show_a_valid_reference() {
        let msg = |s: &str| Reference::parse(s).expect_err("invalid").to_string();
        assert_eq!(
            msg("foo/Bar"),
            "invalid reference format: repository name (foo/Bar) must be lowercase \
             (only the registry host may contain capitals, like \
             `registry.example.com:5000/team/app:1.0`)"
        );
        assert!(msg("example.com:port/x").contains("port `port`"));
        assert!(msg("a//b").contains("(empty: a leading, trailing or doubled `/`)"));
        assert!(msg("app:-x").contains("tag `-x`"));
        assert!(msg(&"a".repeat(300)).starts_with("repository name must not be more than 255"));
        assert!(msg(&hex(64)).contains("cannot specify 64-byte hexadecimal strings"));
        assert!(msg(&format!("app@md5:{}", hex(32))).contains("unsupported digest algorithm"));
        for bad in ["", "a..b/x", "app:", "a___b", "app@x"] {
            assert!(
                msg(bad).contains("registry.example.com"),
                "{bad}: {}",
                msg(bad)
            );
        }
    }

    #[test]
    fn reference_serializes_its_parts() {
        let r = Reference::parse("localhost:5000/a:t").expect("valid");
        let json = serde_json::to_value(&r).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"domain": "localhost:5000", "path": "a", "tag": "t", "digest": null})
        );
    }

    #[test]
    fn registry_uri_table() {
        let ok: &[(&str, &str, Option<&str>)] = &[
            ("registry.io", "registry.io", None),
            ("registry.io/", "registry.io", None),
            ("registry.io///", "registry.io", None),
            ("registry.io/team", "registry.io", Some("team")),
            ("registry.io/team/sub/", "registry.io", Some("team/sub")),
            ("Registry.IO/team", "registry.io", Some("team")),
            ("index.docker.io/user", "docker.io", Some("user")),
            ("INDEX.docker.io", "docker.io", None),
            ("docker.io", "docker.io", None),
            ("localhost:5000", "localhost:5000", None),
            ("localhost", "localhost", None),
            ("[::1]:5000/team", "[::1]:5000", Some("team")),
            ("[2001:DB8::1]", "[2001:db8::1]", None),
            (
                "123.dkr.ecr.us-east-1.amazonaws.com",
                "123.dkr.ecr.us-east-1.amazonaws.com",
                None,
            ),
            (
                "europe-docker.pkg.dev/proj/repo",
                "europe-docker.pkg.dev",
                Some("proj/repo"),
            ),
            ("myregistry", "myregistry", None),
        ];
        for (input, domain, path) in ok {
            let uri = RegistryUri::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(uri.domain(), *domain, "{input}");
            assert_eq!(uri.path(), *path, "{input}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "Required"),
            ("/", "Required"),
            ("///", "Required"),
            ("   ", "Required"),
            (" registry.io", "InvalidCharacter"),
            ("registry.io/team ", "InvalidCharacter"),
            ("registry.io/té", "InvalidCharacter"),
            ("https://registry.io/team", "SchemeNotAllowed"),
            ("http://localhost:5000", "SchemeNotAllowed"),
            ("oci://", "SchemeNotAllowed"),
            ("/team", "InvalidDomain"),
            ("a..b", "InvalidDomain"),
            ("-a.com/team", "InvalidDomain"),
            ("user@registry.io", "InvalidDomain"),
            ("registry.io:port", "InvalidPort"),
            ("registry.io:", "InvalidPort"),
            ("registry.io/Team", "Uppercase"),
            ("registry.io/team//app", "InvalidPathComponent"),
            ("registry.io/team-", "InvalidPathComponent"),
            ("registry.io/team:1", "TagNotAllowed"),
            ("registry.io/team/app:latest", "TagNotAllowed"),
            ("registry.io/app@sha256:abc", "DigestNotAllowed"),
        ];
        for (input, want) in bad {
            match RegistryUri::parse(input) {
                Err(e) => assert_eq!(uri_kind(&e), *want, "{input:?}: {e}"),
                Ok(u) => panic!("{input:?} should fail with {want}, got {u:?}"),
            }
        }
        let long = format!("registry.io/{}", "a".repeat(256));
        assert_eq!(
            RegistryUri::parse(&long).map_err(|e| uri_kind(&e)),
            Err("NameTooLong")
        );
    }

    #[test]
    fn registry_uri_displays_normalised_text() {
        let shown = |s: &str| RegistryUri::parse(s).expect("valid").to_string();
        assert_eq!(shown("Registry.IO/team/"), "registry.io/team");
        assert_eq!(shown("index.docker.io/user//"), "docker.io/user");
        assert_eq!(shown("localhost:5000"), "localhost:5000");
        assert_eq!(shown(&shown("[::1]:5000/a")), "[::1]:5000/a");
    }

    #[test]
    fn scheme_error_suggests_the_uri_without_it() {
        let e = RegistryUri::parse("https://registry.example.com/team/").expect_err("scheme");
        assert_eq!(
            e.to_string(),
            "registry uri must not have a scheme: use `registry.example.com/team`, \
             not `https://registry.example.com/team/`"
        );
        let e = RegistryUri::parse("registry.io/team:1").expect_err("tag");
        assert!(e.to_string().contains("a registry uri has no tag"), "{e}");
    }

    #[test]
    fn containment_is_by_segment_not_by_string_prefix() {
        let cases: &[(&str, &str, bool)] = &[
            ("registry.io/team", "registry.io/team/app:1", true),
            ("registry.io/team", "registry.io/team:1", true),
            ("registry.io/team", "registry.io/team/sub/app", true),
            ("registry.io/team/", "registry.io/team/app", true),
            ("registry.io/team", "registry.io/team-evil/app:1", false),
            ("registry.io/team", "registry.io/teamx", false),
            ("registry.io/team", "registry.io/team.x/app", false),
            ("registry.io/team", "registry.io/other/team/app", false),
            ("registry.io/team/app", "registry.io/team", false),
            ("registry.io", "registry.io/anything/at/all:1", true),
            ("registry.io", "registry.io.evil.com/app", false),
            ("registry.io", "registry.io:5000/app", false),
            ("registry.io:5000", "registry.io/app", false),
            ("Registry.IO/team", "registry.io/team/app", true),
            ("registry.io/team", "REGISTRY.io/team/app", true),
            ("localhost:5000", "localhost:5000/app", true),
            ("localhost:5000", "localhost:50001/app", false),
            ("localhost:5000", "localhost/app", false),
            ("localhost", "localhost:5000/app", false),
            ("docker.io/user", "user/app", true),
            ("docker.io/user", "user2/app", false),
            ("docker.io", "ubuntu", true),
            ("index.docker.io/library", "ubuntu:22.04", true),
            ("docker.io/library", "user/app", false),
            ("registry.io/team", "ubuntu", false),
            ("[::1]:5000", "[::1]:5000/app", true),
            ("[::1]:5000", "[::1]:50001/app", false),
        ];
        for (uri, image, want) in cases {
            let u = RegistryUri::parse(uri).expect("valid uri");
            let r = Reference::parse(image).expect("valid image");
            assert_eq!(u.contains(&r), *want, "{uri} contains {image}");
            // ZenML's `startswith` would wrongly accept these.
            if !want && image.starts_with(uri) {
                assert!(r.name().starts_with(u.to_string().as_str()));
            }
        }
    }

    #[test]
    fn is_local_means_localhost_with_a_four_or_five_digit_port() {
        let cases = [
            ("localhost:5000", true),
            ("localhost:50000", true),
            ("localhost:5000/", true),
            ("LOCALHOST:5000", true),
            ("localhost:500", false),
            ("localhost:123456", false),
            ("localhost:5000/team", false),
            ("localhost", false),
            ("127.0.0.1:5000", false),
            ("[::1]:5000", false),
            ("localhost.example.com:5000", false),
        ];
        for (input, want) in cases {
            let uri = RegistryUri::parse(input).expect("valid");
            assert_eq!(uri.is_local(), want, "{input}");
        }
    }

    #[test]
    fn repository_path_grammar_accepts_reference_paths() {
        let max = format!("a/{}", "b".repeat(253));
        for ok in [
            "app", "team/app", "a/b/c", "my-app", "my--app", "a.b", "a_b", "a__b", "0x/9", &max,
        ] {
            assert_eq!(
                RepositoryPath::parse(ok).map(|p| p.to_string()),
                Ok(ok.to_owned()),
                "{ok}"
            );
        }
    }

    #[test]
    fn repository_path_grammar_refuses_hostile_strings() {
        let long = "a".repeat(256);
        let cases: &[(&str, &str)] = &[
            ("", "Empty"),
            ("..", "InvalidPathComponent"),
            ("a/../b", "InvalidPathComponent"),
            ("a/./b", "InvalidPathComponent"),
            ("a?b", "InvalidPathComponent"),
            ("a#b", "InvalidPathComponent"),
            ("a%2fb", "InvalidPathComponent"),
            ("A", "InvalidPathComponent"),
            ("a//b", "InvalidPathComponent"),
            ("/a", "InvalidPathComponent"),
            ("a/", "InvalidPathComponent"),
            ("a b", "InvalidPathComponent"),
            ("a___b", "InvalidPathComponent"),
            ("-a", "InvalidPathComponent"),
            ("a-", "InvalidPathComponent"),
            ("a.", "InvalidPathComponent"),
            ("a:b", "InvalidPathComponent"),
            ("a@b", "InvalidPathComponent"),
            ("a\\b", "InvalidPathComponent"),
            ("a\nb", "InvalidPathComponent"),
            ("../../v2/_catalog?n=1", "InvalidPathComponent"),
            ("registry.io/team/app:1", "InvalidPathComponent"),
            (&long, "NameTooLong"),
        ];
        for (bad, want) in cases {
            let got = RepositoryPath::parse(bad).map_err(|e| match e {
                RepositoryPathError::Empty => "Empty",
                RepositoryPathError::InvalidPathComponent { .. } => "InvalidPathComponent",
                RepositoryPathError::NameTooLong { .. } => "NameTooLong",
            });
            assert_eq!(got, Err(*want), "{bad:?}");
        }
    }

    #[test]
    fn repository_path_errors_quote_hostile_text_escaped_and_cut() {
        let e = RepositoryPath::parse("a\n\u{1b}[2J").expect_err("invalid");
        let shown = e.to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        let e = RepositoryPath::parse(&"A".repeat(100_000)).expect_err("invalid");
        assert!(e.to_string().len() < 1000);
    }

    #[test]
    fn repository_path_grammar_is_the_one_references_and_uris_use() {
        for path in ["team/app", "a__b", "a___b", "a/../b", "a-", "x/y.z", "a//b"] {
            let alone = RepositoryPath::parse(path).is_ok();
            let in_reference = Reference::parse(&format!("registry.io/{path}")).is_ok();
            let in_uri = RegistryUri::parse(&format!("registry.io/{path}")).is_ok();
            assert_eq!(alone, in_reference, "{path}");
            assert_eq!(alone, in_uri, "{path}");
        }
    }

    #[test]
    fn repository_containment_is_by_segment_and_matches_image_containment() {
        let cases: &[(&str, &str, bool)] = &[
            ("registry.io/team", "team/app", true),
            ("registry.io/team", "team", true),
            ("registry.io/team", "team/sub/app", true),
            ("registry.io/team", "team-evil/app", false),
            ("registry.io/team", "teamx", false),
            ("registry.io/team", "team.x/app", false),
            ("registry.io/team", "other/team/app", false),
            ("registry.io/team/app", "team", false),
            ("registry.io", "anything/at/all", true),
            ("localhost:5000", "app", true),
            ("docker.io", "ubuntu", true),
            ("docker.io/library", "ubuntu", true),
            ("docker.io/library", "library/ubuntu", true),
            ("docker.io/user", "user/app", true),
            ("docker.io/user", "user2/app", false),
            ("docker.io/ubuntu", "ubuntu", false),
        ];
        for (uri, path, want) in cases {
            let u = RegistryUri::parse(uri).expect("valid uri");
            let repository = u.repository(path).expect("valid path");
            assert_eq!(u.contains_repository(&repository), *want, "{uri} ∋ {path}");
            // The same answer as for an image of that repository on the uri's registry.
            let image = Reference::parse(&format!("{}/{path}:1", u.domain())).expect("valid");
            assert_eq!(u.contains(&image), *want, "{uri} ∋ {image}");
            assert_eq!(image.path(), repository.as_str(), "{uri} {path}");
        }
    }

    #[test]
    fn namespace_containment_is_by_segment_and_the_whole_registry_is_only_in_a_pathless_uri() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("registry.io:5000/team-a", Some("team-a"), true),
            ("registry.io:5000/team-a", Some("team-a/sub"), true),
            ("registry.io:5000/team-a", Some("team-a-evil"), false),
            ("registry.io:5000/team-a", Some("team-ab/x"), false),
            ("registry.io:5000/team-a", Some("team"), false),
            ("registry.io:5000/team-a", None, false),
            ("registry.io:5000/team-a/sub", Some("team-a"), false),
            ("registry.io:5000", Some("team-a"), true),
            ("registry.io:5000", None, true),
        ];
        for (uri, path, want) in cases {
            let u = RegistryUri::parse(uri).expect("valid uri");
            assert_eq!(u.contains_namespace(*path), *want, "{uri} ∋ {path:?}");
        }
    }

    #[test]
    fn docker_hub_paths_are_normalised_and_others_are_not() {
        let on = |uri: &str, path: &str| {
            RegistryUri::parse(uri)
                .expect("valid")
                .repository(path)
                .map(|p| p.to_string())
        };
        assert_eq!(on("docker.io", "ubuntu"), Ok("library/ubuntu".into()));
        assert_eq!(
            on("index.docker.io/x", "ubuntu"),
            Ok("library/ubuntu".into())
        );
        assert_eq!(on("docker.io", "user/app"), Ok("user/app".into()));
        assert_eq!(on("registry.io", "app"), Ok("app".into()));
        assert_eq!(on("localhost:5000", "app"), Ok("app".into()));
        assert!(on("docker.io", "Ubuntu").is_err());
        // The prefix counts against the length limit, as in a reference.
        assert!(on("docker.io", &"a".repeat(250)).is_err());
        assert!(on("registry.io", &"a".repeat(250)).is_ok());
    }

    #[test]
    fn loopback_host_and_port_come_from_the_one_domain_split() {
        let cases: &[(&str, bool, &str, Option<u16>)] = &[
            ("localhost:5000", true, "localhost", Some(5000)),
            ("localhost", true, "localhost", None),
            ("127.0.0.1:5000", true, "127.0.0.1", Some(5000)),
            ("127.1.2.3", true, "127.1.2.3", None),
            ("[::1]:5000/team", true, "[::1]", Some(5000)),
            ("[0:0:0:0:0:0:0:1]", true, "[0:0:0:0:0:0:0:1]", None),
            ("registry.example.com", false, "registry.example.com", None),
            ("10.0.0.1:5000", false, "10.0.0.1", Some(5000)),
            ("localhost.evil.com", false, "localhost.evil.com", None),
            ("[2001:db8::1]:443", false, "[2001:db8::1]", Some(443)),
            ("registry.io:99999", false, "registry.io", None),
        ];
        for (input, loopback, host, port) in cases {
            let uri = RegistryUri::parse(input).expect("valid");
            assert_eq!(uri.is_loopback(), *loopback, "{input}");
            assert_eq!(uri.host(), *host, "{input}");
            assert_eq!(uri.port(), *port, "{input}");
        }
    }
}
