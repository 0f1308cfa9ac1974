//! Rate limiting of rejection log lines: at most one line per source
//! address and reason per window, so a storm of bad datagrams costs a line
//! a minute instead of flooding the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources remembered at most; beyond that, new sources are not logged
/// until old entries expire (their drops are still counted).
const MAX_SOURCES: usize = 1024;

/// One window per (source, reason).
pub struct LogLimiter {
    window: Duration,
    seen: HashMap<(IpAddr, &'static str), Entry>,
}

struct Entry {
    logged_at: Instant,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter allowing one line per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
        }
    }

    /// Whether a line about `reason` from `source` may be written at `now`:
    /// `Some(n)` with the number of lines suppressed since the last one, or
    /// `None` to stay silent.
    pub fn admit(&mut self, source: IpAddr, reason: &'static str, now: Instant) -> Option<u64> {
        if let Some(entry) = self.seen.get_mut(&(source, reason)) {
            if now.saturating_duration_since(entry.logged_at) < self.window {
                entry.suppressed += 1;
                return None;
            }
            let suppressed = entry.suppressed;
            *entry = Entry {
                logged_at: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if self.seen.len() >= MAX_SOURCES {
            let window = self.window;
            self.seen
                .retain(|_, entry| now.saturating_duration_since(entry.logged_at) < window);
            if self.seen.len() >= MAX_SOURCES {
                return None;
            }
        }
        self.seen.insert(
            (source, reason),
            Entry {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_source_and_reason_per_window() {
        let mut limiter = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        assert_eq!(limiter.admit(a, "community", t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(limiter.admit(a, "community", t0), None);
        }
        assert_eq!(limiter.admit(a, "malformed", t0), Some(0));
        assert_eq!(limiter.admit(b, "community", t0), Some(0));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(limiter.admit(a, "community", later), Some(1000));
        assert_eq!(limiter.admit(a, "community", later), None);
    }

    #[test]
    fn bounded_under_a_spoofed_storm() {
        let mut limiter = LogLimiter::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 0..5000u32 {
            if limiter
                .admit(IpAddr::from(i.to_be_bytes()), "malformed", t0)
                .is_some()
            {
                logged += 1;
            }
        }
        assert_eq!(logged, MAX_SOURCES);
        assert!(limiter.seen.len() <= MAX_SOURCES);
        // Once the window has passed, old entries make room again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            limiter.admit([198, 51, 100, 1].into(), "malformed", later),
            Some(0)
        );
        assert!(limiter.seen.len() <= MAX_SOURCES);
    }
}
