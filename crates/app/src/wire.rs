//! What goes into and comes out of the application layer: plain data,
//! serde both ways, so the CLI prints it, the server sends it as JSON and
//! the CLI's remote mode reads it back into the same types.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use flavorbox_grammar::Reference;
use flavorbox_net::push::PushEvent;
use flavorbox_sandbox::flavor::{FlavorMetadata, LogLine};

/// A flavor as listed and described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlavorInfo {
    /// Its name.
    pub name: String,
    /// Shipped with the host, or registered by a user.
    pub builtin: bool,
    /// SHA-256 of the component.
    pub sha256: String,
    /// When it was registered (registered flavors only).
    pub registered_at: Option<String>,
    /// What the flavor says about itself.
    pub metadata: FlavorMetadata,
    /// The OCI artifact it was registered from (absent for a file or a built-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FlavorOriginInfo>,
}

/// The OCI artifact a flavor was registered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlavorOriginInfo {
    /// The `oci://` source as given.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
    /// The id (SHA-256 of the public key) whose signature was verified, if one was required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

/// Where to register a flavor from: an OCI artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterFromOci {
    /// `oci://HOST/REPO:TAG[@sha256:…]`.
    pub source: String,
    /// The secret holding the registry's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Registries (`host[:port]`) to reach over plain HTTP; loopback always is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
    /// PEM public keys (ECDSA P-256) one of which must have signed the
    /// manifest digest, besides the operator's trusted keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_keys: Vec<String>,
}

/// What `flavor update` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlavorUpdate {
    /// The flavor as it is now.
    pub flavor: FlavorInfo,
    /// The digest the flavor had before.
    pub previous_digest: String,
    /// Whether the tag had moved (and the flavor was replaced).
    pub moved: bool,
    /// Registry components to validate again (`flavorbox registry update NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revalidate: Vec<String>,
}

/// What `flavor publish` pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublishReport {
    /// The target, `oci://HOST/REPO:TAG`.
    pub target: String,
    /// The manifest digest.
    pub digest: String,
}

/// A registry component as listed and described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComponentInfo {
    /// Its name.
    pub name: String,
    /// The flavor that validates and approves for it.
    pub flavor: String,
    /// The registry URI.
    pub uri: String,
    /// ZenML's `is_local`: the uri is `localhost:PORT`.
    pub is_local: bool,
    /// The normalised config.
    pub config: Value,
    /// Name of the secret with its credentials.
    pub secret: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it was last changed.
    pub updated_at: String,
    /// Log lines the flavor emitted while validating (register/update only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
}

/// What may be shown of a secret: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SecretInfo {
    /// Secret name.
    pub name: String,
    /// Registry user name.
    pub username: String,
    /// When it was created (RFC 3339 UTC).
    pub created_at: String,
}

/// Register a registry component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterComponent {
    /// Component name.
    pub name: String,
    /// Flavor name (built-in or registered).
    pub flavor: String,
    /// Registry URI.
    pub uri: String,
    /// Further config keys, validated by the flavor.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Secret holding the registry credentials.
    #[serde(default)]
    pub secret: Option<String>,
}

/// What an update does to a component's secret. In JSON: the field left
/// out keeps it, a name sets it, `null` removes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SecretChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Use this secret.
    Set(String),
    /// Push without credentials.
    Remove,
}

/// Update a registry component: a new uri, config keys (`null` removes a
/// key), or secret; the merged config is validated again.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateComponent {
    /// New registry URI.
    #[serde(default)]
    pub uri: Option<String>,
    /// Config keys to set (`null` removes).
    #[serde(default)]
    pub config: Map<String, Value>,
    /// What to do with the secret: left out keeps it, a name sets it, `null` removes it.
    #[serde(
        default,
        skip_serializing_if = "SecretChange::is_keep",
        with = "secret_change"
    )]
    #[schema(value_type = Option<String>)]
    pub secret: SecretChange,
}

impl SecretChange {
    /// Whether the secret is left as it is.
    pub fn is_keep(&self) -> bool {
        matches!(self, SecretChange::Keep)
    }
}

/// `SecretChange` as an optional, nullable string field.
mod secret_change {
    use super::SecretChange;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(change: &SecretChange, s: S) -> Result<S::Ok, S::Error> {
        match change {
            SecretChange::Set(name) => s.serialize_some(name),
            SecretChange::Remove | SecretChange::Keep => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretChange, D::Error> {
        // Present: a name or null. Absent: `default` gives Keep.
        Ok(match Option::<String>::deserialize(d)? {
            Some(name) => SecretChange::Set(name),
            None => SecretChange::Remove,
        })
    }
}

/// Create a secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateSecret {
    /// Secret name.
    pub name: String,
    /// Registry user name.
    pub username: String,
    /// Password or token; never printed.
    #[serde(serialize_with = "serialize_secret")]
    #[schema(value_type = String)]
    pub password: SecretString,
}

/// Writes a secret's value into JSON: for the fields that carry one to
/// where it is used (a request body, the CLI's saved login), and nowhere
/// else. `secrecy` deliberately has no `Serialize` for a string secret.
pub fn serialize_secret<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// Push an image to a component's registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushRequest {
    /// The image reference, as the user wrote it.
    pub image: String,
    /// The registry component.
    pub component: String,
    /// Stop after the checks, before the engine.
    #[serde(default)]
    pub dry_run: bool,
}

/// What happens during a push, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum PushProgress {
    /// The flavor decided (approve or deny); its log lines and warnings.
    Flavor {
        /// The flavor's name.
        flavor: String,
        /// The flavor's log lines.
        logs: Vec<LogLine>,
        /// The flavor's warnings (empty on a denial).
        warnings: Vec<String>,
    },
    /// The engine reported progress.
    Engine {
        /// The engine's event.
        event: PushEvent,
    },
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PushReport {
    /// The normalised reference pushed.
    pub image: String,
    /// The manifest digest the registry reported (none on a dry run).
    pub digest: Option<String>,
    /// The flavor's warnings.
    pub warnings: Vec<String>,
    /// Whether the engine was left out.
    pub dry_run: bool,
    /// Whether the flavor's decision saw the image.
    #[serde(default)]
    pub image_info: ImageSeen,
}

/// An image reference as the host parsed and normalised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageInfo {
    /// Registry host with optional port.
    pub domain: String,
    /// Repository path without the domain.
    pub path: String,
    /// Tag, when there is one.
    pub tag: Option<String>,
    /// Digest, when there is one.
    pub digest: Option<String>,
    /// `domain/path`.
    pub name: String,
}

impl From<&Reference> for ImageInfo {
    fn from(r: &Reference) -> Self {
        ImageInfo {
            domain: r.domain().to_string(),
            path: r.path().to_string(),
            tag: r.tag().map(str::to_string),
            digest: r.digest().map(str::to_string),
            name: r.name(),
        }
    }
}

/// Check an image against a component: the host's checks and the flavor's
/// decision, without pushing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The image reference, as the user wrote it.
    pub image: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckReport {
    /// Whether the flavor approves the push.
    pub allowed: bool,
    /// The flavor's warnings (on approval).
    pub warnings: Vec<String>,
    /// The flavor's reason (on denial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reference the host parsed, normalised, with the default tag.
    pub image: ImageInfo,
    /// The flavor's log lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
    /// Whether the flavor decided having seen the image (WIT 0.2's
    /// `image-info`): a check by name alone cannot show it the image.
    #[serde(default)]
    pub image_info: ImageSeen,
}

/// Whether a flavor's decision saw what the host read from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSeen {
    /// The flavor does not ask for the image (every 0.1 flavor).
    #[default]
    NotAsked,
    /// The flavor asks, and the host had no image to read (a check by
    /// name, a dry run of an image the engine does not have): its rules
    /// that need the image are checked by the push.
    Absent,
    /// The flavor decided with what the host read from the image.
    Given,
}

/// Where a push job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    /// Accepted, not started.
    Queued,
    /// Checking, loading or pushing.
    Running,
    /// Pushed; the digest is set.
    Succeeded,
    /// Failed; the error is set.
    Failed,
    /// The server stopped before the job ended; the error (`interrupted`)
    /// says to push again.
    Interrupted,
}

impl JobStatus {
    /// Whether the job may still change: queued or running.
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    /// The word shown (the API's; the store keeps its own, see
    /// `flavorbox_store::JobStatus`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
        }
    }

    /// Whether the job is over.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Interrupted
        )
    }
}

/// Why a job failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// A stable code (the server's error codes).
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// A push job as shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobInfo {
    /// The job id.
    pub id: String,
    /// The registry component pushed to.
    pub registry: String,
    /// The image as given.
    pub image: String,
    /// Where it is.
    pub status: JobStatus,
    /// The most recent progress, newest last (bounded).
    #[serde(default)]
    pub progress: Vec<PushProgress>,
    /// The manifest digest the registry reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The flavor's warnings.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// When it was accepted.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// Which owner runs (or ran) the job: 1 for the server that accepted
    /// it, one more each time another replica took it over from its
    /// shared upload after its owner stopped.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

/// The body of `PUT /v1/registries/{name}`: a registry component without its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistryBody {
    /// Flavor name (built-in or registered).
    pub flavor: String,
    /// Registry URI.
    pub uri: String,
    /// Further config keys, validated by the flavor.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Secret holding the registry credentials.
    #[serde(default)]
    pub secret: Option<String>,
}

/// The body of `PUT /v1/secrets/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretBody {
    /// Registry user name.
    pub username: String,
    /// Password or token; stored encrypted, never returned.
    #[serde(serialize_with = "serialize_secret")]
    #[schema(value_type = String)]
    pub password: SecretString,
}

/// The attempt of a job no replica took over.
fn first_attempt() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use flavorbox_net::push::PushEvent;

    #[test]
    fn debug_of_a_secret_request_hides_the_password() {
        let create = CreateSecret {
            name: "hub".into(),
            username: "bob".into(),
            password: "hunter2".into(),
        };
        let body = SecretBody {
            username: "bob".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{create:?} {create:#?} {body:?} {body:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("bob") && shown.contains("hub"), "{shown}");
    }

    #[test]
    fn secret_requests_keep_their_json_shape() {
        let create = CreateSecret {
            name: "hub".into(),
            username: "bob".into(),
            password: "hunter2".into(),
        };
        let text = serde_json::to_string(&create).expect("serialises");
        assert_eq!(
            text,
            r#"{"name":"hub","username":"bob","password":"hunter2"}"#
        );
        let back: CreateSecret = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.password.expose_secret(), "hunter2");
        let body = SecretBody {
            username: "bob".into(),
            password: "hunter2".into(),
        };
        let text = serde_json::to_string(&body).expect("serialises");
        assert_eq!(text, r#"{"username":"bob","password":"hunter2"}"#);
        let back: SecretBody = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.password.expose_secret(), "hunter2");
        let err = serde_json::from_str::<SecretBody>(r#"{"username":"bob","password":7}"#)
            .expect_err("a number is no password");
        assert!(err.to_string().contains("expected a string"), "{err}");
        // The OpenAPI document still says a string.
        let schema =
            serde_json::to_value(<SecretBody as utoipa::PartialSchema>::schema()).expect("schema");
        assert_eq!(schema["properties"]["password"]["type"], "string");
        assert_eq!(
            schema["required"],
            serde_json::json!(["username", "password"])
        );
    }

    #[test]
    fn push_progress_round_trips_through_json() {
        let steps = vec![
            PushProgress::Engine {
                event: PushEvent::Status {
                    status: "loading".into(),
                },
            },
            PushProgress::Engine {
                event: PushEvent::Layer {
                    id: "abc".into(),
                    status: "Pushing".into(),
                    current: Some(1),
                    total: Some(2),
                },
            },
        ];
        let text = serde_json::to_string(&steps).expect("serialises");
        let back: Vec<PushProgress> = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, steps);
    }
}
