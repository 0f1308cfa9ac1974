//! The pure arithmetic of a campaign: splitting the eligible devices into
//! waves (by percentage or explicit groups) and judging a wave against the
//! success and error thresholds.

/// How many of `n` devices must succeed for a wave to pass at `threshold`
/// percent (rounded up: 90% of 3 is 3).
pub fn required(n: usize, threshold: u8) -> usize {
    (n * usize::from(threshold)).div_ceil(100)
}

/// Whether failures make the success threshold unreachable: more than
/// `n - required` of the wave failed.
pub fn unreachable(n: usize, failed: usize, threshold: u8) -> bool {
    failed > n - required(n, threshold).min(n)
}

/// Whether `failed` of `total` devices is over the error threshold (percent).
pub fn over_errors(total: usize, failed: usize, threshold: u8) -> bool {
    total > 0 && failed * 100 > usize::from(threshold) * total
}

/// Splits `n` devices (in order) into waves of the given percentages
/// (summing to 100): the wave numbers (1-based) of each device. Boundaries
/// are the cumulative shares rounded up, so a 10% first wave of 5 devices
/// holds 1. Waves left empty (more waves than devices) are dropped and the
/// later ones renumbered, so every wave holds at least one device.
pub fn by_percent(n: usize, percents: &[u32]) -> Vec<i64> {
    let mut bounds = Vec::with_capacity(percents.len());
    let mut cumulative = 0usize;
    for p in percents {
        cumulative += *p as usize;
        bounds.push((n * cumulative).div_ceil(100).min(n));
    }
    let mut waves = Vec::with_capacity(n);
    let mut start = 0;
    let mut number = 0;
    for end in bounds {
        if end > start {
            number += 1;
            waves.extend(std::iter::repeat_n(number, end - start));
            start = end;
        }
    }
    // Rounding never leaves devices out (the last bound is n), but be sure.
    waves.resize(n, number.max(1));
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_rounds_up() {
        assert_eq!(required(3, 90), 3);
        assert_eq!(required(3, 60), 2);
        assert_eq!(required(10, 90), 9);
        assert_eq!(required(4, 0), 0);
        assert_eq!(required(4, 100), 4);
    }

    #[test]
    fn unreachable_after_enough_failures() {
        assert!(!unreachable(3, 0, 100));
        assert!(unreachable(3, 1, 100));
        assert!(!unreachable(3, 1, 60));
        assert!(unreachable(3, 2, 60));
        assert!(!unreachable(3, 3, 0));
    }

    #[test]
    fn error_threshold() {
        assert!(!over_errors(0, 0, 0));
        assert!(!over_errors(10, 2, 20));
        assert!(over_errors(10, 3, 20));
        assert!(over_errors(5, 1, 0));
    }

    #[test]
    fn waves_by_percent() {
        assert_eq!(by_percent(5, &[20, 80]), vec![1, 2, 2, 2, 2]);
        assert_eq!(by_percent(5, &[10, 90]), vec![1, 2, 2, 2, 2]);
        assert_eq!(
            by_percent(10, &[10, 40, 50]),
            vec![1, 2, 2, 2, 2, 3, 3, 3, 3, 3]
        );
        assert_eq!(by_percent(1, &[10, 40, 50]), vec![1]);
        assert_eq!(by_percent(2, &[10, 40, 50]), vec![1, 2]);
        assert_eq!(by_percent(3, &[100]), vec![1, 1, 1]);
        assert_eq!(by_percent(0, &[50, 50]), Vec::<i64>::new());
    }
}
