//! docs/configuration.md against the parser, so that they cannot drift: its example with
//! every key parses without an unknown key, every key of its tables is in the example,
//! and every field of the configuration's sections is named by a key of its tables.

use std::collections::BTreeSet;
use std::path::Path;

use damocles_sealing::config::WorkerConfig;

fn repo_file(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The keys of the reference tables: the first backticked word of each row.
fn documented_keys(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(key, _)| key.to_owned()))
        .collect()
}

/// The fenced TOML block whose first line is `# every-key example`.
fn every_key_example(doc: &str) -> String {
    let start = doc
        .find("```toml\n# every-key example")
        .expect("the every-key example");
    let body = &doc[start + "```toml\n".len()..];
    body[..body.find("```").expect("its end")].to_owned()
}

/// Every dotted key of a TOML table, arrays of tables without indexes, tables too.
fn flatten(prefix: &str, table: &toml::Table, into: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        into.insert(path.clone());
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, into),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        flatten(&path, inner, into);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether a documented key (`processors.<stage>.bin`, `<…>` a wildcard segment) names
/// an example key.
fn matches(pattern: &str, key: &str) -> bool {
    let (pattern, key): (Vec<&str>, Vec<&str>) =
        (pattern.split('.').collect(), key.split('.').collect());
    pattern.len() == key.len()
        && pattern
            .iter()
            .zip(&key)
            .all(|(p, k)| p == k || (p.starts_with('<') && p.ends_with('>')))
}

#[test]
fn the_configuration_reference_matches_the_parser() {
    let doc = repo_file("docs/configuration.md");
    let keys = documented_keys(&doc);
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a key documented twice");

    let example = every_key_example(&doc);
    let loaded = WorkerConfig::parse(&example, "every-key example").expect("the example parses");
    let unknown: Vec<&String> = loaded
        .warnings
        .iter()
        .filter(|w| w.contains("unknown key"))
        .collect();
    assert!(
        unknown.is_empty(),
        "documented but not accepted: {unknown:#?}"
    );

    let mut in_example = BTreeSet::new();
    flatten(
        "",
        &example.parse::<toml::Table>().expect("TOML"),
        &mut in_example,
    );
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !in_example.iter().any(|e| matches(k, e)))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but not in the example: {missing:#?}"
    );

    // Every field of the configuration's sections, read from their source: a new key
    // fails here until it is documented.
    let segments: BTreeSet<&str> = keys.iter().flat_map(|k| k.split('.')).collect();
    let sources = [
        "damocles-sealing/src/config.rs",
        "damocles-sealing/src/config/processors.rs",
    ];
    let not_keys = ["config", "warnings"]; // LoadedConfig's
    let mut undocumented = Vec::new();
    for source in sources {
        for line in repo_file(source).lines() {
            let Some(field) = line.trim().strip_prefix("pub ") else {
                continue;
            };
            let Some((name, _)) = field.split_once(':') else {
                continue;
            };
            if name.contains(char::is_whitespace) || not_keys.contains(&name) {
                continue;
            }
            // The per-stage processor lists are documented once, as `processors.<stage>…`.
            let a_stage = name.parse::<damocles_core::ProofStage>().is_ok();
            let documented = segments.contains(name) || (a_stage && segments.contains("<stage>"));
            if !documented {
                undocumented.push(format!("{source}: {name}"));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "accepted but not documented: {undocumented:#?}"
    );
}
