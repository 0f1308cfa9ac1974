//! `outpost-server mailgate`: the command an MTA pipes each message to. It
//! reads one RFC 5322 message on standard input and posts it, unchanged, to
//! `POST /api/v1/mail/inbound`; it needs no config file or database.
//!
//! Its exit status is what the MTA acts on (sysexits.h):
//! - 0: the server has the message, whatever became of it (a case, a note,
//!   or kept for a person: held, refused, malformed, ignored, a repeat);
//!   nothing is bounced;
//! - 75 (EX_TEMPFAIL): try again later: the server is unreachable or slow,
//!   answered 5xx, 429 or 409, or refused the token (so a wrong token keeps
//!   mail queued while it is fixed, rather than bouncing it);
//! - 65 (EX_DATAERR): the server will never take this message (larger than
//!   its 50 MiB transfer limit); the MTA bounces it;
//! - 74 (EX_IOERR): standard input could not be read;
//! - 64 (EX_USAGE): bad arguments (a token file that cannot be read).

use clap::Args;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_IOERR: u8 = 74;
pub const EX_TEMPFAIL: u8 = 75;

#[derive(Debug, Args)]
pub struct GateArgs {
    /// The server's base URL, e.g. https://outpost.example.com.
    #[arg(long)]
    pub url: String,
    /// API token of a user allowed to hand in mail (dispatcher or admin).
    /// Prefer --token-file: arguments are visible to other local users.
    #[arg(
        long,
        env = "OUTPOST_MAILGATE_TOKEN",
        required_unless_present = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the API token (first line).
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the server's certificate (besides the
    /// Web PKI roots).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Give up (exit 75, the MTA retries) after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

fn endpoint(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/api/v1/mail/inbound") {
        base.to_string()
    } else {
        format!("{base}/api/v1/mail/inbound")
    }
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("outpost-server mailgate: {msg}");
    ExitCode::from(code)
}

/// Run the gateway; never panics, always an exit status the MTA understands.
pub async fn run(a: GateArgs) -> ExitCode {
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => match std::fs::read_to_string(f) {
            Ok(t) => t.lines().next().unwrap_or_default().trim().to_string(),
            Err(e) => {
                return fail(
                    EX_USAGE,
                    &format!("cannot read the token file {}: {e}", f.display()),
                )
            }
        },
        (None, None) => return fail(EX_USAGE, "give --token or --token-file"),
    };
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut raw) {
        return fail(
            EX_IOERR,
            &format!("cannot read the message on standard input: {e}"),
        );
    }
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(a.timeout.max(1)))
        .user_agent(concat!("outpost-mailgate/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &a.ca_file {
        let cert = std::fs::read(ca)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string()));
        match cert {
            Ok(c) => client = client.add_root_certificate(c),
            Err(e) => {
                return fail(
                    EX_USAGE,
                    &format!("cannot use the CA file {}: {e}", ca.display()),
                )
            }
        }
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return fail(EX_TEMPFAIL, &format!("HTTP client: {e}")),
    };
    let url = endpoint(&a.url);
    let resp = client
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "message/rfc822")
        .body(raw)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return fail(
                EX_TEMPFAIL,
                &format!("cannot reach {url} ({e}); the MTA will retry"),
            )
        }
    };
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let said = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    match status.as_u16() {
        200..=299 => {
            let mut line = format!("{} (mail message {})", said("outcome"), v["id"]);
            if let Some(n) = v.get("case_number").and_then(|x| x.as_str()) {
                line.push_str(&format!(", case {n}"));
            }
            if v["duplicate"].as_bool() == Some(true) {
                line.push_str(", taken in before");
            }
            if let Some(r) = v.get("reason").and_then(|x| x.as_str()) {
                line.push_str(&format!(": {r}"));
            }
            println!("{line}");
            ExitCode::SUCCESS
        }
        422 => {
            // Malformed: the server kept it for a person; do not bounce.
            eprintln!(
                "outpost-server mailgate: the server kept the message but could not read it: {}",
                said("message")
            );
            ExitCode::SUCCESS
        }
        413 => fail(
            EX_DATAERR,
            &format!(
                "the message is too large for the server: {}",
                said("message")
            ),
        ),
        s => fail(
            EX_TEMPFAIL,
            &format!(
                "the server answered {s} {}; the MTA will retry",
                if said("message").is_empty() {
                    body.chars().take(200).collect()
                } else {
                    said("message")
                }
            ),
        ),
    }
}
