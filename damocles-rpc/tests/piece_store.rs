//! The manager's piece store on the wire: `GET /piecestore/{cid}` served from a directory
//! by a real server on 127.0.0.1, read by the worker's `HttpPieceStore`; unsealed pieces
//! `PUT` back.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use damocles_core::piece::{piece_cid, PieceFetchError, PieceStore};
use damocles_core::sealer_api::Cid;
use damocles_rpc::sealer::MANAGER_PATH;
use damocles_rpc::{
    HttpPieceStore, ManagerService, RpcServer, ServerOptions, Timeouts, WorkerRegistry,
};

mod no_sectors {
    include!("support/no_sectors.rs");
}
use no_sectors::NoSectors;

async fn serve(home: &Path, pieces: &Path, admin_token: Option<&str>) -> RpcServer {
    serve_with_fallback(home, pieces, admin_token, None).await
}

async fn serve_with_fallback(
    home: &Path,
    pieces: &Path,
    admin_token: Option<&str>,
    piece_fallback: Option<Arc<dyn PieceStore>>,
) -> RpcServer {
    let registry = Arc::new(WorkerRegistry::open(home).expect("registry"));
    let service = ManagerService::new(
        Arc::new(NoSectors),
        registry,
        Duration::from_secs(600),
        "v-test",
        None,
    );
    let options = ServerOptions {
        path: Some(MANAGER_PATH.to_owned()),
        admin_token: admin_token.map(str::to_owned),
        piece_dir: Some(pieces.to_path_buf()),
        piece_fallback,
        ..ServerOptions::default()
    };
    RpcServer::bind("127.0.0.1:0", Arc::new(service), options)
        .await
        .expect("bind")
}

fn store(server: &RpcServer, token: Option<&str>) -> HttpPieceStore {
    let addr = format!("http://{}", server.local_addr());
    HttpPieceStore::new(&addr, token.map(str::to_owned), Timeouts::default()).expect("store")
}

async fn get(addr: &str, path: &str, method: &str) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(http_body_util::Empty::new())
        .expect("request");
    client
        .request(request)
        .await
        .expect("answer")
        .status()
        .as_u16()
}

#[tokio::test]
async fn pieces_are_fetched_whole_and_only_pieces_by_cid() {
    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    std::fs::create_dir_all(&pieces).expect("pieces");
    let cid = piece_cid(&[7; 32]);
    let payload: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(pieces.join(&cid.text), &payload).expect("piece");
    std::fs::write(dir.path().join("secret"), b"not a piece").expect("secret");
    let server = serve(dir.path(), &pieces, None).await;
    let remote = store(&server, None);

    let dest = dir.path().join("copy");
    assert_eq!(remote.fetch(&cid, &dest, 2032).await, Ok(1500));
    assert_eq!(std::fs::read(&dest).expect("copy"), payload);

    // More bytes than the piece holds: refused, and nothing left behind.
    let small = dir.path().join("small");
    assert!(matches!(
        remote.fetch(&cid, &small, 1000).await,
        Err(PieceFetchError::TooLarge { limit: 1000, .. })
    ));
    assert!(!small.exists() && !small.with_extension("part").exists());

    let unknown = piece_cid(&[8; 32]);
    let missing = remote.fetch(&unknown, &small, 2032).await;
    assert!(
        matches!(&missing, Err(PieceFetchError::NotFound { detail, .. }) if detail.contains("/piecestore/")),
        "{missing:?}"
    );
    assert_eq!(
        missing
            .map_err(PieceFetchError::into_failure)
            .err()
            .map(|f| f.level),
        Some(damocles_core::FailureLevel::Permanent)
    );

    let addr = server.local_addr().to_string();
    assert_eq!(get(&addr, "/piecestore/..%2Fsecret", "GET").await, 400);
    assert_eq!(get(&addr, "/piecestore/secret", "GET").await, 400);
    let path = format!("/piecestore/{}", cid.text);
    assert_eq!(get(&addr, &path, "DELETE").await, 405);
    assert_eq!(get(&addr, &path, "GET").await, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_manager_with_tokens_serves_pieces_only_to_token_holders() {
    let dir = tempfile::tempdir().expect("dir");
    let cid = piece_cid(&[1; 32]);
    std::fs::write(dir.path().join(&cid.text), b"deal bytes").expect("piece");
    let server = serve(dir.path(), dir.path(), Some("s3cret")).await;
    let dest = dir.path().join("copy");

    let refused = store(&server, None).fetch(&cid, &dest, 100).await;
    match &refused {
        Err(PieceFetchError::Unavailable { reason, .. }) => {
            assert!(reason.contains("piece_token"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store(&server, Some("s3cret")).fetch(&cid, &dest, 100).await,
        Ok(10)
    );
    let unreachable = HttpPieceStore::new("127.0.0.1:1", None, Timeouts::default())
        .expect("store")
        .fetch(
            &Cid {
                text: cid.text.clone(),
            },
            &dest,
            100,
        )
        .await;
    assert!(
        matches!(unreachable, Err(PieceFetchError::Unavailable { .. })),
        "{unreachable:?}"
    );
    server.shutdown().await;
}

/// Unsealed pieces come back with `PUT /piecestore/{cid}` into `<dir>/unsealed/`: only
/// with the admin token where tokens are set, only under a piece CID; the worker's side
/// says refused, unreachable and unsupported apart.
#[tokio::test]
async fn unsealed_pieces_are_put_back_with_the_admin_token() {
    use damocles_core::piece::PieceUploadError;

    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    std::fs::create_dir_all(&pieces).expect("pieces");
    let server = serve(dir.path(), &pieces, Some("s3cret")).await;
    let cid = piece_cid(&[9; 32]);
    let src = dir.path().join("unsealed-piece");
    let bytes: Vec<u8> = (0..2032u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&src, &bytes).expect("src");

    store(&server, Some("s3cret"))
        .upload(&cid, &src)
        .await
        .expect("stored");
    assert_eq!(
        std::fs::read(pieces.join("unsealed").join(&cid.text)).expect("stored piece"),
        bytes
    );
    assert!(
        !pieces.join(&cid.text).exists(),
        "the offered pieces are untouched"
    );

    // Without the token, or at a URL of its own choosing (no manager token sent there):
    // refused, permanent.
    let refused = store(&server, None).upload(&cid, &src).await;
    assert!(
        matches!(&refused, Err(PieceUploadError::Refused { detail, .. }) if detail.contains("401")),
        "{refused:?}"
    );
    let url = format!("http://{}/piecestore/{}", server.local_addr(), cid.text);
    let refused = store(&server, Some("s3cret")).put(&url, &src).await;
    assert!(
        matches!(refused, Err(PieceUploadError::Refused { .. })),
        "{refused:?}"
    );
    assert_eq!(
        refused
            .map_err(PieceUploadError::into_failure)
            .err()
            .map(|f| f.level),
        Some(damocles_core::FailureLevel::Permanent)
    );
    let bad_name = format!("http://{}/piecestore/not-a-cid", server.local_addr());
    let open = serve(dir.path().join("open").as_path(), &pieces, None).await;
    let open_url = format!("http://{}/piecestore/{}", open.local_addr(), cid.text);
    store(&open, None)
        .put(&open_url, &src)
        .await
        .expect("an open store takes it");
    let bad = store(&open, None)
        .put(
            &bad_name.replace(
                &server.local_addr().to_string(),
                &open.local_addr().to_string(),
            ),
            &src,
        )
        .await;
    assert!(
        matches!(&bad, Err(PieceUploadError::Refused { detail, .. }) if detail.contains("400")),
        "{bad:?}"
    );
    let https = store(&open, None)
        .put("https://example.invalid/p", &src)
        .await;
    assert!(
        matches!(https, Err(PieceUploadError::Unsupported { .. })),
        "{https:?}"
    );
    let gone = store(&open, None)
        .put("http://127.0.0.1:1/p", &src)
        .await
        .map_err(PieceUploadError::into_failure);
    assert_eq!(
        gone.err().map(|f| f.level),
        Some(damocles_core::FailureLevel::Temporary)
    );
    let missing = store(&open, None)
        .upload(&cid, &dir.path().join("no-such-file"))
        .await;
    assert!(
        matches!(missing, Err(PieceUploadError::Local { .. })),
        "{missing:?}"
    );
    open.shutdown().await;
    server.shutdown().await;
}

/// A piece store that holds one piece in memory: what another manager's shared records
/// stand for.
#[derive(Debug)]
struct Elsewhere {
    cid: Cid,
    payload: Vec<u8>,
}

#[async_trait::async_trait]
impl PieceStore for Elsewhere {
    async fn upload(&self, cid: &Cid, _: &Path) -> Result<(), damocles_core::PieceUploadError> {
        Err(damocles_core::PieceUploadError::Unsupported {
            target: cid.text.clone(),
            detail: "read only".into(),
        })
    }

    async fn fetch(&self, cid: &Cid, dest: &Path, _: u64) -> Result<u64, PieceFetchError> {
        if *cid != self.cid {
            return Err(PieceFetchError::NotFound {
                cid: cid.text.clone(),
                detail: "not here either".into(),
            });
        }
        std::fs::write(dest, &self.payload).expect("write");
        Ok(self.payload.len() as u64)
    }
}

/// Several managers listed: a piece is asked of the next while one cannot be reached or
/// lacks it, and the one that answered is asked first from then on; a manager serves a
/// piece its directory lacks from its fallback (the shared records) and keeps it.
#[tokio::test]
async fn pieces_come_from_whichever_listed_manager_has_them() {
    let dir = tempfile::tempdir().expect("dir");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).expect("a");
    std::fs::create_dir_all(&b_dir).expect("b");
    let only_a = piece_cid(&[3; 32]);
    std::fs::write(a_dir.join(&only_a.text), b"made by a").expect("piece");
    let shared = piece_cid(&[4; 32]);
    let a = serve(&a_dir, &a_dir, None).await;
    let elsewhere = Elsewhere {
        cid: shared.clone(),
        payload: b"in the database".to_vec(),
    };
    let b = serve_with_fallback(&b_dir, &b_dir, None, Some(Arc::new(elsewhere))).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let listed = format!(
        "http://{dead},http://{},http://{}",
        b.local_addr(),
        a.local_addr()
    );
    let pieces = HttpPieceStore::new(&listed, None, Timeouts::default()).expect("store");

    // Dead, then B (which lacks it), then A.
    let dest = dir.path().join("copy");
    assert_eq!(pieces.fetch(&only_a, &dest, 100).await, Ok(9));
    assert_eq!(std::fs::read(&dest).expect("copy"), b"made by a");
    // From B's fallback, by way of A (asked first now), which lacks it.
    assert_eq!(pieces.fetch(&shared, &dest, 100).await, Ok(15));
    assert_eq!(std::fs::read(&dest).expect("copy"), b"in the database");
    assert_eq!(
        std::fs::read(b_dir.join(&shared.text)).expect("kept by B"),
        b"in the database"
    );
    // Nobody has it: unavailable while a listed manager cannot be asked (it may hold
    // it), not found once every manager said so.
    let nowhere = piece_cid(&[5; 32]);
    let unanswered = pieces.fetch(&nowhere, &dest, 100).await;
    assert!(
        matches!(unanswered, Err(PieceFetchError::Unavailable { .. })),
        "{unanswered:?}"
    );
    let both = format!("http://{},http://{}", a.local_addr(), b.local_addr());
    let answered = HttpPieceStore::new(&both, None, Timeouts::default())
        .expect("store")
        .fetch(&nowhere, &dest, 100)
        .await;
    assert!(
        matches!(answered, Err(PieceFetchError::NotFound { .. })),
        "{answered:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
