//! The built-in IMAP poller: one task per `[[mail.imap]]` mailbox. Every
//! `interval` it logs in (implicit TLS over rustls, or plain IMAP for a
//! local server), selects the folder, fetches each candidate message with
//! `BODY.PEEK[]` (which leaves it unseen), hands it to [`Mail::take_in`],
//! and only after that succeeded marks it: moved to `move_to`, or flagged
//! `\Seen` (only unseen messages are candidates then). A message whose
//! intake failed (the database is down) stays as it was and is tried at the
//! next poll.
//!
//! Several replicas may poll one mailbox: a message fetched twice is taken
//! in once (intake is idempotent by Message-ID), so no lock is needed.

use futures::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::settings::{ImapSpec, ImapTls, Settings};
use super::Mail;

/// Connect, log-in and command timeout.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Start a poller per configured mailbox; they stop when `stop` turns true.
pub fn start(mail: &Mail, stop: &watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    mail.settings()
        .imap
        .iter()
        .map(|spec| {
            let poller = Poller {
                mail: mail.clone(),
                spec: spec.clone(),
            };
            tokio::spawn(poller.run(stop.clone()))
        })
        .collect()
}

struct Poller {
    mail: Mail,
    spec: ImapSpec,
}

/// What one poll did.
#[derive(Debug, Default)]
struct Round {
    taken: usize,
}

impl Poller {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let every = Settings::interval(&self.spec);
        let name = self.spec.name.clone();
        tracing::info!(mailbox = %name, host = %self.spec.host, folder = %self.folder(), every = ?every, "IMAP poller started");
        loop {
            if *stop.borrow() {
                break;
            }
            match tokio::time::timeout(TIMEOUT * 10, self.poll()).await {
                Ok(Ok(r)) if r.taken > 0 => {
                    tracing::info!(mailbox = %name, messages = r.taken, "IMAP poll took messages in")
                }
                Ok(Ok(_)) => tracing::debug!(mailbox = %name, "IMAP poll: nothing new"),
                Ok(Err(e)) => {
                    tracing::warn!(mailbox = %name, error = %e, "IMAP poll failed; will retry")
                }
                Err(_) => tracing::warn!(mailbox = %name, "IMAP poll timed out; will retry"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
    }

    fn folder(&self) -> &str {
        self.spec.folder.as_deref().unwrap_or("INBOX")
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.spec.ca_file {
            Some(f) => {
                for c in CertificateDer::pem_file_iter(f)
                    .map_err(|e| format!("ca_file {}: {e}", f.display()))?
                {
                    let c = c.map_err(|e| format!("ca_file {}: {e}", f.display()))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("ca_file {}: {e}", f.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    }

    async fn poll(&self) -> Result<Round, String> {
        let s = &self.spec;
        let port = s.port.unwrap_or(match s.tls {
            ImapTls::Tls => 993,
            ImapTls::None => 143,
        });
        let tcp = tokio::time::timeout(
            TIMEOUT,
            tokio::net::TcpStream::connect((s.host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("connecting to {}:{port} timed out", s.host))?
        .map_err(|e| format!("cannot connect to {}:{port}: {e}", s.host))?;
        match s.tls {
            ImapTls::None => self.session(tcp).await,
            ImapTls::Tls => {
                let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls_config()?));
                let name = ServerName::try_from(s.host.clone())
                    .map_err(|e| format!("host {:?}: {e}", s.host))?;
                let tls = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| "TLS handshake timed out".to_string())?
                    .map_err(|e| format!("TLS with {}:{port}: {e}", s.host))?;
                self.session(tls).await
            }
        }
    }

    async fn session<T>(&self, stream: T) -> Result<Round, String>
    where
        T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send + 'static,
    {
        let s = &self.spec;
        let mut client = async_imap::Client::new(stream);
        match client.read_response().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("no IMAP greeting: {e}")),
            None => return Err("the server closed the connection before greeting".into()),
        }
        let mut session = client
            .login(&s.username, &s.password)
            .await
            .map_err(|(e, _)| format!("login as {:?} refused: {e}", s.username))?;
        session
            .select(self.folder())
            .await
            .map_err(|e| format!("cannot select folder {:?}: {e}", self.folder()))?;
        let query = if s.move_to.is_some() { "ALL" } else { "UNSEEN" };
        let mut uids: Vec<u32> = session
            .uid_search(query)
            .await
            .map_err(|e| format!("search: {e}"))?
            .into_iter()
            .collect();
        uids.sort_unstable();
        let source = format!("imap:{}", s.name);
        let mut round = Round::default();
        for uid in uids {
            let mut raw = None;
            {
                let mut fetches = session
                    .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                    .await
                    .map_err(|e| format!("fetch {uid}: {e}"))?;
                while let Some(f) = fetches.next().await {
                    let f = f.map_err(|e| format!("fetch {uid}: {e}"))?;
                    if let Some(b) = f.body() {
                        raw = Some(b.to_vec());
                    }
                }
            }
            let Some(raw) = raw else {
                tracing::warn!(mailbox = %s.name, uid, "the server sent no body for this message; skipped");
                continue;
            };
            // Stop the round if the server cannot keep it: the message stays
            // unmarked and is fetched again next time.
            let intake =
                self.mail.take_in(&raw, &source).await.map_err(|e| {
                    format!("message {uid} not taken in (left in the mailbox): {e}")
                })?;
            tracing::debug!(mailbox = %s.name, uid, outcome = %intake.outcome, "IMAP message taken in");
            match &s.move_to {
                Some(folder) => session
                    .uid_mv(uid.to_string(), folder)
                    .await
                    .map_err(|e| format!("move {uid} to {folder:?}: {e}"))?,
                None => {
                    let updates = session
                        .uid_store(uid.to_string(), "+FLAGS (\\Seen)")
                        .await
                        .map_err(|e| format!("flag {uid} seen: {e}"))?;
                    let _: Vec<_> = updates.collect().await;
                }
            }
            round.taken += 1;
        }
        let _ = session.logout().await;
        Ok(round)
    }
}
