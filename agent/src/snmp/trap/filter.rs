//! The gate in front of the SNMP engine: classifies each received datagram
//! before the engine sees it, so every drop is attributed to its source
//! and counted by reason.
//!
//! * Too long, or not a decodable SNMP message: [`Verdict::Malformed`].
//! * v2c with a community not configured: [`Verdict::BadCommunity`].
//! * v3 from an unknown user, below the user's security level, with a
//!   wrong digest (auth key) or undecryptable contents (privacy key):
//!   [`Verdict::AuthFailed`]. The digest is verified and the contents
//!   decrypted here with the keys localized to the message's authoritative
//!   engine ID, exactly as the engine will do after us.
//! * SNMPv1, or a PDU that is not a notification: [`Verdict::Unsupported`].
//!
//! Everything else, and SNMPv3 engine-ID discovery probes (which informs
//! need), is [`Verdict::Forward`]ed to the engine, which answers informs
//! and discovery and keeps the USM time windows.

use std::collections::HashMap;

use async_snmp::ber::Decoder;
use async_snmp::message::{Message, ScopedPdu, V3Message, V3MessageData};
use async_snmp::v3::UsmSecurityParams;
use async_snmp::{DecodeConfig, MasterKeys, Pdu, PduType, SecurityLevel, Value, Version};

use crate::config::V3Credentials;

/// What to do with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the SNMP engine.
    Forward,
    /// Not an SNMP message, truncated, or too long.
    Malformed(String),
    /// v2c with a community that is not configured.
    BadCommunity,
    /// v3 that fails the user-based security model.
    AuthFailed(String),
    /// Well-formed and authentic but not something the receiver takes
    /// (SNMPv1, requests, responses).
    Unsupported(String),
}

/// A configured v3 user: the least security level accepted and the master
/// keys, from which per-engine keys are localized.
struct User {
    level: SecurityLevel,
    keys: MasterKeys,
}

/// The classifier, built once from the configuration.
pub struct Filter {
    max_datagram: usize,
    communities: Vec<Vec<u8>>,
    users: HashMap<Vec<u8>, User>,
}

impl Filter {
    /// A filter accepting `communities` (v2c) and `users` (v3), refusing
    /// datagrams longer than `max_datagram`.
    pub fn new(
        max_datagram: usize,
        communities: impl IntoIterator<Item = Vec<u8>>,
        users: &[V3Credentials],
    ) -> Result<Self, String> {
        let mut table = HashMap::new();
        for user in users {
            let (auth_protocol, auth_password) = &user.auth;
            let keys = MasterKeys::new(
                auth_protocol_of(*auth_protocol),
                auth_password.expose().as_bytes(),
            )
            .and_then(|keys| match &user.privacy {
                None => Ok(keys),
                Some((protocol, password)) => {
                    keys.with_privacy(priv_protocol_of(*protocol), password.expose().as_bytes())
                }
            })
            .map_err(|err| format!("traps user {:?}: unusable keys: {err}", user.user))?;
            let level = if user.privacy.is_some() {
                SecurityLevel::AuthPriv
            } else {
                SecurityLevel::AuthNoPriv
            };
            table.insert(user.user.clone().into_bytes(), User { level, keys });
        }
        Ok(Self {
            max_datagram,
            communities: communities.into_iter().collect(),
            users: table,
        })
    }

    /// The least security level configured for a v3 user, if it is known.
    pub fn user_level(&self, user: &[u8]) -> Option<SecurityLevel> {
        self.users.get(user).map(|u| u.level)
    }

    /// Whether `community` is one of the configured ones (compared without
    /// an early exit, so timing does not tell how much of it matched).
    pub fn community_allowed(&self, community: &[u8]) -> bool {
        self.communities.iter().fold(false, |found, allowed| {
            found | same_bytes(allowed, community)
        })
    }

    /// Classifies one datagram.
    pub fn classify(&self, data: &[u8]) -> Verdict {
        if data.len() > self.max_datagram {
            return Verdict::Malformed(format!(
                "{} bytes, more than the {} allowed",
                data.len(),
                self.max_datagram
            ));
        }
        let message = match Message::decode(data.to_vec().into(), DecodeConfig::DEFAULT) {
            Ok(outcome) => outcome.value,
            Err(err) => return Verdict::Malformed(format!("undecodable SNMP message: {err}")),
        };
        match message {
            Message::Community(message) => {
                if message.version() != Version::V2c {
                    return Verdict::Unsupported(
                        "SNMPv1 trap (only v2c and v3 are received)".to_owned(),
                    );
                }
                if !self.community_allowed(message.community().as_bytes()) {
                    return Verdict::BadCommunity;
                }
                match message.pdu().standard() {
                    Some(pdu) => notification(pdu),
                    None => Verdict::Unsupported("a v1 Trap-PDU in a v2c message".to_owned()),
                }
            }
            Message::V3(message) => self.classify_v3(data, &message),
        }
    }

    fn classify_v3(&self, data: &[u8], message: &V3Message) -> Verdict {
        let usm = match UsmSecurityParams::decode(
            message.security_params().clone(),
            DecodeConfig::DEFAULT,
        ) {
            Ok(outcome) => outcome.value,
            Err(err) => return Verdict::Malformed(format!("undecodable USM parameters: {err}")),
        };
        let name = printable(usm.username());
        let level = message.security_level();
        if level == SecurityLevel::NoAuthNoPriv {
            // Engine-ID discovery (RFC 3414 section 4): an inform sender
            // first learns this receiver's engine ID from the Report the
            // engine answers it with.
            if usm.engine_id().is_empty() && message.global_data().msg_flags().reportable {
                return Verdict::Forward;
            }
            return Verdict::AuthFailed(format!(
                "unauthenticated (noAuthNoPriv) message for user {name:?}"
            ));
        }
        let Some(user) = self.users.get(usm.username().as_ref()) else {
            return Verdict::AuthFailed(format!("unknown user {name:?}"));
        };
        if level < user.level {
            return Verdict::AuthFailed(format!(
                "user {name:?} sent {level:?}, configured for {:?}",
                user.level
            ));
        }
        let (auth_key, priv_key) = match user.keys.localize(usm.engine_id()) {
            Ok(keys) => keys,
            Err(err) => {
                return Verdict::AuthFailed(format!(
                    "user {name:?}: cannot localize keys to the sender's engine ID: {err}"
                ))
            }
        };
        let Some((offset, length)) = UsmSecurityParams::find_auth_params_offset(data) else {
            return Verdict::Malformed("no authentication parameters".to_owned());
        };
        let authentic = length == auth_key.mac_len()
            && async_snmp::v3::auth::verify_message(&auth_key, data, offset, length)
                .unwrap_or(false);
        if !authentic {
            return Verdict::AuthFailed(format!(
                "user {name:?}: wrong digest (wrong auth password or auth protocol)"
            ));
        }
        let decrypted;
        let scoped: &ScopedPdu = match message.data() {
            V3MessageData::Plaintext(scoped) => scoped,
            V3MessageData::Encrypted(ciphertext) => {
                let wrong_priv = || {
                    Verdict::AuthFailed(format!(
                        "user {name:?}: cannot decrypt (wrong privacy password or privacy protocol)"
                    ))
                };
                let Some(priv_key) = priv_key else {
                    return wrong_priv();
                };
                let Ok(plain) = priv_key.decrypt(
                    ciphertext,
                    usm.engine_boots(),
                    usm.engine_time(),
                    usm.priv_params(),
                ) else {
                    return wrong_priv();
                };
                // A wrong key decrypts to noise, which is not a scoped PDU.
                match ScopedPdu::decode(&mut Decoder::new(plain)) {
                    Ok(scoped) => decrypted = scoped,
                    Err(_) => return wrong_priv(),
                }
                &decrypted
            }
        };
        notification(&scoped.pdu)
    }
}

/// Whether `pdu` is a v2 trap or an inform starting with `sysUpTime.0`
/// (TimeTicks) and `snmpTrapOID.0` (an OID), as RFC 3416 requires.
fn notification(pdu: &Pdu) -> Verdict {
    match pdu.pdu_type() {
        PduType::TrapV2 | PduType::InformRequest => {
            let varbinds = pdu.varbinds();
            let prefixed = matches!(
                varbinds,
                [uptime, trap_oid, ..]
                    if matches!(uptime.value, Value::TimeTicks(_))
                        && matches!(trap_oid.value, Value::ObjectIdentifier(_))
            );
            if prefixed {
                Verdict::Forward
            } else {
                Verdict::Malformed(
                    "a notification without sysUpTime.0 and snmpTrapOID.0 first".to_owned(),
                )
            }
        }
        other => Verdict::Unsupported(format!("a {other:?} PDU is not a notification")),
    }
}

/// Compares two byte strings touching every byte of `b`.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut difference = u8::from(a.len() != b.len());
    for (i, byte) in b.iter().enumerate() {
        difference |= a.get(i).copied().unwrap_or(0) ^ byte;
    }
    difference == 0
}

/// Bytes from the wire as text for a log line: lossy UTF-8, control
/// characters replaced, at most 64 characters.
pub fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The same mapping as the poller's (one place knows async-snmp's names).
pub(super) use crate::snmp::backend::{auth_protocol_of, priv_protocol_of};
