//! `GET /v1/audit` (a tenant's trail) and `GET /v1/admin/audit` (every
//! tenant's, for the operator): the rows the application layer records for
//! every decision and change, newest first, in keyset pages.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use flavorbox_app::audit::{AuditPage, AuditQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::{Admin, Authenticated};
use super::error::{ApiError, ErrorBody};

/// The tenant an operator's query is narrowed to.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantFilter {
    /// Only this tenant's rows.
    pub tenant: Option<String>,
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|e| {
        ApiError::bad_request(format!(
            "{e}; the audit query takes image, verdict, since, until (RFC 3339), before and limit"
        ))
    })
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(AuditQuery),
    security(("tenant" = [])),
    responses(
        (status = 200, description = "The tenant's decisions and changes, newest first; `next` pages on", body = AuditPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn tenant_audit(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let q = query(q)?;
    Ok(Json(state.app.tenant(&tenant).audit(&q).await?))
}

#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin",
    params(AuditQuery, TenantFilter),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Every tenant's decisions and changes (or one tenant's), newest first", body = AuditPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn admin_audit(
    State(state): State<AppState>,
    _admin: Admin,
    q: Result<Query<AuditQuery>, QueryRejection>,
    tenant: Result<Query<TenantFilter>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let q = query(q)?;
    let tenant = query(tenant)?;
    Ok(Json(state.app.audit(tenant.tenant.as_deref(), &q).await?))
}
