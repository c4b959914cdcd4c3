//! Logs to stderr, filtered by `RUST_LOG` (or the given default level), each line stamped
//! in the local time zone with its offset (`TZ`, else /etc/localtime, as `worker events`).

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// Stamps log lines with the local time and its UTC offset, e.g.
/// `2026-11-30T20:05:01.123456+08:00`.
#[derive(Debug, Clone)]
pub struct LocalTime {
    zone: jiff::tz::TimeZone,
}

impl LocalTime {
    /// The time zone of this process: `TZ`, else the system's.
    pub fn system() -> Self {
        Self {
            zone: jiff::tz::TimeZone::system(),
        }
    }

    /// The stamp of `at` in this zone.
    pub fn stamp(&self, at: jiff::Timestamp) -> String {
        at.to_zoned_datetime(self.zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%.6f%:z")
            .to_string()
    }
}

impl FormatTime for LocalTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&self.stamp(jiff::Timestamp::now()))
    }
}

/// Installs the subscriber once; later calls do nothing. `level` applies to our crates;
/// the proof crates log warnings only (their info lines are per call and noisy). Panics
/// the worker contains (a damaged database, a damaged replica) are left to the error that
/// reports them, without a backtrace each ([`damocles_sealing::panics`]).
pub fn init(level: &str) {
    use std::io::IsTerminal;
    damocles_sealing::panics::quiet_contained_panics();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,damocles_sealing={level},damocles_rpc={level},damocles_cli={level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(LocalTime::system())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_carry_the_local_offset() {
        let at = jiff::Timestamp::from_second(1_764_529_200).expect("time"); // 2025-11-30T19:00:00Z
        let shanghai = LocalTime {
            zone: jiff::tz::TimeZone::fixed(jiff::tz::offset(8)),
        };
        assert_eq!(shanghai.stamp(at), "2025-12-01T03:00:00.000000+08:00");
        let utc = LocalTime {
            zone: jiff::tz::TimeZone::UTC,
        };
        assert_eq!(utc.stamp(at), "2025-11-30T19:00:00.000000+00:00");
    }
}
