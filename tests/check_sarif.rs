#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! `--format sarif` output validated against the SARIF 2.1.0 JSON schema (vendored in
//! tests/fixtures/check, see SARIF-SCHEMA-SOURCE.md), with Python's `jsonschema` (Debian:
//! python3-jsonschema) — the reference validator for draft-04 schemas such as SARIF's.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn validate(sarif: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let doc = tmp.path().join("out.sarif");
    std::fs::write(&doc, sarif).unwrap();
    let schema = Path::new(ROOT).join("tests/fixtures/check/sarif-schema-2.1.0.json");
    let script = "\
import json, sys
try:
    import jsonschema
except ImportError:
    sys.exit('python3 jsonschema is missing: apt-get install python3-jsonschema (or pip install jsonschema)')
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print('/'.join(map(str, e.path)), e.message)
sys.exit(1 if errors else 0)
";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .arg(&doc)
        .output()
        .expect("python3 is needed to validate SARIF");
    assert!(
        out.status.success(),
        "SARIF does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sarif_with_findings_related_locations_and_errors_validates() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("broken.yaml"),
        "kind: Pod\nspec: [unclosed\n",
    )
    .unwrap();
    let rules = Path::new(ROOT).join("tests/fixtures/check/rules");
    let out = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .args(["check", "--format", "sarif"])
        .arg(&rules)
        .arg(tmp.path().join("broken.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    validate(&out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(v["version"], "2.1.0");
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 15, "{}", results.len());
    // Every result points at a rule of the driver by id and index.
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for r in results {
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"]);
    }
    assert!(results.iter().any(|r| r["relatedLocations"].is_array()));
    let note = &run["invocations"][0]["toolExecutionNotifications"][0];
    assert_eq!(
        note["message"]["text"],
        "cannot parse YAML: while parsing a flow sequence, expected ',' or ']'"
    );
    assert_eq!(run["invocations"][0]["executionSuccessful"], false);
}

#[test]
fn clean_sarif_validates() {
    let out = Command::new(env!("CARGO_BIN_EXE_lastcall"))
        .args(["check", "--format", "sarif", "examples"])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    validate(&out.stdout);
}
