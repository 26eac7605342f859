//! The repository path grammar is written once in Rust (crates/grammar,
//! which the Rust guest kit uses too); the Python and JavaScript SDKs carry
//! their own copies, so they are held to the same vectors here, run by the
//! real interpreters on the real SDK files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn vectors() -> PathBuf {
    root().join("crates/grammar/vectors/paths.json")
}

/// Runs `program args…` and asserts it succeeded and checked every case
/// (it prints the number of cases it checked on its last line).
fn run_checker(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program} disagrees with the shared vectors:\n{stdout}\n{stderr}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors()).expect("vectors")).expect("JSON");
    let expected = doc["cases"].as_array().expect("cases").len();
    assert_eq!(
        stdout.trim().lines().last(),
        Some(format!("checked {expected}").as_str()),
        "{program} did not check every case:\n{stdout}\n{stderr}"
    );
}

#[test]
fn the_python_sdk_keeps_the_shared_path_vectors() {
    let script = r#"
import json, sys
sys.path.insert(0, "sdk/python")
import flavorbox_kit as kit
doc = json.load(open(sys.argv[1], encoding="utf-8"))
bad = []
for case in doc["cases"]:
    text = case["text"] if "text" in case else case["repeat"][0] * case["repeat"][1] + case.get("suffix", "")
    got = (kit.is_path_component(text), kit.is_repository_path(text))
    if got != (case["component"], case["repository"]):
        bad.append(f"{text!r}: got {got}, want {(case['component'], case['repository'])}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"checked {len(doc['cases'])}")
"#;
    let vectors = vectors();
    run_checker(
        "python3",
        &["-c", script, vectors.to_str().expect("utf-8 path")],
    );
}

#[test]
fn the_javascript_sdk_keeps_the_shared_path_vectors() {
    let script = r#"
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const kit = await import(pathToFileURL('sdk/js/flavorbox-kit.js').href);
const doc = JSON.parse(readFileSync(process.argv[1], 'utf8'));
const bad = [];
for (const c of doc.cases) {
  const text = 'text' in c ? c.text : c.repeat[0].repeat(c.repeat[1]) + (c.suffix ?? '');
  const got = [kit.isPathComponent(text), kit.isRepositoryPath(text)];
  if (got[0] !== c.component || got[1] !== c.repository) {
    bad.push(`${JSON.stringify(text)}: got ${got}, want ${[c.component, c.repository]}`);
  }
}
if (bad.length) { console.log(bad.join('\n')); process.exit(1); }
console.log(`checked ${doc.cases.length}`);
"#;
    let vectors = vectors();
    run_checker(
        "node",
        &[
            "--input-type=module",
            "-e",
            script,
            vectors.to_str().expect("utf-8 path"),
        ],
    );
}
