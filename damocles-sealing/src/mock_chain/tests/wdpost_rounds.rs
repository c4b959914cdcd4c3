//! The mock chain's WindowPoSt rounds: jobs handed out, kept alive, taken back, reset
//! and removed.

use super::*;

#[tokio::test]
async fn wdpost_rounds_split_hand_out_keep_alive_reassign_and_give_up_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chain.json");
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("open");
    let first = first_round_is_split_and_handed_out(&chain).await;
    finishes_are_checked_and_failures_retried(&chain).await;
    let jobs = a_lost_heartbeat_offers_the_job_again(&chain).await;
    assert_eq!(jobs[0].seed, first, "one round, one seed");
    // The jobs survive a restart; one being proven is offered again once its
    // heartbeat is missed.
    drop(chain);
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("reopen");
    assert_eq!(chain.wdpost_jobs(), jobs);
    chain.schedule_wdpost(None, 2, Duration::ZERO);
    let after_restart = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-d".into())
        .await
        .expect("allocate");
    assert_eq!(after_restart[0].id, "1-2");
    assert_eq!(chain.wdpost_jobs()[2].tries, 2);
    // The next round starts on schedule, with its own seed.
    chain.schedule_wdpost(Some(Duration::ZERO), 4, Duration::from_secs(60));
    let next = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-d".into())
        .await
        .expect("allocate");
    assert_eq!(next[0].id, "2-0");
    assert_eq!(next[0].input.sectors.len(), 4);
    assert_ne!(next[0].input.seed, jobs[0].seed);
    // The next round's start misses the job of this one that no thread took.
    assert_eq!(chain.start_wdpost_round(), Some(3));
    let missed = chain
        .wdpost_jobs()
        .into_iter()
        .find(|j| j.id == "2-1")
        .expect("2-1");
    assert!(
        matches!(&missed.state, WdPostJobState::Failed(why) if why.starts_with("missed: round 3")),
        "{missed:?}"
    );
    let taken = chain.wdpost_jobs().into_iter().find(|j| j.id == "2-0");
    assert_eq!(taken.map(|j| j.state), Some(WdPostJobState::Proving));
}

/// Round 1 over 5 finished sectors in jobs of 2, handed out to the miner's threads only,
/// kept alive by its holder's heartbeats; its seed.
async fn first_round_is_split_and_handed_out(chain: &MockChain) -> [u8; 32] {
    assert_eq!(chain.start_wdpost_round(), None, "no sector to prove yet");
    for _ in 0..5 {
        finished_cc_sector(chain).await;
    }
    // A sector not finished is not proven.
    chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect("allocate")
        .expect("a sector");
    chain.schedule_wdpost(None, 2, Duration::from_secs(3600));
    assert_eq!(chain.start_wdpost_round(), Some(1));
    let jobs = chain.wdpost_jobs();
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["1-0", "1-1", "1-2"], "5 sectors in jobs of 2");
    let numbers: Vec<u64> = jobs
        .iter()
        .flat_map(|j| j.sectors.iter().map(|s| s.number))
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert!(jobs
        .iter()
        .all(|j| j.seed == jobs[0].seed && j.seed[31] & 0xc0 == 0));
    assert_eq!(jobs[0].proof_type, PoStProof::StackedDrgWindow2KiBV1_2);

    // Another miner's or size's thread gets nothing.
    let other_miner = AllocatePoStSpec {
        allowed_miners: Some(vec![1001]),
        allowed_proof_types: None,
    };
    let none = chain
        .wdpost_allocate_jobs(other_miner, 1, "w".into())
        .await
        .expect("allocate");
    assert!(none.is_empty());
    let other_size = AllocatePoStSpec {
        allowed_miners: None,
        allowed_proof_types: Some(vec![PoStProof::StackedDrgWindow8MiBV1_2]),
    };
    assert!(chain
        .wdpost_allocate_jobs(other_size, 1, "w".into())
        .await
        .expect("allocate")
        .is_empty());

    let taken = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 2, "worker-a".into())
        .await
        .expect("allocate");
    assert_eq!(taken.len(), 2, "at most the number asked for");
    assert_eq!(taken[0].id, "1-0");
    assert_eq!(taken[0].input.sectors[0].accesses.sealed_file, "remote");
    chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-a".into())
        .await
        .expect("its own job");
    let stranger = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-b".into())
        .await
        .expect_err("not its job");
    assert!(
        stranger.message.contains("not being proven by worker-b"),
        "{stranger}"
    );

    jobs[0].seed
}

/// A finish with a stray fault is refused; an all-faulty one accepted; a failed try goes
/// back to pending.
async fn finishes_are_checked_and_failures_retried(chain: &MockChain) {
    // A fault that is not a sector of the job is refused, and changes nothing.
    let stray = WindowPoStOutput {
        proofs: Vec::new(),
        faults: vec![9],
    };
    let refused = chain
        .wdpost_finish_job("1-0".into(), Some(stray), String::new())
        .await
        .expect_err("a stray fault");
    assert!(refused.message.contains("fault 9"), "{refused}");
    assert_eq!(chain.wdpost_jobs()[0].state, WdPostJobState::Proving);

    // Every sector faulty: nothing to prove, accepted as such.
    let all_faulty = WindowPoStOutput {
        proofs: Vec::new(),
        faults: vec![2, 1],
    };
    chain
        .wdpost_finish_job("1-0".into(), Some(all_faulty), String::new())
        .await
        .expect("finish");
    let done = &chain.wdpost_jobs()[0];
    assert_eq!(done.state, WdPostJobState::Finished);
    assert_eq!(done.faults, [1, 2]);
    assert_eq!(done.verified, Some(true));
    let again = chain
        .wdpost_finish_job("1-0".into(), None, "late".into())
        .await
        .expect_err("finished already");
    assert!(again.message.contains("finished"), "{again}");

    // A failed try goes back to pending; the second failure gives it up.
    chain
        .wdpost_finish_job("1-1".into(), None, "out of memory".into())
        .await
        .expect("failed try");
    let job = &chain.wdpost_jobs()[1];
    assert_eq!(job.state, WdPostJobState::Pending);
    assert_eq!(job.error.as_deref(), Some("out of memory"));
}

/// With no heartbeat timeout left, a job's second try is given up and the next is
/// offered: the round's jobs afterwards.
async fn a_lost_heartbeat_offers_the_job_again(chain: &MockChain) -> Vec<WdPostJob> {
    // A lost heartbeat: with no timeout left, the next allocation offers it again.
    chain.schedule_wdpost(None, 2, Duration::ZERO);
    let retaken = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-b".into())
        .await
        .expect("allocate");
    assert_eq!(retaken[0].id, "1-1");
    let lost = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-c".into())
        .await
        .expect("allocate");
    assert_eq!(
        lost[0].id, "1-2",
        "1-1 lost its heartbeat on its second try"
    );
    let jobs = chain.wdpost_jobs();
    assert!(
        matches!(&jobs[1].state, WdPostJobState::Failed(why) if why.contains("no heartbeat from worker-b")),
        "{:?}",
        jobs[1].state
    );
    assert_eq!(jobs[1].tries, WDPOST_MAX_TRIES);

    jobs
}

/// A manager down for longer than the heartbeat timeout (here: a timeout of 0) moves the
/// held job back to pending; its holder's next heartbeat takes it back, and its proof is
/// accepted, so a round the worker proved is not lost (damocles PR#1028). A job another
/// thread took meanwhile stays that thread's.
#[tokio::test]
async fn a_job_that_only_lost_its_heartbeat_is_taken_back_by_its_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chain.json");
    let chain = round_of_two_jobs(&file).await;
    let any = AllocatePoStSpec::default;
    let taken = chain
        .wdpost_allocate_jobs(any(), 2, "worker-a".into())
        .await
        .expect("allocate");
    assert_eq!(taken.len(), 2);

    // The manager restarts after the timeout: the listing finds both heartbeats lost.
    drop(chain);
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("reopen");
    chain.schedule_wdpost(None, 1, Duration::ZERO);
    let jobs = chain.wdpost_jobs();
    assert!(
        jobs.iter().all(|j| j.state == WdPostJobState::Pending),
        "{jobs:?}"
    );
    chain.schedule_wdpost(None, 1, Duration::from_secs(3600));
    // 1-1 is taken by another thread before its holder is heard of again.
    let retaken = chain
        .wdpost_allocate_jobs(any(), 1, "worker-b".into())
        .await
        .expect("allocate");
    assert_eq!(retaken[0].id, "1-0");

    // worker-a's heartbeat takes 1-1 back; 1-0 is worker-b's now.
    chain
        .wdpost_heartbeat_jobs(vec!["1-1".into()], "worker-a".into())
        .await
        .expect("taken back");
    let back = &chain.wdpost_jobs()[1];
    assert_eq!(
        (&back.state, back.worker.as_deref()),
        (&WdPostJobState::Proving, Some("worker-a"))
    );
    let refused = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-a".into())
        .await
        .expect_err("worker-b's");
    assert!(
        refused.message.contains("not being proven by worker-a"),
        "{refused}"
    );

    // A proof that arrives while the job only lost its heartbeat is accepted too.
    chain.schedule_wdpost(None, 1, Duration::ZERO);
    assert_eq!(chain.wdpost_jobs()[1].state, WdPostJobState::Pending);
    let number = chain.wdpost_jobs()[1].sectors[0].number;
    let all_faulty = WindowPoStOutput {
        proofs: Vec::new(),
        faults: vec![number],
    };
    chain
        .wdpost_finish_job("1-1".into(), Some(all_faulty), String::new())
        .await
        .expect("finished by its holder");
    let done = &chain.wdpost_jobs()[1];
    assert_eq!(done.state, WdPostJobState::Finished);
    assert_eq!(done.verified, Some(true));
    // A job whose try failed (not a lost heartbeat; here its last try) is not taken back.
    chain.schedule_wdpost(None, 1, Duration::from_secs(3600));
    chain
        .wdpost_finish_job("1-0".into(), None, "out of memory".into())
        .await
        .expect("failed try");
    let refused = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-b".into())
        .await
        .expect_err("a failed try is not taken back");
    assert!(
        refused
            .message
            .contains("not being proven by worker-b (it is failed"),
        "{refused}"
    );
}

/// `util sealer wdpost reset` offers a job again as new (its holder loses it); `remove`
/// forgets it, an unknown id being no error; both survive a restart.
#[tokio::test]
async fn wdpost_jobs_are_reset_and_removed_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chain.json");
    let chain = round_of_two_jobs(&file).await;
    let any = AllocatePoStSpec::default;
    chain
        .wdpost_allocate_jobs(any(), 1, "worker-a".into())
        .await
        .expect("allocate");
    chain
        .wdpost_finish_job("1-0".into(), None, "out of memory".into())
        .await
        .expect("a failed try");
    chain
        .wdpost_allocate_jobs(any(), 1, "worker-a".into())
        .await
        .expect("allocate again");
    assert_eq!(chain.wdpost_jobs()[0].tries, 2);

    let reset = chain.reset_wdpost_job("1-0").expect("reset");
    assert_eq!(
        (
            &reset.state,
            reset.worker.as_deref(),
            reset.tries,
            &reset.error
        ),
        (&WdPostJobState::Pending, None, 0, &None)
    );
    let lost = chain
        .wdpost_heartbeat_jobs(vec!["1-0".into()], "worker-a".into())
        .await
        .expect_err("no longer worker-a's");
    assert!(
        lost.message.contains("not being proven by worker-a"),
        "{lost}"
    );
    assert_eq!(
        chain.reset_wdpost_job("9-9"),
        Err(WdPostJobError::Unknown("9-9".into()))
    );
    assert_eq!(
        chain
            .reset_wdpost_job("9-9")
            .map(drop)
            .unwrap_err()
            .to_string(),
        "job '9-9' does not exist"
    );

    assert_eq!(chain.remove_wdpost_job("1-1"), Ok(true));
    assert_eq!(chain.remove_wdpost_job("1-1"), Ok(false), "gone already");
    drop(chain);
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("reopen");
    let ids: Vec<String> = chain.wdpost_jobs().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, ["1-0"]);
    assert_eq!(chain.wdpost_jobs()[0].tries, 0, "the reset was kept");
}

/// A chain kept in `file` with two finished sectors and round 1 started: jobs 1-0 and
/// 1-1, one sector each, a heartbeat timeout of an hour.
async fn round_of_two_jobs(file: &std::path::Path) -> MockChain {
    let chain = MockChain::open(file, 1000, SealProof::StackedDrg2KiBV1_1).expect("open");
    for _ in 0..2 {
        finished_cc_sector(&chain).await;
    }
    chain.schedule_wdpost(None, 1, Duration::from_secs(3600));
    assert_eq!(chain.start_wdpost_round(), Some(1));
    chain
}

/// A job of a round that is over cannot be reset: the next round's start would only
/// miss it again.
#[tokio::test]
async fn a_job_of_a_round_that_is_over_is_not_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = round_of_two_jobs(&dir.path().join("chain.json")).await;
    chain.schedule_wdpost(Some(Duration::ZERO), 1, Duration::from_secs(3600));
    assert_eq!(chain.start_wdpost_round(), Some(2));
    assert_eq!(
        chain.reset_wdpost_job("1-0").map(drop),
        Err(WdPostJobError::RoundOver {
            id: "1-0".into(),
            round: 1,
            current: 2
        })
    );
    assert!(chain.reset_wdpost_job("2-0").is_ok(), "the current round's");
}

/// Each job gets the round's deadline; a job still waiting for a thread when it passes
/// is missed, and a proof that comes back after it is checked and recorded as missed,
/// with how late it was and how long proving took.
#[tokio::test]
async fn a_job_past_its_deadline_is_missed_and_a_late_proof_recorded_as_missed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = round_of_two_jobs(&dir.path().join("chain.json")).await;
    let jobs = chain.wdpost_jobs();
    let window = super::super::wdpost::CHALLENGE_WINDOW.as_secs();
    assert!(jobs.iter().all(|j| j.deadline_at == j.created_at + window));
    assert!(jobs.iter().all(|j| j.started_at.is_none()));
    let taken = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-a".into())
        .await
        .expect("allocate");
    assert_eq!(taken[0].id, "1-0");
    let proving = &chain.wdpost_jobs()[0];
    assert!(proving.started_at.is_some() && proving.heartbeat_at.is_some());

    // The chain's clock passes both deadlines.
    for job in &mut chain.lock().wdpost_jobs {
        job.deadline_at = job.created_at.saturating_sub(10);
        job.started_at = job.started_at.map(|at| at.saturating_sub(25));
    }
    let jobs = chain.wdpost_jobs();
    assert_eq!(jobs[0].state, WdPostJobState::Proving, "its holder goes on");
    assert!(
        matches!(&jobs[1].state, WdPostJobState::Failed(why) if why == "missed: its deadline passed while no thread was proving it"),
        "{:?}",
        jobs[1]
    );
    let none = chain
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "worker-b".into())
        .await
        .expect("allocate");
    assert!(none.is_empty(), "a missed job is not handed out");

    let number = jobs[0].sectors[0].number;
    let all_faulty = WindowPoStOutput {
        proofs: Vec::new(),
        faults: vec![number],
    };
    chain
        .wdpost_finish_job("1-0".into(), Some(all_faulty), String::new())
        .await
        .expect("a late proof is still taken");
    let late = &chain.wdpost_jobs()[0];
    assert_eq!(late.state, WdPostJobState::Missed);
    assert_eq!(late.verified, Some(true), "checked all the same");
    let error = late.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("missed: proven 1") && error.contains("(proving took 2"),
        "{error}"
    );
    assert_eq!(late.row().state, "missed");
    let counters = chain.counters();
    assert_eq!((counters.posts_missed, counters.posts_verified), (1, 1));
}
