//! The repository path grammar: `component ("/" component)*`, each
//! component lowercase letters and digits joined by `.`, `_`, `__` or runs
//! of `-`. The one copy in Rust: the host's references and registry URIs use
//! it, and so does the guest kit (`guest-flavors/flavor-kit`); the Python
//! and JavaScript SDKs are held to the same vectors (`vectors/paths.json`).

use std::fmt;
use std::str::FromStr;

/// The longest repository path (the name without the domain) Docker accepts.
pub const MAX_PATH_LENGTH: usize = 255;

/// What the path-component rule allows, for messages.
pub const PATH_COMPONENT_RULE: &str =
    "lowercase letters and digits, optionally separated by `.`, `_`, `__` or `-`";

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

/// The first `/`-separated component of `path` that breaks the grammar.
pub(crate) fn first_invalid_component(path: &str) -> Option<&str> {
    path.split('/').find(|c| !is_path_component(c))
}

/// Whether `c` is one path component of the reference grammar:
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub fn is_path_component(c: &str) -> bool {
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

/// Whether `s` is a repository path: one or more path components separated
/// by `/`, at most [`MAX_PATH_LENGTH`] characters.
pub fn is_repository_path(s: &str) -> bool {
    RepositoryPath::parse(s).is_ok()
}
