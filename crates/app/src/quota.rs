//! What one tenant may use, and the admission of sandbox work: a bounded
//! number of calls run at once (the sandbox's pool is sized from the same
//! number), each tenant within its own share and CPU-time budget, and a
//! bounded queue in front. Past a bound a call is refused at once (429 for
//! the tenant's own quota, 503 when the server is full), never queued
//! without end.
//!
//! Compiles of tenants' uploads are admitted the same way, in a lane of
//! their own (a compile holds a core for seconds where a call holds it for
//! milliseconds): a few at once server-wide, one at a time per tenant with
//! a short line behind it, and their CPU time charged to the same per-tenant
//! budget as calls (a compile runs on one thread, so the thread's CPU clock
//! is the whole of it). A tenant that spent its budget compiling has none
//! left for calls that minute, and the other way round.
//!
//! Admission state is per process: with several replicas each enforces the
//! bounds for its own share of the work. Row counts (flavors, components)
//! are enforced by the store, inside its transactions, for every replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppError;
use flavorbox_sandbox::Limits;
use flavorbox_store::RowQuota;

/// Length of the window a tenant's CPU-time budget is counted over.
pub const CPU_WINDOW: Duration = Duration::from_secs(60);

/// What one tenant may use. `None` means no bound of the tenant's own (the
/// server-wide bounds still apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantQuota {
    /// Most registered flavors.
    pub max_flavors: Option<u64>,
    /// Most registry components.
    pub max_components: Option<u64>,
    /// Largest flavor component, in bytes (at most the server's cap).
    pub max_component_bytes: Option<usize>,
    /// Fuel per call (else the server's limit).
    pub fuel: Option<u64>,
    /// Deadline per call (else the server's limit).
    pub timeout: Option<Duration>,
    /// Memory per call, in bytes (else the server's limit).
    pub memory_bytes: Option<usize>,
    /// Sandbox calls of this tenant running at once.
    pub max_concurrent_calls: Option<usize>,
    /// Sandbox calls of this tenant waiting for a slot.
    pub max_queued_calls: Option<usize>,
    /// CPU time this tenant's sandbox calls and compiles may use per minute.
    pub cpu_per_minute: Option<Duration>,
    /// Compiles of this tenant waiting behind its one running compile.
    pub max_queued_compiles: Option<usize>,
    /// Largest image upload (`docker save` tarball), in bytes.
    pub max_upload_bytes: Option<u64>,
    /// Uploads being received or held by queued and running push jobs.
    pub max_uploads_in_flight: Option<usize>,
    /// Bytes those uploads may hold on disk together.
    pub max_upload_disk_bytes: Option<u64>,
    /// Push jobs queued or running at once.
    pub max_jobs: Option<u64>,
    /// Most secrets.
    pub max_secrets: Option<u64>,
    /// Most bytes a tenant's secrets hold in all.
    pub max_secret_bytes: Option<u64>,
}

impl TenantQuota {
    /// No bounds of the tenant's own: the local CLI's user.
    pub fn unlimited() -> TenantQuota {
        TenantQuota {
            max_flavors: None,
            max_components: None,
            max_component_bytes: None,
            fuel: None,
            timeout: None,
            memory_bytes: None,
            max_concurrent_calls: None,
            max_queued_calls: None,
            cpu_per_minute: None,
            max_queued_compiles: None,
            max_upload_bytes: None,
            max_uploads_in_flight: None,
            max_upload_disk_bytes: None,
            max_jobs: None,
            max_secrets: None,
            max_secret_bytes: None,
        }
    }

    /// The limits of one of this tenant's calls: `server`'s, with each one
    /// this quota sets (fuel, timeout, memory) in its place. The quota's
    /// value replaces the server's, it does not narrow it: an operator may
    /// give a tenant more than the default as well as less, and
    /// [`AppConfigBuilder::build`](crate::AppConfigBuilder::build) checks
    /// every tenant's result against the sandbox's ceilings.
    pub fn call_limits(&self, server: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(server.fuel),
            timeout: self.timeout.unwrap_or(server.timeout),
            memory_bytes: self.memory_bytes.unwrap_or(server.memory_bytes),
            ..server.clone()
        }
    }

    /// The row counts the store enforces.
    pub fn rows(&self) -> RowQuota {
        RowQuota {
            max_flavors: self.max_flavors,
            max_components: self.max_components,
            max_secrets: self.max_secrets,
            max_secret_bytes: self.max_secret_bytes,
        }
    }
}

/// Compiles one tenant may have running at once: a compile holds a core
/// for as long as it takes, and a tenant's uploads are compiled one by one.
pub const COMPILES_PER_TENANT: usize = 1;

/// Server-wide bounds on one kind of sandbox work: calls, or compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBounds {
    /// Running at once (for calls, the sandbox's instance pool has this many slots).
    pub max_concurrent: usize,
    /// Waiting for a slot; past it, 503.
    pub max_queued: usize,
    /// How long one may wait for a slot before it is refused with 503.
    pub max_wait: Duration,
}

impl CallBounds {
    /// The default bounds on compiles: half the cores at once (at least
    /// one), so compiles never hold every core calls need.
    pub fn compiles() -> CallBounds {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CallBounds {
            max_concurrent: (cores / 2).max(1),
            max_queued: 16,
            max_wait: Duration::from_secs(30),
        }
    }
}

impl Default for CallBounds {
    fn default() -> Self {
        CallBounds {
            max_concurrent: 16,
            max_queued: 256,
            max_wait: Duration::from_secs(10),
        }
    }
}

/// Counters `/metrics` reads, one set per kind of work.
#[derive(Debug, Default)]
pub struct AdmissionStats {
    /// Admitted.
    pub admitted: AtomicU64,
    /// Refused: the tenant's concurrency or queue share was full.
    pub rejected_tenant_busy: AtomicU64,
    /// Refused: the tenant's CPU budget for the minute was spent.
    pub rejected_cpu: AtomicU64,
    /// Refused: the server's queue was full or the wait for a
    /// server-wide slot too long.
    pub rejected_overloaded: AtomicU64,
    /// CPU time charged, in microseconds.
    pub cpu_micros: AtomicU64,
}

/// What a slot is admitted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A sandbox call (or a load that needs no compile).
    Call,
    /// A compile of a tenant's upload.
    Compile,
}

impl Work {
    fn plural(self) -> &'static str {
        match self {
            Work::Call => "flavor calls",
            Work::Compile => "compiles",
        }
    }

    /// A tenant's own share of this kind of work under `quota`: how many
    /// may run at once, and how many may wait behind them (`None`: no
    /// bound of its own).
    fn tenant_share(self, quota: &TenantQuota) -> (usize, Option<usize>) {
        match self {
            Work::Call => (
                quota.max_concurrent_calls.unwrap_or(Semaphore::MAX_PERMITS),
                quota.max_queued_calls,
            ),
            Work::Compile => (COMPILES_PER_TENANT, quota.max_queued_compiles),
        }
    }
}

/// The server-wide slots and line of one kind of work.
#[derive(Debug)]
struct Lane {
    bounds: CallBounds,
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    stats: AdmissionStats,
}

impl Lane {
    fn new(bounds: CallBounds) -> Lane {
        Lane {
            bounds,
            slots: Arc::new(Semaphore::new(bounds.max_concurrent.max(1))),
            queued: AtomicUsize::new(0),
            stats: AdmissionStats::default(),
        }
    }

    /// A place in the server-wide queue, left when the guard drops; the
    /// server is full (503) when the queue is.
    fn join_queue(&self) -> Result<Waiting<'_>, AppError> {
        let ahead = self.queued.fetch_add(1, Ordering::AcqRel);
        let place = Waiting(&self.queued);
        if ahead >= self.bounds.max_queued {
            return Err(self.overloaded());
        }
        Ok(place)
    }

    /// The refusal of work the server has no room for (503), counted.
    fn overloaded(&self) -> AppError {
        self.stats
            .rejected_overloaded
            .fetch_add(1, Ordering::Relaxed);
        AppError::Busy {
            retry_after_secs: 1,
        }
    }
}

/// A tenant's own slots and line for one kind of work.
#[derive(Debug)]
struct Share {
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Share {
    fn new(running: usize) -> Share {
        Share {
            running: Arc::new(Semaphore::new(running.clamp(1, Semaphore::MAX_PERMITS))),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// One tenant's share of the sandbox.
#[derive(Debug)]
struct TenantGate {
    calls: Share,
    compiles: Share,
    /// The CPU time its calls and compiles used together.
    cpu: Mutex<CpuWindow>,
}

/// CPU time used since the start of the current [`CPU_WINDOW`].
#[derive(Debug)]
struct CpuWindow {
    start: Instant,
    used: Duration,
    /// Used here and not yet reported to the other replicas (a shared
    /// database only; see [`Admission::take_cpu_reports`]).
    unreported: Duration,
}

impl CpuWindow {
    fn new() -> CpuWindow {
        CpuWindow {
            start: Instant::now(),
            used: Duration::ZERO,
            unreported: Duration::ZERO,
        }
    }

    /// Starts a new window when the current one has ended; whether it did.
    fn turn(&mut self) -> bool {
        let ended = self.start.elapsed() >= CPU_WINDOW;
        if ended {
            // What was not reported yet still counts for the other replicas.
            let unreported = self.unreported;
            *self = CpuWindow::new();
            self.unreported = unreported;
        }
        ended
    }
}

impl TenantGate {
    fn share(&self, work: Work) -> &Share {
        match work {
            Work::Call => &self.calls,
            Work::Compile => &self.compiles,
        }
    }
}

/// Admission of sandbox calls and compiles.
#[derive(Debug)]
pub struct Admission {
    calls: Arc<Lane>,
    compiles: Arc<Lane>,
    tenants: Mutex<HashMap<String, Arc<TenantGate>>>,
    /// CPU time the other replicas of a shared database used per tenant in
    /// the current minute, as last heard (at most a second old); empty on
    /// a server of its own.
    elsewhere: Mutex<HashMap<String, Duration>>,
}

/// A running call's or compile's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct CallPermit {
    _slot: OwnedSemaphorePermit,
    _tenant: Option<OwnedSemaphorePermit>,
    gate: Arc<TenantGate>,
    lane: Arc<Lane>,
}

impl CallPermit {
    /// Charges the finished work's CPU time to its tenant (and to the
    /// counters of its kind of work).
    pub fn charge(&self, cpu: Duration) {
        self.lane.stats.cpu_micros.fetch_add(
            u64::try_from(cpu.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let mut window = self.gate.cpu.lock().unwrap_or_else(|e| e.into_inner());
        window.turn();
        window.used += cpu;
        window.unreported += cpu;
    }
}

/// Decrements a waiting counter when the wait ends, however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Admission of calls within these bounds, and of compiles within
    /// [`CallBounds::compiles`].
    pub fn new(bounds: CallBounds) -> Admission {
        Admission {
            calls: Arc::new(Lane::new(bounds)),
            compiles: Arc::new(Lane::new(CallBounds::compiles())),
            tenants: Mutex::new(HashMap::new()),
            elsewhere: Mutex::new(HashMap::new()),
        }
    }

    /// The same, with compiles within `bounds`.
    pub fn with_compiles(mut self, bounds: CallBounds) -> Admission {
        self.compiles = Arc::new(Lane::new(bounds));
        self
    }

    fn lane(&self, work: Work) -> &Arc<Lane> {
        match work {
            Work::Call => &self.calls,
            Work::Compile => &self.compiles,
        }
    }

    /// The bounds on calls.
    pub fn bounds(&self) -> CallBounds {
        self.calls.bounds
    }

    /// The bounds on compiles.
    pub fn compile_bounds(&self) -> CallBounds {
        self.compiles.bounds
    }

    /// Calls running now.
    pub fn running(&self) -> usize {
        self.running_of(Work::Call)
    }

    /// Calls waiting now.
    pub fn queued(&self) -> usize {
        self.queued_of(Work::Call)
    }

    /// Work of this kind running now.
    pub fn running_of(&self, work: Work) -> usize {
        let lane = self.lane(work);
        lane.bounds.max_concurrent.max(1) - lane.slots.available_permits()
    }

    /// Work of this kind waiting now.
    pub fn queued_of(&self, work: Work) -> usize {
        self.lane(work).queued.load(Ordering::Acquire)
    }

    /// The counters of calls.
    pub fn stats(&self) -> &AdmissionStats {
        &self.calls.stats
    }

    /// The counters of compiles.
    pub fn compile_stats(&self) -> &AdmissionStats {
        &self.compiles.stats
    }

    /// Takes the CPU time each tenant used here since the last call: what
    /// this replica reports to the others (a shared database).
    pub fn take_cpu_reports(&self) -> Vec<(String, Duration)> {
        let gates: Vec<(String, Arc<TenantGate>)> = self
            .lock()
            .iter()
            .map(|(name, gate)| (name.clone(), gate.clone()))
            .collect();
        gates
            .into_iter()
            .filter_map(|(name, gate)| {
                let mut window = gate.cpu.lock().unwrap_or_else(|e| e.into_inner());
                let used = std::mem::take(&mut window.unreported);
                (!used.is_zero()).then_some((name, used))
            })
            .collect()
    }

    /// Gives back a report that could not be sent, to go with the next.
    pub fn return_cpu_report(&self, tenant: &str, cpu: Duration) {
        if let Some(gate) = self.lock().get(tenant).cloned() {
            let mut window = gate.cpu.lock().unwrap_or_else(|e| e.into_inner());
            window.unreported += cpu;
        }
    }

    /// Sets what the other replicas used per tenant this minute: counted
    /// with this replica's own use against each tenant's CPU budget, which
    /// is so one budget for the whole deployment.
    pub fn set_cpu_elsewhere(&self, used: HashMap<String, Duration>) {
        *self.elsewhere.lock().unwrap_or_else(|e| e.into_inner()) = used;
    }

    /// Forgets a deleted tenant's share.
    pub fn forget(&self, tenant: &str) {
        self.lock().remove(tenant);
    }

    /// What the other replicas used of `tenant`'s CPU budget this minute.
    fn elsewhere(&self, tenant: &str) -> Duration {
        self.elsewhere
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .copied()
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TenantGate>>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn gate(&self, tenant: &str, quota: &TenantQuota) -> Arc<TenantGate> {
        self.lock()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(TenantGate {
                    calls: Share::new(Work::Call.tenant_share(quota).0),
                    compiles: Share::new(Work::Compile.tenant_share(quota).0),
                    cpu: Mutex::new(CpuWindow::new()),
                })
            })
            .clone()
    }

    /// Waits for a slot for one of `tenant`'s calls, within its quota.
    pub async fn admit(&self, tenant: &str, quota: &TenantQuota) -> Result<CallPermit, AppError> {
        self.admit_work(Work::Call, tenant, quota).await
    }

    /// Waits for a slot for one of `tenant`'s compiles, within its quota:
    /// one running per tenant, `max_queued_compiles` waiting, the CPU
    /// budget it shares with its calls.
    pub async fn admit_compile(
        &self,
        tenant: &str,
        quota: &TenantQuota,
    ) -> Result<CallPermit, AppError> {
        self.admit_work(Work::Compile, tenant, quota).await
    }

    /// Refuses at once, as admission would, a compile `tenant` has no room
    /// for: its CPU budget is spent, or its compile and its line are taken.
    /// The server asks before it reads an upload's body, so a tenant at its
    /// bound costs it no transfer or hashing; admission still decides.
    pub fn check_compile_room(&self, tenant: &str, quota: &TenantQuota) -> Result<(), AppError> {
        let lane = self.lane(Work::Compile);
        let gate = self.gate(tenant, quota);
        Self::check_cpu(lane, &gate, quota, self.elsewhere(tenant))?;
        let share = gate.share(Work::Compile);
        let (_, max_waiting) = Work::Compile.tenant_share(quota);
        let line_full = max_waiting.is_some_and(|max| share.waiting.load(Ordering::Acquire) >= max);
        if share.running.available_permits() == 0 && line_full {
            return Err(self.tenant_busy(Work::Compile, quota, false));
        }
        Ok(())
    }

    /// Refuses work of a tenant whose CPU budget for this minute is spent.
    fn check_cpu(
        lane: &Lane,
        gate: &TenantGate,
        quota: &TenantQuota,
        elsewhere: Duration,
    ) -> Result<(), AppError> {
        if let Some(budget) = quota.cpu_per_minute {
            let mut window = gate.cpu.lock().unwrap_or_else(|e| e.into_inner());
            let turned = window.turn();
            let used = if turned { Duration::ZERO } else { window.used };
            if used + elsewhere >= budget {
                lane.stats.rejected_cpu.fetch_add(1, Ordering::Relaxed);
                return Err(AppError::Quota {
                    what: format!(
                        "the CPU time of flavor calls and compiles ({} ms per minute) is spent",
                        budget.as_millis()
                    ),
                    retry_after_secs: CPU_WINDOW
                        .saturating_sub(window.start.elapsed())
                        .as_secs()
                        .max(1),
                });
            }
        }
        Ok(())
    }

    async fn admit_work(
        &self,
        work: Work,
        tenant: &str,
        quota: &TenantQuota,
    ) -> Result<CallPermit, AppError> {
        let lane = self.lane(work);
        let gate = self.gate(tenant, quota);
        Self::check_cpu(lane, &gate, quota, self.elsewhere(tenant))?;
        let share = gate.share(work);
        let (_, max_waiting) = work.tenant_share(quota);
        // The tenant's own share first, so a tenant at its bound waits in
        // its own line and never holds a server-wide slot while it waits.
        // What stops work in that line is the tenant's own doing (its
        // line is full, or its own work held every permit for the whole
        // wait): a quota refusal, 429. Only the server-wide queue being
        // full is the server's: 503.
        let tenant_permit = match share.running.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let ahead = share.waiting.fetch_add(1, Ordering::AcqRel);
                let _waiting = Waiting(&share.waiting);
                if let Some(max_waiting) = max_waiting
                    && ahead >= max_waiting
                {
                    return Err(self.tenant_busy(work, quota, false));
                }
                let _queued = lane.join_queue()?;
                match tokio::time::timeout(
                    lane.bounds.max_wait,
                    share.running.clone().acquire_owned(),
                )
                .await
                {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(lane.overloaded()),
                    Err(_) => {
                        return Err(self.tenant_busy(work, quota, true));
                    }
                }
            }
        };
        let slot = match lane.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let _queued = lane.join_queue()?;
                match tokio::time::timeout(lane.bounds.max_wait, lane.slots.clone().acquire_owned())
                    .await
                {
                    Ok(Ok(slot)) => slot,
                    _ => return Err(lane.overloaded()),
                }
            }
        };
        lane.stats.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(CallPermit {
            _slot: slot,
            _tenant: Some(tenant_permit),
            gate,
            lane: lane.clone(),
        })
    }

    /// The refusal of work stopped in its tenant's own line: `waited`
    /// when it waited the whole `max_wait`, else its line was full.
    fn tenant_busy(&self, work: Work, quota: &TenantQuota, waited: bool) -> AppError {
        let lane = self.lane(work);
        lane.stats
            .rejected_tenant_busy
            .fetch_add(1, Ordering::Relaxed);
        let (running, waiting) = work.tenant_share(quota);
        let what = match (waited, work) {
            (true, Work::Call) => format!(
                "the tenant's own flavor calls held all {running} of its call slots for {} ms while this one waited",
                lane.bounds.max_wait.as_millis()
            ),
            (true, Work::Compile) => format!(
                "the tenant's own compiles held its compile slot for {} ms while this upload waited",
                lane.bounds.max_wait.as_millis()
            ),
            (false, _) => format!(
                "too many {} at once (at most {running} running and {} waiting)",
                work.plural(),
                waiting.unwrap_or(0)
            ),
        };
        AppError::Quota {
            what,
            retry_after_secs: 1,
        }
    }

    /// Charges finished work's CPU time to its tenant.
    pub fn charge(&self, permit: &CallPermit, cpu: Duration) {
        permit.charge(cpu);
    }
}

/// CPU time the calling thread has used.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is
    // supported on every Linux this runs on. On failure `ts` stays zero.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(calls: usize, queued: usize) -> TenantQuota {
        TenantQuota {
            max_concurrent_calls: Some(calls),
            max_queued_calls: Some(queued),
            ..TenantQuota::unlimited()
        }
    }

    #[tokio::test]
    async fn a_tenant_past_its_share_is_refused_and_others_are_not() {
        let admission = Admission::new(CallBounds {
            max_concurrent: 4,
            max_queued: 8,
            max_wait: Duration::from_millis(50),
        });
        let hostile = quota(1, 0);
        let held = admission
            .admit("hostile", &hostile)
            .await
            .expect("first call");
        let refused = admission
            .admit("hostile", &hostile)
            .await
            .expect_err("second call");
        assert!(matches!(refused, AppError::Quota { .. }), "{refused}");
        let good = admission
            .admit("good", &quota(2, 2))
            .await
            .expect("other tenant");
        assert_eq!(admission.running(), 2);
        drop((held, good));
        assert_eq!(admission.running(), 0);
        assert_eq!(admission.queued(), 0);
    }

    #[tokio::test]
    async fn a_full_server_refuses_with_busy_after_the_wait() {
        let admission = Admission::new(CallBounds {
            max_concurrent: 1,
            max_queued: 1,
            max_wait: Duration::from_millis(20),
        });
        let q = quota(4, 4);
        let _held = admission.admit("a", &q).await.expect("slot");
        let waited = admission.admit("b", &q).await.expect_err("no slot");
        assert!(matches!(waited, AppError::Busy { .. }), "{waited}");
        assert_eq!(admission.queued(), 0, "the waiter left the queue");
    }

    #[tokio::test]
    async fn a_tenants_own_full_line_is_a_quota_refusal_and_the_servers_full_queue_is_busy() {
        let admission = Arc::new(Admission::new(CallBounds {
            max_concurrent: 4,
            max_queued: 2,
            max_wait: Duration::from_secs(30),
        }));
        // `small` may have one call running and one waiting.
        let small = quota(1, 1);
        let _running = admission.admit("small", &small).await.expect("first");
        let waiter = {
            let admission = admission.clone();
            let small = small.clone();
            tokio::spawn(async move { admission.admit("small", &small).await.map(drop) })
        };
        while admission.queued() < 1 {
            tokio::task::yield_now().await;
        }
        match admission.admit("small", &small).await {
            Err(e @ AppError::Quota { .. }) => {
                assert_eq!(e.code(), "quota_exceeded");
                assert_eq!(e.retry_after_secs(), Some(1));
            }
            other => panic!("the tenant's own full line is 429, got {other:?}"),
        }
        assert_eq!(
            admission
                .stats()
                .rejected_tenant_busy
                .load(Ordering::Relaxed),
            1
        );

        waiter.abort();

        // `wide` may queue far more than the server does: its two waiters
        // fill the server's queue, and the third call finds the server full
        // while its own line has room.
        let admission = Arc::new(Admission::new(CallBounds {
            max_concurrent: 4,
            max_queued: 2,
            max_wait: Duration::from_secs(30),
        }));
        let wide = quota(1, 100);
        let _wide_running = admission.admit("wide", &wide).await.expect("first");
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let admission = admission.clone();
                let wide = wide.clone();
                tokio::spawn(async move { admission.admit("wide", &wide).await.map(drop) })
            })
            .collect();
        while admission.queued() < 2 {
            tokio::task::yield_now().await;
        }
        match admission.admit("wide", &wide).await {
            Err(e @ AppError::Busy { .. }) => assert_eq!(e.code(), "overloaded"),
            other => panic!("the server's full queue is 503, got {other:?}"),
        }
        assert_eq!(
            admission
                .stats()
                .rejected_overloaded
                .load(Ordering::Relaxed),
            1
        );
        for waiter in waiters {
            waiter.abort();
        }
    }

    #[tokio::test]
    async fn a_call_that_waits_out_its_tenants_own_slots_is_a_quota_refusal() {
        let admission = Admission::new(CallBounds {
            max_concurrent: 4,
            max_queued: 8,
            max_wait: Duration::from_millis(20),
        });
        let q = quota(1, 4);
        let _held = admission.admit("t", &q).await.expect("slot");
        let waited = admission
            .admit("t", &q)
            .await
            .expect_err("its own slot stays taken");
        assert!(matches!(waited, AppError::Quota { .. }), "{waited}");
        assert_eq!(admission.queued(), 0, "the waiter left the queue");
    }

    #[tokio::test]
    async fn spent_cpu_budget_is_refused_until_the_window_turns() {
        let admission = Admission::new(CallBounds::default());
        let q = TenantQuota {
            cpu_per_minute: Some(Duration::from_millis(10)),
            ..TenantQuota::unlimited()
        };
        let permit = admission.admit("t", &q).await.expect("budget left");
        admission.charge(&permit, Duration::from_millis(11));
        drop(permit);
        match admission.admit("t", &q).await {
            Err(AppError::Quota {
                retry_after_secs, ..
            }) => assert!((1..=60).contains(&retry_after_secs)),
            other => panic!("expected a quota refusal, got {other:?}"),
        }
        assert!(admission.admit("other", &q).await.is_ok());
    }

    #[tokio::test]
    async fn cpu_spent_on_other_replicas_counts_against_the_same_budget() {
        let admission = Admission::new(CallBounds::default());
        let q = TenantQuota {
            cpu_per_minute: Some(Duration::from_millis(10)),
            ..TenantQuota::unlimited()
        };
        let permit = admission.admit("t", &q).await.expect("budget left");
        admission.charge(&permit, Duration::from_millis(4));
        drop(permit);
        // What this replica reports, once.
        let reports = admission.take_cpu_reports();
        assert_eq!(reports, vec![("t".to_string(), Duration::from_millis(4))]);
        assert!(admission.take_cpu_reports().is_empty());
        // The others spent the rest: 4 ms here + 6 ms elsewhere is the budget.
        admission.set_cpu_elsewhere(HashMap::from([("t".to_string(), Duration::from_millis(6))]));
        assert!(matches!(
            admission.admit("t", &q).await,
            Err(AppError::Quota { .. })
        ));
        assert!(admission.admit("other", &q).await.is_ok());
        // A report that could not be sent goes with the next.
        admission.return_cpu_report("t", Duration::from_millis(4));
        assert_eq!(
            admission.take_cpu_reports(),
            vec![("t".to_string(), Duration::from_millis(4))]
        );
    }

    fn compiling(queued: usize) -> TenantQuota {
        TenantQuota {
            max_queued_compiles: Some(queued),
            ..TenantQuota::unlimited()
        }
    }

    #[tokio::test]
    async fn a_tenant_compiles_one_at_a_time_beside_its_calls_and_others_compiles() {
        let admission = Admission::new(CallBounds::default()).with_compiles(CallBounds {
            max_concurrent: 2,
            max_queued: 4,
            max_wait: Duration::from_millis(20),
        });
        let q = compiling(0);
        let held = admission
            .admit_compile("hostile", &q)
            .await
            .expect("first compile");
        match admission.admit_compile("hostile", &q).await {
            Err(e @ AppError::Quota { .. }) => {
                assert_eq!(e.code(), "quota_exceeded");
                assert_eq!(e.retry_after_secs(), Some(1));
                assert!(e.to_string().contains("compiles"), "{e}");
            }
            other => panic!("a second compile of the tenant is 429, got {other:?}"),
        }
        let compiles = admission.compile_stats();
        assert_eq!(compiles.rejected_tenant_busy.load(Ordering::Relaxed), 1);
        assert_eq!(
            admission
                .stats()
                .rejected_tenant_busy
                .load(Ordering::Relaxed),
            0,
            "counted as a compile, not a call"
        );

        // Its calls are a line of their own; another tenant compiles beside it.
        let call = admission.admit("hostile", &q).await.expect("a call");
        let good = admission
            .admit_compile("good", &q)
            .await
            .expect("another tenant's compile");
        assert_eq!(admission.running_of(Work::Compile), 2);
        assert_eq!(admission.running(), 1);

        // The server's compile slots are all taken: a third tenant waits
        // out `max_wait`, then 503.
        match admission.admit_compile("third", &q).await {
            Err(e @ AppError::Busy { .. }) => assert_eq!(e.code(), "overloaded"),
            other => panic!("a full server is 503, got {other:?}"),
        }
        assert_eq!(admission.queued_of(Work::Compile), 0);
        drop((held, call, good));
        assert_eq!(admission.running_of(Work::Compile), 0);
        admission
            .admit_compile("hostile", &q)
            .await
            .expect("its slot is free again");
    }

    #[tokio::test]
    async fn a_tenant_without_compile_room_is_refused_before_its_upload_is_read() {
        let admission = Admission::new(CallBounds::default());
        let no_line = TenantQuota {
            max_queued_compiles: Some(0),
            cpu_per_minute: Some(Duration::from_millis(5)),
            ..TenantQuota::unlimited()
        };
        admission
            .check_compile_room("t", &no_line)
            .expect("room while nothing compiles");
        let held = admission
            .admit_compile("t", &no_line)
            .await
            .expect("one compile");
        let refused = admission
            .check_compile_room("t", &no_line)
            .expect_err("its one compile is taken and it has no line");
        assert!(matches!(refused, AppError::Quota { .. }), "{refused}");
        admission
            .check_compile_room("other", &no_line)
            .expect("another tenant has room");
        held.charge(Duration::from_millis(10));
        drop(held);
        let spent = admission
            .check_compile_room("t", &no_line)
            .expect_err("its CPU budget is spent");
        assert!(spent.to_string().contains("CPU time"), "{spent}");
    }

    #[tokio::test]
    async fn a_compile_in_the_tenants_line_runs_when_its_running_one_ends() {
        let admission = Arc::new(
            Admission::new(CallBounds::default()).with_compiles(CallBounds {
                max_concurrent: 4,
                max_queued: 4,
                max_wait: Duration::from_secs(30),
            }),
        );
        let q = compiling(1);
        let held = admission.admit_compile("t", &q).await.expect("first");
        let waiter = {
            let admission = admission.clone();
            let q = q.clone();
            tokio::spawn(async move { admission.admit_compile("t", &q).await.map(drop) })
        };
        while admission.queued_of(Work::Compile) < 1 {
            tokio::task::yield_now().await;
        }
        let full = admission
            .admit_compile("t", &q)
            .await
            .expect_err("the line of one is full");
        assert!(matches!(full, AppError::Quota { .. }), "{full}");
        drop(held);
        waiter
            .await
            .expect("task")
            .expect("the waiting compile is admitted");
    }

    #[tokio::test]
    async fn compile_cpu_spends_the_budget_the_tenants_calls_share() {
        let admission = Admission::new(CallBounds::default());
        let q = TenantQuota {
            cpu_per_minute: Some(Duration::from_millis(10)),
            ..compiling(1)
        };
        let permit = admission.admit_compile("t", &q).await.expect("budget left");
        permit.charge(Duration::from_millis(11));
        drop(permit);
        for refused in [
            admission.admit("t", &q).await.map(drop),
            admission.admit_compile("t", &q).await.map(drop),
        ] {
            match refused {
                Err(e @ AppError::Quota { .. }) => {
                    assert!(e.to_string().contains("compiles"), "{e}")
                }
                other => panic!("expected a quota refusal, got {other:?}"),
            }
        }
        assert_eq!(
            admission.compile_stats().cpu_micros.load(Ordering::Relaxed),
            11_000
        );
        assert_eq!(admission.stats().cpu_micros.load(Ordering::Relaxed), 0);
        assert!(admission.admit_compile("other", &q).await.is_ok());
    }
}
