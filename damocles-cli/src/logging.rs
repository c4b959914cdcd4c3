//! Logs to stderr, filtered by `RUST_LOG` (or the given default level).

/// Installs the subscriber once; later calls do nothing. `level` applies to our crates;
/// the proof crates log warnings only (their info lines are per call and noisy).
pub fn init(level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,damocles_sealing={level},damocles_rpc={level},damocles_cli={level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
