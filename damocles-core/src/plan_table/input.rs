//! What a plan's steps consume and produce.

/// What a step consumes or produces: a field of the sector record, or files of the
/// sector on the worker's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Input {
    /// The allocated sector (`sector`).
    Sector,
    /// The pieces written into the staged file (`pieces`).
    Pieces,
    /// The ticket (`ticket`).
    Ticket,
    /// PC1's output (`pc1_output`).
    PC1Output,
    /// PC2's commitments (`pc2_output`).
    PC2Output,
    /// The store the files were persisted to (`persist_instance`).
    PersistInstance,
    /// The interactive seed (`seed`).
    Seed,
    /// C1's output (`c1_output`).
    C1Output,
    /// C2's proof (`proof`).
    Proof,
    /// File: the staged (unsealed) file the pieces were written into.
    StagedFile,
    /// Files: PC1's labels and tree D in the cache directory.
    Labels,
    /// Files: the encoded replica, with `p_aux`, `t_aux`, tree C and tree R in the cache.
    Replica,
    /// Snap-up: the sealed sector being upgraded, its comm_r and store (`sector_key`).
    SectorKey,
    /// Snap-up: the encode's commitments (`snap_encode_output`).
    SnapEncodeOutput,
    /// Snap-up: the update proof (`update_proof`).
    UpdateProof,
    /// Files, snap-up: the updated replica, with `p_aux`, `t_aux` and tree R in
    /// `update-cache/`.
    UpdatedReplica,
}

impl Input {
    /// How a refusal names the input.
    pub fn describe(self) -> &'static str {
        match self {
            Input::Sector => "the allocated sector",
            Input::Pieces => "the added pieces",
            Input::Ticket => "the ticket",
            Input::PC1Output => "PC1's output",
            Input::PC2Output => "PC2's commitments",
            Input::PersistInstance => "the store the files were persisted to",
            Input::Seed => "the seed",
            Input::C1Output => "C1's output",
            Input::Proof => "C2's proof",
            Input::StagedFile => "the staged file",
            Input::Labels => "PC1's labels and tree D",
            Input::Replica => "the encoded replica and its trees",
            Input::SectorKey => "the sector being upgraded",
            Input::SnapEncodeOutput => "the snap encode's commitments",
            Input::UpdateProof => "the update proof",
            Input::UpdatedReplica => "the updated replica and its trees",
        }
    }
}
