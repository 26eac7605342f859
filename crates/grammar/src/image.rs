//! What the host reads from an image for a flavor: the `image-info` record
//! of `flavorbox:registry@0.2`, in the host's own form.
//!
//! The host builds it from the image itself, never from the flavor and
//! never from what a client claims: from an image config (the OCI / Docker
//! image config JSON, or the engine's inspect of the same fields) and the
//! layers the host measured. Everything is pure here: [`ImageConfig`] is the
//! part of the config the record uses, [`ImageFacts::from_config`] bounds it
//! and names what it cut. Env values never leave this module: only the
//! names before `=` are kept (values can hold secrets, and a flavor is
//! untrusted).

use std::collections::BTreeMap;

use serde::Deserialize;

/// Bounds of the record, the ones the WIT documents.
pub mod bounds {
    /// Labels kept.
    pub const LABELS: usize = 64;
    /// Bytes of a label key.
    pub const LABEL_KEY: usize = 128;
    /// Bytes of a label value.
    pub const LABEL_VALUE: usize = 1024;
    /// Exposed ports kept.
    pub const PORTS: usize = 64;
    /// Bytes of a port.
    pub const PORT: usize = 64;
    /// Items of the entrypoint and of the cmd.
    pub const ARGS: usize = 64;
    /// Bytes of one entrypoint or cmd item.
    pub const ARG: usize = 1024;
    /// Env names kept.
    pub const ENV_NAMES: usize = 128;
    /// Bytes of one env name.
    pub const ENV_NAME: usize = 256;
    /// Layers listed (the count is always whole).
    pub const LAYERS: usize = 128;
    /// Bytes of `user`, `created`, the platform's fields and a digest.
    pub const SHORT: usize = 256;
}

/// The platform an image was built for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `v8`.
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// One layer, base first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerFacts {
    /// The layer's digest as the image names it.
    pub digest: String,
    /// Bytes as pushed (compressed), when known.
    pub compressed_size: Option<u64>,
    /// Bytes of the layer's tar stream, when known.
    pub uncompressed_size: Option<u64>,
}

/// The `image-info` record, bounded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageFacts {
    /// From the config.
    pub platform: Platform,
    /// `sha256:...` of the config.
    pub config_digest: String,
    /// RFC 3339, as the config says.
    pub created: Option<String>,
    /// Seconds from `created` to the host's clock.
    pub age_seconds: Option<u64>,
    /// The config's `User`; empty is root.
    pub user: String,
    /// Sorted by key.
    pub labels: Vec<(String, String)>,
    /// Sorted.
    pub exposed_ports: Vec<String>,
    /// The config's `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// The config's `Cmd`.
    pub cmd: Vec<String>,
    /// Names of `Env` entries, in order.
    pub env_names: Vec<String>,
    /// The true number of layers.
    pub layer_count: u32,
    /// At most [`bounds::LAYERS`].
    pub layers: Vec<LayerFacts>,
    /// Sum of the layers' compressed sizes when every one is known.
    pub compressed_size: Option<u64>,
    /// Sum of the layers' uncompressed sizes when every one is known.
    pub uncompressed_size: Option<u64>,
    /// Fields cut to their bounds, by their WIT names.
    pub truncated: Vec<String>,
}

/// The part of an image config (OCI image spec `config.json`, Docker's
/// image JSON) the record is made from. Unknown fields are ignored; every
/// field may be missing.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    /// `os`.
    #[serde(default)]
    pub os: Option<String>,
    /// `architecture`.
    #[serde(default)]
    pub architecture: Option<String>,
    /// `variant`.
    #[serde(default)]
    pub variant: Option<String>,
    /// `created` (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// `config`: the run-time defaults.
    #[serde(default)]
    pub config: Option<RunConfig>,
}

/// The `config` object of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunConfig {
    /// `User`.
    #[serde(default, rename = "User")]
    pub user: Option<String>,
    /// `Labels`.
    #[serde(default, rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `ExposedPorts` (an object whose keys are the ports).
    #[serde(default, rename = "ExposedPorts")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `Entrypoint`.
    #[serde(default, rename = "Entrypoint", deserialize_with = "string_or_list")]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(default, rename = "Cmd", deserialize_with = "string_or_list")]
    pub cmd: Option<Vec<String>>,
    /// `Env` (`NAME=value` entries).
    #[serde(default, rename = "Env", deserialize_with = "string_or_list")]
    pub env: Option<Vec<String>>,
}

/// A list of strings, or one string as a list of one: Docker's `strslice`
/// takes `"Cmd": "echo hi"` as well as `["echo", "hi"]`, and `null`.
fn string_or_list<'de, D>(deserializer: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(
        match Option::<OneOrMany>::deserialize(deserializer).map_err(|_| {
            // Never the value itself: an `Env` entry can hold a secret.
            serde::de::Error::custom("a field that must be a string or a list of strings is not")
        })? {
            None => None,
            Some(OneOrMany::One(one)) => Some(vec![one]),
            Some(OneOrMany::Many(many)) => Some(many),
        },
    )
}

impl ImageConfig {
    /// Parses config JSON; an error says what is wrong with it, where, and
    /// never quotes the config (its `Env` values can hold secrets).
    pub fn parse(json: &[u8]) -> Result<ImageConfig, String> {
        serde_json::from_slice(json).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => {
                    "is not an image config: a field has the wrong type"
                }
                serde_json::error::Category::Eof => "ends early",
                serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                    "is not valid JSON"
                }
            };
            format!(
                "the image config {what} (line {}, column {})",
                e.line(),
                e.column()
            )
        })
    }
}

/// `text` cut to at most `max` bytes on a character boundary; whether it was cut.
fn cut(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_string(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

/// Records what was cut, once per field.
struct Cuts(Vec<String>);

impl Cuts {
    fn note(&mut self, field: &str, was_cut: bool) {
        if was_cut && !self.0.iter().any(|f| f == field) {
            self.0.push(field.to_string());
        }
    }

    /// `text` cut to `max`, noting `field` when it was.
    fn text(&mut self, field: &str, text: &str, max: usize) -> String {
        let (text, was_cut) = cut(text, max);
        self.note(field, was_cut);
        text
    }

    /// At most `count` items of `items`, each cut to `max`.
    fn list<'a>(
        &mut self,
        field: &str,
        items: impl ExactSizeIterator<Item = &'a str>,
        count: usize,
        max: usize,
    ) -> Vec<String> {
        self.note(field, items.len() > count);
        items
            .take(count)
            .map(|i| self.text(field, i, max))
            .collect()
    }
}

impl ImageFacts {
    /// The bounded record of an image with `config` (whose digest is
    /// `config_digest`) and `layers` (base first, as measured), at
    /// `now_unix` seconds on the host's clock.
    pub fn from_config(
        config_digest: &str,
        config: &ImageConfig,
        layers: &[LayerFacts],
        now_unix: i64,
    ) -> ImageFacts {
        let mut cuts = Cuts(Vec::new());
        let run = config.config.clone().unwrap_or_default();
        let platform = Platform {
            os: cuts.text(
                "platform",
                config.os.as_deref().unwrap_or_default(),
                bounds::SHORT,
            ),
            architecture: cuts.text(
                "platform",
                config.architecture.as_deref().unwrap_or_default(),
                bounds::SHORT,
            ),
            variant: config
                .variant
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| cuts.text("platform", v, bounds::SHORT)),
        };
        let created = config
            .created
            .as_deref()
            .map(|c| cuts.text("created", c, bounds::SHORT));
        let age_seconds = config
            .created
            .as_deref()
            .and_then(unix_seconds)
            .map(|created| now_unix.saturating_sub(created).max(0) as u64);
        let labels = run.labels.unwrap_or_default();
        cuts.note("labels", labels.len() > bounds::LABELS);
        let labels = labels
            .iter()
            .take(bounds::LABELS)
            .map(|(k, v)| {
                (
                    cuts.text("labels", k, bounds::LABEL_KEY),
                    cuts.text("labels", v, bounds::LABEL_VALUE),
                )
            })
            .collect();
        let ports = run.exposed_ports.unwrap_or_default();
        let exposed_ports = cuts.list(
            "exposed-ports",
            ports.keys().map(String::as_str),
            bounds::PORTS,
            bounds::PORT,
        );
        let entrypoint = run.entrypoint.unwrap_or_default();
        let entrypoint = cuts.list(
            "entrypoint",
            entrypoint.iter().map(String::as_str),
            bounds::ARGS,
            bounds::ARG,
        );
        let cmd = run.cmd.unwrap_or_default();
        let cmd = cuts.list(
            "cmd",
            cmd.iter().map(String::as_str),
            bounds::ARGS,
            bounds::ARG,
        );
        let env = run.env.unwrap_or_default();
        let env_names = cuts.list(
            "env-names",
            env.iter()
                .map(|e| e.split_once('=').map_or(e.as_str(), |(name, _)| name)),
            bounds::ENV_NAMES,
            bounds::ENV_NAME,
        );
        let total = |size: fn(&LayerFacts) -> Option<u64>| {
            layers
                .iter()
                .try_fold(0u64, |sum, l| size(l).map(|s| sum.saturating_add(s)))
        };
        let compressed_size = total(|l| l.compressed_size);
        let uncompressed_size = total(|l| l.uncompressed_size);
        cuts.note("layers", layers.len() > bounds::LAYERS);
        let listed = layers
            .iter()
            .take(bounds::LAYERS)
            .map(|l| LayerFacts {
                digest: cuts.text("layers", &l.digest, bounds::SHORT),
                ..l.clone()
            })
            .collect();
        let user = cuts.text(
            "user",
            run.user.as_deref().unwrap_or_default(),
            bounds::SHORT,
        );
        ImageFacts {
            platform,
            config_digest: cuts.text("config-digest", config_digest, bounds::SHORT),
            created,
            age_seconds,
            user,
            labels,
            exposed_ports,
            entrypoint,
            cmd,
            env_names,
            layer_count: u32::try_from(layers.len()).unwrap_or(u32::MAX),
            layers: listed,
            compressed_size,
            uncompressed_size,
            truncated: cuts.0,
        }
    }

    /// The size a policy should hold to: compressed when known (what the
    /// registry stores), else uncompressed.
    pub fn size(&self) -> Option<u64> {
        self.compressed_size.or(self.uncompressed_size)
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2024-01-02T03:04:05Z`,
/// fractions and offsets allowed), or `None` when it is not one.
pub fn unix_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month) || !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59
    {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = rest.as_bytes();
            if r.len() != 6 || r[3] != b':' {
                return None;
            }
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strslice_fields_take_a_string_and_errors_never_quote_the_config() {
        let config = ImageConfig::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"Cmd":"echo hi","Entrypoint":null,"Env":"A=1"}}"#,
        )
        .unwrap();
        let run = config.config.unwrap();
        assert_eq!(run.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(run.entrypoint, None);
        assert_eq!(run.env, Some(vec!["A=1".to_string()]));
        for bad in [
            &br#"{"config":{"Env":["API_TOKEN=s3cr3t", 5]}}"#[..],
            br#"{"config":{"Env":{"API_TOKEN":"s3cr3t"}}}"#,
            br#"{"config":{"Labels":{"k":"s3cr3t","n":1}}}"#,
            br#"{"created":"s3cr3t","config":{"User":["s3cr3t"]}}"#,
            br#"{"config":{"Env":["API_TOKEN=s3cr3t"#,
        ] {
            let e = ImageConfig::parse(bad).unwrap_err();
            assert!(!e.contains("s3cr3t"), "{e}");
            assert!(e.starts_with("the image config "), "{e}");
            assert!(e.contains("line 1, column"), "{e}");
        }
    }

    #[test]
    fn rfc3339_times_read_as_unix_seconds() {
        for (text, want) in [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2024-01-02T03:04:05Z", Some(1_704_164_645)),
            ("2024-01-02T03:04:05.123456789Z", Some(1_704_164_645)),
            ("2024-01-02T05:04:05+02:00", Some(1_704_164_645)),
            ("2024-01-01T22:04:05-05:00", Some(1_704_164_645)),
            ("2000-02-29T00:00:00Z", Some(951_782_400)),
            ("0001-01-01T00:00:00Z", Some(-62_135_596_800)),
            ("2024-13-02T03:04:05Z", None),
            // Days past the month's end do not roll over.
            ("2026-02-30T00:00:00Z", None),
            ("2023-02-29T00:00:00Z", None),
            ("1900-02-29T00:00:00Z", None),
            ("2026-04-31T00:00:00Z", None),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800)),
            ("2024-01-02", None),
            ("2024-01-02T03:04:05", None),
            ("2024-01-02T03:04:05.Z", None),
            ("not a time at all, no", None),
            ("２024-01-02T03:04:05Z", None),
        ] {
            assert_eq!(unix_seconds(text), want, "{text}");
        }
    }

    #[test]
    fn env_values_never_reach_the_record() {
        let config = ImageConfig::parse(
            br#"{"os":"linux","architecture":"arm64","variant":"v8",
                 "config":{"Env":["PATH=/usr/bin","API_TOKEN=hunter2","EMPTY","X=a=b"]}}"#,
        )
        .expect("parses");
        let facts = ImageFacts::from_config("sha256:00", &config, &[], 0);
        assert_eq!(facts.env_names, ["PATH", "API_TOKEN", "EMPTY", "X"]);
        assert!(!format!("{facts:?}").contains("hunter2"));
        assert_eq!(facts.platform.to_string(), "linux/arm64/v8");
        assert!(facts.truncated.is_empty());
    }

    #[test]
    fn everything_is_cut_to_its_bound_and_named() {
        let labels: BTreeMap<String, String> = (0..500)
            .map(|i| (format!("k{i:03}{}", "x".repeat(300)), "v".repeat(5000)))
            .collect();
        let config = ImageConfig {
            os: Some("linux".into()),
            architecture: Some("amd64".into()),
            created: Some("2024-01-02T03:04:05Z".into()),
            config: Some(RunConfig {
                user: Some("u".repeat(10_000)),
                labels: Some(labels),
                entrypoint: Some(vec!["e".repeat(5000); 1000]),
                cmd: Some(vec!["c".into(); 3]),
                env: Some((0..1000).map(|i| format!("N{i}=v")).collect()),
                exposed_ports: Some(
                    (0..100)
                        .map(|p| (format!("{p}/tcp"), serde_json::json!({})))
                        .collect(),
                ),
            }),
            ..ImageConfig::default()
        };
        let layers: Vec<LayerFacts> = (0..300)
            .map(|i| LayerFacts {
                digest: format!("sha256:{i:064}"),
                compressed_size: None,
                uncompressed_size: Some(10),
            })
            .collect();
        let facts = ImageFacts::from_config("sha256:00", &config, &layers, 1_704_164_645 + 86_400);
        assert_eq!(facts.labels.len(), bounds::LABELS);
        assert!(
            facts
                .labels
                .iter()
                .all(|(k, v)| k.len() <= bounds::LABEL_KEY && v.len() <= bounds::LABEL_VALUE)
        );
        assert_eq!(facts.entrypoint.len(), bounds::ARGS);
        assert_eq!(facts.cmd.len(), 3);
        assert_eq!(facts.env_names.len(), bounds::ENV_NAMES);
        assert_eq!(facts.exposed_ports.len(), bounds::PORTS);
        assert_eq!(facts.user.len(), bounds::SHORT);
        assert_eq!(facts.layer_count, 300);
        assert_eq!(facts.layers.len(), bounds::LAYERS);
        assert_eq!(facts.uncompressed_size, Some(3000));
        assert_eq!(facts.compressed_size, None);
        assert_eq!(facts.age_seconds, Some(86_400));
        for field in [
            "labels",
            "entrypoint",
            "env-names",
            "exposed-ports",
            "user",
            "layers",
        ] {
            assert!(
                facts.truncated.iter().any(|f| f == field),
                "{field}: {:?}",
                facts.truncated
            );
        }
        assert!(!facts.truncated.iter().any(|f| f == "cmd"));
    }

    #[test]
    fn a_future_created_time_is_age_zero() {
        let config = ImageConfig {
            created: Some("2999-01-01T00:00:00Z".into()),
            ..ImageConfig::default()
        };
        assert_eq!(
            ImageFacts::from_config("", &config, &[], 0).age_seconds,
            Some(0)
        );
        let config = ImageConfig {
            created: Some("yesterday".into()),
            ..ImageConfig::default()
        };
        let facts = ImageFacts::from_config("", &config, &[], 0);
        assert_eq!(facts.age_seconds, None);
        assert_eq!(facts.created.as_deref(), Some("yesterday"));
    }
}
