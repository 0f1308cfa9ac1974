//! The agent's identity, issued at enrolment and kept in the identity
//! directory:
//!
//! * `agent.key`: the ed25519 private key in OpenSSH format (`-----BEGIN
//!   OPENSSH PRIVATE KEY-----`, unencrypted), mode 0600, so the same key
//!   serves the HTTPS uplink and the SSH relay (`ssh-keygen -y -f agent.key`
//!   prints its public half);
//! * `identity.json`: the agent id, the server URL, its TLS pin and SSH host
//!   key, and the heartbeat interval.
//!
//! Both are written atomically (temporary file, fsync, rename, fsync of the
//! directory); `identity.json` is written last, so its presence means the
//! identity is complete.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fsutil::write_atomic;

/// File name of the private key in the identity directory.
pub const KEY_FILE: &str = "agent.key";
/// File name of the identity record in the identity directory.
pub const IDENTITY_FILE: &str = "identity.json";

const KEY_TYPE: &str = "ssh-ed25519";
const OPENSSH_MAGIC: &[u8] = b"openssh-key-v1\0";
const PEM_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PEM_END: &str = "-----END OPENSSH PRIVATE KEY-----";

/// What the server told the agent at enrolment (`identity.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The agent's id on the server.
    pub agent_id: Uuid,
    /// The server's base URL the agent enrolled with.
    pub server_url: String,
    /// Lowercase hex SHA-256 of the server certificate's SubjectPublicKeyInfo;
    /// when set, the uplink trusts only that key.
    #[serde(default)]
    pub server_tls_pin_sha256: Option<String>,
    /// The relay's SSH host key (OpenSSH format), for the remote-login tunnel.
    #[serde(default)]
    pub ssh_host_key: Option<String>,
    /// How often to send a heartbeat.
    pub heartbeat_interval_secs: u32,
    /// The agent's public key as sent at enrolment.
    pub public_key: String,
    /// When the agent enrolled.
    pub enrolled_at: DateTime<Utc>,
}

impl Identity {
    /// Reads `identity.json` and `agent.key` from `dir`.
    pub fn load(dir: &Path) -> Result<(Identity, SigningKey)> {
        let path = dir.join(IDENTITY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}; enrol first with `outpost-agent enroll --server URL --token TOKEN`",
                path.display()
            )
        })?;
        let identity: Identity = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid identity", path.display()))?;
        let key_path = dir.join(KEY_FILE);
        let key_text = std::fs::read_to_string(&key_path)
            .with_context(|| format!("cannot read {}", key_path.display()))?;
        let key = decode_private_key(&key_text)
            .with_context(|| format!("{} is not a valid agent key", key_path.display()))?;
        if openssh_public_key(&key, "") != strip_comment(&identity.public_key) {
            bail!(
                "{} does not belong to the identity in {}",
                key_path.display(),
                path.display()
            );
        }
        Ok((identity, key))
    }

    /// Whether `dir` already holds an identity.
    pub fn exists(dir: &Path) -> bool {
        dir.join(IDENTITY_FILE).exists()
    }

    /// Writes the key (mode 0600) and then the identity into `dir`.
    pub fn save(&self, dir: &Path, key: &SigningKey) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The directory holds a private key: owner only.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        let comment = self.public_key.split_whitespace().nth(2).unwrap_or("");
        write_atomic(
            &dir.join(KEY_FILE),
            encode_private_key(key, comment).as_bytes(),
            Some(0o600),
        )
        .with_context(|| format!("cannot write {}", dir.join(KEY_FILE).display()))?;
        let mut json = serde_json::to_vec_pretty(self).context("encoding the identity")?;
        json.push(b'\n');
        write_atomic(&dir.join(IDENTITY_FILE), &json, Some(0o600))
            .with_context(|| format!("cannot write {}", dir.join(IDENTITY_FILE).display()))
    }

    /// Where the identity lives, for messages.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(IDENTITY_FILE)
    }
}

/// A fresh ed25519 key from the operating system's random source.
pub fn generate_key() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|err| anyhow::anyhow!("reading the OS random source: {err}"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key as OpenSSH text: `ssh-ed25519 AAAA... comment`.
pub fn openssh_public_key(key: &SigningKey, comment: &str) -> String {
    let blob = public_blob(key);
    let text = format!("{KEY_TYPE} {}", B64.encode(blob));
    if comment.is_empty() {
        text
    } else {
        format!("{text} {comment}")
    }
}

fn strip_comment(public_key: &str) -> String {
    public_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SSH wire form of the public key: string type, string key.
fn public_blob(key: &SigningKey) -> Vec<u8> {
    let mut blob = Vec::with_capacity(51);
    put_string(&mut blob, KEY_TYPE.as_bytes());
    put_string(&mut blob, key.verifying_key().as_bytes());
    blob
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The private key in OpenSSH's `openssh-key-v1` format, unencrypted.
pub fn encode_private_key(key: &SigningKey, comment: &str) -> String {
    let public = key.verifying_key();
    // Any value works for the check integers; derive it from the key so the
    // encoding is deterministic.
    let check = u32::from_be_bytes([public.as_bytes()[0], public.as_bytes()[1], 0x5a, 0xa5]);
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    put_string(&mut private, KEY_TYPE.as_bytes());
    put_string(&mut private, public.as_bytes());
    let mut secret = Vec::with_capacity(64);
    secret.extend_from_slice(&key.to_bytes());
    secret.extend_from_slice(public.as_bytes());
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut data = Vec::new();
    data.extend_from_slice(OPENSSH_MAGIC);
    put_string(&mut data, b"none");
    put_string(&mut data, b"none");
    put_string(&mut data, b"");
    data.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut data, &public_blob(key));
    put_string(&mut data, &private);
    let encoded = B64.encode(data);
    let mut text = String::from(PEM_BEGIN);
    text.push('\n');
    for chunk in encoded.as_bytes().chunks(70) {
        text.push_str(&String::from_utf8_lossy(chunk));
        text.push('\n');
    }
    text.push_str(PEM_END);
    text.push('\n');
    text
}

/// Reads an unencrypted ed25519 key in `openssh-key-v1` format.
pub fn decode_private_key(text: &str) -> Result<SigningKey> {
    let body: String = text
        .trim()
        .strip_prefix(PEM_BEGIN)
        .and_then(|t| t.strip_suffix(PEM_END))
        .context("not an OpenSSH private key")?
        .split_whitespace()
        .collect();
    let data = B64.decode(body).context("bad base64")?;
    let mut r = Reader(&data);
    if r.take(OPENSSH_MAGIC.len())? != OPENSSH_MAGIC {
        bail!("not an openssh-key-v1 key");
    }
    if r.string()? != b"none" {
        bail!("the key is encrypted; the agent needs an unencrypted key");
    }
    r.string()?; // kdf name
    r.string()?; // kdf options
    if r.u32()? != 1 {
        bail!("the file holds more than one key");
    }
    r.string()?; // public key blob
    let mut p = Reader(r.string()?);
    if p.u32()? != p.u32()? {
        bail!("check integers differ");
    }
    if p.string()? != KEY_TYPE.as_bytes() {
        bail!("not an ed25519 key");
    }
    let public = p.string()?;
    let secret = p.string()?;
    let seed: [u8; 32] = secret
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .context("short secret key")?;
    let key = SigningKey::from_bytes(&seed);
    if key.verifying_key().as_bytes()[..] != *public {
        bail!("the public key does not match the secret key");
    }
    Ok(key)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            bail!("truncated key");
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_round_trip_and_public_text() {
        let key = generate_key().expect("key");
        let text = encode_private_key(&key, "outpost-agent@edge-01");
        assert!(text.starts_with(PEM_BEGIN));
        let back = decode_private_key(&text).expect("decode");
        assert_eq!(back.to_bytes(), key.to_bytes());
        let public = openssh_public_key(&key, "outpost-agent@edge-01");
        assert!(public.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        assert!(public.ends_with(" outpost-agent@edge-01"));
        assert!(decode_private_key("garbage").is_err());
    }

    #[test]
    fn ssh_keygen_reads_our_key() {
        let Ok(status) = std::process::Command::new("ssh-keygen").arg("-?").output() else {
            eprintln!("SKIPPED: no ssh-keygen");
            return;
        };
        drop(status);
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate_key().expect("key");
        let identity = Identity {
            agent_id: Uuid::nil(),
            server_url: "http://127.0.0.1:1".into(),
            server_tls_pin_sha256: None,
            ssh_host_key: None,
            heartbeat_interval_secs: 60,
            public_key: openssh_public_key(&key, "outpost-agent@test"),
            enrolled_at: Utc::now(),
        };
        identity.save(dir.path(), &key).expect("save");
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(dir.path().join(KEY_FILE))
            .output()
            .expect("run ssh-keygen");
        assert!(out.status.success(), "{out:?}");
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(strip_comment(&printed), openssh_public_key(&key, ""));
        let (loaded, loaded_key) = Identity::load(dir.path()).expect("load");
        assert_eq!(loaded, identity);
        assert_eq!(loaded_key.to_bytes(), key.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
