//! The one HTTP client the host uses to talk to registries.
//!
//! Every request the host makes (a flavor's registry API call, a Bearer
//! token fetch, an OCI pull, a server push's blob and manifest uploads, any
//! redirect and any upload `Location`) goes through [`Exchange::request`],
//! so the egress policy is applied in one place: names are resolved by the
//! bounded pool and filtered before ureq connects (to exactly the addresses
//! that passed), no proxy is taken from the environment, redirects are
//! followed here under the policy's rule and never carry credentials, and
//! each request ends by the exchange deadline. On a server (a policy that
//! allows public addresses only) a failed connection is reported without
//! the transport's detail, so an error text never tells an open internal
//! port from a closed one.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

use super::RegistryApiError;
use super::egress::{AddressFilter, EgressDenied, EgressPolicy, RedirectRefused};
use super::resolver::{LookupShare, PinningResolver, ResolverPool};

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("flavorbox/", env!("CARGO_PKG_VERSION"));

/// A registry HTTP client bound to one egress policy.
#[derive(Debug)]
pub(crate) struct RegistryClient {
    policy: EgressPolicy,
    pool: &'static ResolverPool,
}

impl RegistryClient {
    /// A client that applies `policy` to every request, resolving with the process-wide pool.
    pub(crate) fn new(policy: EgressPolicy) -> RegistryClient {
        RegistryClient {
            policy,
            pool: ResolverPool::system(),
        }
    }

    /// The resolver pool lookups go to.
    pub(crate) fn pool(&self) -> &'static ResolverPool {
        self.pool
    }

    /// The policy this client applies.
    pub(crate) fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Starts an exchange with registry `domain` that ends within `timeout`
    /// or the policy's exchange limit, whichever is shorter.
    /// Its lookups count against `share`, the tenant's part of the resolver
    /// pool, when given.
    pub(crate) fn exchange<'a>(
        &'a self,
        domain: &str,
        timeout: Duration,
        share: Option<&Arc<LookupShare>>,
    ) -> Exchange<'a> {
        let limit = self.policy.timeouts.exchange;
        let bound = if timeout <= limit {
            Bound::Caller(timeout)
        } else {
            Bound::Policy(limit)
        };
        Exchange {
            client: self,
            domain: domain.to_string(),
            deadline: Instant::now() + timeout.min(limit),
            bound,
            share: share.cloned(),
        }
    }

    /// Starts a transfer with registry `domain` (a push or a pull of
    /// blobs): not held to the policy's exchange limit but to `timeout`,
    /// and each read or write of the connection to that limit, so a
    /// stalled registry ends it early.
    pub(crate) fn transfer<'a>(
        &'a self,
        domain: &str,
        timeout: Duration,
        share: Option<&Arc<LookupShare>>,
    ) -> Exchange<'a> {
        Exchange {
            client: self,
            domain: domain.to_string(),
            deadline: Instant::now() + timeout,
            bound: Bound::Caller(timeout),
            share: share.cloned(),
        }
    }
}

/// A request's body.
pub(crate) enum Body<'b> {
    /// None.
    Empty,
    /// These bytes.
    Bytes(&'b [u8]),
    /// Read as it is sent: with a `Content-Length` when `length` is known,
    /// chunked otherwise.
    Stream {
        /// The bytes.
        reader: &'b mut dyn Read,
        /// Their number, if known.
        length: Option<u64>,
    },
}

/// Which redirects a GET follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// The policy's rule (same origin for an API call or a token).
    Policy,
    /// Also to another origin, never from https to http (a blob download
    /// a registry hands to its storage or CDN); each hop's addresses still
    /// pass the policy's filter, and no hop carries credentials.
    Download,
}

/// What sets an exchange's deadline.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The caller's timeout (a sandbox call's deadline).
    Caller(Duration),
    /// The egress policy's exchange limit, shorter than the caller's timeout.
    Policy(Duration),
}

/// One bounded exchange with a registry: its requests share a deadline.
pub(crate) struct Exchange<'a> {
    client: &'a RegistryClient,
    domain: String,
    deadline: Instant,
    bound: Bound,
    /// The tenant's share of the resolver pool, if any.
    share: Option<Arc<LookupShare>>,
}

impl Exchange<'_> {
    /// A GET of `url` (then of each redirect the policy follows, without
    /// `authorization`); any HTTP status is an `Ok` response.
    pub(crate) fn get(
        &self,
        url: Url,
        authorization: Option<&str>,
    ) -> Result<ureq::Response, RegistryApiError> {
        self.get_following(url, authorization, &[], Follow::Policy)
    }

    /// A GET with extra `headers`, following redirects as `follow` says
    /// (each hop checked, none carrying `authorization`).
    pub(crate) fn get_following(
        &self,
        url: Url,
        authorization: Option<&str>,
        headers: &[(&str, &str)],
        follow: Follow,
    ) -> Result<ureq::Response, RegistryApiError> {
        let mut url = url;
        let mut authorization = authorization;
        let mut hop = 0;
        loop {
            let response = self.request("GET", &url, authorization, headers, Body::Empty)?;
            if !(300..400).contains(&response.status()) {
                return Ok(response);
            }
            let Some(location) = response.header("location") else {
                return Ok(response);
            };
            hop += 1;
            url = self.check_hop(&url, location, hop, follow)?;
            // Credentials are never carried across a redirect.
            authorization = None;
        }
    }

    /// Where `location` (a redirect or an upload location, as the registry
    /// sent it) leads from `from`, if the policy lets it be followed: hop
    /// number `hop` (1 for the first) under `follow`'s rule. The addresses
    /// it resolves to are checked when it is connected to.
    pub(crate) fn check_hop(
        &self,
        from: &Url,
        location: &str,
        hop: u32,
        follow: Follow,
    ) -> Result<Url, RegistryApiError> {
        let next = from
            .join(location)
            .map_err(|_| self.protocol("a redirect to an invalid location"))?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(self.refused(format!(
                "a redirect to a {} URL is not followed",
                next.scheme()
            )));
        }
        let rule = self.client.policy.redirects;
        let checked = match (rule.check(from, &next, hop), follow) {
            (Err(RedirectRefused::OtherOrigin { .. }), Follow::Download) => {
                if from.scheme() == "https" && next.scheme() != "https" {
                    Err(RedirectRefused::OtherOrigin {
                        from: from.origin().ascii_serialization(),
                        to: next.origin().ascii_serialization(),
                    })
                } else {
                    Ok(())
                }
            }
            (checked, _) => checked,
        };
        checked.map_err(|refused| self.refused(refused.to_string()))?;
        Ok(next)
    }

    /// One request, no redirects followed; any HTTP status is an `Ok` response.
    pub(crate) fn request(
        &self,
        method: &str,
        url: &Url,
        authorization: Option<&str>,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<ureq::Response, RegistryApiError> {
        let remaining = self.remaining()?;
        let policy = &self.client.policy;
        let stall = policy.timeouts.exchange.min(remaining);
        // One agent per request: ureq's connect timeout is counted from the
        // start of the connect, so it is capped by what is left of the deadline.
        let agent = ureq::AgentBuilder::new()
            .user_agent(USER_AGENT)
            // Redirects are followed by `get`, under the egress rule.
            .redirects(0)
            // A proxy would connect to addresses the filter never saw.
            .try_proxy_from_env(false)
            // No pooled connection outlives the request it was checked for.
            .max_idle_connections(0)
            .timeout_connect(policy.timeouts.connect.min(remaining))
            .timeout_read(stall)
            .timeout_write(stall)
            .resolver(PinningResolver {
                pool: self.client.pool,
                filter: policy.addresses.clone(),
                deadline: self.deadline,
                share: self.share.clone(),
            })
            .build();
        // ureq's request timeout bounds connect, write and read together.
        let mut request = agent.request_url(method, url).timeout(remaining);
        if let Some(value) = authorization {
            request = request.set("Authorization", value);
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let sent = match body {
            Body::Empty => request.call(),
            Body::Bytes(bytes) => request.send_bytes(bytes),
            Body::Stream { reader, length } => {
                if let Some(length) = length {
                    request = request.set("Content-Length", &length.to_string());
                }
                request.send(reader)
            }
        };
        match sent {
            Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(response),
            Err(ureq::Error::Transport(t)) => Err(self.transport(&t)),
        }
    }

    /// Reads at most `max` bytes of a response body within the deadline.
    pub(crate) fn read_body(
        &self,
        response: ureq::Response,
        max: u64,
    ) -> Result<Vec<u8>, RegistryApiError> {
        let mut body = Vec::new();
        response
            .into_reader()
            .take(max)
            .read_to_end(&mut body)
            .map_err(|e| {
                if is_timeout_kind(e.kind()) {
                    self.timed_out()
                } else {
                    self.protocol(&format!("reading the response: {e}"))
                }
            })?;
        Ok(body)
    }

    /// Classifies a transport failure: refused by policy, deadline, or unreachable.
    fn transport(&self, t: &ureq::Transport) -> RegistryApiError {
        if let Some(denied) = find_io_source::<EgressDenied>(t) {
            return self.refused(denied.to_string());
        }
        if Instant::now() >= self.deadline {
            return self.timed_out();
        }
        // A connect that timed out before the deadline hit the policy's connect timeout.
        if t.kind() != ureq::ErrorKind::ConnectionFailed && is_timeout(t) {
            return self.timed_out();
        }
        let message = match self.client.policy.addresses {
            AddressFilter::AllowAll => t.to_string(),
            // What the transport says (refused, reset, no route) would
            // tell a tenant which internal ports are open.
            AddressFilter::PublicOnly { .. } => "the registry could not be reached".to_string(),
        };
        RegistryApiError::Unreachable {
            domain: self.domain.clone(),
            message,
        }
    }

    /// Time left before the deadline, or the deadline's error.
    fn remaining(&self) -> Result<Duration, RegistryApiError> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.timed_out())
    }

    /// The error for an exchange that reached its deadline.
    pub(crate) fn timed_out(&self) -> RegistryApiError {
        let domain = self.domain.to_string();
        match self.bound {
            Bound::Caller(timeout) => RegistryApiError::TimedOut { domain, timeout },
            Bound::Policy(limit) => RegistryApiError::ExchangeLimit { domain, limit },
        }
    }

    /// The error for credentials the registry (or its token service) refused.
    pub(crate) fn auth(&self, message: &str) -> RegistryApiError {
        RegistryApiError::Auth {
            domain: self.domain.to_string(),
            message: message.to_string(),
        }
    }

    /// The error for an answer the registry API does not allow.
    pub(crate) fn protocol(&self, message: &str) -> RegistryApiError {
        RegistryApiError::Protocol {
            domain: self.domain.to_string(),
            message: message.to_string(),
        }
    }

    /// The error for a request the egress policy refused.
    fn refused(&self, reason: String) -> RegistryApiError {
        RegistryApiError::Refused {
            domain: self.domain.to_string(),
            reason,
        }
    }
}

/// The first `T` in an error's source chain, looking inside `io::Error`s
/// (whose `source` skips the error they wrap).
fn find_io_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<T>())
        {
            return Some(inner);
        }
        next = e.source();
    }
    None
}

/// Whether an I/O error kind means a timeout.
fn is_timeout_kind(kind: std::io::ErrorKind) -> bool {
    matches!(
        kind,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// Whether a transport error is a timeout.
fn is_timeout(error: &ureq::Transport) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && is_timeout_kind(io.kind())
        {
            return true;
        }
        source = e.source();
    }
    error.to_string().contains("timed out")
}
