//! Name resolution with a bound on threads and on time.
//!
//! The system resolver (`getaddrinfo`) blocks and cannot be cancelled, and a
//! lookup runs inside a sandbox call that must end at its deadline. A thread
//! per lookup would end the wait, but a hanging resolver would then leave a
//! new thread behind on every call. Instead a small fixed pool of resolver
//! threads, started once per process, takes lookups from a bounded queue:
//! each caller waits only until its own deadline, a full queue fails a lookup
//! at once as unavailable, and the thread count never grows past the pool.
//!
//! The pool is shared between tenants fairly: each tenant's lookups hold a
//! [`LookupShare`] of at most [`TENANT_SHARE`] queued or running lookups,
//! released only when the resolver thread is done with one (not when its
//! caller gives up), so a tenant whose names hang can tie up at most its
//! share of the threads, and waits for its own share, never another's.
//!
//! The [`PinningResolver`] given to ureq applies the egress policy's address
//! filter to what was resolved; ureq connects only to the addresses it
//! returns, so the address that was checked is the address connected to.

use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use super::egress::AddressFilter;

/// Resolver threads in the process-wide pool.
pub const POOL_SIZE: usize = 4;
/// Lookups that may wait for a free resolver thread.
pub const QUEUE_DEPTH: usize = 16;

/// Lookups one tenant may have queued or running at once.
pub const TENANT_SHARE: usize = POOL_SIZE / 2;

/// One tenant's part of the pool: how many of its lookups are queued or
/// running, waited on when the share is full.
#[derive(Debug)]
pub struct LookupShare {
    in_flight: Mutex<usize>,
    freed: std::sync::Condvar,
    max: usize,
}

impl LookupShare {
    /// A share of at most `max` lookups at once.
    pub fn new(max: usize) -> LookupShare {
        LookupShare {
            in_flight: Mutex::new(0),
            freed: std::sync::Condvar::new(),
            max: max.max(1),
        }
    }

    /// The process-wide share of `tenant` (one per tenant name, so every
    /// client of the tenant counts against the same share).
    pub fn of_tenant(tenant: &str) -> Arc<LookupShare> {
        static SHARES: OnceLock<Mutex<std::collections::HashMap<String, Arc<LookupShare>>>> =
            OnceLock::new();
        let mut shares = SHARES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Asked on every tenant request: no allocation once it exists.
        if let Some(share) = shares.get(tenant) {
            return share.clone();
        }
        shares
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(LookupShare::new(TENANT_SHARE)))
            .clone()
    }

    /// Takes a place in the share, waiting no later than `deadline`.
    fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<ShareGuard, ResolveError> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *in_flight >= self.max {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ResolveError::TimedOut);
            }
            in_flight = self
                .freed
                .wait_timeout(in_flight, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *in_flight += 1;
        Ok(ShareGuard(self.clone()))
    }

    /// Lookups of this share queued or running now.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        *self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A place in a [`LookupShare`], given back when the lookup is done with.
struct ShareGuard(Arc<LookupShare>);

impl Drop for ShareGuard {
    fn drop(&mut self) {
        let mut in_flight = self
            .0
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *in_flight = in_flight.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// A blocking lookup of `host:port`, as `ToSocketAddrs` does it.
type LookupFn = dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// Why a lookup produced no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The caller's deadline passed first.
    #[error("name resolution did not finish before the deadline")]
    TimedOut,
    /// Every resolver thread is busy and the queue is full.
    #[error("name resolution is unavailable: every resolver thread is busy")]
    Busy,
}

impl From<ResolveError> for io::Error {
    fn from(e: ResolveError) -> io::Error {
        let kind = match e {
            ResolveError::TimedOut => io::ErrorKind::TimedOut,
            ResolveError::Busy => io::ErrorKind::ResourceBusy,
        };
        io::Error::new(kind, e)
    }
}

/// One queued lookup and where its answer goes.
struct Job {
    netloc: String,
    deadline: Instant,
    reply: SyncSender<io::Result<Vec<SocketAddr>>>,
    /// The tenant's place, held until a thread is done with the job.
    _share: Option<ShareGuard>,
}

/// A fixed set of resolver threads fed by a bounded queue.
pub struct ResolverPool {
    jobs: SyncSender<Job>,
    started: Arc<AtomicUsize>,
}

impl ResolverPool {
    /// The process-wide pool over the system resolver, started on first use.
    pub fn system() -> &'static ResolverPool {
        static POOL: OnceLock<ResolverPool> = OnceLock::new();
        POOL.get_or_init(|| {
            ResolverPool::new(
                POOL_SIZE,
                QUEUE_DEPTH,
                Arc::new(|netloc: &str| {
                    use std::net::ToSocketAddrs;
                    netloc.to_socket_addrs().map(Iterator::collect)
                }),
            )
        })
    }

    /// A pool of `threads` workers running `lookup`, with `queue` waiting slots.
    fn new(threads: usize, queue: usize, lookup: Arc<LookupFn>) -> ResolverPool {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..threads {
            let (rx, lookup, started) = (rx.clone(), lookup.clone(), started.clone());
            // A worker that cannot be spawned leaves a smaller pool; lookups
            // then queue, or fail as busy, instead of failing the process.
            let _ = std::thread::Builder::new()
                .name("flavorbox-resolve".into())
                .spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    work(&rx, &*lookup);
                });
        }
        ResolverPool { jobs, started }
    }

    /// Resolves `netloc` (`host:port`), waiting no later than `deadline`,
    /// within `share` when given.
    pub fn resolve(
        &self,
        netloc: &str,
        deadline: Instant,
        share: Option<&Arc<LookupShare>>,
    ) -> io::Result<Vec<SocketAddr>> {
        let guard = share.map(|s| s.acquire(deadline)).transpose()?;
        let (reply, answer) = sync_channel(1);
        let job = Job {
            netloc: netloc.to_string(),
            deadline,
            reply,
            _share: guard,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                return Err(ResolveError::Busy.into());
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        answer
            .recv_timeout(remaining)
            .unwrap_or_else(|_| Err(ResolveError::TimedOut.into()))
    }

    /// How many worker threads this pool has ever started.
    pub fn threads_started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for ResolverPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolverPool")
            .field("threads_started", &self.threads_started())
            .finish_non_exhaustive()
    }
}

/// A worker: answers queued lookups until the pool is dropped.
fn work(jobs: &Mutex<Receiver<Job>>, lookup: &LookupFn) {
    loop {
        // The lock is held only while waiting for a job, never during a lookup.
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        if Instant::now() >= job.deadline {
            continue; // Its caller has given up already.
        }
        let answer = catch_unwind(AssertUnwindSafe(|| lookup(&job.netloc)))
            .unwrap_or_else(|_| Err(io::Error::other("the system resolver panicked")));
        // The caller may have given up; then the answer is not needed.
        let _ = job.reply.try_send(answer);
    }
}

/// The resolver ureq uses for one request: bounded lookups, then the address filter.
pub struct PinningResolver {
    /// Where names are resolved.
    pub pool: &'static ResolverPool,
    /// The egress policy's address filter.
    pub filter: AddressFilter,
    /// The end of the exchange.
    pub deadline: Instant,
    /// The tenant's share of the pool, if the client has one.
    pub share: Option<Arc<LookupShare>>,
}

impl ureq::Resolver for PinningResolver {
    fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        // ureq passes `host:port`, an IPv6 host in brackets.
        let (host, port) = netloc
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "expected host:port"))?;
        let resolved = match netloc.parse::<SocketAddr>() {
            // An address literal needs no lookup.
            Ok(addr) => vec![addr],
            Err(_) => self
                .pool
                .resolve(netloc, self.deadline, self.share.as_ref())?,
        };
        self.filter
            .check(host, port, resolved)
            .map_err(|denied| io::Error::new(io::ErrorKind::PermissionDenied, denied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::time::Duration;

    /// A gate the blocking lookups wait on, opened at the end of a test.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        changed: Condvar,
    }

    impl Gate {
        fn wait(&self) {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            while !*open {
                open = self
                    .changed
                    .wait(open)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }

        fn open(&self) {
            *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
            self.changed.notify_all();
        }
    }

    #[test]
    fn a_hanging_resolver_never_grows_the_thread_count_past_the_pool() {
        let gate = Arc::new(Gate::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let lookup: Arc<LookupFn> = {
            let (gate, calls) = (gate.clone(), calls.clone());
            Arc::new(move |_: &str| {
                calls.fetch_add(1, Ordering::SeqCst);
                gate.wait();
                Err(io::Error::other("released"))
            })
        };
        let pool = ResolverPool::new(POOL_SIZE, QUEUE_DEPTH, lookup);
        let deadline_in = Duration::from_millis(50);
        let (mut timed_out, mut busy) = (0, 0);
        for i in 0..50 {
            let started = Instant::now();
            let result = pool.resolve(&format!("hang{i}.example:443"), started + deadline_in, None);
            let took = started.elapsed();
            assert!(
                took < deadline_in + Duration::from_secs(1),
                "lookup {i} took {took:?}"
            );
            let error = result.expect_err("a hanging lookup has no answer");
            match error.kind() {
                io::ErrorKind::TimedOut => timed_out += 1,
                io::ErrorKind::ResourceBusy => busy += 1,
                other => panic!("lookup {i}: unexpected {other:?}: {error}"),
            }
        }
        assert_eq!(timed_out + busy, 50);
        assert!(timed_out >= POOL_SIZE, "{timed_out} timed out, {busy} busy");
        assert!(busy > 0, "a full queue fails at once");
        assert!(pool.threads_started() <= POOL_SIZE);
        assert!(calls.load(Ordering::SeqCst) <= POOL_SIZE);
        gate.open();
    }

    #[test]
    fn a_tenant_whose_names_hang_holds_only_its_share_and_another_tenant_resolves() {
        let gate = Arc::new(Gate::default());
        let lookup: Arc<LookupFn> = {
            let gate = gate.clone();
            Arc::new(move |netloc: &str| {
                if netloc.starts_with("hang") {
                    gate.wait();
                }
                Ok(vec!["93.184.216.34:443".parse().unwrap()])
            })
        };
        let pool = ResolverPool::new(POOL_SIZE, QUEUE_DEPTH, lookup);
        let hostile = Arc::new(LookupShare::new(TENANT_SHARE));
        let good = Arc::new(LookupShare::new(TENANT_SHARE));
        // The hostile tenant gives up on each lookup at once and asks
        // again: its abandoned lookups still hold its share.
        for i in 0..40 {
            let _ = pool.resolve(
                &format!("hang{i}.example:443"),
                Instant::now() + Duration::from_millis(5),
                Some(&hostile),
            );
        }
        assert_eq!(hostile.in_flight(), TENANT_SHARE);
        for i in 0..20 {
            let answer = pool
                .resolve(
                    &format!("ok{i}.example:443"),
                    Instant::now() + Duration::from_secs(10),
                    Some(&good),
                )
                .expect("the good tenant's lookups are answered");
            assert_eq!(answer.len(), 1);
        }
        // A thread gives a place back just after it answers.
        let settled = |share: &LookupShare| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while share.in_flight() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            share.in_flight()
        };
        assert_eq!(settled(&good), 0);
        assert_eq!(hostile.in_flight(), TENANT_SHARE, "still hanging");
        gate.open();
        assert_eq!(settled(&hostile), 0, "the share is given back once done");
    }

    #[test]
    fn lookups_are_answered_by_the_pool_and_stale_jobs_are_skipped() {
        let calls = Arc::new(AtomicUsize::new(0));
        let lookup: Arc<LookupFn> = {
            let calls = calls.clone();
            Arc::new(move |netloc: &str| {
                calls.fetch_add(1, Ordering::SeqCst);
                match netloc {
                    "registry.example:443" => Ok(vec![SocketAddr::from(([93, 184, 216, 34], 443))]),
                    _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
                }
            })
        };
        let pool = ResolverPool::new(2, 4, lookup);
        let soon = || Instant::now() + Duration::from_secs(5);
        let found = pool
            .resolve("registry.example:443", soon(), None)
            .expect("resolves");
        assert_eq!(found, vec![SocketAddr::from(([93, 184, 216, 34], 443))]);
        let missing = pool
            .resolve("nowhere.example:443", soon(), None)
            .expect_err("no host");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        // A lookup whose deadline has passed is not sent to the resolver.
        let before = calls.load(Ordering::SeqCst);
        let stale = pool.resolve("registry.example:443", Instant::now(), None);
        assert!(stale.is_err());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(calls.load(Ordering::SeqCst), before);
    }

    #[test]
    fn the_pinning_resolver_filters_what_was_resolved() {
        use ureq::Resolver as _;
        let resolver = PinningResolver {
            pool: ResolverPool::system(),
            filter: AddressFilter::PublicOnly { allow: Vec::new() },
            deadline: Instant::now() + Duration::from_secs(5),
            share: None,
        };
        for literal in ["127.0.0.1:5000", "[::1]:5000", "169.254.169.254:80"] {
            let refused = resolver.resolve(literal).expect_err(literal);
            assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied, "{literal}");
        }
        assert_eq!(
            resolver.resolve("93.184.216.34:443").expect("public"),
            vec![SocketAddr::from(([93, 184, 216, 34], 443))]
        );
        let open = PinningResolver {
            filter: AddressFilter::AllowAll,
            ..resolver
        };
        assert!(open.resolve("127.0.0.1:5000").is_ok());
    }
}
