//! The issuer-call budget: how many calls to the issuer a layer may make for
//! credentials it could not verify by itself.
//!
//! A JWT is checked locally, so an attacker sending forged JWTs costs us a signature
//! check. An opaque token (or a session token sent to renew an expired Stytch JWT)
//! can only be checked by asking the issuer, so every distinct well-shaped token an
//! attacker makes up would otherwise become one call: our server amplifies the
//! attack onto the issuer, and the issuer's rate limit then refuses our legitimate
//! calls too. The budget caps those calls per layer, with a concurrency limit (calls
//! in flight) and a token bucket (calls per second, with a burst).
//!
//! Cached answers (including a cached "revoked") cost nothing, and locally verified
//! JWTs never go through the budget, so a flood of garbage cannot lock out users
//! whose tokens verify locally.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AuthError, AuthErrorKind, ConfigError};

/// Default sustained rate: 50 issuer calls per second per layer.
pub const DEFAULT_ISSUER_RATE: u32 = 50;
/// Default burst: 100 calls.
pub const DEFAULT_ISSUER_BURST: u32 = 100;
/// Default limit of issuer calls in flight at once: 32.
pub const DEFAULT_ISSUER_CONCURRENCY: u32 = 32;

/// Budget of issuer calls for credentials that cannot be verified locally: opaque
/// tokens, and the session token sent to renew an expired Stytch JWT.
///
/// A call needs both a free slot (at most [`with_max_concurrent`](Self::with_max_concurrent)
/// calls in flight) and a token from a bucket refilled at
/// [`with_rate`](Self::with_rate) tokens per second, holding at most
/// [`with_burst`](Self::with_burst). Without either, no call is made and the
/// request gets [`IssuerBusy`](crate::AuthErrorKind::IssuerBusy): `503` with a
/// `Retry-After`.
///
/// Not counted: answers served from the opaque-token cache (including "this token
/// is revoked"), JWTs verified locally, and [`fresh`](crate::Guard::fresh)
/// confirmations of sessions that were verified locally.
///
/// # Defaults, and why
///
/// - [`DEFAULT_ISSUER_RATE`] (50/s) and [`DEFAULT_ISSUER_BURST`] (100): a legitimate
///   client costs one call per opaque-token cache window (30 s by default) or one per
///   Stytch JWT lifetime (5 min) when renewing, so 50 calls per second serve about
///   1,500 clients holding opaque tokens, or about 15,000 browsers renewing Stytch
///   JWTs, per server. The burst absorbs a restart, when every client's first request
///   is a cache miss. It also keeps an attacker's garbage at 50 calls per second per
///   server, well under what an issuer lets a project make, so the project is not
///   throttled by its issuer because of the attack.
/// - [`DEFAULT_ISSUER_CONCURRENCY`] (32): with the default 2-second call timeout, a
///   slow issuer ties up at most 32 requests waiting for it; the others are told to
///   come back instead of piling up.
///
/// Raise these for an API whose clients mostly send opaque tokens, sized to what the
/// issuer allows divided by the number of servers.
///
/// # Example
///
/// ```
/// use tower_stepup::IssuerBudget;
///
/// // 200 calls per second, bursts of 400, at most 64 in flight.
/// let budget = IssuerBudget::new().with_rate(200).with_burst(400).with_max_concurrent(64);
/// // Or: 20 calls per second with a burst of 20 (as `STEPUP_ISSUER_RATE=20`).
/// let small = IssuerBudget::per_second(20);
/// assert_eq!(small.rate(), 20);
/// assert_eq!(small.burst(), 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerBudget {
    rate: u32,
    burst: u32,
    max_concurrent: u32,
}

impl Default for IssuerBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl IssuerBudget {
    /// The default budget (see the type's documentation).
    pub const fn new() -> Self {
        Self { rate: DEFAULT_ISSUER_RATE, burst: DEFAULT_ISSUER_BURST, max_concurrent: DEFAULT_ISSUER_CONCURRENCY }
    }

    /// `calls` per second, with a burst of as many; the default concurrency limit.
    pub const fn per_second(calls: u32) -> Self {
        Self { rate: calls, burst: calls, max_concurrent: DEFAULT_ISSUER_CONCURRENCY }
    }

    /// Sustained calls per second (default [`DEFAULT_ISSUER_RATE`]; at least 1).
    #[must_use]
    pub const fn with_rate(mut self, calls_per_second: u32) -> Self {
        self.rate = calls_per_second;
        self
    }

    /// Calls that may be made at once after a quiet period (default
    /// [`DEFAULT_ISSUER_BURST`]; at least 1).
    #[must_use]
    pub const fn with_burst(mut self, calls: u32) -> Self {
        self.burst = calls;
        self
    }

    /// Calls in flight at once (default [`DEFAULT_ISSUER_CONCURRENCY`]; at least 1).
    #[must_use]
    pub const fn with_max_concurrent(mut self, calls: u32) -> Self {
        self.max_concurrent = calls;
        self
    }

    /// Sustained calls per second.
    pub const fn rate(&self) -> u32 {
        self.rate
    }

    /// Largest burst of calls.
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// Calls in flight at once.
    pub const fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.rate == 0 {
            return Err(ConfigError::invalid("issuer budget rate", "at least 1 call per second"));
        }
        if self.burst == 0 {
            return Err(ConfigError::invalid("issuer budget burst", "at least 1 call"));
        }
        if self.max_concurrent == 0 {
            return Err(ConfigError::invalid("issuer budget concurrency", "at least 1 call"));
        }
        Ok(())
    }
}

/// The running budget of one layer.
pub(crate) struct Budget {
    slots: Arc<Semaphore>,
    bucket: Mutex<Bucket>,
    rate: f64,
    burst: f64,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Proof that a call may be made; frees its slot when dropped.
pub(crate) struct Permit {
    _slot: OwnedSemaphorePermit,
}

/// When the concurrency limit is hit: calls take about one timeout at worst, but
/// usually far less; one second is the smallest `Retry-After`.
const BUSY_RETRY: Duration = Duration::from_secs(1);

impl Budget {
    pub(crate) fn new(config: IssuerBudget) -> Self {
        let max = usize::try_from(config.max_concurrent).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            bucket: Mutex::new(Bucket { tokens: f64::from(config.burst), refilled: Instant::now() }),
            rate: f64::from(config.rate.max(1)),
            burst: f64::from(config.burst.max(1)),
        }
    }

    /// Takes a slot and a token, or says when to come back. Never waits: a request
    /// over budget is answered now instead of queueing behind the issuer.
    pub(crate) fn try_acquire(&self) -> Result<Permit, AuthError> {
        let busy = || AuthError::with_detail(AuthErrorKind::IssuerBusy, "issuer-call budget spent");
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| busy().with_retry_after(BUSY_RETRY))?;
        // A panic while holding this lock cannot leave the bucket inconsistent (two
        // plain fields written together), so a poisoned lock is still usable.
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(Permit { _slot: slot })
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            drop(bucket);
            Err(busy().with_retry_after(retry_after(wait)))
        }
    }
}

/// Whole seconds (what `Retry-After` carries), rounded up, at least one.
fn retry_after(seconds: f64) -> Duration {
    // `seconds` is at most 1 / rate with rate >= 1, so the cast cannot overflow.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = seconds.ceil().clamp(1.0, 3600.0) as u64;
    Duration::from_secs(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_refuses_with_retry_after() {
        let budget = Budget::new(IssuerBudget::per_second(1).with_burst(3));
        let permits: Vec<_> = (0..3).map(|_| budget.try_acquire()).collect();
        assert!(permits.iter().all(Result::is_ok));
        drop(permits);
        let error = budget.try_acquire().err().expect("over budget");
        assert_eq!(error.kind(), AuthErrorKind::IssuerBusy);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn concurrency_limit_holds_while_calls_are_in_flight() {
        let budget = Budget::new(IssuerBudget::per_second(100).with_max_concurrent(2));
        let first = budget.try_acquire().expect("first slot");
        let _second = budget.try_acquire().expect("second slot");
        let error = budget.try_acquire().err().expect("no slot left");
        assert_eq!(error.kind(), AuthErrorKind::IssuerBusy);
        assert!(error.retry_after().is_some());
        drop(first);
        assert!(budget.try_acquire().is_ok(), "a finished call frees its slot");
    }

    #[test]
    fn zero_settings_are_refused_at_build() {
        assert!(IssuerBudget::per_second(0).validate().is_err());
        assert!(IssuerBudget::new().with_burst(0).validate().is_err());
        assert!(IssuerBudget::new().with_max_concurrent(0).validate().is_err());
        assert!(IssuerBudget::new().validate().is_ok());
    }
}
