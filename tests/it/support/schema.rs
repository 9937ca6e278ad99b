//! `--json` output checked against the JSON Schemas in `docs/schema/` (the documented contract): the
//! `schema` field of a document names its schema file.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The schema files, by `$id` (`handoff.<shape>.v1`).
pub fn schema_files() -> Vec<(String, serde_json::Value)> {
    let dir = super::repo_root().join("docs/schema");
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(v["$id"], stem.as_str(), "{}: $id must be the file name", p.display());
            (stem, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Validates a `--json` document against the schema its `schema` field names; panics with every error.
pub fn check(doc: &serde_json::Value) {
    static SCHEMAS: OnceLock<Mutex<HashMap<String, serde_json::Value>>> = OnceLock::new();
    let name = doc["schema"].as_str().unwrap_or_else(|| panic!("no `schema` field: {doc}"));
    let schema = {
        let mut m = SCHEMAS.get_or_init(|| Mutex::new(schema_files().into_iter().collect())).lock().unwrap();
        m.entry(name.to_string()).or_insert(serde_json::Value::Null).clone()
    };
    assert!(!schema.is_null(), "`schema`: {name} has no file docs/schema/{name}.json: {doc}");
    let v = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("docs/schema/{name}.json is invalid: {e}"));
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "output does not match docs/schema/{name}.json:\n{}\n{doc}", errors.join("\n"));
}
