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

use crate::no_sectors;
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
    let options = ServerOptions {
        path: Some(MANAGER_PATH.to_owned()),
        admin_token: admin_token.map(str::to_owned),
        piece_dir: Some(pieces.to_path_buf()),
        piece_fallback,
        ..ServerOptions::default()
    };
    serve_with(home, options).await
}

/// A manager with its registry in `home`, served with `options`.
async fn serve_with(home: &Path, options: ServerOptions) -> RpcServer {
    let registry = Arc::new(WorkerRegistry::open(home).expect("registry"));
    let service = ManagerService::new(
        Arc::new(NoSectors),
        registry,
        Duration::from_secs(600),
        "v-test",
        None,
    );
    RpcServer::bind("127.0.0.1:0", Arc::new(service), options)
        .await
        .expect("bind")
}

/// A connection to `server` that has sent the head of `PUT /piecestore/<cid>` announcing
/// `length` bytes, and no body yet.
async fn put_head(server: &RpcServer, cid: &Cid, length: u64) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let head = format!(
        "PUT /piecestore/{} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n",
        cid.text
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
}

/// Serves pieces from `pieces` with a body timeout of `body_timeout`.
async fn serve_stalling(home: &Path, pieces: &Path, body_timeout: Duration) -> RpcServer {
    let mut options = ServerOptions {
        path: Some(MANAGER_PATH.to_owned()),
        piece_dir: Some(pieces.to_path_buf()),
        ..ServerOptions::default()
    };
    options.connections.body_timeout = body_timeout;
    serve_with(home, options).await
}

fn store(server: &RpcServer, token: Option<&str>) -> HttpPieceStore {
    let addr = format!("http://{}", server.local_addr());
    HttpPieceStore::new(&addr, token.map(str::to_owned), Timeouts::default()).expect("store")
}

/// The answer to `method path` with no body.
async fn send(addr: &str, path: &str, method: &str) -> hyper::Response<hyper::body::Incoming> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(http_body_util::Empty::new())
        .expect("request");
    client.request(request).await.expect("answer")
}

async fn get(addr: &str, path: &str, method: &str) -> u16 {
    send(addr, path, method).await.status().as_u16()
}

/// The `Allow` header of `method path`.
async fn allow(addr: &str, path: &str, method: &str) -> Option<String> {
    let answer = send(addr, path, method).await;
    let allow = answer.headers().get(hyper::header::ALLOW)?;
    allow.to_str().ok().map(str::to_owned)
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

/// Two uploads of one piece at once never share a temporary file, and what was
/// acknowledged stays as it was: one is stored whole, the other (other bytes) is refused
/// with 409; the same bytes again are taken (a resumed job sends its piece again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_piece_once_acknowledged_stays_as_it_was() {
    use damocles_core::piece::PieceUploadError;

    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    let server = serve(dir.path(), &pieces, None).await;
    let cid = piece_cid(&[5; 32]);
    let url = format!("http://{}/piecestore/{}", server.local_addr(), cid.text);
    for round in 0..5u8 {
        let sources: Vec<_> = (0..2u8)
            .map(|i| {
                let src = dir.path().join(format!("src-{round}-{i}"));
                std::fs::write(&src, vec![round * 2 + i; 1000 + 32 * usize::from(i)]).expect("src");
                src
            })
            .collect();
        let client = store(&server, None);
        let (a, b) = tokio::join!(client.put(&url, &sources[0]), client.put(&url, &sources[1]));
        let stored = std::fs::read(pieces.join("unsealed").join(&cid.text)).expect("stored");
        let conflicts = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(PieceUploadError::Refused { detail, .. }) if detail.contains("409")))
            .count();
        if round == 0 {
            assert_eq!(conflicts, 1, "{a:?} {b:?}");
            let winner = if a.is_ok() { &sources[0] } else { &sources[1] };
            assert_eq!(
                stored,
                std::fs::read(winner).expect("winner"),
                "whole, not mixed"
            );
            client
                .put(&url, winner)
                .await
                .expect("the same bytes again");
        } else {
            assert_eq!(conflicts, 2, "an acknowledged piece is never replaced");
            assert_eq!(stored.len() % 1000 % 32, 0);
        }
    }
    let left: Vec<_> = std::fs::read_dir(pieces.join("unsealed"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    server.shutdown().await;
}

/// A client that announces a body and sends none is answered 408 once the body makes no
/// progress for the server's body timeout, and holds nothing after that.
#[tokio::test]
async fn a_stalled_piece_upload_is_answered_408() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    let server = serve_stalling(dir.path(), &pieces, Duration::from_millis(500)).await;
    let cid = piece_cid(&[6; 32]);
    let mut stream = put_head(&server, &cid, 1000).await;
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered within 10 s")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read_dir(pieces.join("unsealed"))
            .expect("dir")
            .count(),
        0,
        "nothing kept of it"
    );
    server.shutdown().await;
}

/// An unseal job's `market://` destination: the piece goes to venus-market's `PUT
/// /resource?resource-id=<cid>&store=<store>` with the market's token, for which the mock
/// manager stands in; only 200 is success.
#[tokio::test]
async fn market_uploads_go_to_the_resource_path_with_the_token() {
    use damocles_core::piece::PieceUploadError;

    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    let server = serve(dir.path(), &pieces, Some("market-token")).await;
    let cid = piece_cid(&[4; 32]);
    let src = dir.path().join("src");
    std::fs::write(&src, vec![4u8; 2032]).expect("src");
    let resource = |store: &str| {
        format!(
            "http://{}/resource?resource-id={}&store={store}",
            server.local_addr(),
            cid.text
        )
    };
    let client = store(&server, None);
    client
        .put_market(&resource("s1"), &src, "market-token")
        .await
        .expect("stored");
    assert_eq!(
        std::fs::read(pieces.join("market/s1").join(&cid.text)).expect("stored"),
        vec![4u8; 2032]
    );
    let wrong = client.put_market(&resource("s1"), &src, "guess").await;
    assert!(
        matches!(&wrong, Err(PieceUploadError::Refused { detail, .. }) if detail.contains("401")),
        "{wrong:?}"
    );
    for bad in ["..", "a%2Fb", ""] {
        let refused = client
            .put_market(&resource(bad), &src, "market-token")
            .await;
        assert!(
            matches!(&refused, Err(PieceUploadError::Refused { detail, .. }) if detail.contains("400")),
            "{bad}: {refused:?}"
        );
    }
    server.shutdown().await;
}

/// A server that answers without end: HTTP `status` with an announced body of 200 MB,
/// sent until the client goes away. Returns its address.
async fn endless_server(status: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n"
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'a'; 1 << 16];
                for _ in 0..3200 {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// What a server sends back is read only as far as it is kept: an error body of an
/// unseal destination to a few KiB (it becomes the thread's last error), a JSON-RPC
/// answer to the client's bound.
#[tokio::test]
async fn answers_from_outside_are_read_within_their_bounds() {
    use damocles_core::piece::PieceUploadError;

    let dir = tempfile::tempdir().expect("dir");
    let src = dir.path().join("src");
    std::fs::write(&src, vec![1u8; 1024]).expect("src");
    let failing = endless_server("500 Internal Server Error").await;
    let pieces = dir.path().join("pieces");
    let server = serve(dir.path(), &pieces, None).await;
    let started = std::time::Instant::now();
    let failed = store(&server, None)
        .put(&format!("http://{failing}/upload"), &src)
        .await;
    let Err(PieceUploadError::Unavailable { reason, .. }) = &failed else {
        panic!("{failed:?}");
    };
    assert!(reason.starts_with("HTTP 500"), "{}", &reason[..100]);
    assert!(reason.len() <= 4200, "kept {} bytes of it", reason.len());
    assert!(started.elapsed() < Duration::from_secs(20));

    let answering = endless_server("200 OK").await;
    let client =
        damocles_rpc::RpcClient::new(&answering.to_string(), "/rpc/v0", None, Timeouts::default())
            .expect("client")
            .with_max_answer(1 << 20);
    let err = client
        .call::<serde_json::Value>("Venus.AllocateSector", serde_json::json!([{}]))
        .await
        .expect_err("too long");
    assert!(
        matches!(&err, damocles_rpc::CallError::Protocol { reason, .. } if reason.contains("exceeds 1048576 bytes")),
        "{err}"
    );
    server.shutdown().await;
    // Two 200 MB answers read, the process never near them (nextest runs each test in a
    // process of its own): RELIABILITY.md reports this figure.
    let peak = peak_rss_mib();
    eprintln!("peak RSS through two 200 MB answers: {peak} MiB");
    assert!(peak < 200, "peak RSS {peak} MiB");
}

/// This process's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

/// A check that expects one piece: `cid` with exactly `bytes` (the manager's own check,
/// with real piece CIDs, is tried in damocles-cli's `reliability` tests).
struct ExpectOne {
    cid: Cid,
    bytes: Vec<u8>,
}

impl damocles_core::PieceCheck for ExpectOne {
    fn max_bytes(&self, cid: &Cid) -> Option<u64> {
        (cid == &self.cid).then_some(self.bytes.len() as u64)
    }

    fn check(&self, cid: &Cid, file: &Path) -> Result<(), damocles_core::NotThePiece> {
        let held =
            std::fs::read(file).map_err(|e| damocles_core::NotThePiece::new(e.to_string()))?;
        if cid == &self.cid && held == self.bytes {
            Ok(())
        } else {
            Err(damocles_core::NotThePiece::new("other bytes"))
        }
    }
}

/// With a check, only the piece a CID names is stored under it: an unknown CID is 404,
/// more bytes than the piece 413, other bytes 422 (nothing kept), and bytes stored under
/// the CID before (by hand, or before checks) that fail the check are replaced by the
/// checked piece, which then stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_piece_its_cid_names_is_stored() {
    use damocles_core::piece::PieceUploadError;

    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    let cid = piece_cid(&[8; 32]);
    let good = vec![8u8; 1016];
    let options = ServerOptions {
        path: Some(MANAGER_PATH.to_owned()),
        piece_dir: Some(pieces.clone()),
        piece_check: Some(Arc::new(ExpectOne {
            cid: cid.clone(),
            bytes: good.clone(),
        })),
        ..ServerOptions::default()
    };
    let server = serve_with(dir.path(), options).await;
    let client = store(&server, None);
    let stored = pieces.join("unsealed").join(&cid.text);
    let url = |cid: &Cid| format!("http://{}/piecestore/{}", server.local_addr(), cid.text);
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("src");
        path
    };
    let refused = |result: Result<(), PieceUploadError>, status: &str| match result {
        Err(PieceUploadError::Refused { detail, .. }) => {
            assert!(detail.contains(status), "{status}: {detail}")
        }
        other => panic!("{status} expected: {other:?}"),
    };

    let other = piece_cid(&[9; 32]);
    refused(client.put(&url(&other), &file("a", &good)).await, "404");
    refused(client.put(&url(&cid), &file("b", &[8; 1017])).await, "413");
    refused(client.put(&url(&cid), &file("c", &[7; 1016])).await, "422");
    assert!(!stored.exists(), "nothing stored of refused uploads");

    std::fs::create_dir_all(pieces.join("unsealed")).expect("dir");
    std::fs::write(&stored, b"garbage put there earlier").expect("garbage");
    client
        .put(&url(&cid), &file("d", &good))
        .await
        .expect("the piece replaces bytes that are not it");
    assert_eq!(std::fs::read(&stored).expect("stored"), good);
    client
        .put(&url(&cid), &file("e", &good))
        .await
        .expect("the same piece again");
    refused(client.put(&url(&cid), &file("f", &[7; 1016])).await, "422");
    assert_eq!(std::fs::read(&stored).expect("stored"), good, "kept");
    let left = std::fs::read_dir(pieces.join("unsealed"))
        .expect("dir")
        .count();
    assert_eq!(left, 1, "no temporary file left");
    server.shutdown().await;
}

/// A body that announces more than the piece holds is refused at once, unread.
#[tokio::test]
async fn an_upload_announcing_more_than_the_piece_is_refused_at_once() {
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().expect("dir");
    let cid = piece_cid(&[8; 32]);
    let options = ServerOptions {
        path: Some(MANAGER_PATH.to_owned()),
        piece_dir: Some(dir.path().join("pieces")),
        piece_check: Some(Arc::new(ExpectOne {
            cid: cid.clone(),
            bytes: vec![8; 1016],
        })),
        ..ServerOptions::default()
    };
    let server = serve_with(dir.path(), options).await;
    let mut stream = put_head(&server, &cid, 10000000000).await;
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut answer))
        .await
        .expect("answered at once")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    server.shutdown().await;
}

/// A body that keeps coming, a byte at a time, never long enough apart to stall, is cut
/// off once it falls below the minimum average rate past the body timeout.
#[tokio::test]
async fn a_trickling_piece_upload_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    let server = serve_stalling(dir.path(), &pieces, Duration::from_millis(800)).await;
    let cid = piece_cid(&[6; 32]);
    let mut stream = put_head(&server, &cid, 1000).await;
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 512];
    let mut read = 0;
    for _ in 0..100 {
        // A byte every 200 ms: each well within the 800 ms stall.
        let _ = stream.write_all(b"x").await;
        if let Ok(n) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut answer)).await
        {
            read = n.expect("read");
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

/// The router sends each path to what serves it: the piece store's paths only where the
/// server has a piece directory, the API at its path, and anything else is a 404 that
/// says where the API is.
#[tokio::test]
async fn each_path_reaches_what_serves_it() {
    let dir = tempfile::tempdir().expect("dir");
    let pieces = dir.path().join("pieces");
    std::fs::create_dir_all(&pieces).expect("pieces");
    let with_pieces = serve(dir.path(), &pieces, None).await;
    let addr = with_pieces.local_addr().to_string();
    // A GET of the API is refused by the API (it wants POST), not as an unknown path.
    assert_eq!(get(&addr, MANAGER_PATH, "GET").await, 405);
    assert_eq!(get(&addr, "/elsewhere", "POST").await, 404);
    assert_eq!(get(&addr, "/piecestore/not-a-cid", "GET").await, 400);
    assert_eq!(get(&addr, "/piecestore/a/b", "GET").await, 400);
    // venus-market's path stores with PUT only; each 405 says what the path takes.
    assert_eq!(get(&addr, "/resource", "GET").await, 405);
    assert_eq!(
        allow(&addr, "/resource", "GET").await.as_deref(),
        Some("PUT")
    );
    assert_eq!(
        allow(&addr, MANAGER_PATH, "GET").await.as_deref(),
        Some("POST")
    );
    assert_eq!(
        allow(&addr, "/piecestore/x", "DELETE").await.as_deref(),
        Some("GET, PUT")
    );
    with_pieces.shutdown().await;

    let home = tempfile::tempdir().expect("home");
    let options = ServerOptions {
        path: Some(MANAGER_PATH.to_owned()),
        ..ServerOptions::default()
    };
    let without_pieces = serve_with(home.path(), options).await;
    let addr = without_pieces.local_addr().to_string();
    assert_eq!(get(&addr, "/piecestore/not-a-cid", "GET").await, 404);
    assert_eq!(get(&addr, "/resource", "PUT").await, 404);
    without_pieces.shutdown().await;
}
