use super::*;
use damocles_core::sealer_api::{StateChange, WorkerIdentifier};
use damocles_core::PoStProof;
use std::time::Duration;

/// Shared records in memory whose next commits can be lost, as a database's are when
/// the connection drops and another manager writes before the section can be saved.
#[derive(Debug, Default)]
struct LossyRecords {
    /// (committed, pending, commits of a write to lose)
    doc: Mutex<(Option<String>, Option<String>, usize)>,
}

#[async_trait]
impl SharedRecords for LossyRecords {
    fn begin(&self, _: std::time::Instant) -> Result<Option<String>, SharedRecordsError> {
        Ok(self.doc.lock().expect("doc").0.clone())
    }
    fn write(&self, json: &str) {
        self.doc.lock().expect("doc").1 = Some(json.to_owned());
    }
    fn end(&self) -> Result<(), SharedRecordsError> {
        let mut doc = self.doc.lock().expect("doc");
        let Some(pending) = doc.1.take() else {
            return Ok(());
        };
        if doc.2 > 0 {
            doc.2 -= 1;
            return Err(SharedRecordsError::WritesLost("commit lost".into()));
        }
        doc.0 = Some(pending);
        Ok(())
    }
    async fn keep_piece(&self, _: &Cid, _: &[u8]) -> Result<(), SharedRecordsError> {
        Ok(())
    }
    async fn piece(&self, _: &Cid) -> Result<Option<Vec<u8>>, SharedRecordsError> {
        Ok(None)
    }
}

/// A section whose writes were lost answers a transport error (which workers retry)
/// and decides nothing: the number it took is taken again by the next allocation,
/// and a pre-commit lost that way is not on chain until sent again.
#[tokio::test]
async fn a_section_whose_writes_are_lost_answers_an_error_and_decides_nothing() {
    let records = Arc::new(LossyRecords::default());
    let chain = MockChain::shared(records.clone(), 1000, SealProof::StackedDrg2KiBV1_1)
        .expect("empty records");
    records.doc.lock().expect("doc").2 = 1;
    let lost = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect_err("the allocation was lost");
    assert_eq!(
        lost.kind,
        damocles_core::sealer_api::ManagerErrorKind::Transport
    );
    assert!(lost.message.contains("commit lost"), "{lost}");
    let first = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect("allocate")
        .expect("a sector");
    assert_eq!(first.id.number, 1, "the lost allocation took no number");
    assert_eq!(chain.counters().allocated, 1);

    records.doc.lock().expect("doc").2 = 1;
    chain
        .assign_ticket(first.id)
        .await
        .expect_err("the ticket was lost");
    assert_eq!(chain.sector(first.id).expect("sector").ticket, None);
    let ticket = chain.assign_ticket(first.id).await.expect("ticket");
    assert_eq!(chain.sector(first.id).expect("sector").ticket, Some(ticket));
}

/// Records that do not parse are never written over (an operator mends them): every
/// call that would change them fails, and a manager does not start on them.
#[tokio::test]
async fn unreadable_shared_records_are_refused_not_overwritten() {
    let records = Arc::new(LossyRecords::default());
    let proof = SealProof::StackedDrg2KiBV1_1;
    let chain = MockChain::shared(records.clone(), 1000, proof).expect("empty records");
    records.doc.lock().expect("doc").0 = Some("{garbage".into());
    let refused = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect_err("unreadable records");
    assert_eq!(
        refused.kind,
        damocles_core::sealer_api::ManagerErrorKind::Transport
    );
    assert!(refused.message.contains("unreadable"), "{refused}");
    assert_eq!(
        records.doc.lock().expect("doc").0.as_deref(),
        Some("{garbage"),
        "left as they were"
    );
    let start = MockChain::shared(records, 1000, proof).expect_err("not started on them");
    assert!(start.to_string().contains("unreadable"), "{start}");
}

/// Two managers on one set of records: a WindowPoSt job proven through one stays
/// alive on the other while heartbeats reach either, a round is started once for both,
/// and a manager of another sector size for the same miner is refused.
#[tokio::test]
async fn managers_sharing_records_share_heartbeats_and_rounds() {
    let records = Arc::new(LossyRecords::default());
    let proof = SealProof::StackedDrg2KiBV1_1;
    let a = MockChain::shared(records.clone(), 1000, proof).expect("a");
    let b = MockChain::shared(records.clone(), 1000, proof).expect("b");
    finished_cc_sector(&a).await;
    let timeout = Duration::from_secs(60);
    let hour = Some(Duration::from_secs(3600));
    a.schedule_wdpost(hour, 4, timeout);
    b.schedule_wdpost(hour, 4, timeout);
    let taken = a
        .wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "w".into())
        .await
        .expect("allocate");
    assert_eq!(taken.len(), 1, "a round started through A");
    assert!(
        b.wdpost_allocate_jobs(AllocatePoStSpec::default(), 1, "v".into())
            .await
            .expect("allocate")
            .is_empty(),
        "B starts no second round within the interval"
    );
    // The last heartbeat made older than the timeout (rather than waiting for it).
    let make_heartbeats_stale = || {
        let mut doc = records.doc.lock().expect("doc");
        let mut json: serde_json::Value =
            serde_json::from_str(doc.0.as_deref().expect("records")).expect("json");
        for at in json["wdpost_heartbeats"]
            .as_object_mut()
            .expect("heartbeats kept with the records")
            .values_mut()
        {
            *at = (at.as_u64().expect("ms") - 2 * timeout.as_millis() as u64).into();
        }
        doc.0 = Some(json.to_string());
    };
    // A heartbeat through B after a stale one: A sees the job alive.
    make_heartbeats_stale();
    b.wdpost_heartbeat_jobs(vec![taken[0].id.clone()], "w".into())
        .await
        .expect("heartbeat through B");
    assert_eq!(a.wdpost_jobs()[0].state, WdPostJobState::Proving);
    // No heartbeat since: both see it offered again.
    make_heartbeats_stale();
    assert_eq!(a.wdpost_jobs()[0].state, WdPostJobState::Pending);
    assert_eq!(b.wdpost_jobs()[0].state, WdPostJobState::Pending);

    let other = MockChain::shared(records, 1000, SealProof::StackedDrg8MiBV1_1)
        .expect_err("another sector size for the same miner");
    let other = other.to_string();
    assert!(other.contains("2KiB") && other.contains("8MiB"), "{other}");
}

#[tokio::test]
async fn records_kept_in_a_file_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("chain.json");
    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("open");
    let first = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect("allocate")
        .expect("a sector");
    let ticket = chain.assign_ticket(first.id).await.expect("ticket");
    drop(chain);

    let chain = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect("reopen");
    let kept = chain.sector(first.id).expect("the sector survived");
    assert_eq!(kept.ticket, Some(ticket));
    assert_eq!(chain.counters().allocated, 1);
    let second = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect("allocate")
        .expect("a sector");
    assert_eq!(
        second.id.number, 2,
        "numbers continue, none is allocated twice"
    );

    std::fs::write(&file, b"{not json").expect("corrupt");
    let err = MockChain::open(&file, 1000, SealProof::StackedDrg2KiBV1_1).expect_err("corrupt");
    assert!(err.to_string().contains("chain.json"), "{err}");
}

/// A CC sector pre-committed, persisted to `remote` and reported finished (no proof:
/// the mock does not ask for one before ReportFinalized).
async fn finished_cc_sector(chain: &MockChain) -> AllocatedSector {
    let sector = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect("allocate")
        .expect("a sector");
    let ticket = chain.assign_ticket(sector.id).await.expect("ticket");
    let comm_d = proofs::sector_comm_d(sector.proof_type, &[]).expect("CC comm_d");
    let info = PreCommitOnChainInfo {
        comm_r: [7; 32],
        comm_d,
        ticket,
    };
    let resp = chain
        .submit_pre_commit(sector, info, false)
        .await
        .expect("pre-commit");
    assert_eq!(resp.res, SubmitResult::Accepted, "{:?}", resp.desc);
    assert!(chain
        .submit_persisted(sector.id, "remote".into(), false)
        .await
        .expect("persisted"));
    chain.report_finalized(sector.id).await.expect("finalized");
    sector
}

/// Snap-up, deal and rebuild jobs.
mod jobs;
/// WindowPoSt rounds.
mod wdpost_rounds;
