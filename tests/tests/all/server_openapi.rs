//! schemathesis (pinned, installed by `scripts/setup.sh` into a virtualenv)
//! against the real server's `/openapi.json`: generated requests to every
//! operation, with a tenant's token, must never get a 5xx and every
//! response must match the document (status, content type, body schema).

use std::path::PathBuf;
use std::process::Command;

use flavorbox_tests::server::{Server, ServerOptions};

fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("FLAVORBOX_VENV")
        .map(PathBuf::from)
        .or_else(|| dirs_home().map(|h| h.join(".cache/flavorbox/venv")))
        .expect("HOME or FLAVORBOX_VENV");
    let bin = venv.join("bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run `scripts/setup.sh`, which installs the pinned schemathesis",
        bin.display()
    );
    bin
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

#[test]
fn the_server_keeps_to_its_openapi_document_under_generated_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &ServerOptions {
            allow: vec!["127.0.0.1:5995".into()],
            ..Default::default()
        },
    )
    .expect("server");
    let token = server.tenant("fuzz").expect("tenant");
    // Something to find: a registry component and a secret under names the
    // document's examples do not know, so most calls exercise the 404 path
    // and the generated bodies exercise validation.
    let made = server
        .json(
            "PUT",
            "/v1/registries/r",
            Some(&token),
            &serde_json::json!({"flavor": "default", "uri": "127.0.0.1:5995"}),
        )
        .unwrap();
    assert_eq!(made.status, 201, "{}", made.text);
    for (who, header) in [("tenant", token.as_str()), ("admin", server.admin.as_str())] {
        let output = Command::new(schemathesis())
            .args(["run", &format!("{}/openapi.json", server.url)])
            .args(["--header", &format!("Authorization: Bearer {header}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "25", "--workers", "2", "--seed", "1"])
            .args(["--phases", "examples,coverage,fuzzing"])
            // Its cache (`.schemathesis/`) goes to the temp dir, not the checkout.
            .current_dir(dir.path())
            .env("SCHEMATHESIS_HOOKS", "")
            .env("NO_COLOR", "1")
            .output()
            .expect("run schemathesis");
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "schemathesis found problems with the {who} token:\n{out}\n{err}"
        );
    }
    // The server is still up and answering after the run.
    assert_eq!(server.get("/healthz", None).unwrap().status, 200);
}
