//! TLS for the worker's HTTP clients against a loopback TLS server with a test CA
//! (`fixtures/tls/`): a TLS front (tokio-rustls) before a real manager server. The
//! manager's API (`https://` and a `/https` multiaddr), its piece store and
//! venus-market's upload path are reached over TLS when the CA is trusted
//! (`[worker] tls_ca_file`), and refused, naming the certificate, when it is not.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use damocles_core::piece::{piece_cid, PieceStore, PieceUploadError};
use damocles_core::sealer_api::AllocateSectorSpec;
use damocles_core::SectorManager;
use damocles_rpc::sealer::MANAGER_PATH;
use damocles_rpc::tls::TlsTrust;
use damocles_rpc::{
    HttpPieceStore, HttpSectorManager, ManagerService, RpcServer, ServerOptions, Timeouts,
    WorkerRegistry,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::no_sectors;
use no_sectors::NoSectors;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/tls")
        .join(name)
}

/// A TLS front on 127.0.0.1 that hands each connection's plain bytes to `backend`.
async fn tls_front(backend: std::net::SocketAddr) -> std::net::SocketAddr {
    let certs = CertificateDer::pem_file_iter(fixture("server.pem"))
        .expect("cert file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("key");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to do.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    addr
}

async fn manager(home: &Path) -> RpcServer {
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
        piece_dir: Some(home.join("pieces")),
        ..ServerOptions::default()
    };
    RpcServer::bind("127.0.0.1:0", Arc::new(service), options)
        .await
        .expect("bind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_managers_and_destinations_are_reached_with_the_trusted_ca() {
    let home = tempfile::tempdir().expect("home");
    let server = manager(home.path()).await;
    let front = tls_front(server.local_addr()).await;
    let trust = TlsTrust::with_ca_file(fixture("ca.pem"));
    let port = front.port();

    for addr in [
        format!("https://127.0.0.1:{port}"),
        format!("/ip4/127.0.0.1/tcp/{port}/https"),
    ] {
        let sealer = HttpSectorManager::new(&addr, None, Timeouts::default())
            .expect("address")
            .with_tls(&trust)
            .expect("trust");
        assert_eq!(
            sealer.allocate_sector(AllocateSectorSpec::default()).await,
            Ok(None),
            "{addr}: answered over TLS"
        );
    }

    // Without the CA, the server's certificate is not trusted: the call fails, saying so.
    let untrusting = HttpSectorManager::new(
        &format!("https://127.0.0.1:{port}"),
        None,
        Timeouts::default(),
    )
    .expect("address");
    let err = untrusting
        .allocate_sector(AllocateSectorSpec::default())
        .await
        .expect_err("an unknown CA");
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate")
            && err.to_string().contains("[worker] tls_ca_file"),
        "{err}"
    );

    // Pieces: the manager's piece store, an https:// destination, venus-market's path.
    let pieces = HttpPieceStore::new(
        &format!("https://127.0.0.1:{port}"),
        None,
        Timeouts::default(),
    )
    .expect("address")
    .with_tls(&trust)
    .expect("trust");
    let src = home.path().join("piece");
    std::fs::write(&src, vec![7u8; 1016]).expect("piece");
    let cid = piece_cid(&[7; 32]);
    pieces.upload(&cid, &src).await.expect("store:// over TLS");
    let stored = home.path().join("pieces/unsealed").join(&cid.text);
    assert_eq!(std::fs::read(&stored).expect("stored"), vec![7u8; 1016]);
    let other = piece_cid(&[8; 32]);
    pieces
        .put(
            &format!("https://127.0.0.1:{port}/piecestore/{}", other.text),
            &src,
        )
        .await
        .expect("https:// destination");
    pieces
        .put_market(
            &format!(
                "https://127.0.0.1:{port}/resource?resource-id={}&store=s1",
                cid.text
            ),
            &src,
            "t",
        )
        .await
        .expect("market:// with scheme=https");
    let untrusting = HttpPieceStore::new(&format!("127.0.0.1:{port}"), None, Timeouts::default())
        .expect("address");
    let err = untrusting
        .put(
            &format!("https://127.0.0.1:{port}/piecestore/{}", other.text),
            &src,
        )
        .await
        .expect_err("an unknown CA");
    assert!(
        matches!(&err, PieceUploadError::Unavailable { reason, .. } if reason.to_lowercase().contains("certificate")),
        "{err:?}"
    );
    server.shutdown().await;
}

#[test]
fn a_ca_file_that_is_not_one_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").expect("file");
    for file in [missing, empty] {
        let err = TlsTrust::with_ca_file(&file)
            .connector(Duration::from_secs(1))
            .map(|_| ())
            .expect_err("refused");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
    }
}
