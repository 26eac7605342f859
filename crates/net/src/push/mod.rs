//! Pushing an image to its registry: one that already exists in the local
//! Docker engine, through bollard (the CLI), or one uploaded as an archive,
//! straight over the registry's API with no engine ([`distribution`], the
//! server).
//!
//! This module is the only place that talks to the Docker engine. It knows
//! nothing of flavors: by the time it runs, the host has parsed the reference,
//! checked that it belongs to the registry and asked the flavor for approval.
//! It turns the engine's progress stream into [`PushEvent`]s and its failures
//! into a [`PushError`] that says what to do, and it reports the digest the
//! registry stored.
//!
//! It takes a parsed [`Reference`], not a string: the domain, repository and
//! tag come from the one reference parser, never from a second guess here.

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::PushImageOptions;
use futures_util::StreamExt;
use secrecy::ExposeSecret as _;

use crate::credentials::Credentials;
use flavorbox_grammar::Reference;

pub mod distribution;

pub use distribution::ArchiveLimits;

/// One progress item of a push, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PushEvent {
    /// Progress of one layer ("Preparing", "Pushing", "Pushed", "Layer already exists", ...).
    Layer {
        /// The layer's short id; empty when the engine client does not pass it
        /// on (bollard 0.19's `PushImageInfo` has no `id` field).
        id: String,
        /// The engine's status line for this layer.
        status: String,
        /// Bytes pushed so far, when the engine reports them.
        current: Option<u64>,
        /// Size of the layer in bytes, when the engine reports it.
        total: Option<u64>,
    },
    /// A status line that is not about one layer ("The push refers to repository ...", the digest line).
    Status {
        /// The engine's status line.
        status: String,
    },
}

/// What a successful push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The manifest digest the registry stored, `sha256:<hex>`.
    pub digest: String,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The Docker engine could not be reached or refused the client.
    #[error(
        "cannot reach the Docker engine at {host}: {message}. Start one (as root: `dockerd --storage-driver=vfs --iptables=false --bridge=none &`) or set DOCKER_HOST to a running engine (unix:///path/to/docker.sock or tcp://host:port)"
    )]
    Connect {
        /// The engine address that was tried.
        host: String,
        /// What went wrong.
        message: String,
    },
    /// The reference handed in has no tag, or has a digest.
    #[error("cannot push `{image}`: {reason}")]
    InvalidReference {
        /// The reference as given.
        image: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The image is not in the local engine.
    #[error(
        "image `{image}` does not exist in the local Docker engine: build or tag it first (`docker tag <image> {image}`)"
    )]
    ImageNotFound {
        /// The reference that was not found.
        image: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error(
        "registry {registry} refused the push: {message}. Check the credentials configured for this registry"
    )]
    Auth {
        /// The registry domain.
        registry: String,
        /// The engine's message.
        message: String,
    },
    /// The engine could not reach the registry.
    #[error(
        "registry {registry} is unreachable from the Docker engine: {message}. Check that the registry is running and that its address is right"
    )]
    Unreachable {
        /// The registry domain.
        registry: String,
        /// The engine's message.
        message: String,
    },
    /// The engine reported an error the push layer does not classify further.
    #[error("the Docker engine reported an error while pushing: {message}")]
    Stream {
        /// The engine's message.
        message: String,
    },
    /// The registry refused or broke off a push made over its API.
    #[error("registry push of `{image}` failed: {message}")]
    Registry {
        /// The image pushed.
        image: String,
        /// What went wrong.
        message: String,
    },
    /// The image costs more than the server allows (what its layers expand to).
    #[error("{message}")]
    TooLarge {
        /// What is too large, and the limit.
        message: String,
    },
    /// An uploaded image archive is not one image (`docker save`, or an OCI layout).
    #[error("{0}")]
    BadArchive(String),
    /// The local engine could not export (`docker save`) an image.
    #[error(
        "cannot export `{image}` from the local Docker engine: {message}; build or tag it first"
    )]
    Export {
        /// The image asked for.
        image: String,
        /// What went wrong.
        message: String,
    },
    /// The push stream ended without a manifest digest.
    #[error(
        "the push ended without the registry reporting a manifest digest; the image may not have been stored, retry the push"
    )]
    NoDigest,
}

/// Seconds bollard waits for one engine request; a push of a large image
/// streams progress well within it.
const ENGINE_TIMEOUT_SECS: u64 = 120;

/// The engine address the defaults resolve to, for messages.
fn engine_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// `docker save IMAGE` from the local engine into a temporary file: what
/// the CLI uploads to a server, which pushes without an engine.
pub async fn save_image(image: &str) -> Result<tempfile::NamedTempFile, PushError> {
    let docker = connect().await?;
    let export_error = |message: String| PushError::Export {
        image: image.to_string(),
        message,
    };
    let file = tempfile::NamedTempFile::new()
        .map_err(|e| export_error(format!("cannot create a temporary file: {e}")))?;
    let unwritable =
        |e: std::io::Error| export_error(format!("cannot write the temporary file: {e}"));
    let mut out = tokio::fs::File::from_std(file.reopen().map_err(unwritable)?);
    let mut stream = docker.export_image(image);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| export_error(e.to_string()))?;
        tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
            .await
            .map_err(unwritable)?;
    }
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(unwritable)?;
    Ok(file)
}

/// Connects to the engine named by DOCKER_HOST, else the local socket; negotiates the API version.
pub async fn connect() -> Result<Docker, PushError> {
    let host = engine_host();
    let docker = Docker::connect_with_defaults().map_err(|e| PushError::Connect {
        host: host.clone(),
        message: e.to_string(),
    })?;
    // Debian 12's engine (20.10) speaks API 1.41; bollard's default is newer
    // and would be refused as "client version too new" without negotiation.
    docker
        .negotiate_version()
        .await
        .map_err(|e| PushError::Connect {
            host,
            message: e.to_string(),
        })
}

/// Connects to the engine at `host` (`unix:///path/docker.sock`, `tcp://host:port`
/// or `http://host:port`); negotiates the API version.
pub async fn connect_to(host: &str) -> Result<Docker, PushError> {
    let connect_error = |message: String| PushError::Connect {
        host: host.to_string(),
        message,
    };
    let docker = if host.starts_with("unix://") || host.starts_with('/') {
        Docker::connect_with_unix(host, ENGINE_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, ENGINE_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(connect_error(
            "unsupported address: expected unix://, tcp:// or http://".to_string(),
        ));
    }
    .map_err(|e| connect_error(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| connect_error(e.to_string()))
}

/// A reference split into the parts the engine's push endpoint takes.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    /// The registry domain (`host[:port]`), `docker.io` for Docker Hub.
    domain: &'a str,
    /// Everything before the tag: `domain/path`.
    repository: String,
    /// The tag.
    tag: &'a str,
    /// The whole reference, for messages.
    image: String,
}

/// The push target of `image`; refuses what the engine would misread (no tag, a digest).
fn target(image: &Reference) -> Result<Target<'_>, PushError> {
    let invalid = |reason: &str| PushError::InvalidReference {
        image: image.to_string(),
        reason: reason.to_string(),
    };
    if image.digest().is_some() {
        return Err(invalid(
            "a push needs a tag, not a digest (`domain/path:tag`)",
        ));
    }
    let tag = image
        .tag()
        .ok_or_else(|| invalid("the reference has no tag (`domain/path:tag`)"))?;
    Ok(Target {
        domain: image.domain(),
        repository: image.name(),
        tag,
        image: image.to_string(),
    })
}

/// Pushes `image` (tag required, no digest) with optional credentials for its
/// registry domain, reporting each progress item to `on_event`.
pub async fn push_image(
    docker: &Docker,
    image: &Reference,
    credentials: Option<&Credentials>,
    on_event: &mut (dyn FnMut(PushEvent) + Send),
) -> Result<PushOutcome, PushError> {
    let target = target(image)?;
    let image = target.image.as_str();
    let options = PushImageOptions {
        tag: Some(target.tag.to_string()),
        platform: None,
    };
    let credentials = credentials.map(|c| DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.expose_secret().to_owned()),
        serveraddress: Some(target.domain.to_string()),
        ..Default::default()
    });

    let mut stream = docker.push_image(&target.repository, Some(options), credentials);
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| classify(e, image, target.domain))?;
        // bollard turns `error` items into `DockerStreamError`; an item with
        // only `errorDetail` is just as much a failure.
        if let Some(detail) = info.error_detail.as_ref().and_then(|d| d.message.clone()) {
            return Err(classify_message(&detail, image, target.domain));
        }
        let Some(status) = info.status else { continue };
        if let Some(found) = digest_from_status(&status, target.tag) {
            digest = Some(found.to_string());
        }
        let event = match info.progress_detail {
            Some(detail) => PushEvent::Layer {
                id: String::new(),
                status,
                current: detail.current.and_then(|n| u64::try_from(n).ok()),
                total: detail.total.and_then(|n| u64::try_from(n).ok()),
            },
            None if is_layer_status(&status) => PushEvent::Layer {
                id: String::new(),
                status,
                current: None,
                total: None,
            },
            None => PushEvent::Status { status },
        };
        on_event(event);
    }
    digest
        .map(|digest| PushOutcome { digest })
        .ok_or(PushError::NoDigest)
}

/// Whether a status line is one the engine emits per layer.
fn is_layer_status(status: &str) -> bool {
    const LAYER_STATUSES: [&str; 7] = [
        "Preparing",
        "Waiting",
        "Pushing",
        "Pushed",
        "Layer already exists",
        "Mounted from",
        "Retrying",
    ];
    LAYER_STATUSES.iter().any(|s| status.starts_with(s))
}

/// The digest in the engine's closing line `TAG: digest: sha256:<hex> size: N`.
fn digest_from_status<'a>(status: &'a str, tag: &str) -> Option<&'a str> {
    let rest = status.strip_prefix(tag)?.strip_prefix(": digest: ")?;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    let well_formed = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some(digest)
}

/// Maps a bollard error to a push error.
fn classify(error: BollardError, image: &str, registry: &str) -> PushError {
    match error {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } if !is_auth(&message) => PushError::ImageNotFound {
            image: image.to_string(),
        },
        BollardError::DockerResponseServerError { message, .. }
        | BollardError::DockerStreamError { error: message } => {
            classify_message(&message, image, registry)
        }
        BollardError::SocketNotFoundError(_)
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. }
        | BollardError::RequestTimeoutError => PushError::Connect {
            host: engine_host(),
            message: error.to_string(),
        },
        other => PushError::Stream {
            message: other.to_string(),
        },
    }
}

/// Whether an engine message says the registry refused the credentials.
fn is_auth(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "denied",
        "incorrect username or password",
    ]
    .iter()
    .any(|s| m.contains(s))
}

/// Classifies an engine error message.
fn classify_message(message: &str, image: &str, registry: &str) -> PushError {
    let m = message.to_ascii_lowercase();
    if m.contains("does not exist locally") || m.contains("no such image") {
        return PushError::ImageNotFound {
            image: image.to_string(),
        };
    }
    if is_auth(message) {
        return PushError::Auth {
            registry: registry.to_string(),
            message: message.to_string(),
        };
    }
    let unreachable = [
        "connection refused",
        "dial tcp",
        "no such host",
        "timeout",
        "timed out",
        "i/o timeout",
        "connection reset",
        "network is unreachable",
    ];
    if unreachable.iter().any(|s| m.contains(s)) {
        return PushError::Unreachable {
            registry: registry.to_string(),
            message: message.to_string(),
        };
    }
    PushError::Stream {
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_takes_domain_repository_and_tag_from_the_parsed_reference() {
        let cases = [
            (
                "127.0.0.1:5000/team/app:1",
                "127.0.0.1:5000",
                "127.0.0.1:5000/team/app",
                "1",
            ),
            ("localhost/app:v2", "localhost", "localhost/app", "v2"),
            ("ghcr.io/o/a:latest", "ghcr.io", "ghcr.io/o/a", "latest"),
            (
                "library/ubuntu:22.04",
                "docker.io",
                "docker.io/library/ubuntu",
                "22.04",
            ),
            ("[::1]:5000/app:1", "[::1]:5000", "[::1]:5000/app", "1"),
        ];
        for (image, domain, repository, tag) in cases {
            let reference = Reference::parse(image).expect(image);
            let t = target(&reference).expect(image);
            assert_eq!(
                (t.domain, t.repository.as_str(), t.tag),
                (domain, repository, tag),
                "{image}"
            );
        }
    }

    #[test]
    fn reference_without_tag_or_with_digest_is_refused() {
        let digest = format!("sha256:{}", "0".repeat(64));
        for image in [
            "127.0.0.1:5000/team/app".to_string(),
            format!("ghcr.io/o/a@{digest}"),
            format!("ghcr.io/o/a:1@{digest}"),
        ] {
            let reference = Reference::parse(&image).expect("valid reference");
            assert!(
                matches!(target(&reference), Err(PushError::InvalidReference { .. })),
                "{image}"
            );
        }
    }

    #[test]
    fn digest_is_read_from_the_closing_status_line() {
        let hex = "a".repeat(64);
        let line = format!("1: digest: sha256:{hex} size: 528");
        assert_eq!(
            digest_from_status(&line, "1"),
            Some(format!("sha256:{hex}").as_str())
        );
        assert_eq!(digest_from_status(&line, "2"), None);
        assert_eq!(
            digest_from_status("1: digest: sha256:xyz size: 1", "1"),
            None
        );
        assert_eq!(digest_from_status("Pushed", "1"), None);
    }

    #[test]
    fn engine_messages_are_classified() {
        let auth = [
            "unauthorized: authentication required",
            "no basic auth credentials",
        ];
        for m in auth {
            assert!(
                matches!(classify_message(m, "i", "r"), PushError::Auth { .. }),
                "{m}"
            );
        }
        let unreachable = [
            "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
            "dial tcp: lookup nowhere.invalid: no such host",
            "net/http: request canceled while waiting for connection (Client.Timeout exceeded)",
        ];
        for m in unreachable {
            assert!(
                matches!(classify_message(m, "i", "r"), PushError::Unreachable { .. }),
                "{m}"
            );
        }
        assert!(matches!(
            classify_message(
                "An image does not exist locally with the tag: x/y",
                "i",
                "r"
            ),
            PushError::ImageNotFound { .. }
        ));
        assert!(matches!(
            classify_message("something else", "i", "r"),
            PushError::Stream { .. }
        ));
    }
}
