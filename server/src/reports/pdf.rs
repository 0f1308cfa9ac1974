//! HTML to PDF by headless Chromium's print-to-PDF.
//!
//! Why Chromium and not a Rust PDF crate: the report is laid out once, as
//! HTML, for the console and the PDF alike; Chromium is already a peer of
//! the project (the console's browser tests), and it handles text, tables
//! and fonts faithfully. A PDF crate would need a second layout of every
//! table by hand. The cost is a browser on the server: where none is
//! installed, PDF requests fail with a clear error (503) naming the
//! `reports.chromium` key, and everything else works.
//!
//! Each print runs in a fresh temporary directory (the HTML, Chromium's
//! profile, the PDF), is bounded by `reports.pdf_timeout_secs`, and its
//! output is checked to be a PDF.

use std::path::{Path, PathBuf};
use tokio::process::Command;

use super::Settings;
use crate::error::{Error, Result};

/// The Chromium binary to run: the configured one, else the first found on
/// the PATH.
pub fn chromium(settings: &Settings) -> Result<PathBuf> {
    if let Some(p) = &settings.chromium {
        if p.is_file() {
            return Ok(p.clone());
        }
        return Err(Error::Unavailable(format!(
            "PDF reports need Chromium, and reports.chromium = {} is not a file",
            p.display()
        )));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::Unavailable(
        "PDF reports need Chromium: install it (Debian: apt install chromium) or set \
         reports.chromium to its path; the HTML report works without it"
            .into(),
    ))
}

/// Print `html` to PDF.
pub async fn print(settings: &Settings, html: &str) -> Result<Vec<u8>> {
    let binary = chromium(settings)?;
    let dir = tempfile::Builder::new()
        .prefix("outpost-report-")
        .tempdir()
        .map_err(|e| Error::Internal(format!("cannot make a temporary directory: {e}")))?;
    let page = dir.path().join("report.html");
    let out = dir.path().join("report.pdf");
    std::fs::write(&page, html)
        .map_err(|e| Error::Internal(format!("cannot write {}: {e}", page.display())))?;
    run(&binary, dir.path(), &page, &out, settings.pdf_timeout).await?;
    let bytes = std::fs::read(&out).map_err(|e| {
        Error::Internal(format!("Chromium ({}) wrote no PDF: {e}", binary.display()))
    })?;
    if !bytes.starts_with(b"%PDF-") {
        return Err(Error::Internal(format!(
            "Chromium ({}) wrote something that is not a PDF",
            binary.display()
        )));
    }
    Ok(bytes)
}

async fn run(
    binary: &Path,
    dir: &Path,
    page: &Path,
    out: &Path,
    timeout: std::time::Duration,
) -> Result<()> {
    let mut cmd = Command::new(binary);
    cmd.arg("--headless")
        // The server may run as root in containers, where the sandbox
        // cannot start; the page is our own HTML without scripts.
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--no-pdf-header-footer")
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .env("HOME", dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        Error::Unavailable(format!(
            "cannot run Chromium ({}) for the PDF: {e}; set reports.chromium",
            binary.display()
        ))
    })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| Error::Internal(format!("Chromium failed: {e}")))?,
        Err(_) => {
            return Err(Error::Internal(format!(
                "Chromium took longer than {} s to print the PDF (reports.pdf_timeout_secs)",
                timeout.as_secs()
            )))
        }
    };
    if !output.status.success() && !out.exists() {
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: String = err.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        return Err(Error::Internal(format!(
            "Chromium ({}) failed ({}): {tail}",
            binary.display(),
            output.status
        )));
    }
    Ok(())
}
