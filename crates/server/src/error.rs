//! The one error body of the API, `{"error":{"code","message","issues"?}}`,
//! and the status of every failure. The status follows from the
//! application error's stable code, so a job's stored error and an HTTP
//! error say the same thing. Another tenant's resource is reported exactly
//! like a missing one: the message names only what the caller asked for.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use flavorbox_app::AppError;
use flavorbox_app::ConfigIssue;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `bad_request`, `unauthorized`, `not_found`,
    /// `already_exists`, `conflict`, `in_use`, `too_large`,
    /// `invalid_config`, `invalid_flavor`, `flavor_failed`,
    /// `invalid_target`, `unknown_secret`, `egress_refused`,
    /// `quota_exceeded`, `rate_limited`, `overloaded`, `request_timeout`,
    /// `insufficient_storage`, `unavailable`, `internal`, ...
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Config issues with their field paths (`invalid_config` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<ConfigIssue>>,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.to_string(),
                    message: message.into(),
                    issues: None,
                },
            },
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401, the same for a missing, malformed or unknown token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token: send `Authorization: Bearer <token>`",
        )
    }

    /// 500 (details go to the log, not the caller).
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server's log has the details",
        )
    }

    /// 408: a request body delivered nothing for `timeout`.
    pub fn body_timeout(timeout: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body stalled: nothing arrived for {} s; send it without pauses and retry",
                timeout.as_secs()
            ),
        )
    }

    /// This error with a `Retry-After` of `secs`.
    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &str {
        &self.body.error.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.body.error.message
    }
}

/// The status of an application error's code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "bad_request" | "bad_archive" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "denied" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "already_exists" | "conflict" | "in_use" => StatusCode::CONFLICT,
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_config" | "invalid_flavor" | "flavor_failed" | "invalid_target"
        | "unknown_secret" | "egress_refused" | "signature_refused" => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        "request_timeout" => StatusCode::REQUEST_TIMEOUT,
        "quota_exceeded" | "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "overloaded" | "unavailable" | "interrupted" => StatusCode::SERVICE_UNAVAILABLE,
        "insufficient_storage" => StatusCode::INSUFFICIENT_STORAGE,
        "registry_auth" | "push_failed" | "registry_failed" => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Seconds a client should wait before retrying after an `unavailable`
/// state (the database removed or replaced): long enough for an operator
/// or an orchestrator watching `/readyz` to act.
const UNAVAILABLE_RETRY_SECS: u64 = 30;

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        let code = e.code();
        let status = status_of(code);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError::internal(&e);
        }
        let issues = match &e {
            AppError::InvalidConfig { issues, .. } => Some(issues.clone()),
            _ => None,
        };
        let mut api = ApiError::new(status, code, e.to_string());
        api.body.error.issues = issues;
        api.retry_after = e
            .retry_after_secs()
            .or((code == "unavailable").then_some(UNAVAILABLE_RETRY_SECS));
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = super::metrics::ErrorCode(self.body.error.code.clone());
        let mut response = (self.status, Json(self.body)).into_response();
        response.extensions_mut().insert(code);
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body is not coming: the connection is done.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_api_has_its_status_and_an_unknown_one_is_a_500() {
        for (code, status) in [
            ("bad_request", 400),
            ("bad_archive", 400),
            ("unauthorized", 401),
            ("denied", 403),
            ("not_found", 404),
            ("request_timeout", 408),
            ("already_exists", 409),
            ("conflict", 409),
            ("in_use", 409),
            ("too_large", 413),
            ("invalid_config", 422),
            ("invalid_flavor", 422),
            ("flavor_failed", 422),
            ("invalid_target", 422),
            ("unknown_secret", 422),
            ("egress_refused", 422),
            ("signature_refused", 422),
            ("quota_exceeded", 429),
            ("rate_limited", 429),
            ("registry_auth", 502),
            ("push_failed", 502),
            ("registry_failed", 502),
            ("overloaded", 503),
            ("unavailable", 503),
            ("interrupted", 503),
            ("insufficient_storage", 507),
            ("internal", 500),
            ("no_such_code", 500),
        ] {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }

    #[test]
    fn a_stalled_body_is_a_408_that_closes_the_connection() {
        let response = ApiError::body_timeout(std::time::Duration::from_secs(30)).into_response();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
