use std::io::Write as _;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use flavorbox_grammar::Platform;

use super::*;

/// 2024-01-02T03:04:05Z.
const CREATED: i64 = 1_704_164_645;
const NOW: i64 = CREATED + 3600;

/// A tarball of `files` (name, bytes), in order.
fn tarball(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut builder = tar::Builder::new(out.reopen().unwrap());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, *bytes).unwrap();
    }
    builder.finish().unwrap();
    out
}

/// A layer's tar stream holding one file of `content`.
fn layer_tar(content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    builder.append_data(&mut header, "file", content).unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An image config with everything the record reads, and `diff_ids`.
fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
        "created": "2024-01-02T03:04:05.123456789Z",
        "config": {
            "User": "1000:1000",
            "Labels": {"org.opencontainers.image.source": "https://example.com/app", "a": "b"},
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Entrypoint": ["/app"],
            "Cmd": ["--serve"],
            "Env": ["PATH=/usr/bin", "API_TOKEN=hunter2", "EMPTY="],
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A `docker save` archive of `layers` (plain or gzip tars) whose config is
/// `config` (the real diff ids when `None`).
fn docker_save(layers: &[Vec<u8>], config: Option<Vec<u8>>) -> (tempfile::NamedTempFile, Vec<u8>) {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|layer| {
            if layer.starts_with(&[0x1f, 0x8b]) {
                let mut plain = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(&layer[..]),
                    &mut plain,
                )
                .unwrap();
                sha256_digest(&plain)
            } else {
                sha256_digest(layer)
            }
        })
        .collect();
    let config = config.unwrap_or_else(|| config_json(&diff_ids));
    let config_name = format!("{}.json", &sha256_digest(&config)[7..]);
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    // Sizes claimed by the manifest are not read.
    let sources: serde_json::Map<_, _> = diff_ids
        .iter()
        .map(|d| (d.clone(), serde_json::json!({"size": 1, "digest": d})))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["app:1"],
        "Layers": names,
        "LayerSources": sources,
    }]))
    .unwrap();
    let mut files: Vec<(&str, &[u8])> = vec![("manifest.json", &manifest), (&config_name, &config)];
    for (name, layer) in names.iter().zip(layers) {
        files.push((name, layer));
    }
    (tarball(&files), config)
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn blob_name(bytes: &[u8]) -> String {
    format!("blobs/sha256/{}", &sha256_digest(bytes)[7..])
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len()})
}

/// An OCI image manifest of `config` and `layers` (gzip blobs).
fn oci_manifest(config: &[u8], layers: &[Vec<u8>]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| descriptor(OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// An OCI layout archive whose index names `top`, holding `blobs`.
fn oci_layout(top: serde_json::Value, blobs: &[&[u8]]) -> tempfile::NamedTempFile {
    let index =
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [top]})).unwrap();
    let names: Vec<String> = blobs.iter().map(|b| blob_name(b)).collect();
    let mut files: Vec<(&str, &[u8])> = vec![
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
    ];
    for (name, blob) in names.iter().zip(blobs) {
        files.push((name, blob));
    }
    tarball(&files)
}

/// An OCI layout archive of one image with gzip `layers`; its config.
fn oci_image(layers: &[Vec<u8>]) -> (tempfile::NamedTempFile, Vec<u8>) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    let config = config_json(&diff_ids);
    let gz: Vec<Vec<u8>> = layers.iter().map(|l| gzip(l)).collect();
    let manifest = oci_manifest(&config, &gz);
    let mut blobs: Vec<&[u8]> = vec![&config, &manifest];
    blobs.extend(gz.iter().map(Vec::as_slice));
    (
        oci_layout(descriptor(OCI_MANIFEST, &manifest), &blobs),
        config,
    )
}

fn limits() -> ArchiveLimits {
    ArchiveLimits::default()
}

/// What the fixtures' config reads as.
fn assert_config_facts(facts: &ImageFacts, config: &[u8]) {
    assert_eq!(
        facts.platform,
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }
    );
    assert_eq!(facts.config_digest, sha256_digest(config));
    assert_eq!(
        facts.created.as_deref(),
        Some("2024-01-02T03:04:05.123456789Z")
    );
    assert_eq!(facts.age_seconds, Some(3600));
    assert_eq!(facts.user, "1000:1000");
    assert_eq!(
        facts.labels,
        vec![
            ("a".to_string(), "b".to_string()),
            (
                "org.opencontainers.image.source".to_string(),
                "https://example.com/app".to_string()
            ),
        ]
    );
    assert_eq!(facts.exposed_ports, vec!["53/udp", "8080/tcp"]);
    assert_eq!(facts.entrypoint, vec!["/app"]);
    assert_eq!(facts.cmd, vec!["--serve"]);
    assert_eq!(facts.env_names, vec!["PATH", "API_TOKEN", "EMPTY"]);
    let everything = format!("{facts:?}");
    assert!(!everything.contains("hunter2"), "{everything}");
    assert!(!everything.contains("/usr/bin"), "{everything}");
    assert!(facts.truncated.is_empty(), "{:?}", facts.truncated);
}

#[test]
fn a_docker_save_archive_reads_as_its_config_with_layers_measured() {
    let (one, two) = (layer_tar(b"hello"), layer_tar(&[7u8; 5000]));
    let (file, config) = docker_save(&[one.clone(), two.clone()], None);
    let facts = archive_facts(file.path(), &limits(), NOW).unwrap();
    assert_config_facts(&facts, &config);
    assert_eq!(facts.layer_count, 2);
    assert_eq!(
        facts.layers,
        vec![
            LayerFacts {
                digest: sha256_digest(&one),
                compressed_size: None,
                uncompressed_size: Some(one.len() as u64),
            },
            LayerFacts {
                digest: sha256_digest(&two),
                compressed_size: None,
                uncompressed_size: Some(two.len() as u64),
            },
        ]
    );
    // The manifest's `LayerSources` claim 1 byte each: not read.
    assert_eq!(
        facts.uncompressed_size,
        Some((one.len() + two.len()) as u64)
    );
    assert_eq!(facts.compressed_size, None);
    assert_eq!(facts.size(), facts.uncompressed_size);
}

#[test]
fn a_gzip_layer_in_a_docker_save_archive_is_measured_both_ways() {
    let plain = layer_tar(&[1u8; 3000]);
    let gz = gzip(&plain);
    let (file, _) = docker_save(std::slice::from_ref(&gz), None);
    let facts = archive_facts(file.path(), &limits(), NOW).unwrap();
    assert_eq!(
        facts.layers,
        vec![LayerFacts {
            digest: sha256_digest(&plain),
            compressed_size: Some(gz.len() as u64),
            uncompressed_size: Some(plain.len() as u64),
        }]
    );
    assert_eq!(facts.compressed_size, Some(gz.len() as u64));
}

#[test]
fn an_oci_layout_reads_as_its_config_with_gzip_layers_measured_both_ways() {
    let (one, two) = (layer_tar(b"base"), layer_tar(&[9u8; 20_000]));
    let (file, config) = oci_image(&[one.clone(), two.clone()]);
    let facts = archive_facts(file.path(), &limits(), NOW).unwrap();
    assert_config_facts(&facts, &config);
    let (gz_one, gz_two) = (gzip(&one), gzip(&two));
    assert_eq!(
        facts.layers,
        vec![
            LayerFacts {
                digest: sha256_digest(&gz_one),
                compressed_size: Some(gz_one.len() as u64),
                uncompressed_size: Some(one.len() as u64),
            },
            LayerFacts {
                digest: sha256_digest(&gz_two),
                compressed_size: Some(gz_two.len() as u64),
                uncompressed_size: Some(two.len() as u64),
            },
        ]
    );
    assert_eq!(
        facts.compressed_size,
        Some((gz_one.len() + gz_two.len()) as u64)
    );
    assert_eq!(
        facts.uncompressed_size,
        Some((one.len() + two.len()) as u64)
    );
    assert_eq!(facts.size(), facts.compressed_size);
}

#[test]
fn an_oci_index_of_one_platform_reads_as_that_image_and_of_several_is_refused() {
    let layer = gzip(&layer_tar(b"x"));
    let config = config_json(&[]);
    let manifest = oci_manifest(&config, std::slice::from_ref(&layer));
    let index_of = |manifests: &[&[u8]]| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests.iter().map(|m| descriptor(OCI_MANIFEST, m)).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let one = index_of(&[&manifest]);
    let file = oci_layout(
        descriptor("application/vnd.oci.image.index.v1+json", &one),
        &[&one, &manifest, &config, &layer],
    );
    let facts = archive_facts(file.path(), &limits(), NOW).unwrap();
    assert_eq!(facts.config_digest, sha256_digest(&config));
    assert_eq!(facts.layer_count, 1);

    let other_config = br#"{"os":"linux","architecture":"amd64"}"#.to_vec();
    let other = oci_manifest(&other_config, std::slice::from_ref(&layer));
    let two = index_of(&[&manifest, &other]);
    let file = oci_layout(
        descriptor("application/vnd.oci.image.index.v1+json", &two),
        &[&two, &manifest, &other, &config, &other_config, &layer],
    );
    let refused = archive_facts(file.path(), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("index of 2 images"), "{refused}");
    assert!(refused.contains("one platform"), "{refused}");
}

#[test]
fn a_config_over_the_limit_is_refused() {
    let layer = layer_tar(b"x");
    let mut config: serde_json::Value =
        serde_json::from_slice(&config_json(&[sha256_digest(&layer)])).unwrap();
    config["padding"] = serde_json::Value::String("x".repeat(4 << 20));
    let (file, _) = docker_save(&[layer], Some(serde_json::to_vec(&config).unwrap()));
    let refused = archive_facts(file.path(), &limits(), NOW).unwrap_err();
    assert!(matches!(refused, PushError::BadArchive(_)), "{refused:?}");
    assert!(refused.to_string().contains("over the limit"), "{refused}");
}

#[test]
fn layers_expanding_past_the_limit_are_refused_as_they_stream() {
    let small = ArchiveLimits {
        max_unpacked_bytes: 10_000,
        ..limits()
    };
    // Plain layers, each within the limit, together over it.
    let (file, _) = docker_save(&[layer_tar(&[1u8; 6000]), layer_tar(&[2u8; 6000])], None);
    let refused = archive_facts(file.path(), &small, NOW).unwrap_err();
    assert!(matches!(refused, PushError::TooLarge { .. }), "{refused:?}");
    assert!(refused.to_string().contains("10000 bytes"), "{refused}");
    assert!(refused.to_string().contains("l1/layer.tar"), "{refused}");

    // A small gzip blob that expands to far more.
    let (file, _) = oci_image(&[layer_tar(&vec![0u8; 4 << 20])]);
    let refused = archive_facts(file.path(), &small, NOW).unwrap_err();
    assert!(matches!(refused, PushError::TooLarge { .. }), "{refused:?}");
    assert!(
        refused.to_string().contains("expand to more than"),
        "{refused}"
    );

    // Within the limit, the same archive reads.
    assert!(archive_facts(file.path(), &limits(), NOW).is_ok());
}

#[test]
fn what_is_not_an_intact_image_archive_is_refused_with_what_is_wrong() {
    let not_tar = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_tar.path(), b"not a tarball at all, just some text").unwrap();
    let refused = archive_facts(not_tar.path(), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("docker save"), "{refused}");

    let missing = archive_facts(Path::new("/nonexistent/image.tar"), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("cannot read the uploaded archive"),
        "{missing}"
    );

    // Cut short in the middle of a layer.
    let (file, _) = docker_save(&[layer_tar(&[3u8; 50_000])], None);
    let whole = std::fs::read(file.path()).unwrap();
    let cut = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cut.path(), &whole[..whole.len() / 2]).unwrap();
    let refused = archive_facts(cut.path(), &limits(), NOW).unwrap_err();
    assert!(matches!(refused, PushError::BadArchive(_)), "{refused:?}");

    // A layer whose bytes are not what the config names.
    let layer = layer_tar(b"real");
    let config = config_json(&[sha256_digest(&layer_tar(b"claimed"))]);
    let (file, _) = docker_save(&[layer], Some(config));
    let refused = archive_facts(file.path(), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("does not match the image config's diff id"),
        "{refused}"
    );

    // A gzip blob that is not gzip inside, though its digest is right.
    let mut broken = gzip(&layer_tar(&[5u8; 10_000]));
    let middle = broken.len() / 2;
    broken[middle..middle + 8].copy_from_slice(b"garbage!");
    let config = config_json(&[]);
    let manifest = oci_manifest(&config, std::slice::from_ref(&broken));
    let file = oci_layout(
        descriptor(OCI_MANIFEST, &manifest),
        &[&manifest, &config, &broken],
    );
    let refused = archive_facts(file.path(), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not valid gzip"), "{refused}");

    // A manifest lying about a blob's size.
    let layer = gzip(&layer_tar(b"y"));
    let manifest = String::from_utf8(oci_manifest(&config, std::slice::from_ref(&layer)))
        .unwrap()
        .replace(&format!(r#""size":{}"#, layer.len()), r#""size":1"#)
        .into_bytes();
    let file = oci_layout(
        descriptor(OCI_MANIFEST, &manifest),
        &[&manifest, &config, &layer],
    );
    let refused = archive_facts(file.path(), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("damaged"), "{refused}");

    // A config that is not JSON.
    let config = b"\x00\x01 not json".to_vec();
    let manifest = oci_manifest(&config, std::slice::from_ref(&layer));
    let file = oci_layout(
        descriptor(OCI_MANIFEST, &manifest),
        &[&manifest, &config, &layer],
    );
    let refused = archive_facts(file.path(), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not valid JSON"), "{refused}");

    // A zstd layer: what the push refuses, the check refuses.
    let manifest = String::from_utf8(oci_manifest(
        &config_json(&[]),
        std::slice::from_ref(&layer),
    ))
    .unwrap()
    .replace("tar+gzip", "tar+zstd")
    .into_bytes();
    let config = config_json(&[]);
    let file = oci_layout(
        descriptor(OCI_MANIFEST, &manifest),
        &[&manifest, &config, &layer],
    );
    let refused = archive_facts(file.path(), &limits(), NOW)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("zstd"), "{refused}");
}

#[tokio::test]
async fn the_async_reader_reads_the_same_and_honours_the_timeout() {
    let (file, config) = oci_image(&[layer_tar(b"async")]);
    let facts = archive_facts_async(file.path(), &limits(), NOW)
        .await
        .unwrap();
    assert_eq!(facts, archive_facts(file.path(), &limits(), NOW).unwrap());
    assert_eq!(facts.config_digest, sha256_digest(&config));

    let (big, _) = docker_save(&[layer_tar(&vec![0u8; 16 << 20])], None);
    let hurried = ArchiveLimits {
        timeout: Duration::from_nanos(1),
        ..limits()
    };
    let refused = archive_facts_async(big.path(), &hurried, NOW)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("took longer"), "{refused}");
}

#[test]
fn the_engine_inspect_reads_as_its_config_with_the_engine_size() {
    // What API 1.41 (Docker 20.10) answers for `GET /images/{name}/json`.
    let inspect: ImageInspect = serde_json::from_value(serde_json::json!({
        "Id": "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741",
        "RepoTags": ["localhost:5000/team/app:1"],
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": "2024-01-02T03:04:05.123456789Z",
        "Container": "",
        "DockerVersion": "20.10.24",
        "Author": "",
        "Config": {
            "Hostname": "",
            "User": "app",
            "ExposedPorts": {"8080/tcp": {}},
            "Env": ["PATH=/usr/bin", "API_TOKEN=hunter2"],
            "Cmd": ["--serve"],
            "Image": "sha256:aaaa",
            "Volumes": null,
            "WorkingDir": "/srv",
            "Entrypoint": ["/app"],
            "OnBuild": null,
            "Labels": {"team": "core"}
        },
        "Architecture": "arm64",
        "Variant": "v8",
        "Os": "linux",
        "Size": 7_340_032,
        "VirtualSize": 7_340_032,
        "GraphDriver": {"Data": {}, "Name": "vfs"},
        "RootFS": {
            "Type": "layers",
            "Layers": [
                "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "sha256:2222222222222222222222222222222222222222222222222222222222222222"
            ]
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}
    }))
    .unwrap();
    let facts = facts_of_inspect(&inspect, "localhost:5000/team/app:1", None, NOW).unwrap();
    assert_eq!(facts.platform.to_string(), "linux/arm64/v8");
    assert_eq!(
        facts.config_digest,
        "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"
    );
    assert_eq!(facts.age_seconds, Some(3600));
    assert_eq!(facts.user, "app");
    assert_eq!(facts.labels, vec![("team".to_string(), "core".to_string())]);
    assert_eq!(facts.exposed_ports, vec!["8080/tcp"]);
    assert_eq!(
        (facts.entrypoint.clone(), facts.cmd.clone()),
        (vec!["/app".to_string()], vec!["--serve".to_string()])
    );
    assert_eq!(facts.env_names, vec!["PATH", "API_TOKEN"]);
    assert!(!format!("{facts:?}").contains("hunter2"));
    assert_eq!(facts.layer_count, 2);
    assert!(
        facts
            .layers
            .iter()
            .all(|l| l.compressed_size.is_none() && l.uncompressed_size.is_none())
    );
    assert_eq!(facts.uncompressed_size, Some(7_340_032));
    assert_eq!(facts.compressed_size, None);

    // Go's zero time is no creation time.
    let mut zero = inspect.clone();
    zero.created = Some("0001-01-01T00:00:00Z".to_string());
    let facts = facts_of_inspect(&zero, "x", None, NOW).unwrap();
    assert_eq!((facts.created, facts.age_seconds), (None, None));

    let mut no_id = inspect;
    no_id.id = None;
    assert!(facts_of_inspect(&no_id, "x", None, NOW).is_err());
}

/// The engine's history of an image, newest step first, with these sizes.
fn history(sizes_newest_first: &[i64]) -> Vec<HistoryResponseItem> {
    sizes_newest_first
        .iter()
        .map(|&size| HistoryResponseItem {
            id: "<missing>".into(),
            created: 0,
            created_by: "RUN step".into(),
            tags: Vec::new(),
            size,
            comment: String::new(),
        })
        .collect()
}

#[test]
fn layer_sizes_come_from_the_history_only_when_it_matches_the_layers() {
    let inspect: ImageInspect = serde_json::from_value(serde_json::json!({
        "Id": "sha256:abc",
        "RootFS": {"Type": "layers", "Layers": ["sha256:1", "sha256:2"]}
    }))
    .unwrap();
    // Newest first; the steps of size 0 (ENV, LABEL) made no layer.
    let sizes = layer_sizes(&history(&[0, 2048, 0, 1024]), &inspect);
    assert_eq!(sizes, Some(vec![1024, 2048]));
    let facts = facts_of_inspect(&inspect, "x", sizes.as_deref(), NOW).unwrap();
    let got: Vec<_> = facts.layers.iter().map(|l| l.uncompressed_size).collect();
    assert_eq!(got, [Some(1024), Some(2048)]);
    // Not matched (a layer of no content, a config without history, a
    // negative size): unknown, not guessed.
    for h in [
        vec![0, 2048, 0],
        vec![],
        vec![5, 2048, 1024],
        vec![-1, 2048],
    ] {
        assert_eq!(layer_sizes(&history(&h), &inspect), None, "{h:?}");
    }
}

#[tokio::test]
async fn a_name_that_would_change_the_request_is_refused_before_the_engine() {
    // Never connected: the name is refused first.
    let docker =
        Docker::connect_with_http("http://127.0.0.1:9", 1, bollard::API_DEFAULT_VERSION).unwrap();
    for name in ["", "app?all=1", "app#x", "a b", "app%2F"] {
        assert!(
            matches!(
                engine_facts(&docker, name, NOW).await,
                Err(PushError::InvalidReference { .. })
            ),
            "{name:?}"
        );
    }
    // An engine that is not there is a connection error.
    let refused = engine_facts(&docker, "app:1", NOW).await.unwrap_err();
    assert!(matches!(refused, PushError::Connect { .. }), "{refused:?}");
}
