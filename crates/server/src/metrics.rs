//! `/metrics` in the Prometheus text format, and the middleware that gives
//! every request an id, a log span (tenant, flavor, request id) and its
//! place in the counters and latency histograms.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing::Instrument;

use super::AppState;
use super::auth::MetricsReader;
use flavorbox_app::{App, ErrorCode};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

/// The registry and the metrics the middleware updates.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    errors: Family<CodeLabels, Counter>,
    edge: super::connections::EdgeMetrics,
}

/// Reads the application's own gauges and counters at scrape time.
struct AppCollector(Arc<App>);

impl std::fmt::Debug for AppCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppCollector")
    }
}

impl Collector for AppCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let admission = self.0.admission();
        let stats = admission.stats();
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64| {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "flavorbox_sandbox_calls_running",
            "Sandbox calls running now",
            to_i64(admission.running()),
        )?;
        gauge(
            &mut encoder,
            "flavorbox_sandbox_calls_queued",
            "Sandbox calls waiting for a slot",
            to_i64(admission.queued()),
        )?;
        gauge(
            &mut encoder,
            "flavorbox_sandbox_slots",
            "Sandbox calls that may run at once",
            to_i64(admission.bounds().max_concurrent),
        )?;
        gauge(
            &mut encoder,
            "flavorbox_loaded_flavors",
            "Flavors loaded in memory",
            to_i64(self.0.loaded_flavors()),
        )?;
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64| {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        counter(
            &mut encoder,
            "flavorbox_sandbox_calls_admitted",
            "Sandbox calls admitted",
            stats.admitted.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "flavorbox_sandbox_cpu_microseconds",
            "CPU time used by sandbox calls, in microseconds",
            stats.cpu_micros.load(Ordering::Relaxed),
        )?;
        let mut rejections = encoder.encode_descriptor(
            "flavorbox_quota_rejections",
            "Sandbox calls refused, by reason",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (reason, value) in [
            ("cpu_budget", stats.rejected_cpu.load(Ordering::Relaxed)),
            (
                "tenant_concurrency",
                stats.rejected_tenant_busy.load(Ordering::Relaxed),
            ),
            (
                "overloaded",
                stats.rejected_overloaded.load(Ordering::Relaxed),
            ),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(rejections.encode_family(&labels)?)?;
        }
        // Compiles of uploads: a lane of their own (app::quota).
        let compiles = admission.compile_stats();
        gauge(
            &mut encoder,
            "flavorbox_compiles_running",
            "Compiles of uploaded flavors running now",
            to_i64(admission.running_of(flavorbox_app::quota::Work::Compile)),
        )?;
        gauge(
            &mut encoder,
            "flavorbox_compile_slots",
            "Compiles that may run at once",
            to_i64(admission.compile_bounds().max_concurrent),
        )?;
        counter(
            &mut encoder,
            "flavorbox_compiles_admitted",
            "Compiles of uploaded flavors admitted",
            compiles.admitted.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "flavorbox_compile_cpu_microseconds",
            "CPU time used by compiles of uploaded flavors, in microseconds",
            compiles.cpu_micros.load(Ordering::Relaxed),
        )?;
        let mut compile_rejections = encoder.encode_descriptor(
            "flavorbox_compile_rejections",
            "Compiles refused, by reason",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (reason, value) in [
            ("cpu_budget", compiles.rejected_cpu.load(Ordering::Relaxed)),
            (
                "tenant_concurrency",
                compiles.rejected_tenant_busy.load(Ordering::Relaxed),
            ),
            (
                "overloaded",
                compiles.rejected_overloaded.load(Ordering::Relaxed),
            ),
        ] {
            let labels = [("reason", reason)];
            ConstCounter::new(value).encode(compile_rejections.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub(crate) fn new(app: Arc<App>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ])
        });
        let errors = Family::<CodeLabels, Counter>::default();
        registry.register(
            "flavorbox_http_requests",
            "HTTP requests, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "flavorbox_http_request_duration_seconds",
            "HTTP request latency, by method and route",
            latency.clone(),
        );
        registry.register(
            "flavorbox_errors",
            "Error responses, by error code",
            errors.clone(),
        );
        let edge = super::connections::EdgeMetrics::default();
        registry.register(
            "flavorbox_http_connections",
            "HTTP connections open now",
            edge.open.clone(),
        );
        registry.register(
            "flavorbox_http_connections_refused",
            "HTTP connections refused past max_connections",
            edge.refused.clone(),
        );
        registry.register(
            "flavorbox_http_connections_stalled",
            "HTTP connections closed for sending nothing in time, by phase (headers, idle)",
            edge.stalled.clone(),
        );
        // Which replica this is and what it was configured with: replicas
        // of one deployment must show one fingerprint.
        registry.register(
            "flavorbox_config",
            "This process's replica name and the fingerprint of its configuration",
            prometheus_client::metrics::info::Info::new(vec![
                ("replica".to_string(), app.replica().to_string()),
                ("fingerprint".to_string(), app.config().fingerprint()),
            ]),
        );
        registry.register_collector(Box::new(AppCollector(app)));
        Metrics {
            registry,
            requests,
            latency,
            errors,
            edge,
        }
    }

    /// The edge's counters, for the accept loop.
    pub(crate) fn edge(&self) -> super::connections::EdgeMetrics {
        self.edge.clone()
    }
}

/// `GET /metrics`: open, or with the operator's metrics token when one is set.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("metrics" = [])),
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "The server requires its metrics token and the request did not bear it", body = super::error::ErrorBody),
    ))]
pub(crate) async fn render(State(state): State<AppState>, _reader: MetricsReader) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.metrics.registry) {
        return super::error::ApiError::internal(e).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The id of a request, as its `x-request-id` answer header shows it.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// Request id, span, counters, latency.
pub(crate) async fn track(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let request_id = flavorbox_app::new_job_id().unwrap_or_default();
    // For the audit trail: the handlers' tenant carries it.
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        tenant = tracing::field::Empty,
        flavor = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    let _enter = span.enter();
    tracing::info!(
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels { method, route })
        .observe(elapsed.as_secs_f64());
    if status >= 400 {
        let code = response
            .extensions()
            .get::<ErrorCode>()
            .map_or_else(|| status.to_string(), |c| c.as_str().to_string());
        state
            .metrics
            .errors
            .get_or_create(&CodeLabels { code })
            .inc();
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
