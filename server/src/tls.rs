//! The server's own TLS: certificate and key from PEM files, the key's pin
//! for agents, and a listener that hands axum finished TLS connections.
//!
//! The pin is the hex SHA-256 of the DER SubjectPublicKeyInfo of the
//! certificate's key (what `openssl pkey -pubout -outform DER | sha256sum`
//! prints). Agents learn it at enrolment and from then on trust exactly that
//! key, so a self-signed certificate is as good as a CA-signed one and
//! renewing the certificate with the same key (`certbot --reuse-key`) keeps
//! every agent connected.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client has this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many handshakes at once; more connections wait in the
/// kernel's accept queue.
const MAX_HANDSHAKES: usize = 256;

/// The loaded certificate chain and key.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    /// Hex SHA-256 of the key's SubjectPublicKeyInfo.
    pub pin: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("pin", &self.pin).finish()
    }
}

impl Tls {
    /// Loads a PEM certificate chain (leaf first) and its PEM private key
    /// (PKCS#8, PKCS#1 or SEC1), checking that they belong together.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("server.tls_cert: cannot read {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| {
                format!(
                    "server.tls_cert: {} is not PEM certificates",
                    cert.display()
                )
            })?;
        if chain.is_empty() {
            bail!(
                "server.tls_cert: {} holds no CERTIFICATE block",
                cert.display()
            );
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|err| {
            anyhow::anyhow!(
                "server.tls_key: {} is not a PEM private key: {err}",
                key.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing = provider
            .key_provider
            .load_private_key(key)
            .context("server.tls_key: unsupported private key type")?;
        let certified = rustls::sign::CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .context("server.tls_key does not belong to the certificate in server.tls_cert")?;
        let spki = certified
            .key
            .public_key()
            .context("server.tls_key: cannot derive the public key for the pin")?;
        let pin = hex::encode(Sha256::digest(spki.as_ref()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            pin,
        })
    }
}

/// A listener yielding connections whose TLS handshake has finished.
///
/// Handshakes run in their own tasks, bounded in number and time, so a slow
/// or silent client never holds up the next one.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: &Tls) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::clone(&tls.config));
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and the like: back off, as axum does.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(err)) => {
                    tracing::debug!(peer = %peer, error = %err, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (it only does when this listener is
            // dropped): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(args: &[&str]) -> Option<std::process::Output> {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
    }

    #[test]
    fn pin_matches_openssl_and_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| dir.path().join(n).display().to_string();
        let made = openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            "-keyout",
            &p("k.pem"),
            "-out",
            &p("c.pem"),
        ]);
        if made.is_none() {
            eprintln!("SKIPPED: no openssl to make a certificate");
            return;
        }
        let spki = openssl(&["pkey", "-pubout", "-outform", "DER", "-in", &p("k.pem")])
            .expect("openssl pkey");
        let tls = Tls::load(Path::new(&p("c.pem")), Path::new(&p("k.pem"))).expect("load");
        assert_eq!(tls.pin, hex::encode(Sha256::digest(&spki.stdout)));

        openssl(&["genpkey", "-algorithm", "ed25519", "-out", &p("other.pem")]).expect("genpkey");
        let err = Tls::load(Path::new(&p("c.pem")), Path::new(&p("other.pem")))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("does not belong"), "{err}");

        std::fs::write(p("junk.pem"), "not pem").expect("write");
        let err = Tls::load(Path::new(&p("junk.pem")), Path::new(&p("k.pem")))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("server.tls_cert"), "{err}");
        let err = Tls::load(Path::new(&p("c.pem")), Path::new(&p("junk.pem")))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("server.tls_key"), "{err}");
    }
}
