//! The push workers, shared between tenants. A global FIFO let one tenant
//! with many queued pushes hold every worker while another tenant's single
//! push waited behind all of them; here each tenant has its own queue, and
//! a free worker goes to the tenant with a queued job that runs the fewest
//! jobs now (ties: the one served longest ago, then the one that has waited
//! longest). A tenant
//! never runs more than its share of the workers at once, so with two or
//! more workers some are always left for the others, even while one tenant
//! fills its share with pushes that run to their deadline.
//!
//! The rule lives in [`Dispatch`], plain data with no I/O; [`Workers`] wraps
//! it for tasks that wait for their turn.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A tenant's share of `workers` when the operator sets none: half of
/// them, at least one. With two or more workers at least half (rounded up)
/// are always left to the other tenants.
pub(crate) fn default_share(workers: usize) -> usize {
    (workers / 2).max(1)
}

/// Which queued job gets the next free worker: the state of the queues and
/// of the workers, and the rule.
#[derive(Debug)]
struct Dispatch {
    /// Workers in all.
    workers: usize,
    /// Workers one tenant may hold at once.
    share: usize,
    /// Workers held (running or given and not yet taken).
    busy: usize,
    /// The next ticket; tickets count up, so a smaller one waited longer.
    next: u64,
    /// How many workers have been given, ever: when each tenant last got one.
    given: u64,
    /// Workers each tenant holds (tenants holding none are absent).
    running: HashMap<String, usize>,
    /// Each tenant's waiting tickets, oldest first (no empty queue).
    queued: HashMap<String, VecDeque<u64>>,
    /// When each tenant with jobs queued or running last got a worker.
    served: HashMap<String, u64>,
    /// Tickets given a worker that their task has not taken yet.
    granted: HashSet<u64>,
}

impl Dispatch {
    fn new(workers: usize, share: usize) -> Dispatch {
        let workers = workers.max(1);
        Dispatch {
            workers,
            share: share.clamp(1, workers),
            busy: 0,
            next: 0,
            given: 0,
            running: HashMap::new(),
            queued: HashMap::new(),
            served: HashMap::new(),
            granted: HashSet::new(),
        }
    }

    fn running_of(&self, tenant: &str) -> usize {
        self.running.get(tenant).copied().unwrap_or(0)
    }

    /// Queues a job of `tenant`; its ticket.
    fn enqueue(&mut self, tenant: &str) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.queued
            .entry(tenant.to_string())
            .or_default()
            .push_back(ticket);
        ticket
    }

    /// The tenant whose job gets the next free worker: of those with a job
    /// waiting and below their share, the one running fewest; then the one
    /// served longest ago (never first); then the one waiting longest.
    fn next_tenant(&self) -> Option<String> {
        self.queued
            .iter()
            .filter_map(|(tenant, queue)| {
                let running = self.running_of(tenant);
                let oldest = *queue.front()?;
                (running < self.share).then(|| {
                    let key = (running, self.served.get(tenant).copied(), oldest);
                    (key, tenant)
                })
            })
            .min()
            .map(|(_, tenant)| tenant.clone())
    }

    /// Gives free workers to waiting tickets, by the rule; whether any
    /// was given.
    fn dispatch(&mut self) -> bool {
        let mut any = false;
        while self.busy < self.workers {
            let Some(tenant) = self.next_tenant() else {
                break;
            };
            let Some(queue) = self.queued.get_mut(&tenant) else {
                break;
            };
            let Some(ticket) = queue.pop_front() else {
                self.queued.remove(&tenant);
                continue;
            };
            if queue.is_empty() {
                self.queued.remove(&tenant);
            }
            self.busy += 1;
            self.given += 1;
            self.served.insert(tenant.clone(), self.given);
            *self.running.entry(tenant).or_default() += 1;
            self.granted.insert(ticket);
            any = true;
        }
        any
    }

    /// Whether `ticket` was given a worker; it is taken if so.
    fn take(&mut self, ticket: u64) -> bool {
        self.granted.remove(&ticket)
    }

    /// A worker `tenant` held is free again.
    fn release(&mut self, tenant: &str) {
        self.busy = self.busy.saturating_sub(1);
        if let Some(running) = self.running.get_mut(tenant) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                self.running.remove(tenant);
            }
        }
        self.forget_if_idle(tenant);
    }

    /// `tenant`'s `ticket` no longer wants a worker (its task ended): out
    /// of the queue, or its worker given back if it had one.
    fn cancel(&mut self, tenant: &str, ticket: u64) {
        if self.granted.remove(&ticket) {
            self.release(tenant);
            return;
        }
        if let Some(queue) = self.queued.get_mut(tenant) {
            queue.retain(|&t| t != ticket);
            if queue.is_empty() {
                self.queued.remove(tenant);
            }
        }
        self.forget_if_idle(tenant);
    }

    /// Keeps nothing of a tenant with no job queued or running.
    fn forget_if_idle(&mut self, tenant: &str) {
        if !self.running.contains_key(tenant) && !self.queued.contains_key(tenant) {
            self.served.remove(tenant);
        }
    }

    /// Tickets waiting.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.queued.values().map(VecDeque::len).sum()
    }
}

/// The workers, taken in each tenant's turn.
pub(crate) struct Workers {
    dispatch: Mutex<Dispatch>,
    given: Notify,
}

impl Workers {
    /// `workers` in all, at most `share` of them for one tenant at once.
    pub(crate) fn new(workers: usize, share: usize) -> Workers {
        Workers {
            dispatch: Mutex::new(Dispatch::new(workers, share)),
            given: Notify::new(),
        }
    }

    /// Jobs waiting for a worker.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting()
    }

    /// Waits for a worker for one job of `tenant`, in its turn. Dropping the
    /// future leaves the queue (or gives back a worker it was just given).
    pub(crate) async fn take(self: &Arc<Self>, tenant: &str) -> Worker {
        let mut waiting = {
            let mut dispatch = self.lock();
            let ticket = dispatch.enqueue(tenant);
            let given = dispatch.dispatch();
            drop(dispatch);
            if given {
                self.given.notify_waiters();
            }
            Waiting {
                workers: self.clone(),
                tenant: tenant.to_string(),
                ticket: Some(ticket),
            }
        };
        loop {
            let notified = self.given.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check: a grant in between still wakes it.
            notified.as_mut().enable();
            if let Some(ticket) = waiting.ticket
                && self.lock().take(ticket)
            {
                waiting.ticket = None;
                return Worker {
                    workers: self.clone(),
                    tenant: waiting.tenant.clone(),
                };
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Dispatch> {
        self.dispatch.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `change`, then gives what it freed to the next in turn.
    fn redispatch(&self, change: impl FnOnce(&mut Dispatch)) {
        let mut dispatch = self.lock();
        change(&mut dispatch);
        let given = dispatch.dispatch();
        drop(dispatch);
        if given {
            self.given.notify_waiters();
        }
    }
}

/// A task waiting for its turn; dropped early, it leaves the queue.
struct Waiting {
    workers: Arc<Workers>,
    tenant: String,
    /// Set until the worker is taken.
    ticket: Option<u64>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.workers.redispatch(|d| d.cancel(&self.tenant, ticket));
        }
    }
}

/// One worker held by one of a tenant's jobs; dropping it frees it for the
/// next in turn.
pub(crate) struct Worker {
    workers: Arc<Workers>,
    tenant: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.workers.redispatch(|d| d.release(&self.tenant));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Gives what is free; the tenants of the tickets given, in order.
    fn given(d: &mut Dispatch, tickets: &HashMap<u64, &'static str>) -> Vec<&'static str> {
        let before = d.granted.clone();
        d.dispatch();
        let mut new: Vec<u64> = d.granted.difference(&before).copied().collect();
        new.sort_unstable();
        new.iter().map(|t| tickets[t]).collect()
    }

    #[test]
    fn the_default_share_leaves_half_the_workers_to_the_others() {
        for (workers, share) in [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (8, 4)] {
            assert_eq!(default_share(workers), share, "{workers} workers");
        }
    }

    #[test]
    fn a_tenant_with_twenty_queued_jobs_delays_anothers_single_job_by_at_most_one_per_worker() {
        // A share as large as the pool: only the turn protects `b`.
        let mut d = Dispatch::new(2, 2);
        let mut tickets = HashMap::new();
        for _ in 0..20 {
            tickets.insert(d.enqueue("a"), "a");
        }
        assert_eq!(given(&mut d, &tickets), ["a", "a"], "both workers busy");
        let b = d.enqueue("b");
        tickets.insert(b, "b");
        assert_eq!(
            given(&mut d, &tickets),
            Vec::<&str>::new(),
            "no worker free"
        );
        // The first `a` job to end hands its worker to `b`, not to `a`'s
        // eighteen others.
        d.take(0);
        d.release("a");
        assert_eq!(given(&mut d, &tickets), ["b"]);
        assert!(d.take(b));
        d.release("a");
        assert_eq!(given(&mut d, &tickets), ["a"]);
        assert_eq!(d.waiting(), 17);
    }

    #[test]
    fn a_tenant_never_holds_more_than_its_share_and_the_rest_starts_another_tenant_at_once() {
        let mut d = Dispatch::new(4, 2);
        let mut tickets = HashMap::new();
        for _ in 0..10 {
            tickets.insert(d.enqueue("a"), "a");
        }
        assert_eq!(given(&mut d, &tickets), ["a", "a"], "two workers stay free");
        tickets.insert(d.enqueue("b"), "b");
        tickets.insert(d.enqueue("c"), "c");
        assert_eq!(given(&mut d, &tickets), ["b", "c"], "at once");
        assert_eq!((d.busy, d.running_of("a")), (4, 2));
        tickets.insert(d.enqueue("b"), "b");
        d.release("c");
        assert_eq!(
            given(&mut d, &tickets),
            ["b"],
            "`a` is at its share: the free worker goes to `b`"
        );
    }

    #[test]
    fn of_the_tenants_waiting_the_one_running_fewest_goes_first_then_the_one_served_longest_ago() {
        let mut d = Dispatch::new(3, 3);
        let mut tickets = HashMap::new();
        for tenant in ["a", "a", "b"] {
            tickets.insert(d.enqueue(tenant), tenant);
        }
        assert_eq!(given(&mut d, &tickets), ["a", "a", "b"]);
        for tenant in ["a", "c", "b"] {
            tickets.insert(d.enqueue(tenant), tenant);
        }
        d.release("a");
        assert_eq!(given(&mut d, &tickets), ["c"], "`c` runs nothing yet");
        d.release("c");
        assert_eq!(
            given(&mut d, &tickets),
            ["b"],
            "`a` and `b` run one each: `b` was served longer ago, though `a` queued first"
        );
        d.release("b");
        assert_eq!(given(&mut d, &tickets), ["a"]);
        assert_eq!(d.waiting(), 0);
    }

    #[test]
    fn a_cancelled_ticket_leaves_the_queue_or_gives_its_worker_back() {
        let mut d = Dispatch::new(1, 1);
        let first = d.enqueue("a");
        let second = d.enqueue("a");
        let other = d.enqueue("b");
        assert!(d.dispatch());
        d.cancel("a", second);
        assert_eq!(d.waiting(), 1);
        d.cancel("a", first);
        assert_eq!(d.busy, 0, "granted and never taken: given back");
        assert!(d.dispatch());
        assert!(d.take(other));
        assert!(d.queued.is_empty());
        d.release("b");
        assert!(
            d.running.is_empty() && d.served.is_empty(),
            "nothing kept for tenants gone"
        );
    }

    #[tokio::test]
    async fn waiting_tasks_get_workers_in_turn_and_an_abandoned_wait_frees_its_place() {
        let workers = Arc::new(Workers::new(1, 1));
        let first = workers.take("a").await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for tenant in ["a", "a", "a", "b"] {
            let (pool, tx) = (workers.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let worker = pool.take(tenant).await;
                tx.send(tenant).unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(worker);
            }));
            // Queued in this order.
            tokio::time::timeout(Duration::from_secs(5), async {
                while workers.waiting() < tasks.len() {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("queued");
        }
        // An abandoned wait: its place goes, nothing is held.
        let abandoned = {
            let workers = workers.clone();
            tokio::spawn(async move { workers.take("c").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        abandoned.abort();
        let _ = abandoned.await;
        assert_eq!(workers.waiting(), 4);
        drop(first);
        let mut order = Vec::new();
        for _ in 0..4 {
            let tenant = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("every job gets a worker")
                .unwrap();
            order.push(tenant);
        }
        assert_eq!(order, ["b", "a", "a", "a"], "`b` goes before `a`'s queue");
        for task in tasks {
            task.await.unwrap();
        }
        let d = workers.lock();
        assert_eq!((d.busy, d.waiting()), (0, 0));
    }
}
