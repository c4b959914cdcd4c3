//! The unit tests of `store`.

use super::*;
use damocles_core::sealer_api::AllocatedSector;
use damocles_core::{Event, Plan, SealProof, SectorId};

#[tokio::test]
async fn records_survive_reopening_the_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::init(&dir.path().join("store1")).expect("init");
    assert!(location.root().join(HOLDER).is_file());
    let store = RedbStateStore::open(&location).expect("open");
    assert_eq!(store.load().await.expect("load"), None);
    let record = sealed_record();
    store.save(&record).await.expect("save");
    drop(store);
    let reopened = RedbStateStore::open(&Location::open(location.root()).expect("reopen"))
        .expect("open again");
    assert_eq!(reopened.load().await.expect("load"), Some(record));
    reopened.clear().await.expect("clear");
    assert_eq!(reopened.load().await.expect("load"), None);
}

#[tokio::test]
async fn the_history_keeps_the_last_thousand_entries_across_reopening() {
    use damocles_core::Happening;
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::init(dir.path()).expect("init");
    let store = RedbStateStore::open(&location).expect("open");
    assert_eq!(store.events(10).await.expect("events"), Vec::new());
    let event = |n: usize| ThreadEvent {
        at_ms: n as u64,
        sector: None,
        what: Happening::Aborted {
            reason: format!("#{n}"),
        },
    };
    // 1,005 entries, written in batches of 1 to 3.
    let mut n = 0;
    while n < JOURNAL_LIMIT + 5 {
        let batch: Vec<_> = (n..(n + 1 + n % 3).min(JOURNAL_LIMIT + 5))
            .map(event)
            .collect();
        n += batch.len();
        store.append_events(&batch).await.expect("append");
    }
    drop(store);
    let store = RedbStateStore::open(&location).expect("reopen");
    let all = store.events(usize::MAX).await.expect("events");
    assert_eq!(all.len(), JOURNAL_LIMIT);
    assert_eq!(all[0].seq, 6, "the five oldest were dropped");
    assert_eq!(all[0].event, event(5));
    assert_eq!(all.last().map(|e| e.seq), Some(1_005));
    let last_two = store.events(2).await.expect("events");
    assert_eq!(
        last_two.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1_004, 1_005]
    );
    // Clearing the record leaves the history alone.
    store.clear().await.expect("clear");
    assert_eq!(store.events(1).await.expect("events")[0].seq, 1_005);
}

#[test]
fn opening_a_plain_directory_says_how_to_prepare_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Location::open(dir.path()).unwrap_err();
    assert!(matches!(err, LocationError::NotInitialised { .. }));
    assert!(err.to_string().contains("store sealing-init"));
}

fn sealed_record() -> SectorRecord {
    let mut record = SectorRecord::new(Plan::Sealer);
    record
        .apply(
            Event::Allocate(AllocatedSector {
                id: SectorId::new(1000, 7),
                proof_type: SealProof::StackedDrg2KiBV1_1,
            }),
            1,
        )
        .expect("apply");
    record
}

#[tokio::test]
async fn a_truncated_database_is_an_error_naming_the_file_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::init(dir.path()).expect("init");
    let store = RedbStateStore::open(&location).expect("open");
    store.save(&sealed_record()).await.expect("save");
    drop(store);
    let whole = fs::read(location.state_db()).expect("read");
    for size in [4096, 1, 512, 8192, whole.len() - 1] {
        fs::write(location.state_db(), &whole[..size.min(whole.len())]).expect("truncate");
        // Opening at start (as the worker assembles its threads), then using it.
        let opened = RedbStateStore::open(&location).map(|_| ());
        let loaded = RedbStateStore::lazy(&location).load().await;
        for result in [opened.err(), loaded.err()].into_iter().flatten() {
            assert!(result.location.ends_with("state.redb"), "{size}: {result}");
        }
    }
    fs::write(location.state_db(), &whole).expect("restore");
    let store = RedbStateStore::lazy(&location);
    assert_eq!(store.load().await.expect("load"), Some(sealed_record()));
}

#[tokio::test]
async fn an_empty_or_missing_database_beside_sector_files_is_not_created_anew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::init(dir.path()).expect("init");
    let store = RedbStateStore::open(&location).expect("open");
    store.save(&sealed_record()).await.expect("save");
    drop(store);
    let staged = location.data_dir().join("unsealed/s-t01000-7");
    fs::create_dir_all(staged.parent().expect("parent")).expect("dir");
    fs::write(&staged, [0u8; 2048]).expect("staged");

    fs::write(location.state_db(), b"").expect("truncate to 0");
    let store = RedbStateStore::lazy(&location);
    let err = store.load().await.unwrap_err();
    assert!(err.message.contains("the database is empty"), "{err}");
    assert!(err.message.contains("s-t01000-7"), "names the files: {err}");
    assert_eq!(
        fs::metadata(location.state_db()).expect("db").len(),
        0,
        "untouched"
    );

    fs::remove_file(location.state_db()).expect("remove");
    let err = store.recover().await.unwrap_err();
    assert!(err.message.contains("the database is missing"), "{err}");
    assert!(!location.state_db().exists(), "not created");

    // Once the operator has moved the files away, a resume starts afresh.
    fs::remove_file(&staged).expect("move away");
    store.recover().await.expect("recover");
    assert_eq!(store.load().await.expect("load"), None);
}

#[tokio::test]
async fn a_corrupt_database_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let location = Location::init(dir.path()).expect("init");
    fs::write(location.state_db(), b"this is not a redb file, not at all").expect("write");
    let err = RedbStateStore::open(&location).unwrap_err();
    assert!(err.location.ends_with("state.redb"), "{err}");
}
