//! Bearer tokens. A tenant's token is 32 random bytes (256 bits), shown once
//! when the tenant is created; the store keeps only its SHA-256, looked up
//! by hash and compared in constant time. The admin token comes from the
//! environment, is compared the same way, and is not a tenant token: admin
//! endpoints accept only it, tenant endpoints never do. The operator may set
//! a metrics token too: then `/metrics` accepts only it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::app::Tenant;

/// Prefix of tenant tokens, so a leaked one is recognisable in a scanner.
pub const TOKEN_PREFIX: &str = "fbx_";

/// A new tenant token and the hash to store.
pub fn new_token() -> Result<(String, String), ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = hash(&token);
    Ok((token, hash))
}

/// The SHA-256 of a token, hex.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token the operator set (the admin token, the metrics token): only its
/// hash is kept, compared in constant time.
pub struct OperatorToken([u8; 32]);

impl OperatorToken {
    /// Keeps only the hash of `token`.
    pub fn new(token: &str) -> OperatorToken {
        OperatorToken(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, token: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(self.0.ct_eq(&given))
    }
}

/// The bearer token of a request, if it has one.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty() && t.len() <= 512)
}

/// A request made with the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(token) if state.admin.matches(token) => Ok(Admin),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// A request that may read `/metrics`: any while the operator set no
/// metrics token, else one bearing it.
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match (&state.metrics_token, bearer(parts)) {
            (None, _) => Ok(MetricsReader),
            (Some(expected), Some(token)) if expected.matches(token) => Ok(MetricsReader),
            (Some(_), _) => Err(ApiError::unauthorized()),
        }
    }
}

/// A request made with a tenant's token: the tenant it verified.
pub struct Authenticated(pub Tenant);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(ApiError::unauthorized());
        }
        let name = state
            .app
            .store()
            .tenant_for_token(&hash(token))
            .await
            .map_err(|e| ApiError::from(crate::app::AppError::from(e)))?
            .ok_or_else(ApiError::unauthorized)?;
        tracing::Span::current().record("tenant", name.as_str());
        Ok(Authenticated(Tenant::verified(name)))
    }
}
