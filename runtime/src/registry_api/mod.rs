//! The few calls of the registry HTTP API v2 the host makes on a flavor's behalf.
//!
//! A flavor may ask, through the `repository-exists` import, whether a
//! repository exists on its own registry. The host answers synchronously from
//! inside a sandbox call, with its own credentials, so every request here is
//! bounded by the caller's deadline (epochs and fuel do not fire while the host
//! waits on the network). The repository name comes from untrusted guest code:
//! it is checked against the reference path grammar before it goes near a URL.

use std::io::Read;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::credentials::Credentials;

mod resolver;
use resolver::{DeadlineResolver, ResolverPool};

/// The longest repository path Docker accepts (distribution/reference's limit).
const MAX_REPOSITORY_LEN: usize = 255;
/// The most bytes read from a token endpoint's answer.
const MAX_TOKEN_RESPONSE: u64 = 64 * 1024;

/// Why a registry question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryApiError {
    /// The repository name is not a valid reference path.
    #[error("invalid repository name `{repository}`: {reason}")]
    InvalidRepository {
        /// The name as given (possibly hostile).
        repository: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The registry domain is not `host[:port]`.
    #[error("invalid registry domain `{domain}`: expected host[:port]")]
    InvalidDomain {
        /// The domain as given.
        domain: String,
    },
    /// The deadline passed before the registry answered.
    #[error("registry {domain} did not answer within {timeout:?}")]
    TimedOut {
        /// The registry domain.
        domain: String,
        /// The deadline that was hit.
        timeout: Duration,
    },
    /// The registry could not be reached.
    #[error("registry {domain} is unreachable: {message}")]
    Unreachable {
        /// The registry domain.
        domain: String,
        /// What went wrong.
        message: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error(
        "authentication failed at registry {domain}: {message}; check the registry credentials"
    )]
    Auth {
        /// The registry domain.
        domain: String,
        /// What the registry said.
        message: String,
    },
    /// The registry answered in a way the v2 API does not allow.
    #[error("registry {domain} answered unexpectedly: {message}")]
    Protocol {
        /// The registry domain.
        domain: String,
        /// What was unexpected.
        message: String,
    },
}

/// A blocking client for the registry HTTP API v2.
#[derive(Debug, Clone, Copy)]
pub struct RegistryApi {}

impl Default for RegistryApi {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a registry's API lives.
struct Endpoint {
    /// `http://host:port` or `https://host`.
    base: String,
    /// Whether the registry is on loopback (and so spoken to over plain HTTP).
    loopback: bool,
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl RegistryApi {
    /// A client; the deadline is given per call.
    pub fn new() -> Self {
        Self {}
    }

    /// An agent for one exchange: its name resolution is bounded by the same
    /// deadline as its requests (ureq's request timeout does not cover DNS).
    fn agent(deadline: Instant) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .user_agent(concat!("flavorbox/", env!("CARGO_PKG_VERSION")))
            // Never carry credentials across a redirect.
            .redirect_auth_headers(ureq::RedirectAuthHeaders::Never)
            .redirects(3)
            .resolver(DeadlineResolver {
                pool: ResolverPool::system(),
                deadline,
            })
            .build()
    }

    /// Whether `repository` exists on registry `domain` (host[:port]), by GET /v2/<repository>/tags/list.
    ///
    /// 200 is yes and 404 is no; a 401 is answered once with the credentials
    /// (Basic, or a Bearer token fetched from the challenge's realm). The
    /// whole exchange, token included, finishes within `timeout`.
    pub fn repository_exists(
        &self,
        domain: &str,
        repository: &str,
        credentials: Option<&Credentials>,
        timeout: Duration,
    ) -> Result<bool, RegistryApiError> {
        let deadline = Instant::now() + timeout;
        validate_repository(repository)?;
        let endpoint = endpoint(domain)?;
        let repository =
            if endpoint.base == "https://registry-1.docker.io" && !repository.contains('/') {
                format!("library/{repository}")
            } else {
                repository.to_string()
            };
        let url = format!("{}/v2/{repository}/tags/list", endpoint.base);
        let agent = Self::agent(deadline);
        let ctx = Call {
            agent: &agent,
            domain,
            deadline,
            timeout,
        };

        let first = ctx.get(&url, None)?;
        let challenge = match first.status() {
            200 => return Ok(true),
            404 => return Ok(false),
            401 => first
                .header("www-authenticate")
                .and_then(parse_challenge)
                .ok_or_else(|| ctx.protocol("401 without a usable WWW-Authenticate challenge"))?,
            403 => return Err(ctx.auth("403 Forbidden")),
            other => return Err(ctx.protocol(&format!("HTTP {other} for {url}"))),
        };

        let authorization = match challenge {
            Challenge::Basic => {
                let c = credentials.ok_or_else(|| {
                    ctx.auth("the registry requires credentials and none are configured")
                })?;
                basic(c)
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope.unwrap_or_else(|| format!("repository:{repository}:pull"));
                let token = ctx.token(
                    &realm,
                    service.as_deref(),
                    &scope,
                    credentials,
                    endpoint.loopback,
                )?;
                format!("Bearer {token}")
            }
        };

        let second = ctx.get(&url, Some(&authorization))?;
        match second.status() {
            200 => Ok(true),
            404 => Ok(false),
            401 | 403 => Err(ctx.auth(&format!(
                "HTTP {} {}",
                second.status(),
                if credentials.is_some() {
                    "with the configured credentials"
                } else {
                    "without credentials"
                }
            ))),
            other => Err(ctx.protocol(&format!("HTTP {other} for {url}"))),
        }
    }
}

/// One `repository_exists` exchange: the agent, the registry and the deadline.
struct Call<'a> {
    agent: &'a ureq::Agent,
    domain: &'a str,
    deadline: Instant,
    timeout: Duration,
}

impl Call<'_> {
    fn timed_out(&self) -> RegistryApiError {
        RegistryApiError::TimedOut {
            domain: self.domain.to_string(),
            timeout: self.timeout,
        }
    }

    fn auth(&self, message: &str) -> RegistryApiError {
        RegistryApiError::Auth {
            domain: self.domain.to_string(),
            message: message.to_string(),
        }
    }

    fn protocol(&self, message: &str) -> RegistryApiError {
        RegistryApiError::Protocol {
            domain: self.domain.to_string(),
            message: message.to_string(),
        }
    }

    /// Time left before the deadline, or a timeout error.
    fn remaining(&self) -> Result<Duration, RegistryApiError> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.timed_out())
    }

    /// A GET bounded by the deadline; any HTTP status is an `Ok` response.
    fn get(
        &self,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<ureq::Response, RegistryApiError> {
        self.send(self.agent.get(url), authorization)
    }

    fn send(
        &self,
        request: ureq::Request,
        authorization: Option<&str>,
    ) -> Result<ureq::Response, RegistryApiError> {
        // ureq's request timeout bounds connect and read together; the
        // agent's resolver bounds name resolution by the same deadline.
        let mut request = request.timeout(self.remaining()?);
        if let Some(value) = authorization {
            request = request.set("Authorization", value);
        }
        match request.call() {
            Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(response),
            Err(ureq::Error::Transport(t)) => {
                if is_timeout(&t) || self.remaining().is_err() {
                    Err(self.timed_out())
                } else {
                    Err(RegistryApiError::Unreachable {
                        domain: self.domain.to_string(),
                        message: t.to_string(),
                    })
                }
            }
        }
    }

    /// Fetches a bearer token from `realm` (with Basic credentials when given).
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
        loopback_registry: bool,
    ) -> Result<String, RegistryApiError> {
        let realm_ok =
            realm.starts_with("https://") || (loopback_registry && realm.starts_with("http://"));
        if !realm_ok {
            return Err(self.protocol(&format!(
                "token realm `{realm}` is not https; refusing to send credentials there"
            )));
        }
        let mut request = self.agent.get(realm).query("scope", scope);
        if let Some(service) = service {
            request = request.query("service", service);
        }
        let response = self.send(request, credentials.map(basic).as_deref())?;
        match response.status() {
            200 => {}
            401 | 403 => {
                return Err(self.auth(&format!(
                    "token endpoint answered HTTP {}",
                    response.status()
                )));
            }
            other => return Err(self.protocol(&format!("token endpoint answered HTTP {other}"))),
        }
        let mut body = Vec::new();
        response
            .into_reader()
            .take(MAX_TOKEN_RESPONSE)
            .read_to_end(&mut body)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    self.timed_out()
                } else {
                    self.protocol(&format!("reading the token: {e}"))
                }
            })?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.protocol(&format!("token response is not JSON: {e}")))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| self.protocol("token response has no usable token"))
    }
}

/// The `Authorization` value for Basic auth.
fn basic(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!("Basic {}", BASE64.encode(pair))
}

/// Whether a transport error is a timeout.
fn is_timeout(error: &ureq::Transport) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        {
            return true;
        }
        source = e.source();
    }
    error.to_string().contains("timed out")
}

/// Checks `repository` against the reference path grammar:
/// `component ("/" component)*`, component `[a-z0-9]+ (separator [a-z0-9]+)*`,
/// separator `.`, `_`, `__` or `-`+.
pub fn validate_repository(repository: &str) -> Result<(), RegistryApiError> {
    let invalid = |reason| RegistryApiError::InvalidRepository {
        repository: repository.chars().take(300).collect(),
        reason,
    };
    if repository.is_empty() {
        return Err(invalid("it is empty"));
    }
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(invalid("it is longer than 255 characters"));
    }
    for component in repository.split('/') {
        if !valid_component(component) {
            return Err(invalid(
                "each `/`-separated component must be lowercase letters and digits, joined by `.`, `_`, `__` or dashes",
            ));
        }
    }
    Ok(())
}

/// One path component: alphanumerics joined by single separators.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or any number of `-`.
        let run_end = bytes[i..]
            .iter()
            .position(|&c| alnum(c))
            .map_or(bytes.len(), |n| i + n);
        let run = &component[i..run_end];
        let ok = matches!(run, "." | "_" | "__") || run.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
        i = run_end;
    }
    true
}

/// The API base for a registry domain: plain HTTP on loopback, HTTPS elsewhere.
fn endpoint(domain: &str) -> Result<Endpoint, RegistryApiError> {
    let invalid = || RegistryApiError::InvalidDomain {
        domain: domain.chars().take(300).collect(),
    };
    let domain = match domain {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    };
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid());
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(invalid)?),
        };
        (host, port)
    } else {
        let (host, port) = match domain.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !host.starts_with(['-', '.']);
        if !host_ok {
            return Err(invalid());
        }
        (host, port)
    };
    if port.is_some_and(|p| p.is_empty() || p.parse::<u16>().is_err()) {
        return Err(invalid());
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    let scheme = if loopback { "http" } else { "https" };
    Ok(Endpoint {
        base: format!("{scheme}://{domain}"),
        loopback,
    })
}

/// Parses a `WWW-Authenticate` header into the challenge to answer.
fn parse_challenge(header: &str) -> Option<Challenge> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_grammar_accepts_reference_paths() {
        for ok in [
            "app", "team/app", "a/b/c", "my-app", "my--app", "a.b", "a_b", "a__b", "0x/9",
        ] {
            assert!(validate_repository(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn repository_grammar_refuses_hostile_strings() {
        let long = "a".repeat(256);
        for bad in [
            "", "..", "a/../b", "a/./b", "a?b", "a#b", "a%2fb", "A", "a//b", "/a", "a/", "a b",
            "a___b", "-a", "a-", "a.", "a:b", "a@b", "a\\b", "a\nb", &long,
        ] {
            assert!(validate_repository(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_registries_use_http_and_others_https() {
        let cases = [
            ("localhost:5000", "http://localhost:5000"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("127.1.2.3", "http://127.1.2.3"),
            ("[::1]:5000", "http://[::1]:5000"),
            ("registry.example.com", "https://registry.example.com"),
            ("10.0.0.1:5000", "https://10.0.0.1:5000"),
            ("docker.io", "https://registry-1.docker.io"),
            ("localhost.evil.com", "https://localhost.evil.com"),
        ];
        for (domain, base) in cases {
            assert_eq!(
                endpoint(domain).map(|e| e.base).ok().as_deref(),
                Some(base),
                "{domain}"
            );
        }
    }

    #[test]
    fn malformed_domains_are_refused() {
        for bad in [
            "",
            "a/b",
            "user@host",
            "host:port",
            "host:99999",
            "[zz]:1",
            "h?x",
            "h#x",
            ":5000",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

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
    }

    /// A registry that answers with a Bearer challenge and a token endpoint
    /// that accepts `user:pass`; serves `n` requests, one per connection.
    fn bearer_registry(n: usize) -> std::io::Result<String> {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let realm = format!("http://{addr}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let Ok(mut stream) = stream else { return };
                let mut head = Vec::new();
                let mut reader = BufReader::new(&mut stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_string());
                }
                let target = head.first().and_then(|l| l.split(' ').nth(1)).unwrap_or("");
                let auth = head
                    .iter()
                    .find_map(|h| {
                        h.strip_prefix("Authorization: ")
                            .or(h.strip_prefix("authorization: "))
                    })
                    .unwrap_or("");
                let good_basic = format!("Basic {}", BASE64.encode("user:pass"));
                let (status, extra, body) = if target.starts_with("/token?") {
                    if auth == good_basic && target.contains("scope=repository") {
                        ("200 OK", String::new(), r#"{"token":"tok"}"#)
                    } else {
                        ("401 Unauthorized", String::new(), "{}")
                    }
                } else if auth != "Bearer tok" {
                    let challenge = format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:x:pull\"\r\n"
                    );
                    ("401 Unauthorized", challenge, "{}")
                } else if target == "/v2/team/app/tags/list" {
                    (
                        "200 OK",
                        String::new(),
                        r#"{"name":"team/app","tags":["1"]}"#,
                    )
                } else {
                    (
                        "404 Not Found",
                        String::new(),
                        r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#,
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Ok(addr)
    }

    #[test]
    fn bearer_challenge_is_answered_with_a_token_fetched_with_the_credentials()
    -> std::io::Result<()> {
        let creds = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        let timeout = Duration::from_secs(5);
        let api = RegistryApi::new();
        let addr = bearer_registry(3)?;
        assert!(matches!(
            api.repository_exists(&addr, "team/app", Some(&creds), timeout),
            Ok(true)
        ));
        let addr = bearer_registry(3)?;
        assert!(matches!(
            api.repository_exists(&addr, "team/absent", Some(&creds), timeout),
            Ok(false)
        ));
        let wrong = Credentials {
            username: "user".into(),
            password: "nope".into(),
        };
        let addr = bearer_registry(2)?;
        let result = api.repository_exists(&addr, "team/app", Some(&wrong), timeout);
        assert!(
            matches!(result, Err(RegistryApiError::Auth { .. })),
            "{result:?}"
        );
        Ok(())
    }
}
