//! An authenticated conversation with one repository of a registry: what an
//! OCI pull and a server push say over the distribution API, through the
//! egress-checked client like every other request the host makes.
//!
//! The session authenticates once, up front (`GET /v2/`, then Basic or a
//! Bearer token for the scope it needs from the challenge's realm, which
//! must be the registry's host or a sibling under its parent domain), so no
//! streamed body is ever sent twice. Upload locations the registry hands
//! out are hops like redirects: joined to the URL they came from, checked
//! by the policy's redirect rule, their addresses filtered when connected
//! to, and sent credentials only on the registry's own origin.

use std::io::Read;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use url::Url;

use super::auth::{self, Challenge};
use super::client::{Body, Exchange, Follow};
use super::{RegistryApi, RegistryApiError};
use crate::credentials::Credentials;
use flavorbox_grammar::DEFAULT_DOMAIN;
use flavorbox_grammar::RegistryUri;

/// Largest error body read from a registry, to quote its message.
const MAX_ERROR_BODY: u64 = 16 << 10;

/// What a session may do in its repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read manifests and blobs.
    Pull,
    /// Read and write them.
    PushPull,
}

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Credentials; anonymous without.
    pub credentials: Option<Credentials>,
    /// Speak plain HTTP to a registry that is not on loopback (the user
    /// named it insecure).
    pub plain_http: bool,
}

/// One repository on one registry, authenticated for `Access`.
pub struct Session<'a> {
    exchange: Exchange<'a>,
    base: Url,
    repository: String,
    authorization: Option<String>,
}

impl RegistryApi {
    /// Opens a session with `repository` (a normalised path) on `registry`
    /// that ends within `timeout`; refused unless the repository's path
    /// passes the policy's namespace rules.
    pub fn session(
        &self,
        registry: &RegistryUri,
        repository: &str,
        access: Access,
        options: &SessionOptions,
        timeout: Duration,
    ) -> Result<Session<'_>, RegistryApiError> {
        self.check_namespace(registry, Some(repository))?;
        let domain = match registry.domain() {
            DEFAULT_DOMAIN => super::DOCKER_HUB_API,
            other => other,
        };
        let scheme = if registry.is_loopback() || options.plain_http {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{domain}/")).map_err(|_| {
            RegistryApiError::InvalidDomain {
                domain: registry.domain().to_string(),
            }
        })?;
        let exchange = self
            .client
            .transfer(registry.domain(), timeout, self.share.as_ref());
        let mut session = Session {
            exchange,
            base,
            repository: repository.to_string(),
            authorization: None,
        };
        session.authenticate(access, options.credentials.as_ref(), scheme == "http")?;
        Ok(session)
    }
}

/// An upload whose bytes are sent, waiting for its digest.
#[derive(Debug)]
pub struct PendingBlob(Url);

/// What a manifest GET found.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its media type, as the registry labelled it.
    pub media_type: Option<String>,
    /// The sha256 digest of its bytes.
    pub digest: String,
}

impl Session<'_> {
    /// Answers the registry's challenge once for the session's scope.
    fn authenticate(
        &mut self,
        access: Access,
        credentials: Option<&Credentials>,
        plain_http: bool,
    ) -> Result<(), RegistryApiError> {
        let url = self.url("v2/")?;
        let first = self.exchange.get(url.clone(), None)?;
        let challenge = match first.status() {
            200 => return Ok(()),
            401 => first
                .header("www-authenticate")
                .and_then(auth::parse_challenge)
                .ok_or_else(|| {
                    self.exchange
                        .protocol("401 without a usable WWW-Authenticate challenge")
                })?,
            other => return Err(self.status_error(other, &url, first)),
        };
        let authorization = match challenge {
            Challenge::Basic => {
                let c = credentials.ok_or_else(|| {
                    self.exchange
                        .auth("the registry requires credentials and none are configured")
                })?;
                auth::basic(c)
            }
            Challenge::Bearer { realm, service, .. } => {
                let actions = match access {
                    Access::Pull => "pull",
                    Access::PushPull => "pull,push",
                };
                let scope = format!("repository:{}:{actions}", self.repository);
                let token = auth::fetch_token(
                    &self.exchange,
                    &realm,
                    service.as_deref(),
                    &scope,
                    credentials,
                    plain_http,
                    url.host_str().unwrap_or_default(),
                )?;
                format!("Bearer {token}")
            }
        };
        self.authorization = Some(authorization);
        Ok(())
    }

    /// `path` under the registry's API root.
    fn url(&self, path: &str) -> Result<Url, RegistryApiError> {
        self.base.join(path).map_err(|_| {
            self.exchange
                .protocol(&format!("cannot form a URL for {path}"))
        })
    }

    /// The URL of `kind` (`blobs` or `manifests`) `reference` in the repository.
    fn object_url(&self, kind: &str, reference: &str) -> Result<Url, RegistryApiError> {
        self.url(&format!("v2/{}/{kind}/{reference}", self.repository))
    }

    /// The session's credentials, sent only to the registry's own origin.
    fn authorization_for(&self, url: &Url) -> Option<&str> {
        (url.origin() == self.base.origin())
            .then_some(self.authorization.as_deref())
            .flatten()
    }

    /// The manifest `reference` (a tag or digest), at most `max` bytes,
    /// asking for the media types in `accept`.
    pub fn manifest(
        &self,
        reference: &str,
        accept: &str,
        max: u64,
    ) -> Result<Option<Manifest>, RegistryApiError> {
        let url = self.object_url("manifests", reference)?;
        let response = self.exchange.get_following(
            url.clone(),
            self.authorization_for(&url),
            &[("Accept", accept)],
            Follow::Policy,
        )?;
        match response.status() {
            200 => {}
            404 => return Ok(None),
            other => return Err(self.status_error(other, &url, response)),
        }
        if let Some(length) = content_length(&response)
            && length > max
        {
            return Err(self.exchange.protocol(&format!(
                "the manifest is {length} bytes, over the limit of {max}"
            )));
        }
        let media_type = response
            .header("content-type")
            .map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
        let bytes = self.exchange.read_body(response, max + 1)?;
        if bytes.len() as u64 > max {
            return Err(self
                .exchange
                .protocol(&format!("the manifest is over the limit of {max} bytes")));
        }
        let digest = sha256_digest(&bytes);
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// A reader of blob `digest` (redirects to another origin followed,
    /// each hop checked) and the length the registry declared, if any.
    pub fn blob(
        &self,
        digest: &str,
    ) -> Result<(Box<dyn Read + Send + Sync + 'static>, Option<u64>), RegistryApiError> {
        let url = self.object_url("blobs", digest)?;
        let response = self.exchange.get_following(
            url.clone(),
            self.authorization_for(&url),
            &[],
            Follow::Download,
        )?;
        match response.status() {
            200 => {}
            other => return Err(self.status_error(other, &url, response)),
        }
        let length = content_length(&response);
        Ok((response.into_reader(), length))
    }

    /// Whether blob `digest` is in the repository already.
    pub fn has_blob(&self, digest: &str) -> Result<bool, RegistryApiError> {
        let url = self.object_url("blobs", digest)?;
        let response =
            self.exchange
                .request("HEAD", &url, self.authorization_for(&url), &[], Body::Empty)?;
        match response.status() {
            200 => Ok(true),
            404 => Ok(false),
            // Some registries answer a HEAD of a missing blob otherwise;
            // the upload that follows decides.
            _ => Ok(false),
        }
    }

    /// Streams a blob read from `reader` to a new upload: one `PATCH`
    /// (chunked unless `length` is given). The upload is committed by
    /// [`Self::finish_blob`] with the digest, so a blob can be hashed as it
    /// is compressed. Every location the registry hands out is checked as
    /// a hop.
    pub fn stream_blob(
        &self,
        reader: &mut dyn Read,
        length: Option<u64>,
    ) -> Result<PendingBlob, RegistryApiError> {
        let start = self.url(&format!("v2/{}/blobs/uploads/", self.repository))?;
        let response = self.exchange.request(
            "POST",
            &start,
            self.authorization_for(&start),
            &[],
            Body::Empty,
        )?;
        if response.status() != 202 {
            return Err(self.status_error(response.status(), &start, response));
        }
        let location = self.upload_location(&start, &response, 1)?;
        let response = self.exchange.request(
            "PATCH",
            &location,
            self.authorization_for(&location),
            &[("Content-Type", "application/octet-stream")],
            Body::Stream { reader, length },
        )?;
        if !matches!(response.status(), 202 | 204) {
            return Err(self.status_error(response.status(), &location, response));
        }
        Ok(PendingBlob(self.upload_location(&location, &response, 2)?))
    }

    /// Commits an upload as blob `digest`; the registry checks the bytes.
    pub fn finish_blob(&self, pending: PendingBlob, digest: &str) -> Result<(), RegistryApiError> {
        let mut finish = pending.0;
        finish.query_pairs_mut().append_pair("digest", digest);
        let response = self.exchange.request(
            "PUT",
            &finish,
            self.authorization_for(&finish),
            &[("Content-Length", "0")],
            Body::Empty,
        )?;
        match response.status() {
            201 | 204 => Ok(()),
            other => Err(self.status_error(other, &finish, response)),
        }
    }

    /// Puts manifest `bytes` of `media_type` under `reference` (a tag);
    /// returns the digest the registry reports (`Docker-Content-Digest`),
    /// or the bytes' own when it reports none.
    pub fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryApiError> {
        let url = self.object_url("manifests", reference)?;
        let response = self.exchange.request(
            "PUT",
            &url,
            self.authorization_for(&url),
            &[("Content-Type", media_type)],
            Body::Bytes(bytes),
        )?;
        match response.status() {
            200 | 201 | 202 | 204 => {}
            other => return Err(self.status_error(other, &url, response)),
        }
        let computed = sha256_digest(bytes);
        match response.header("docker-content-digest") {
            Some(reported) if is_digest(reported) => Ok(reported.to_string()),
            Some(other) => Err(self.exchange.protocol(&format!(
                "the registry reported digest `{}` for the manifest",
                other.chars().take(100).collect::<String>()
            ))),
            None => Ok(computed),
        }
    }

    /// The `Location` of an upload response, checked as hop `hop`.
    fn upload_location(
        &self,
        from: &Url,
        response: &ureq::Response,
        hop: u32,
    ) -> Result<Url, RegistryApiError> {
        let location = response.header("location").ok_or_else(|| {
            self.exchange
                .protocol("an upload answer without a Location header")
        })?;
        self.exchange.check_hop(from, location, hop, Follow::Policy)
    }

    /// The error for an unexpected status, quoting the registry's message.
    fn status_error(&self, status: u16, url: &Url, response: ureq::Response) -> RegistryApiError {
        let body = self
            .exchange
            .read_body(response, MAX_ERROR_BODY)
            .unwrap_or_default();
        let message = registry_message(&body);
        let what = format!("HTTP {status} for {} {}", url.path(), message)
            .trim_end()
            .to_string();
        match status {
            401 | 403 => self.exchange.auth(&what),
            _ => self.exchange.protocol(&what),
        }
    }
}

/// The first error message of a distribution API error body, if any, in
/// parentheses and cut short.
fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let Some(first) = parsed.errors.into_iter().next() else {
        return String::new();
    };
    let text = match (first.code, first.message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => return String::new(),
    };
    let clean: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    format!("({clean})")
}

/// The declared `Content-Length`, if any.
fn content_length(response: &ureq::Response) -> Option<u64> {
    response
        .header("content-length")
        .and_then(|v| v.trim().parse().ok())
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Whether `s` is a `sha256:` digest of 64 lower-case hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_are_quoted_short_and_clean() {
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid\n\u001b[31m","detail":{}}]}"#;
        assert_eq!(
            registry_message(body),
            "(MANIFEST_INVALID: manifest invalid[31m)"
        );
        assert_eq!(registry_message(b"<html>"), "");
        let long = format!(r#"{{"errors":[{{"message":"{}"}}]}}"#, "x".repeat(500));
        assert_eq!(registry_message(long.as_bytes()).len(), 202);
    }

    #[test]
    fn digests_are_sha256_lower_hex() {
        assert!(is_digest(&sha256_digest(b"")));
        assert!(!is_digest("sha256:ABC"));
        assert!(!is_digest("sha512:00"));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
    }
}
