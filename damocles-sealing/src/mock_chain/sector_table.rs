//! The chain's sectors by id, remembering which ones a section may have changed, so that
//! shared records write those rows only (not every sector on every change).

use std::collections::{BTreeMap, BTreeSet};

use damocles_core::SectorId;

use super::ChainSector;

/// Sectors by id. Read through `Deref` (a `BTreeMap`); every way to change one
/// ([`SectorTable::get_mut`], [`SectorTable::insert`], [`SectorTable::values_mut`])
/// marks it changed, so a change cannot be left unwritten by forgetting to mark it.
#[derive(Debug, Default)]
pub(super) struct SectorTable {
    sectors: BTreeMap<SectorId, ChainSector>,
    changed: BTreeSet<SectorId>,
}

impl SectorTable {
    /// One sector to change.
    pub(super) fn get_mut(&mut self, id: &SectorId) -> Option<&mut ChainSector> {
        let sector = self.sectors.get_mut(id)?;
        self.changed.insert(*id);
        Some(sector)
    }

    /// Adds (or replaces) a sector.
    pub(super) fn insert(&mut self, sector: ChainSector) {
        self.changed.insert(sector.id);
        self.sectors.insert(sector.id, sector);
    }

    /// Every sector to change (all are marked changed).
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut ChainSector> {
        self.changed.extend(self.sectors.keys().copied());
        self.sectors.values_mut()
    }

    /// A sector as the records hold it: not a change of this section.
    pub(super) fn load(&mut self, sector: ChainSector) {
        self.changed.remove(&sector.id);
        self.sectors.insert(sector.id, sector);
    }

    /// A sector the records no longer hold.
    pub(super) fn unload(&mut self, id: &SectorId) {
        self.changed.remove(id);
        self.sectors.remove(id);
    }

    /// Replaces every sector by `sectors`, as the records hold them.
    pub(super) fn reload(&mut self, sectors: impl IntoIterator<Item = ChainSector>) {
        self.changed.clear();
        self.sectors = sectors.into_iter().map(|s| (s.id, s)).collect();
    }

    /// Forgets which sectors changed (the file keeps them all at once).
    pub(super) fn forget_changes(&mut self) {
        self.changed.clear();
    }

    /// The sectors changed since [`SectorTable::take_changed`] was last called (or the
    /// records were loaded), forgetting them.
    pub(super) fn take_changed(&mut self) -> Vec<ChainSector> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|id| self.sectors.get(&id).cloned())
            .collect()
    }
}

impl std::ops::Deref for SectorTable {
    type Target = BTreeMap<SectorId, ChainSector>;
    fn deref(&self) -> &Self::Target {
        &self.sectors
    }
}
