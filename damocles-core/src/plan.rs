//! Plans: the kinds of work a sealing thread does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a sealing thread does with each job. The default is [`Plan::Sealer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// Seal new committed-capacity or deal sectors (the main pipeline).
    #[default]
    Sealer,
    /// Upgrade a CC sector with deals (SnapDeals).
    Snapup,
    /// Re-seal a lost sector from its on-chain data.
    Rebuild,
    /// Extract a piece from a sealed sector.
    Unseal,
    /// Generate window PoSt for the manager.
    Wdpost,
}

impl Plan {
    /// Every plan.
    pub const ALL: [Plan; 5] = [
        Plan::Sealer,
        Plan::Snapup,
        Plan::Rebuild,
        Plan::Unseal,
        Plan::Wdpost,
    ];

    /// The configuration name (`sealer`, `snapup`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Sealer => "sealer",
            Plan::Snapup => "snapup",
            Plan::Rebuild => "rebuild",
            Plan::Unseal => "unseal",
            Plan::Wdpost => "wdpost",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan name that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan {input:?}: expected one of sealer, snapup, rebuild, unseal, wdpost")]
pub struct ParsePlanError {
    /// What was given.
    pub input: String,
}

impl FromStr for Plan {
    type Err = ParsePlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|plan| plan.as_str() == s)
            .ok_or_else(|| ParsePlanError {
                input: s.to_owned(),
            })
    }
}
