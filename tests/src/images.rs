//! Images made here with exactly the config a test needs (platform, labels,
//! user, env, creation time, size), as the `docker save` tarball an engine
//! loads and a server takes as an upload. Nothing is pulled: the one layer is
//! a tar of random bytes, so its size is what the test asked for and no two
//! images share it.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::services::docker;

/// What the image's config says, and how big its layer is.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// `variant`.
    pub variant: Option<String>,
    /// `config.Labels`.
    pub labels: Vec<(String, String)>,
    /// `config.User` (`None`: not set, so root).
    pub user: Option<String>,
    /// `config.Env`, `NAME=value`.
    pub env: Vec<String>,
    /// `created` (RFC 3339).
    pub created: String,
    /// Bytes of random content in the one layer.
    pub layer_bytes: usize,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            labels: Vec::new(),
            user: None,
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            created: rfc3339_days_ago(0),
            layer_bytes: 4096,
        }
    }
}

impl ImageSpec {
    /// With a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }
}

/// The RFC 3339 time `days` days before now.
pub fn rfc3339_days_ago(days: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = now.saturating_sub(days * 86_400) as i64;
    let (day, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `n` random bytes from the kernel.
fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, path, bytes)?;
    Ok(())
}

/// The `docker save` tarball of an image tagged `reference` (`repo:tag`)
/// made as `spec` says.
pub fn save_tarball(reference: &str, spec: &ImageSpec) -> Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    append(
        &mut layer,
        "flavorbox-test.bin",
        &random_bytes(spec.layer_bytes)?,
    )?;
    let layer = layer.into_inner()?;
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&layer)));
    let mut config = serde_json::json!({
        "architecture": spec.architecture,
        "os": spec.os,
        "created": spec.created,
        "config": {
            "Env": spec.env,
            "Labels": spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            "Cmd": ["/bin/true"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": spec.created, "created_by": "flavorbox tests"}],
    });
    if let Some(variant) = &spec.variant {
        config["variant"] = variant.clone().into();
    }
    if let Some(user) = &spec.user {
        config["config"]["User"] = user.clone().into();
    }
    let config = serde_json::to_vec(&config)?;
    let config_hex = hex(&Sha256::digest(&config));
    let layer_dir = hex(&Sha256::digest(diff_id.as_bytes()));
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [reference],
        "Layers": [format!("{layer_dir}/layer.tar")],
    }]);
    let mut archive = tar::Builder::new(Vec::new());
    append(&mut archive, &format!("{layer_dir}/layer.tar"), &layer)?;
    append(&mut archive, &format!("{config_hex}.json"), &config)?;
    append(
        &mut archive,
        "manifest.json",
        &serde_json::to_vec(&manifest)?,
    )?;
    Ok(archive.into_inner()?)
}

/// Loads an image made as `spec` says into the engine as `reference`
/// (`docker load`, which keeps the config exactly as written).
pub async fn load_image(reference: &str, spec: &ImageSpec) -> Result<()> {
    let tarball = save_tarball(reference, spec)?;
    let docker = docker().await?;
    let mut stream = docker.import_image(
        bollard::query_parameters::ImportImageOptions::default(),
        bollard::body_full(tarball.into()),
        None,
    );
    while let Some(item) = stream.next().await {
        let info = item.with_context(|| format!("loading the test image {reference}"))?;
        if let Some(error) = info.error_detail.and_then(|e| e.message) {
            anyhow::bail!("loading the test image {reference}: {error}");
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
