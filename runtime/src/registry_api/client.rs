//! The one HTTP client the host uses to talk to registries.
//!
//! Every request the host makes on a flavor's behalf (the registry API call,
//! the Bearer token fetch, any redirect) goes through [`Exchange::get`], so
//! the egress policy is applied in one place: names are resolved by the
//! bounded pool and filtered before ureq connects (to exactly the addresses
//! that passed), redirects are followed here under the policy's rule and
//! never carry credentials, and each request ends by the exchange deadline.

use std::io::Read;
use std::time::{Duration, Instant};

use url::Url;

use super::RegistryApiError;
use super::egress::{EgressDenied, EgressPolicy};
use super::resolver::{PinningResolver, ResolverPool};

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

    /// The policy this client applies.
    pub(crate) fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// Starts an exchange with registry `domain` that ends within `timeout`
    /// or the policy's exchange limit, whichever is shorter.
    pub(crate) fn exchange<'a>(&'a self, domain: &'a str, timeout: Duration) -> Exchange<'a> {
        let limit = self.policy.timeouts.exchange;
        let bound = if timeout <= limit {
            Bound::Caller(timeout)
        } else {
            Bound::Policy(limit)
        };
        Exchange {
            client: self,
            domain,
            deadline: Instant::now() + timeout.min(limit),
            bound,
        }
    }
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
    domain: &'a str,
    deadline: Instant,
    bound: Bound,
}

impl Exchange<'_> {
    /// A GET of `url` (then of each redirect the policy follows, without
    /// `authorization`); any HTTP status is an `Ok` response.
    pub(crate) fn get(
        &self,
        url: Url,
        authorization: Option<&str>,
    ) -> Result<ureq::Response, RegistryApiError> {
        let mut url = url;
        let mut authorization = authorization;
        let mut hop = 0;
        loop {
            let response = self.send(&url, authorization)?;
            if !(300..400).contains(&response.status()) {
                return Ok(response);
            }
            let Some(location) = response.header("location") else {
                return Ok(response);
            };
            let next = url
                .join(location)
                .map_err(|_| self.protocol("a redirect to an invalid location"))?;
            hop += 1;
            self.client
                .policy
                .redirects
                .check(&url, &next, hop)
                .map_err(|refused| self.refused(refused.to_string()))?;
            url = next;
            // Credentials are never carried across a redirect.
            authorization = None;
        }
    }

    /// One request, no redirects followed.
    fn send(
        &self,
        url: &Url,
        authorization: Option<&str>,
    ) -> Result<ureq::Response, RegistryApiError> {
        let remaining = self.remaining()?;
        let policy = &self.client.policy;
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
            .resolver(PinningResolver {
                pool: self.client.pool,
                filter: policy.addresses.clone(),
                deadline: self.deadline,
            })
            .build();
        // ureq's request timeout bounds connect, write and read together.
        let mut request = agent.request_url("GET", url).timeout(remaining);
        if let Some(value) = authorization {
            request = request.set("Authorization", value);
        }
        match request.call() {
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
        RegistryApiError::Unreachable {
            domain: self.domain.to_string(),
            message: t.to_string(),
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
