//! `[worker] scan_persist_stores`: persistent stores found by glob (the original's key,
//! alias `ScanPersistStores`): every matching directory that holds a `sectorstore.json`
//! (the file the manager's `util storage` writes into a store) is attached, named by its
//! `Name`, else its `ID`, read-only when its `ReadOnly` says so.

use std::path::Path;

use serde::Deserialize;

use super::AttachedStore;

/// The fields of a `sectorstore.json` this worker reads (Go field names).
#[derive(Debug, Deserialize)]
struct SectorStoreJson {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "ReadOnly", default)]
    readonly: bool,
}

/// The stores the patterns find, and one line for each match that could not be used
/// (a pattern that does not parse, a `sectorstore.json` that does not read or names no
/// store). Directories without a `sectorstore.json` are skipped.
pub fn scan_persist_stores(patterns: &[String]) -> (Vec<AttachedStore>, Vec<String>) {
    let mut stores = Vec::new();
    let mut problems = Vec::new();
    for pattern in patterns {
        let matches = match glob::glob(pattern) {
            Ok(matches) => matches,
            Err(e) => {
                problems.push(format!("worker.scan_persist_stores: {pattern:?}: {e}"));
                continue;
            }
        };
        for dir in matches.filter_map(Result::ok).filter(|p| p.is_dir()) {
            match read_store(&dir) {
                Ok(Some(store)) => stores.push(store),
                Ok(None) => {}
                Err(why) => problems.push(format!("worker.scan_persist_stores: {why}")),
            }
        }
    }
    (stores, problems)
}

/// Why a scanned directory's `sectorstore.json` cannot be used.
#[derive(Debug, thiserror::Error)]
enum ScanError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} is not a store description: {source}")]
    NotJson {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file} names no store (no Name, no ID)")]
    Unnamed { file: String },
}

fn read_store(dir: &Path) -> Result<Option<AttachedStore>, ScanError> {
    let path = dir.join("sectorstore.json");
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ScanError::Read { file, source }),
    };
    let json: SectorStoreJson = match serde_json::from_str(&text) {
        Ok(json) => json,
        Err(source) => return Err(ScanError::NotJson { file, source }),
    };
    let name = json
        .name
        .filter(|n| !n.is_empty())
        .or(json.id.filter(|i| !i.is_empty()))
        .ok_or(ScanError::Unnamed { file })?;
    Ok(Some(AttachedStore {
        name,
        location: dir.to_path_buf(),
        readonly: json.readonly,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_found_by_their_sectorstore_json_and_bad_ones_named() {
        let root = tempfile::tempdir().unwrap();
        for (dir, json) in [
            (
                "a",
                Some(r#"{"ID":"id-a","Name":"store-a","ReadOnly":false}"#),
            ),
            ("b", Some(r#"{"ID":"id-b","Name":"","ReadOnly":true}"#)),
            ("c", None),
            ("d", Some("not json")),
        ] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
            if let Some(json) = json {
                std::fs::write(root.path().join(dir).join("sectorstore.json"), json).unwrap();
            }
        }
        let pattern = format!("{}/*", root.path().display());
        let (stores, problems) = scan_persist_stores(&[pattern, "[".into()]);
        let found: Vec<(&str, bool)> = stores
            .iter()
            .map(|s| (s.name.as_str(), s.readonly))
            .collect();
        assert_eq!(found, [("store-a", false), ("id-b", true)]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("not a store description"),
            "{problems:?}"
        );
    }
}
