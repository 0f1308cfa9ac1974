//! The version this binary reports (heartbeats, `--version`, self-update).
//!
//! It is read from a fixed-size slot in the binary's read-only data,
//! `OUTPOST-AGENT-VERSION:` followed by 32 bytes of NUL-padded version text,
//! filled at build time with the crate's version. A release pipeline may
//! stamp another version into a copy of the binary by rewriting the 32 bytes
//! after the marker (the end-to-end tests do so to publish "new" releases of
//! the very binary under test); nothing else changes.

/// The marker before the version bytes.
pub const MARKER: &[u8] = b"OUTPOST-AGENT-VERSION:";
/// Bytes of version text after the marker.
pub const LEN: usize = 32;

const fn slot() -> [u8; 22 + LEN] {
    let mut out = [0u8; 22 + LEN];
    let mut i = 0;
    while i < MARKER.len() {
        out[i] = MARKER[i];
        i += 1;
    }
    let v = env!("CARGO_PKG_VERSION").as_bytes();
    let mut j = 0;
    while j < v.len() && j < LEN {
        out[MARKER.len() + j] = v[j];
        j += 1;
    }
    out
}

#[used]
static SLOT: [u8; 22 + LEN] = slot();

/// The version stamped into this binary.
pub fn current() -> String {
    // Read through an opaque reference, so the compiler cannot fold the
    // build-time text in and a stamped copy reports its own version.
    let slot: &[u8] = std::hint::black_box(&SLOT[..]);
    let text = &slot[MARKER.len()..];
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    match std::str::from_utf8(&text[..end]) {
        Ok(v) if !v.is_empty() => v.to_owned(),
        _ => env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The Rust target triple this binary was built for (from `build.rs`).
pub const TARGET: &str = env!("OUTPOST_TARGET");

#[cfg(test)]
mod tests {
    #[test]
    fn the_slot_holds_the_crate_version() {
        assert_eq!(super::current(), env!("CARGO_PKG_VERSION"));
        assert_eq!(super::MARKER.len(), 22);
        assert!(super::TARGET.contains('-'));
    }
}
