//! In-memory rate limits (GCRA, `governor`): API requests per token or per
//! client address, and sign-in attempts per address. One instance per
//! process: behind several instances each enforces its own share.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A keyed limiter that forgets idle keys so memory stays bounded.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `per_minute` requests a minute, in bursts of up to as many.
    pub fn per_minute(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self { inner: RateLimiter::keyed(Quota::per_minute(n)), clock: DefaultClock::default() }
    }

    /// `Ok` if `key` may go on, else how long to wait.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.inner.len() > 100_000 {
            self.inner.retain_recent();
        }
        self.inner.check_key(key).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Seconds for `Retry-After`: rounded up, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.as_secs() == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_waits() {
        let l = Limiter::per_minute(3);
        for _ in 0..3 {
            assert!(l.check(&"a").is_ok());
        }
        let wait = l.check(&"a").unwrap_err();
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(l.check(&"b").is_ok(), "keys are independent");
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(19_200)), 20);
        assert_eq!(retry_after_secs(Duration::from_secs(20)), 20);
    }
}
