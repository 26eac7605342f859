//! Table tests over the whole grammar: references, registry URIs, paths.

use crate::path::*;
use crate::reference::*;
use crate::registry::*;

/// What a table case expects: the four parts, or the error variant's name.
enum Want<'a> {
    Valid(&'a str, &'a str, Option<&'a str>, Option<&'a str>),
    Invalid(&'a str),
}
use Want::{Invalid as E, Valid as V};

fn kind(e: &ReferenceError) -> &'static str {
    match e {
        ReferenceError::Empty => "Empty",
        ReferenceError::InvalidCharacter { .. } => "InvalidCharacter",
        ReferenceError::HexIdentifier { .. } => "HexIdentifier",
        ReferenceError::Uppercase { .. } => "Uppercase",
        ReferenceError::InvalidDomain { .. } => "InvalidDomain",
        ReferenceError::InvalidPort { .. } => "InvalidPort",
        ReferenceError::InvalidPathComponent { .. } => "InvalidPathComponent",
        ReferenceError::InvalidTag { .. } => "InvalidTag",
        ReferenceError::InvalidDigestFormat { .. } => "InvalidDigestFormat",
        ReferenceError::UnsupportedDigest { .. } => "UnsupportedDigest",
        ReferenceError::InvalidDigestLength { .. } => "InvalidDigestLength",
        ReferenceError::NameTooLong { .. } => "NameTooLong",
    }
}

fn uri_kind(e: &RegistryUriError) -> &'static str {
    match e {
        RegistryUriError::Required => "Required",
        RegistryUriError::InvalidCharacter { .. } => "InvalidCharacter",
        RegistryUriError::SchemeNotAllowed { .. } => "SchemeNotAllowed",
        RegistryUriError::InvalidDomain { .. } => "InvalidDomain",
        RegistryUriError::InvalidPort { .. } => "InvalidPort",
        RegistryUriError::Uppercase { .. } => "Uppercase",
        RegistryUriError::InvalidPathComponent { .. } => "InvalidPathComponent",
        RegistryUriError::TagNotAllowed { .. } => "TagNotAllowed",
        RegistryUriError::DigestNotAllowed { .. } => "DigestNotAllowed",
        RegistryUriError::NameTooLong { .. } => "NameTooLong",
    }
}

fn hex(n: usize) -> String {
    "0123456789abcdef".chars().cycle().take(n).collect()
}

/// Long strings the generated table cases are built from.
struct Fixtures {
    h64: String,
    sha256: String,
    sha384: String,
    sha512: String,
    library_h64: String,
    path255: String,
    path256: String,
    tag128: String,
    long_domain: String,
    name247: String,
    library_name247: String,
}

impl Fixtures {
    fn new() -> Fixtures {
        let h64 = hex(64);
        let name247 = "x".repeat(247);
        Fixtures {
            sha256: format!("sha256:{h64}"),
            sha384: format!("sha384:{}", hex(96)),
            sha512: format!("sha512:{}", hex(128)),
            library_h64: format!("library/{h64}"),
            path255: format!("a/{}", "b".repeat(253)),
            path256: format!("a/{}", "b".repeat(254)),
            tag128: "t".repeat(128),
            long_domain: format!("{}.com:5000", "d".repeat(60)),
            library_name247: format!("library/{name247}"),
            name247,
            h64,
        }
    }
}

/// Cases whose input has to be built: (input, expectation).
fn built_cases(f: &Fixtures) -> Vec<(String, Want<'_>)> {
    let h64 = &f.h64;
    let sha256 = &f.sha256;
    let hash = Some(f.sha256.as_str());
    let app = "library/app";
    vec![
        (h64.clone(), E("HexIdentifier")),
        (
            format!("{h64}:tag"),
            V("docker.io", &f.library_h64, Some("tag"), None),
        ),
        (
            format!("docker.io/{h64}"),
            V("docker.io", &f.library_h64, None, None),
        ),
        (h64.to_uppercase(), E("Uppercase")),
        (format!("app@{sha256}"), V("docker.io", app, None, hash)),
        (
            format!("app:tag@{sha256}"),
            V("docker.io", app, Some("tag"), hash),
        ),
        (
            format!("localhost:5000/a/b@{sha256}"),
            V("localhost:5000", "a/b", None, hash),
        ),
        (
            format!("app@{}", f.sha384),
            V("docker.io", app, None, Some(&f.sha384)),
        ),
        (
            format!("docker.io/library/ubuntu@{}", f.sha512),
            V("docker.io", "library/ubuntu", None, Some(&f.sha512)),
        ),
        (format!("app@sha256:{}", hex(63)), E("InvalidDigestLength")),
        (format!("app@sha256:{}", hex(65)), E("InvalidDigestLength")),
        (format!("app@sha512:{h64}"), E("InvalidDigestLength")),
        (
            format!("app@sha256:{}", h64.to_uppercase()),
            E("InvalidDigestFormat"),
        ),
        (format!("app@md5:{}", hex(32)), E("UnsupportedDigest")),
        (format!("app@sha3-256:{h64}"), E("InvalidDigestFormat")),
        (format!("app@sha3.x:{h64}"), E("UnsupportedDigest")),
        (
            format!("localhost/app:t@SHA256:{h64}"),
            E("InvalidDigestFormat"),
        ),
        (format!("app@SHA256:{h64}"), E("Uppercase")),
        (format!("app@sha256:{}", hex(31)), E("InvalidDigestFormat")),
        (format!("app@sha256:{}g", hex(63)), E("InvalidDigestFormat")),
        (format!("app@{sha256}:tag"), E("InvalidDigestFormat")),
        ("app@".to_owned(), E("InvalidDigestFormat")),
        ("app@sha256:".to_owned(), E("InvalidDigestFormat")),
        (
            format!("app:{}", f.tag128),
            V("docker.io", app, Some(&f.tag128), None),
        ),
        (format!("app:{}t", f.tag128), E("InvalidTag")),
        (f.path255.clone(), V("docker.io", &f.path255, None, None)),
        (f.path256.clone(), E("NameTooLong")),
        (
            format!("{}/{}", f.long_domain, f.path255),
            V(&f.long_domain, &f.path255, None, None),
        ),
        (format!("registry.io/{}", f.path256), E("NameTooLong")),
        (
            f.name247.clone(),
            V("docker.io", &f.library_name247, None, None),
        ),
        (format!("{}x", f.name247), E("NameTooLong")),
        (format!("{}@md5:{}", f.path256, hex(32)), E("NameTooLong")),
    ]
}

const CASES: &[(&str, Want)] = &[
    // Normalisation onto Docker Hub.
    ("ubuntu", V("docker.io", "library/ubuntu", None, None)),
    (
        "ubuntu:22.04",
        V("docker.io", "library/ubuntu", Some("22.04"), None),
    ),
    (
        "library/ubuntu",
        V("docker.io", "library/ubuntu", None, None),
    ),
    (
        "docker.io/ubuntu",
        V("docker.io", "library/ubuntu", None, None),
    ),
    (
        "docker.io/library/ubuntu:latest",
        V("docker.io", "library/ubuntu", Some("latest"), None),
    ),
    (
        "index.docker.io/foo",
        V("docker.io", "library/foo", None, None),
    ),
    (
        "index.docker.io/user/foo",
        V("docker.io", "user/foo", None, None),
    ),
    (
        "docker.io/user/app:1",
        V("docker.io", "user/app", Some("1"), None),
    ),
    ("user/app", V("docker.io", "user/app", None, None)),
    (
        "user/team/app:v1",
        V("docker.io", "user/team/app", Some("v1"), None),
    ),
    ("Docker.io/ubuntu", V("Docker.io", "ubuntu", None, None)),
    ("localhost", V("docker.io", "library/localhost", None, None)),
    (
        "index.docker.io",
        V("docker.io", "library/index.docker.io", None, None),
    ),
    ("foo.bar", V("docker.io", "library/foo.bar", None, None)),
    // Other registries.
    ("localhost/app", V("localhost", "app", None, None)),
    (
        "localhost:5000/a/b:t",
        V("localhost:5000", "a/b", Some("t"), None),
    ),
    ("Foo/bar", V("Foo", "bar", None, None)),
    (
        "REGISTRY.Example.COM/team/app",
        V("REGISTRY.Example.COM", "team/app", None, None),
    ),
    (
        "registry.example.com:5000/team/app:1.0",
        V("registry.example.com:5000", "team/app", Some("1.0"), None),
    ),
    ("[::1]:5000/app", V("[::1]:5000", "app", None, None)),
    ("[2001:db8::1]/app", V("[2001:db8::1]", "app", None, None)),
    (
        "[2001:DB8::1]:443/app:x",
        V("[2001:DB8::1]:443", "app", Some("x"), None),
    ),
    ("192.168.1.1:5000/x", V("192.168.1.1:5000", "x", None, None)),
    ("my-registry.io/x", V("my-registry.io", "x", None, None)),
    ("a.b.c.d:1/x/y/z", V("a.b.c.d:1", "x/y/z", None, None)),
    ("reg:5000/app", V("reg:5000", "app", None, None)),
    // Path components.
    ("a__b", V("docker.io", "library/a__b", None, None)),
    ("a_b.c-d", V("docker.io", "library/a_b.c-d", None, None)),
    ("a--b", V("docker.io", "library/a--b", None, None)),
    ("a---b/c.d", V("docker.io", "a---b/c.d", None, None)),
    ("0/1/2", V("docker.io", "0/1/2", None, None)),
    ("a___b", E("InvalidPathComponent")),
    ("a-", E("InvalidPathComponent")),
    ("-a", E("InvalidPathComponent")),
    ("a.-b", E("InvalidPathComponent")),
    ("a._b", E("InvalidPathComponent")),
    ("a..b", E("InvalidPathComponent")),
    ("a_-b", E("InvalidPathComponent")),
    ("a.", E("InvalidPathComponent")),
    ("_a", E("InvalidPathComponent")),
    ("a//b", E("InvalidPathComponent")),
    ("/a", E("InvalidPathComponent")),
    ("a/", E("InvalidPathComponent")),
    ("localhost/", E("InvalidPathComponent")),
    ("docker.io/", E("InvalidPathComponent")),
    ("registry.io/a+b", E("InvalidPathComponent")),
    // Case.
    ("foo/Bar", E("Uppercase")),
    ("Ubuntu", E("Uppercase")),
    ("localhost:5000/App:tag", E("Uppercase")),
    (
        "app:TAG_1",
        V("docker.io", "library/app", Some("TAG_1"), None),
    ),
    // Domains and ports.
    ("example.com:port/x", E("InvalidPort")),
    ("example.com:/x", E("InvalidPort")),
    ("example.com:50:00/x", E("InvalidPort")),
    ("[::1]:abc/x", E("InvalidPort")),
    ("a..b/x", E("InvalidDomain")),
    ("-a.com/x", E("InvalidDomain")),
    ("a-.com/x", E("InvalidDomain")),
    (".a.com/x", E("InvalidDomain")),
    ("a.com./x", E("InvalidDomain")),
    ("a_b.com/x", E("InvalidDomain")),
    ("::1/app", E("InvalidDomain")),
    ("[]/app", E("InvalidPathComponent")),
    ("[]:5000/app", E("InvalidDomain")),
    ("[::g]/app", E("InvalidDomain")),
    ("[::1/app", E("InvalidDomain")),
    ("[::1]x/app", E("InvalidDomain")),
    ("Foo_Bar/app", E("InvalidDomain")),
    // Tags.
    ("app:", E("InvalidTag")),
    ("app:-tag", E("InvalidTag")),
    ("app:.tag", E("InvalidTag")),
    (
        "app:_tag",
        V("docker.io", "library/app", Some("_tag"), None),
    ),
    ("app:a:b", E("InvalidTag")),
    ("app:t/x", E("InvalidPort")),
    ("app:t+x", E("InvalidTag")),
    // Empty, whitespace, non-ASCII.
    ("", E("Empty")),
    (" ", E("InvalidCharacter")),
    (" ubuntu", E("InvalidCharacter")),
    ("ubuntu ", E("InvalidCharacter")),
    ("ubu ntu", E("InvalidCharacter")),
    ("ubuntu:22.04\n", E("InvalidCharacter")),
    ("ubuntu\t", E("InvalidCharacter")),
    ("registry.io/\u{0}app", E("InvalidCharacter")),
    ("ubüntu", E("InvalidCharacter")),
    ("ｕbuntu", E("InvalidCharacter")),
    ("registry.io/app:tägs", E("InvalidCharacter")),
    // Schemes and other junk.
    ("https://registry.io/app", E("InvalidPort")),
    ("registry.io/app@@sha256", E("InvalidDigestFormat")),
    (":tag", E("InvalidPathComponent")),
    ("@sha256:abc", E("InvalidPathComponent")),
];

fn check(input: &str, want: &Want) {
    let got = Reference::parse(input);
    match (want, &got) {
        (V(domain, path, tag, digest), Ok(r)) => {
            assert_eq!(r.domain(), *domain, "domain of {input:?}");
            assert_eq!(r.path(), *path, "path of {input:?}");
            assert_eq!(r.tag(), *tag, "tag of {input:?}");
            assert_eq!(r.digest(), *digest, "digest of {input:?}");
        }
        (E(expected), Err(e)) => assert_eq!(kind(e), *expected, "{input:?}: {e}"),
        (V(..), Err(e)) => panic!("{input:?} should parse, got: {e}"),
        (E(expected), Ok(r)) => panic!("{input:?} should fail with {expected}, got {r:?}"),
    }
}

#[test]
fn reference_table_matches_distribution_reference() {
    for (input, want) in CASES {
        check(input, want);
    }
    let fixtures = Fixtures::new();
    let built = built_cases(&fixtures);
    for (input, want) in &built {
        check(input, want);
    }
    assert!(CASES.len() + built.len() >= 80);
}

#[test]
fn display_round_trips_to_the_same_reference() {
    let digest = format!("sha256:{}", hex(64));
    let inputs = [
        "ubuntu".to_owned(),
        "ubuntu:22.04".to_owned(),
        "Foo/bar".to_owned(),
        "[::1]:5000/app:1".to_owned(),
        "localhost:5000/a/b:t".to_owned(),
        format!("registry.io/team/app:1@{digest}"),
        format!("app@{digest}"),
    ];
    for input in inputs {
        let r = Reference::parse(&input).expect("valid");
        let shown = r.to_string();
        assert_eq!(
            Reference::parse(&shown),
            Ok(r.clone()),
            "{input} -> {shown}"
        );
        assert_eq!(shown.parse::<Reference>(), Ok(r));
    }
    assert_eq!(
        Reference::parse("ubuntu").map(|r| r.to_string()),
        Ok("docker.io/library/ubuntu".to_owned())
    );
    assert_eq!(
        Reference::parse(&format!("a:b@{digest}")).map(|r| r.to_string()),
        Ok(format!("docker.io/library/a:b@{digest}"))
    );
}

#[test]
fn name_is_domain_and_path() {
    let r = Reference::parse("localhost:5000/a/b:t").expect("valid");
    assert_eq!(r.name(), "localhost:5000/a/b");
    let r = Reference::parse("ubuntu:1").expect("valid");
    assert_eq!(r.name(), "docker.io/library/ubuntu");
}

#[test]
fn default_tag_is_added_only_without_tag_or_digest() {
    let digest = format!("sha256:{}", hex(64));
    let tagged = |s: &str| {
        Reference::parse(s)
            .expect("valid")
            .with_default_tag()
            .to_string()
    };
    assert_eq!(tagged("ubuntu"), "docker.io/library/ubuntu:latest");
    assert_eq!(tagged("ubuntu:22.04"), "docker.io/library/ubuntu:22.04");
    assert_eq!(
        tagged(&format!("ubuntu@{digest}")),
        format!("docker.io/library/ubuntu@{digest}")
    );
    assert_eq!(tagged("localhost/app"), "localhost/app:latest");
}

#[test]
fn familiar_strips_docker_hub_and_library_only() {
    let digest = format!("sha256:{}", hex(64));
    let cases = [
        ("ubuntu", "ubuntu".to_owned()),
        ("docker.io/library/ubuntu:22.04", "ubuntu:22.04".to_owned()),
        ("index.docker.io/library/ubuntu", "ubuntu".to_owned()),
        ("user/app:1", "user/app:1".to_owned()),
        ("library/a/b", "library/a/b".to_owned()),
        (
            "localhost:5000/library/app",
            "localhost:5000/library/app".to_owned(),
        ),
        ("registry.io/app:1", "registry.io/app:1".to_owned()),
        (&*format!("ubuntu:1@{digest}"), format!("ubuntu:1@{digest}")),
    ];
    for (input, want) in cases {
        let r = Reference::parse(input).expect("valid");
        assert_eq!(r.familiar(), want, "familiar of {input}");
    }
}

#[test]
fn errors_say_which_part_is_wrong_and_show_a_valid_reference() {
    let msg = |s: &str| Reference::parse(s).expect_err("invalid").to_string();
    assert_eq!(
        msg("foo/Bar"),
        "invalid reference format: repository name (foo/Bar) must be lowercase \
         (only the registry host may contain capitals, like \
         `registry.example.com:5000/team/app:1.0`)"
    );
    assert!(msg("example.com:port/x").contains("port `port`"));
    assert!(msg("a//b").contains("(empty: a leading, trailing or doubled `/`)"));
    assert!(msg("app:-x").contains("tag `-x`"));
    assert!(msg(&"a".repeat(300)).starts_with("repository name must not be more than 255"));
    assert!(msg(&hex(64)).contains("cannot specify 64-byte hexadecimal strings"));
    assert!(msg(&format!("app@md5:{}", hex(32))).contains("unsupported digest algorithm"));
    for bad in ["", "a..b/x", "app:", "a___b", "app@x"] {
        assert!(
            msg(bad).contains("registry.example.com"),
            "{bad}: {}",
            msg(bad)
        );
    }
}

#[test]
fn reference_serializes_its_parts() {
    let r = Reference::parse("localhost:5000/a:t").expect("valid");
    let json = serde_json::to_value(&r).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"domain": "localhost:5000", "path": "a", "tag": "t", "digest": null})
    );
}

#[test]
fn registry_uri_table() {
    let ok: &[(&str, &str, Option<&str>)] = &[
        ("registry.io", "registry.io", None),
        ("registry.io/", "registry.io", None),
        ("registry.io///", "registry.io", None),
        ("registry.io/team", "registry.io", Some("team")),
        ("registry.io/team/sub/", "registry.io", Some("team/sub")),
        ("Registry.IO/team", "registry.io", Some("team")),
        ("index.docker.io/user", "docker.io", Some("user")),
        ("INDEX.docker.io", "docker.io", None),
        ("docker.io", "docker.io", None),
        ("localhost:5000", "localhost:5000", None),
        ("localhost", "localhost", None),
        ("[::1]:5000/team", "[::1]:5000", Some("team")),
        ("[2001:DB8::1]", "[2001:db8::1]", None),
        (
            "123.dkr.ecr.us-east-1.amazonaws.com",
            "123.dkr.ecr.us-east-1.amazonaws.com",
            None,
        ),
        (
            "europe-docker.pkg.dev/proj/repo",
            "europe-docker.pkg.dev",
            Some("proj/repo"),
        ),
        ("myregistry", "myregistry", None),
    ];
    for (input, domain, path) in ok {
        let uri = RegistryUri::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(uri.domain(), *domain, "{input}");
        assert_eq!(uri.path(), *path, "{input}");
    }
    let bad: &[(&str, &str)] = &[
        ("", "Required"),
        ("/", "Required"),
        ("///", "Required"),
        ("   ", "Required"),
        (" registry.io", "InvalidCharacter"),
        ("registry.io/team ", "InvalidCharacter"),
        ("registry.io/té", "InvalidCharacter"),
        ("https://registry.io/team", "SchemeNotAllowed"),
        ("http://localhost:5000", "SchemeNotAllowed"),
        ("oci://", "SchemeNotAllowed"),
        ("/team", "InvalidDomain"),
        ("a..b", "InvalidDomain"),
        ("-a.com/team", "InvalidDomain"),
        ("user@registry.io", "InvalidDomain"),
        ("registry.io:port", "InvalidPort"),
        ("registry.io:", "InvalidPort"),
        ("registry.io/Team", "Uppercase"),
        ("registry.io/team//app", "InvalidPathComponent"),
        ("registry.io/team-", "InvalidPathComponent"),
        ("registry.io/team:1", "TagNotAllowed"),
        ("registry.io/team/app:latest", "TagNotAllowed"),
        ("registry.io/app@sha256:abc", "DigestNotAllowed"),
    ];
    for (input, want) in bad {
        match RegistryUri::parse(input) {
            Err(e) => assert_eq!(uri_kind(&e), *want, "{input:?}: {e}"),
            Ok(u) => panic!("{input:?} should fail with {want}, got {u:?}"),
        }
    }
    let long = format!("registry.io/{}", "a".repeat(256));
    assert_eq!(
        RegistryUri::parse(&long).map_err(|e| uri_kind(&e)),
        Err("NameTooLong")
    );
}

#[test]
fn registry_uri_displays_normalised_text() {
    let shown = |s: &str| RegistryUri::parse(s).expect("valid").to_string();
    assert_eq!(shown("Registry.IO/team/"), "registry.io/team");
    assert_eq!(shown("index.docker.io/user//"), "docker.io/user");
    assert_eq!(shown("localhost:5000"), "localhost:5000");
    assert_eq!(shown(&shown("[::1]:5000/a")), "[::1]:5000/a");
}

#[test]
fn scheme_error_suggests_the_uri_without_it() {
    let e = RegistryUri::parse("https://registry.example.com/team/").expect_err("scheme");
    assert_eq!(
        e.to_string(),
        "registry uri must not have a scheme: use `registry.example.com/team`, \
         not `https://registry.example.com/team/`"
    );
    let e = RegistryUri::parse("registry.io/team:1").expect_err("tag");
    assert!(e.to_string().contains("a registry uri has no tag"), "{e}");
}

#[test]
fn containment_is_by_segment_not_by_string_prefix() {
    let cases: &[(&str, &str, bool)] = &[
        ("registry.io/team", "registry.io/team/app:1", true),
        ("registry.io/team", "registry.io/team:1", true),
        ("registry.io/team", "registry.io/team/sub/app", true),
        ("registry.io/team/", "registry.io/team/app", true),
        ("registry.io/team", "registry.io/team-evil/app:1", false),
        ("registry.io/team", "registry.io/teamx", false),
        ("registry.io/team", "registry.io/team.x/app", false),
        ("registry.io/team", "registry.io/other/team/app", false),
        ("registry.io/team/app", "registry.io/team", false),
        ("registry.io", "registry.io/anything/at/all:1", true),
        ("registry.io", "registry.io.evil.com/app", false),
        ("registry.io", "registry.io:5000/app", false),
        ("registry.io:5000", "registry.io/app", false),
        ("Registry.IO/team", "registry.io/team/app", true),
        ("registry.io/team", "REGISTRY.io/team/app", true),
        ("localhost:5000", "localhost:5000/app", true),
        ("localhost:5000", "localhost:50001/app", false),
        ("localhost:5000", "localhost/app", false),
        ("localhost", "localhost:5000/app", false),
        ("docker.io/user", "user/app", true),
        ("docker.io/user", "user2/app", false),
        ("docker.io", "ubuntu", true),
        ("index.docker.io/library", "ubuntu:22.04", true),
        ("docker.io/library", "user/app", false),
        ("registry.io/team", "ubuntu", false),
        ("[::1]:5000", "[::1]:5000/app", true),
        ("[::1]:5000", "[::1]:50001/app", false),
    ];
    for (uri, image, want) in cases {
        let u = RegistryUri::parse(uri).expect("valid uri");
        let r = Reference::parse(image).expect("valid image");
        assert_eq!(u.contains(&r), *want, "{uri} contains {image}");
        // ZenML's `startswith` would wrongly accept these.
        if !want && image.starts_with(uri) {
            assert!(r.name().starts_with(u.to_string().as_str()));
        }
    }
}

#[test]
fn is_local_means_localhost_with_a_four_or_five_digit_port() {
    let cases = [
        ("localhost:5000", true),
        ("localhost:50000", true),
        ("localhost:5000/", true),
        ("LOCALHOST:5000", true),
        ("localhost:500", false),
        ("localhost:123456", false),
        ("localhost:5000/team", false),
        ("localhost", false),
        ("127.0.0.1:5000", false),
        ("[::1]:5000", false),
        ("localhost.example.com:5000", false),
    ];
    for (input, want) in cases {
        let uri = RegistryUri::parse(input).expect("valid");
        assert_eq!(uri.is_local(), want, "{input}");
    }
}

#[test]
fn repository_path_grammar_accepts_reference_paths() {
    let max = format!("a/{}", "b".repeat(253));
    for ok in [
        "app", "team/app", "a/b/c", "my-app", "my--app", "a.b", "a_b", "a__b", "0x/9", &max,
    ] {
        assert_eq!(
            RepositoryPath::parse(ok).map(|p| p.to_string()),
            Ok(ok.to_owned()),
            "{ok}"
        );
    }
}

#[test]
fn repository_path_grammar_refuses_hostile_strings() {
    let long = "a".repeat(256);
    let cases: &[(&str, &str)] = &[
        ("", "Empty"),
        ("..", "InvalidPathComponent"),
        ("a/../b", "InvalidPathComponent"),
        ("a/./b", "InvalidPathComponent"),
        ("a?b", "InvalidPathComponent"),
        ("a#b", "InvalidPathComponent"),
        ("a%2fb", "InvalidPathComponent"),
        ("A", "InvalidPathComponent"),
        ("a//b", "InvalidPathComponent"),
        ("/a", "InvalidPathComponent"),
        ("a/", "InvalidPathComponent"),
        ("a b", "InvalidPathComponent"),
        ("a___b", "InvalidPathComponent"),
        ("-a", "InvalidPathComponent"),
        ("a-", "InvalidPathComponent"),
        ("a.", "InvalidPathComponent"),
        ("a:b", "InvalidPathComponent"),
        ("a@b", "InvalidPathComponent"),
        ("a\\b", "InvalidPathComponent"),
        ("a\nb", "InvalidPathComponent"),
        ("../../v2/_catalog?n=1", "InvalidPathComponent"),
        ("registry.io/team/app:1", "InvalidPathComponent"),
        (&long, "NameTooLong"),
    ];
    for (bad, want) in cases {
        let got = RepositoryPath::parse(bad).map_err(|e| match e {
            RepositoryPathError::Empty => "Empty",
            RepositoryPathError::InvalidPathComponent { .. } => "InvalidPathComponent",
            RepositoryPathError::NameTooLong { .. } => "NameTooLong",
        });
        assert_eq!(got, Err(*want), "{bad:?}");
    }
}

#[test]
fn repository_path_errors_quote_hostile_text_escaped_and_cut() {
    let e = RepositoryPath::parse("a\n\u{1b}[2J").expect_err("invalid");
    let shown = e.to_string();
    assert!(
        !shown.contains('\n') && !shown.contains('\u{1b}'),
        "{shown}"
    );
    let e = RepositoryPath::parse(&"A".repeat(100_000)).expect_err("invalid");
    assert!(e.to_string().len() < 1000);
}

#[test]
fn repository_path_grammar_is_the_one_references_and_uris_use() {
    for path in ["team/app", "a__b", "a___b", "a/../b", "a-", "x/y.z", "a//b"] {
        let alone = RepositoryPath::parse(path).is_ok();
        let in_reference = Reference::parse(&format!("registry.io/{path}")).is_ok();
        let in_uri = RegistryUri::parse(&format!("registry.io/{path}")).is_ok();
        assert_eq!(alone, in_reference, "{path}");
        assert_eq!(alone, in_uri, "{path}");
    }
}

#[test]
fn repository_containment_is_by_segment_and_matches_image_containment() {
    let cases: &[(&str, &str, bool)] = &[
        ("registry.io/team", "team/app", true),
        ("registry.io/team", "team", true),
        ("registry.io/team", "team/sub/app", true),
        ("registry.io/team", "team-evil/app", false),
        ("registry.io/team", "teamx", false),
        ("registry.io/team", "team.x/app", false),
        ("registry.io/team", "other/team/app", false),
        ("registry.io/team/app", "team", false),
        ("registry.io", "anything/at/all", true),
        ("localhost:5000", "app", true),
        ("docker.io", "ubuntu", true),
        ("docker.io/library", "ubuntu", true),
        ("docker.io/library", "library/ubuntu", true),
        ("docker.io/user", "user/app", true),
        ("docker.io/user", "user2/app", false),
        ("docker.io/ubuntu", "ubuntu", false),
    ];
    for (uri, path, want) in cases {
        let u = RegistryUri::parse(uri).expect("valid uri");
        let repository = u.repository(path).expect("valid path");
        assert_eq!(u.contains_repository(&repository), *want, "{uri} ∋ {path}");
        // The same answer as for an image of that repository on the uri's registry.
        let image = Reference::parse(&format!("{}/{path}:1", u.domain())).expect("valid");
        assert_eq!(u.contains(&image), *want, "{uri} ∋ {image}");
        assert_eq!(image.path(), repository.as_str(), "{uri} {path}");
    }
}

#[test]
fn namespace_containment_is_by_segment_and_the_whole_registry_is_only_in_a_pathless_uri() {
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("registry.io:5000/team-a", Some("team-a"), true),
        ("registry.io:5000/team-a", Some("team-a/sub"), true),
        ("registry.io:5000/team-a", Some("team-a-evil"), false),
        ("registry.io:5000/team-a", Some("team-ab/x"), false),
        ("registry.io:5000/team-a", Some("team"), false),
        ("registry.io:5000/team-a", None, false),
        ("registry.io:5000/team-a/sub", Some("team-a"), false),
        ("registry.io:5000", Some("team-a"), true),
        ("registry.io:5000", None, true),
    ];
    for (uri, path, want) in cases {
        let u = RegistryUri::parse(uri).expect("valid uri");
        assert_eq!(u.contains_namespace(*path), *want, "{uri} ∋ {path:?}");
    }
}

#[test]
fn docker_hub_paths_are_normalised_and_others_are_not() {
    let on = |uri: &str, path: &str| {
        RegistryUri::parse(uri)
            .expect("valid")
            .repository(path)
            .map(|p| p.to_string())
    };
    assert_eq!(on("docker.io", "ubuntu"), Ok("library/ubuntu".into()));
    assert_eq!(
        on("index.docker.io/x", "ubuntu"),
        Ok("library/ubuntu".into())
    );
    assert_eq!(on("docker.io", "user/app"), Ok("user/app".into()));
    assert_eq!(on("registry.io", "app"), Ok("app".into()));
    assert_eq!(on("localhost:5000", "app"), Ok("app".into()));
    assert!(on("docker.io", "Ubuntu").is_err());
    // The prefix counts against the length limit, as in a reference.
    assert!(on("docker.io", &"a".repeat(250)).is_err());
    assert!(on("registry.io", &"a".repeat(250)).is_ok());
}

#[test]
fn loopback_host_and_port_come_from_the_one_domain_split() {
    let cases: &[(&str, bool, &str, Option<u16>)] = &[
        ("localhost:5000", true, "localhost", Some(5000)),
        ("localhost", true, "localhost", None),
        ("127.0.0.1:5000", true, "127.0.0.1", Some(5000)),
        ("127.1.2.3", true, "127.1.2.3", None),
        ("[::1]:5000/team", true, "[::1]", Some(5000)),
        ("[0:0:0:0:0:0:0:1]", true, "[0:0:0:0:0:0:0:1]", None),
        ("registry.example.com", false, "registry.example.com", None),
        ("10.0.0.1:5000", false, "10.0.0.1", Some(5000)),
        ("localhost.evil.com", false, "localhost.evil.com", None),
        ("[2001:db8::1]:443", false, "[2001:db8::1]", Some(443)),
        ("registry.io:99999", false, "registry.io", None),
    ];
    for (input, loopback, host, port) in cases {
        let uri = RegistryUri::parse(input).expect("valid");
        assert_eq!(uri.is_loopback(), *loopback, "{input}");
        assert_eq!(uri.host(), *host, "{input}");
        assert_eq!(uri.port(), *port, "{input}");
    }
}

/// The shared path vectors (`vectors/paths.json`), which the Python and
/// JavaScript SDKs are held to as well (the test suite's `grammar_vectors`).
#[test]
fn the_shared_path_vectors_hold() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../vectors/paths.json")).expect("valid JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() > 40, "the vectors are all there");
    for case in cases {
        let text = match (&case["text"], &case["repeat"]) {
            (serde_json::Value::String(text), _) => text.clone(),
            (_, serde_json::Value::Array(repeat)) => {
                let unit = repeat[0].as_str().expect("unit");
                let times = repeat[1].as_u64().expect("times") as usize;
                unit.repeat(times) + case["suffix"].as_str().unwrap_or("")
            }
            _ => panic!("a case is `text` or `repeat`: {case}"),
        };
        let component = case["component"].as_bool().expect("component");
        let repository = case["repository"].as_bool().expect("repository");
        assert_eq!(is_path_component(&text), component, "component {text:?}");
        assert_eq!(is_repository_path(&text), repository, "repository {text:?}");
        assert_eq!(
            RepositoryPath::parse(&text).is_ok(),
            repository,
            "parse {text:?}"
        );
    }
}
