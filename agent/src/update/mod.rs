//! Self-update: the agent asks the server which release it should run,
//! downloads it (resumably), checks it, swaps its own binary and hands over
//! to the new one under a guard that puts the old one back if the new one
//! does not report healthy in time.
//!
//! Steps, and what each refuses:
//! 1. **Ask** (`POST /api/v1/agent/update`, signed). The offer's manifest
//!    must name `outpost-agent` and this binary's target triple, and its
//!    version must be newer than ours unless the offer says
//!    `allow_downgrade`.
//! 2. **Check the signature** over the manifest's canonical bytes against
//!    `[update] trusted_keys` *before* downloading. The manifest has no
//!    validity period, so the host's clock plays no part.
//! 3. **Download** ([`crate::download`], shared with upgrade jobs) into
//!    `<dir>/download/<sha256>.part`, continuing a partial
//!    file with `Range: bytes=N-`; a broken transfer leaves the part for the
//!    next attempt. More bytes than the signed size, or a SHA-256 that
//!    differs, and the part is deleted and the release refused.
//! 4. **Install** ([`install`]): the previous binary is copied to
//!    `<binary>.previous`, `pending.json` records the attempt, and the new
//!    binary is renamed over the old one (atomic on one file system).
//! 5. **Trial** ([`guard`]): the daemon stops its tasks; the old code, still
//!    in memory, starts the new binary as a child with
//!    [`TRIAL_ENV`] set. The child writes `healthy` (its version) once the
//!    server accepted a heartbeat from it. Healthy before
//!    `health_deadline`: the guard stops the child and `exec`s the new
//!    binary (same PID, so systemd sees one service). Not healthy, or the
//!    child exits first: the guard puts `<binary>.previous` back and `exec`s
//!    it.
//! 6. **Report**: the binary that starts after the hand-over reads
//!    `pending.json` and spools an `update` message (succeeded or rolled
//!    back), like a fault: it reaches the server even across an outage.
//!    Refusals are reported at once. A refused or rolled-back release is
//!    remembered in `refused.json` and not tried again.
//!
//! The `self_update` crate was not used: it fetches from GitHub/S3-style
//! release lists and verifies zipsign signatures of its own format, neither
//! of which fits our signed uplink and manifest; what remains of it (replace
//! a file atomically) is the small [`install`] below, and the rollback,
//! which it does not do, had to be ours anyway.

pub mod guard;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use ed25519_dalek::{Signature, VerifyingKey};
use outpost_protocol::release::{compare_versions, parse_public_key, parse_signature};
use outpost_protocol::{
    OfferedRelease, UpdateOffer, UpdateOutcome, UpdateQuery, UpdateReport, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AgentConfig;
use crate::download::{download, Problem};
use crate::fsutil::{sync_dir, write_atomic};
use crate::uplink::Uplink;

/// Set (to `1`) in the environment of a new binary on trial.
pub const TRIAL_ENV: &str = "OUTPOST_UPDATE_TRIAL";
/// The name every agent release carries.
pub const NAME: &str = "outpost-agent";

const PENDING: &str = "pending.json";
const HEALTHY: &str = "healthy";
const REFUSED: &str = "refused.json";
/// Longest a single download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where an attempt stands (`pending.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The new binary is installed and on trial.
    Trial,
    /// It reported healthy; to be reported as succeeded.
    Healthy,
    /// It did not; the previous binary is back. To be reported.
    RolledBack { detail: String },
}

/// An update attempt between install and report (`pending.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub release_id: i64,
    pub sha256: String,
    pub from_version: String,
    pub to_version: String,
    /// The binary replaced.
    pub binary: PathBuf,
    /// The copy of the binary it replaced.
    pub previous: PathBuf,
    #[serde(flatten)]
    pub phase: Phase,
}

/// The self-update settings and paths of one agent.
#[derive(Debug, Clone)]
pub struct Updater {
    pub dir: PathBuf,
    pub binary: PathBuf,
    pub config_path: PathBuf,
    pub keys: Vec<[u8; 32]>,
    pub health_deadline: Duration,
    pub agent_id: Uuid,
    pub version: String,
}

/// What a check ended with.
#[derive(Debug)]
pub enum Checked {
    /// Nothing to install.
    Nothing,
    /// Installed: stop the daemon and run [`guard::hand_over`].
    Installed(Pending),
}

impl Updater {
    /// The updater for `config` (read from `config_path`), or `None` if
    /// `[update]` is off.
    pub fn new(
        config: &AgentConfig,
        config_path: &Path,
        agent_id: Uuid,
    ) -> Result<Option<Updater>> {
        if !config.update.enabled {
            return Ok(None);
        }
        let keys = config.update.keys().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            !keys.is_empty(),
            "update.trusted_keys is empty: self-update cannot verify anything"
        );
        let binary = match &config.update.binary {
            Some(path) => path.clone(),
            None => current_exe()?,
        };
        let config_path = std::fs::canonicalize(config_path)
            .with_context(|| format!("cannot resolve {}", config_path.display()))?;
        Ok(Some(Updater {
            dir: config.update_dir(),
            binary,
            config_path,
            keys,
            health_deadline: config.update.health_deadline,
            agent_id,
            version: crate::version::current(),
        }))
    }

    fn report(&self, release: i64, to: &str, outcome: UpdateOutcome, detail: &str) -> UpdateReport {
        UpdateReport {
            protocol_version: PROTOCOL_VERSION,
            idempotency_key: Uuid::new_v4(),
            agent_id: self.agent_id,
            release_id: release,
            from_version: self.version.clone(),
            to_version: to.to_owned(),
            outcome,
            detail: detail.to_owned(),
            at: Utc::now(),
        }
    }

    /// The attempt recorded in `pending.json`, if any.
    pub fn pending(&self) -> Result<Option<Pending>> {
        let path = self.dir.join(PENDING);
        match std::fs::read(&path) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is damaged; remove it", path.display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save_pending(&self, pending: &Pending) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let json = serde_json::to_vec_pretty(pending)?;
        write_atomic(&self.dir.join(PENDING), &json, Some(0o600))
            .with_context(|| format!("cannot write {}", self.dir.join(PENDING).display()))
    }

    fn clear_pending(&self) -> Result<()> {
        match std::fs::remove_file(self.dir.join(PENDING)) {
            Ok(()) => Ok(sync_dir(&self.dir)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// At start-up: finishes an attempt a previous process left. Returns
    /// the reports to spool. A trial that lost its guard (the service was
    /// restarted meanwhile) is guarded by this process: see [`guard`].
    pub fn on_start(&self) -> Result<Vec<UpdateReport>> {
        let Some(pending) = self.pending()? else {
            return Ok(Vec::new());
        };
        let mut reports = Vec::new();
        match &pending.phase {
            Phase::Trial => {
                if std::env::var_os(TRIAL_ENV).is_some() {
                    // We are the binary on trial; the guard watches us.
                    return Ok(reports);
                }
                // Nobody watches this trial (restarted mid-way): guard it now.
                guard::hand_over(self, &pending)?;
            }
            Phase::Healthy => {
                let mut r = self.report(
                    pending.release_id,
                    &pending.to_version,
                    UpdateOutcome::Succeeded,
                    "",
                );
                r.from_version = pending.from_version.clone();
                tracing::info!(from = %pending.from_version, to = %pending.to_version, "self-update succeeded");
                reports.push(r);
            }
            Phase::RolledBack { detail } => {
                let mut r = self.report(
                    pending.release_id,
                    &pending.to_version,
                    UpdateOutcome::RolledBack,
                    detail,
                );
                r.from_version = pending.from_version.clone();
                tracing::warn!(release = pending.release_id, to = %pending.to_version, detail, "self-update rolled back");
                self.remember_refused(pending.release_id, &pending.sha256)?;
                reports.push(r);
            }
        }
        self.clear_pending()?;
        Ok(reports)
    }

    /// The binary on trial: the server accepted its heartbeat. Tells the
    /// guard (once).
    pub fn mark_healthy(&self) -> Result<()> {
        if std::env::var_os(TRIAL_ENV).is_none() {
            return Ok(());
        }
        let path = self.dir.join(HEALTHY);
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, self.version.as_bytes(), Some(0o600))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    fn refused(&self) -> Vec<(i64, String)> {
        std::fs::read(self.dir.join(REFUSED))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn remember_refused(&self, id: i64, sha256: &str) -> Result<()> {
        let mut list = self.refused();
        if !list.iter().any(|(i, s)| *i == id && s == sha256) {
            list.push((id, sha256.to_owned()));
        }
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(
            &self.dir.join(REFUSED),
            &serde_json::to_vec(&list)?,
            Some(0o600),
        )?;
        Ok(())
    }

    /// One round: ask, and if a release is offered, check, download and
    /// install it. Reports to spool go to `reports`.
    pub async fn check(&self, uplink: &Uplink, reports: &mut Vec<UpdateReport>) -> Result<Checked> {
        let query = UpdateQuery {
            protocol_version: PROTOCOL_VERSION,
            target: crate::version::TARGET.to_owned(),
            current_version: self.version.clone(),
        };
        let offer: UpdateOffer = uplink
            .post_json(outpost_protocol::release::UPDATE_PATH, &query)
            .await
            .context("asking the server for a release")?;
        let Some(offer) = offer.release else {
            return Ok(Checked::Nothing);
        };
        let m = &offer.manifest;
        if m.version == self.version {
            return Ok(Checked::Nothing);
        }
        if self
            .refused()
            .iter()
            .any(|(id, sha)| *id == offer.id && *sha == m.sha256)
        {
            tracing::debug!(release = offer.id, "the offered release was refused before");
            return Ok(Checked::Nothing);
        }
        match self.fetch(uplink, &offer).await {
            Ok(artifact) => {
                let pending = install(self, &offer, &artifact)?;
                let _ = std::fs::remove_file(&artifact);
                Ok(Checked::Installed(pending))
            }
            Err(Problem::Refuse(why)) => {
                tracing::error!(release = offer.id, version = %m.version, reason = %why, "release refused");
                self.remember_refused(offer.id, &m.sha256)?;
                reports.push(self.report(offer.id, &m.version, UpdateOutcome::Refused, &why));
                Ok(Checked::Nothing)
            }
            Err(Problem::Retry(err)) => Err(err),
        }
    }

    /// Checks the offer and its signature, downloads and verifies the
    /// artifact; the path of the verified file.
    async fn fetch(&self, uplink: &Uplink, offer: &OfferedRelease) -> Result<PathBuf, Problem> {
        let m = &offer.manifest;
        m.validate()
            .map_err(|e| Problem::Refuse(format!("the manifest is invalid: {e}")))?;
        if m.name != NAME {
            return Err(Problem::Refuse(format!(
                "the release is of {:?}, not {NAME}",
                m.name
            )));
        }
        if m.target != crate::version::TARGET {
            return Err(Problem::Refuse(format!(
                "the release is built for {}, this agent runs on {}",
                m.target,
                crate::version::TARGET
            )));
        }
        if compare_versions(&m.version, &self.version).is_lt() && !offer.allow_downgrade {
            return Err(Problem::Refuse(format!(
                "{} is older than the running {}; the offer does not allow a downgrade",
                m.version, self.version
            )));
        }
        verify(&self.keys, offer).map_err(Problem::Refuse)?;
        let dir = self.dir.join("download");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))
            .map_err(Problem::Retry)?;
        let part = dir.join(format!("{}.part", m.sha256));
        download(uplink, offer, &part, DOWNLOAD_TIMEOUT).await?;
        Ok(part)
    }
}

/// Checks the offer's signature with the trusted keys; the reason if not.
pub fn verify(trusted: &[[u8; 32]], offer: &OfferedRelease) -> Result<(), String> {
    if trusted.is_empty() {
        return Err("no release key is trusted ([update] trusted_keys is empty)".into());
    }
    let key = parse_public_key(&offer.public_key)?;
    if !trusted.contains(&key) {
        return Err(format!(
            "signed by {}, which is not a trusted release key",
            offer.public_key
        ));
    }
    let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("the release key: {e}"))?;
    let signature = parse_signature(&offer.signature)?;
    key.verify_strict(
        &offer.manifest.canonical_bytes(),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| "the signature does not match the manifest".to_owned())
}

/// Downloads and checks an offered artifact into `part` exactly as a
/// self-update does (resuming what is there), without installing it: for
/// benchmarks and tools.
pub async fn fetch_artifact(uplink: &Uplink, offer: &OfferedRelease, part: &Path) -> Result<()> {
    match download(uplink, offer, part, DOWNLOAD_TIMEOUT).await {
        Ok(()) => Ok(()),
        Err(Problem::Refuse(why)) => Err(anyhow::anyhow!("refused: {why}")),
        Err(Problem::Retry(err)) => Err(err),
    }
}

/// The running executable's path (without the ` (deleted)` Linux adds once
/// it has been replaced).
fn current_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(t) => PathBuf::from(t),
        None => exe,
    })
}

/// Puts the verified `artifact` in place of the binary: the old one copied
/// to `<binary>.previous`, the attempt recorded, then one rename.
pub fn install(u: &Updater, offer: &OfferedRelease, artifact: &Path) -> Result<Pending> {
    let bin = &u.binary;
    let dir = bin
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = bin
        .file_name()
        .context("update.binary has no file name")?
        .to_string_lossy()
        .into_owned();
    let previous = dir.join(format!("{name}.previous"));
    let staged = dir.join(format!(".{name}.new"));
    let copy = |from: &Path, to: &Path| -> Result<()> {
        std::fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::File::open(to)?.sync_all()?;
        Ok(())
    };
    copy(artifact, &staged).with_context(|| {
        format!(
            "cannot stage the new binary beside {} (is its directory writable? see update.binary)",
            bin.display()
        )
    })?;
    let prev_tmp = dir.join(format!(".{name}.previous.tmp"));
    copy(bin, &prev_tmp)?;
    std::fs::rename(&prev_tmp, &previous)?;
    let pending = Pending {
        release_id: offer.id,
        sha256: offer.manifest.sha256.clone(),
        from_version: u.version.clone(),
        to_version: offer.manifest.version.clone(),
        binary: bin.clone(),
        previous,
        phase: Phase::Trial,
    };
    let _ = std::fs::remove_file(u.dir.join(HEALTHY));
    u.save_pending(&pending)?;
    std::fs::rename(&staged, bin).with_context(|| format!("cannot replace {}", bin.display()))?;
    sync_dir(dir)?;
    tracing::info!(from = %pending.from_version, to = %pending.to_version, binary = %bin.display(), "new binary installed; handing over");
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use outpost_protocol::ReleaseManifest;

    fn offer(key: &SigningKey) -> OfferedRelease {
        let manifest = ReleaseManifest {
            name: NAME.into(),
            version: "9.9.9".into(),
            target: crate::version::TARGET.into(),
            sha256: "ab".repeat(32),
            size: 3,
        };
        OfferedRelease {
            id: 1,
            signature: hex::encode(key.sign(&manifest.canonical_bytes()).to_bytes()),
            public_key: outpost_protocol::release::format_public_key(
                &key.verifying_key().to_bytes(),
            ),
            manifest,
            allow_downgrade: false,
            artifact_path: "/x".into(),
        }
    }

    #[test]
    fn signatures_are_checked_against_trusted_keys_only() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let good = offer(&key);
        assert!(verify(&[key.verifying_key().to_bytes()], &good).is_ok());
        assert!(verify(&[], &good).unwrap_err().contains("no release key"));
        assert!(verify(&[other.verifying_key().to_bytes()], &good)
            .unwrap_err()
            .contains("not a trusted"));
        let mut tampered = good.clone();
        tampered.manifest.sha256 = "cd".repeat(32);
        assert!(verify(&[key.verifying_key().to_bytes()], &tampered)
            .unwrap_err()
            .contains("does not match"));
    }
}
