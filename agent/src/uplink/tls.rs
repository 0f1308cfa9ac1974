//! TLS for the uplink: ordinary WebPKI validation, or, once the server gave
//! a pin at enrolment, trust in exactly one server key.
//!
//! The pin is the SHA-256 of the DER SubjectPublicKeyInfo of the server's
//! end-entity certificate. A pinned connection accepts a certificate whose
//! key matches the pin (even self-signed, or for another name) and refuses
//! every other certificate, whatever CA signed it. The handshake signature
//! is still checked against that key, so only the holder of the pinned
//! private key can complete it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert_der: &[u8]) -> Result<String, rustls::Error> {
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(hex::encode(Sha256::digest(
        cert.subject_public_key_info().as_ref(),
    )))
}

pub use outpost_protocol::parse_tls_pin as parse_pin;

/// A rustls client configuration trusting only the pinned key.
pub fn pinned_config(pin: &str) -> Result<rustls::ClientConfig, String> {
    let pin = parse_pin(pin)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinVerifier {
        pin,
        provider: Arc::clone(&provider),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("TLS setup: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[derive(Debug)]
struct PinVerifier {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = spki_sha256(end_entity)?;
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            tracing::error!(
                expected = %self.pin,
                seen = %seen,
                "the server's TLS key does not match the pin it must have"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_config_needs_a_pin() {
        let pin = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        assert!(pinned_config(pin).is_ok());
        assert!(pinned_config("abc").is_err());
    }

    #[test]
    fn spki_pin_matches_openssl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("k.pem");
        let cert = dir.path().join("c.der");
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args([
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-days",
                "1",
                "-outform",
                "DER",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output();
        if !made.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("SKIPPED: no openssl to make a certificate");
            return;
        }
        // openssl's own SPKI digest of the same key.
        let spki = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key)
            .output()
            .expect("openssl pkey");
        let expected = hex::encode(Sha256::digest(&spki.stdout));
        let der = std::fs::read(&cert).expect("read cert");
        assert_eq!(spki_sha256(&der).expect("pin"), expected);
    }
}
