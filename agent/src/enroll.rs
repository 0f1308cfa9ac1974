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
///
/// `tls_pin` (from the operator, who got it with the token) makes the agent
/// trust exactly that server key, as for a self-signed certificate; without
/// it the server's certificate must validate against the system's roots.
/// Either way the agent keeps the pin the server announces and trusts only
/// that key from then on; a server announcing a pin other than the key it
/// presented is refused (something in between is terminating TLS).
pub async fn enroll(
    server: &str,
    token: &str,
    tls_pin: Option<&str>,
    dir: &Path,
    force: bool,
) -> Result<Identity> {
    let server = server.trim_end_matches('/');
    uplink::check_url(server)?;
    let given_pin = match tls_pin {
        Some(pin) => Some(tls::parse_pin(pin).map_err(anyhow::Error::msg)?),
        None => None,
    };
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
    let enrolled = uplink::enroll(server, &request, given_pin.as_deref())
        .await
        .map_err(|err| match (&err, &given_pin) {
            (uplink::UplinkError::Unreachable(text), None) if text.contains("certificate") => {
                anyhow::anyhow!("{err}; if the server's certificate is self-signed, pass --tls-pin with the pin shown when the token was made")
            }
            _ => anyhow::Error::new(err),
        })
        .context("enrolment failed")?;
    let response = enrolled.response;
    let announced = match response.server_tls_pin_sha256.as_deref() {
        Some(pin) => {
            Some(tls::parse_pin(pin).map_err(|e| anyhow::anyhow!("the server's answer: {e}"))?)
        }
        None => None,
    };
    if let (Some(announced), Some(seen)) = (&announced, &enrolled.seen_pin) {
        if announced != seen {
            bail!(
                "the server announces TLS pin {announced} but presented a key with pin {seen}; \
                 is something between this host and the server terminating TLS? \
                 (the server's agents.server_tls_pin must name the key agents connect to)"
            );
        }
    }
    // The announced pin, else the one the operator gave (then checked by
    // the connection itself).
    let pin = announced.or(given_pin);
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
