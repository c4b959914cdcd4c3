//! TLS for the worker's HTTP clients: `https://` managers (`rpc_client.addr`), unseal
//! destinations (`https://…`, `market://…?scheme=https`), with rustls (ring). Servers are
//! verified against the system's root certificates (read once per process by
//! `rustls-native-certs`) plus, optionally, the CA certificates of a PEM file the operator
//! names (`[worker] tls_ca_file`), for a cluster's own CA. `http://` goes through the same
//! connector unencrypted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The connector of every HTTP client here: `http://` and `https://`.
pub type Connector = HttpsConnector<HttpConnector>;

/// What `https://` servers are trusted: the system's roots, plus the CA certificates of
/// `extra_ca_file` when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// A PEM file of CA certificates trusted besides the system's roots.
    pub extra_ca_file: Option<PathBuf>,
}

/// Why a [`TlsTrust`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the CA file {file}: {reason}")]
pub struct TlsError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl TlsTrust {
    /// Trusts the system's roots and the CA certificates of `file` (PEM).
    pub fn with_ca_file(file: impl Into<PathBuf>) -> Self {
        Self {
            extra_ca_file: Some(file.into()),
        }
    }

    /// A connector that makes connections within `connect_timeout` and verifies
    /// `https://` servers against this trust.
    ///
    /// # Errors
    ///
    /// [`TlsError`] when the extra CA file cannot be read or holds no certificate rustls
    /// accepts.
    pub fn connector(&self, connect_timeout: Duration) -> Result<Connector, TlsError> {
        let mut roots = system_roots().clone();
        if let Some(file) = &self.extra_ca_file {
            add_ca_file(&mut roots, file)?;
        }
        // ring, not aws-lc-rs: it builds without cmake in a minute on 2 cores. rustls
        // 0.23.48 deprecates it for lacking post-quantum key exchange, which a cluster's
        // own links do without.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                file: self.extra_ca_file.clone().unwrap_or_default(),
                reason: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        // The TLS layer sees https:// URLs; the TCP one must let them through.
        http.enforce_http(false);
        Ok(HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http))
    }
}

/// The connector with the system's roots alone: what a client uses until told otherwise.
pub(crate) fn default_connector(connect_timeout: Duration) -> Connector {
    TlsTrust::default()
        .connector(connect_timeout)
        .expect("the system's roots need no file")
}

/// The system's root certificates, read once; those that cannot be read are left out
/// (logged), as a browser would.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!("system root certificates: {error}");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::warn!(
                "system root certificates: {ignored} of {} unusable",
                added + ignored
            );
        }
        roots
    })
}

/// Adds every certificate of the PEM file `file` to `roots`.
fn add_ca_file(roots: &mut RootCertStore, file: &Path) -> Result<(), TlsError> {
    let fail = |reason: String| TlsError {
        file: file.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("holds no PEM certificate".into()));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| fail(format!("a certificate rustls refuses: {e}")))?;
    }
    Ok(())
}
