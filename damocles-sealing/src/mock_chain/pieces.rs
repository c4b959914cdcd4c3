//! The mock chain as a piece store: deal pieces served by CID and uploads checked
//! against their piece CID.

use super::*;

/// The pieces the mock takes back (`PUT /piecestore/{cid}`, `PUT /resource`): those of the
/// deals in its sectors, checked against their piece CIDs.
impl PieceCheck for MockChain {
    fn max_bytes(&self, cid: &Cid) -> Option<u64> {
        self.deal_piece_size(cid).and_then(piece::unpadded_size)
    }

    fn check(&self, cid: &Cid, file: &Path) -> Result<(), NotThePiece> {
        let size = self.deal_piece_size(cid).ok_or_else(|| {
            NotThePiece::new(format!("no deal of this manager has piece {}", cid.text))
        })?;
        let bytes = std::fs::read(file)
            .map_err(|e| NotThePiece::new(format!("{}: {e}", file.display())))?;
        let found = proofs::piece_cid_of(self.proof_type, &bytes, size)
            .map_err(|e| NotThePiece::new(e.to_string()))?;
        if &found == cid {
            Ok(())
        } else {
            Err(NotThePiece::new(format!(
                "the bytes give piece CID {}, not {}",
                found.text, cid.text
            )))
        }
    }
}

/// The mock's piece store in process: copies a piece it offered out of its piece
/// directory, and takes unsealed pieces into `<piece dir>/unsealed/` (what the manager's
/// `PUT /piecestore/{cid}` does).
#[async_trait]
impl PieceStore for MockChain {
    async fn upload(&self, cid: &Cid, src: &Path) -> Result<(), PieceUploadError> {
        let target = format!("store:///{}", cid.text);
        let dir = self
            .piece_dir()
            .ok_or_else(|| PieceUploadError::Unsupported {
                target: target.clone(),
                detail: "the mock chain offers no deals, so it keeps no pieces".into(),
            })?
            .join("unsealed");
        let local = |e: std::io::Error| PieceUploadError::Local {
            target: target.clone(),
            reason: e.to_string(),
        };
        tokio::fs::create_dir_all(&dir).await.map_err(local)?;
        let tmp = dir.join(format!("{}.part", cid.text));
        tokio::fs::copy(src, &tmp).await.map_err(local)?;
        tokio::fs::rename(&tmp, dir.join(&cid.text))
            .await
            .map_err(local)
    }

    async fn fetch(&self, cid: &Cid, dest: &Path, limit: u64) -> Result<u64, PieceFetchError> {
        let not_found = |detail: String| PieceFetchError::NotFound {
            cid: cid.text.clone(),
            detail,
        };
        piece::comm_p(cid).map_err(|e| not_found(e.reason))?;
        let dir = self
            .piece_dir()
            .ok_or_else(|| not_found("the mock chain offers no deals".into()))?;
        let source = dir.join(&cid.text);
        let local = |reason: String| PieceFetchError::Local {
            cid: cid.text.clone(),
            reason,
        };
        let too_large = || PieceFetchError::TooLarge {
            cid: cid.text.clone(),
            limit,
        };
        // Through a temporary file, as a download: `dest` is whole or absent.
        let tmp = dest.with_extension("part");
        let len = match tokio::fs::metadata(&source).await {
            Ok(meta) if meta.len() > limit => return Err(too_large()),
            Ok(meta) => {
                tokio::fs::copy(&source, &tmp)
                    .await
                    .map_err(|e| local(format!("copy to {}: {e}", tmp.display())))?;
                meta.len()
            }
            Err(e) => {
                // Made by another manager sharing the records: from there.
                let shared = self.settings().shared.clone();
                let Some(shared) = shared else {
                    return Err(not_found(format!("{}: {e}", source.display())));
                };
                let payload = shared
                    .piece(cid)
                    .await
                    .map_err(|e| PieceFetchError::Unavailable {
                        cid: cid.text.clone(),
                        reason: e.to_string(),
                    })?
                    .ok_or_else(|| {
                        not_found(format!("{} and the shared records: {e}", source.display()))
                    })?;
                if payload.len() as u64 > limit {
                    return Err(too_large());
                }
                tokio::fs::write(&tmp, &payload)
                    .await
                    .map_err(|e| local(format!("write {}: {e}", tmp.display())))?;
                payload.len() as u64
            }
        };
        tokio::fs::rename(&tmp, dest)
            .await
            .map(|()| len)
            .map_err(|e| local(format!("rename to {}: {e}", dest.display())))
    }
}
