//! The bound on requests that fail authentication, per source address.
//! Every authenticated endpoint looks a tenant token up in the store, so a
//! client guessing tokens could otherwise keep the database busy for free.
//! Each source address has a token bucket of failures (`auth_failure_burst`,
//! refilled at `auth_failures_per_sec`): a request takes one failure from it
//! before its token is looked at and gives it back once it authenticates, so
//! tenants with valid tokens are never charged, and concurrent guesses
//! cannot overdraw the bucket. Past the bound the answer is 429 at once,
//! with no lookup, except for a token this server verified recently: it
//! still goes through (and is checked against the store as usual), so a
//! tenant behind the same address as an attacker keeps working. A token
//! the server knows sent to the wrong endpoint is no guess and is not
//! charged either (see `auth::refuse`).
//!
//! An IPv6 address counts by its /64 (one subscriber's prefix), an
//! IPv4-mapped one as IPv4. The map holds at most `auth_failure_sources`
//! addresses: when full, addresses whose bucket has refilled go first, then
//! the least limited half, so an attacker with many addresses costs bounded
//! memory (and gets a fresh bucket per address it cycles through: the
//! connection cap and the other bounds still hold).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::AuthFailureLimits;
use super::error::ApiError;
use flavorbox_app::ErrorCode;

/// Token hashes remembered as verified.
const KNOWN_TOKENS: usize = 4096;
/// How long a verified token is remembered as such.
const KNOWN_FOR: Duration = Duration::from_secs(3600);

/// The failure buckets of the source addresses, and the tokens verified
/// recently.
pub(crate) struct AuthThrottle {
    limits: AuthFailureLimits,
    sources: Mutex<HashMap<IpAddr, Bucket>>,
    known: Mutex<HashMap<String, Instant>>,
}

/// One source's failures left (fractional while it refills), as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    left: f64,
    at: Instant,
}

impl Bucket {
    /// The failures left at `now`.
    fn left_at(self, limits: &AuthFailureLimits, now: Instant) -> f64 {
        let refilled =
            now.saturating_duration_since(self.at).as_secs_f64() * f64::from(limits.per_second);
        (self.left + refilled).min(f64::from(limits.burst))
    }
}

/// A request's standing against its source's bound: one failure reserved,
/// the source past its bound, or no source known (nothing to count).
#[must_use]
pub(crate) struct Admission<'a> {
    throttle: &'a AuthThrottle,
    state: Standing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Reserved(IpAddr),
    Limited { retry_after: u64 },
    Uncounted,
}

impl Admission<'_> {
    /// Whether the source is past its bound.
    pub(crate) fn is_limited(&self) -> bool {
        matches!(self.state, Standing::Limited { .. })
    }

    /// The request authenticated (or failed for the server's sake, not
    /// the client's): its failure is given back.
    pub(crate) fn pass(self) {
        if let Standing::Reserved(key) = self.state {
            self.throttle.refund(key);
        }
    }

    /// The request failed to authenticate: 401, its failure spent; 429
    /// when its source was past the bound.
    pub(crate) fn refuse(self) -> ApiError {
        match self.state {
            Standing::Limited { retry_after } => too_many_failures(retry_after),
            Standing::Reserved(_) | Standing::Uncounted => ApiError::unauthorized(),
        }
    }
}

/// The answer past the bound.
pub(crate) fn too_many_failures(retry_after: u64) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        "too many requests with a missing or invalid token came from this address: wait as long as `Retry-After` says, then send a valid `Authorization: Bearer <token>`",
    )
    .with_retry_after(retry_after)
}

/// What a source is counted as: an IPv4 address (IPv4-mapped ones too) as
/// is, an IPv6 address by its /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl AuthThrottle {
    pub(crate) fn new(limits: AuthFailureLimits) -> AuthThrottle {
        AuthThrottle {
            limits,
            sources: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves one failure of `source` (none known: nothing is counted).
    pub(crate) fn admit(&self, source: Option<IpAddr>) -> Admission<'_> {
        let state = match source {
            Some(ip) => self.admit_at(source_key(ip), Instant::now()),
            None => Standing::Uncounted,
        };
        Admission {
            throttle: self,
            state,
        }
    }

    fn admit_at(&self, key: IpAddr, now: Instant) -> Standing {
        let limits = &self.limits;
        let mut sources = lock(&self.sources);
        if !sources.contains_key(&key) && sources.len() >= limits.max_sources {
            make_room(&mut sources, limits, now);
        }
        let bucket = sources.entry(key).or_insert(Bucket {
            left: f64::from(limits.burst),
            at: now,
        });
        let left = bucket.left_at(limits, now);
        if left >= 1.0 {
            *bucket = Bucket {
                left: left - 1.0,
                at: now,
            };
            Standing::Reserved(key)
        } else {
            let wait = (1.0 - left) / f64::from(limits.per_second);
            Standing::Limited {
                retry_after: (wait.ceil() as u64).max(1),
            }
        }
    }

    /// Gives back a failure reserved for `key`.
    fn refund(&self, key: IpAddr) {
        let mut sources = lock(&self.sources);
        if let Some(bucket) = sources.get_mut(&key) {
            let now = Instant::now();
            let left = bucket.left_at(&self.limits, now) + 1.0;
            *bucket = Bucket {
                left: left.min(f64::from(self.limits.burst)),
                at: now,
            };
        }
    }

    /// Whether the token with this hash authenticated here recently.
    pub(crate) fn knows(&self, token_hash: &str) -> bool {
        lock(&self.known)
            .get(token_hash)
            .is_some_and(|at| at.elapsed() < KNOWN_FOR)
    }

    /// The token with this hash authenticated.
    pub(crate) fn remember(&self, token_hash: &str) {
        let now = Instant::now();
        let mut known = lock(&self.known);
        if let Some(at) = known.get_mut(token_hash) {
            *at = now;
            return;
        }
        if known.len() >= KNOWN_TOKENS {
            known.retain(|_, at| now.saturating_duration_since(*at) < KNOWN_FOR);
            if known.len() >= KNOWN_TOKENS {
                known.clear();
            }
        }
        known.insert(token_hash.to_string(), now);
    }

    /// The token with this hash no longer authenticates.
    pub(crate) fn forget(&self, token_hash: &str) {
        lock(&self.known).remove(token_hash);
    }
}

/// Frees room in a full map of sources: the refilled buckets go (they are
/// the same as none), then, if that is not enough, the half with the most
/// failures left.
fn make_room(sources: &mut HashMap<IpAddr, Bucket>, limits: &AuthFailureLimits, now: Instant) {
    let full = f64::from(limits.burst);
    sources.retain(|_, bucket| bucket.left_at(limits, now) < full);
    if sources.len() < limits.max_sources {
        return;
    }
    let mut levels: Vec<(f64, IpAddr)> = sources
        .iter()
        .map(|(key, bucket)| (bucket.left_at(limits, now), *key))
        .collect();
    let keep = limits.max_sources / 2;
    levels.select_nth_unstable_by(keep, |a, b| a.0.total_cmp(&b.0));
    for (_, key) in &levels[keep..] {
        sources.remove(key);
    }
}

/// A std mutex, poisoned or not (every critical section is one map
/// operation or a scan that leaves the map consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn throttle(burst: u32, per_second: u32, max_sources: usize) -> AuthThrottle {
        AuthThrottle::new(AuthFailureLimits {
            burst,
            per_second,
            max_sources,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_burst_then_429_until_the_bucket_refills() {
        let t = throttle(3, 2, 16);
        let key = ip("192.0.2.1");
        let start = Instant::now();
        for n in 0..3 {
            assert_eq!(t.admit_at(key, start), Standing::Reserved(key), "{n}");
        }
        assert_eq!(
            t.admit_at(key, start),
            Standing::Limited { retry_after: 1 },
            "a whole failure refills in half a second: retry after 1 s"
        );
        assert!(
            matches!(t.admit_at(ip("192.0.2.2"), start), Standing::Reserved(_)),
            "another address has its own bucket"
        );
        let later = start + Duration::from_millis(500);
        assert_eq!(t.admit_at(key, later), Standing::Reserved(key));
        assert!(matches!(t.admit_at(key, later), Standing::Limited { .. }));
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(t.admit_at(key, much_later), Standing::Reserved(key));
        }
        assert!(
            matches!(t.admit_at(key, much_later), Standing::Limited { .. }),
            "refilled to the burst, never past it"
        );
    }

    #[test]
    fn the_refusal_is_a_429_in_the_error_format_with_retry_after() {
        let refusal = too_many_failures(1);
        assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.code(), "rate_limited");
        assert!(refusal.message().contains("Retry-After"));
        let response = axum::response::IntoResponse::into_response(refusal);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
    }

    #[test]
    fn authenticated_requests_give_their_failure_back() {
        let t = throttle(2, 1, 16);
        let source = Some(ip("192.0.2.9"));
        for _ in 0..100 {
            let admission = t.admit(source);
            assert!(!admission.is_limited());
            admission.pass();
        }
        assert_eq!(t.admit(source).refuse().code(), "unauthorized");
        assert_eq!(t.admit(source).refuse().code(), "unauthorized");
        let limited = t.admit(source);
        assert!(limited.is_limited());
        let refusal = limited.refuse();
        assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
        let unknown = t.admit(None);
        assert!(!unknown.is_limited(), "no source, nothing counted");
        assert_eq!(unknown.refuse().code(), "unauthorized");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(source_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_key(ip("192.0.2.7")), ip("192.0.2.7"));
        let t = throttle(1, 1, 16);
        let now = Instant::now();
        assert!(matches!(
            t.admit_at(source_key(ip("2001:db8::1")), now),
            Standing::Reserved(_)
        ));
        assert!(
            matches!(
                t.admit_at(source_key(ip("2001:db8::2")), now),
                Standing::Limited { .. }
            ),
            "the same /64"
        );
    }

    #[test]
    fn the_map_of_sources_stays_bounded_and_keeps_the_most_limited() {
        let t = throttle(10, 1, 64);
        let now = Instant::now();
        // One source spent its whole burst.
        let attacker = ip("198.51.100.1");
        for _ in 0..10 {
            t.admit_at(attacker, now);
        }
        for n in 0..10_000u32 {
            let key = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            t.admit_at(key, now);
            assert!(lock(&t.sources).len() <= 64, "bounded at {n}");
        }
        assert!(
            matches!(t.admit_at(attacker, now), Standing::Limited { .. }),
            "the most limited source is kept"
        );
        // A minute on, every bucket has refilled: they go first, and a
        // source limited now stays limited.
        let later = now + Duration::from_secs(60);
        let second = ip("203.0.113.1");
        for _ in 0..10 {
            t.admit_at(second, later);
        }
        for n in 0..100u32 {
            t.admit_at(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + n)), later);
        }
        assert!(matches!(
            t.admit_at(second, later),
            Standing::Limited { .. }
        ));
        assert!(
            !lock(&t.sources).contains_key(&attacker),
            "refilled, so forgotten"
        );
    }

    #[test]
    fn verified_tokens_are_remembered_boundedly_and_forgotten_when_they_fail() {
        let t = throttle(1, 1, 16);
        assert!(!t.knows("h1"));
        t.remember("h1");
        assert!(t.knows("h1"));
        t.forget("h1");
        assert!(!t.knows("h1"));
        for n in 0..(KNOWN_TOKENS + 10) {
            t.remember(&format!("h{n}"));
        }
        assert!(lock(&t.known).len() <= KNOWN_TOKENS);
        assert!(
            t.knows(&format!("h{}", KNOWN_TOKENS + 9)),
            "the newest stays"
        );
    }
}
