//! The built-in IMAP poller: one task per `[[mail.imap]]` mailbox. Every
//! `interval` it logs in (implicit TLS over rustls, STARTTLS, or plain IMAP for a
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
            ImapTls::Starttls | ImapTls::None => 143,
        });
        let tcp = tokio::time::timeout(
            TIMEOUT,
            tokio::net::TcpStream::connect((s.host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("connecting to {}:{port} timed out", s.host))?
        .map_err(|e| format!("cannot connect to {}:{port}: {e}", s.host))?;
        match s.tls {
            ImapTls::None => self.session(tcp, true).await,
            ImapTls::Tls => {
                let tls = self.tls(tcp, port).await?;
                self.session(tls, true).await
            }
            ImapTls::Starttls => {
                let mut tcp = tcp;
                tokio::time::timeout(TIMEOUT, starttls(&mut tcp))
                    .await
                    .map_err(|_| "STARTTLS timed out".to_string())??;
                let tls = self.tls(tcp, port).await?;
                // No second greeting after STARTTLS (RFC 3501 6.2.1).
                self.session(tls, false).await
            }
        }
    }

    async fn tls(
        &self,
        tcp: tokio::net::TcpStream,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let s = &self.spec;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.tls_config()?));
        let name =
            ServerName::try_from(s.host.clone()).map_err(|e| format!("host {:?}: {e}", s.host))?;
        tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS with {}:{port}: {e}", s.host))
    }

    async fn session<T>(&self, stream: T, greeting: bool) -> Result<Round, String>
    where
        T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send + 'static,
    {
        let s = &self.spec;
        let mut client = async_imap::Client::new(stream);
        if greeting {
            match client.read_response().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("no IMAP greeting: {e}")),
                None => return Err("the server closed the connection before greeting".into()),
            }
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

/// The plain-text part of STARTTLS on a fresh connection: the greeting,
/// then `STARTTLS` and its tagged OK. Read a byte at a time, so nothing
/// the TLS handshake needs is consumed here.
async fn starttls(tcp: &mut tokio::net::TcpStream) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let greeting = read_line(tcp).await?;
    if !greeting.starts_with("* OK") {
        return Err(format!("no IMAP greeting before STARTTLS: {greeting:?}"));
    }
    tcp.write_all(b"o1 STARTTLS\r\n")
        .await
        .map_err(|e| format!("sending STARTTLS: {e}"))?;
    loop {
        let line = read_line(tcp).await?;
        if let Some(answer) = line.strip_prefix("o1 ") {
            return if answer.starts_with("OK") {
                Ok(())
            } else {
                Err(format!("the server refused STARTTLS: {answer:?}"))
            };
        }
        if !line.starts_with('*') {
            return Err(format!("unexpected answer to STARTTLS: {line:?}"));
        }
    }
}

/// One CRLF-ended line (at most 8 KiB), without the line end.
async fn read_line(tcp: &mut tokio::net::TcpStream) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::new();
    loop {
        let b = tcp
            .read_u8()
            .await
            .map_err(|e| format!("reading the server's answer: {e}"))?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 8192 {
            return Err("the server's line is longer than 8 KiB".into());
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}
