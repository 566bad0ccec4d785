//! The loaded RBAC policy, refreshed on use (as stytch-node's `PolicyCache`), with
//! one fetch at a time and the last good policy kept when a refresh fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use super::policy::RbacPolicy;
use super::stytch::StytchRbac;
use crate::error::{AuthError, AuthErrorKind};

/// Longest wait before a failed refresh is tried again (shorter when the refresh
/// interval is): the stale policy serves meanwhile, and one request per attempt
/// pays the issuer's latency.
const RETRY_AFTER_FAILED_REFRESH: Duration = Duration::from_secs(30);

struct Loaded {
    policy: Arc<RbacPolicy>,
    /// When the policy is due to be fetched again.
    refresh_at: Instant,
}

/// A first load that failed: requests that arrived before it started share its
/// error instead of each asking again.
struct Failed {
    started: Instant,
    error: AuthError,
}

pub(crate) struct PolicyCache {
    source: StytchRbac,
    current: ArcSwapOption<Loaded>,
    /// Held by the one fetch in progress.
    fetching: tokio::sync::Mutex<Option<Failed>>,
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache").field("url", &self.source.policy_url()).finish_non_exhaustive()
    }
}

impl PolicyCache {
    pub(crate) fn new(source: StytchRbac) -> Self {
        Self { source, current: ArcSwapOption::empty(), fetching: tokio::sync::Mutex::new(None) }
    }

    pub(crate) fn check(&self) -> Result<(), crate::error::ConfigError> {
        self.source.check()
    }

    /// The loaded policy, when there is one and it is not due for a refresh: the
    /// guard then judges without waiting. One atomic load.
    pub(crate) fn ready(&self, now: Instant) -> Option<Arc<RbacPolicy>> {
        let loaded = self.current.load();
        loaded.as_ref().filter(|l| now < l.refresh_at).map(|l| Arc::clone(&l.policy))
    }

    /// The loaded policy, due for a refresh or not.
    pub(crate) fn loaded(&self) -> Option<Arc<RbacPolicy>> {
        self.current.load().as_ref().map(|l| Arc::clone(&l.policy))
    }

    /// The policy to judge a request that arrived at `arrival` by: the loaded one
    /// while fresh; when due, refreshed by this request if no other is refreshing
    /// (others use the loaded one meanwhile), kept when the refresh fails; when none
    /// was ever loaded, loaded now, and an error when that fails.
    pub(crate) async fn get(&self, arrival: Instant) -> Result<Arc<RbacPolicy>, AuthError> {
        if let Some(policy) = self.ready(Instant::now()) {
            return Ok(policy);
        }
        if let Some(stale) = self.loaded() {
            let Ok(_fetching) = self.fetching.try_lock() else { return Ok(stale) };
            // Another request may have refreshed between the two looks.
            if let Some(policy) = self.ready(Instant::now()) {
                return Ok(policy);
            }
            return Ok(match self.source.fetch().await {
                Ok(policy) => self.store(policy),
                Err(error) => {
                    tracing::warn!(%error, "RBAC policy refresh failed; the last loaded policy stays in use");
                    let retry = RETRY_AFTER_FAILED_REFRESH.min(self.source.refresh);
                    self.current.store(Some(Arc::new(Loaded {
                        policy: Arc::clone(&stale),
                        refresh_at: Instant::now() + retry,
                    })));
                    stale
                }
            });
        }
        let mut failed = self.fetching.lock().await;
        if let Some(policy) = self.loaded() {
            return Ok(policy);
        }
        if let Some(failed) = failed.as_ref().filter(|f| f.started >= arrival) {
            return Err(failed.error.clone());
        }
        let started = Instant::now();
        match self.source.fetch().await {
            Ok(policy) => {
                *failed = None;
                Ok(self.store(policy))
            }
            Err(error) => {
                tracing::error!(%error, "RBAC policy could not be loaded; permission checks fail closed");
                let error = AuthError::with_detail(AuthErrorKind::AuthorityUnavailable, "RBAC policy unavailable")
                    .with_retry_after(Duration::from_secs(1));
                *failed = Some(Failed { started, error: error.clone() });
                Err(error)
            }
        }
    }

    fn store(&self, policy: RbacPolicy) -> Arc<RbacPolicy> {
        let policy = Arc::new(policy);
        let refresh_at = Instant::now() + self.source.refresh;
        self.current.store(Some(Arc::new(Loaded { policy: Arc::clone(&policy), refresh_at })));
        tracing::debug!("RBAC policy loaded");
        policy
    }
}
