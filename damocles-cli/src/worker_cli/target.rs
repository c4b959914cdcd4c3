//! Which worker `damocles-worker worker …` talks to, and with which token (reference
//! §6.1: a config wins over --host; neither means 127.0.0.1:17890).

use std::path::Path;

use damocles_sealing::config::{ConfigError, WorkerConfig, DEFAULT_ADMIN_PORT};

/// The worker to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// host:port.
    pub address: String,
    /// The bearer token.
    pub token: Option<String>,
}

/// Why the flags name no usable target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The token file could not be read.
    #[error("cannot read token file {}: {source}", path.display())]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The worker's configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Resolves the target from the flags (and their environment variables).
pub fn resolve(
    host: Option<&str>,
    config: Option<&Path>,
    token: Option<String>,
    token_file: Option<&Path>,
) -> Result<Target, TargetError> {
    let token = match (token, token_file) {
        (Some(token), _) => Some(token),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|source| TargetError::TokenFile {
                    path: file.to_path_buf(),
                    source,
                })?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let Some(config) = config {
        let loaded = WorkerConfig::load(config)?;
        let server = &loaded.config.worker.rpc_server;
        return Ok(Target {
            address: loaded.config.admin_target(),
            token: token.or_else(|| server.admin_token.clone()),
        });
    }
    let address = match host {
        None => format!("127.0.0.1:{DEFAULT_ADMIN_PORT}"),
        Some(host)
            if host
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok()) =>
        {
            host.to_owned()
        }
        Some(host) => format!("{host}:{DEFAULT_ADMIN_PORT}"),
    };
    Ok(Target { address, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_wins_over_host_and_neither_means_the_default() {
        assert_eq!(
            resolve(None, None, None, None).map(|t| t.address).ok(),
            Some("127.0.0.1:17890".into())
        );
        assert_eq!(
            resolve(Some("10.0.0.2"), None, None, None)
                .map(|t| t.address)
                .ok(),
            Some("10.0.0.2:17890".into())
        );
        assert_eq!(
            resolve(Some("10.0.0.2:1234"), None, None, None)
                .map(|t| t.address)
                .ok(),
            Some("10.0.0.2:1234".into())
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("worker.toml");
        std::fs::write(
            &config,
            "[worker]\nrpc_server.host = \"0.0.0.0\"\nrpc_server.port = 17999\nrpc_server.admin_token = \"t\"\n[[sealing_thread]]\nlocation = \"/x\"\n",
        )
        .expect("write");
        let target = resolve(Some("10.0.0.2:1234"), Some(&config), None, None).expect("target");
        assert_eq!(target.address, "127.0.0.1:17999");
        assert_eq!(target.token.as_deref(), Some("t"));
        let err =
            resolve(None, Some(&dir.path().join("nope.toml")), None, None).expect_err("missing");
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }
}
