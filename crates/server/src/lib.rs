//! `flavorbox serve`: the application layer over HTTP/JSON for many
//! tenants. Every handler authenticates its caller, then calls the same
//! [`flavorbox_app`] operations the CLI calls; the server adds what sharing
//! needs: tokens, quotas and admission, encrypted secrets, egress refusal,
//! push jobs from uploaded tarballs, metrics and an OpenAPI document.
//!
//! - [`config`]: the operator's file and flags, checked into an [`AppConfig`].
//! - [`connections`]: the accept loop, per-connection time bounds, the
//!   connection cap and the bounded drain at shutdown.
//! - [`auth`]: bearer tokens (tenants, admin).
//! - [`throttle`]: the bound on failed authentications per source address.
//! - [`error`]: the JSON error body and status of every failure.
//! - [`handlers`]: one function per endpoint, each documented for OpenAPI.
//! - [`jobs`]: uploads and the background push jobs.
//! - [`workers`]: the push workers, shared fairly between tenants.
//! - [`metrics`]: `/metrics` and the request middleware.
//! - [`openapi`]: the document served at `/openapi.json`.
//! - [`sweep`]: what killed pushes leave behind, and the periodic sweep.
//!
//! See `docs/server.md` for the operator's view.

mod audit;
pub mod auth;
pub mod config;
mod connections;
pub mod error;
mod handlers;
mod jobs;
mod metrics;
pub mod openapi;
mod shared_uploads;
mod sweep;
mod throttle;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

use flavorbox_app::App;
use secrecy::ExposeSecret as _;

pub use self::config::ServeOptions;

/// Largest JSON request body.
const MAX_JSON_BYTES: usize = 1 << 20;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) app: Arc<App>,
    pub(crate) admin: Arc<auth::OperatorToken>,
    /// Set: `/metrics` requires it.
    pub(crate) metrics_token: Option<Arc<auth::OperatorToken>>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) jobs: Arc<jobs::Jobs>,
    /// Failed authentications per source address.
    pub(crate) throttle: Arc<throttle::AuthThrottle>,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) options: Arc<ServeOptions>,
}

/// The router with every endpoint.
pub(crate) fn router(state: AppState) -> Router {
    use handlers as h;
    Router::new()
        .route("/v1/tenants", post(h::create_tenant))
        .route(
            "/v1/tenants/{name}",
            axum::routing::delete(h::delete_tenant),
        )
        .route("/v1/flavors", get(h::list_flavors).post(h::post_flavor))
        .route(
            "/v1/flavors/{name}",
            put(h::put_flavor)
                .get(h::get_flavor)
                .delete(h::delete_flavor),
        )
        .route("/v1/secrets", get(h::list_secrets))
        .route(
            "/v1/secrets/{name}",
            put(h::put_secret).delete(h::delete_secret),
        )
        .route("/v1/registries", get(h::list_registries))
        .route(
            "/v1/registries/{name}",
            put(h::put_registry)
                .patch(h::patch_registry)
                .get(h::get_registry)
                .delete(h::delete_registry),
        )
        .route("/v1/registries/{name}/check", post(h::check))
        .route("/v1/registries/{name}/push", post(jobs::push))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/audit", get(audit::tenant_audit))
        .route("/v1/admin/audit", get(audit::admin_audit))
        .route("/healthz", get(h::healthz))
        .route("/readyz", get(h::readyz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::document))
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// What the shutdown may take past the drain deadline: dropping what is
/// left, marking unfinished jobs, closing the store.
const AFTER_DRAIN: Duration = Duration::from_secs(5);

/// Runs the server until SIGTERM or SIGINT, then drains: no new
/// connections, `/readyz` answers 503, no new push starts, in-flight
/// requests and running jobs get up to the drain timeout; what is left
/// then is dropped (jobs marked `interrupted`) and the process exits, at
/// most [`AFTER_DRAIN`] after the drain timeout.
pub async fn serve(app: App, options: ServeOptions) -> anyhow::Result<()> {
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.listen))?;
    let local: SocketAddr = listener.local_addr()?;
    let shared = match &options.uploads_store {
        Some(url) => {
            let shared = shared_uploads::SharedUploads::open(url).await?;
            tracing::info!(
                store = shared.url(),
                "uploads are shared: another replica finishes a job whose replica stopped"
            );
            Some(shared)
        }
        None => None,
    };
    let interrupted = app.interrupt_unfinished_jobs().await?;
    if interrupted > 0 {
        tracing::warn!(
            jobs = interrupted,
            "marked the push jobs the last run did not finish as interrupted"
        );
    }
    warn_if_few_descriptors(options.edge.max_connections);
    if options.metrics_token.is_none() {
        tracing::warn!(
            "/metrics has no token: it shows every tenant's activity (requests, errors, sandbox load) to anyone who can reach the server; set `metrics_token_file` in the config or {} to require one",
            config::METRICS_TOKEN_ENV
        );
    }
    let state = AppState {
        admin: Arc::new(auth::OperatorToken::new(
            options.admin_token.expose_secret(),
        )),
        metrics_token: options
            .metrics_token
            .as_ref()
            .map(|token| Arc::new(auth::OperatorToken::new(token.expose_secret()))),
        metrics: Arc::new(metrics::Metrics::new(app.clone())),
        jobs: Arc::new(
            jobs::Jobs::with_limits(
                options.max_running_jobs,
                options.max_running_jobs_per_tenant,
                options.job_timeout,
                app.config().home(),
            )
            .with_shared_uploads(shared),
        ),
        throttle: Arc::new(throttle::AuthThrottle::new(options.auth_failures)),
        ready: Arc::new(AtomicBool::new(false)),
        options: Arc::new(options),
        app,
    };
    // The state's own leftovers went when the App opened; the pushes' go
    // now, before any request can start a new one.
    sweep::at_start(&state.jobs).await;
    sweep::spawn_periodic(state.clone());
    // Built-ins and stored flavors load in the background: the server
    // answers /healthz at once and /readyz once they are in; a stored
    // flavor that fails to load is logged and never stops the others.
    {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = state
                .app
                .tenant(&flavorbox_app::Tenant::local())
                .list_flavors()
                .await
            {
                tracing::error!(error = %e, "the built-in flavors do not load");
            }
            for (tenant, flavor, error) in state.app.preload_flavors().await {
                tracing::warn!(%tenant, %flavor, %error, "a stored flavor does not load; it fails when called");
            }
            if !state.jobs.is_stopping() {
                state.ready.store(true, Ordering::Release);
            }
        });
    }
    tracing::info!(listen = %local, "flavorbox server listening");
    // Scripts and tests read the bound address (with --listen 127.0.0.1:0).
    println!("listening on http://{local}");
    let drain = state.options.drain_timeout;
    let stop = {
        let state = state.clone();
        async move {
            shutdown_signal().await;
            let deadline = tokio::time::Instant::now() + drain;
            state.ready.store(false, Ordering::Release);
            state.jobs.stop();
            tracing::info!(
                timeout = ?drain,
                "shutting down: draining in-flight requests and jobs"
            );
            deadline
        }
    };
    let deadline = connections::serve(
        listener,
        router(state.clone()),
        state.options.edge,
        state.metrics.edge(),
        stop,
    )
    .await;
    let last = deadline + AFTER_DRAIN;
    let jobs = state.jobs.clone();
    let app = state.app.clone();
    let idle = jobs
        .wait_idle(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await;
    if !idle {
        let aborted = jobs
            .abort_all(last.saturating_duration_since(tokio::time::Instant::now()) / 4)
            .await;
        tracing::warn!(
            jobs = aborted,
            timeout = ?drain,
            "push jobs still running at the end of the drain were stopped"
        );
        match tokio::time::timeout_at(last, app.interrupt_unfinished_jobs()).await {
            Ok(Ok(marked)) => {
                tracing::info!(jobs = marked, "marked unfinished push jobs interrupted")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot mark unfinished push jobs interrupted; the next start does")
            }
            Err(_) => tracing::error!(
                "the store did not answer in time; the next start marks unfinished push jobs interrupted"
            ),
        }
    }
    if tokio::time::timeout_at(last, app.close()).await.is_err() {
        tracing::warn!("the store did not close in time");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Warns when the process may not open `max_connections` sockets besides
/// its files.
fn warn_if_few_descriptors(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is handed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let needed = (max_connections as libc::rlim_t).saturating_add(256);
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            max_connections,
            "the open-file limit is below max_connections + 256: raise it (`ulimit -n {needed}`) or lower max_connections, or accepts fail under load"
        );
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Default drain timeout for in-flight requests and push jobs at shutdown.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(60);
