//! Flavors as OCI artifacts, end to end: the real `flavorbox` binary
//! publishes to and registers from the real CNCF registries on 127.0.0.1
//! (one open, one behind htpasswd), signs and verifies with keys `openssl`
//! makes for the test, and interoperates with `wkg`, a tool no one here wrote.
//!
//! Every refusal is checked for its exact message and for leaving the state
//! as it was: the flavor list and the blob directory are compared before
//! and after.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use flavorbox_net::credentials::Credentials;
use flavorbox_net::oci::layout::{self, Artifact, Descriptor, Manifest};
use flavorbox_net::oci::{OciClient, OciError, OciOptions, OciSource, Pulled};
use flavorbox_net::registry_api::{AllowedHost, EgressPolicy, RegistryApi};
use flavorbox_tests::hostile::{Canary, Stub, http};
use flavorbox_tests::services::services;
use flavorbox_tests::{block_on, guest_bytes, run_cli};
use serde_json::Value;

/// Every fresh state directory compiles the built-in flavors and the test
/// flavor, many at once while this suite runs: a flavor call's wall-clock
/// limit is raised so a loaded machine does not turn this suite's
/// registrations into timeouts (no test here is about the limit).
const UNHURRIED: (&str, &str) = ("FLAVORBOX_TIMEOUT_MS", "120000");

/// A CLI user with their own state directory.
struct User {
    home: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User {
            home: tempfile::tempdir().expect("temp home"),
        }
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        run_cli(self.home.path(), args, None, &[UNHURRIED])
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "`flavorbox {}` failed: {err}", args.join(" "));
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Runs a command that must fail; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(
            !ok,
            "`flavorbox {}` should fail; stdout: {out}",
            args.join(" ")
        );
        err
    }

    /// Runs a command that must fail and leave the state exactly as it was;
    /// returns stderr.
    fn refused(&self, args: &[&str]) -> String {
        let before = self.state();
        let err = self.fails(args);
        assert_eq!(
            self.state(),
            before,
            "`{}` changed the state",
            args.join(" ")
        );
        err
    }

    fn secret(&self, name: &str, user: &str, password: &str) {
        let (ok, _, err) = run_cli(
            self.home.path(),
            &[
                "secret",
                "create",
                name,
                "--username",
                user,
                "--password-stdin",
            ],
            Some(&format!("{password}\n")),
            &[UNHURRIED],
        );
        assert!(ok, "{err}");
    }

    /// What a refusal must not change: the registered flavors (with their
    /// origins) and the blob directory's files.
    fn state(&self) -> (Value, Vec<String>) {
        let flavors = self.json(&["flavor", "list"]);
        let mut blobs: Vec<String> = std::fs::read_dir(self.home.path().join("blobs/sha256"))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        blobs.sort();
        (flavors, blobs)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, bytes).expect("write file");
        path.display().to_string()
    }
}

/// A repository name no other test uses.
fn repo(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "oci-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The hostile test guest (a valid flavor named `hostile`) with a custom
/// section of `pad` bytes marked `tag`: same flavor, different content, so
/// each test has blobs of its own in the shared registry.
fn flavor_bytes(tag: &str, pad: usize) -> Vec<u8> {
    let mut bytes = guest_bytes("guest-hostile");
    let name = format!("flavorbox-test-{tag}");
    let mut body = leb128(name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend(std::iter::repeat_n(0x5a, pad));
    bytes.push(0); // custom section
    bytes.extend(leb128(body.len()));
    bytes.extend(body);
    bytes
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    layout::sha256_digest(bytes)
        .trim_start_matches("sha256:")
        .to_string()
}

/// A user with flavor `hostile` (content `bytes`) registered from a file.
fn publisher(bytes: &[u8]) -> User {
    let user = User::new();
    let file = user.write("flavor.wasm", bytes);
    user.ok(&["flavor", "register", &file]);
    user
}

/// Publishes as `user`, returns the printed manifest digest.
fn publish(user: &User, target: &str, extra: &[&str]) -> String {
    let mut args = vec!["flavor", "publish", "hostile", target];
    args.extend_from_slice(extra);
    let digest = user.ok(&args).trim().to_string();
    assert!(layout::is_sha256_digest(&digest), "{digest}");
    digest
}

#[test]
fn published_flavor_registers_by_tag_and_by_digest_with_its_origin() {
    let registry = &services().open_registry;
    let bytes = flavor_bytes("roundtrip", 16);
    let alice = publisher(&bytes);
    let source = format!("oci://{registry}/{}:1.0", repo("roundtrip"));
    let digest = publish(&alice, &source, &[]);
    // Reproducible: the same flavor publishes to the same digest.
    assert_eq!(publish(&alice, &source, &[]), digest);

    let bob = User::new();
    assert_eq!(bob.ok(&["flavor", "register", &source]).trim(), "hostile");
    let info = bob.json(&["flavor", "describe", "hostile"]);
    assert_eq!(info["sha256"], sha256_hex(&bytes));
    assert_eq!(info["origin"]["reference"], source.as_str());
    assert_eq!(info["origin"]["digest"], digest.as_str());
    let text = bob.ok(&["flavor", "describe", "hostile"]);
    assert!(text.contains(&format!("origin:        {source}")), "{text}");
    assert!(text.contains(&format!("origin digest: {digest}")), "{text}");
    // The pulled flavor runs like a registered file.
    bob.ok(&[
        "registry",
        "register",
        "r",
        "--flavor",
        "hostile",
        "--uri",
        "127.0.0.1:1/team",
    ]);

    let carol = User::new();
    let pinned = format!("{source}@{digest}");
    carol.ok(&["flavor", "register", &pinned]);
    let info = carol.json(&["flavor", "describe", "hostile"]);
    assert_eq!(info["origin"]["reference"], pinned.as_str());
    assert_eq!(info["sha256"], sha256_hex(&bytes));
    // A digest never moves.
    let out = carol.ok(&["flavor", "update", "hostile"]);
    assert_eq!(
        out.trim(),
        format!("flavor `hostile` is up to date at {digest}")
    );

    // A digest the tag does not have is refused before anything is stored.
    let dave = User::new();
    let other = format!("sha256:{}", "0".repeat(64));
    let err = dave.refused(&["flavor", "register", &format!("{source}@{other}")]);
    assert!(err.contains("was not found in the registry"), "{err}");
}

#[test]
fn the_htpasswd_registry_takes_credentials_from_a_secret_and_refuses_wrong_ones() {
    let s = services();
    let source = format!("oci://{}/{}:1", s.auth_registry, repo("auth"));
    let alice = publisher(&flavor_bytes("auth", 16));
    alice.secret("hub", &s.auth_user, &s.auth_password);
    let err = alice.fails(&["flavor", "publish", "hostile", &source]);
    assert!(
        err.contains(&format!(
            "registry {} refused the credentials",
            s.auth_registry
        )),
        "{err}"
    );
    let digest = publish(&alice, &source, &["--secret", "hub"]);

    let bob = User::new();
    bob.secret("wrong", &s.auth_user, "not-the-password");
    let err = bob.refused(&["flavor", "register", &source, "--secret", "wrong"]);
    assert!(
        err.contains(&format!(
            "registry {} refused the credentials",
            s.auth_registry
        )) && err.contains("check the username and password of the secret"),
        "{err}"
    );
    let err = bob.refused(&["flavor", "register", &source]);
    assert!(err.contains("refused the credentials"), "{err}");
    bob.secret("hub", &s.auth_user, &s.auth_password);
    bob.ok(&["flavor", "register", &source, "--secret", "hub"]);
    assert_eq!(
        bob.json(&["flavor", "describe", "hostile"])["origin"]["digest"],
        digest.as_str()
    );
    let carol = User::new();
    carol.secret("hub", &s.auth_user, &s.auth_password);
    let pinned = format!("{source}@{digest}");
    carol.ok(&["flavor", "register", &pinned, "--secret", "hub"]);
    let info = carol.json(&["flavor", "describe", "hostile"]);
    assert_eq!(info["origin"]["reference"], pinned.as_str());
    assert_eq!(info["origin"]["digest"], digest.as_str());
}

#[test]
fn a_missing_tag_a_bad_source_and_plain_http_elsewhere_are_refused_with_what_to_do() {
    let registry = &services().open_registry;
    let user = User::new();
    let missing = format!("oci://{registry}/{}:nope", repo("missing"));
    let err = user.refused(&["flavor", "register", &missing]);
    assert!(
        err.contains(&format!("{missing} was not found in the registry"))
            && err.contains("publish it first"),
        "{err}"
    );
    let err = user.refused(&["flavor", "register", &format!("oci://{registry}/untagged")]);
    assert!(err.contains("name a tag or a digest"), "{err}");
    let err = user.refused(&["flavor", "register", "oci://flavor:1"]);
    assert!(err.contains("name the registry host"), "{err}");
    // A registry that is not loopback is spoken to over TLS only: 0.0.0.0
    // reaches this machine's registry, which answers plain HTTP, so the TLS
    // handshake fails and the error says how to allow plain HTTP.
    let port = registry.rsplit(':').next().expect("port");
    let elsewhere = format!("0.0.0.0:{port}");
    let bytes = flavor_bytes("tls", 16);
    let target = format!("oci://{registry}/{}:1", repo("tls"));
    publish(&publisher(&bytes), &target, &[]);
    let via = target.replace(registry.as_str(), &elsewhere);
    let err = user.refused(&["flavor", "register", &via]);
    assert!(
        err.contains(&format!("registry {elsewhere} is unreachable"))
            && err.contains("name it with --insecure-registry HOST[:PORT]"),
        "{err}"
    );
    user.ok(&[
        "flavor",
        "register",
        &via,
        "--insecure-registry",
        &elsewhere,
    ]);
}

/// Pushes `artifact` to `target` with the library's client (a registry
/// others may have written to, as far as the CLI is concerned).
fn push_raw(target: &str, artifact: &Artifact) -> String {
    let source = OciSource::parse(target).expect("target");
    block_on(async {
        OciClient::new(Default::default())
            .push_artifact(&source, artifact, &OciOptions::default())
            .await
    })
    .expect("raw push")
}

#[test]
fn a_wrong_media_type_and_a_tampered_blob_are_refused_and_nothing_is_stored() {
    let s = services();
    let user = User::new();

    // An image layer where the component should be.
    let mut artifact = layout::wasm_artifact(&flavor_bytes("mediatype", 16), "x.wasm");
    artifact.manifest.layers[0].media_type = "application/vnd.oci.image.layer.v1.tar".into();
    let target = format!("oci://{}/{}:1", s.open_registry, repo("mediatype"));
    push_raw(&target, &artifact);
    let err = user.refused(&["flavor", "register", &target]);
    assert!(
        err.contains(&format!(
            "{target} is not a Wasm component artifact: its layer has media type `application/vnd.oci.image.layer.v1.tar`, expected `application/wasm`"
        )),
        "{err}"
    );
    // A container image's config.
    let mut artifact = layout::wasm_artifact(&flavor_bytes("config", 16), "x.wasm");
    artifact.manifest.config =
        Descriptor::of("application/vnd.oci.image.config.v1+json", &artifact.config);
    let target = format!("oci://{}/{}:1", s.open_registry, repo("config"));
    push_raw(&target, &artifact);
    let err = user.refused(&["flavor", "register", &target]);
    assert!(err.contains("its config has media type `application/vnd.oci.image.config.v1+json`, expected `application/vnd.wasm.config.v0+json`"), "{err}");

    // A published flavor whose layer is changed on the registry's disk.
    let bytes = flavor_bytes(&repo("tamper"), 64);
    let alice = publisher(&bytes);
    let target = format!("oci://{}/{}:1", s.open_registry, repo("tamper"));
    publish(&alice, &target, &[]);
    let hex = sha256_hex(&bytes);
    let blob = s
        .open_registry_storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    let mut tampered = std::fs::read(&blob).expect("the layer on the registry's disk");
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&blob, &tampered).expect("tamper");
    let err = user.refused(&["flavor", "register", &target]);
    assert!(
        err.contains(&format!(
            "{target}: the layer the registry served does not match its digest (expected sha256:{hex}, got sha256:{})",
            sha256_hex(&tampered)
        )) && err.contains("nothing was stored"),
        "{err}"
    );
}

#[test]
fn an_oversized_artifact_is_refused_before_it_is_downloaded() {
    let registry = &services().open_registry;
    let bytes = flavor_bytes("large", 1536 * 1024);
    let alice = publisher(&bytes);
    let target = format!("oci://{registry}/{}:1", repo("large"));
    publish(&alice, &target, &[]);
    let bob = User::new();
    let err = bob.refused(&["--max-wasm-mib", "1", "flavor", "register", &target]);
    assert!(
        err.contains(&format!(
            "{target}: the component is {} bytes, more than the limit of 1048576 bytes; nothing was stored",
            bytes.len()
        )),
        "{err}"
    );

    // A manifest that understates the layer's size: the download stops at
    // the declared size, and what arrived is not the content named.
    let mut artifact = layout::wasm_artifact(&flavor_bytes("liar", 4096), "x.wasm");
    artifact.manifest.layers[0].size = 100;
    let liar = format!("oci://{registry}/{}:1", repo("liar"));
    push_raw_lenient(&liar, &artifact);
    let err = bob.refused(&["flavor", "register", &liar]);
    assert!(
        err.contains("the layer the registry served does not match its digest")
            && err.contains("more than the 100 bytes declared"),
        "{err}"
    );
}

/// Pushes an artifact whose manifest may lie about sizes (the registry
/// accepts a manifest naming blobs it has, whatever sizes it claims, or
/// refuses it: then the test has nothing to check and says so).
fn push_raw_lenient(target: &str, artifact: &Artifact) {
    let source = OciSource::parse(target).expect("target");
    let result = block_on(async {
        OciClient::new(Default::default())
            .push_artifact(&source, artifact, &OciOptions::default())
            .await
    });
    result.unwrap_or_else(|e| panic!("the registry refused a manifest with a wrong size: {e}"));
}

/// Makes an ECDSA P-256 key pair with openssl; returns (private, public) paths.
fn keypair(dir: &Path, name: &str) -> (String, String) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (private_s, public_s) = (private.display().to_string(), public.display().to_string());
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &private_s,
    ]);
    run(&["pkey", "-in", &private_s, "-pubout", "-out", &public_s]);
    (private_s, public_s)
}

#[test]
fn a_required_signature_must_come_from_a_trusted_key_before_anything_is_stored() {
    let registry = &services().open_registry;
    let keys = tempfile::tempdir().expect("key dir");
    let (trusted_key, trusted_pub) = keypair(keys.path(), "trusted");
    let (other_key, _) = keypair(keys.path(), "other");
    let alice = publisher(&flavor_bytes("signed", 16));
    let target = format!("oci://{registry}/{}:1", repo("signed"));
    let digest = publish(&alice, &target, &[]);
    let bob = User::new();

    let tag = format!("sha256-{}.sig", digest.trim_start_matches("sha256:"));
    let err = bob.refused(&["flavor", "register", &target, "--verify-key", &trusted_pub]);
    assert!(
        err.contains(&format!(
            "no signature found for {digest} (looked for tag `{tag}`)"
        )) && err.contains("nothing was stored"),
        "{err}"
    );

    let signed = alice.ok(&["flavor", "sign", &target, "--key", &other_key]);
    assert_eq!(signed.trim(), digest);
    let err = bob.refused(&["flavor", "register", &target, "--verify-key", &trusted_pub]);
    assert!(
        err.contains(&format!(
            "no valid signature for {digest} from a trusted key"
        )) && err.contains("the signature does not verify with key"),
        "{err}"
    );

    // A signature layer whose signature is not even DER.
    let payload = flavorbox_net::oci::signature::payload("x", &digest);
    let garbage = layout::signature_artifact(&payload, "bm90IGEgc2lnbmF0dXJl");
    push_raw(
        &format!("oci://{registry}/{}:{tag}", target_repo(&target)),
        &garbage,
    );
    let err = bob.refused(&["flavor", "register", &target, "--verify-key", &trusted_pub]);
    assert!(
        err.contains("the signature is not an ASN.1 DER ECDSA signature"),
        "{err}"
    );

    alice.ok(&["flavor", "sign", &target, "--key", &trusted_key]);
    bob.ok(&["flavor", "register", &target, "--verify-key", &trusted_pub]);
    let info = bob.json(&["flavor", "describe", "hostile"]);
    let key_id = info["origin"]["signed_by"]
        .as_str()
        .expect("signed_by")
        .to_string();
    assert!(key_id.starts_with("sha256:"), "{info}");

    // The operator's trusted keys apply without --verify-key.
    let carol = User::new();
    let dir = carol.home.path().join("trusted-keys");
    std::fs::create_dir_all(&dir).expect("trusted-keys");
    std::fs::copy(&trusted_pub, dir.join("team.pub")).expect("copy key");
    let unsigned = publisher(&flavor_bytes("unsigned", 16));
    let unsigned_target = format!("oci://{registry}/{}:1", repo("unsigned"));
    publish(&unsigned, &unsigned_target, &[]);
    let err = carol.refused(&["flavor", "register", &unsigned_target]);
    assert!(err.contains("no signature found for"), "{err}");
    carol.ok(&["flavor", "register", &target]);
    assert_eq!(
        carol.json(&["flavor", "describe", "hostile"])["origin"]["signed_by"],
        key_id.as_str()
    );
}

/// `HOST/REPO` of an `oci://HOST/REPO:TAG` target, without the tag.
fn target_repo(target: &str) -> String {
    let source = OciSource::parse(target).expect("target");
    source.repository().to_string()
}

#[test]
fn update_follows_a_moved_tag_and_reports_it() {
    let registry = &services().open_registry;
    let v1 = flavor_bytes("update-1", 16);
    let v2 = flavor_bytes("update-2", 16);
    let target = format!("oci://{registry}/{}:stable", repo("update"));
    let d1 = publish(&publisher(&v1), &target, &[]);
    let user = User::new();
    user.ok(&["flavor", "register", &target]);
    user.ok(&[
        "registry",
        "register",
        "r",
        "--flavor",
        "hostile",
        "--uri",
        "127.0.0.1:1/team",
    ]);
    assert_eq!(
        user.ok(&["flavor", "update", "hostile"]).trim(),
        format!("flavor `hostile` is up to date at {d1}")
    );

    let d2 = publish(&publisher(&v2), &target, &[]);
    assert_ne!(d1, d2);
    let (ok, out, err) = user.run(&["flavor", "update", "hostile"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("flavor `hostile` moved: {d1} -> {d2}"));
    assert!(
        err.contains("registry component `r` must be validated again"),
        "{err}"
    );
    let info = user.json(&["flavor", "describe", "hostile"]);
    assert_eq!(info["sha256"], sha256_hex(&v2));
    assert_eq!(info["origin"]["digest"], d2.as_str());
    assert_eq!(info["origin"]["reference"], target.as_str());

    let file_user = publisher(&v1);
    let err = file_user.refused(&["flavor", "update", "hostile"]);
    assert!(
        err.contains("was not registered from an OCI registry"),
        "{err}"
    );
}

/// The `wkg` binary setup.sh installs (or `FLAVORBOX_WKG`).
fn wkg() -> PathBuf {
    let path = std::env::var_os("FLAVORBOX_WKG")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/flavorbox/tools/bin/wkg"))
        })
        .expect("HOME is set");
    assert!(
        path.is_file(),
        "wkg is not installed at {}: run scripts/setup.sh, which installs it with `cargo install wkg` into ~/.cache/flavorbox/tools",
        path.display()
    );
    path
}

fn run_wkg(args: &[&str]) -> String {
    let home = tempfile::tempdir().expect("wkg home");
    let out = Command::new(wkg())
        .args(args)
        // No credential helpers or config of the machine's user.
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("DOCKER_CONFIG", home.path())
        .output()
        .expect("run wkg");
    assert!(
        out.status.success(),
        "wkg {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn flavors_travel_both_ways_between_flavorbox_and_wkg() {
    let s = services();
    let registry = &s.open_registry;

    // wkg pushes, Flavorbox registers.
    let bytes = flavor_bytes("from-wkg", 16);
    let user = User::new();
    let file = user.write("from-wkg.wasm", &bytes);
    let reference = format!("{registry}/{}:1", repo("from-wkg"));
    run_wkg(&["oci", "push", "--insecure", registry, &reference, &file]);
    user.ok(&["flavor", "register", &format!("oci://{reference}")]);
    assert_eq!(
        user.json(&["flavor", "describe", "hostile"])["sha256"],
        sha256_hex(&bytes)
    );

    // Flavorbox publishes, wkg pulls the same bytes.
    let bytes = flavor_bytes("to-wkg", 16);
    let alice = publisher(&bytes);
    let reference = format!("{registry}/{}:1", repo("to-wkg"));
    publish(&alice, &format!("oci://{reference}"), &[]);
    let out = alice.home.path().join("pulled.wasm");
    run_wkg(&[
        "oci",
        "pull",
        "--insecure",
        registry,
        &reference,
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(
        std::fs::read(&out).expect("pulled"),
        bytes,
        "wkg pulled other bytes"
    );

    // And through the htpasswd registry, with credentials on both sides.
    let reference = format!("{}/{}:1", s.auth_registry, repo("wkg-auth"));
    alice.secret("hub", &s.auth_user, &s.auth_password);
    publish(&alice, &format!("oci://{reference}"), &["--secret", "hub"]);
    let out = alice.home.path().join("pulled-auth.wasm");
    run_wkg(&[
        "oci",
        "pull",
        "--insecure",
        &s.auth_registry,
        "-u",
        &s.auth_user,
        "-p",
        &s.auth_password,
        &reference,
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(std::fs::read(&out).expect("pulled"), bytes);
}

/// The manifest of a published flavor is the CNCF Wasm layout, read back raw.
#[test]
fn a_published_manifest_is_the_wasm_artifact_layout() {
    let registry = &services().open_registry;
    let bytes = flavor_bytes("layout", 16);
    let target = format!("oci://{registry}/{}:1", repo("layout"));
    let digest = publish(&publisher(&bytes), &target, &[]);
    let source = OciSource::parse(&target).expect("target");
    let url = format!("http://{registry}/v2/{}/manifests/1", source.repository());
    let body = ureq::get(&url)
        .set("Accept", layout::MANIFEST_MEDIA_TYPE)
        .call()
        .expect("manifest")
        .into_string()
        .expect("text");
    assert_eq!(layout::sha256_digest(body.as_bytes()), digest);
    let manifest: Manifest = serde_json::from_str(&body).expect("manifest JSON");
    assert_eq!(
        manifest.config.media_type,
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, "application/wasm");
    assert_eq!(
        manifest.layers[0].digest,
        format!("sha256:{}", sha256_hex(&bytes))
    );
}

#[test]
fn a_server_tenant_registers_from_a_registry_under_its_egress_policy_and_quota() {
    use flavorbox_tests::server::{Server, ServerOptions};
    let registry = &services().open_registry;
    let small = flavor_bytes("server", 16);
    let large = flavor_bytes("server-large", 1536 * 1024);
    let target = format!("oci://{registry}/{}:1", repo("server"));
    let large_target = format!("oci://{registry}/{}:1", repo("server-large"));
    publish(&publisher(&small), &target, &[]);
    publish(&publisher(&large), &large_target, &[]);
    let as_tenant = |server: &Server, token: &str| {
        vec![
            ("FLAVORBOX_SERVER".to_string(), server.url.clone()),
            ("FLAVORBOX_TOKEN".to_string(), token.to_string()),
        ]
    };
    let cli = |home: &Path, env: &[(String, String)], args: &[&str]| {
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(UNHURRIED);
        run_cli(home, args, None, &env)
    };
    let home = tempfile::tempdir().expect("client home");

    // The default policy refuses a loopback registry before connecting.
    let dir = tempfile::tempdir().expect("server dir");
    let unhurried = vec!["--timeout-ms".to_string(), UNHURRIED.1.to_string()];
    let strict_options = ServerOptions {
        args: unhurried.clone(),
        ..ServerOptions::default()
    };
    let strict = Server::start(dir.path(), &strict_options).expect("server");
    let env = as_tenant(&strict, &strict.tenant("acme").expect("tenant"));
    let before = cli(home.path(), &env, &["flavor", "list", "--json"]);
    let (ok, _, err) = cli(home.path(), &env, &["flavor", "register", &target]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "registry {registry} is refused by the egress policy"
        )) && err.contains("loopback"),
        "{err}"
    );
    assert_eq!(
        cli(home.path(), &env, &["flavor", "list", "--json"]),
        before
    );

    // Allowlisted, the tenant registers it; the tenant's size quota holds.
    let dir = tempfile::tempdir().expect("server dir");
    let options = ServerOptions {
        allow: vec![registry.clone()],
        config: Some("[quotas]\nmax_wasm_mib = 1\n".into()),
        args: unhurried,
        ..ServerOptions::default()
    };
    let open = Server::start(dir.path(), &options).expect("server");
    let env = as_tenant(&open, &open.tenant("acme").expect("tenant"));
    let (ok, out, err) = cli(
        home.path(),
        &env,
        &["flavor", "register", &target, "--json"],
    );
    assert!(ok, "{err}");
    let info: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(info["origin"]["reference"], target.as_str());
    assert_eq!(info["sha256"], sha256_hex(&small));
    let before = cli(home.path(), &env, &["flavor", "list", "--json"]);
    let (ok, _, err) = cli(home.path(), &env, &["flavor", "register", &large_target]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "the component is {} bytes, more than the limit of 1048576 bytes",
            large.len()
        )),
        "{err}"
    );
    assert_eq!(
        cli(home.path(), &env, &["flavor", "list", "--json"]),
        before
    );
    // Another tenant sees none of it.
    let other = as_tenant(&open, &open.tenant("other").expect("tenant"));
    let (ok, _, _) = cli(home.path(), &other, &["flavor", "describe", "hostile"]);
    assert!(!ok);
}

/// The author guide's "Publish your flavor" section shows the commands this
/// suite runs, so the two cannot drift apart unnoticed.
#[test]
fn the_author_guide_shows_the_commands_this_suite_runs() {
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/writing-a-flavor.md"),
    )
    .expect("the author guide");
    let section = guide
        .split("## Publish your flavor")
        .nth(1)
        .expect("the guide has a `Publish your flavor` section");
    for shown in [
        "flavorbox flavor publish acme oci://registry.example.com/flavors/acme:1.0 --secret hub",
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out acme.key",
        "openssl pkey -in acme.key -pubout -out acme.pub",
        "flavorbox flavor sign oci://registry.example.com/flavors/acme:1.0 --key acme.key",
        "flavorbox flavor register oci://registry.example.com/flavors/acme:1.0 --verify-key acme.pub",
        "flavorbox flavor update acme",
        "--insecure-registry HOST[:PORT]",
    ] {
        assert!(section.contains(shown), "the section lacks `{shown}`");
    }
}

// Pulls under a server's egress policy. A hostile registry stub (a
// listener in the test speaking just enough HTTP/1.1) answers with
// redirects and challenges that point at a canary: another loopback
// listener, not allowlisted, that counts every connection made to it.
// Every request of a pull goes through the host's egress-checked client,
// so the canary must see none.

/// A registry stub on loopback: `answer` maps each request's (method,
/// path) to the whole response. Returns its `host:port` and the stub, whose
/// `requests` are what it received.
fn stub_registry(answer: impl Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static) -> (String, Stub) {
    let stub = Stub::start(move |request| answer(&request.method, &request.path));
    (stub.addr(), stub)
}

/// A small valid Wasm component artifact, as a registry would serve it.
fn stub_artifact() -> Artifact {
    layout::wasm_artifact(b"\0asm\x0d\x00\x01\x00", "stub.wasm")
}

/// What an honest registry answers for `artifact` at `REPO:1`: the API
/// root, the manifest, the blobs; 404 for anything else.
fn honest(artifact: &Artifact, method: &str, path: &str) -> Vec<u8> {
    let manifest = artifact.manifest.to_bytes().expect("writes");
    let blob = |digest: &str| {
        std::iter::once((&artifact.manifest.config.digest, &artifact.config))
            .chain(
                artifact
                    .manifest
                    .layers
                    .iter()
                    .map(|l| &l.digest)
                    .zip(&artifact.layers),
            )
            .find(|(d, _)| d.as_str() == digest)
            .map(|(_, bytes)| bytes.clone())
    };
    if method != "GET" {
        return http("405 Method Not Allowed", &[], b"");
    }
    if path == "/v2/" {
        return http("200 OK", &[("Content-Type", "application/json")], b"{}");
    }
    if path.ends_with("/manifests/1") {
        return http(
            "200 OK",
            &[("Content-Type", layout::MANIFEST_MEDIA_TYPE)],
            &manifest,
        );
    }
    if let Some((_, digest)) = path.split_once("/blobs/")
        && let Some(bytes) = blob(digest)
    {
        return http("200 OK", &[], &bytes);
    }
    http(
        "404 Not Found",
        &[],
        br#"{"errors":[{"code":"NOT_FOUND"}]}"#,
    )
}

/// The server's policy: public addresses only, and the `allow`ed hosts.
fn server_policy(allow: &[&str]) -> RegistryApi {
    let allow = allow
        .iter()
        .map(|a| AllowedHost::parse(a).expect("allowlist entry"))
        .collect();
    RegistryApi::new(EgressPolicy::public_only(allow))
}

/// Pulls `source` with the library's client under `api`'s policy.
fn pull_with(
    api: &RegistryApi,
    source: &str,
    credentials: Option<Credentials>,
) -> Result<Pulled, OciError> {
    let source = OciSource::parse(source).expect("source");
    let options = OciOptions {
        credentials,
        insecure: Vec::new(),
        max_bytes: 1 << 20,
    };
    block_on(OciClient::new(api.clone()).pull(&source, &options, &[]))
}

fn redirect(to: &str) -> Vec<u8> {
    http("302 Found", &[("Location", to)], b"")
}

#[test]
fn a_redirect_to_a_host_outside_the_egress_policy_is_refused_and_never_followed() {
    let canary = Canary::start();
    let artifact = stub_artifact();

    // The stub speaks enough of the API for a pull to succeed.
    let served = artifact.clone();
    let (stub, _) = stub_registry(move |method, path| honest(&served, method, path));
    let pulled = pull_with(
        &server_policy(&[&stub]),
        &format!("oci://{stub}/team/app:1"),
        None,
    )
    .expect("a pull from the honest stub");
    assert_eq!(pulled.bytes, artifact.layers[0]);

    // The manifest is answered with a redirect to the canary.
    let to_canary = format!("http://{}/v2/team/app/manifests/1", canary.addr());
    let served = artifact.clone();
    let (stub, _) = stub_registry(move |method, path| match path.ends_with("/manifests/1") {
        true => redirect(&to_canary),
        false => honest(&served, method, path),
    });
    let err = pull_with(
        &server_policy(&[&stub]),
        &format!("oci://{stub}/team/app:1"),
        None,
    )
    .expect_err("a manifest redirected off the registry");
    assert!(
        matches!(&err, OciError::Refused { .. })
            && err
                .to_string()
                .contains(&format!("registry {stub} is refused by the egress policy")),
        "{err}"
    );
    assert_eq!(
        canary.hits(),
        Vec::<String>::new(),
        "the canary was reached"
    );

    // Every blob is answered with a redirect to the canary: a download may
    // go to another origin, but only to an address the policy passes, by
    // IP or by name.
    for host in ["127.0.0.1", "localhost"] {
        // A canary of its own: the control below reaches it on purpose.
        let canary = Canary::start();
        let canary_url = format!("http://{host}:{}", canary.port());
        let served = artifact.clone();
        let (stub, _) = stub_registry(move |method, path| match path.split_once("/blobs/") {
            Some((_, digest)) => redirect(&format!("{canary_url}/blobs/{digest}")),
            None => honest(&served, method, path),
        });
        let err = pull_with(
            &server_policy(&[&stub]),
            &format!("oci://{stub}/team/app:1"),
            None,
        )
        .expect_err("a blob redirected to the canary");
        assert!(
            matches!(&err, OciError::Refused { reason, .. } if reason.contains("loopback")),
            "{host}: {err}"
        );
        assert_eq!(
            canary.hits(),
            Vec::<String>::new(),
            "{host}: the canary was reached"
        );

        // The control: with the canary allowlisted too, the same redirect
        // is followed, and the canary counts it.
        let both = server_policy(&[&stub, &format!("{host}:{}", canary.port())]);
        let _ = pull_with(&both, &format!("oci://{stub}/team/app:1"), None);
        let hits = canary.hits();
        assert!(
            hits.len() == 1 && hits[0].contains(": GET /blobs/sha256:"),
            "{host}: {hits:?}"
        );
    }
}

#[test]
fn a_token_realm_on_another_host_is_refused_and_never_sent_the_credentials() {
    let canary = Canary::start();
    let credentials = Credentials {
        username: "tenant".into(),
        password: "s3cret-never-sent".into(),
    };
    let challenge_from = |realm: String| {
        move |_: &str, _: &str| {
            let challenge = format!(
                r#"Bearer realm="{realm}",service="stub",scope="repository:team/app:pull""#
            );
            http(
                "401 Unauthorized",
                &[("WWW-Authenticate", challenge.as_str())],
                br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
            )
        }
    };

    // Under the server's policy: the realm is on the registry's IP but on
    // a port no allowlist entry names.
    let (stub, seen) = stub_registry(challenge_from(format!("http://{}/token", canary.addr())));
    let err = pull_with(
        &server_policy(&[&stub]),
        &format!("oci://{stub}/team/app:1"),
        Some(credentials.clone()),
    )
    .expect_err("a realm outside the policy");
    assert!(
        matches!(&err, OciError::Refused { reason, .. } if reason.contains("loopback")),
        "{err}"
    );
    assert_eq!(
        canary.hits(),
        Vec::<String>::new(),
        "the realm was contacted"
    );

    // Under a policy that allows every address (the CLI's), a realm on
    // another host than the registry's is refused all the same.
    let (other, other_seen) = stub_registry(challenge_from(format!(
        "http://localhost:{}/token",
        canary.port()
    )));
    let err = pull_with(
        &RegistryApi::new(EgressPolicy::allow_all()),
        &format!("oci://{other}/team/app:1"),
        Some(credentials.clone()),
    )
    .expect_err("a realm on another host");
    assert!(
        err.to_string().contains(
            "is not on the registry's host or its domain; refusing to send credentials there"
        ),
        "{err}"
    );
    assert_eq!(
        canary.hits(),
        Vec::<String>::new(),
        "the realm was contacted"
    );

    // Nothing carried the credentials to the registry either.
    for head in seen
        .requests()
        .iter()
        .chain(other_seen.requests().iter())
        .map(|r| &r.head)
    {
        assert!(
            !head.to_ascii_lowercase().contains("authorization"),
            "credentials were sent: {head}"
        );
    }
}

#[test]
fn a_refused_internal_address_reads_the_same_whether_its_port_is_open_or_closed() {
    let open = Canary::start();
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let api = server_policy(&[]);
    let texts = |port: u16| {
        let direct = pull_with(&api, &format!("oci://127.0.0.1:{port}/team/app:1"), None)
            .expect_err("an internal registry");
        assert!(matches!(direct, OciError::Refused { .. }), "{direct}");
        direct.to_string().replace(&port.to_string(), "PORT")
    };
    assert_eq!(texts(open.port()), texts(closed));
    assert_eq!(
        open.hits(),
        Vec::<String>::new(),
        "the open port was reached"
    );

    // The same through a blob redirect of an allowlisted registry.
    let target = Arc::new(Mutex::new(0u16));
    let port = target.clone();
    let artifact = stub_artifact();
    let (stub, _) = stub_registry(move |method, path| match path.split_once("/blobs/") {
        Some((_, digest)) => {
            let port = *port.lock().expect("port");
            redirect(&format!("http://127.0.0.1:{port}/{digest}"))
        }
        None => honest(&artifact, method, path),
    });
    let api = server_policy(&[&stub]);
    let redirected = |port: u16| {
        *target.lock().expect("port") = port;
        let err = pull_with(&api, &format!("oci://{stub}/team/app:1"), None)
            .expect_err("a redirect to an internal address");
        assert!(matches!(err, OciError::Refused { .. }), "{err}");
        err.to_string().replace(&port.to_string(), "PORT")
    };
    assert_eq!(redirected(open.port()), redirected(closed));
    assert_eq!(
        open.hits(),
        Vec::<String>::new(),
        "the open port was reached"
    );
}

#[test]
fn a_servers_proxy_environment_is_ignored_by_its_pulls() {
    use flavorbox_tests::server::{Server, ServerOptions};
    let registry = &services().open_registry;
    let bytes = flavor_bytes("proxy", 16);
    let target = format!("oci://{registry}/{}:1", repo("proxy"));
    publish(&publisher(&bytes), &target, &[]);

    let canary = Canary::start();
    let proxy = format!("http://{}", canary.addr());
    let mut env: Vec<(String, String)> = [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ]
    .iter()
    .map(|name| (name.to_string(), proxy.clone()))
    .collect();
    env.push(("NO_PROXY".into(), String::new()));
    env.push(("no_proxy".into(), String::new()));
    let dir = tempfile::tempdir().expect("server dir");
    let options = ServerOptions {
        allow: vec![registry.clone()],
        args: vec!["--timeout-ms".to_string(), UNHURRIED.1.to_string()],
        env,
        ..ServerOptions::default()
    };
    let server = Server::start(dir.path(), &options).expect("server");
    let token = server.tenant("acme").expect("tenant");
    let home = tempfile::tempdir().expect("client home");
    let (ok, out, err) = run_cli(
        home.path(),
        &["flavor", "register", &target, "--json"],
        None,
        &[
            ("FLAVORBOX_SERVER", server.url.as_str()),
            ("FLAVORBOX_TOKEN", token.as_str()),
            UNHURRIED,
        ],
    );
    assert!(ok, "{err}");
    let info: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(info["sha256"], sha256_hex(&bytes));
    assert_eq!(canary.hits(), Vec::<String>::new(), "the proxy was used");
}
