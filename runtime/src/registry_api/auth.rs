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
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!("Basic {}", BASE64.encode(pair))
}

/// The realm as a URL credentials may be sent to: https, or http when the
/// registry is on loopback; no user information of its own.
fn realm_url(realm: &str, loopback_registry: bool) -> Result<Url, &'static str> {
    let url = Url::parse(realm).map_err(|_| "is not a URL")?;
    match url.scheme() {
        "https" => {}
        "http" if loopback_registry => {}
        _ => return Err("is not https; refusing to send credentials there"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries user information; refusing it");
    }
    Ok(url)
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
) -> Result<String, RegistryApiError> {
    let mut url = realm_url(realm, loopback_registry).map_err(|why| {
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
            assert_eq!(
                realm_url(realm, *loopback).is_ok(),
                *want,
                "{realm} (loopback registry: {loopback})"
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
