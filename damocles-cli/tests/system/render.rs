//! Every table, message and `--json` shape of `damocles-worker worker …`, as snapshots in
//! the top-level `snapshots/` directory. Elapsed times are fixed in the inputs and
//! redacted in JSON.

use damocles_cli::exit;
use damocles_cli::render::{self, PauseJson, ResumeJson};
use damocles_core::{
    AdminError, PauseOutcome, Plan, PlanState, ResumeOutcome, Stage, State, ThreadInfo, ThreadState,
};

macro_rules! snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

macro_rules! json_snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
            insta::assert_json_snapshot!($name, $value, {
                "[].thread_state.elapsed" => "[elapsed]",
            });
        })
    };
}

const MISSING_PARAMS: &str = "permanent: c2: No cached parameters found for stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-032d3138d22506ec0082ed72b2dcba18df18477904e35bafee82b3793b06832f [failure finding /var/tmp/filecoin-proof-parameters/v28-stacked-proof-of-replication-merkletree-poseidon_hasher-8-0-0-sha256_hasher-032d3138d22506ec0082ed72b2dcba18df18477904e35bafee82b3793b06832f.params]";

fn thread(
    index: usize,
    job: Option<(u64, State, Stage)>,
    thread_state: ThreadState,
    last_error: Option<&str>,
) -> ThreadInfo {
    ThreadInfo {
        index,
        location: format!("/home/op/mock-tmp/store{}", index + 1),
        plan: Plan::Sealer,
        job_id: job.map(|(n, _, _)| format!("s-t010000-{n}")),
        job_state: Some(PlanState::Sector(job.map_or(State::Empty, |(_, s, _)| s))),
        job_stage: Some(job.map_or(Stage::Nothing, |(_, _, stage)| stage)),
        thread_state,
        last_error: last_error.map(str::to_owned),
        pause_requested: false,
        draining: false,
        stuck: false,
        pending_plan: None,
        config_error: None,
        stopping: false,
        as_sent: Default::default(),
    }
}

/// The seed document's case: three threads paused at C1Done without parameters.
fn seed_case() -> Vec<ThreadInfo> {
    [2, 3, 1]
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            thread(
                i,
                Some((n, State::C1Done, Stage::C2)),
                ThreadState::Paused { elapsed: 17 },
                Some(MISSING_PARAMS),
            )
        })
        .collect()
}

/// Idle, running (in a proof call, and between calls), waiting, paused with an error
/// that spans lines, and a pause requested during C2.
fn mixed() -> Vec<ThreadInfo> {
    let mut requested = thread(
        5,
        Some((9, State::C1Done, Stage::C2)),
        ThreadState::Running {
            elapsed: 42,
            proc: Some("builtin C2".into()),
        },
        None,
    );
    requested.pause_requested = true;
    vec![
        thread(0, None, ThreadState::Idle, None),
        thread(
            1,
            Some((4, State::TicketAssigned, Stage::PC1)),
            ThreadState::Running {
                elapsed: 100,
                proc: Some("builtin PC1".into()),
            },
            None,
        ),
        thread(
            2,
            Some((5, State::PC2Done, Stage::SubmitPreCommit)),
            ThreadState::Running {
                elapsed: 3,
                proc: None,
            },
            None,
        ),
        thread(
            3,
            Some((6, State::C1Done, Stage::C2)),
            ThreadState::Waiting { elapsed: 5 },
            None,
        ),
        thread(
            4,
            Some((7, State::TicketAssigned, Stage::PC1)),
            ThreadState::Paused { elapsed: 7260 },
            Some("permanent: AssignTicket: rpc error: connection refused\nretried 5 times"),
        ),
        requested,
    ]
}

#[test]
fn list_tables() {
    snapshot!("worker_list_seed_case", render::thread_table(&seed_case()));
    snapshot!("worker_list_mixed", render::thread_table(&mixed()));
    snapshot!("worker_list_empty", render::thread_table(&[]));
}

#[test]
fn list_json() {
    json_snapshot!("worker_list_json", mixed());
}

#[test]
fn pause_and_resume_messages_and_json() {
    let mut text = String::new();
    for outcome in [
        PauseOutcome::Paused,
        PauseOutcome::Requested,
        PauseOutcome::AlreadyPaused,
        PauseOutcome::Delivered,
    ] {
        text.push_str(&render::pause_message(0, outcome));
        text.push('\n');
        text.push_str(&render::json(&PauseJson { index: 0, outcome }));
    }
    snapshot!("worker_pause_messages", text);

    let mut text = String::new();
    for outcome in [
        ResumeOutcome::Resumed {
            state: Some(PlanState::Sector(State::TreeDBuilt)),
        },
        ResumeOutcome::Resumed { state: None },
        ResumeOutcome::PauseCalledOff,
        ResumeOutcome::NotPaused,
    ] {
        text.push_str(&render::resume_message(1, &outcome, None));
        text.push('\n');
        text.push_str(&render::json(&ResumeJson {
            index: 1,
            outcome: &outcome,
        }));
    }
    text.push_str(&render::resume_message(
        1,
        &ResumeOutcome::NotPaused,
        Some("TreeDBuilt"),
    ));
    text.push('\n');
    snapshot!("worker_resume_messages", text);
}

#[test]
fn error_messages_kinds_and_exit_codes() {
    let errors = [
        AdminError::ThreadNotFound { index: 9 },
        AdminError::InvalidState(Plan::Sealer.parse_state("Foo").expect_err("unknown")),
        AdminError::InvalidState(
            Plan::Sealer
                .parse_state("SnapEncoded")
                .expect_err("other plan"),
        ),
        AdminError::Unreachable {
            address: "127.0.0.1:17890".into(),
            reason: "connection refused — is the daemon running?".into(),
        },
        AdminError::Unauthorized {
            address: "127.0.0.1:17890".into(),
            reason: "unauthorized: send the worker's token as `Authorization: Bearer <token>`"
                .into(),
        },
        AdminError::Remote {
            code: -32602,
            message: "invalid params: index must be a thread index".into(),
        },
        AdminError::Internal("rwlock poisoned".into()),
    ];
    let mut text = String::new();
    for error in &errors {
        let failure = exit::CliError::from(error.clone());
        let (code, kind) = (failure.code(), failure.kind.name());
        text.push_str(&format!("exit {code} ({kind}): error: {error}\n"));
        text.push_str(&render::error_json(&failure));
    }
    snapshot!("worker_errors", text);
}

fn entry(
    name: &str,
    dest: &str,
    last_ping: i64,
    summary: [u64; 6],
) -> damocles_rpc::registry::PingEntry {
    let [threads, empty, paused, running, waiting, errors] = summary;
    damocles_rpc::registry::PingEntry {
        info: damocles_core::WorkerReport {
            name: name.into(),
            dest: dest.into(),
            version: "v0.1.0-damocles-rs".into(),
            summary: damocles_core::WorkerSummary {
                threads,
                empty,
                paused,
                running,
                waiting,
                errors,
            },
        },
        last_ping,
        liveness: None,
    }
}

#[test]
fn manager_worker_list_fresh_and_expired() {
    let now = 1_800_000_000;
    let expiration = std::time::Duration::from_secs(600);
    let entries = vec![
        entry("127.0.0.1", "127.0.0.1:17890", now - 3, [3, 0, 3, 0, 0, 3]),
        entry(
            "sealer-b",
            "10.0.0.7:17890",
            now - 600,
            [64, 2, 1, 40, 21, 1],
        ),
        entry("sealer-c", "10.0.0.8:17890", now - 3725, [8, 8, 0, 0, 0, 0]),
    ];
    snapshot!(
        "manager_worker_list",
        render::ping_table(&entries, now, expiration)
    );
    let judged: Vec<_> = entries
        .into_iter()
        .map(|e| e.judged(now, expiration))
        .collect();
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("manager_worker_list_json", judged, {
            "[].LastPing" => "[time]",
        });
    });
}

#[test]
fn manager_worker_info_and_messages() {
    snapshot!(
        "manager_worker_info_seed_case",
        render::info_table(&seed_case())
    );
    snapshot!("manager_worker_info_mixed", render::info_table(&mixed()));
    let mut text = String::new();
    for (name, dest) in [
        ("sealer-b", "10.0.0.7:17890"),
        ("10.0.0.7:17890", "10.0.0.7:17890"),
    ] {
        text.push_str(&render::remote_message(
            name,
            dest,
            &render::pause_message(2, PauseOutcome::Requested),
        ));
        text.push('\n');
        text.push_str(&render::remote_message(
            name,
            dest,
            &render::resume_message(2, &ResumeOutcome::NotPaused, None),
        ));
        text.push('\n');
    }
    snapshot!("manager_worker_messages", text);
}

#[test]
fn sealer_sectors_table() {
    use damocles_core::sealer_api::{
        Cid, DealInfo, PieceRef, PreCommitOnChainInfo, SectorPiece, Seed, Ticket,
    };
    use damocles_core::UpdateProof;
    use damocles_core::{SealProof, SectorId};
    use damocles_sealing::mock_chain::{
        AcceptedUpdate, ChainSector, ChainSectorState, ChainUpgrade,
    };

    let ticket = Ticket {
        ticket: [0xaa; 32],
        epoch: 100,
    };
    let deal = |id: u64, size: u64, cid: &str| SectorPiece {
        piece: PieceRef {
            size,
            cid: Cid { text: cid.into() },
        },
        deal_info: DealInfo {
            deal_id: id,
            allocation_id: 0,
            payload_size: size / 2,
            is_builtin_market: true,
        },
    };
    let deal_sector = ChainSector {
        id: SectorId::new(10000, 1),
        proof_type: SealProof::StackedDrg2KiBV1_1,
        ticket: Some(ticket),
        pre_commit: Some(PreCommitOnChainInfo {
            comm_r: [0xcc; 32],
            comm_d: [0xdd; 32],
            ticket,
        }),
        seed: Some(Seed {
            seed: [0xbb; 32],
            epoch: 200,
        }),
        proof: Some(vec![0xee; 192]),
        persisted: Some("remote".into()),
        reported_state: Some("Finished".into()),
        state: ChainSectorState::Finished,
        upgrade: None,
        rebuilt: 0,
        deals: vec![
            deal(
                1,
                1024,
                "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy",
            ),
            deal(
                2,
                512,
                "baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq",
            ),
        ],
    };
    let aborted = ChainSector {
        id: SectorId::new(10000, 2),
        ticket: None,
        pre_commit: None,
        seed: None,
        proof: None,
        persisted: None,
        reported_state: None,
        state: ChainSectorState::Aborted("task aborted".into()),
        deals: Vec::new(),
        ..deal_sector.clone()
    };
    let upgraded = ChainSector {
        id: SectorId::new(10000, 3),
        state: ChainSectorState::Upgraded,
        rebuilt: 1,
        deals: Vec::new(),
        upgrade: Some(ChainUpgrade {
            deals: deal_sector.deals[..1].to_vec(),
            accepted: Some(AcceptedUpdate {
                proof_type: UpdateProof::StackedDrg2KiBV1,
                comm_r_new: [0xc1; 32],
                comm_d_new: [0xd1; 32],
                proof: vec![0xab; 192],
                store: "remote".into(),
            }),
        }),
        ..deal_sector.clone()
    };
    let sectors: Vec<_> = [deal_sector, aborted, upgraded]
        .iter()
        .map(ChainSector::row)
        .collect();
    snapshot!("manager_sectors_list", render::sectors_table(&sectors));
    json_snapshot!("manager_sectors_list_json", sectors);
}

/// wdpost threads: waiting for a round, proving a job, submitting its proof.
fn wdpost_threads() -> Vec<ThreadInfo> {
    use damocles_core::WdPostState;
    let row = |index: usize, job: Option<&str>, state: WdPostState, thread_state| ThreadInfo {
        index,
        location: format!("/home/op/mock-tmp/store{}", index + 7),
        plan: Plan::Wdpost,
        job_id: job.map(str::to_owned),
        job_state: Some(PlanState::WdPost(state)),
        job_stage: Some(state.stage()),
        thread_state,
        last_error: None,
        pause_requested: false,
        draining: false,
        stuck: false,
        pending_plan: None,
        config_error: None,
        stopping: false,
        as_sent: Default::default(),
    };
    vec![
        row(0, None, WdPostState::Empty, ThreadState::Idle),
        row(
            1,
            Some("3-0"),
            WdPostState::Allocated,
            ThreadState::Running {
                elapsed: 2,
                proc: Some(damocles_core::ProofStage::WindowPost.builtin_proc().into()),
            },
        ),
        row(
            2,
            Some("3-1"),
            WdPostState::Generated,
            ThreadState::Running {
                elapsed: 0,
                proc: None,
            },
        ),
    ]
}

#[test]
fn wdpost_threads_in_lists() {
    snapshot!(
        "worker_list_wdpost",
        render::thread_table(&wdpost_threads())
    );
    snapshot!(
        "manager_worker_info_wdpost",
        render::info_table(&wdpost_threads())
    );
    json_snapshot!("worker_list_wdpost_json", wdpost_threads());
}

#[test]
fn manager_wdpost_list() {
    use damocles_core::PoStProof;
    use damocles_sealing::mock_chain::{WdPostJob, WdPostJobSector, WdPostJobState};

    let now = 1_700_000_000;
    let sector = |number: u64| WdPostJobSector {
        number,
        comm_r: [number as u8; 32],
        upgrade: number == 3,
        store: "persist-store1".into(),
    };
    let job = |round: u64, index: u64, state: WdPostJobState, age: u64| WdPostJob {
        id: format!("{round}-{index}"),
        round,
        miner: 10000,
        proof_type: PoStProof::StackedDrgWindow2KiBV1_2,
        seed: [0x2a; 32],
        sectors: (1..=4).map(|n| sector(index * 4 + n)).collect(),
        state,
        worker: Some("mock-worker".into()),
        tries: 1,
        faults: Vec::new(),
        proofs: Vec::new(),
        verified: None,
        error: None,
        created_at: now - age,
        finished_at: None,
        heartbeat_lost: false,
        deadline_at: now - age + 1800,
        started_at: Some(now - age + 2),
        heartbeat_at: None,
    };
    let jobs: Vec<_> = [
        WdPostJob {
            proofs: vec![vec![0xab; 8]],
            verified: Some(true),
            finished_at: Some(now - 3590),
            ..job(1, 0, WdPostJobState::Finished, 3600)
        },
        WdPostJob {
            faults: vec![2],
            proofs: vec![vec![0xcd; 8]],
            verified: Some(true),
            finished_at: Some(now - 60),
            ..job(2, 0, WdPostJobState::Finished, 65)
        },
        WdPostJob {
            proofs: vec![vec![0xef; 8]],
            verified: Some(false),
            error: Some("the proof does not verify".into()),
            finished_at: Some(now - 60),
            ..job(2, 1, WdPostJobState::Finished, 65)
        },
        WdPostJob {
            tries: 2,
            error: Some("no heartbeat from mock-worker for 15s".into()),
            heartbeat_at: Some(now - 2),
            ..job(3, 0, WdPostJobState::Proving, 20)
        },
        WdPostJob {
            proofs: vec![vec![0x12; 8]],
            verified: Some(true),
            deadline_at: now - 100,
            finished_at: Some(now - 40),
            error: Some("missed: proven 60s after its deadline (proving took 1858s)".into()),
            ..job(2, 2, WdPostJobState::Missed, 1900)
        },
        WdPostJob {
            tries: 2,
            finished_at: Some(now - 1),
            ..job(
                3,
                1,
                WdPostJobState::Failed("no heartbeat from w2 for 15s (tried 2 times)".into()),
                20,
            )
        },
        WdPostJob {
            worker: None,
            tries: 0,
            started_at: None,
            ..job(4, 0, WdPostJobState::Pending, 0)
        },
    ]
    .iter()
    .map(WdPostJob::row)
    .collect();
    snapshot!(
        "manager_wdpost_list",
        render::wdpost_table(&jobs, now as i64)
    );
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("manager_wdpost_list_json", jobs, {
            "[].created_at" => "[time]",
            "[].deadline_at" => "[time]",
            "[].finished_at" => "[time]",
            "[].heartbeat_at" => "[time]",
            "[].started_at" => "[time]",
        });
    });
}

#[test]
fn manager_jobs_list_and_rebuild_message() {
    use damocles_core::SectorId;
    use damocles_sealing::mock_chain::{ChainJob, JobKind, JobState};

    let now = 1_700_000_000;
    let job = |id: u64, number: u64, state: JobState, age: u64| ChainJob {
        id,
        sector: SectorId::new(10000, number),
        kind: JobKind::Rebuild,
        state,
        created_at: now - age,
        finished_at: None,
        refused: None,
        accepted: false,
        taken_at: None,
        reported: false,
        failure: None,
    };
    let jobs: Vec<_> = [
        ChainJob {
            finished_at: Some(now - 3000),
            ..job(1, 1, JobState::Done, 3725)
        },
        ChainJob {
            finished_at: Some(now - 60),
            ..job(2, 2, JobState::Failed("task aborted".into()), 600)
        },
        ChainJob {
            refused: Some(
                "/mnt/remote/cache/s-t010000-3 gives comm_r 00…, but the chain holds cc…".into(),
            ),
            ..job(3, 3, JobState::Taken, 95)
        },
        job(4, 4, JobState::Pending, 5),
        ChainJob {
            accepted: true,
            ..job(5, 5, JobState::Taken, 40)
        },
        ChainJob {
            kind: JobKind::Unseal {
                piece: damocles_core::sealer_api::Cid {
                    text: "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy".into(),
                },
                dest: vec!["file:///retrieved/piece".into(), "store://remote/p".into()],
            },
            ..job(6, 1, JobState::Pending, 2)
        },
        // Its thread paused on a refused destination: the job says why.
        ChainJob {
            kind: JobKind::Unseal {
                piece: damocles_core::sealer_api::Cid {
                    text: "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy".into(),
                },
                dest: vec!["file:///etc/piece".into()],
            },
            reported: true,
            failure: Some("Permanent: deliver: file:///etc/piece is outside every directory of [worker] unseal_file_dirs".into()),
            ..job(7, 1, JobState::Taken, 30)
        },
    ]
    .iter()
    .map(ChainJob::row)
    .collect();
    let mut text = render::jobs_table(&jobs, now as i64);
    text.push_str(&render::job_requested(&jobs[3]));
    text.push_str(&render::job_requested(&jobs[5]));
    snapshot!("manager_jobs_list", text);
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("manager_jobs_list_json", jobs, {
            "[].created_at" => "[time]",
            "[].deadline_at" => "[time]",
            "[].finished_at" => "[time]",
            "[].heartbeat_at" => "[time]",
            "[].started_at" => "[time]",
        });
    });
}

#[tokio::test]
async fn bulk_pause_and_resume_lines_and_json() {
    use damocles_cli::bulk::{self, Action, Selector};
    use damocles_core::testing::{admin_pair, AdminAnswer};

    let threads = mixed();
    let (admin, handle) = admin_pair();
    let mut text = String::new();
    for json in [false, true] {
        handle.push(AdminAnswer::List(Ok(threads.clone())));
        for (i, t) in threads.iter().enumerate() {
            handle.push(AdminAnswer::Pause(match (i, &t.thread_state) {
                (2, _) => Err(AdminError::ThreadNotFound { index: 2 }),
                (_, ThreadState::Paused { .. }) => Ok(PauseOutcome::AlreadyPaused),
                (_, ThreadState::Running { proc: Some(_), .. }) => Ok(PauseOutcome::Requested),
                _ => Ok(PauseOutcome::Paused),
            }));
        }
        let (out, code) = bulk::run(&admin, &Selector::All, &Action::Pause, json, &|m| {
            render::remote_message("sealer-b", "10.0.0.7:17890", m)
        })
        .await;
        text.push_str(&format!(
            "pause --all{} → exit {code}\n{out}",
            if json { " --json" } else { "" }
        ));
        handle.push(AdminAnswer::List(Ok(threads.clone())));
        handle.push(AdminAnswer::Resume(Ok(ResumeOutcome::Resumed {
            state: None,
        })));
        let (out, code) = bulk::run(
            &admin,
            &Selector::Errors,
            &Action::Resume(None),
            json,
            &|m| m.to_owned(),
        )
        .await;
        text.push_str(&format!(
            "resume --errors{} → exit {code}\n{out}",
            if json { " --json" } else { "" }
        ));
    }
    snapshot!("bulk_pause_resume", text);
}

#[test]
fn drain_messages_and_draining_rows() {
    use damocles_core::DrainOutcome;
    let mut text = String::new();
    for outcome in [
        DrainOutcome::Draining,
        DrainOutcome::AlreadyDraining,
        DrainOutcome::Undrained,
        DrainOutcome::NotDraining,
    ] {
        text.push_str(&render::drain_message(3, outcome));
        text.push('\n');
        text.push_str(&render::json(&render::DrainJson { index: 3, outcome }));
    }
    let mut threads = mixed();
    threads[0].draining = true; // idle, no sector: idle-drained
    threads[1].draining = true; // mid-sector: draining
    text.push_str(&render::thread_table(&threads[..2]));
    snapshot!("worker_drain", text);
}

/// One entry of every kind, a minute apart, ending at 2026-11-27 10:00:00 UTC.
fn history() -> Vec<damocles_core::JournalEntry> {
    use damocles_core::{EventKind, FailureLevel, Happening, JournalEntry, ThreadEvent};
    let end_ms: u64 = 1_795_773_600_000;
    let sector = Some("s-t010000-2".to_owned());
    let happenings = vec![
        (
            None,
            Happening::Started {
                state: PlanState::Sector(State::Empty),
                paused: false,
                draining: false,
            },
        ),
        (
            sector.clone(),
            Happening::Transition {
                from: PlanState::Sector(State::Empty),
                to: PlanState::Sector(State::Allocated),
                event: EventKind::Allocate,
            },
        ),
        (
            sector.clone(),
            Happening::Failed {
                level: FailureLevel::Temporary,
                message: "AssignTicket: rpc error: connection refused".into(),
                retry: Some(1),
            },
        ),
        (
            sector.clone(),
            Happening::Failed {
                level: FailureLevel::Permanent,
                message: MISSING_PARAMS["permanent: ".len()..].into(),
                retry: None,
            },
        ),
        (
            sector.clone(),
            Happening::Paused {
                by: None,
                reason: Some(MISSING_PARAMS.into()),
            },
        ),
        (
            sector.clone(),
            Happening::PauseRequested {
                by: "admin token from 10.0.0.9:51234".into(),
            },
        ),
        (
            sector.clone(),
            Happening::PauseCalledOff {
                by: "admin token from 10.0.0.9:51234".into(),
            },
        ),
        (
            sector.clone(),
            Happening::PauseRequested {
                by: "admin token from 10.0.0.9:51234".into(),
            },
        ),
        (
            sector.clone(),
            Happening::Paused {
                by: Some("admin token from 10.0.0.9:51234".into()),
                reason: None,
            },
        ),
        (
            sector.clone(),
            Happening::Resumed {
                by: "127.0.0.1:40112".into(),
                state: Some(PlanState::Sector(State::Aborted)),
            },
        ),
        (
            sector.clone(),
            Happening::Aborted {
                reason: "task aborted".into(),
            },
        ),
        (
            sector.clone(),
            Happening::Drain {
                by: "127.0.0.1:40113".into(),
                on: true,
            },
        ),
        (sector.clone(), Happening::Finished),
        (
            None,
            Happening::Drain {
                by: "127.0.0.1:40114".into(),
                on: false,
            },
        ),
    ];
    let count = happenings.len() as u64;
    happenings
        .into_iter()
        .enumerate()
        .map(|(i, (sector, what))| JournalEntry {
            seq: 990 + i as u64,
            event: ThreadEvent {
                at_ms: end_ms - (count - 1 - i as u64) * 3_700_000,
                sector,
                what,
            },
        })
        .collect()
}

#[test]
fn event_history_table_and_json() {
    let entries = history();
    let last = entries.last().map_or(0, |e| e.event.at_ms);
    // Shown at 42 s after the last entry, in UTC (the operator's zone in real use).
    let table = render::events_table(&entries, last + 42_000, &jiff::tz::TimeZone::UTC);
    snapshot!("worker_events", table);
    snapshot!(
        "worker_events_empty",
        render::events_table(&[], last, &jiff::tz::TimeZone::UTC)
    );
    json_snapshot!("worker_events_json", entries);
}

#[test]
fn ages_keep_their_two_largest_units() {
    let ages: Vec<String> = [
        0, 1, 59, 60, 61, 3_599, 3_600, 3_661, 86_399, 86_400, 90_061,
    ]
    .into_iter()
    .map(render::short_age)
    .collect();
    assert_eq!(
        ages,
        ["0s", "1s", "59s", "1m", "1m 1s", "59m 59s", "1h", "1h 1m", "23h 59m", "1d", "1d 1h"]
    );
}

/// Names, addresses, errors and history fields as a hostile worker or manager could send
/// them: an escape sequence that colours the terminal, a newline and a tab that forge a
/// table line, a C1 control, a bidirectional override. Every cell shows them escaped; the
/// JSON keeps them as they came.
#[test]
fn control_characters_are_escaped_in_every_cell() {
    use damocles_core::{Happening, JournalEntry, ThreadEvent};
    const RED: &str = "\u{1b}[31m";
    let forged = format!("{RED}evil\u{1b}[0m\nsealer-a\t10.0.0.1:17890\tv1");
    let now = 1_800_000_000;
    let expiration = std::time::Duration::from_secs(600);
    let entries = vec![
        entry("sealer-b", "10.0.0.7:17890", now - 3, [1, 1, 0, 0, 0, 0]),
        entry(
            &forged,
            "10.0.0.9:1\u{7}7890\u{85}",
            now - 3,
            [1, 1, 0, 0, 0, 0],
        ),
    ];
    let mut text = render::ping_table(&entries, now, expiration);

    let mut hostile = thread(
        0,
        Some((1, State::C1Done, Stage::C2)),
        ThreadState::Running {
            elapsed: 3,
            proc: Some(format!("{RED}C2\u{1b}[0m")),
        },
        Some(&format!("{RED}boom\r\nfake line\u{202e}txt.exe")),
    );
    hostile.location = format!("/mnt/{RED}store\n1");
    hostile.job_id = Some("s-t01-1\u{1b}]0;title\u{7}".into());
    let threads = vec![hostile, thread(1, None, ThreadState::Idle, None)];
    text.push_str(&render::thread_table(&threads));
    text.push_str(&render::info_table(&threads));

    let history = vec![JournalEntry {
        seq: 1,
        event: ThreadEvent {
            at_ms: 1_795_773_600_000,
            sector: Some(format!("s-{RED}1")),
            what: Happening::Resumed {
                by: format!("admin token from {RED}\n127.0.0.1:1"),
                state: None,
            },
        },
    }];
    text.push_str(&render::events_table(
        &history,
        1_795_773_642_000,
        &jiff::tz::TimeZone::UTC,
    ));
    // The proof type is a number on the wire now: only text can be hostile.
    let sectors = vec![damocles_core::listing::SectorRow {
        abort_reason: Some(format!("{RED}gone\nfake")),
        comm_d: None,
        comm_r: Some(format!("{RED}é{}", "c".repeat(20))),
        miner: 10000,
        number: 1,
        pieces: Vec::new(),
        proof: None,
        proof_type: 5,
        rebuilt: 0,
        seed: None,
        state: "Aborted".to_owned(),
        ticket: None,
        update: None,
    }];
    text.push_str(&render::sectors_table(&sectors));
    text.push_str(&render::remote_message(
        &forged,
        "10.0.0.9:17890",
        "thread #0 paused\u{1b}[0m",
    ));
    text.push('\n');
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "no control character but the lines' ends:\n{text:?}"
    );
    assert_eq!(
        text.lines().count(),
        3 + 3 + 3 + 2 + 2 + 1,
        "no forged line:\n{text}"
    );
    snapshot!("hostile_names", text);

    // JSON keeps what came, escaped the JSON way.
    let json = render::json(&entries);
    let back: Vec<damocles_rpc::registry::PingEntry> = serde_json::from_str(&json).expect("JSON");
    assert_eq!(back, entries);
    assert!(
        json.contains(r"\u001b[31mevil\u001b[0m\nsealer-a\t10.0.0.1"),
        "{json}"
    );
}

#[test]
fn wdpost_reset_and_remove_lines_and_json() {
    let done = [
        render::WdPostJobDone {
            id: "3-0".into(),
            done: render::WdPostJobOutcome::Reset,
            error: None,
        },
        render::WdPostJobDone {
            id: "3-1\u{1b}[31m".into(),
            done: render::WdPostJobOutcome::Removed,
            error: None,
        },
        render::WdPostJobDone {
            id: "9-9".into(),
            done: render::WdPostJobOutcome::NotFound,
            error: None,
        },
        render::WdPostJobDone {
            id: "1-0".into(),
            done: render::WdPostJobOutcome::Refused,
            error: Some("cannot reset it: job '1-0' belongs to round 1, and round 5 has started: its deadline has passed".into()),
        },
    ];
    let mut text = render::wdpost_jobs_done(&done);
    text.push_str(&render::wdpost_jobs_done(&[]));
    snapshot!("manager_wdpost_reset_remove", text);
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("manager_wdpost_reset_remove_json", done);
    });
}

#[test]
fn manager_proving_check() {
    use damocles_cli::render::ProvingCheckRow;
    let rows = vec![
        ProvingCheckRow {
            good: true,
            sector: 1,
            reason: None,
        },
        ProvingCheckRow {
            good: false,
            sector: 2,
            reason: Some("the replica holds 1024 bytes, not 2048 (replica /persist/sealed/s-t010000-2, cache /persist/cache/s-t010000-2)".into()),
        },
        ProvingCheckRow {
            good: false,
            sector: 13,
            reason: Some("no answer within 10m (its files blocked, a dead mount?) (replica /persist/sealed/s-t010000-13, cache /persist/cache/s-t010000-13)".into()),
        },
    ];
    snapshot!("manager_proving_check", render::proving_table(&rows));
    json_snapshot!("manager_proving_check_json", rows);
}

#[test]
fn set_plan_and_stop_messages_json_and_rows() {
    use damocles_cli::worker_ops::{plan_set_message, stop_message};
    use damocles_core::{PlanSet, StopOutcome};
    let mut text = String::new();
    for set in [
        PlanSet {
            file: "/home/op/mock-tmp/store2/config.toml".into(),
            plan: Plan::Rebuild,
            before: None,
            current_job: Some("s-t010000-3".into()),
        },
        PlanSet {
            file: "/home/op/mock-tmp/store2/config.toml".into(),
            plan: Plan::Sealer,
            before: Some(Plan::Rebuild),
            current_job: None,
        },
    ] {
        text.push_str(&plan_set_message(1, &set));
        text.push('\n');
        text.push_str(&render::json(&set));
    }
    for outcome in [
        StopOutcome::Stopping { busy: 2 },
        StopOutcome::Stopping { busy: 0 },
        StopOutcome::AlreadyStopping { busy: 1 },
        StopOutcome::Exiting,
        StopOutcome::Cancelled,
        StopOutcome::NotStopping,
    ] {
        text.push_str(&stop_message(&outcome));
        text.push('\n');
        text.push_str(&render::json(&outcome));
    }
    // A thread with a pending plan, one whose config.toml is not used, one parked for a
    // stop.
    let mut threads = mixed();
    threads[0].pending_plan = Some(Plan::Rebuild);
    threads[1].config_error = Some(
        "config /home/op/mock-tmp/store2/config.toml: plan: unknown variant `rebiuld` (line 1)"
            .into(),
    );
    threads[2].stopping = true;
    threads[2].thread_state = ThreadState::Paused { elapsed: 3 };
    text.push_str(&render::thread_table(&threads[..3]));
    text.push_str(&render::info_table(&threads[..3]));
    snapshot!("worker_set_plan_and_stop", text);
    json_snapshot!("worker_list_hot_config_and_stop_json", &threads[..3]);
}

#[test]
fn config_check_report() {
    use damocles_sealing::config_check::{
        AttachedRow, CheckReport, LimitRow, ProcessorRow, ThreadRow,
    };
    let report = CheckReport {
        file: "/etc/damocles/worker.toml".into(),
        warnings: vec!["config /etc/damocles/worker.toml: [[processors.tree_d]] runs in-process here (the same code as the worker's own tree_d processor, without a process of its own; external processors: pc1, pc2, c2)".into()],
        problems: vec!["processors.pc1[1].cgroup.cpuset: CPU 48-49 not online on this machine (online: 0-47)".into()],
        threads: vec![
            ThreadRow {
                index: 0,
                location: "/mnt/nvme1/store0".into(),
                plan: Plan::Sealer,
                hot_config: false,
                location_state: "ready".into(),
            },
            ThreadRow {
                index: 1,
                location: "/mnt/nvme1/store1".into(),
                plan: Plan::Rebuild,
                hot_config: true,
                location_state: "created at start".into(),
            },
        ],
        processors: vec![
            ProcessorRow {
                stage: "pc1".into(),
                index: 0,
                bin: None,
                args: vec!["processor".into(), "pc1".into()],
                cpuset: Some("0-23".into()),
                concurrent: 2,
                locks: vec![],
            },
            ProcessorRow {
                stage: "sealing_daemons".into(),
                index: 0,
                bin: Some("/usr/local/bin/piece-cache".into()),
                args: vec![],
                cpuset: None,
                concurrent: 64,
                locks: vec![],
            },
        ],
        limits: vec![LimitRow {
            stage: damocles_core::ProofStage::PC1,
            concurrent: Some(4),
            staggered: Some("5m".into()),
        }],
        attached: vec![AttachedRow {
            name: "persist-1".into(),
            location: "/mnt/persist1".into(),
            readonly: false,
        }],
        manager: "/ip4/10.0.0.2/tcp/1789".into(),
        admin: "0.0.0.0:17890".into(),
    };
    snapshot!(
        "worker_config_check",
        damocles_cli::worker_cli::config_check::render_report(&report)
    );
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("worker_config_check_json", &report);
    });
}
