//! Sector identity: miner actor ids, sector numbers, [`SectorId`], seal proof types and
//! sector sizes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A miner actor id (`t0{id}` / `f0{id}` addresses without their prefix).
pub type ActorId = u64;

/// A sector number, unique per miner.
pub type SectorNumber = u64;

/// A sector: the miner that owns it and its number.
///
/// Displays as the original's path name `s-t0{miner}-{number}` (e.g. `s-t010000-2`), which
/// is also the name of the sector's files, and parses back from it. Serialises in the Go
/// wire shape `{"Miner": n, "Number": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SectorId {
    /// The miner actor id.
    #[serde(rename = "Miner")]
    pub miner: ActorId,
    /// The sector number.
    #[serde(rename = "Number")]
    pub number: SectorNumber,
}

impl SectorId {
    /// A sector id from its parts.
    pub fn new(miner: ActorId, number: SectorNumber) -> Self {
        Self { miner, number }
    }
}

impl fmt::Display for SectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s-t0{}-{}", self.miner, self.number)
    }
}

/// A string that is not `s-t0{miner}-{number}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sector id {input:?}: expected s-t0<miner>-<number>, e.g. s-t010000-2")]
pub struct ParseSectorIdError {
    /// What was given.
    pub input: String,
}

impl FromStr for SectorId {
    type Err = ParseSectorIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSectorIdError {
            input: s.to_owned(),
        };
        let rest = s.strip_prefix("s-t0").ok_or_else(err)?;
        let (miner, number) = rest.split_once('-').ok_or_else(err)?;
        let parse = |part: &str| -> Result<u64, ParseSectorIdError> {
            // Reject signs, spaces and leading zeros so that parse(display(x)) == x both ways.
            let canonical = part == "0" || (!part.is_empty() && !part.starts_with('0'));
            if !canonical || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        Ok(Self::new(parse(miner)?, parse(number)?))
    }
}

/// A sector size in bytes. Displays and parses as `2KiB`, `8MiB`, `512MiB`, `32GiB`, `64GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SectorSize(pub u64);

impl SectorSize {
    /// 2 KiB, the size tests seal.
    pub const KIB_2: Self = Self(2 << 10);
    /// 8 MiB.
    pub const MIB_8: Self = Self(8 << 20);
    /// 512 MiB.
    pub const MIB_512: Self = Self(512 << 20);
    /// 32 GiB, a production size.
    pub const GIB_32: Self = Self(32 << 30);
    /// 64 GiB, a production size.
    pub const GIB_64: Self = Self(64 << 30);

    /// The bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

const SIZE_UNITS: [(&str, u64); 5] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

impl fmt::Display for SectorSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in SIZE_UNITS {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A string that is not a size such as `2KiB` or `32GiB`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: expected a number with a unit of B, KiB, MiB, GiB or TiB, e.g. 2KiB or 32GiB")]
pub struct ParseSizeError {
    /// What was given.
    pub input: String,
}

impl FromStr for SectorSize {
    type Err = ParseSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSizeError {
            input: s.to_owned(),
        };
        let trimmed = s.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let value: u64 = digits.parse().map_err(|_| err())?;
        let unit = unit.trim();
        let scale = SIZE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, scale)| *scale)
            .ok_or_else(err)?;
        value.checked_mul(scale).map(Self).ok_or_else(err)
    }
}

/// A Filecoin `RegisteredSealProof`, serialised as its integer (0–19) as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs, non_camel_case_types)] // the variant names are the upstream names
#[non_exhaustive]
pub enum SealProof {
    StackedDrg2KiBV1 = 0,
    StackedDrg8MiBV1 = 1,
    StackedDrg512MiBV1 = 2,
    StackedDrg32GiBV1 = 3,
    StackedDrg64GiBV1 = 4,
    StackedDrg2KiBV1_1 = 5,
    StackedDrg8MiBV1_1 = 6,
    StackedDrg512MiBV1_1 = 7,
    StackedDrg32GiBV1_1 = 8,
    StackedDrg64GiBV1_1 = 9,
    StackedDrg2KiBV1_1_Feat_SyntheticPoRep = 10,
    StackedDrg8MiBV1_1_Feat_SyntheticPoRep = 11,
    StackedDrg512MiBV1_1_Feat_SyntheticPoRep = 12,
    StackedDrg32GiBV1_1_Feat_SyntheticPoRep = 13,
    StackedDrg64GiBV1_1_Feat_SyntheticPoRep = 14,
    StackedDrg2KiBV1_2_Feat_NonInteractivePoRep = 15,
    StackedDrg8MiBV1_2_Feat_NonInteractivePoRep = 16,
    StackedDrg512MiBV1_2_Feat_NonInteractivePoRep = 17,
    StackedDrg32GiBV1_2_Feat_NonInteractivePoRep = 18,
    StackedDrg64GiBV1_2_Feat_NonInteractivePoRep = 19,
}

/// The family of a seal proof type: which protocol version and feature it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SealProofFamily {
    /// API version 1.0.
    V1,
    /// API version 1.1, the interactive PoRep in use.
    V1_1,
    /// API version 1.1 with synthetic PoRep.
    SyntheticPoRep,
    /// API version 1.2 non-interactive PoRep.
    NonInteractivePoRep,
}

const SIZES: [SectorSize; 5] = [
    SectorSize::KIB_2,
    SectorSize::MIB_8,
    SectorSize::MIB_512,
    SectorSize::GIB_32,
    SectorSize::GIB_64,
];

impl SealProof {
    /// Every proof type, in integer order.
    pub const ALL: [SealProof; 20] = {
        use SealProof::*;
        [
            StackedDrg2KiBV1,
            StackedDrg8MiBV1,
            StackedDrg512MiBV1,
            StackedDrg32GiBV1,
            StackedDrg64GiBV1,
            StackedDrg2KiBV1_1,
            StackedDrg8MiBV1_1,
            StackedDrg512MiBV1_1,
            StackedDrg32GiBV1_1,
            StackedDrg64GiBV1_1,
            StackedDrg2KiBV1_1_Feat_SyntheticPoRep,
            StackedDrg8MiBV1_1_Feat_SyntheticPoRep,
            StackedDrg512MiBV1_1_Feat_SyntheticPoRep,
            StackedDrg32GiBV1_1_Feat_SyntheticPoRep,
            StackedDrg64GiBV1_1_Feat_SyntheticPoRep,
            StackedDrg2KiBV1_2_Feat_NonInteractivePoRep,
            StackedDrg8MiBV1_2_Feat_NonInteractivePoRep,
            StackedDrg512MiBV1_2_Feat_NonInteractivePoRep,
            StackedDrg32GiBV1_2_Feat_NonInteractivePoRep,
            StackedDrg64GiBV1_2_Feat_NonInteractivePoRep,
        ]
    };

    /// The wire integer.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// The proof type of a wire integer, if it is one.
    pub fn from_i64(value: i64) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The size of the sectors this proof type seals.
    pub fn sector_size(self) -> SectorSize {
        SIZES[(self as usize) % 5]
    }

    /// The protocol family.
    pub fn family(self) -> SealProofFamily {
        match (self as usize) / 5 {
            0 => SealProofFamily::V1,
            1 => SealProofFamily::V1_1,
            2 => SealProofFamily::SyntheticPoRep,
            _ => SealProofFamily::NonInteractivePoRep,
        }
    }

    /// The proof type of a family and size, if the size is one Filecoin seals.
    pub fn of(family: SealProofFamily, size: SectorSize) -> Option<Self> {
        let column = SIZES.iter().position(|s| *s == size)?;
        let row = match family {
            SealProofFamily::V1 => 0,
            SealProofFamily::V1_1 => 1,
            SealProofFamily::SyntheticPoRep => 2,
            SealProofFamily::NonInteractivePoRep => 3,
        };
        Self::ALL.get(row * 5 + column).copied()
    }

    /// The proof types a worker allowed to seal `size` accepts, as the original expands
    /// `allowed_sizes`: V1_1, V1_1 with synthetic PoRep and V1_2 non-interactive PoRep.
    pub fn allowed_for_size(size: SectorSize) -> Vec<Self> {
        [
            SealProofFamily::V1_1,
            SealProofFamily::SyntheticPoRep,
            SealProofFamily::NonInteractivePoRep,
        ]
        .into_iter()
        .filter_map(|family| Self::of(family, size))
        .collect()
    }

    /// Whether sealing with this type needs the synthetic PoRep step after PC2.
    pub fn needs_synthetic_porep(self) -> bool {
        self.family() == SealProofFamily::SyntheticPoRep
    }
}

impl fmt::Display for SealProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A Filecoin `RegisteredUpdateProof` (SnapDeals), serialised as its integer (0–4) as in
/// go-state-types' `abi`. Every seal proof type of a size upgrades with the one update
/// proof of that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // the variant names are the upstream names
#[non_exhaustive]
pub enum UpdateProof {
    StackedDrg2KiBV1 = 0,
    StackedDrg8MiBV1 = 1,
    StackedDrg512MiBV1 = 2,
    StackedDrg32GiBV1 = 3,
    StackedDrg64GiBV1 = 4,
}

impl UpdateProof {
    /// Every update proof type, in integer order (one per sector size).
    pub const ALL: [UpdateProof; 5] = [
        UpdateProof::StackedDrg2KiBV1,
        UpdateProof::StackedDrg8MiBV1,
        UpdateProof::StackedDrg512MiBV1,
        UpdateProof::StackedDrg32GiBV1,
        UpdateProof::StackedDrg64GiBV1,
    ];

    /// The wire integer.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// The update proof type of a wire integer, if it is one.
    pub fn from_i64(value: i64) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The size of the sectors it upgrades.
    pub fn sector_size(self) -> SectorSize {
        SIZES[self as usize]
    }

    /// The update proof type of a size, if the size is one Filecoin seals.
    pub fn of(size: SectorSize) -> Option<Self> {
        SIZES
            .iter()
            .position(|s| *s == size)
            .and_then(|i| Self::ALL.get(i).copied())
    }
}

impl SealProof {
    /// The update proof type that upgrades sectors sealed with this type (by size).
    pub fn update_proof(self) -> UpdateProof {
        UpdateProof::ALL[(self as usize) % 5]
    }
}

impl fmt::Display for UpdateProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Serialize for UpdateProof {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.as_i64())
    }
}

impl<'de> Deserialize<'de> for UpdateProof {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        Self::from_i64(value).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown RegisteredUpdateProof {value}: expected 0 to 4"
            ))
        })
    }
}

/// A Filecoin `RegisteredPoStProof`, named as `filecoin-proofs-api` names it: the name is
/// what the manager's WindowPoSt calls carry (`"StackedDrgWindow2KiBV1_2"`), the integer
/// ([`PoStProof::as_i64`]) what go-state-types' `abi` stores. go-state-types calls 10–14
/// `StackedDrgWindow…V1_1`; filecoin-proofs-api calls the same proofs `…V1_2` (the
/// grindability fix) and has no `V1_1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // the variant names are the upstream names
#[non_exhaustive]
pub enum PoStProof {
    StackedDrgWinning2KiBV1 = 0,
    StackedDrgWinning8MiBV1 = 1,
    StackedDrgWinning512MiBV1 = 2,
    StackedDrgWinning32GiBV1 = 3,
    StackedDrgWinning64GiBV1 = 4,
    StackedDrgWindow2KiBV1 = 5,
    StackedDrgWindow8MiBV1 = 6,
    StackedDrgWindow512MiBV1 = 7,
    StackedDrgWindow32GiBV1 = 8,
    StackedDrgWindow64GiBV1 = 9,
    StackedDrgWindow2KiBV1_2 = 10,
    StackedDrgWindow8MiBV1_2 = 11,
    StackedDrgWindow512MiBV1_2 = 12,
    StackedDrgWindow32GiBV1_2 = 13,
    StackedDrgWindow64GiBV1_2 = 14,
}

impl PoStProof {
    /// Every PoSt proof type, in integer order.
    pub const ALL: [PoStProof; 15] = [
        PoStProof::StackedDrgWinning2KiBV1,
        PoStProof::StackedDrgWinning8MiBV1,
        PoStProof::StackedDrgWinning512MiBV1,
        PoStProof::StackedDrgWinning32GiBV1,
        PoStProof::StackedDrgWinning64GiBV1,
        PoStProof::StackedDrgWindow2KiBV1,
        PoStProof::StackedDrgWindow8MiBV1,
        PoStProof::StackedDrgWindow512MiBV1,
        PoStProof::StackedDrgWindow32GiBV1,
        PoStProof::StackedDrgWindow64GiBV1,
        PoStProof::StackedDrgWindow2KiBV1_2,
        PoStProof::StackedDrgWindow8MiBV1_2,
        PoStProof::StackedDrgWindow512MiBV1_2,
        PoStProof::StackedDrgWindow32GiBV1_2,
        PoStProof::StackedDrgWindow64GiBV1_2,
    ];

    /// The `abi.RegisteredPoStProof` integer.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// The proof type of an integer, if it is one.
    pub fn from_i64(value: i64) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The proof type of an upstream name, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.to_string() == name)
    }

    /// The size of the sectors it proves.
    pub fn sector_size(self) -> SectorSize {
        SIZES[(self as usize) % 5]
    }

    /// Whether it is a WindowPoSt type (not a WinningPoSt one).
    pub fn is_window(self) -> bool {
        self as usize >= 5
    }

    /// The WindowPoSt type sectors of `size` are proven with today (`…V1_2`).
    pub fn window_for(size: SectorSize) -> Option<Self> {
        SIZES
            .iter()
            .position(|s| *s == size)
            .and_then(|i| Self::ALL.get(10 + i).copied())
    }
}

impl fmt::Display for PoStProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// On the wire as its name, as the original's manager sends it.
impl Serialize for PoStProof {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PoStProof {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown RegisteredPoStProof {name:?}: expected a name like StackedDrgWindow2KiBV1_2"
            ))
        })
    }
}

impl Serialize for SealProof {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.as_i64())
    }
}

impl<'de> Deserialize<'de> for SealProof {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        Self::from_i64(value).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown RegisteredSealProof {value}: expected 0 to 19"
            ))
        })
    }
}

#[cfg(test)]
mod tests;
