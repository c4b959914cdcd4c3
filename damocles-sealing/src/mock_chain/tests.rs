use super::*;
use damocles_core::sealer_api::{StateChange, WorkerIdentifier};
use damocles_core::PoStProof;
use std::time::Duration;

/// Shared records in memory, kept as a database keeps them (a row per record, each
/// with the number of the section that wrote it), whose next commits can be lost, as a
/// database's are when the connection drops and another manager writes before the
/// section can be saved.
#[derive(Debug, Default)]
struct LossyRecords {
    inner: Mutex<Lossy>,
}

#[derive(Debug, Default)]
struct Lossy {
    seq: u64,
    head: Option<ChainHead>,
    /// Each record (`None`: removed) and the section that wrote it.
    rows: BTreeMap<RecordKey, (u64, Option<ChainRecord>)>,
    pending: Option<RecordChanges>,
    /// Commits of a write still to lose.
    lose: usize,
    /// The records do not parse.
    corrupt: bool,
    /// Records handed out by every `begin`, in all.
    records_read: usize,
}

impl LossyRecords {
    fn with<T>(&self, f: impl FnOnce(&mut Lossy) -> T) -> T {
        f(&mut self.inner.lock().expect("records"))
    }
}

const EPOCH: &str = "e1";

#[async_trait]
impl SharedRecords for LossyRecords {
    fn begin(
        &self,
        _: std::time::Instant,
        since: Option<&RecordsCursor>,
    ) -> Result<RecordsRead, SharedRecordsError> {
        self.with(|db| {
            if db.corrupt {
                return Err(SharedRecordsError::Corrupt(
                    "sector s-t01000-1: garbage".into(),
                ));
            }
            let full = since.is_none_or(|c| c.epoch != EPOCH);
            let after = since.filter(|_| !full).map_or(0, |c| c.seq);
            let mut read = RecordsRead {
                cursor: RecordsCursor {
                    epoch: EPOCH.into(),
                    seq: db.seq,
                },
                full,
                head: (full || after < db.seq).then(|| db.head.clone()).flatten(),
                ..RecordsRead::default()
            };
            for (key, (seq, record)) in &db.rows {
                match record {
                    Some(record) if *seq > after => read.records.push(record.clone()),
                    None if !full && *seq > after => read.gone.push(key.clone()),
                    _ => {}
                }
            }
            db.records_read += read.records.len();
            Ok(read)
        })
    }
    fn write(&self, changes: RecordChanges) {
        self.with(|db| db.pending = Some(changes));
    }
    fn end(&self) -> Result<RecordsCursor, SharedRecordsError> {
        self.with(|db| {
            if let Some(changes) = db.pending.take() {
                if db.lose > 0 {
                    db.lose -= 1;
                    return Err(SharedRecordsError::WritesLost("commit lost".into()));
                }
                db.seq += 1;
                let seq = db.seq;
                if changes.head.is_some() {
                    db.head = changes.head;
                }
                for record in changes.records {
                    db.rows.insert(record.key(), (seq, Some(record)));
                }
                for key in changes.gone {
                    db.rows.insert(key, (seq, None));
                }
            }
            Ok(RecordsCursor {
                epoch: EPOCH.into(),
                seq: db.seq,
            })
        })
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
    records.with(|db| db.lose = 1);
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

    records.with(|db| db.lose = 1);
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
    records.with(|db| db.corrupt = true);
    let written = records.with(|db| db.seq);
    let refused = chain
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect_err("unreadable records");
    assert_eq!(
        refused.kind,
        damocles_core::sealer_api::ManagerErrorKind::Transport
    );
    assert!(refused.message.contains("unreadable"), "{refused}");
    assert_eq!(records.with(|db| db.seq), written, "left as they were");
    let said = chain
        .records_unreadable()
        .expect("listings say the records are unreadable");
    assert!(said.contains("garbage"), "{said}");
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
        records.with(|db| {
            let head = db.head.as_mut().expect("records");
            assert!(
                !head.wdpost_heartbeats.is_empty(),
                "heartbeats kept with the records"
            );
            for at in head.wdpost_heartbeats.values_mut() {
                *at -= 2 * timeout.as_millis() as u64;
            }
            db.seq += 1;
        });
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

/// Two managers on one set of records, each section reading only what changed since it
/// last read: after sealing, a rebuild, a snap-up and a WindowPoSt round through either,
/// both (and a third reading everything) hold the same records, and a section after
/// which nothing changed reads no record at all.
#[tokio::test]
async fn managers_sharing_records_read_only_what_changed_and_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let records = Arc::new(LossyRecords::default());
    let proof = SealProof::StackedDrg2KiBV1_1;
    let a = MockChain::shared(records.clone(), 1000, proof).expect("a");
    let b = MockChain::shared(records.clone(), 1000, proof).expect("b");
    let first = finished_cc_sector(&a).await;
    let second = finished_cc_sector(&b).await;
    assert_eq!(second.id.number, first.id.number + 1, "one set of numbers");
    let rebuild = b.request_rebuild(first.id).expect("rebuild through B");
    assert_eq!(a.jobs(), vec![rebuild.clone()], "A sees B's job");
    b.offer_deals(0.0, dir.path()).expect("offer");
    let upgrade = b
        .allocate_snapup_sector(AllocateSnapUpSpec::default())
        .await
        .expect("allocate")
        .expect("the sector not being rebuilt");
    assert_eq!(upgrade.sector.id, second.id);
    a.schedule_wdpost(None, 1, Duration::from_secs(60));
    a.start_wdpost_round().expect("a round");
    let jobs = b.wdpost_jobs();
    assert_eq!(jobs.len(), 2, "one job per sector, seen by B");
    assert!(b.remove_wdpost_job(&jobs[0].id).expect("removed"));

    let c = MockChain::shared(records.clone(), 1000, proof).expect("c reads everything");
    for chain in [&a, &c] {
        assert_eq!(chain.sectors(), b.sectors());
        assert_eq!(chain.jobs(), b.jobs());
        assert_eq!(chain.wdpost_jobs(), b.wdpost_jobs());
        assert_eq!(chain.counters(), b.counters());
    }
    assert_eq!(a.wdpost_jobs().len(), 1, "the removal reached A");
    assert_eq!(
        a.sector(second.id).map(|s| s.state),
        Some(ChainSectorState::Upgrading)
    );
    let before = records.with(|db| db.records_read);
    let _ = (a.sectors(), b.counters(), c.jobs());
    assert_eq!(
        records.with(|db| db.records_read),
        before,
        "nothing changed, nothing read"
    );
    b.assign_ticket(
        a.allocate_sector(AllocateSectorSpec::default())
            .await
            .expect("allocate")
            .expect("a sector")
            .id,
    )
    .await
    .expect("ticket");
    let _ = c.counters();
    assert_eq!(
        records.with(|db| db.records_read),
        before + 1 + 1,
        "B read the sector A made, C the sector as B left it"
    );
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
