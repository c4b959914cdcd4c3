//! The mock chain as the manager a worker calls: every call of the sealer API.

use super::*;

#[async_trait]
impl SectorManager for MockChain {
    async fn allocate_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<AllocatedSector>, ManagerError> {
        self.check_fault(ChainCall::AllocateSector)?;
        let answer = self.allocate_now(&spec);
        let delay = self.settings().allocation_answer_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        answer
    }

    async fn acquire_deals(
        &self,
        id: SectorId,
        spec: AcquireDealsSpec,
    ) -> Result<Option<Vec<SectorPiece>>, ManagerError> {
        self.check_fault(ChainCall::AcquireDeals)?;
        // As the manager does: pieces assigned before are the sector's.
        let assigned = self.with_sector(id, |sector, _| sector.deals.clone())?;
        if !assigned.is_empty() {
            return Ok(Some(assigned));
        }
        let Some(offer) = self.settings().offer.clone() else {
            return Ok(None);
        };
        // Deterministic shares, by sector number: sector n gets deals when n·share crosses
        // an integer (0.5: every even-numbered sector), however often it asks.
        let n = id.number as f64;
        if (n * offer.share).floor() <= ((n - 1.0) * offer.share).floor() {
            return Ok(None);
        }
        let Some(deals) = self.make_deals(&offer.dir, &spec).await? else {
            return Ok(None);
        };
        self.with_sector(id, |sector, _| {
            if sector.deals.is_empty() {
                sector.deals = deals;
            }
            Some(sector.deals.clone())
        })
    }

    async fn assign_ticket(&self, id: SectorId) -> Result<Ticket, ManagerError> {
        self.check_fault(ChainCall::AssignTicket)?;
        self.with_sector(id, |sector, _| {
            *sector.ticket.get_or_insert(Ticket {
                ticket: randomness(),
                epoch: 100,
            })
        })
    }

    async fn submit_pre_commit(
        &self,
        sector: AllocatedSector,
        info: PreCommitOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.check_fault(ChainCall::SubmitPreCommit)?;
        let deals = self.with_sector(sector.id, |entry, _| entry.deals.clone())?;
        let proof = sector.proof_type;
        let expected_comm_d = tokio::task::spawn_blocking(move || deals_comm_d(proof, &deals))
            .await
            .map_err(|e| ManagerError::remote(1, format!("comm_d check panicked: {e}")))?;
        self.with_sector(sector.id, |entry, counters| match &entry.pre_commit {
            Some(existing) if !reset && *existing == info => {
                counters.pre_commits_duplicate += 1;
                submit_answer(SubmitResult::DuplicateSubmit, None)
            }
            Some(_) if !reset => submit_answer(
                SubmitResult::MismatchedSubmission,
                Some("a different pre-commit was already submitted".into()),
            ),
            _ if entry.ticket.is_some_and(|t| t != info.ticket) => submit_answer(
                SubmitResult::Rejected,
                Some("the ticket is not the one assigned".into()),
            ),
            _ if expected_comm_d.as_ref().is_ok_and(|d| *d != info.comm_d) => submit_answer(
                SubmitResult::Rejected,
                Some(format!(
                    "comm_d {} is not that of the sector's pieces",
                    hex::encode(info.comm_d)
                )),
            ),
            _ if expected_comm_d.is_err() => submit_answer(
                SubmitResult::Rejected,
                Some(format!(
                    "the comm_d of the sector's pieces cannot be computed: {}",
                    expected_comm_d
                        .as_ref()
                        .err()
                        .map_or("", |e| e.message.as_str())
                )),
            ),
            _ => {
                entry.pre_commit = Some(info);
                entry.state = ChainSectorState::PreCommitted;
                counters.pre_commits_accepted += 1;
                submit_answer(SubmitResult::Accepted, None)
            }
        })
    }

    async fn poll_pre_commit_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.check_fault(ChainCall::PollPreCommitState)?;
        self.with_sector(id, |sector, _| landed_if(sector.pre_commit.is_some()))
    }

    async fn store_reserve_space(
        &self,
        id: SectorId,
        _size: u64,
        candidates: Vec<String>,
    ) -> Result<Option<StoreBasicInfo>, ManagerError> {
        self.check_fault(ChainCall::StoreReserveSpace)?;
        self.with_sector(id, |_, _| {
            candidates.into_iter().next().map(StoreBasicInfo::named)
        })
    }

    async fn store_basic_info(
        &self,
        instance: String,
    ) -> Result<Option<StoreBasicInfo>, ManagerError> {
        self.check_fault(ChainCall::StoreBasicInfo)?;
        Ok(Some(StoreBasicInfo::named(instance)))
    }

    async fn submit_persisted(
        &self,
        id: SectorId,
        instance: String,
        is_upgrade: bool,
    ) -> Result<bool, ManagerError> {
        self.check_fault(ChainCall::SubmitPersisted)?;
        if self.rebuilding(id) {
            return self.check_rebuilt(id, instance, is_upgrade).await;
        }
        self.with_sector(id, |sector, _| {
            sector.persisted = Some(instance);
            true
        })
    }

    async fn wait_seed(
        &self,
        id: SectorId,
        _proof_type: SealProof,
    ) -> Result<WaitSeedResp, ManagerError> {
        self.check_fault(ChainCall::WaitSeed)?;
        self.with_sector(id, |sector, _| {
            if sector.pre_commit.is_none() {
                return WaitSeedResp {
                    should_wait: false,
                    delay: 0,
                    seed: None,
                };
            }
            let seed = *sector.seed.get_or_insert(Seed {
                seed: randomness(),
                epoch: 200,
            });
            WaitSeedResp {
                should_wait: false,
                delay: 0,
                seed: Some(seed),
            }
        })
    }

    async fn submit_proof(
        &self,
        id: SectorId,
        info: ProofOnChainInfo,
        reset: bool,
    ) -> Result<SubmitResp, ManagerError> {
        self.check_fault(ChainCall::SubmitProof)?;
        let entry = self.with_sector(id, |sector, _| sector.clone())?;
        let already_proven = entry.proof.is_some() && !reset;
        if already_proven && entry.proof.as_ref() == Some(&info.proof) {
            return self.with_sector(id, |_, counters| {
                counters.proofs_duplicate += 1;
                submit_answer(SubmitResult::DuplicateSubmit, None)
            });
        }
        let (Some(pre_commit), Some(seed)) = (entry.pre_commit.clone(), entry.seed) else {
            return Ok(submit_answer(
                SubmitResult::Rejected,
                Some("no pre-commit or seed for this sector".into()),
            ));
        };
        let sealed = SealedSector {
            id: SealIdentity {
                proof: entry.proof_type,
                sector: id,
            },
            ticket: pre_commit.ticket.ticket,
            seed: seed.seed,
            commitments: PreCommitOutput {
                comm_r: pre_commit.comm_r,
                comm_d: pre_commit.comm_d,
            },
            proof: info.proof.clone(),
        };
        // Verification is proof work: keep it off the async executor.
        let verdict = tokio::task::spawn_blocking(move || proofs::verify(&sealed))
            .await
            .map_err(|e| ManagerError::remote(1, format!("verifier panicked: {e}")))?;
        self.with_sector(id, |sector, counters| match verdict {
            // C2 is randomised: a sector proven again (a resume at C1Done or before) sends
            // another proof, as valid as the first, which stays on chain.
            Ok(true) if already_proven => {
                counters.proofs_duplicate += 1;
                submit_answer(SubmitResult::DuplicateSubmit, None)
            }
            Ok(_) | Err(_) if already_proven => submit_answer(
                SubmitResult::MismatchedSubmission,
                Some("a different, invalid proof of a proven sector".into()),
            ),
            Ok(true) => {
                sector.proof = Some(info.proof);
                sector.state = ChainSectorState::Proven;
                counters.proofs_accepted += 1;
                submit_answer(SubmitResult::Accepted, None)
            }
            Ok(false) => {
                counters.proofs_rejected += 1;
                submit_answer(SubmitResult::Rejected, Some("invalid proof".into()))
            }
            Err(failure) => {
                counters.proofs_rejected += 1;
                submit_answer(
                    SubmitResult::Rejected,
                    Some(format!("proof could not be verified: {failure}")),
                )
            }
        })
    }

    async fn poll_proof_state(&self, id: SectorId) -> Result<PollStateResp, ManagerError> {
        self.check_fault(ChainCall::PollProofState)?;
        self.with_sector(id, |sector, _| landed_if(sector.proof.is_some()))
    }

    async fn report_state(
        &self,
        id: SectorId,
        req: ReportStateReq,
    ) -> Result<SectorStateResp, ManagerError> {
        self.check_fault(ChainCall::ReportState)?;
        let delay = self.settings().report_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let job_held = self.note_job_report(id, req.failure.as_ref())?;
        self.with_sector(id, |sector, _| {
            sector.reported_state = Some(req.state_change.next);
            let (finalized, abort_reason) = match &sector.state {
                // The sector is on chain; the job on its files goes on.
                _ if job_held => (false, String::new()),
                ChainSectorState::Finished | ChainSectorState::Upgraded => (true, String::new()),
                ChainSectorState::Aborted(reason) => (true, reason.clone()),
                _ => (false, String::new()),
            };
            SectorStateResp {
                id,
                finalized,
                abort_reason: Some(abort_reason),
            }
        })
    }

    async fn report_finalized(&self, id: SectorId) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::ReportFinalized)?;
        self.finish_job(id)?;
        self.with_sector(id, |sector, _| {
            sector.state = match &sector.state {
                // Its snap-up thread is done once the chain holds the update; a late report
                // of the sealer thread that sealed it changes nothing.
                ChainSectorState::Upgrading if has_accepted_update(sector) => {
                    ChainSectorState::Upgraded
                }
                state @ (ChainSectorState::Upgrading | ChainSectorState::Upgraded) => state.clone(),
                _ => ChainSectorState::Finished,
            };
        })
    }

    async fn report_aborted(&self, id: SectorId, reason: String) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::ReportAborted)?;
        if self.job_held(id) {
            self.fail_job(id, reason)?;
            return Ok(());
        }
        let dir = self.piece_dir();
        self.with_sector(id, |sector, _| match &sector.state {
            // What the chain holds stays: a finished or upgraded sector, an accepted update.
            ChainSectorState::Finished | ChainSectorState::Upgraded => {
                tracing::info!("mock chain: {id} is on chain; its abort ({reason}) is ignored");
            }
            ChainSectorState::Upgrading if has_accepted_update(sector) => {
                sector.state = ChainSectorState::Upgraded;
            }
            ChainSectorState::Upgrading => {
                // A dropped snap-up leaves the CC sector as it was, free to upgrade again;
                // the pieces made for it go.
                tracing::info!("mock chain: snap-up of {id} aborted: {reason}");
                sector.state = ChainSectorState::Finished;
                if let (Some(upgrade), Some(dir)) = (sector.upgrade.take(), &dir) {
                    for deal in upgrade.deals {
                        let _ = std::fs::remove_file(dir.join(&deal.piece.cid.text));
                    }
                }
            }
            _ => sector.state = ChainSectorState::Aborted(reason),
        })
    }

    async fn allocate_snapup_sector(
        &self,
        spec: AllocateSnapUpSpec,
    ) -> Result<Option<AllocatedSnapUpSector>, ManagerError> {
        self.check_fault(ChainCall::AllocateSnapUpSector)?;
        if !self.serves(&spec.sector) {
            return Ok(None);
        }
        let Some(dir) = self.piece_dir() else {
            return Ok(None);
        };
        // Reserved first (Upgrading), so that two threads never take one sector; a
        // reservation without its deals (the mock stopped meanwhile) is released when the
        // records are read again.
        let taken = {
            let mut state = self.lock();
            let ChainState { sectors, jobs, .. } = &mut *state;
            // A sector whose files are being rebuilt has no sector key to give.
            let rebuilding: Vec<SectorId> = jobs
                .iter()
                .filter(|j| j.state.is_open())
                .map(|j| j.sector)
                .collect();
            let candidate = sectors.values().find_map(|s| {
                match (&s.state, &s.pre_commit, &s.persisted, &s.upgrade) {
                    (ChainSectorState::Finished, Some(pre_commit), Some(store), None)
                        if s.deals.is_empty() && !rebuilding.contains(&s.id) =>
                    {
                        Some((s.id, s.proof_type, pre_commit.comm_r, store.clone()))
                    }
                    _ => None,
                }
            });
            if let Some(sector) = candidate.as_ref().and_then(|c| sectors.get_mut(&c.0)) {
                sector.state = ChainSectorState::Upgrading;
            }
            if candidate.is_some() {
                state.save();
            }
            state.commit()?;
            candidate
        };
        let Some((id, proof_type, comm_r, store)) = taken else {
            return Ok(None);
        };
        let deals = match self.make_deals(&dir, &spec.deals).await {
            Ok(Some(deals)) => deals,
            outcome => {
                self.with_sector(id, |s, _| s.state = ChainSectorState::Finished)?;
                return outcome.map(|_| None);
            }
        };
        self.with_sector(id, |s, _| {
            s.upgrade = Some(ChainUpgrade {
                deals: deals.clone(),
                accepted: None,
            });
        })?;
        Ok(Some(AllocatedSnapUpSector {
            sector: AllocatedSector { id, proof_type },
            pieces: deals,
            public: SectorPublicInfo {
                comm_r,
                sealed_cid: None,
                activation: 0,
                expiration: 0,
            },
            private: SectorPrivateInfo {
                access_instance: store,
            },
        }))
    }

    async fn submit_snapup_proof(
        &self,
        id: SectorId,
        info: SnapUpOnChainInfo,
    ) -> Result<SubmitResp, ManagerError> {
        self.check_fault(ChainCall::SubmitSnapUpProof)?;
        let entry = self.with_sector(id, |sector, _| sector.clone())?;
        let (Some(upgrade), Some(pre_commit)) = (entry.upgrade, entry.pre_commit) else {
            return Ok(submit_answer(
                SubmitResult::Rejected,
                Some("the sector is not being upgraded".into()),
            ));
        };
        // Every piece it was given, pledge pieces included, in order (the Go manager's
        // check in modules/sealer/sealer.go).
        let cids: Vec<&Cid> = upgrade.deals.iter().map(|d| &d.piece.cid).collect();
        if info.pieces.iter().collect::<Vec<_>>() != cids {
            return Ok(submit_answer(
                SubmitResult::Rejected,
                Some("the pieces are not the ones the sector was given".into()),
            ));
        }
        let proof = entry.proof_type;
        let candidate = UpgradedSector {
            proof_type: proof.update_proof(),
            comm_r_old: pre_commit.comm_r,
            comm_r_new: info.comm_r,
            comm_d_new: info.comm_d,
            proof: info.proof.clone(),
        };
        let verdict = verify_update_submission(proof, upgrade.deals.clone(), candidate).await?;
        self.with_sector(id, |sector, counters| {
            // Looked at again: the snap-up may have been dropped, or another submission
            // accepted, while this one was verified.
            if sector.upgrade.as_ref().map(|u| &u.deals) != Some(&upgrade.deals) {
                return submit_answer(
                    SubmitResult::Rejected,
                    Some("the sector is no longer being upgraded with these pieces".into()),
                );
            }
            let already = has_accepted_update(sector);
            match verdict {
                // SNARKs are randomised: a second valid proof of an upgraded sector is a
                // duplicate; the first stays.
                UpdateVerdict::Valid if already => {
                    counters.upgrades_duplicate += 1;
                    submit_answer(SubmitResult::DuplicateSubmit, None)
                }
                UpdateVerdict::Valid => {
                    if let Some(upgrade) = &mut sector.upgrade {
                        upgrade.accepted = Some(AcceptedUpdate {
                            proof_type: proof.update_proof(),
                            comm_r_new: info.comm_r,
                            comm_d_new: info.comm_d,
                            proof: info.proof,
                            store: info.access_instance,
                        });
                    }
                    counters.upgrades_accepted += 1;
                    submit_answer(SubmitResult::Accepted, None)
                }
                UpdateVerdict::Invalid => {
                    counters.upgrades_rejected += 1;
                    submit_answer(SubmitResult::Rejected, Some("invalid update proof".into()))
                }
                UpdateVerdict::Refused(why) => {
                    counters.upgrades_rejected += 1;
                    submit_answer(SubmitResult::Rejected, Some(why))
                }
            }
        })
    }

    async fn allocate_rebuild_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorRebuildInfo>, ManagerError> {
        self.check_fault(ChainCall::AllocateRebuildSector)?;
        if !self.serves(&spec) {
            return Ok(None);
        }
        self.take_rebuild_job()
    }

    async fn allocate_unseal_sector(
        &self,
        spec: AllocateSectorSpec,
    ) -> Result<Option<SectorUnsealInfo>, ManagerError> {
        self.check_fault(ChainCall::AllocateUnsealSector)?;
        if !self.serves(&spec) {
            return Ok(None);
        }
        self.take_unseal_job()
    }

    async fn acquire_unseal_dest(
        &self,
        id: SectorId,
        piece_cid: Cid,
    ) -> Result<Vec<String>, ManagerError> {
        self.check_fault(ChainCall::AcquireUnsealDest)?;
        self.unseal_dest(id, &piece_cid)
    }

    async fn achieve_unseal_sector(
        &self,
        id: SectorId,
        piece_cid: Cid,
        error: String,
    ) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::AchieveUnsealSector)?;
        self.achieve_unseal(id, piece_cid, error).await
    }

    async fn wdpost_allocate_jobs(
        &self,
        spec: AllocatePoStSpec,
        num: u32,
        worker: String,
    ) -> Result<Vec<WdPoStJob>, ManagerError> {
        self.check_fault(ChainCall::WdPoStAllocateJobs)?;
        self.allocate_wdpost_jobs(&spec, num, &worker)
    }

    async fn wdpost_heartbeat_jobs(
        &self,
        ids: Vec<String>,
        worker: String,
    ) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::WdPoStHeartbeatJobs)?;
        self.wdpost_heartbeat(&ids, &worker)
    }

    async fn wdpost_finish_job(
        &self,
        id: String,
        output: Option<WindowPoStOutput>,
        error: String,
    ) -> Result<(), ManagerError> {
        self.check_fault(ChainCall::WdPoStFinishJob)?;
        self.finish_wdpost_job(&id, output, error).await
    }
}

/// What the mock makes of a submitted update proof.
enum UpdateVerdict {
    /// It verifies.
    Valid,
    /// It does not verify.
    Invalid,
    /// It was not checked: why (the rejection's message).
    Refused(String),
}

/// Checks an update proof off the async executor (verification is proof work): whether
/// the proof holds for `candidate`, or why it is refused: its comm_d is not that of
/// `deals`, or it cannot be verified.
async fn verify_update_submission(
    proof: SealProof,
    deals: Vec<SectorPiece>,
    candidate: UpgradedSector,
) -> Result<UpdateVerdict, ManagerError> {
    let comm_d_new = candidate.comm_d_new;
    let (expected_comm_d, verdict) = tokio::task::spawn_blocking(move || {
        let comm_d = deals_comm_d(proof, &deals);
        let verdict = update::verify_update(&candidate);
        (comm_d, verdict)
    })
    .await
    .map_err(|e| ManagerError::remote(1, format!("verifier panicked: {e}")))?;
    Ok(match (expected_comm_d, verdict) {
        (Ok(comm_d), _) if comm_d != comm_d_new => UpdateVerdict::Refused(format!(
            "comm_d {} is not that of the sector's new pieces",
            hex::encode(comm_d_new)
        )),
        (Ok(_), Ok(true)) => UpdateVerdict::Valid,
        (Ok(_), Ok(false)) => UpdateVerdict::Invalid,
        (Ok(_), Err(e)) => UpdateVerdict::Refused(format!("the proof could not be verified: {e}")),
        (Err(e), _) => {
            UpdateVerdict::Refused(format!("the new pieces' comm_d cannot be computed: {e}"))
        }
    })
}

/// `Landed` once the chain holds the submission, else `NotFound`.
fn landed_if(submitted: bool) -> PollStateResp {
    PollStateResp {
        state: if submitted {
            OnChainState::Landed
        } else {
            OnChainState::NotFound
        },
        desc: None,
    }
}

fn submit_answer(res: SubmitResult, desc: Option<String>) -> SubmitResp {
    SubmitResp { res, desc }
}
