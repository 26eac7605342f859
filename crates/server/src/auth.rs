//! Bearer tokens. A tenant's token is 32 random bytes (256 bits), shown once
//! when the tenant is created; the store keeps only its SHA-256, looked up
//! by hash and compared in constant time. The admin token comes from the
//! environment, is compared the same way, and is not a tenant token: admin
//! endpoints accept only it, tenant endpoints never do. The operator may set
//! a metrics token too: then `/metrics` accepts only it.
//!
//! Failed authentications count against their source address
//! ([`super::throttle`]): past its bound a request is answered 429 before
//! any store lookup.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use super::throttle::Admission;
use flavorbox_app::Tenant;

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

/// The address a request came from, as the edge recorded it.
fn source(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// The refusal of a request that did not authenticate. A token the server
/// knows (the admin or metrics token, a tenant token verified recently)
/// sent to the wrong endpoint is no guess: 401, nothing charged. Anything
/// else spends the failure its admission reserved (429 past the bound).
fn refuse(state: &AppState, admission: Admission<'_>, token: Option<&str>) -> ApiError {
    let known = token.is_some_and(|token| {
        state.admin.matches(token)
            || state
                .metrics_token
                .as_ref()
                .is_some_and(|m| m.matches(token))
            || (token.starts_with(TOKEN_PREFIX) && state.throttle.knows(&hash(token)))
    });
    if known {
        admission.pass();
        ApiError::unauthorized()
    } else {
        admission.refuse()
    }
}

/// A request made with the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Checked in memory, so even past the bound: the operator gets in.
        let admission = state.throttle.admit(source(parts));
        match bearer(parts) {
            Some(token) if state.admin.matches(token) => {
                admission.pass();
                Ok(Admin)
            }
            token => Err(refuse(state, admission, token)),
        }
    }
}

/// A request that may read `/metrics`: any while the operator set no
/// metrics token, else one bearing it.
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(expected) = &state.metrics_token else {
            return Ok(MetricsReader);
        };
        let admission = state.throttle.admit(source(parts));
        match bearer(parts) {
            Some(token) if expected.matches(token) => {
                admission.pass();
                Ok(MetricsReader)
            }
            token => Err(refuse(state, admission, token)),
        }
    }
}

/// A request made with a tenant's token: the tenant it verified.
pub struct Authenticated(pub Tenant);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let admission = state.throttle.admit(source(parts));
        let token = bearer(parts);
        let Some(token) = token.filter(|t| t.starts_with(TOKEN_PREFIX)) else {
            return Err(refuse(state, admission, token));
        };
        let hash = hash(token);
        // Past the bound only a token verified here recently is looked up.
        if admission.is_limited() && !state.throttle.knows(&hash) {
            return Err(admission.refuse());
        }
        let tenant = match state.app.authenticate(&hash).await {
            Ok(Some(tenant)) => tenant,
            Ok(None) => {
                state.throttle.forget(&hash);
                return Err(admission.refuse());
            }
            // The store's trouble, not the client's failure.
            Err(e) => {
                admission.pass();
                return Err(ApiError::from(e));
            }
        };
        admission.pass();
        state.throttle.remember(&hash);
        tracing::Span::current().record("tenant", tenant.name());
        // Who asked, for the audit trail: a prefix of the token's hash names
        // the token without revealing it.
        let caller = flavorbox_app::audit::Caller {
            token_id: Some(hash[..16].to_string()),
            request_id: parts
                .extensions
                .get::<super::metrics::RequestId>()
                .map(|id| id.0.clone()),
        };
        Ok(Authenticated(tenant.with_caller(caller)))
    }
}
