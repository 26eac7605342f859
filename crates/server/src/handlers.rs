//! One function per endpoint: authenticate, call the application layer,
//! answer. Each carries its OpenAPI description ([`super::openapi`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Admin, Authenticated, new_token};
use super::error::{ApiError, ErrorBody};
use flavorbox_app::{
    AppError, CheckReport, CheckRequest, ComponentInfo, CreateSecret, ErrorCode, FlavorInfo,
    RegisterComponent, RegisterFromOci, RegistryBody, SecretBody, SecretInfo, UpdateComponent,
};

/// A JSON body: malformed or mistyped JSON is a 400 with the parser's
/// message, a body over the limit a 413; the content type is not required.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if super::connections::is_body_timeout(&e) {
                ApiError::body_timeout(state.options.edge.body_timeout)
            } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the JSON body is larger than {} bytes",
                        super::MAX_JSON_BYTES
                    ),
                )
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// `POST /v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// The tenant's name: letters, digits, `.`, `-`, `_`, 1 to 128 characters.
    pub name: String,
}

/// A new tenant and its token, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantCreated {
    /// The tenant's name.
    pub tenant: String,
    /// Its bearer token; store it now, it cannot be shown again.
    #[serde(serialize_with = "flavorbox_app::wire::serialize_secret")]
    #[schema(value_type = String)]
    pub token: SecretString,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`; `unavailable` (readyz) while loading, draining, or when the
    /// database file is gone or replaced.
    pub status: String,
}

#[utoipa::path(post, path = "/v1/tenants", tag = "admin",
    request_body = CreateTenant,
    security(("admin" = [])),
    responses(
        (status = 201, description = "Created; the token is shown once", body = TenantCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    ))]
pub async fn create_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<Response, ApiError> {
    let (token, hash) = new_token()?;
    state.app.create_tenant(&body.name, &hash).await?;
    tracing::info!(tenant = %body.name, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant: body.name,
            token: token.into(),
        }),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/v1/tenants/{name}", tag = "admin",
    params(("name" = String, Path, description = "Tenant name")),
    security(("admin" = [])),
    responses(
        (status = 204, description = "Removed with everything it owned"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_tenant(&name).await?;
    tracing::info!(tenant = %name, "tenant deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/flavors", tag = "flavors",
    security(("tenant" = [])),
    responses(
        (status = 200, description = "Built-in flavors, then the tenant's", body = [FlavorInfo]),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn list_flavors(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<Vec<FlavorInfo>>, ApiError> {
    Ok(Json(state.app.tenant(&tenant).list_flavors().await?))
}

#[utoipa::path(put, path = "/v1/flavors/{name}", tag = "flavors",
    params(("name" = String, Path, description = "The name the component gives itself in its metadata")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The component (wasm32-wasip2), size-capped"),
    security(("tenant" = [])),
    responses(
        (status = 201, description = "Registered", body = FlavorInfo),
        (status = 200, description = "The same content was already registered", body = FlavorInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "A quota: flavors, the tenant's one compile at a time and its line, or its CPU budget (calls and compiles)", body = ErrorBody),
        (status = 503, description = "The server's compile slots and their line are full", body = ErrorBody),
        (status = 507, description = "The server's disk is full", body = ErrorBody),
    ))]
pub async fn put_flavor(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    tracing::Span::current().record("flavor", name.as_str());
    let max = state.app.config().tenant_component_bytes(tenant.name());
    // A tenant at its compile bound is refused before its body is kept.
    if let Err(refused) = state.app.tenant(&tenant).check_compile_room() {
        return Err(discard_then(body, max, refused).await);
    }
    let bytes = axum::body::to_bytes(body, max.saturating_add(1))
        .await
        .map_err(|e| unreadable_component(&state, &e, max))?;
    if bytes.len() > max {
        return Err(too_large_component(max));
    }
    let app = state.app.tenant(&tenant);
    let existed = app.describe_flavor(&name).await.is_ok();
    let info = app.register_flavor_as(bytes.to_vec(), Some(&name)).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(info)).into_response())
}

#[utoipa::path(post, path = "/v1/flavors", tag = "flavors",
    request_body(description = "The component (wasm32-wasip2), size-capped; or, as JSON, an `oci://` source to pull it from (under the tenant's size limit and the server's egress policy). Registered under the name in its metadata",
        content(
            (Vec<u8> = "application/octet-stream"),
            (RegisterFromOci = "application/json"),
        )),
    security(("tenant" = [])),
    responses(
        (status = 201, description = "Registered (or the same content already was)", body = FlavorInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "A quota: flavors, the tenant's one compile at a time and its line, or its CPU budget (calls and compiles)", body = ErrorBody),
        (status = 503, description = "The server's compile slots and their line are full", body = ErrorBody),
        (status = 507, description = "The server's disk is full", body = ErrorBody),
    ))]
pub async fn post_flavor(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        let bytes = axum::body::to_bytes(body, super::MAX_JSON_BYTES)
            .await
            .map_err(|e| {
                if super::connections::is_body_timeout(&e) {
                    ApiError::body_timeout(state.options.edge.body_timeout)
                } else {
                    ApiError::bad_request(format!("cannot read the body: {e}"))
                }
            })?;
        let request: RegisterFromOci = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        let info = state
            .app
            .tenant(&tenant)
            .register_flavor_from_oci(request)
            .await?;
        return Ok((StatusCode::CREATED, Json(info)).into_response());
    }
    let max = state.app.config().tenant_component_bytes(tenant.name());
    if let Err(refused) = state.app.tenant(&tenant).check_compile_room() {
        return Err(discard_then(body, max, refused).await);
    }
    let bytes = axum::body::to_bytes(body, max.saturating_add(1))
        .await
        .map_err(|e| unreadable_component(&state, &e, max))?;
    if bytes.len() > max {
        return Err(too_large_component(max));
    }
    let info = state
        .app
        .tenant(&tenant)
        .register_flavor(bytes.to_vec())
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `refused`, once the body (at most `max` bytes of it, within the edge's
/// body timeout) has been read and dropped: nothing is kept, hashed or
/// parsed, and a client that sends its whole body before it reads the
/// answer still gets to read it.
async fn discard_then(body: axum::body::Body, max: usize, refused: AppError) -> ApiError {
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        read = read.saturating_add(chunk.len());
        if read > max {
            break;
        }
    }
    ApiError::from(refused)
}

/// A component body that could not be read: it stalled (408) or passed
/// `max` (413).
fn unreadable_component(state: &AppState, e: &axum::Error, max: usize) -> ApiError {
    if super::connections::is_body_timeout(e) {
        ApiError::body_timeout(state.options.edge.body_timeout)
    } else {
        too_large_component(max)
    }
}

fn too_large_component(max: usize) -> ApiError {
    ApiError::from(AppError::component_too_large(max))
}

#[utoipa::path(get, path = "/v1/flavors/{name}", tag = "flavors",
    params(("name" = String, Path, description = "Flavor name")),
    security(("tenant" = [])),
    responses(
        (status = 200, body = FlavorInfo),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn get_flavor(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
) -> Result<Json<FlavorInfo>, ApiError> {
    Ok(Json(
        state.app.tenant(&tenant).describe_flavor(&name).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/flavors/{name}", tag = "flavors",
    params(("name" = String, Path, description = "Flavor name")),
    security(("tenant" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn delete_flavor(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.tenant(&tenant).delete_flavor(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/secrets", tag = "secrets",
    security(("tenant" = [])),
    responses(
        (status = 200, description = "Names and usernames, never values", body = [SecretInfo]),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list_secrets(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<Vec<SecretInfo>>, ApiError> {
    Ok(Json(state.app.tenant(&tenant).list_secrets().await?))
}

#[utoipa::path(put, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name")),
    request_body = SecretBody,
    security(("tenant" = [])),
    responses(
        (status = 201, description = "Stored, encrypted; the password is never returned", body = SecretInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    ))]
pub async fn put_secret(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SecretBody>,
) -> Result<Response, ApiError> {
    let app = state.app.tenant(&tenant);
    app.create_secret(CreateSecret {
        name: name.clone(),
        username: body.username,
        password: body.password,
    })
    .await?;
    let info = app
        .list_secrets()
        .await?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::internal("a stored secret is not listed"))?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(delete, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name")),
    security(("tenant" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ))]
pub async fn delete_secret(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.tenant(&tenant).delete_secret(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/registries", tag = "registries",
    security(("tenant" = [])),
    responses(
        (status = 200, body = [ComponentInfo]),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list_registries(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
) -> Result<Json<Vec<ComponentInfo>>, ApiError> {
    Ok(Json(state.app.tenant(&tenant).list_components().await?))
}

#[utoipa::path(put, path = "/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry component name")),
    request_body = RegistryBody,
    security(("tenant" = [])),
    responses(
        (status = 201, description = "Validated by the flavor and stored; the normalised config", body = ComponentInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such flavor", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "Config issues (with field paths), egress refusal, unknown secret or a failing flavor", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn put_registry(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RegistryBody>,
) -> Result<Response, ApiError> {
    tracing::Span::current().record("flavor", body.flavor.as_str());
    let info = state
        .app
        .tenant(&tenant)
        .register_component(RegisterComponent {
            name,
            flavor: body.flavor,
            uri: body.uri,
            config: body.config,
            secret: body.secret,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(patch, path = "/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry component name")),
    request_body = UpdateComponent,
    security(("tenant" = [])),
    responses(
        (status = 200, description = "Validated again and stored", body = ComponentInfo),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn patch_registry(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<UpdateComponent>,
) -> Result<Json<ComponentInfo>, ApiError> {
    Ok(Json(
        state
            .app
            .tenant(&tenant)
            .update_component(&name, body)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry component name")),
    security(("tenant" = [])),
    responses(
        (status = 200, body = ComponentInfo),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn get_registry(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
) -> Result<Json<ComponentInfo>, ApiError> {
    Ok(Json(
        state.app.tenant(&tenant).describe_component(&name).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/registries/{name}", tag = "registries",
    params(("name" = String, Path, description = "Registry component name")),
    security(("tenant" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn delete_registry(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.tenant(&tenant).delete_component(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/registries/{name}/check", tag = "registries",
    params(("name" = String, Path, description = "Registry component name")),
    request_body = CheckRequest,
    security(("tenant" = [])),
    responses(
        (status = 200, description = "The flavor's decision (a denial is `allowed: false`)", body = CheckReport),
        (status = 400, description = "The image reference does not parse", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, description = "Outside the registry, by digest, or a failing flavor", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn check(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CheckRequest>,
) -> Result<Json<CheckReport>, ApiError> {
    Ok(Json(
        state.app.tenant(&tenant).check(&name, &body.image).await?,
    ))
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Flavors are loaded and the database is in place; serving", body = Health),
        (status = 503, description = "Still loading, draining, the database file is gone or replaced, or the shared database does not answer", body = Health),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.ready.load(std::sync::atomic::Ordering::Acquire);
    // Probes come every few seconds: the log says when this changes.
    static DATABASE_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let database = match state
        .app
        .database_ready(std::time::Duration::from_secs(2))
        .await
    {
        Ok(()) => {
            DATABASE_GONE.store(false, std::sync::atomic::Ordering::Relaxed);
            true
        }
        Err(e) => {
            if !DATABASE_GONE.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::error!(error = %e, "not ready: the database");
            }
            false
        }
    };
    if ready && database {
        Json(Health {
            status: "ok".into(),
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unavailable".into(),
            }),
        )
            .into_response()
    }
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint; see /openapi.json")
}

/// Known paths with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take that method; see /openapi.json",
    )
}
