//! Offline release signing: `admin release-key generate|public` and
//! `admin sign-release`. None of it touches the database or the network;
//! run it on the machine that keeps the private key.
//!
//! The private key file holds one line, `outpost-release-secret-v1:<hex of
//! the 32-byte seed>`, mode 0600. The signature covers the manifest's
//! canonical bytes (`outpost_protocol::ReleaseManifest::canonical_bytes`),
//! which have no timestamp: a release verifies the same whatever any clock
//! says.

use anyhow::{bail, Context};
use ed25519_dalek::{Signer, SigningKey};
use outpost_protocol::release::format_public_key;
use outpost_protocol::ReleaseManifest;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use super::{NewRelease, ReleaseKind};
use crate::cli::{Admin, ReleaseKeyCommand};

const SECRET_PREFIX: &str = "outpost-release-secret-v1:";

/// Reads a private key file.
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let hex_seed = text.trim().strip_prefix(SECRET_PREFIX).with_context(|| {
        format!(
            "{} is not a release key (made by `admin release-key generate`)",
            path.display()
        )
    })?;
    let seed: [u8; 32] = hex::decode(hex_seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: the key is damaged", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// `admin release-key ...`.
pub fn key_command(cmd: ReleaseKeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReleaseKeyCommand::Generate { file } => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let key = SigningKey::from_bytes(&seed);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options
                .open(&file)
                .with_context(|| format!("cannot create {} (it must not exist)", file.display()))?;
            std::io::Write::write_all(
                &mut f,
                format!("{SECRET_PREFIX}{}\n", hex::encode(seed)).as_bytes(),
            )
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", file.display()))?;
            println!("{}", format_public_key(&key.verifying_key().to_bytes()));
        }
        ReleaseKeyCommand::Public { file } => {
            let key = read_key(&file)?;
            println!("{}", format_public_key(&key.verifying_key().to_bytes()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `admin sign-release`: hashes the artifact, signs the manifest, prints
/// the `POST /api/v1/releases` body.
pub fn sign_command(cmd: Admin) -> anyhow::Result<ExitCode> {
    let Admin::SignRelease {
        key,
        file,
        kind,
        name,
        version,
        target,
        notes,
        allow_downgrade,
    } = cmd
    else {
        bail!("not a sign-release command");
    };
    let kind = match kind.as_str() {
        "agent" => ReleaseKind::Agent,
        "firmware" => ReleaseKind::Firmware,
        other => bail!("--kind {other:?}: expected agent or firmware"),
    };
    let key = read_key(&key)?;
    let mut f =
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", file.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let manifest = ReleaseManifest {
        name,
        version,
        target,
        sha256: hex::encode(hasher.finalize()),
        size,
    };
    manifest.validate().map_err(anyhow::Error::msg)?;
    let signature = key.sign(&manifest.canonical_bytes());
    let body = NewRelease {
        kind,
        name: manifest.name,
        version: manifest.version,
        target: manifest.target,
        sha256: manifest.sha256,
        size: manifest.size,
        notes,
        signature: hex::encode(signature.to_bytes()),
        public_key: format_public_key(&key.verifying_key().to_bytes()),
        allow_downgrade,
    };
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(ExitCode::SUCCESS)
}
