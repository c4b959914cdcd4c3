//! The worker configuration: the fixture the quickstart uses, merging, warnings for
//! unknown keys and errors that name the key and the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use damocles_core::{ProofStage, SectorSize};
use damocles_sealing::config::{ConfigError, WorkerConfig};
use damocles_sealing::SealingOptions;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/damocles-worker.mock.toml")
}

fn parse(text: &str) -> Result<damocles_sealing::config::LoadedConfig, ConfigError> {
    WorkerConfig::parse(text, "test.toml")
}

fn error(text: &str) -> String {
    parse(text).expect_err("an invalid config").to_string()
}

const ONE_THREAD: &str = "[[sealing_thread]]\nlocation = \"/tmp/s1\"\n";

#[test]
fn the_quickstart_fixture_loads_without_warnings() {
    let loaded = WorkerConfig::load(&fixture()).expect("fixture");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let config = loaded.config;
    let plans: Vec<_> = config.sealing_thread.iter().map(|t| t.plan).collect();
    use damocles_core::Plan;
    assert_eq!(
        plans,
        [
            Plan::Sealer,
            Plan::Sealer,
            Plan::Sealer,
            Plan::Snapup,
            Plan::Rebuild,
            Plan::Unseal,
            Plan::Wdpost
        ]
    );
    assert_eq!(config.admin_addr(), "127.0.0.1:17890");
    assert_eq!(config.worker.ping_interval, Duration::from_secs(5));
    assert_eq!(
        config.sector_manager.rpc_client.addr,
        "/ip4/127.0.0.1/tcp/1789"
    );
    let stores = config.attached_stores();
    assert_eq!(stores.len(), 1);
    assert_eq!(stores[0].name, "persist-store1");
    let options = config.thread_options(0);
    assert_eq!(options.allowed_sizes, Some(vec![SectorSize::KIB_2]));
    assert_eq!(options.allowed_miners, Some(vec![10000]));
    assert_eq!(options.max_retries, 3);
    assert_eq!(options.recover_interval, Duration::from_secs(5));
    let limits = config.stage_limits();
    assert!(limits.is_limited(damocles_core::ProofStage::C2));
    assert!(!limits.is_limited(damocles_core::ProofStage::C1));
}

#[test]
fn thread_keys_override_global_keys_which_override_defaults() {
    let loaded = parse(
        r#"
[sealing]
max_retries = 7
seal_interval = "1m 30s"

[[sealing_thread]]
location = "/tmp/a"

[[sealing_thread]]
location = "/tmp/b"
sealing.max_retries = 2
sealing.min_deal_space = "8GiB"
"#,
    )
    .expect("config");
    let config = loaded.config;
    let defaults = SealingOptions::default();
    let first = config.thread_options(0);
    assert_eq!(first.max_retries, 7);
    assert_eq!(first.seal_interval, Duration::from_secs(90));
    assert_eq!(first.recover_interval, defaults.recover_interval);
    let second = config.thread_options(1);
    assert_eq!(second.max_retries, 2);
    assert_eq!(second.seal_interval, Duration::from_secs(90));
    assert_eq!(second.min_deal_space, Some(8 << 30));
    // The defaults where nothing is set: the admin API on loopback, port 17890.
    assert_eq!(config.admin_addr(), "127.0.0.1:17890");
    assert_eq!(config.worker.ping_interval, Duration::from_secs(30));
}

#[test]
fn unknown_keys_are_warnings_that_name_them() {
    let loaded = parse(&format!(
        "[worker]\nscan_persist_store = []\n[sealing]\nmax_retrys = 3\n{ONE_THREAD}\
         [[processors.winning_post]]\nbin = \"x\"\n"
    ))
    .expect("config");
    let warnings = loaded.warnings.join("\n");
    for key in [
        "worker.scan_persist_store",
        "sealing.max_retrys",
        "processors.winning_post",
    ] {
        assert!(warnings.contains(key), "{key} not in {warnings}");
    }
    assert!(warnings.contains("test.toml"), "{warnings}");
}

#[test]
fn request_task_max_retries_is_read_but_warned_about_where_it_is_set() {
    let loaded = parse(&format!(
        "[sealing]\nrequest_task_max_retries = 5\n{ONE_THREAD}sealing.request_task_max_retries = 2\n"
    ))
    .expect("config");
    let warnings = loaded.warnings.join("\n");
    for key in [
        "sealing.request_task_max_retries has no effect",
        "sealing_thread[0].sealing.request_task_max_retries has no effect",
    ] {
        assert!(warnings.contains(key), "{key} not in {warnings}");
    }
    let quiet = parse(ONE_THREAD).expect("config");
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
}

#[test]
fn an_unknown_stage_is_an_error_listing_the_valid_ones() {
    for section in ["processors.limitation.concurrent", "processors.limit"] {
        let err = error(&format!("{ONE_THREAD}[{section}]\npc9 = 1\n"));
        assert!(err.contains(&format!("{section}.pc9")), "{err}");
        assert!(
            err.contains("unknown stage \"pc9\"; valid stages: add_pieces, tree_d, pc1, pc2"),
            "{err}"
        );
    }
}

#[test]
fn a_bad_value_is_an_error_naming_the_key_the_file_and_the_line() {
    let err = error(&format!("[sealing]\nmax_retries = \"three\"\n{ONE_THREAD}"));
    assert!(
        err.starts_with("config test.toml: sealing.max_retries: "),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");

    let err = error(&format!(
        "[sealing]\nrecover_interval = \"soon\"\n{ONE_THREAD}"
    ));
    assert!(err.contains("sealing.recover_interval"), "{err}");

    let err = error(&format!(
        "[sealing]\nallowed_sizes = [\"2KB\"]\n{ONE_THREAD}"
    ));
    assert!(err.contains("sealing.allowed_sizes"), "{err}");
    assert!(err.contains("2KiB"), "says what a size looks like: {err}");

    let err = error(&format!(
        "{ONE_THREAD}[[sealing_thread]]\nlocation = \"/tmp/b\"\nsealing.seal_interval = 5\n"
    ));
    assert!(
        err.contains("sealing_thread[1].sealing.seal_interval"),
        "{err}"
    );

    let err = error(&format!(
        "{ONE_THREAD}[processors.limitation.concurrent]\nc2 = 0\n"
    ));
    assert!(err.contains("processors.limitation.concurrent.c2"), "{err}");

    let err = error("[worker]\nrpc_server.port = 70000\n");
    assert!(err.contains("worker.rpc_server.port"), "{err}");
}

#[test]
fn threads_need_a_location_and_a_known_plan() {
    let err = error("[[sealing_thread]]\nplan = \"sealer\"\n");
    assert!(err.contains("sealing_thread[0]"), "{err}");
    assert!(err.contains("location"), "{err}");

    let err = error("[sealing]\n");
    assert!(err.contains("at least one"), "{err}");

    // Every plan runs, wdpost included.
    for plan in ["sealer", "snapup", "rebuild", "unseal", "wdpost"] {
        let text = format!("[[sealing_thread]]\nlocation = \"/x\"\nplan = \"{plan}\"\n");
        let loaded = parse(&text).expect(plan);
        assert_eq!(loaded.config.sealing_thread[0].plan.as_str(), plan);
    }
    let err = error("[[sealing_thread]]\nlocation = \"/x\"\nplan = \"sealr\"\n");
    assert!(err.contains("sealing_thread[0].plan"), "{err}");
}

#[test]
fn broken_toml_and_a_missing_file_are_clear() {
    let err = error("[sealing\nmax_retries = 1\n");
    assert!(err.starts_with("config test.toml: "), "{err}");
    assert!(err.contains("line 1"), "{err}");
    let err = WorkerConfig::load(Path::new("/nonexistent/worker.toml"))
        .expect_err("missing")
        .to_string();
    assert!(err.contains("/nonexistent/worker.toml"), "{err}");
}

mod fuzz {
    //! The parser under generated input: random text, and the quickstart fixture with
    //! random edits. It answers a config or an error, never panics. `FUZZ_CASES` sets the
    //! count (default 2,000 per property).
    use proptest::prelude::*;

    use super::*;

    fn cases() -> u32 {
        std::env::var("FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2_000)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn random_text(text in ".{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn the_fixture_with_random_edits(
            edits in prop::collection::vec((any::<prop::sample::Index>(), "[\\x00-\\x7f]{0,3}"), 1..6),
        ) {
            let mut text = std::fs::read_to_string(fixture()).expect("fixture");
            for (at, insert) in edits {
                let mut at = at.index(text.len().max(1));
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let end = (at + 1).min(text.len());
                text.replace_range(at..end, &insert);
            }
            if let Err(e) = parse(&text) {
                prop_assert!(e.to_string().starts_with("config test.toml: "), "{}", e);
            }
        }
    }
}

#[test]
fn external_processors_read_as_the_originals_with_its_defaults() {
    let text = format!(
        "{ONE_THREAD}[processors.ext_locks]\ngpu0 = 1\n\
         [[processors.c2]]\nbin = \"/opt/c2\"\nargs = [\"--gpu\", \"0\"]\nenvs = {{ CUDA_VISIBLE_DEVICES = \"0\" }}\n\
         inherit_envs = false\nstable_wait = \"30s\"\nauto_restart = false\nconcurrent = 2\nlocks = [\"gpu0\"]\n\
         numa_preferred = 1\ncgroup.cpuset = \"0-3,8\"\ncgroup.group_name = \"sealing\"\n\
         [[processors.pc1]]\n"
    );
    let loaded = parse(&text).expect("valid");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let external = loaded.config.processors.external();
    let c2 = &external[&damocles_core::ProofStage::C2][0];
    assert_eq!(c2.bin.as_deref(), Some(Path::new("/opt/c2")));
    assert_eq!(
        c2.args.as_deref(),
        Some(&["--gpu".to_owned(), "0".to_owned()][..])
    );
    assert_eq!(c2.envs["CUDA_VISIBLE_DEVICES"], "0");
    assert!(!c2.inherit_envs && !c2.auto_restart);
    assert_eq!(c2.stable_wait, Duration::from_secs(30));
    assert_eq!((c2.concurrent, c2.numa_preferred), (2, Some(1)));
    assert_eq!(c2.cgroup.cpuset.as_deref(), Some("0-3,8"));
    assert_eq!(c2.cgroup.group_name, "sealing");
    let pc1 = &external[&damocles_core::ProofStage::PC1][0];
    assert_eq!(
        (
            pc1.bin.clone(),
            pc1.args.clone(),
            pc1.inherit_envs,
            pc1.auto_restart
        ),
        (None, None, true, true)
    );
    assert_eq!(
        (pc1.stable_wait, pc1.concurrent),
        (Duration::from_secs(5), 64)
    );
    assert_eq!(pc1.cgroup.group_name, "vc-worker");
}

#[test]
fn processor_mistakes_are_errors_naming_the_key() {
    let undeclared = error(&format!(
        "{ONE_THREAD}[[processors.c2]]\nlocks = [\"gpu9\"]\n"
    ));
    assert_eq!(
        undeclared,
        "config test.toml: processors.c2[0].locks: lock \"gpu9\" is not declared in [processors.ext_locks] (declared: none)"
    );
    let zero = error(&format!(
        "{ONE_THREAD}[[processors.pc2]]\n[[processors.pc2]]\nconcurrent = 0\n"
    ));
    assert!(
        zero.contains("processors.pc2[1].concurrent: 0 would never run a call"),
        "{zero}"
    );
    let cpuset = error(&format!(
        "{ONE_THREAD}[[processors.pc1]]\ncgroup.cpuset = \"0-3,x\"\n"
    ));
    assert!(
        cpuset.contains("processors.pc1[0].cgroup.cpuset: \"x\" in \"0-3,x\""),
        "{cpuset}"
    );
    let lock = error(&format!("{ONE_THREAD}[processors.ext_locks]\ngpu = 0\n"));
    assert!(
        lock.contains("processors.ext_locks.gpu: 0 would never let a call hold it"),
        "{lock}"
    );
    let group = error(&format!(
        "{ONE_THREAD}[[processors.c2]]\ncgroup.group_name = \"a/b\"\n"
    ));
    assert!(
        group.contains("processors.c2[0].cgroup.group_name"),
        "{group}"
    );
}

#[test]
fn tree_d_processors_are_warned_about_or_refused_with_a_program() {
    let loaded = parse(&format!("{ONE_THREAD}[[processors.tree_d]]\n")).expect("valid");
    assert_eq!(
        loaded.warnings,
        ["config test.toml: [[processors.tree_d]] has no effect: PC1 builds tree D itself in this worker (filecoin-proofs 19); the TreeD step computes comm_d from the pieces, in-process"]
    );
    assert!(loaded.config.processors.external().is_empty());
    // A program of the operator's would be expected to run: refused.
    let refused = error(&format!(
        "{ONE_THREAD}[[processors.tree_d]]\nbin = \"/opt/tree-d\"\n"
    ));
    assert!(
        refused.contains("processors.tree_d[0].bin")
            && refused.contains("has no tree_d step to send to another program")
            && refused.contains("external processors: add_pieces, pc1, pc2, c2, snap_encode, snap_prove, unseal, window_post, transfer"),
        "{refused}"
    );
}

#[test]
fn every_stage_of_the_originals_processors_and_sealing_daemons_are_taken() {
    let loaded = parse(&format!(
        "{ONE_THREAD}[[processors.window_post]]\nbin = \"/opt/gpuproxy/window-post\"\n\
         [[processors.unseal]]\n[[processors.snap_encode]]\n[[processors.snap_prove]]\n\
         [[processors.add_pieces]]\n[[processors.transfer]]\n\
         [[processors.sealing_daemons]]\nbin = \"/opt/daemon\"\nargs = [\"--serve\"]\n"
    ))
    .expect("valid");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let stages: Vec<ProofStage> = loaded.config.processors.external().into_keys().collect();
    assert_eq!(
        stages,
        [
            ProofStage::AddPieces,
            ProofStage::SnapEncode,
            ProofStage::SnapProve,
            ProofStage::Unseal,
            ProofStage::WindowPost,
            ProofStage::Transfer,
        ]
    );
    assert_eq!(loaded.config.processors.sealing_daemons.len(), 1);
    // A daemon is a program of the operator's: it must name it.
    let refused = error(&format!(
        "{ONE_THREAD}[[processors.sealing_daemons]]\nargs = [\"--serve\"]\n"
    ));
    assert!(
        refused.contains("processors.sealing_daemons[0].bin")
            && refused.contains("EMPTY processor ready"),
        "{refused}"
    );
}

#[test]
fn keys_of_the_original_without_effect_are_named_and_stores_it_names_attached() {
    let loaded = parse(&format!(
        "[worker]\nScanPersistStores = [\"/nowhere/*\"]\n\
         [sector_manager]\nrpc_client.headers = {{ User-Agent = \"jsonrpc-core-client\" }}\n\
         [remote_store]\nname = \"old\"\nlocation = \"/mnt/old\"\n\
         [attached_selection]\nenable_space_weighted = true\n\
         [processors.static_tree_d]\n32GiB = \"/mnt/sc-02-data-tree-d.dat\"\n\
         [processors.limitation.staggered]\npc1 = \"5min\"\n{ONE_THREAD}"
    ))
    .expect("valid");
    let warnings = loaded.warnings.join("\n");
    for named in [
        "[remote_store] is deprecated",
        "[attached_selection] has no effect",
        "rpc_client.headers are not sent",
        "[processors.static_tree_d] has no effect",
    ] {
        assert!(warnings.contains(named), "{named} not in {warnings}");
    }
    assert!(!warnings.contains("unknown key"), "{warnings}");
    let config = loaded.config;
    assert_eq!(config.worker.scan_persist_stores, ["/nowhere/*"]);
    let stores: Vec<String> = config
        .attached_stores()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(stores, ["old"]);
    assert_eq!(
        config
            .stage_limits()
            .staggered(damocles_core::ProofStage::PC1),
        Some(Duration::from_secs(300))
    );
}

#[test]
fn the_limits_on_what_comes_from_outside_are_read() {
    let loaded = parse(
        "[worker]\nunseal_file_dirs = [\"/mnt/retrieved\"]\n\
         [sector_manager]\nrpc_client.addr = \"/ip4/127.0.0.1/tcp/1789\"\nrpc_client.max_answer_bytes = 67108864\n\
         [[sealing_thread]]\nlocation = \"/tmp/store\"\n",
    )
    .expect("config");
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let config = loaded.config;
    assert_eq!(
        config.worker.unseal_file_dirs,
        [PathBuf::from("/mnt/retrieved")]
    );
    assert_eq!(
        config.sector_manager.rpc_client.max_answer_bytes,
        Some(64 << 20)
    );
    let defaults = parse("[[sealing_thread]]\nlocation = \"/tmp/store\"\n").expect("config");
    assert!(defaults.config.worker.unseal_file_dirs.is_empty());
    assert_eq!(
        defaults.config.sector_manager.rpc_client.max_answer_bytes,
        None
    );
}
