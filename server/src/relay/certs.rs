//! OpenSSH user certificates for engineers, signed by a CA the relay trusts
//! (`[relay] trusted_user_ca_keys`).
//!
//! russh checks the certificate's own signature and its validity period;
//! everything that makes it *ours* is checked here: the signing CA is one we
//! trust, it is a user certificate, the user name is among its principals
//! (a certificate without principals is refused), the validity period holds
//! by our clock, it permits port forwarding, and its critical options are
//! ones we understand and honour (`source-address`; `force-command` cannot
//! be honoured by a relay and is refused, like any unknown option).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    #[error("is signed by a CA the relay does not trust ({0})")]
    UnknownCa(String),
    #[error("is a host certificate, not a user certificate")]
    NotUser,
    #[error("has no principals")]
    NoPrincipals,
    #[error("is not valid for user {0:?}")]
    Principal(String),
    #[error("is not valid at this time")]
    Expired,
    #[error("does not permit port forwarding")]
    NoForwarding,
    #[error("has the critical option {0:?}, which the relay cannot honour")]
    CriticalOption(String),
    #[error("may not be used from {0}")]
    SourceAddress(IpAddr),
}

/// The CAs the relay trusts, as SHA256 fingerprints.
#[derive(Debug, Clone, Default)]
pub struct TrustedCas(Vec<String>);

impl TrustedCas {
    /// Parses OpenSSH public key lines (`ssh-ed25519 AAAA... comment`).
    pub fn parse(lines: &[String]) -> Result<TrustedCas, String> {
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
                format!("relay.trusted_user_ca_keys[{i}]: not an OpenSSH public key: {e}")
            })?;
            out.push(key.fingerprint(HashAlg::Sha256).to_string());
        }
        Ok(TrustedCas(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `cert` for `user` connecting from `peer` at `now`.
    pub fn check(
        &self,
        cert: &Certificate,
        user: &str,
        peer: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<(), CertRefusal> {
        let ca = cert
            .signature_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        if !self.0.contains(&ca) {
            return Err(CertRefusal::UnknownCa(ca));
        }
        if cert.cert_type() != CertType::User {
            return Err(CertRefusal::NotUser);
        }
        if cert.valid_principals().is_empty() {
            return Err(CertRefusal::NoPrincipals);
        }
        if !cert.valid_principals().iter().any(|p| p == user) {
            return Err(CertRefusal::Principal(user.to_string()));
        }
        let now = u64::try_from(now.timestamp()).unwrap_or(0);
        if now < cert.valid_after() || now >= cert.valid_before() {
            return Err(CertRefusal::Expired);
        }
        if !cert.extensions().contains_key("permit-port-forwarding") {
            return Err(CertRefusal::NoForwarding);
        }
        for (name, value) in cert.critical_options().iter() {
            match name.as_str() {
                "source-address" => {
                    if !source_allowed(value, peer) {
                        return Err(CertRefusal::SourceAddress(peer));
                    }
                }
                other => return Err(CertRefusal::CriticalOption(other.to_string())),
            }
        }
        Ok(())
    }
}

/// Whether `peer` is in a `source-address` list: comma-separated addresses
/// and CIDR blocks. A malformed entry matches nothing.
pub fn source_allowed(list: &str, peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    list.split(',').map(str::trim).any(|entry| {
        let (addr, bits) = match entry.split_once('/') {
            Some((a, b)) => (a, b.parse::<u32>().ok()),
            None => (entry, None),
        };
        let Ok(net) = addr.parse::<IpAddr>() else {
            return false;
        };
        match (net, peer) {
            (IpAddr::V4(n), IpAddr::V4(p)) => {
                let bits = bits.unwrap_or(32);
                bits <= 32
                    && prefix_eq(u128::from(u32::from(n)), u128::from(u32::from(p)), bits, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(p)) => {
                let bits = bits.unwrap_or(128);
                bits <= 128 && prefix_eq(u128::from(n), u128::from(p), bits, 128)
            }
            _ => false,
        }
    })
}

fn prefix_eq(a: u128, b: u128, bits: u32, width: u32) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_address_lists() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(source_allowed("127.0.0.1", ip("127.0.0.1")));
        assert!(source_allowed("10.0.0.0/8,127.0.0.0/8", ip("127.1.2.3")));
        assert!(!source_allowed("10.0.0.0/8", ip("127.0.0.1")));
        assert!(source_allowed("0.0.0.0/0", ip("192.0.2.1")));
        assert!(source_allowed("::1", ip("::1")));
        assert!(source_allowed("2001:db8::/32", ip("2001:db8::5")));
        assert!(!source_allowed("2001:db8::/32", ip("2001:db9::5")));
        // An IPv4 peer seen on an IPv6 socket.
        assert!(source_allowed("127.0.0.1", ip("::ffff:127.0.0.1")));
        assert!(!source_allowed("nonsense,10.0.0.0/99", ip("10.0.0.1")));
    }

    #[test]
    fn ca_keys_are_parsed_or_named() {
        assert!(TrustedCas::parse(&[
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ca"
                .into()
        ])
        .is_ok_and(|c| !c.is_empty()));
        let err = TrustedCas::parse(&["ssh-ed25519 AAAA".into()])
            .err()
            .unwrap_or_default();
        assert!(err.contains("relay.trusted_user_ca_keys[0]"), "{err}");
    }
}
