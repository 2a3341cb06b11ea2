//! Reconnect delays: exponential growth capped at `cap`, with full jitter
//! (a uniformly random delay between zero and the current ceiling). Rancher's
//! agents once reconnected on a fixed timer and stampeded a restarted server;
//! full jitter spreads thousands of delegates over the whole window.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The ceiling for the `attempt`-th consecutive failure (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u64.checked_shl(attempt.min(30)).unwrap_or(u64::MAX);
        let ms = (self.base.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.cap)
    }

    /// A random delay in `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(10), Duration::from_secs(5));
        assert_eq!(b.ceiling(200), Duration::from_secs(5));
    }

    #[test]
    fn jitter_spreads_over_the_whole_window() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
        };
        let delays: Vec<Duration> = (0..2000).map(|_| b.delay(10)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(8)));
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_secs(2))
            .count();
        let high = delays
            .iter()
            .filter(|d| **d > Duration::from_secs(6))
            .count();
        // Uniform over [0, 8 s]: about a quarter in each of these ranges.
        assert!(low > 300 && high > 300, "low {low}, high {high}");
    }
}
