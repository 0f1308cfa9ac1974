//! The one downloader of signed release artifacts, used by self-update
//! ([`crate::update`]) and by upgrade jobs ([`crate::jobs`]): a signed
//! `GET` of the offer's `artifact_path` into a `.part` file, continuing
//! what is there with `Range: bytes=N-`, then the signed size and SHA-256
//! checked. A broken transfer keeps the part for the next attempt; more
//! bytes than signed, or another SHA-256, delete it and refuse the release.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use outpost_protocol::OfferedRelease;
use sha2::{Digest, Sha256};

use crate::uplink::Uplink;

/// Why an artifact was not fetched.
#[derive(Debug)]
pub enum Problem {
    /// Never install it (the bytes are not the signed ones).
    Refuse(String),
    /// Try again later (network, disk); a partial file is kept.
    Retry(anyhow::Error),
}

/// Downloads the artifact into `part`, continuing what is there, then checks
/// size and SHA-256.
pub async fn download(
    uplink: &Uplink,
    offer: &OfferedRelease,
    part: &Path,
    timeout: Duration,
) -> Result<(), Problem> {
    let size = offer.manifest.size;
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if have > size {
        let _ = std::fs::remove_file(part);
        have = 0;
    }
    if have < size {
        if have > 0 {
            tracing::info!(
                release = offer.id,
                from = have,
                size,
                "resuming the download"
            );
        } else {
            tracing::info!(release = offer.id, size, "downloading");
        }
        let mut response = uplink
            .get_signed(&offer.artifact_path, have, timeout)
            .await
            .map_err(|e| Problem::Retry(anyhow::anyhow!("downloading the artifact: {e}")))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .with_context(|| format!("cannot open {}", part.display()))
            .map_err(Problem::Retry)?;
        if response.status() != reqwest::StatusCode::PARTIAL_CONTENT && have > 0 {
            // The server sent the whole file: start over.
            file.set_len(0)
                .context("truncating the partial download")
                .map_err(Problem::Retry)?;
            have = 0;
        }
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(Problem::Retry(anyhow::anyhow!(
                        "the download broke off at byte {have} of {size} (kept, resumed next time): {e}"
                    )));
                }
            };
            have += chunk.len() as u64;
            if have > size {
                drop(file);
                let _ = std::fs::remove_file(part);
                return Err(Problem::Refuse(format!(
                    "the artifact is longer than the signed {size} bytes"
                )));
            }
            file.write_all(&chunk)
                .with_context(|| format!("cannot write {}", part.display()))
                .map_err(Problem::Retry)?;
        }
        file.sync_all()
            .with_context(|| format!("cannot write {}", part.display()))
            .map_err(Problem::Retry)?;
        if have < size {
            return Err(Problem::Retry(anyhow::anyhow!(
                "the download ended at byte {have} of {size} (kept, resumed next time)"
            )));
        }
    }
    let digest = sha256_file(part).map_err(Problem::Retry)?;
    if digest != offer.manifest.sha256 {
        let _ = std::fs::remove_file(part);
        return Err(Problem::Refuse(format!(
            "the artifact's SHA-256 is {digest}, the signed one {}: tampered or corrupted",
            offer.manifest.sha256
        )));
    }
    Ok(())
}

/// Lowercase hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
