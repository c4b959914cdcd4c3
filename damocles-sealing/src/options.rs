//! The sealing options of a thread (`[sealing]` merged with the thread's `sealing.*`),
//! with the original's defaults.

use std::time::Duration;

use damocles_core::{ActorId, SectorSize};

/// How a thread seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingOptions {
    /// Miners to seal for (`None`: any).
    pub allowed_miners: Option<Vec<ActorId>>,
    /// Sector sizes to seal (`None`: any).
    pub allowed_sizes: Option<Vec<SectorSize>>,
    /// Ask the manager for deals.
    pub enable_deals: bool,
    /// Take no sector without deals.
    pub disable_cc: bool,
    /// At most this many deals a sector.
    pub max_deals: Option<u64>,
    /// Only take deals filling at least this much.
    pub min_deal_space: Option<u64>,
    /// Temporary failures of a sector before the thread pauses.
    pub max_retries: u32,
    /// Pause between sectors.
    pub seal_interval: Duration,
    /// Pause before retrying a failed or idle step.
    pub recover_interval: Duration,
    /// Pause between polls of on-chain state.
    pub rpc_polling_interval: Duration,
    /// Skip waiting for the proof to land.
    pub ignore_proof_check: bool,
    /// The original's idle rounds before a thread ends a round. Read from the config for
    /// compatibility; it has no effect here (loading a config that sets it warns).
    pub request_task_max_retries: u32,
    /// Run a C1 with a zero seed after PC2 as a check.
    pub verify_after_pc2: bool,
    /// Flag a thread as stuck after this long in one state (besides the automatic rule:
    /// ten times the median of the stage's last 25 proof calls, once three were measured,
    /// and never under ten minutes).
    pub stuck_after: Option<Duration>,
    /// How a WindowPoSt's sector checks are bounded.
    pub wdpost_checks: CheckLimits,
}

/// How a WindowPoSt's sector checks are bounded (`[sealing]` keys
/// `wdpost_check_parallel`, `wdpost_check_timeout`, `wdpost_partition_check_timeout`).
/// The defaults are Curio's for 32GiB sectors (`ParallelCheckLimit`, `SingleCheckTimeout`,
/// `PartitionCheckTimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckLimits {
    /// Sectors checked at once (default 32).
    pub parallel: usize,
    /// How long one sector's check may take before the sector is a fault (default 10 min).
    pub sector: Duration,
    /// How long a job's checks may take in all; sectors not checked by then are faults
    /// (default 20 min).
    pub partition: Duration,
}

impl Default for CheckLimits {
    fn default() -> Self {
        Self {
            parallel: 32,
            sector: Duration::from_secs(10 * 60),
            partition: Duration::from_secs(20 * 60),
        }
    }
}

impl Default for SealingOptions {
    fn default() -> Self {
        Self {
            allowed_miners: None,
            allowed_sizes: None,
            enable_deals: false,
            disable_cc: false,
            max_deals: None,
            min_deal_space: None,
            max_retries: 5,
            seal_interval: Duration::from_secs(30),
            recover_interval: Duration::from_secs(60),
            rpc_polling_interval: Duration::from_secs(180),
            ignore_proof_check: false,
            request_task_max_retries: 3,
            verify_after_pc2: false,
            stuck_after: None,
            wdpost_checks: CheckLimits::default(),
        }
    }
}

impl SealingOptions {
    /// Options for tests and benches: no waiting between anything.
    pub fn immediate() -> Self {
        Self {
            seal_interval: Duration::ZERO,
            recover_interval: Duration::ZERO,
            rpc_polling_interval: Duration::ZERO,
            ..Self::default()
        }
    }
}
