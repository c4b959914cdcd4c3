//! The worker configurations published with the original damocles (its docs/en/03 full
//! and minimal examples, the four community examples in docs/example/, its mock worker's),
//! kept in `fixtures/original-configs/` with only paths, cpusets and processor `bin`s
//! changed: each passes `config check` with no key silently ignored, and starts (the
//! admin API answers; the threads wait for the manager).

use std::path::Path;
use std::process::Command;

use crate::common::{free_port, worker, worker_list, WORKER};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/original-configs");

/// A stand-in for the gpuproxy C2 plugin of example 1: it gets ready and answers nothing.
const C2_PLUGIN: &str = "#!/bin/sh\necho 'c2 processor ready'\nexec cat > /dev/null\n";

/// `fixture` made runnable in `root`: paths under it, the plugin stand-in as `bin`, and
/// this test's ports: the admin API and metrics on free loopback ports, the manager an
/// address where nothing listens. Every thread location is prepared and every attached
/// store created, as an operator's are.
fn runnable(fixture: &Path, root: &Path) -> std::path::PathBuf {
    let plugin = root.join("c2-plugin");
    std::fs::write(&plugin, C2_PLUGIN).expect("plugin");
    let chmod = Command::new("chmod").arg("+x").arg(&plugin).status();
    assert!(chmod.expect("chmod").success());
    let text = std::fs::read_to_string(fixture).expect("fixture");
    let text = text
        .replace("@ROOT@", &root.display().to_string())
        .replace("@BIN@", &plugin.display().to_string())
        .replace("{some_ip}", "127.0.0.1");
    let mut doc: toml_edit::DocumentMut = text.parse().expect("TOML");
    doc["worker"]["rpc_server"]["host"] = toml_edit::value("127.0.0.1");
    doc["worker"]["rpc_server"]["port"] = toml_edit::value(i64::from(free_port()));
    doc["metrics"]["http_listen"] = toml_edit::value(format!("127.0.0.1:{}", free_port()));
    let nobody = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    doc["sector_manager"]["rpc_client"]["addr"] = toml_edit::value(nobody);
    let threads = doc["sealing_thread"].as_array_of_tables().expect("threads");
    for thread in threads.iter() {
        let location = thread["location"].as_str().expect("location");
        let init = Command::new(WORKER)
            .args(["store", "sealing-init", "-l", location])
            .output()
            .expect("sealing-init");
        assert!(init.status.success(), "{location}");
    }
    let stores = doc
        .get("attached")
        .and_then(|a| a.as_array_of_tables())
        .into_iter()
        .flat_map(|a| a.iter())
        .chain(doc.get("remote_store").and_then(|r| r.as_table()));
    for store in stores {
        let location = store["location"].as_str().expect("store location");
        std::fs::create_dir_all(location).expect("store");
    }
    let path = root.join(fixture.file_name().expect("name"));
    std::fs::write(&path, doc.to_string()).expect("config");
    path
}

#[test]
fn every_published_config_passes_config_check_and_starts() {
    let mut fixtures: Vec<_> = std::fs::read_dir(FIXTURES)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 6, "{fixtures:?}");
    for fixture in fixtures {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let root = tempfile::tempdir().expect("root");
        let config = runnable(&fixture, root.path());
        let check = Command::new(WORKER)
            .args(["config", "check", "--json", "-c"])
            .arg(&config)
            .output()
            .expect("config check");
        let report: serde_json::Value =
            serde_json::from_slice(&check.stdout).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(check.status.code(), Some(0), "{name}: {report:#}");
        assert_eq!(report["problems"], serde_json::json!([]), "{name}");
        let warnings = report["warnings"].as_array().expect("warnings");
        assert!(
            warnings
                .iter()
                .all(|w| !w.as_str().unwrap_or_default().contains("unknown key")),
            "{name}: a key of the original is silently ignored: {warnings:#?}"
        );
        let threads = report["threads"].as_array().expect("threads").len();

        let process = worker(&config);
        let listed = worker_list(&process.address).unwrap_or_else(|| panic!("{name}: no list"));
        assert_eq!(listed.len(), threads, "{name}");
        assert!(
            listed.iter().all(|t| t["job_id"].is_null()),
            "{name}: {listed:#?}"
        );
        drop(process);
    }
}
