//! What the hot path reads, kept per process: which tenant a token hash
//! belongs to, and a tenant's registry components and flavors by name. A
//! `check` then costs no database round trip when nothing changed.
//!
//! Invalidation is by generation: every tenant has a counter, bumped after
//! each committed write of its rows (by this process at once; by other
//! replicas through PostgreSQL's `NOTIFY`, sent inside the writing
//! transaction so it arrives only if the write committed). An entry
//! remembers the counters as they were *before* its read, so a write that
//! lands while the read is under way makes the entry stale rather than
//! keeping the old row. A global counter drops everything at once (the
//! notification connection was lost: what was missed is unknown). Entries
//! also expire after [`TTL`], which bounds staleness where no notification
//! can come (another process writing the same SQLite file).
//!
//! Only reads that decide a flavor call use the cache; every read that
//! decides a write (quotas, in-use checks, the flavor digest a component
//! names) goes to the database inside the write's transaction.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an entry is trusted without a notification to say otherwise.
pub const TTL: Duration = Duration::from_secs(5);

/// Most entries of each kind; a full map is emptied (simple, bounded).
const MAX_ENTRIES: usize = 65_536;

/// The generation key of the tenants table itself (no tenant is named ""):
/// token entries are stamped with it.
pub(super) const ACCOUNTS: &str = "";

/// The channel writes notify on (PostgreSQL); the payload is the tenant.
pub(super) const CHANNEL: &str = "flavorbox_changes";

/// The counters an entry was read under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    tenant: u64,
    global: u64,
    /// Whether the cache served reads when the stamp was taken: a read
    /// that began before notifications were trusted is never kept.
    live: bool,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    stamp: Stamp,
    /// Whose counter the entry was stamped with (a tenant, or [`ACCOUNTS`]).
    tenant: String,
    at: Instant,
}

/// A kind of tenant row the cache keeps, by tenant and name.
pub(super) trait Row: Clone + Sized {
    /// Where the cache keeps rows of this kind.
    fn map(cache: &Cache) -> &Map<(String, String), Option<Self>>;
}

impl Row for crate::ComponentRecord {
    fn map(cache: &Cache) -> &Map<(String, String), Option<Self>> {
        &cache.components
    }
}

impl Row for crate::FlavorRecord {
    fn map(cache: &Cache) -> &Map<(String, String), Option<Self>> {
        &cache.flavors
    }
}

/// Generation counters and the cached rows.
#[derive(Debug)]
pub(super) struct Cache {
    generations: Mutex<HashMap<String, u64>>,
    global: AtomicU64,
    /// False while a shared database's notifications cannot be trusted
    /// (before LISTEN, after a lost connection): every read goes through.
    live: AtomicBool,
    tokens: Map<String, String>,
    components: Map<(String, String), Option<crate::ComponentRecord>>,
    flavors: Map<(String, String), Option<crate::FlavorRecord>>,
}

#[derive(Debug)]
pub(super) struct Map<K, V>(Mutex<HashMap<K, Entry<V>>>);

impl<K: Hash + Eq, V: Clone> Map<K, V> {
    fn new() -> Self {
        Map(Mutex::new(HashMap::new()))
    }

    fn get(&self, cache: &Cache, key: &K) -> Option<V> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(key)?;
        (entry.at.elapsed() < TTL && cache.stamp(&entry.tenant) == entry.stamp)
            .then(|| entry.value.clone())
    }

    fn put(&self, key: K, tenant: &str, stamp: Stamp, value: V) {
        if !stamp.live {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                value,
                stamp,
                tenant: tenant.to_owned(),
                at: Instant::now(),
            },
        );
    }
}

impl Cache {
    /// A cache; `live` says whether it may serve reads from the start
    /// (SQLite: yes; PostgreSQL: once its listener is in place).
    pub(super) fn new(live: bool) -> Cache {
        Cache {
            generations: Mutex::new(HashMap::new()),
            global: AtomicU64::new(0),
            live: AtomicBool::new(live),
            tokens: Map::new(),
            components: Map::new(),
            flavors: Map::new(),
        }
    }

    /// The counters for `tenant` now.
    pub(super) fn stamp(&self, tenant: &str) -> Stamp {
        // The global counter is read first: a drop of everything that
        // lands between the two reads makes the stamp stale, never fresh.
        let live = self.is_live();
        let global = self.global.load(Ordering::Acquire);
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        Stamp {
            tenant: generations.get(tenant).copied().unwrap_or(0),
            global,
            live,
        }
    }

    /// A committed write of `tenant`'s rows: its entries are stale.
    pub(super) fn changed(&self, tenant: &str) {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        *generations.entry(tenant.to_owned()).or_insert(0) += 1;
    }

    /// Everything is stale (notifications may have been missed).
    pub(super) fn drop_all(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether reads may be served from the cache.
    pub(super) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Serving from the cache starts (`true`) or stops (`false`, and all
    /// that was kept is dropped).
    pub(super) fn set_live(&self, live: bool) {
        // Either way what was kept, or read meanwhile, is of no use.
        self.drop_all();
        self.live.store(live, Ordering::Release);
    }

    pub(super) fn token(&self, token_sha256: &str) -> Option<String> {
        if !self.is_live() {
            return None;
        }
        self.tokens.get(self, &token_sha256.to_owned())
    }

    /// Keeps `tenant` for the token, read under `before` (the accounts'
    /// counters, [`ACCOUNTS`], taken before the read: the tenant was not
    /// known yet, and creating or deleting any tenant bumps them).
    pub(super) fn keep_token(&self, token_sha256: &str, tenant: &str, before: Stamp) {
        // Kept only if the cache was live when `before` was taken.
        self.tokens
            .put(token_sha256.to_owned(), ACCOUNTS, before, tenant.to_owned());
    }

    /// The tenant's row `name` of kind `V` through the cache: `read` (the
    /// database) only on a miss, its answer kept under the counters taken
    /// before it ran, so a write that lands meanwhile leaves it stale.
    pub(super) async fn tenant_row<V, F, Fut>(
        &self,
        tenant: &str,
        name: &str,
        read: F,
    ) -> Result<Option<V>, crate::StoreError>
    where
        V: Row,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, crate::StoreError>>,
    {
        let key = (tenant.to_owned(), name.to_owned());
        if self.is_live()
            && let Some(found) = V::map(self).get(self, &key)
        {
            return Ok(found);
        }
        let before = self.stamp(tenant);
        let found = read().await?;
        V::map(self).put(key, tenant, before, found.clone());
        Ok(found)
    }
}

/// Keeps `cache` in step with the writes of every replica: LISTENs on
/// [`CHANNEL`] with a connection of its own, and serves reads only while
/// that connection is up. A lost connection stops serving (everything kept
/// is dropped) until a new one listens again. Runs until aborted.
pub(super) async fn listen(url: String, cache: std::sync::Arc<Cache>) {
    use sqlx::postgres::PgListener;
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other replicas' writes; reading through to the database");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        cache.set_live(true);
        // `None` or an error: the connection is gone.
        while let Ok(Some(notification)) = listener.try_recv().await {
            cache.changed(notification.payload());
        }
        cache.set_live(false);
        tracing::warn!("lost the connection that hears other replicas' writes; reconnecting");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
