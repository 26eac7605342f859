//! Registry credentials the host holds on a component's behalf.
//!
//! They are used by two parts that otherwise share nothing, the push (handed
//! to the Docker engine) and the registry API (`repository-exists`), and a
//! guest never sees them. Their own module keeps one type with one rule:
//! the password never appears in a `Debug` print, a log line or an error.
//! The password is a [`SecretString`], the one redacting type every secret
//! of the workspace is held in: its `Debug` prints `[REDACTED]`, and it is
//! read only through `expose_secret()`, where the value is sent.

use secrecy::SecretString;

/// A user name and password (or token) for one registry.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user name (or token name) to log in with.
    pub username: String,
    /// The password or token; never printed.
    pub password: SecretString,
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
        assert!(shown.contains("REDACTED") && shown.contains('u'), "{shown}");
    }
}
