//! The CLI as a client of a Flavorbox server (`flavorbox login`): the same
//! [`Backend`] the local mode implements, over HTTP/JSON, so every command
//! keeps its flags, output and `--json`.
//!
//! A push sends the image as a `docker save` tarball exported from the
//! local Docker engine, then follows the server's job until it ends.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::backend::Backend;
use flavorbox_app::SigningKey;
use flavorbox_app::audit::{AuditPage, AuditQuery};
use flavorbox_app::{
    CheckReport, CheckRequest, ComponentInfo, CreateSecret, FlavorInfo, FlavorUpdate, ImageSeen,
    JobInfo, JobStatus, PublishReport, PushProgress, PushReport, PushRequest, RegisterComponent,
    RegisterFromOci, RegistryBody, SecretBody, SecretInfo, UpdateComponent,
};

/// What a server does not do for a tenant yet.
const LOCAL_ONLY: &str = "`flavor publish`, `flavor sign` and `flavor update` run on local state only: run `flavorbox logout` first (a server registers `oci://` sources with `flavor register`)";

/// File, in the state directory, that remembers the server after `login`.
pub(crate) const LOGIN_FILE: &str = "server.json";

/// Where the CLI sends its requests and with which token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Login {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub(crate) url: String,
    /// The tenant's bearer token; written only to the owner-only login file.
    #[serde(serialize_with = "flavorbox_app::wire::serialize_secret")]
    pub(crate) token: SecretString,
}

impl Login {
    /// `FLAVORBOX_SERVER` + `FLAVORBOX_TOKEN`, else the saved login, else none.
    pub(crate) fn current(home: &Path) -> anyhow::Result<Option<Login>> {
        if let Ok(url) = std::env::var("FLAVORBOX_SERVER")
            && !url.is_empty()
        {
            let token = std::env::var("FLAVORBOX_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| anyhow!("FLAVORBOX_SERVER is set but FLAVORBOX_TOKEN is not"))?;
            return Ok(Some(Login {
                url: normalise_url(&url)?,
                token: token.into(),
            }));
        }
        let path = home.join(LOGIN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a login saved by `flavorbox login`; run `flavorbox logout` and log in again",
                    path.display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Saves the login in `home`, readable by its owner only.
    pub(crate) fn save(&self, home: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        let path = home.join(LOGIN_FILE);
        let mut tmp = tempfile::NamedTempFile::new_in(home)?;
        tmp.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// Checks and trims a server URL.
pub(crate) fn normalise_url(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url)
        .with_context(|| format!("`{url}` is not a URL; use e.g. http://127.0.0.1:8080"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        bail!("`{url}` is not an http(s) URL; use e.g. https://flavorbox.example.com");
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The server's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A failure the server reported, with its code and status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ServerError {
    /// HTTP status.
    pub(crate) status: u16,
    /// The error code.
    pub(crate) code: String,
    /// The server's message.
    pub(crate) message: String,
}

/// The HTTP client.
#[derive(Clone)]
pub(crate) struct RemoteBackend {
    login: Login,
    agent: ureq::Agent,
}

impl RemoteBackend {
    pub(crate) fn new(login: Login) -> RemoteBackend {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .redirects(0)
            .build();
        RemoteBackend { login, agent }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.login.url)
    }

    /// One request, off the async runtime; JSON in, JSON or nothing out.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        path: String,
        body: Body,
    ) -> anyhow::Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.call_blocking(method, &path, body))
            .await
            .map_err(|e| anyhow!("the request task failed: {e}"))?
    }

    fn call_blocking<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Body,
    ) -> anyhow::Result<T> {
        let url = self.url(path);
        let request = self.agent.request(method, &url).set(
            "Authorization",
            &format!("Bearer {}", self.login.token.expose_secret()),
        );
        let result = match body {
            Body::None => request.call(),
            Body::Json(value) => request
                .set("Content-Type", "application/json")
                .send_string(&value.to_string()),
            Body::Bytes(bytes, content_type) => {
                request.set("Content-Type", content_type).send_bytes(&bytes)
            }
            Body::File(path) => {
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                request
                    .set("Content-Type", "application/x-tar")
                    .send(std::io::BufReader::new(file))
            }
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                return Err(match serde_json::from_str::<ErrorBody>(&text) {
                    Ok(body) => ServerError {
                        status,
                        code: body.error.code,
                        message: body.error.message,
                    }
                    .into(),
                    Err(_) => anyhow!("the server at {} answered HTTP {status}", self.login.url),
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(anyhow!(
                    "cannot reach the server at {}: {t}; check the URL (`flavorbox login`) or that the server runs",
                    self.login.url
                ));
            }
        };
        if response.status() == 204 {
            return serde_json::from_value(serde_json::Value::Null)
                .map_err(|e| anyhow!("unexpected empty answer: {e}"));
        }
        let text = response
            .into_string()
            .with_context(|| format!("reading the answer of {method} {path}"))?;
        serde_json::from_str(&text).with_context(|| {
            format!("the answer of {method} {path} is not what this client expects")
        })
    }

    /// Checks the URL and token: what `login` does before saving.
    pub(crate) async fn verify(&self) -> anyhow::Result<()> {
        let _: Vec<FlavorInfo> = self.call("GET", "/v1/flavors".into(), Body::None).await?;
        Ok(())
    }

    async fn check(&self, request: &PushRequest) -> anyhow::Result<CheckReport> {
        self.call(
            "POST",
            format!("/v1/registries/{}/check", segment(&request.component)),
            Body::json(&CheckRequest {
                image: request.image.clone(),
            })?,
        )
        .await
    }
}

/// A request body.
enum Body {
    None,
    Json(serde_json::Value),
    Bytes(Vec<u8>, &'static str),
    File(PathBuf),
}

impl Body {
    fn json(value: &impl Serialize) -> anyhow::Result<Body> {
        Ok(Body::Json(serde_json::to_value(value)?))
    }
}

/// A name as one URL path segment.
fn segment(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Backend for RemoteBackend {
    async fn register_flavor(&self, bytes: Vec<u8>) -> anyhow::Result<FlavorInfo> {
        self.call(
            "POST",
            "/v1/flavors".into(),
            Body::Bytes(bytes, "application/wasm"),
        )
        .await
    }
    async fn register_flavor_from_oci(
        &self,
        request: RegisterFromOci,
    ) -> anyhow::Result<FlavorInfo> {
        self.call("POST", "/v1/flavors".into(), Body::json(&request)?)
            .await
    }
    async fn publish_flavor(
        &self,
        _name: &str,
        _target: &str,
        _secret: Option<String>,
        _insecure: Vec<String>,
    ) -> anyhow::Result<PublishReport> {
        anyhow::bail!(LOCAL_ONLY)
    }
    async fn sign_flavor(
        &self,
        _source: &str,
        _key: &SigningKey,
        _secret: Option<String>,
        _insecure: Vec<String>,
    ) -> anyhow::Result<(String, String)> {
        anyhow::bail!(LOCAL_ONLY)
    }
    async fn update_flavor(
        &self,
        _name: &str,
        _secret: Option<String>,
        _insecure: Vec<String>,
        _verify_keys: Vec<String>,
    ) -> anyhow::Result<FlavorUpdate> {
        anyhow::bail!(LOCAL_ONLY)
    }
    async fn list_flavors(&self) -> anyhow::Result<Vec<FlavorInfo>> {
        self.call("GET", "/v1/flavors".into(), Body::None).await
    }
    async fn describe_flavor(&self, name: &str) -> anyhow::Result<FlavorInfo> {
        self.call("GET", format!("/v1/flavors/{}", segment(name)), Body::None)
            .await
    }
    async fn delete_flavor(&self, name: &str) -> anyhow::Result<()> {
        self.call(
            "DELETE",
            format!("/v1/flavors/{}", segment(name)),
            Body::None,
        )
        .await
    }
    async fn register_component(
        &self,
        request: RegisterComponent,
    ) -> anyhow::Result<ComponentInfo> {
        let body = RegistryBody {
            flavor: request.flavor,
            uri: request.uri,
            config: request.config,
            secret: request.secret,
        };
        self.call(
            "PUT",
            format!("/v1/registries/{}", segment(&request.name)),
            Body::json(&body)?,
        )
        .await
    }
    async fn update_component(
        &self,
        name: &str,
        update: UpdateComponent,
    ) -> anyhow::Result<ComponentInfo> {
        self.call(
            "PATCH",
            format!("/v1/registries/{}", segment(name)),
            Body::json(&update)?,
        )
        .await
    }
    async fn list_components(&self) -> anyhow::Result<Vec<ComponentInfo>> {
        self.call("GET", "/v1/registries".into(), Body::None).await
    }
    async fn describe_component(&self, name: &str) -> anyhow::Result<ComponentInfo> {
        self.call(
            "GET",
            format!("/v1/registries/{}", segment(name)),
            Body::None,
        )
        .await
    }
    async fn delete_component(&self, name: &str) -> anyhow::Result<()> {
        self.call(
            "DELETE",
            format!("/v1/registries/{}", segment(name)),
            Body::None,
        )
        .await
    }
    async fn create_secret(&self, secret: CreateSecret) -> anyhow::Result<()> {
        let _: SecretInfo = self
            .call(
                "PUT",
                format!("/v1/secrets/{}", segment(&secret.name)),
                Body::json(&SecretBody {
                    username: secret.username,
                    password: secret.password,
                })?,
            )
            .await?;
        Ok(())
    }
    async fn list_secrets(&self) -> anyhow::Result<Vec<SecretInfo>> {
        self.call("GET", "/v1/secrets".into(), Body::None).await
    }
    async fn delete_secret(&self, name: &str) -> anyhow::Result<()> {
        self.call(
            "DELETE",
            format!("/v1/secrets/{}", segment(name)),
            Body::None,
        )
        .await
    }
    async fn push(
        &self,
        request: PushRequest,
        on_progress: &mut (dyn FnMut(PushProgress) + Send),
    ) -> anyhow::Result<PushReport> {
        // The check is the first half of the push, as the server runs it.
        // Asked first, it also spares an export when the server refuses
        // (a denial, a wrong registry) before the upload.
        let checked = self.check(&request).await?;
        // The server's check leaves the flavor's name out: asked for where
        // it is shown (a denial, a dry run's log lines).
        let flavor = if !checked.allowed || (request.dry_run && !checked.logs.is_empty()) {
            self.describe_component(&request.component).await?.flavor
        } else {
            String::new()
        };
        // A dry run for a flavor that asks to see the image, which a check
        // by name cannot show it: when the engine has the image, it is
        // uploaded and the server decides on what it reads there, as the
        // push would, and that decision (not the check's, made blind) is
        // the one shown. Without the image, the answer by name stands.
        let seen = checked.image_info;
        let dry_run_upload = if request.dry_run && checked.allowed && seen == ImageSeen::Absent {
            flavorbox_app::save_image(&request.image).await.ok()
        } else {
            None
        };
        // Past the check the server's job reports the flavor's decision
        // itself: the check's is shown only when the push ends with it.
        if (request.dry_run && dry_run_upload.is_none()) || !checked.allowed {
            on_progress(checked.progress(&flavor));
        }
        let pushed = checked.into_push(&flavor, request.dry_run)?;
        if request.dry_run {
            return match dry_run_upload {
                Some(archive) => self.upload(&request, archive, pushed, on_progress).await,
                None => Ok(pushed),
            };
        }
        let archive = flavorbox_app::save_image(&request.image).await?;
        self.upload(&request, archive, pushed, on_progress).await
    }
    async fn audit(&self, query: AuditQuery) -> anyhow::Result<AuditPage> {
        self.call("GET", audit_path(&query), Body::None).await
    }
}

/// `GET /v1/audit` with the query's filters as parameters (the server
/// checks them, as the local app does).
fn audit_path(query: &AuditQuery) -> String {
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    let text = [
        ("image", query.image.clone()),
        ("verdict", query.verdict.clone()),
        ("since", query.since.clone()),
        ("until", query.until.clone()),
        ("before", query.before.map(|n| n.to_string())),
        ("limit", query.limit.map(|n| n.to_string())),
    ];
    for (name, value) in text {
        if let Some(value) = value {
            params.append_pair(name, &value);
        }
    }
    let params = params.finish();
    if params.is_empty() {
        "/v1/audit".to_string()
    } else {
        format!("/v1/audit?{params}")
    }
}

impl RemoteBackend {
    /// Uploads the image archive for a push job (a dry run when the request
    /// is one) and follows the job to its end, handing on its progress.
    async fn upload(
        &self,
        request: &PushRequest,
        archive: tempfile::NamedTempFile,
        pushed: PushReport,
        on_progress: &mut (dyn FnMut(PushProgress) + Send),
    ) -> anyhow::Result<PushReport> {
        let job: JobInfo = self
            .call(
                "POST",
                format!(
                    "/v1/registries/{}/push?image={}{}",
                    segment(&request.component),
                    url::form_urlencoded::byte_serialize(request.image.as_bytes())
                        .collect::<String>(),
                    if request.dry_run { "&dry_run=true" } else { "" }
                ),
                Body::File(archive.path().to_path_buf()),
            )
            .await?;
        drop(archive);
        let mut seen = 0usize;
        loop {
            let now: JobInfo = self
                .call("GET", format!("/v1/jobs/{}", segment(&job.id)), Body::None)
                .await?;
            for step in now.progress.iter().skip(seen) {
                on_progress(step.clone());
            }
            seen = seen.max(now.progress.len());
            if now.status.is_done() {
                return match now.status {
                    JobStatus::Succeeded => Ok(PushReport {
                        digest: now.digest,
                        warnings: now.warnings,
                        // The job decided on the uploaded image: a flavor
                        // that asks for it was shown it.
                        image_info: match pushed.image_info {
                            ImageSeen::NotAsked => ImageSeen::NotAsked,
                            ImageSeen::Absent | ImageSeen::Given => ImageSeen::Given,
                        },
                        ..pushed
                    }),
                    _ => Err(match now.error {
                        Some(error) => anyhow!(error.message),
                        None => anyhow!("push job {} failed", now.id),
                    }),
                };
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_query_becomes_encoded_parameters() {
        assert_eq!(audit_path(&AuditQuery::default()), "/v1/audit");
        let query = AuditQuery {
            image: Some("127.0.0.1:5000/team/app:1".into()),
            verdict: Some("denied".into()),
            since: Some("2026-12-01T00:00:00+01:00".into()),
            until: None,
            before: Some(42),
            limit: Some(10),
        };
        assert_eq!(
            audit_path(&query),
            "/v1/audit?image=127.0.0.1%3A5000%2Fteam%2Fapp%3A1&verdict=denied\
             &since=2026-12-01T00%3A00%3A00%2B01%3A00&before=42&limit=10"
        );
    }

    #[test]
    fn debug_of_a_login_hides_the_token() {
        let login = Login {
            url: "http://127.0.0.1:8080".into(),
            token: "tok-hunter2".into(),
        };
        let shown = format!("{login:?} {login:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:8080"), "{shown}");
    }

    #[test]
    fn a_saved_login_keeps_its_json_shape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let login = Login {
            url: "http://127.0.0.1:8080".into(),
            token: "tok-hunter2".into(),
        };
        let path = login.save(dir.path()).expect("saves");
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("reads")).expect("json");
        assert_eq!(
            saved,
            serde_json::json!({"url": "http://127.0.0.1:8080", "token": "tok-hunter2"})
        );
        let back: Login = serde_json::from_value(saved).expect("parses");
        assert_eq!(back.token.expose_secret(), "tok-hunter2");
    }
}
