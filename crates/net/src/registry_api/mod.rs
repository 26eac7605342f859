//! The few calls of the registry HTTP API v2 the host makes on a flavor's behalf.
//!
//! A flavor may ask, through the `repository-exists` import, whether a
//! repository exists on its own registry. The host answers synchronously from
//! inside a sandbox call, with its own credentials, so every request here is
//! bounded by the caller's deadline (epochs and fuel do not fire while the host
//! waits on the network). The registry and the repository arrive already
//! parsed ([`RegistryUri`], [`RepositoryPath`]): nothing here re-reads a
//! reference grammar.
//!
//! The parts: this file holds the API operations; `client` the one HTTP client
//! (every request, redirect and token fetch goes through it); `egress` the
//! operator's policy that client applies; `resolver` the bounded name
//! resolution; `auth` the answer to a registry's authentication challenge.

mod auth;
mod client;
pub mod egress;
mod resolver;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::credentials::Credentials;
use auth::Challenge;
use client::RegistryClient;
pub use egress::{
    AddressFilter, AllowedHost, EgressConfigError, EgressDenied, EgressPolicy, Endpoint,
    NamespaceDenied, RedirectRule, Timeouts,
};
use flavorbox_grammar::{DEFAULT_DOMAIN, RegistryUri, RepositoryPath, RepositoryPathError};
pub use session::{Access, Manifest, PendingBlob, Session, SessionOptions};

/// Where Docker Hub's registry API lives (`docker.io` is its name in references).
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Why a registry question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum RegistryApiError {
    /// The repository path is not valid on this registry.
    #[error("invalid repository name: {0}")]
    InvalidRepository(#[from] RepositoryPathError),
    /// The repository is outside the registry uri's namespace.
    #[error("repository `{repository}` is outside registry `{registry}`")]
    OutsideRegistry {
        /// The repository asked about.
        repository: String,
        /// The registry uri.
        registry: String,
    },
    /// The registry domain cannot be made into a URL (e.g. a port above 65535).
    #[error("invalid registry domain `{domain}`: expected host[:port]")]
    InvalidDomain {
        /// The domain as given.
        domain: String,
    },
    /// The caller's deadline passed before the registry answered.
    #[error("registry {domain} did not answer within {timeout:?}")]
    TimedOut {
        /// The registry domain.
        domain: String,
        /// The deadline that was hit.
        timeout: Duration,
    },
    /// The egress policy's exchange limit passed before the registry answered.
    #[error("registry {domain} did not answer within the egress policy's limit of {limit:?}")]
    ExchangeLimit {
        /// The registry domain.
        domain: String,
        /// The policy's limit.
        limit: Duration,
    },
    /// The egress policy refused a connection or a redirect.
    #[error("request to registry {domain} refused by the egress policy: {reason}")]
    Refused {
        /// The registry domain.
        domain: String,
        /// What the policy refused.
        reason: String,
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

/// A blocking client for the registry HTTP API v2, bound to one egress policy.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    client: Arc<RegistryClient>,
    /// The tenant's share of the resolver pool, on a server.
    share: Option<Arc<resolver::LookupShare>>,
}

impl Default for RegistryApi {
    fn default() -> Self {
        Self::new(EgressPolicy::default())
    }
}

impl RegistryApi {
    /// A client that applies `policy` to every request; the deadline is given per call.
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            client: Arc::new(RegistryClient::new(policy)),
            share: None,
        }
    }

    /// This client with its name lookups counted against `tenant`'s share
    /// of the resolver pool, so one tenant's hanging names cannot take the
    /// threads every tenant's lookups need.
    pub fn for_tenant(&self, tenant: &str) -> Self {
        Self {
            client: self.client.clone(),
            share: Some(resolver::LookupShare::of_tenant(tenant)),
        }
    }

    /// The egress policy this client applies.
    pub fn policy(&self) -> &EgressPolicy {
        self.client.policy()
    }

    /// Whether an allowlist entry of the policy names `registry`'s host and
    /// port: it is reached through an operator's exception, not as a public
    /// address.
    pub fn allowlisted(&self, registry: &RegistryUri) -> bool {
        Endpoint::of(registry).is_some_and(|e| self.policy().addresses.allowlists(&e))
    }

    /// Refuses `namespace` on `registry` (a repository path, or `None` for
    /// the whole registry) when allowlist entries name the registry but
    /// none covers that path. Pure: nothing is resolved or connected.
    pub fn check_namespace(
        &self,
        registry: &RegistryUri,
        namespace: Option<&str>,
    ) -> Result<(), RegistryApiError> {
        let endpoint = Endpoint::of(registry).ok_or_else(|| RegistryApiError::InvalidDomain {
            domain: registry.domain().to_string(),
        })?;
        let target = match namespace {
            Some(path) => format!("{}/{path}", registry.domain()),
            None => registry.domain().to_string(),
        };
        self.policy()
            .addresses
            .check_namespace(&endpoint, namespace, &target)
            .map_err(|denied| RegistryApiError::Refused {
                domain: registry.domain().to_string(),
                reason: denied.to_string(),
            })
    }

    /// Whether the egress policy lets the host (and the Docker engine, which
    /// pushes there) reach `registry`: its path must be inside an allowlist
    /// entry that names its registry, if any does ([`Self::check_namespace`]),
    /// and its name is resolved with the same bounded resolver and judged by
    /// the same address filter as every request. Says nothing about whether
    /// a registry answers there.
    pub fn check_destination(
        &self,
        registry: &RegistryUri,
        timeout: Duration,
    ) -> Result<(), RegistryApiError> {
        self.check_namespace(registry, registry.path())?;
        let url = api_url(registry, "v2/")?;
        let invalid = || RegistryApiError::InvalidDomain {
            domain: registry.domain().to_string(),
        };
        let host = url.host_str().ok_or_else(invalid)?;
        let port = url.port_or_known_default().ok_or_else(invalid)?;
        let netloc = format!("{host}:{port}");
        let refused = |reason: String| RegistryApiError::Refused {
            domain: registry.domain().to_string(),
            reason,
        };
        let resolved = match netloc.parse::<std::net::SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => {
                self.client.pool().resolve(
                    &netloc,
                    std::time::Instant::now() + timeout,
                    self.share.as_ref(),
                )
            }
            .map_err(|e| refused(format!("cannot resolve {host}: {e}")))?,
        };
        self.policy()
            .addresses
            .check(host, port, resolved)
            .map(drop)
            .map_err(|denied| refused(denied.to_string()))
    }

    /// Whether `repository` exists on `registry`, by GET /v2/<repository>/tags/list.
    ///
    /// 200 is yes and 404 is no; a 401 is answered once with the credentials
    /// (Basic, or a Bearer token fetched from the challenge's realm). The
    /// whole exchange, token included, finishes within `timeout`. Only a
    /// repository inside the uri's namespace is asked about.
    pub fn repository_exists(
        &self,
        registry: &RegistryUri,
        repository: &RepositoryPath,
        credentials: Option<&Credentials>,
        timeout: Duration,
    ) -> Result<bool, RegistryApiError> {
        // Docker Hub's normalisation, idempotent on an already normalised path.
        let repository = registry.repository(repository.as_str())?;
        if !registry.contains_repository(&repository) {
            return Err(RegistryApiError::OutsideRegistry {
                repository: repository.to_string(),
                registry: registry.to_string(),
            });
        }
        self.check_namespace(registry, Some(repository.as_str()))?;
        let exchange = self
            .client
            .exchange(registry.domain(), timeout, self.share.as_ref());
        let url = api_url(registry, &format!("v2/{repository}/tags/list"))?;

        let first = exchange.get(url.clone(), None)?;
        let challenge = match first.status() {
            200 => return Ok(true),
            404 => return Ok(false),
            401 => first
                .header("www-authenticate")
                .and_then(auth::parse_challenge)
                .ok_or_else(|| {
                    exchange.protocol("401 without a usable WWW-Authenticate challenge")
                })?,
            403 => return Err(exchange.auth("403 Forbidden")),
            other => return Err(exchange.protocol(&format!("HTTP {other} for {url}"))),
        };

        let authorization = match challenge {
            Challenge::Basic => {
                let c = credentials.ok_or_else(|| {
                    exchange.auth("the registry requires credentials and none are configured")
                })?;
                auth::basic(c)
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope.unwrap_or_else(|| format!("repository:{repository}:pull"));
                let token = auth::fetch_token(
                    &exchange,
                    &realm,
                    service.as_deref(),
                    &scope,
                    credentials,
                    registry.is_loopback(),
                    url.host_str().unwrap_or_default(),
                )?;
                format!("Bearer {token}")
            }
        };

        let second = exchange.get(url.clone(), Some(&authorization))?;
        match second.status() {
            200 => Ok(true),
            404 => Ok(false),
            401 | 403 => Err(exchange.auth(&format!(
                "HTTP {} {}",
                second.status(),
                if credentials.is_some() {
                    "with the configured credentials"
                } else {
                    "without credentials"
                }
            ))),
            other => Err(exchange.protocol(&format!("HTTP {other} for {url}"))),
        }
    }
}

/// The URL of `path` in a registry's API: plain HTTP on loopback, HTTPS
/// elsewhere, and Docker Hub's API host for `docker.io`.
fn api_url(registry: &RegistryUri, path: &str) -> Result<Url, RegistryApiError> {
    let domain = match registry.domain() {
        DEFAULT_DOMAIN => DOCKER_HUB_API,
        other => other,
    };
    let scheme = if registry.is_loopback() {
        "http"
    } else {
        "https"
    };
    Url::parse(&format!("{scheme}://{domain}/"))
        .and_then(|base| base.join(path))
        .map_err(|_| RegistryApiError::InvalidDomain {
            domain: registry.domain().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    fn uri(s: &str) -> RegistryUri {
        RegistryUri::parse(s).expect("valid uri")
    }

    fn path(s: &str) -> RepositoryPath {
        RepositoryPath::parse(s).expect("valid path")
    }

    #[test]
    fn loopback_registries_use_http_and_others_https() {
        let cases = [
            ("localhost:5000", "http://localhost:5000/v2/"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000/v2/"),
            ("127.1.2.3", "http://127.1.2.3/v2/"),
            ("[::1]:5000", "http://[::1]:5000/v2/"),
            ("registry.example.com", "https://registry.example.com/v2/"),
            ("10.0.0.1:5000", "https://10.0.0.1:5000/v2/"),
            ("docker.io", "https://registry-1.docker.io/v2/"),
            (
                "index.docker.io/library",
                "https://registry-1.docker.io/v2/",
            ),
            ("localhost.evil.com", "https://localhost.evil.com/v2/"),
        ];
        for (domain, want) in cases {
            assert_eq!(
                api_url(&uri(domain), "v2/")
                    .map(String::from)
                    .ok()
                    .as_deref(),
                Some(want),
                "{domain}"
            );
        }
        assert!(matches!(
            api_url(&uri("registry.io:99999"), "v2/"),
            Err(RegistryApiError::InvalidDomain { .. })
        ));
    }

    #[test]
    fn repositories_outside_the_uri_are_not_asked_about() {
        let api = RegistryApi::default();
        let result = api.repository_exists(
            &uri("127.0.0.1:1/team"),
            &path("team-evil/app"),
            None,
            Duration::from_secs(1),
        );
        assert!(
            matches!(result, Err(RegistryApiError::OutsideRegistry { .. })),
            "{result:?}"
        );
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
        let api = RegistryApi::default();
        let addr = bearer_registry(3)?;
        assert!(matches!(
            api.repository_exists(&uri(&addr), &path("team/app"), Some(&creds), timeout),
            Ok(true)
        ));
        let addr = bearer_registry(3)?;
        assert!(matches!(
            api.repository_exists(&uri(&addr), &path("team/absent"), Some(&creds), timeout),
            Ok(false)
        ));
        let wrong = Credentials {
            username: "user".into(),
            password: "nope".into(),
        };
        let addr = bearer_registry(2)?;
        let result = api.repository_exists(&uri(&addr), &path("team/app"), Some(&wrong), timeout);
        assert!(
            matches!(result, Err(RegistryApiError::Auth { .. })),
            "{result:?}"
        );
        Ok(())
    }

    /// Serves `responses` in order, one per connection, and returns the
    /// address and the request lines it saw.
    fn scripted_server(
        responses: Vec<String>,
    ) -> std::io::Result<(String, std::sync::mpsc::Receiver<String>)> {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let (seen, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (stream, response) in listener.incoming().zip(responses) {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(&mut stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let _ = seen.send(head);
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Ok((addr, requests))
    }

    fn answer(status: &str, extra: &str) -> String {
        format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
    }

    #[test]
    fn same_origin_redirects_are_followed_without_credentials() -> std::io::Result<()> {
        let (addr, seen) = scripted_server(vec![
            answer(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"r\"\r\n",
            ),
            answer(
                "307 Temporary Redirect",
                "Location: /v2/team/app/tags/list?moved=1\r\n",
            ),
            answer("200 OK", ""),
        ])?;
        let creds = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        let exists = RegistryApi::default().repository_exists(
            &uri(&addr),
            &path("team/app"),
            Some(&creds),
            Duration::from_secs(5),
        );
        assert!(matches!(exists, Ok(true)), "{exists:?}");
        let requests: Vec<String> = seen.try_iter().collect();
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert!(requests[1].contains("Authorization: Basic"), "{requests:?}");
        assert!(requests[2].starts_with("GET /v2/team/app/tags/list?moved=1 "));
        assert!(
            !requests[2].to_ascii_lowercase().contains("authorization"),
            "credentials carried across a redirect: {requests:?}"
        );
        Ok(())
    }

    #[test]
    fn redirects_to_another_origin_are_refused() -> std::io::Result<()> {
        let (addr, seen) = scripted_server(vec![answer(
            "302 Found",
            "Location: http://127.0.0.2:1/v2/team/app/tags/list\r\n",
        )])?;
        let result = RegistryApi::default().repository_exists(
            &uri(&addr),
            &path("team/app"),
            None,
            Duration::from_secs(5),
        );
        assert!(
            matches!(&result, Err(RegistryApiError::Refused { reason, .. }) if reason.contains("another origin")),
            "{result:?}"
        );
        assert_eq!(seen.try_iter().count(), 1);
        Ok(())
    }

    #[test]
    fn public_only_policy_refuses_a_loopback_registry_unless_allowlisted() -> std::io::Result<()> {
        let (addr, seen) = scripted_server(vec![answer("200 OK", "")])?;
        let strict = RegistryApi::new(EgressPolicy::public_only(Vec::new()));
        let result =
            strict.repository_exists(&uri(&addr), &path("team/app"), None, Duration::from_secs(5));
        assert!(
            matches!(&result, Err(RegistryApiError::Refused { reason, .. }) if reason.contains("loopback")),
            "{result:?}"
        );
        assert_eq!(seen.try_iter().count(), 0, "no connection was made");

        let allow = vec![AllowedHost::parse(&addr).expect("host:port")];
        let allowed = RegistryApi::new(EgressPolicy::public_only(allow));
        let result =
            allowed.repository_exists(&uri(&addr), &path("team/app"), None, Duration::from_secs(5));
        assert!(matches!(result, Ok(true)), "{result:?}");
        Ok(())
    }

    #[test]
    fn a_path_entry_lets_lookups_inside_it_through_and_refuses_the_rest_unconnected()
    -> std::io::Result<()> {
        let (addr, seen) = scripted_server(vec![answer("200 OK", "")])?;
        let allow = vec![AllowedHost::parse(&format!("{addr}/team")).expect("entry")];
        let api = RegistryApi::new(EgressPolicy::public_only(allow));
        let whole = uri(&addr);
        for outside in ["team-evil/app", "other/app"] {
            let result =
                api.repository_exists(&whole, &path(outside), None, Duration::from_secs(5));
            assert!(
                matches!(&result, Err(RegistryApiError::Refused { reason, .. }) if reason.contains("outside the paths allowlisted")),
                "{outside}: {result:?}"
            );
        }
        let result = api.check_destination(&whole, Duration::from_secs(5));
        assert!(
            matches!(&result, Err(RegistryApiError::Refused { .. })),
            "{result:?}"
        );
        assert_eq!(seen.try_iter().count(), 0, "no connection was made");
        assert!(api.allowlisted(&whole));
        assert!(
            api.check_destination(&uri(&format!("{addr}/team/sub")), Duration::from_secs(5))
                .is_ok()
        );
        let result = api.repository_exists(&whole, &path("team/app"), None, Duration::from_secs(5));
        assert!(matches!(result, Ok(true)), "{result:?}");
        Ok(())
    }

    #[test]
    fn the_token_realm_is_held_to_the_same_egress_policy() -> std::io::Result<()> {
        // The registry is allowlisted, its token realm (another loopback port) is not.
        let (realm_addr, realm_seen) = scripted_server(vec![answer("200 OK", "")])?;
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://{realm_addr}/token\",service=\"x\"\r\n"
        );
        let (addr, _) = scripted_server(vec![answer("401 Unauthorized", &challenge)])?;
        let allow = vec![AllowedHost::parse(&addr).expect("host:port")];
        let api = RegistryApi::new(EgressPolicy::public_only(allow));
        let result =
            api.repository_exists(&uri(&addr), &path("team/app"), None, Duration::from_secs(5));
        assert!(
            matches!(&result, Err(RegistryApiError::Refused { .. })),
            "{result:?}"
        );
        assert_eq!(
            realm_seen.try_iter().count(),
            0,
            "the realm was not contacted"
        );
        Ok(())
    }

    #[test]
    fn the_policy_exchange_limit_is_not_the_callers_deadline() -> std::io::Result<()> {
        // Accepts connections but never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let mut policy = EgressPolicy::allow_all();
        policy.timeouts.exchange = Duration::from_millis(200);
        let api = RegistryApi::new(policy);
        let started = std::time::Instant::now();
        let result = api.repository_exists(
            &uri(&addr),
            &path("team/app"),
            None,
            Duration::from_secs(10),
        );
        assert!(
            matches!(result, Err(RegistryApiError::ExchangeLimit { .. })),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let result = api.repository_exists(
            &uri(&addr),
            &path("team/app"),
            None,
            Duration::from_millis(100),
        );
        assert!(
            matches!(result, Err(RegistryApiError::TimedOut { .. })),
            "{result:?}"
        );
        drop(listener);
        Ok(())
    }
}
