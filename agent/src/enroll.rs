//! The `enroll` command: generate a key pair locally, exchange the one-time
//! token for an identity, store it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use outpost_protocol::{EnrollRequest, PROTOCOL_VERSION};

use crate::collect::host;
use crate::identity::{self, Identity};
use crate::uplink::{self, tls};

/// Enrols with `server` using `token` and stores the identity in `dir`.
/// Refuses to replace an existing identity unless `force`.
pub async fn enroll(server: &str, token: &str, dir: &Path, force: bool) -> Result<Identity> {
    let server = server.trim_end_matches('/');
    uplink::check_url(server)?;
    if token.trim().is_empty() {
        bail!("the enrolment token is empty");
    }
    if Identity::exists(dir) && !force {
        bail!(
            "{} already holds an identity; pass --force to replace it (the old one stops working once the server revokes it)",
            Identity::path(dir).display()
        );
    }
    let key = identity::generate_key()?;
    let hostname = host::hostname();
    let public_key = identity::openssh_public_key(
        &key,
        &format!("outpost-agent@{}", hostname.replace(' ', "-")),
    );
    let request = EnrollRequest {
        protocol_version: PROTOCOL_VERSION,
        token: token.trim().to_owned(),
        public_key: public_key.clone(),
        hostname,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
    };
    let response = uplink::enroll(server, &request)
        .await
        .context("enrolment failed")?;
    let pin = match response.server_tls_pin_sha256.as_deref() {
        Some(pin) => Some(tls::parse_pin(pin).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let identity = Identity {
        agent_id: response.agent_id,
        server_url: server.to_owned(),
        server_tls_pin_sha256: pin,
        ssh_host_key: response.ssh_host_key,
        heartbeat_interval_secs: response.heartbeat_interval_secs.max(1),
        public_key,
        enrolled_at: Utc::now(),
    };
    identity.save(dir, &key)?;
    Ok(identity)
}
