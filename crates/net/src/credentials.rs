//! Registry credentials the host holds on a component's behalf.
//!
//! They are used by two parts that otherwise share nothing, the push (handed
//! to the Docker engine) and the registry API (`repository-exists`), and a
//! guest never sees them. Their own module keeps one type with one rule:
//! the password never appears in a `Debug` print, a log line or an error.

use std::fmt;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (or token name) to log in with.
    pub username: String,
    /// The password or token; never printed.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains('u'),
            "{shown}"
        );
    }
}
