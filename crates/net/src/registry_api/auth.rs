//! Answering a registry's `WWW-Authenticate` challenge.
//!
//! A registry that wants credentials answers 401 with a challenge: Basic (send
//! the credentials to the registry itself) or Bearer (fetch a token from the
//! challenge's realm, a URL the registry chose). The realm is a second place
//! credentials go, so it is held to the same egress policy as the registry
//! (the request goes through the same client) and must be https unless the
//! registry itself is on loopback.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::ExposeSecret as _;
use url::Url;

use super::RegistryApiError;
use super::client::Exchange;
use crate::credentials::Credentials;

/// The most bytes read from a token endpoint's answer.
const MAX_TOKEN_RESPONSE: u64 = 64 * 1024;

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Send the credentials with Basic auth.
    Basic,
    /// Fetch a token from `realm` and send it as a Bearer token.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header into the challenge to answer.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let (mut realm, mut service, mut scope) = (None, None, None);
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        match key.as_str() {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            "scope" => scope = Some(value.to_string()),
            _ => {}
        }
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
        scope,
    })
}

/// The `Authorization` value for Basic auth.
pub(crate) fn basic(credentials: &Credentials) -> String {
    let pair = format!(
        "{}:{}",
        credentials.username,
        credentials.password.expose_secret()
    );
    format!("Basic {}", BASE64.encode(pair))
}

/// The realm as a URL credentials may be sent to: https, or http when the
/// registry is on loopback; no user information of its own; on the
/// registry's own host or a sibling under its parent domain (Docker Hub's
/// `registry-1.docker.io` sends tokens from `auth.docker.io`, GitLab's
/// `registry.gitlab.com` from `gitlab.com`), never on a host the registry
/// merely names.
fn realm_url(
    realm: &str,
    loopback_registry: bool,
    registry_host: &str,
) -> Result<Url, &'static str> {
    let url = Url::parse(realm).map_err(|_| "is not a URL")?;
    match url.scheme() {
        "https" => {}
        "http" if loopback_registry => {}
        _ => return Err("is not https; refusing to send credentials there"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries user information; refusing it");
    }
    if !realm_host_belongs(url.host_str().unwrap_or_default(), registry_host) {
        return Err(
            "is not on the registry's host or its domain; refusing to send credentials there",
        );
    }
    Ok(url)
}

/// Whether `realm` is `registry` itself or a host under `registry`'s parent
/// domain (which must have at least two labels: `registry.io` does not make
/// every `.io` host a sibling, and an IP address has no parent).
fn realm_host_belongs(realm: &str, registry: &str) -> bool {
    let realm = realm.trim_end_matches('.').to_ascii_lowercase();
    let registry = registry.trim_end_matches('.').to_ascii_lowercase();
    if realm.is_empty() {
        return false;
    }
    if realm == registry {
        return true;
    }
    if registry.parse::<std::net::IpAddr>().is_ok() || registry.starts_with('[') {
        return false;
    }
    let Some((_, parent)) = registry.split_once('.') else {
        return false;
    };
    parent.contains('.') && (realm == parent || realm.ends_with(&format!(".{parent}")))
}

/// Fetches a Bearer token from `realm` (with Basic credentials when given),
/// through the exchange's client and within its deadline.
pub(crate) fn fetch_token(
    exchange: &Exchange<'_>,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    credentials: Option<&Credentials>,
    loopback_registry: bool,
    registry_host: &str,
) -> Result<String, RegistryApiError> {
    let mut url = realm_url(realm, loopback_registry, registry_host).map_err(|why| {
        let shown: String = realm.chars().take(200).collect();
        exchange.protocol(&format!("token realm `{shown}` {why}"))
    })?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("scope", scope);
        if let Some(service) = service {
            query.append_pair("service", service);
        }
    }
    let response = exchange.get(url, credentials.map(basic).as_deref())?;
    match response.status() {
        200 => {}
        401 | 403 => {
            return Err(exchange.auth(&format!(
                "token endpoint answered HTTP {}",
                response.status()
            )));
        }
        other => {
            return Err(exchange.protocol(&format!("token endpoint answered HTTP {other}")));
        }
    }
    let body = exchange.read_body(response, MAX_TOKEN_RESPONSE)?;
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| exchange.protocol(&format!("token response is not JSON: {e}")))?;
    parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| exchange.protocol("token response has no usable token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_challenges_are_parsed() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/ubuntu:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
    }

    #[test]
    fn credentials_go_to_a_realm_only_over_https_unless_the_registry_is_loopback() {
        let cases: &[(&str, bool, bool)] = &[
            ("https://auth.docker.io/token", false, true),
            ("https://auth.docker.io/token", true, true),
            ("http://auth.example.com/token", false, false),
            ("http://127.0.0.1:5000/token", true, true),
            ("http://127.0.0.1:5000/token", false, false),
            ("ftp://auth.example.com/token", true, false),
            ("file:///etc/passwd", true, false),
            ("https://user:pw@auth.example.com/token", false, false),
            ("/token", true, false),
            ("", true, false),
        ];
        for (realm, loopback, want) in cases {
            // Each realm on its own registry's host: only the scheme and
            // user information decide here.
            let host = Url::parse(realm)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            assert_eq!(
                realm_url(realm, *loopback, &host).is_ok(),
                *want,
                "{realm} (loopback registry: {loopback})"
            );
        }
    }

    #[test]
    fn a_realm_is_on_the_registrys_host_or_under_its_parent_domain() {
        let cases: &[(&str, &str, bool)] = &[
            ("https://auth.docker.io/token", "registry-1.docker.io", true),
            ("https://gitlab.com/jwt/auth", "registry.gitlab.com", true),
            ("https://ghcr.io/token", "ghcr.io", true),
            (
                "https://gitlab.example.com/jwt/auth",
                "registry.example.com",
                true,
            ),
            (
                "https://registry.example.com/token",
                "registry.example.com",
                true,
            ),
            ("http://127.0.0.1:5000/token", "127.0.0.1", true),
            // Anywhere else the registry names is refused.
            (
                "https://attacker.example/token",
                "registry.example.com",
                false,
            ),
            (
                "https://example.com.attacker.example/token",
                "registry.example.com",
                false,
            ),
            ("https://evil.io/token", "registry.io", false),
            ("https://other.io/token", "ghcr.io", false),
            ("http://127.0.0.2:5000/token", "127.0.0.1", false),
            ("http://10.0.0.1/token", "127.0.0.1", false),
        ];
        for (realm, registry, want) in cases {
            let loopback = registry.starts_with("127.");
            assert_eq!(
                realm_url(realm, loopback, registry).is_ok(),
                *want,
                "{realm} for registry {registry}"
            );
        }
    }

    #[test]
    fn basic_authorization_encodes_user_and_password() {
        let c = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(basic(&c), "Basic dXNlcjpwYXNz");
    }
}
