//! Submissions' answers, on-chain states, state reports and store information.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::sector::SectorId;
use crate::wire::go_nullable;

macro_rules! int_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $num:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant = $num),+ }

        impl $name {
            /// The wire integer.
            pub fn as_i64(self) -> i64 { self as i64 }

            /// The value of a wire integer, if it is one.
            pub fn from_i64(value: i64) -> Option<Self> {
                match value { $($num => Some($name::$variant),)+ _ => None }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_i64(self.as_i64())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = i64::deserialize(deserializer)?;
                Self::from_i64(value).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", stringify!($name), " {}"), value))
                })
            }
        }
    };
}

int_enum! {
    /// The manager's answer to a submission.
    SubmitResult {
        /// Not known.
        Unknown = 0,
        /// Accepted.
        Accepted = 1,
        /// Already submitted with the same content.
        DuplicateSubmit = 2,
        /// Already submitted with other content.
        MismatchedSubmission = 3,
        /// Refused.
        Rejected = 4,
        /// The sector's files are missing.
        FilesMissed = 5,
    }
}

int_enum! {
    /// Where a submitted message stands on chain.
    OnChainState {
        /// Not known.
        Unknown = 0,
        /// Waiting to be sent.
        Pending = 1,
        /// Sent, not yet landed.
        Packed = 2,
        /// On chain.
        Landed = 3,
        /// The manager has no record of it.
        NotFound = 4,
        /// Failed; may be resubmitted.
        Failed = 5,
        /// Failed for good.
        PermFailed = 6,
        /// The sector should be aborted.
        ShouldAbort = 7,
    }
}

/// The answer to `SubmitPreCommit` and `SubmitProof`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubmitResp {
    /// The result.
    pub res: SubmitResult,
    /// Why, when not accepted.
    pub desc: Option<String>,
}

/// The answer to `PollPreCommitState` and `PollProofState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PollStateResp {
    /// The state.
    pub state: OnChainState,
    /// Details.
    pub desc: Option<String>,
}

/// Which worker thread a report comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerIdentifier {
    /// The worker's instance name.
    pub instance: String,
    /// The thread's location.
    pub location: String,
}

/// A state change in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateChange {
    /// The state before.
    pub prev: String,
    /// The state after.
    pub next: String,
    /// The event, or `None`.
    pub event: String,
}

/// A failure in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportFailure {
    /// `Temporary`, `Permanent`, `Critical` or `Abort`.
    pub level: String,
    /// The message.
    pub desc: String,
}

impl From<&Failure> for ReportFailure {
    fn from(failure: &Failure) -> Self {
        Self {
            level: failure.level.report_name().to_owned(),
            desc: failure.message.clone(),
        }
    }
}

/// The body of `ReportState`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportStateReq {
    /// Who reports.
    pub worker: WorkerIdentifier,
    /// What changed.
    pub state_change: StateChange,
    /// What failed, if anything.
    pub failure: Option<ReportFailure>,
}

/// The answer to `ReportState`: whether the manager has already finalized the sector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorStateResp {
    /// The sector.
    #[serde(rename = "Id")]
    pub id: SectorId,
    /// Whether the manager finalized or aborted it; the worker then drops it.
    #[serde(rename = "Finalized")]
    pub finalized: bool,
    /// Why it was aborted, if it was.
    #[serde(rename = "AbortReason")]
    pub abort_reason: Option<String>,
}

/// A persistent store the manager knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoreBasicInfo {
    /// The store's instance name.
    pub name: String,
    /// Its path.
    pub path: String,
    /// Whether the store takes only sectors it was chosen for (informational).
    #[serde(default)]
    pub strict: bool,
    /// Whether the store is read-only (informational).
    #[serde(default)]
    pub read_only: bool,
    /// Its weight in the manager's choice of a store (informational).
    #[serde(default)]
    pub weight: u64,
    /// Free-form metadata (Go `map[string]string`: `null` for a store configured without
    /// any, and written so when empty, as the Go manager does).
    #[serde(
        default,
        deserialize_with = "go_nullable::deserialize",
        serialize_with = "empty_map_as_null"
    )]
    pub meta: BTreeMap<String, String>,
}

impl StoreBasicInfo {
    /// A store named `name` at the path `name`, with no metadata (what the mock answers).
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            path: name.clone(),
            name,
            strict: false,
            read_only: false,
            weight: 1,
            meta: BTreeMap::new(),
        }
    }
}

fn empty_map_as_null<S: serde::Serializer>(
    map: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if map.is_empty() {
        serializer.serialize_none()
    } else {
        map.serialize(serializer)
    }
}
