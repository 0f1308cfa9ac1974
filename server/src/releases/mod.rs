//! The release catalog (SPEC.md 8): signed artifacts of the agent itself
//! (per target triple) and of device firmware and software (per
//! `vendor/model`).
//!
//! A release is created with its signed manifest (`admin sign-release`
//! makes it offline); the signature must verify against one of the keys in
//! `[releases] trusted_keys` (several, so a key can be rotated), or the
//! release is refused. Its artifact is uploaded next and the release is
//! published only when the bytes match the signed SHA-256 and size; until
//! then nothing is served. Artifacts are stored in the database in 1 MiB
//! chunks (see migration 0014 for why), and served with HTTP Range so a
//! broken download resumes.
//!
//! Agents ask which release they should run ([`Releases::offer`]): the one
//! most recently published for their target, never an older version than
//! theirs unless that release was published as a deliberate downgrade.
//! What became of the attempt comes back as an `update` message
//! ([`Releases::record_update`]). Nothing here reads a clock to judge a
//! signature: a manifest carries no validity period.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use outpost_protocol::release::{
    compare_versions, format_public_key, parse_public_key, parse_signature,
};
use outpost_protocol::{
    OfferedRelease, Outcome, OutcomeStatus, ReleaseManifest, UpdateOffer, UpdateQuery, UpdateReport,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use utoipa::ToSchema;

pub mod signing;

use crate::auth::{Action, Principal};
use crate::clock::{from_micros, to_micros, Clock};
use crate::error::{Error, Result};
use crate::store::agents::AgentRow;
use crate::store::releases::{AgentUpdateRow, ReleaseRow};
use crate::store::Store;

/// Bytes per stored chunk of an artifact.
pub const CHUNK: usize = 1024 * 1024;
/// Largest artifact accepted (4 GiB).
pub const MAX_ARTIFACT: u64 = 4 * 1024 * 1024 * 1024;

/// `[releases]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// Public keys (`ed25519:<hex>`, from `admin release-key generate`)
    /// whose signatures the catalog accepts. Several while a key is rotated.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

/// The `[releases]` settings in force.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub trusted_keys: Vec<[u8; 32]>,
}

impl ReleaseSpec {
    /// Validates the section; errors name the key.
    pub fn build(&self) -> std::result::Result<Settings, String> {
        let mut keys = Vec::new();
        for (i, k) in self.trusted_keys.iter().enumerate() {
            let key =
                parse_public_key(k).map_err(|e| format!("releases.trusted_keys[{i}]: {e}"))?;
            VerifyingKey::from_bytes(&key)
                .map_err(|e| format!("releases.trusted_keys[{i}]: not an ed25519 key: {e}"))?;
            keys.push(key);
        }
        Ok(Settings { trusted_keys: keys })
    }
}

/// What a release is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    /// The agent itself; `target` is a Rust target triple.
    Agent,
    /// Device firmware or software; `target` is `vendor/model`.
    Firmware,
}

impl ReleaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseKind::Agent => "agent",
            ReleaseKind::Firmware => "firmware",
        }
    }
}

/// A new release: the signed manifest (as `admin sign-release` prints it),
/// its kind and notes.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    pub kind: ReleaseKind,
    pub name: String,
    pub version: String,
    pub target: String,
    /// Lowercase hex SHA-256 of the artifact.
    pub sha256: String,
    /// Artifact size in bytes.
    pub size: u64,
    /// Release notes.
    #[serde(default)]
    pub notes: String,
    /// Hex ed25519 signature over the manifest's canonical bytes.
    pub signature: String,
    /// The signing key, `ed25519:<hex>`; must be a trusted one.
    pub public_key: String,
    /// Offer it to agents running a newer version (a deliberate downgrade).
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// A release as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseView {
    pub id: i64,
    pub kind: ReleaseKind,
    pub name: String,
    pub version: String,
    pub target: String,
    pub sha256: String,
    pub size: u64,
    pub notes: String,
    pub signature: String,
    pub public_key: String,
    pub allow_downgrade: bool,
    pub created_at: DateTime<Utc>,
    /// When the artifact was uploaded and matched; unset: not served yet.
    pub published_at: Option<DateTime<Utc>>,
    /// `awaiting_artifact` or `published`.
    pub state: String,
}

impl ReleaseView {
    fn from_row(r: ReleaseRow) -> ReleaseView {
        ReleaseView {
            id: r.id,
            kind: if r.kind == "agent" {
                ReleaseKind::Agent
            } else {
                ReleaseKind::Firmware
            },
            name: r.name,
            version: r.version,
            target: r.target,
            sha256: r.sha256,
            size: u64::try_from(r.size).unwrap_or(0),
            notes: r.notes,
            signature: r.signature,
            public_key: r.public_key,
            allow_downgrade: r.allow_downgrade,
            created_at: from_micros(r.created_at),
            state: if r.published_at.is_some() {
                "published"
            } else {
                "awaiting_artifact"
            }
            .into(),
            published_at: r.published_at.map(from_micros),
        }
    }
}

/// A self-update outcome an agent reported.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentUpdateView {
    pub id: i64,
    pub release_id: Option<i64>,
    pub from_version: String,
    pub to_version: String,
    /// `succeeded`, `refused`, `rolled_back` or `failed`.
    pub outcome: String,
    pub detail: String,
    pub reported_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// A byte range of an artifact, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

/// Why a `Range` header cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Not understood: serve the whole artifact (RFC 9110 allows ignoring it).
    Ignore,
    /// Outside the artifact: 416.
    Unsatisfiable,
}

/// Parses a single-range `Range: bytes=...` header for an artifact of `size`
/// bytes. Several ranges are not supported (answered whole).
pub fn parse_range(header: &str, size: u64) -> std::result::Result<ByteRange, RangeError> {
    let spec = header
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RangeError::Ignore)?;
    if spec.contains(',') {
        return Err(RangeError::Ignore);
    }
    let (a, b) = spec.split_once('-').ok_or(RangeError::Ignore)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| RangeError::Ignore)?;
        if n == 0 {
            return Err(RangeError::Unsatisfiable);
        }
        ByteRange {
            first: size.saturating_sub(n),
            last: size.saturating_sub(1),
        }
    } else {
        let first: u64 = a.parse().map_err(|_| RangeError::Ignore)?;
        let last = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            let last: u64 = b.parse().map_err(|_| RangeError::Ignore)?;
            if last < first {
                return Err(RangeError::Ignore);
            }
            last.min(size.saturating_sub(1))
        };
        ByteRange { first, last }
    };
    if range.first >= size {
        return Err(RangeError::Unsatisfiable);
    }
    Ok(range)
}

/// The release catalog.
#[derive(Clone)]
pub struct Releases {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: Arc<Settings>,
}

fn manifest_of(r: &ReleaseRow) -> ReleaseManifest {
    ReleaseManifest {
        name: r.name.clone(),
        version: r.version.clone(),
        target: r.target.clone(),
        sha256: r.sha256.clone(),
        size: u64::try_from(r.size).unwrap_or(0),
    }
}

/// Checks `signature` (hex) by `public_key` (`ed25519:<hex>`) over the
/// manifest, and that the key is one of `trusted`. An empty `trusted` list
/// refuses everything.
pub fn verify_manifest(
    manifest: &ReleaseManifest,
    signature: &str,
    public_key: &str,
    trusted: &[[u8; 32]],
) -> std::result::Result<(), Error> {
    if trusted.is_empty() {
        return Err(Error::invalid(
            "public_key",
            "no release key is trusted: set [releases] trusted_keys in the server configuration",
        ));
    }
    let key = parse_public_key(public_key).map_err(|e| Error::invalid("public_key", e))?;
    if !trusted.contains(&key) {
        return Err(Error::invalid(
            "public_key",
            format!("{public_key} is not one of the trusted release keys"),
        ));
    }
    let key = VerifyingKey::from_bytes(&key).map_err(|e| Error::invalid("public_key", e))?;
    let signature = parse_signature(signature).map_err(|e| Error::invalid("signature", e))?;
    key.verify_strict(
        &manifest.canonical_bytes(),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| {
        Error::invalid(
            "signature",
            "does not match the manifest (name, version, target, sha256, size) and key",
        )
    })
}

impl Releases {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: Settings) -> Releases {
        Releases {
            store,
            clock,
            settings: Arc::new(settings),
        }
    }

    /// Record a release after checking its manifest and signature.
    pub async fn create(&self, who: &Principal, req: &NewRelease) -> Result<ReleaseView> {
        who.require(Action::PublishReleases)?;
        let manifest = ReleaseManifest {
            name: req.name.clone(),
            version: req.version.clone(),
            target: req.target.clone(),
            sha256: req.sha256.clone(),
            size: req.size,
        };
        manifest.validate().map_err(|e| {
            let (field, message) = e.split_once(": ").unwrap_or(("manifest", &e));
            Error::invalid(field, message)
        })?;
        if req.size > MAX_ARTIFACT {
            return Err(Error::invalid(
                "size",
                format!("at most {MAX_ARTIFACT} bytes"),
            ));
        }
        if req.kind == ReleaseKind::Firmware && !req.target.contains('/') {
            return Err(Error::invalid(
                "target",
                "a firmware release targets vendor/model",
            ));
        }
        crate::validate::opt_text("notes", &Some(req.notes.clone()), 20_000)?;
        verify_manifest(
            &manifest,
            &req.signature,
            &req.public_key,
            &self.settings.trusted_keys,
        )?;
        let public_key = parse_public_key(&req.public_key)
            .map(|k| format_public_key(&k))
            .map_err(|e| Error::invalid("public_key", e))?;
        let row = ReleaseRow {
            id: 0,
            kind: req.kind.as_str().into(),
            name: req.name.clone(),
            version: req.version.clone(),
            target: req.target.clone(),
            sha256: req.sha256.clone(),
            size: i64::try_from(req.size).map_err(|_| Error::invalid("size", "too large"))?,
            notes: req.notes.clone(),
            signature: req.signature.trim().to_ascii_lowercase(),
            public_key,
            allow_downgrade: req.allow_downgrade,
            created_by: Some(who.user_id),
            created_at: to_micros(self.clock.now()),
            published_at: None,
        };
        let id = self.store.insert_release(&row).await?;
        self.get(who, id).await
    }

    pub async fn get(&self, who: &Principal, id: i64) -> Result<ReleaseView> {
        who.require(Action::ReadReleases)?;
        self.store
            .release(id)
            .await?
            .map(ReleaseView::from_row)
            .ok_or_else(|| Error::not_found(format!("release {id}")))
    }

    pub async fn list(
        &self,
        who: &Principal,
        kind: Option<ReleaseKind>,
        target: Option<&str>,
    ) -> Result<Vec<ReleaseView>> {
        who.require(Action::ReadReleases)?;
        Ok(self
            .store
            .releases(kind.map(ReleaseKind::as_str), target)
            .await?
            .into_iter()
            .map(ReleaseView::from_row)
            .collect())
    }

    /// The release, for an upload by `who`: it must exist and not be
    /// published yet. Clears what an earlier, failed upload left.
    pub async fn begin_upload(&self, who: &Principal, id: i64) -> Result<ReleaseRow> {
        who.require(Action::PublishReleases)?;
        let row = self
            .store
            .release(id)
            .await?
            .ok_or_else(|| Error::not_found(format!("release {id}")))?;
        if row.published_at.is_some() {
            return Err(Error::conflict(format!(
                "release {id} is published; its artifact cannot change (create a new version)"
            )));
        }
        self.store.clear_release_chunks(id).await?;
        Ok(row)
    }

    /// An upload in progress: feed it the body's bytes, then [`Upload::finish`].
    pub fn upload(&self, row: ReleaseRow) -> Upload {
        Upload {
            releases: self.clone(),
            expected: u64::try_from(row.size).unwrap_or(0),
            row,
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(CHUNK),
            received: 0,
            seq: 0,
        }
    }

    /// A published release whose artifact `who` (staff) may download.
    pub async fn artifact(&self, who: &Principal, id: i64) -> Result<ReleaseRow> {
        who.require(Action::ReadReleases)?;
        self.published(id).await
    }

    /// A published release, for a signed agent request.
    pub async fn published(&self, id: i64) -> Result<ReleaseRow> {
        match self.store.release(id).await? {
            Some(r) if r.published_at.is_some() => Ok(r),
            _ => Err(Error::not_found(format!("published release {id}"))),
        }
    }

    /// Chunk `seq` (bytes `seq * CHUNK ..`) of a stored artifact.
    pub async fn read_chunk(&self, id: i64, seq: u64) -> Result<Vec<u8>> {
        let seq = i64::try_from(seq).map_err(|_| Error::invalid("range", "too far"))?;
        self.store
            .release_chunk(id, seq)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("release {id} lacks chunk {seq}")))
    }

    /// The release an agent should run: the newest published for its
    /// target; nothing if that is what it runs, or older (unless published
    /// as a downgrade).
    pub async fn offer(&self, q: &UpdateQuery) -> Result<UpdateOffer> {
        outpost_protocol::check_version(q.protocol_version)
            .map_err(|e| Error::invalid("protocol_version", e))?;
        crate::validate::text("target", &q.target, 100)?;
        let Some(r) = self.store.latest_agent_release(&q.target).await? else {
            return Ok(UpdateOffer { release: None });
        };
        let order = compare_versions(&r.version, &q.current_version);
        if order.is_eq() || (order.is_lt() && !r.allow_downgrade) {
            return Ok(UpdateOffer { release: None });
        }
        Ok(UpdateOffer {
            release: Some(OfferedRelease {
                id: r.id,
                manifest: manifest_of(&r),
                artifact_path: format!("/api/v1/agent/releases/{}/artifact", r.id),
                signature: r.signature,
                public_key: r.public_key,
                allow_downgrade: r.allow_downgrade,
            }),
        })
    }

    /// An agent's reported updates, newest first (the caller checks that
    /// the agent is visible to whoever asks).
    pub async fn agent_updates(&self, agent_id: i64) -> Result<Vec<AgentUpdateView>> {
        Ok(self
            .store
            .agent_updates(agent_id)
            .await?
            .into_iter()
            .map(|u| AgentUpdateView {
                id: u.id,
                release_id: u.release_id,
                from_version: u.from_version,
                to_version: u.to_version,
                outcome: u.outcome,
                detail: u.detail,
                reported_at: from_micros(u.reported_at),
                received_at: from_micros(u.received_at),
            })
            .collect())
    }
}

/// Record what an agent reports of an update (once per idempotency key).
pub async fn record_update(
    store: &Store,
    now: DateTime<Utc>,
    agent: &AgentRow,
    r: &UpdateReport,
) -> Result<Outcome> {
    crate::validate::text("from_version", &r.from_version, 64)?;
    crate::validate::text("to_version", &r.to_version, 64)?;
    let detail: String = r.detail.chars().take(2000).collect();
    let outcome = serde_json::to_value(r.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let row = AgentUpdateRow {
        id: 0,
        agent_id: agent.id,
        release_id: Some(r.release_id),
        from_version: r.from_version.clone(),
        to_version: r.to_version.clone(),
        outcome: outcome.clone(),
        detail: detail.clone(),
        reported_at: to_micros(r.at),
        received_at: to_micros(now),
    };
    if !store
        .insert_agent_update(&r.idempotency_key.to_string(), &row)
        .await?
    {
        return Ok(Outcome {
            status: OutcomeStatus::Duplicate,
            detail: None,
        });
    }
    tracing::info!(agent = %agent.hostname, from = %r.from_version, to = %r.to_version,
        outcome, detail, "agent self-update");
    Ok(Outcome {
        status: OutcomeStatus::Accepted,
        detail: None,
    })
}

/// An artifact upload: bytes are hashed and written in chunks as they
/// arrive; the release is published only if all of them match.
pub struct Upload {
    releases: Releases,
    row: ReleaseRow,
    expected: u64,
    hasher: Sha256,
    buffer: Vec<u8>,
    received: u64,
    seq: i64,
}

impl Upload {
    /// Takes the next bytes of the body; refuses more than the signed size.
    pub async fn push(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.received += bytes.len() as u64;
        if self.received > self.expected {
            self.abort().await;
            return Err(Error::invalid(
                "artifact",
                format!(
                    "longer than the signed size of {} bytes; nothing was published",
                    self.expected
                ),
            ));
        }
        while !bytes.is_empty() {
            let room = CHUNK - self.buffer.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = rest;
            if self.buffer.len() == CHUNK {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.hasher.update(&self.buffer);
        self.releases
            .store
            .put_release_chunk(self.row.id, self.seq, &self.buffer)
            .await?;
        self.seq += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Drops what was written (a failed upload).
    pub async fn abort(&mut self) {
        if let Err(e) = self.releases.store.clear_release_chunks(self.row.id).await {
            tracing::warn!(release = self.row.id, error = %e, "cannot clear a failed upload");
        }
    }

    /// Checks size and SHA-256 against the signed manifest and publishes.
    pub async fn finish(mut self) -> Result<ReleaseView> {
        self.flush().await?;
        if self.received != self.expected {
            self.abort().await;
            return Err(Error::invalid(
                "artifact",
                format!(
                    "{} bytes received, the signed size is {}: truncated; nothing was published",
                    self.received, self.expected
                ),
            ));
        }
        let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if digest != self.row.sha256 {
            self.abort().await;
            return Err(Error::invalid(
                "artifact",
                format!(
                    "SHA-256 {digest} differs from the signed {}; nothing was published",
                    self.row.sha256
                ),
            ));
        }
        let now = self.releases.clock.now();
        if !self
            .releases
            .store
            .publish_release(self.row.id, now)
            .await?
        {
            return Err(Error::conflict(format!(
                "release {} was published meanwhile",
                self.row.id
            )));
        }
        let row = self
            .releases
            .store
            .release(self.row.id)
            .await?
            .ok_or_else(|| Error::not_found(format!("release {}", self.row.id)))?;
        Ok(ReleaseView::from_row(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn ranges() {
        let r = |h: &str| parse_range(h, 100);
        assert_eq!(r("bytes=0-9"), Ok(ByteRange { first: 0, last: 9 }));
        assert_eq!(
            r("bytes=90-"),
            Ok(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            r("bytes=-10"),
            Ok(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            r("bytes=50-500"),
            Ok(ByteRange {
                first: 50,
                last: 99
            })
        );
        assert_eq!(r("bytes=-500"), Ok(ByteRange { first: 0, last: 99 }));
        assert_eq!(r("bytes=100-"), Err(RangeError::Unsatisfiable));
        assert_eq!(r("bytes=-0"), Err(RangeError::Unsatisfiable));
        assert_eq!(r("bytes=5-1"), Err(RangeError::Ignore));
        assert_eq!(r("bytes=0-1,5-6"), Err(RangeError::Ignore));
        assert_eq!(r("items=0-1"), Err(RangeError::Ignore));
        assert_eq!(r("bytes=x-"), Err(RangeError::Ignore));
    }

    #[test]
    fn signatures_need_a_trusted_key_and_the_exact_manifest() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let public = format_public_key(&key.verifying_key().to_bytes());
        let manifest = ReleaseManifest {
            name: "outpost-agent".into(),
            version: "0.2.0".into(),
            target: "x86_64-unknown-linux-gnu".into(),
            sha256: "cd".repeat(32),
            size: 10,
        };
        let sig = hex::encode(key.sign(&manifest.canonical_bytes()).to_bytes());
        let trusted = [key.verifying_key().to_bytes()];
        assert!(verify_manifest(&manifest, &sig, &public, &trusted).is_ok());
        // Rotation: the old key among others still verifies.
        let both = [
            other.verifying_key().to_bytes(),
            key.verifying_key().to_bytes(),
        ];
        assert!(verify_manifest(&manifest, &sig, &public, &both).is_ok());
        // No trusted key: refused, never "verification off".
        let e = verify_manifest(&manifest, &sig, &public, &[]).unwrap_err();
        assert!(e.to_string().contains("trusted"), "{e}");
        // Untrusted key.
        let e = verify_manifest(
            &manifest,
            &sig,
            &public,
            &[other.verifying_key().to_bytes()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not one of"), "{e}");
        // Any change to the manifest breaks it.
        let mut changed = manifest.clone();
        changed.size = 11;
        assert!(verify_manifest(&changed, &sig, &public, &trusted).is_err());
        let mut changed = manifest.clone();
        changed.version = "0.2.1".into();
        assert!(verify_manifest(&changed, &sig, &public, &trusted).is_err());
    }
}
