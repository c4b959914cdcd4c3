//! damocles-core's behaviour, checked against the reference tables and snapshots.
//!
//! One test binary (ripgrep style) with a module per concern.

mod tables {
    //! Every transition and stage label, checked against the reference text in
    //! `fixtures/reference/` (copied verbatim from the original's documentation).

    use damocles_core::{EventKind, Plan, Stage, State, WdPostState};

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/../fixtures/reference/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    /// Parses `From --Event|Event--> To` lines.
    fn reference_rows(name: &str) -> Vec<(String, Vec<String>, String)> {
        fixture(name)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let (from, rest) = line.split_once("--").expect("a `--` after the state");
                let (events, to) = rest.split_once("-->").expect("a `-->` before the state");
                let events = events.split('|').map(|e| e.trim().to_owned()).collect();
                (from.trim().to_owned(), events, to.trim().to_owned())
            })
            .collect()
    }

    fn event_named(name: &str) -> EventKind {
        // The original's `AcquireDealsV2` reports itself as `AcquireDeals`.
        let name = if name == "AcquireDealsV2" {
            "AcquireDeals"
        } else {
            name
        };
        let by_serde = serde_json::from_value(serde_json::Value::String(name.into()));
        by_serde.unwrap_or_else(|_| match name {
            "UnsealDone" => EventKind::UnsealDone,
            _ => panic!("no event named {name}"),
        })
    }

    fn state_named(name: &str) -> State {
        State::from_name(name).unwrap_or_else(|| panic!("no state named {name}"))
    }

    /// The one helper: the plan's table has exactly the reference's rows.
    fn check_table(plan: Plan, fixture: &str) {
        let mut expected = Vec::new();
        for (from, events, to) in reference_rows(fixture) {
            for event in events {
                let row = (state_named(&from), event_named(&event), state_named(&to));
                if !expected.contains(&row) {
                    expected.push(row);
                }
            }
        }
        let actual: Vec<_> = plan
            .transitions()
            .iter()
            .map(|t| (t.from, t.event, t.to))
            .collect();
        assert_eq!(actual, expected, "transition table of {plan}");
        for (from, event, to) in expected {
            assert_eq!(
                plan.next_state(from, event),
                Some(to),
                "{plan}: {from} --{event:?}-->"
            );
        }
    }

    #[test]
    fn sealer_table_matches_the_reference() {
        check_table(Plan::Sealer, "sealer.transitions");
    }

    #[test]
    fn snapup_table_matches_the_reference() {
        check_table(Plan::Snapup, "snapup.transitions");
    }

    #[test]
    fn rebuild_table_matches_the_reference() {
        check_table(Plan::Rebuild, "rebuild.transitions");
    }

    #[test]
    fn unseal_table_matches_the_reference() {
        check_table(Plan::Unseal, "unseal.transitions");
    }

    #[test]
    fn wdpost_table_matches_the_reference() {
        let expected: Vec<_> = reference_rows("wdpost.transitions")
            .into_iter()
            .map(|(from, events, to)| {
                (
                    WdPostState::from_name(&from).expect("wdpost state"),
                    event_named(&events[0]),
                    WdPostState::from_name(&to).expect("wdpost state"),
                )
            })
            .collect();
        let actual: Vec<_> = damocles_core::plan_table::WDPOST_TRANSITIONS
            .iter()
            .map(|t| (t.from, t.event, t.to))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn an_event_outside_the_table_leads_nowhere() {
        assert_eq!(Plan::Sealer.next_state(State::Empty, EventKind::C2), None);
        assert_eq!(
            Plan::Sealer.next_state(State::TreeDBuilt, EventKind::SnapEncode),
            None
        );
        assert_eq!(
            Plan::Wdpost.next_state(State::Empty, EventKind::Allocate),
            None
        );
    }

    /// The reference stage table's rows: states, the plans a row is limited to (empty:
    /// any plan; `other`: any plan not named by an earlier row of that state), label.
    fn stage_rows() -> Vec<(Vec<String>, Vec<String>, String)> {
        fixture("stages.table")
            .lines()
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let (left, label) = (cells[1], cells[2].trim_matches('`'));
                let (states, plans) = match left.split_once('(') {
                    Some((states, plans)) => (
                        states,
                        plans
                            .trim_end_matches(')')
                            .split(',')
                            .map(|p| p.trim().to_owned())
                            .collect(),
                    ),
                    None => (left, Vec::new()),
                };
                let states = states.split(',').map(|s| s.trim().to_owned()).collect();
                (states, plans, label.to_owned())
            })
            .collect()
    }

    fn reference_stage(state: State, plan: Plan) -> String {
        for (states, plans, label) in stage_rows() {
            let state_matches =
                states.iter().any(|s| s == state.as_str()) || states == ["anything else"];
            let plan_matches =
                plans.is_empty() || plans.iter().any(|p| p == plan.as_str() || p == "other");
            if state_matches && plan_matches {
                return label;
            }
        }
        panic!("the reference has no stage for {state} under {plan}");
    }

    #[test]
    fn every_stage_label_matches_the_reference() {
        assert_eq!(State::ALL.len(), 26);
        for plan in Plan::ALL {
            for &state in State::ALL {
                assert_eq!(
                    state.stage(plan).as_str(),
                    reference_stage(state, plan),
                    "stage of {state} under {plan}"
                );
            }
        }
    }

    #[test]
    fn wdpost_stage_labels() {
        let labels: Vec<_> = WdPostState::ALL
            .iter()
            .map(|s| s.stage().as_str())
            .collect();
        assert_eq!(labels, ["-", "Generate", "SubmitProof", "-", "-"]);
    }

    #[test]
    fn state_numbers_are_the_original_discriminants() {
        assert_eq!(State::SyntheticPoRepNeeded.number(), 8);
        assert_eq!(State::Unsealed.number(), 25);
        for (i, state) in State::ALL.iter().enumerate() {
            assert_eq!(State::from_number(i as u64), Some(*state));
        }
        assert_eq!(State::from_number(26), None);
    }

    #[test]
    fn stage_labels_parse_back() {
        for stage in Stage::ALL {
            assert_eq!(Stage::from_label(stage.as_str()), Some(stage));
        }
    }
}

mod parsing {
    use damocles_core::{Plan, PlanState, State, WdPostState};
    use proptest::prelude::*;

    #[test]
    fn each_plan_accepts_the_states_of_its_table_and_aborted() {
        let names = |plan: Plan| -> Vec<&'static str> {
            plan.resumable_states().iter().map(|s| s.as_str()).collect()
        };
        assert_eq!(
            names(Plan::Sealer),
            [
                "Allocated",
                "DealsAcquired",
                "PieceAdded",
                "TreeDBuilt",
                "TicketAssigned",
                "PC1Done",
                "PC2Done",
                "SyntheticPoRepNeeded",
                "PCSubmitted",
                "PCLanded",
                "Persisted",
                "PersistanceSubmitted",
                "SeedAssigned",
                "C1Done",
                "C2Done",
                "ProofSubmitted",
                "Finished",
                "Aborted"
            ]
        );
        assert_eq!(
            names(Plan::Unseal),
            ["Allocated", "Finished", "Aborted", "Unsealed"]
        );
        assert_eq!(
            names(Plan::Wdpost),
            ["Allocated", "Generated", "Finished", "Aborted"]
        );
        for plan in Plan::ALL {
            for state in plan.resumable_states() {
                assert_eq!(plan.parse_state(state.as_str()), Ok(state));
            }
        }
    }

    #[test]
    fn parse_state_names_the_plan_and_lists_valid_states() {
        let err = Plan::Sealer.parse_state("Foo").unwrap_err();
        assert_eq!(err.plan, Plan::Sealer);
        assert_eq!(err.input, "Foo");
        assert!(err.valid.contains(&"TreeDBuilt"));
        assert!(!err.valid.contains(&"Empty"));
        insta::assert_snapshot!(err.to_string(), @r#"unknown state "Foo" for plan sealer; valid states: Allocated, DealsAcquired, PieceAdded, TreeDBuilt, TicketAssigned, PC1Done, PC2Done, SyntheticPoRepNeeded, PCSubmitted, PCLanded, Persisted, PersistanceSubmitted, SeedAssigned, C1Done, C2Done, ProofSubmitted, Finished, Aborted"#);
    }

    #[test]
    fn a_state_of_another_plan_is_refused() {
        assert!(Plan::Sealer.parse_state("SnapEncoded").is_err());
        assert!(Plan::Snapup.parse_state("TicketAssigned").is_err());
        assert!(Plan::Wdpost.parse_state("TreeDBuilt").is_err());
        assert_eq!(
            Plan::Wdpost.parse_state("Generated"),
            Ok(PlanState::WdPost(WdPostState::Generated))
        );
        assert_eq!(
            Plan::Snapup.parse_state("SnapEncoded"),
            Ok(PlanState::Sector(State::SnapEncoded))
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        assert!(Plan::Sealer.parse_state("treedbuilt").is_err());
        assert!("Sealer".parse::<Plan>().is_err());
        assert_eq!("snapup".parse::<Plan>(), Ok(Plan::Snapup));
    }

    proptest! {
        #[test]
        fn parse_state_accepts_exactly_the_listed_names(name in "[A-Za-z0-9]{0,24}") {
            for plan in Plan::ALL {
                match plan.parse_state(&name) {
                    Ok(state) => prop_assert_eq!(state.as_str(), name.as_str()),
                    Err(err) => prop_assert!(!err.valid.contains(&name.as_str())),
                }
            }
        }
    }
}

mod record {
    use damocles_core::sealer_api::{AllocatedSector, Seed, Ticket};
    use damocles_core::{Event, EventKind, Opaque, Plan, PreCommitOutput, SealProof, SectorId};
    use damocles_core::{SectorRecord, State};

    fn sector() -> AllocatedSector {
        AllocatedSector {
            id: SectorId::new(10000, 2),
            proof_type: SealProof::StackedDrg2KiBV1_1,
        }
    }

    #[test]
    fn applying_the_sealer_path_stores_each_output_and_the_history() {
        let mut record = SectorRecord::new(Plan::Sealer);
        let ticket = Ticket {
            ticket: [1; 32],
            epoch: 10,
        };
        let events = vec![
            Event::Allocate(sector()),
            Event::AcquireDeals(None),
            Event::AddPiece(vec![]),
            Event::BuildTreeD,
            Event::AssignTicket(None),
            Event::PC1(ticket, Opaque(vec![1, 2])),
            Event::PC2(PreCommitOutput {
                comm_r: [2; 32],
                comm_d: [3; 32],
            }),
            Event::SubmitPC,
            Event::CheckPC,
            Event::Persist("remote".into()),
            Event::SubmitPersistance,
            Event::AssignSeed(Seed {
                seed: [4; 32],
                epoch: 20,
            }),
            Event::C1(Opaque(vec![5])),
            Event::C2(vec![6; 192]),
            Event::SubmitProof,
            Event::Finish,
        ];
        for (i, event) in events.into_iter().enumerate() {
            record
                .apply(event, 1000 + i as u64)
                .expect("a sealer transition");
        }
        assert_eq!(record.state, State::Finished);
        assert_eq!(record.prev_state, Some(State::ProofSubmitted));
        assert_eq!(record.sector, Some(sector()));
        assert_eq!(record.ticket, Some(ticket));
        assert_eq!(record.persist_instance.as_deref(), Some("remote"));
        assert_eq!(record.proof.as_ref().map(Vec::len), Some(192));
        assert_eq!(record.history.len(), 16);
        assert_eq!(record.history[0].from, State::Empty);
        assert_eq!(record.history[15].event, EventKind::Finish);
    }

    #[test]
    fn an_unexpected_event_changes_nothing() {
        let mut record = SectorRecord::new(Plan::Sealer);
        let before = record.clone();
        let err = record.apply(Event::C2(vec![1]), 1).unwrap_err();
        assert_eq!(err.state, State::Empty);
        assert_eq!(err.event, EventKind::C2);
        assert_eq!(record, before);
    }

    #[test]
    fn set_state_skips_the_table_and_resubmissions_flip_their_flags() {
        let mut record = SectorRecord::new(Plan::Sealer);
        record
            .apply(Event::SetState(State::PCSubmitted), 1)
            .expect("set");
        record.apply(Event::ReSubmitPC, 2).expect("resubmit");
        assert_eq!(record.state, State::PC2Done);
        assert!(record.pc_resubmit);
        record.apply(Event::SubmitPC, 3).expect("submit");
        assert!(!record.pc_resubmit);
    }

    #[test]
    fn history_is_bounded() {
        let mut record = SectorRecord::new(Plan::Sealer);
        for i in 0..200u64 {
            let to = if i % 2 == 0 {
                State::PC2Done
            } else {
                State::PCSubmitted
            };
            record.apply(Event::SetState(to), i).expect("set");
        }
        assert_eq!(record.history.len(), damocles_core::record::HISTORY_LIMIT);
        assert_eq!(record.history.last().map(|h| h.at), Some(199));
    }

    #[test]
    fn a_record_survives_a_json_round_trip() {
        let mut record = SectorRecord::new(Plan::Sealer);
        record
            .apply(Event::Allocate(sector()), 5)
            .expect("allocate");
        record.proof = Some(vec![9; 10]);
        let json = serde_json::to_string(&record).expect("serialise");
        let back: SectorRecord = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, record);
    }
}

mod summary {
    use std::time::Duration;

    use damocles_core::{Liveness, Plan, ThreadInfo, ThreadState, WorkerSummary};

    fn thread(index: usize, job: bool, state: ThreadState, error: bool) -> ThreadInfo {
        ThreadInfo {
            index,
            location: format!("/store{index}"),
            plan: Plan::Sealer,
            job_id: job.then(|| format!("s-t010000-{index}")),
            job_state: None,
            job_stage: None,
            thread_state: state,
            last_error: error.then(|| "permanent: boom".to_owned()),
            pause_requested: false,
            draining: false,
            stuck: false,
            pending_plan: None,
            config_error: None,
            stopping: false,
            as_sent: Default::default(),
        }
    }

    #[test]
    fn summary_counts_as_the_original() {
        let threads = [
            thread(0, false, ThreadState::Idle, false),
            thread(1, true, ThreadState::Paused { elapsed: 3 }, true),
            thread(
                2,
                true,
                ThreadState::Running {
                    elapsed: 1,
                    proc: None,
                },
                false,
            ),
            thread(3, true, ThreadState::Waiting { elapsed: 2 }, false),
            thread(4, true, ThreadState::Paused { elapsed: 0 }, false),
        ];
        assert_eq!(
            WorkerSummary::from_threads(&threads),
            WorkerSummary {
                threads: 5,
                empty: 1,
                paused: 2,
                running: 1,
                waiting: 1,
                errors: 1,
            }
        );
        assert_eq!(WorkerSummary::from_threads(&[]), WorkerSummary::default());
    }

    #[test]
    fn liveness_expires_strictly_after_the_expiration() {
        let ten_minutes = Duration::from_secs(600);
        assert_eq!(Liveness::at(1000, 1000, ten_minutes), Liveness::Ok);
        assert_eq!(Liveness::at(1000, 1600, ten_minutes), Liveness::Ok);
        assert_eq!(Liveness::at(1000, 1601, ten_minutes), Liveness::Expired);
        assert_eq!(Liveness::at(2000, 1000, ten_minutes), Liveness::Ok);
        assert_eq!(
            Liveness::at(i64::MIN, i64::MAX, ten_minutes),
            Liveness::Expired
        );
        assert_eq!(Liveness::at(0, 1, Duration::ZERO), Liveness::Expired);
    }

    #[test]
    fn thread_states_display_as_the_original_cli() {
        assert_eq!(ThreadState::Idle.to_string(), "Idle");
        assert_eq!(
            ThreadState::Paused { elapsed: 100 }.to_string(),
            "Paused(1m 40s)"
        );
        assert_eq!(
            ThreadState::Waiting { elapsed: 5 }.to_string(),
            "Waiting(5s)"
        );
        assert_eq!(
            ThreadState::Running {
                elapsed: 100,
                proc: Some("builtin PC1".into())
            }
            .to_string(),
            "Running(1m 40s) builtin PC1"
        );
        assert_eq!(
            ThreadState::Running {
                elapsed: 0,
                proc: None
            }
            .to_string(),
            "Running(0s) "
        );
    }
}

mod shapes {
    //! JSON of every type that crosses a process boundary.

    use std::collections::BTreeMap;

    use damocles_core::sealer_api::*;
    use damocles_core::*;

    fn sector() -> AllocatedSector {
        AllocatedSector {
            id: SectorId::new(10000, 2),
            proof_type: SealProof::StackedDrg2KiBV1_1,
        }
    }

    fn threads() -> Vec<ThreadInfo> {
        vec![
            ThreadInfo {
                index: 0,
                location: "/data/store1".into(),
                plan: Plan::Sealer,
                job_id: None,
                job_state: Some(PlanState::Sector(State::Empty)),
                job_stage: Some(Stage::Nothing),
                thread_state: ThreadState::Idle,
                last_error: None,
                pause_requested: false,
                draining: false,
                stuck: false,
                pending_plan: None,
                config_error: None,
                stopping: false,
                as_sent: Default::default(),
            },
            ThreadInfo {
                index: 1,
                location: "/data/store2".into(),
                plan: Plan::Sealer,
                job_id: Some("s-t010000-2".into()),
                job_state: Some(PlanState::Sector(State::C1Done)),
                job_stage: Some(Stage::C2),
                thread_state: ThreadState::Paused { elapsed: 17 },
                last_error: Some("permanent: No cached parameters found for x".into()),
                pause_requested: false,
                draining: false,
                stuck: false,
                pending_plan: None,
                config_error: None,
                stopping: false,
                as_sent: Default::default(),
            },
            ThreadInfo {
                index: 2,
                location: "/data/store3".into(),
                plan: Plan::Sealer,
                job_id: Some("s-t010000-3".into()),
                job_state: Some(PlanState::Sector(State::TicketAssigned)),
                job_stage: Some(Stage::PC1),
                thread_state: ThreadState::Running {
                    elapsed: 100,
                    proc: Some("builtin PC1".into()),
                },
                last_error: None,
                pause_requested: true,
                draining: false,
                stuck: false,
                pending_plan: None,
                config_error: None,
                stopping: false,
                as_sent: Default::default(),
            },
            ThreadInfo {
                index: 3,
                location: "/data/store4".into(),
                plan: Plan::Wdpost,
                job_id: None,
                job_state: None,
                job_stage: None,
                thread_state: ThreadState::Waiting { elapsed: 5 },
                last_error: None,
                pause_requested: false,
                draining: false,
                stuck: false,
                pending_plan: None,
                config_error: None,
                stopping: false,
                as_sent: Default::default(),
            },
        ]
    }

    #[test]
    fn thread_infos_have_the_original_worker_info_shape() {
        insta::assert_json_snapshot!("thread_infos", threads());
        let json = serde_json::to_value(threads()).expect("serialise");
        let back: Vec<ThreadInfo> = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, threads());
    }

    #[test]
    fn original_worker_info_decodes() {
        // An answer of the original v0.13.1 daemon, as recorded (reference §11).
        let original = r#"{"index":0,"job_id":null,"job_stage":"-","job_state":"Empty","last_error":null,"location":"/data/damocles/store1","plan":"sealer","thread_state":{"state":"Idle"}}"#;
        let info: ThreadInfo = serde_json::from_str(original).expect("decode");
        assert_eq!(info.job_state, Some(PlanState::Sector(State::Empty)));
        assert_eq!(info.job_stage, Some(Stage::Nothing));
        assert!(!info.pause_requested);
    }

    #[test]
    fn worker_report_has_the_ping_shape() {
        let report = WorkerReport {
            name: "127.0.0.1".into(),
            dest: "127.0.0.1:17890".into(),
            version: "v0.1.0".into(),
            summary: WorkerSummary::from_threads(&threads()),
        };
        insta::assert_json_snapshot!("worker_report", report);
    }

    #[test]
    fn sector_record_shape() {
        let mut record = SectorRecord::new(Plan::Sealer);
        record
            .apply(Event::Allocate(sector()), 1_700_000_000)
            .expect("allocate");
        record
            .apply(Event::AcquireDeals(None), 1_700_000_001)
            .expect("deals");
        record.last_error = Some("temporary: rpc error: connection refused".into());
        insta::assert_json_snapshot!("sector_record", record);
    }

    #[test]
    fn sealer_api_shapes() {
        let ticket = Ticket {
            ticket: [7; 32],
            epoch: 100,
        };
        let seed = Seed {
            seed: [8; 32],
            epoch: 200,
        };
        let mut meta = BTreeMap::new();
        meta.insert("Kind".to_owned(), "local".to_owned());
        let values = serde_json::json!({
            "AllocateSectorSpec": AllocateSectorSpec {
                allowed_miners: Some(vec![10000]),
                allowed_proof_types: Some(vec![SealProof::StackedDrg2KiBV1_1]),
            },
            "AllocatedSector": sector(),
            "AcquireDealsSpec": AcquireDealsSpec { max_deals: Some(2), min_used_space: None },
            "SectorPiece": SectorPiece {
                piece: PieceRef { size: 2048, cid: Cid { text: "baga6ea4seaq".into() } },
                deal_info: DealInfo { deal_id: 5, allocation_id: 0, payload_size: 1000, is_builtin_market: true },
            },
            "Ticket": ticket,
            "Seed": seed,
            "WaitSeedResp": WaitSeedResp { should_wait: false, delay: 0, seed: Some(seed) },
            "PreCommitOnChainInfo": PreCommitOnChainInfo { comm_r: [1; 32], comm_d: [2; 32], ticket },
            "ProofOnChainInfo": ProofOnChainInfo { proof: vec![3; 8] },
            "SubmitResp": SubmitResp { res: SubmitResult::DuplicateSubmit, desc: None },
            "PollStateResp": PollStateResp { state: OnChainState::Landed, desc: Some("ok".into()) },
            "ReportStateReq": ReportStateReq {
                worker: WorkerIdentifier { instance: "w1".into(), location: "/data/store1".into() },
                state_change: StateChange { prev: "C1Done".into(), next: "C2Done".into(), event: "C2".into() },
                failure: Some(ReportFailure::from(&Failure::temporary("rpc error"))),
            },
            "SectorStateResp": SectorStateResp { id: SectorId::new(10000, 2), finalized: false, abort_reason: Some(String::new()) },
            "StoreBasicInfo": StoreBasicInfo { name: "remote".into(), path: "/data/remote".into(), strict: false, read_only: false, weight: 1, meta },
        });
        insta::assert_json_snapshot!("sealer_api", values);
    }

    #[test]
    fn enums_refuse_unknown_integers() {
        assert!(serde_json::from_str::<SubmitResult>("6").is_err());
        assert!(serde_json::from_str::<OnChainState>("8").is_err());
        assert_eq!(
            serde_json::from_str::<OnChainState>("7").ok(),
            Some(OnChainState::ShouldAbort)
        );
        assert!(serde_json::from_str::<Ticket>(r#"{"Ticket":"AAEC","Epoch":1}"#).is_err());
    }

    #[test]
    fn manager_errors_classify_into_levels() {
        let not_found = ManagerError::sector_not_found("sector state not found");
        assert!(not_found.is_sector_not_found());
        assert_eq!(not_found.level(), FailureLevel::Abort);
        assert_eq!(
            ManagerError::transport("connection refused").level(),
            FailureLevel::Temporary
        );
        assert_eq!(
            ManagerError::remote(1, "boom").level(),
            FailureLevel::Temporary
        );
        let failure = ManagerError::transport("connection refused").into_failure("AllocateSector");
        assert_eq!(
            failure.to_string(),
            "temporary: AllocateSector: rpc error: connection refused"
        );
    }

    #[test]
    fn pledge_detection_follows_the_market() {
        let piece = |builtin, deal_id, allocation_id| SectorPiece {
            piece: PieceRef {
                size: 2048,
                cid: Cid { text: "b".into() },
            },
            deal_info: DealInfo {
                deal_id,
                allocation_id,
                payload_size: 0,
                is_builtin_market: builtin,
            },
        };
        assert!(piece(true, 0, 9).is_pledge());
        assert!(!piece(true, 1, 0).is_pledge());
        assert!(piece(false, 9, 0).is_pledge());
        assert!(!piece(false, 0, 1).is_pledge());
    }

    #[test]
    fn deals_are_read_in_the_v2_and_the_legacy_shape() {
        let cid = "baga6ea4seaqpy7usqklokfx2vxuynmupslkeutzexe2uqurdg5vhtebhxqmpqmy";
        let v2 = format!(
            r#"[{{"Piece":{{"Size":1024,"PieceCID":{{"/":"{cid}"}}}},"DealInfo":{{"DealID":7,"AllocationID":0,"PayloadSize":900,"IsBuiltinMarket":true,"TotalStorageFee":"0"}}}}]"#
        );
        let legacy = format!(
            r#"[{{"ID":7,"PayloadSize":900,"Piece":{{"Size":1024,"Offset":0,"Cid":{{"/":"{cid}"}}}}}}]"#
        );
        let from_v2: Vec<SectorPiece> = serde_json::from_str(&v2).expect("v2");
        let from_legacy: Vec<SectorPiece> = serde_json::from_str(&legacy).expect("legacy");
        assert_eq!(from_v2, from_legacy);
        assert_eq!(from_v2[0].deal_info.deal_id, 7);
        assert_eq!(from_v2[0].piece.cid.text, cid);
        assert!(!from_v2[0].is_pledge());
        // Written back in the V2 shape.
        let written = serde_json::to_value(&from_legacy).expect("json");
        assert_eq!(written[0]["Piece"]["PieceCID"]["/"], cid);
        assert!(serde_json::from_str::<Vec<SectorPiece>>(r#"[{"Size":1}]"#).is_err());
        // A manager that leaves IsBuiltinMarket out sends builtin deals: a deal id is a deal.
        let terse = format!(
            r#"[{{"Piece":{{"Size":1024,"PieceCID":{{"/":"{cid}"}}}},"DealInfo":{{"DealID":7}}}}]"#
        );
        let terse: Vec<SectorPiece> = serde_json::from_str(&terse).expect("terse");
        assert!(!terse[0].is_pledge());
    }
}

#[cfg(feature = "testing")]
mod fakes {
    use damocles_core::testing::*;
    use damocles_core::*;
    use futures_executor::block_on;

    #[test]
    fn memory_store_round_trips_and_can_fail() {
        let store = MemoryStateStore::new();
        let record = SectorRecord::new(Plan::Sealer);
        block_on(store.save(&record)).expect("save");
        assert_eq!(block_on(store.load()).expect("load"), Some(record.clone()));
        store.fail_saves(true);
        assert!(block_on(store.save(&record)).is_err());
        assert_eq!(store.saves(), 1);
        block_on(store.clear()).expect("clear");
        assert_eq!(block_on(store.load()).expect("load"), None);
    }

    #[test]
    fn recording_reporter_keeps_reports_in_order() {
        let reporter = RecordingReporter::new();
        let dyn_reporter: std::sync::Arc<dyn Reporter> = std::sync::Arc::new(reporter.clone());
        for name in ["a", "b"] {
            let report = WorkerReport {
                name: name.into(),
                dest: "127.0.0.1:17890".into(),
                version: "v".into(),
                summary: WorkerSummary::default(),
            };
            block_on(dyn_reporter.report(&report)).expect("report");
        }
        let names: Vec<_> = reporter.reports().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn admin_pair_answers_from_the_script_and_records_calls() {
        let (admin, handle) = admin_pair();
        handle.push(AdminAnswer::Pause(Ok(PauseOutcome::Requested)));
        handle.push(AdminAnswer::Resume(Err(AdminError::ThreadNotFound {
            index: 9,
        })));
        let admin: std::sync::Arc<dyn AdminTransport> = std::sync::Arc::new(admin);
        assert_eq!(block_on(admin.pause(1)), Ok(PauseOutcome::Requested));
        let err = block_on(admin.resume(9, Some("TreeDBuilt".into()))).unwrap_err();
        assert!(err.is_thread_not_found());
        assert_eq!(err.to_string(), "worker #9 not found");
        assert!(block_on(admin.list()).is_err(), "unscripted calls fail");
        assert_eq!(
            handle.calls(),
            [
                AdminCall::Pause(1),
                AdminCall::Resume(9, Some("TreeDBuilt".into())),
                AdminCall::List
            ]
        );
    }
}

#[test]
fn event_names_in_histories_are_the_json_names() {
    use damocles_core::EventKind;
    for kind in [
        EventKind::JobAllocated,
        EventKind::UnsealDone,
        EventKind::Generate,
        EventKind::PC1,
        EventKind::AllocatedSnapUpSector,
    ] {
        assert_eq!(
            serde_json::to_value(kind).expect("json"),
            serde_json::Value::String(kind.to_string()),
            "{kind:?}"
        );
    }
}
