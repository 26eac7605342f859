//! The one error body of the API, `{"error":{"code","message","issues"?}}`,
//! and the status of every failure. The status follows from the failure's
//! [`ErrorCode`] (an exhaustive `match`: a new code does not compile until
//! it has a status), so a job's stored error and an HTTP error say the
//! same thing. Another tenant's resource is reported exactly
//! like a missing one: the message names only what the caller asked for.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use flavorbox_app::{AppError, ConfigIssue, ErrorCode};

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

/// An error response. Its [`ErrorCode`] goes into the response's
/// extensions too, where the request metrics count it.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this code (and the code's status) and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.as_str().to_string(),
                    message: message.into(),
                    issues: None,
                },
            },
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// 401, the same for a missing, malformed or unknown token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            ErrorCode::Unauthorized,
            "missing or invalid bearer token: send `Authorization: Bearer <token>`",
        )
    }

    /// 500 (details go to the log, not the caller).
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            ErrorCode::Internal,
            "internal error; the server's log has the details",
        )
    }

    /// 408: a request body delivered nothing for `timeout`.
    pub fn body_timeout(timeout: std::time::Duration) -> ApiError {
        ApiError::new(
            ErrorCode::RequestTimeout,
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
        status_of(self.code)
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.body.error.message
    }
}

/// The HTTP status of every error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::BadRequest | C::BadArchive => StatusCode::BAD_REQUEST,
        C::Unauthorized => StatusCode::UNAUTHORIZED,
        C::Denied => StatusCode::FORBIDDEN,
        C::NotFound => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::AlreadyExists | C::Conflict | C::InUse | C::Superseded => StatusCode::CONFLICT,
        C::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::InvalidConfig
        | C::InvalidFlavor
        | C::FlavorFailed
        | C::InvalidTarget
        | C::UnknownSecret
        | C::EgressRefused
        | C::SignatureRefused => StatusCode::UNPROCESSABLE_ENTITY,
        C::QuotaExceeded | C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::Overloaded | C::Unavailable | C::Interrupted => StatusCode::SERVICE_UNAVAILABLE,
        // A job's code only (the registry took longer than the job
        // deadline); as a status, the upstream's timeout.
        C::JobTimeout => StatusCode::GATEWAY_TIMEOUT,
        C::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        C::RegistryAuth | C::PushFailed | C::RegistryFailed => StatusCode::BAD_GATEWAY,
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Seconds a client should wait before retrying after an `unavailable`
/// state (the database removed or replaced): long enough for an operator
/// or an orchestrator watching `/readyz` to act.
const UNAVAILABLE_RETRY_SECS: u64 = 30;

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        let code = e.code();
        if code == ErrorCode::Internal {
            return ApiError::internal(&e);
        }
        let issues = match &e {
            AppError::InvalidConfig { issues, .. } => Some(issues.clone()),
            _ => None,
        };
        let mut api = ApiError::new(code, e.to_string());
        api.body.error.issues = issues;
        api.retry_after = e
            .retry_after_secs()
            .or((code == ErrorCode::Unavailable).then_some(UNAVAILABLE_RETRY_SECS));
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(self.body)).into_response();
        response.extensions_mut().insert(self.code);
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body is not coming: the connection is done.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
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
    fn every_code_of_the_api_has_its_status_and_keeps_its_word() {
        let table = [
            (ErrorCode::BadRequest, "bad_request", 400),
            (ErrorCode::BadArchive, "bad_archive", 400),
            (ErrorCode::Unauthorized, "unauthorized", 401),
            (ErrorCode::Denied, "denied", 403),
            (ErrorCode::NotFound, "not_found", 404),
            (ErrorCode::MethodNotAllowed, "method_not_allowed", 405),
            (ErrorCode::RequestTimeout, "request_timeout", 408),
            (ErrorCode::AlreadyExists, "already_exists", 409),
            (ErrorCode::Conflict, "conflict", 409),
            (ErrorCode::InUse, "in_use", 409),
            (ErrorCode::TooLarge, "too_large", 413),
            (ErrorCode::InvalidConfig, "invalid_config", 422),
            (ErrorCode::InvalidFlavor, "invalid_flavor", 422),
            (ErrorCode::FlavorFailed, "flavor_failed", 422),
            (ErrorCode::InvalidTarget, "invalid_target", 422),
            (ErrorCode::UnknownSecret, "unknown_secret", 422),
            (ErrorCode::EgressRefused, "egress_refused", 422),
            (ErrorCode::SignatureRefused, "signature_refused", 422),
            (ErrorCode::QuotaExceeded, "quota_exceeded", 429),
            (ErrorCode::RateLimited, "rate_limited", 429),
            (ErrorCode::RegistryAuth, "registry_auth", 502),
            (ErrorCode::PushFailed, "push_failed", 502),
            (ErrorCode::RegistryFailed, "registry_failed", 502),
            (ErrorCode::Overloaded, "overloaded", 503),
            (ErrorCode::Unavailable, "unavailable", 503),
            (ErrorCode::Interrupted, "interrupted", 503),
            (ErrorCode::JobTimeout, "job_timeout", 504),
            (ErrorCode::Superseded, "superseded", 409),
            (ErrorCode::InsufficientStorage, "insufficient_storage", 507),
            (ErrorCode::Internal, "internal", 500),
        ];
        for (code, word, status) in table {
            assert_eq!(code.as_str(), word, "{code:?}");
            assert_eq!(status_of(code).as_u16(), status, "{word}");
            let api = ApiError::new(code, "message");
            assert_eq!(
                (api.status().as_u16(), api.body.error.code.as_str()),
                (status, word)
            );
        }
        // Every code is in the table, and no two share a word.
        let mut listed: Vec<&str> = table.iter().map(|(_, word, _)| *word).collect();
        let mut all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        listed.sort_unstable();
        all.sort_unstable();
        assert_eq!(listed, all);
        all.dedup();
        assert_eq!(all.len(), ErrorCode::ALL.len(), "two codes share a word");
    }

    #[test]
    fn an_error_response_carries_its_code_for_the_metrics() {
        let response = ApiError::new(ErrorCode::QuotaExceeded, "full").into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::QuotaExceeded)
        );
    }

    #[test]
    fn a_stalled_body_is_a_408_that_closes_the_connection() {
        let response = ApiError::body_timeout(std::time::Duration::from_secs(30)).into_response();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(response.headers()[header::CONNECTION], "close");
    }
}
