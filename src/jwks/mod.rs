//! The issuer's signing keys: where they come from ([`KeySource`]), how they are
//! cached and refreshed ([`JwksConfig`]).
//!
//! Reads are lock-free: the usable keys are an immutable snapshot behind an
//! [`ArcSwap`], replaced whole by a refresh. A token with an unknown `kid` triggers a
//! fetch drawn from a small budget (a token bucket, see
//! [`JwksConfig::with_unknown_kid_fetches`]); concurrent requests wait for that one
//! fetch, never for a lock held across the network. When no fetch after the request's
//! arrival could be made or succeed, the answer is "keys unavailable" (`503`), not
//! "unknown key" (`401`): we cannot tell whether the token is good. A background task
//! refreshes the set on the schedule the issuer asks for (`Cache-Control: max-age`,
//! bounded), and when a fetch fails the last good set keeps serving, up to
//! [`JwksConfig::with_max_stale`].

mod algorithm;
mod key_set;
mod public_key;

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Deserialize;
use tokio::sync::watch;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub(crate) use key_set::KeySet;

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::http_client;

/// Where the signing keys come from.
///
/// # Example
///
/// ```
/// use tower_stepup::KeySource;
///
/// let stytch = KeySource::url("https://test.stytch.com/v1/sessions/jwks/project-test-123");
/// let oidc = KeySource::discovery("https://login.example.com");
/// let fixed = KeySource::from_json(r#"{"keys": []}"#).unwrap();
/// # let _ = (stytch, oidc, fixed);
/// ```
#[derive(Clone)]
pub struct KeySource {
    kind: SourceKind,
}

#[derive(Clone)]
enum SourceKind {
    Url(String),
    Discovery(String),
    Static(String),
}

impl KeySource {
    /// Keys fetched from a JWKS URL.
    pub fn url(url: impl Into<String>) -> Self {
        Self { kind: SourceKind::Url(url.into()) }
    }

    /// Keys found through OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`
    /// gives `jwks_uri`. The document's `issuer` must equal `issuer` exactly.
    pub fn discovery(issuer: impl Into<String>) -> Self {
        Self { kind: SourceKind::Discovery(issuer.into()) }
    }

    /// A fixed key set (a JWKS JSON document), never refreshed: for tests and for
    /// issuers whose keys are pinned in configuration.
    pub fn from_json(jwks: &str) -> Result<Self, ConfigError> {
        serde_json::from_str::<serde_json::Value>(jwks).map_err(|e| ConfigError::invalid("key set", e.to_string()))?;
        Ok(Self { kind: SourceKind::Static(jwks.to_owned()) })
    }
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            SourceKind::Url(url) => f.debug_tuple("Url").field(url).finish(),
            SourceKind::Discovery(issuer) => f.debug_tuple("Discovery").field(issuer).finish(),
            SourceKind::Static(_) => f.write_str("Static(..)"),
        }
    }
}

/// How the key set is fetched, cached and refreshed.
///
/// In a layer with several [issuer configurations](crate::IssuerConfig), each
/// issuer's key set follows these settings on its own: its own refresh schedule
/// and its own budget of fetches for unknown `kid`s, so that made-up `kid`s in one
/// issuer's name never hold back another issuer's keys.
///
/// Defaults: refresh every 10 minutes unless the issuer's `Cache-Control: max-age`
/// says otherwise (bounded to 1 minute … 24 hours); tokens with an unknown `kid` may
/// cause a burst of 5 fetches, then one every 5 seconds (see
/// [`with_unknown_kid_fetches`](Self::with_unknown_kid_fetches)); a failed refresh
/// keeps the last good set for up to 12 hours; each fetch times out after 5 seconds;
/// a document over 256 KiB or with more than 100 keys is refused; algorithms
/// RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_stepup::JwksConfig;
///
/// let config = JwksConfig::default()
///     .with_unknown_kid_fetches(3, Duration::from_secs(10))
///     .with_max_stale(Duration::from_secs(3600));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct JwksConfig {
    pub(crate) default_refresh: Duration,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) unknown_kid_burst: u32,
    pub(crate) unknown_kid_every: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_keys: usize,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) allow_http: bool,
}

impl Default for JwksConfig {
    fn default() -> Self {
        Self {
            default_refresh: Duration::from_secs(600),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(24 * 3600),
            unknown_kid_burst: 5,
            unknown_kid_every: Duration::from_secs(5),
            max_stale: Duration::from_secs(12 * 3600),
            fetch_timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
            max_keys: 100,
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
            ],
            allow_http: false,
        }
    }
}

impl JwksConfig {
    /// Refresh interval when the issuer sends no `Cache-Control: max-age` (default 10 min).
    pub fn with_default_refresh(mut self, interval: Duration) -> Self {
        self.default_refresh = interval;
        self
    }
    /// Bounds applied to the issuer's `max-age` (default 1 min … 24 h).
    pub fn with_refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max;
        self
    }
    /// The budget of fetches caused by tokens that name a key we do not hold: up to
    /// `burst` fetches at once, then one more every `every` (a token bucket). Default:
    /// a burst of 5, then one every 5 seconds.
    ///
    /// All requests waiting for keys share the fetch in flight, so a flood of made-up
    /// `kid`s costs the issuer at most `burst + t / every` JWKS requests in any period
    /// `t` (with the defaults: 5, then 12 a minute), on top of the scheduled refreshes.
    /// A key the issuer publishes is found by the next fetch: at once when budget is
    /// left, else within `every` (plus the fetch itself), even during such a flood.
    ///
    /// A token naming an unknown key is refused as `401 invalid_token`
    /// ([`UnknownKey`](crate::AuthErrorKind::UnknownKey)) only when a fetch made after
    /// the request arrived (or joined by it) succeeded without that key. When the
    /// budget is spent, or the fetch fails, the answer is
    /// [`KeySetUnavailable`](crate::AuthErrorKind::KeySetUnavailable) (`503`, with a
    /// `Retry-After` of when the budget allows the next fetch, and at least `every`
    /// after a failed fetch): whether the token is good cannot be told. Tokens of keys
    /// already held never wait for, nor spend, this budget.
    ///
    /// A `burst` of 0 is raised to 1; an `every` of zero is refused when the layer is
    /// built.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_stepup::JwksConfig;
    ///
    /// // At most 2 fetches at once, then one every 10 seconds.
    /// let config = JwksConfig::default().with_unknown_kid_fetches(2, Duration::from_secs(10));
    /// # let _ = config;
    /// ```
    pub fn with_unknown_kid_fetches(mut self, burst: u32, every: Duration) -> Self {
        self.unknown_kid_burst = burst.max(1);
        self.unknown_kid_every = every;
        self
    }

    /// A budget of one fetch per `cooldown` for unknown `kid`s: the same as
    /// [`with_unknown_kid_fetches(1, cooldown)`](Self::with_unknown_kid_fetches).
    ///
    /// Kept for existing configurations. Prefer `with_unknown_kid_fetches` with a burst
    /// above one: with a single fetch per `cooldown`, one made-up `kid` sent just
    /// before the issuer publishes a new key holds every token of that key at `503`
    /// for up to `cooldown`. Unlike earlier versions, a token whose key could not be
    /// looked for within the cooldown is answered `503` (with `Retry-After`), not `401`.
    pub fn with_unknown_kid_cooldown(self, cooldown: Duration) -> Self {
        // A zero cooldown used to mean "no limit" in practice (1 ms): keep it working.
        self.with_unknown_kid_fetches(1, cooldown.max(Duration::from_millis(1)))
    }
    /// How long the last good key set keeps serving while refreshes fail (default 12 h).
    pub fn with_max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }
    /// Timeout of each fetch (default 5 s).
    pub fn with_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }
    /// Largest accepted JWKS document (default 256 KiB).
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
    /// Most keys accepted in one set (default 100).
    pub fn with_max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }
    /// The algorithm allow-list. HMAC and `none` are never accepted, whatever is given.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }
    /// Allows plain `http` URLs for non-loopback hosts (default: only `https`, and
    /// `http` on loopback).
    ///
    /// # ⚠️ Warning
    /// Keys fetched over plain http can be replaced by anyone on the path.
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.min_refresh > self.max_refresh {
            return Err(ConfigError::invalid("refresh bounds", "min is above max"));
        }
        if self.unknown_kid_every.is_zero() {
            return Err(ConfigError::invalid("unknown kid fetches", "the refill interval must be above zero"));
        }
        if self.fetch_timeout.is_zero() {
            return Err(ConfigError::invalid("fetch timeout", "must be above zero"));
        }
        if self.algorithms.iter().any(|a| a.is_hmac()) {
            return Err(ConfigError::invalid("algorithms", "HMAC algorithms cannot be used with a public key set"));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::invalid("algorithms", "the allow-list is empty"));
        }
        Ok(())
    }
}

/// The live key set of one layer.
pub(crate) struct KeyStore {
    keys: ArcSwap<KeySet>,
    fetcher: Option<Fetcher>,
    /// Coalesces unknown-`kid` refreshes and holds their budget.
    gate: Mutex<Gate>,
    last_success: Mutex<Option<Instant>>,
    config: JwksConfig,
}

/// A `Retry-After` from a wait: whole seconds are its unit, so at least one; at most
/// an hour, whatever interval was configured.
fn retry_after(wait: Duration) -> Duration {
    wait.clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Unknown-`kid` fetches: the one in flight, and the budget for the next ones.
struct Gate {
    budget: Bucket,
    /// The outcome of the fetch in flight, `None` inside until it ends.
    in_flight: Option<watch::Receiver<Option<Result<(), AuthError>>>>,
}

/// A token bucket: `burst` tokens, one more every `every`.
#[derive(Debug)]
struct Bucket {
    burst: u32,
    every: Duration,
    tokens: u32,
    /// When the next token is counted from (meaningless while the bucket is full).
    refilled_at: Instant,
}

impl Bucket {
    fn new(burst: u32, every: Duration, now: Instant) -> Self {
        Self { burst, every, tokens: burst, refilled_at: now }
    }

    fn refill(&mut self, now: Instant) {
        if self.tokens >= self.burst {
            self.refilled_at = now;
            return;
        }
        let every = self.every.as_nanos().max(1);
        let earned = now.saturating_duration_since(self.refilled_at).as_nanos() / every;
        if earned == 0 {
            return;
        }
        let room = self.burst - self.tokens;
        if earned >= u128::from(room) {
            self.tokens = self.burst;
            self.refilled_at = now;
        } else {
            // `earned < room <= u32::MAX`, so these conversions hold.
            let earned = u32::try_from(earned).unwrap_or(room);
            self.tokens += earned;
            // Never past `now`: at most `earned * every` after the last refill.
            self.refilled_at = self.refilled_at.checked_add(self.every.saturating_mul(earned)).unwrap_or(now);
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens == 0 {
            return Err(self.next_in(now));
        }
        self.tokens -= 1;
        Ok(())
    }

    /// How long until a token is there (zero when one is).
    fn next_in(&self, now: Instant) -> Duration {
        if self.tokens > 0 {
            return Duration::ZERO;
        }
        // A configured interval too large for the clock: "not in any foreseeable time".
        self.refilled_at.checked_add(self.every).map_or(Duration::MAX, |at| at.saturating_duration_since(now))
    }
}

struct Fetcher {
    client: reqwest::Client,
    target: Target,
}

enum Target {
    Jwks(reqwest::Url),
    Discovery { issuer: String, discovery_url: reqwest::Url, jwks_uri: ArcSwapOption<reqwest::Url> },
}

impl KeyStore {
    pub(crate) fn new(source: KeySource, config: JwksConfig) -> Result<Arc<Self>, ConfigError> {
        config.validate()?;
        let client = || http_client::build_client(config.fetch_timeout);
        let (keys, fetcher) = match source.kind {
            SourceKind::Static(json) => {
                let set =
                    KeySet::parse(json.as_bytes(), &config.algorithms, config.max_keys).map_err(ConfigError::KeySet)?;
                (set, None)
            }
            SourceKind::Url(url) => {
                let url = http_client::check_url("JWKS URL", &url, config.allow_http)?;
                (KeySet::default(), Some(Fetcher { client: client()?, target: Target::Jwks(url) }))
            }
            SourceKind::Discovery(issuer) => {
                let discovery = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
                let discovery_url = http_client::check_url("issuer", &discovery, config.allow_http)?;
                let target = Target::Discovery { issuer, discovery_url, jwks_uri: ArcSwapOption::empty() };
                (KeySet::default(), Some(Fetcher { client: client()?, target }))
            }
        };
        let gate = Mutex::new(Gate {
            budget: Bucket::new(config.unknown_kid_burst, config.unknown_kid_every, Instant::now()),
            in_flight: None,
        });
        Ok(Arc::new(Self { keys: ArcSwap::from_pointee(keys), fetcher, gate, last_success: Mutex::new(None), config }))
    }

    /// The current snapshot. Lock-free.
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Whether keys come from the network (and can be refreshed).
    pub(crate) fn is_remote(&self) -> bool {
        self.fetcher.is_some()
    }

    /// Loads the set now (eager start). Counts as a regular refresh.
    pub(crate) async fn load(&self) -> Result<Duration, AuthError> {
        self.refresh().await
    }

    /// Called when a token that arrived at `arrived` names a key we do not have.
    /// `Ok` means the current set comes from a fetch that succeeded after the request
    /// arrived (or that it joined): look again, and a key still missing is unknown.
    /// `Err` (`KeySetUnavailable`, with a `Retry-After`) means no such fetch could be
    /// made (budget spent) or it failed: the token can be neither accepted nor refused.
    pub(crate) async fn refresh_for_unknown_key(self: &Arc<Self>, arrived: Instant) -> Result<(), AuthError> {
        if self.fetcher.is_none() {
            return Err(AuthErrorKind::UnknownKey.into());
        }
        let mut outcome = {
            let mut gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
            if self.succeeded_since(arrived) {
                return Ok(());
            }
            match &gate.in_flight {
                Some(outcome) => outcome.clone(),
                None => {
                    if let Err(wait) = gate.budget.take(Instant::now()) {
                        tracing::debug!("unknown kid: the budget of key set fetches is spent");
                        return Err(AuthError::with_detail(
                            AuthErrorKind::KeySetUnavailable,
                            "unknown kid, and the budget of key set fetches is spent",
                        )
                        .with_retry_after(retry_after(wait)));
                    }
                    // The fetch runs on its own task: a client that goes away does not
                    // cancel a fetch others wait for (and that the budget paid for).
                    let (sender, outcome) = watch::channel(None);
                    gate.in_flight = Some(outcome.clone());
                    let store = Arc::clone(self);
                    tokio::spawn(async move {
                        let result = store.refresh().await.map(|_| ());
                        let mut gate = store.gate.lock().unwrap_or_else(PoisonError::into_inner);
                        gate.in_flight = None;
                        // Sent under the lock: whoever joined this fetch gets its outcome,
                        // whoever comes later starts (or is refused) a new one.
                        sender.send_replace(Some(result));
                    });
                    outcome
                }
            }
        };
        let result = match outcome.wait_for(Option::is_some).await {
            Ok(result) => result.clone(),
            Err(_) => None,
        };
        // After a failure, clients are paced to the refill rate: retrying sooner would
        // only spend the burst on an issuer that is likely still down.
        let retry_after = retry_after(self.next_fetch_in().max(self.config.unknown_kid_every));
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => Err(error.with_retry_after(retry_after)),
            // The fetch task ended without an answer (the runtime is shutting down).
            None => Err(AuthError::with_detail(AuthErrorKind::KeySetUnavailable, "the key set fetch was abandoned")
                .with_retry_after(retry_after)),
        }
    }

    /// Whether a fetch succeeded at or after `instant`.
    fn succeeded_since(&self, instant: Instant) -> bool {
        self.last_success.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|at| at >= instant)
    }

    /// When the unknown-`kid` budget allows the next fetch.
    fn next_fetch_in(&self) -> Duration {
        let gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        gate.budget.next_in(Instant::now())
    }

    /// Fetches and installs the set; returns when the next refresh is due.
    async fn refresh(&self) -> Result<Duration, AuthError> {
        let Some(fetcher) = &self.fetcher else {
            return Ok(self.config.max_refresh);
        };
        let result = fetcher.fetch(&self.config).await;
        match result {
            Ok((set, max_age)) => {
                tracing::debug!(keys = set.len(), "key set refreshed");
                self.keys.store(Arc::new(set));
                *self.last_success.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                Ok(max_age
                    .unwrap_or(self.config.default_refresh)
                    .clamp(self.config.min_refresh, self.config.max_refresh))
            }
            Err(error) => {
                tracing::warn!(%error, "key set refresh failed");
                Err(error)
            }
        }
    }

    /// Drops the keys once the last good set is older than the stale limit.
    fn expire_if_stale(&self) {
        let last = *self.last_success.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() > self.config.max_stale) && self.keys.load().len() > 0 {
            tracing::error!("key set could not be refreshed within the stale limit; dropping it");
            self.keys.store(Arc::new(KeySet::default()));
        }
    }

    /// Starts the background refresh. It holds only a weak reference: it stops when
    /// the layer is dropped.
    pub(crate) fn spawn_refresher(self: &Arc<Self>, first_delay: Duration) {
        if self.fetcher.is_none() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let retry = self.retry_delay();
        tokio::spawn(async move {
            let mut delay = first_delay;
            loop {
                tokio::time::sleep(delay).await;
                let Some(store) = weak.upgrade() else { break };
                delay = match store.refresh().await {
                    Ok(next) => next,
                    Err(_) => {
                        store.expire_if_stale();
                        retry
                    }
                };
            }
        });
    }

    /// After a failed refresh: try again soon, but not in a tight loop.
    fn retry_delay(&self) -> Duration {
        self.config.min_refresh.min(Duration::from_secs(30))
    }
}

impl Fetcher {
    async fn fetch(&self, config: &JwksConfig) -> Result<(KeySet, Option<Duration>), AuthError> {
        let url = match &self.target {
            Target::Jwks(url) => url.clone(),
            Target::Discovery { issuer, discovery_url, jwks_uri } => match jwks_uri.load_full() {
                Some(url) => (*url).clone(),
                None => {
                    let url = self.discover(issuer, discovery_url, config).await?;
                    jwks_uri.store(Some(Arc::new(url.clone())));
                    url
                }
            },
        };
        let result = self.get(url, config).await.and_then(|(body, max_age)| {
            KeySet::parse(&body, &config.algorithms, config.max_keys).map(|set| (set, max_age))
        });
        if result.is_err() {
            if let Target::Discovery { jwks_uri, .. } = &self.target {
                // The jwks_uri may have moved: discover again next time.
                jwks_uri.store(None);
            }
        }
        result
    }

    async fn get(&self, url: reqwest::Url, config: &JwksConfig) -> Result<(Vec<u8>, Option<Duration>), AuthError> {
        let kind = AuthErrorKind::KeySetUnavailable;
        let response = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| http_client::transport_error(&e, kind))?;
        if !response.status().is_success() {
            return Err(AuthError::with_detail(kind, format!("status {}", response.status().as_u16())));
        }
        let max_age = http_client::cache_max_age(response.headers());
        let body = http_client::read_body(response, config.max_body_bytes, kind).await?;
        Ok((body, max_age))
    }

    async fn discover(
        &self,
        issuer: &str,
        discovery_url: &reqwest::Url,
        config: &JwksConfig,
    ) -> Result<reqwest::Url, AuthError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let (body, _) = self.get(discovery_url.clone(), config).await?;
        let document: Discovery = serde_json::from_slice(&body).map_err(|_| {
            AuthError::with_detail(AuthErrorKind::KeySetUnavailable, "the discovery document is invalid")
        })?;
        if document.issuer != issuer {
            return Err(AuthError::with_detail(
                AuthErrorKind::KeySetUnavailable,
                "the discovery document names another issuer",
            ));
        }
        http_client::check_url("jwks_uri", &document.jwks_uri, config.allow_http)
            .map_err(|e| AuthError::with_detail(AuthErrorKind::KeySetUnavailable, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_one_per_interval() {
        let start = Instant::now();
        let every = Duration::from_secs(5);
        let mut bucket = Bucket::new(3, every, start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        assert_eq!(bucket.take(start), Err(every));
        assert_eq!(bucket.take(start + Duration::from_secs(2)), Err(Duration::from_secs(3)));
        assert_eq!(bucket.take(start + every), Ok(()), "one token per interval");
        assert_eq!(bucket.take(start + every), Err(every));
        // Long idle: back to a full burst, never more.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(bucket.take(later), Ok(()));
        }
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn partial_refills_keep_their_remainder() {
        let start = Instant::now();
        let every = Duration::from_secs(4);
        let mut bucket = Bucket::new(2, every, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start), Ok(()));
        // 6 s later: one token earned, 2 s towards the next.
        assert_eq!(bucket.take(start + Duration::from_secs(6)), Ok(()));
        assert_eq!(bucket.take(start + Duration::from_secs(6)), Err(Duration::from_secs(2)));
        assert_eq!(bucket.take(start + Duration::from_secs(8)), Ok(()));
    }

    #[test]
    fn huge_intervals_never_overflow_the_clock() {
        let start = Instant::now();
        let mut bucket = Bucket::new(1, Duration::MAX, start);
        assert_eq!(bucket.take(start), Ok(()));
        assert_eq!(bucket.take(start + Duration::from_secs(3600)), Err(Duration::MAX));
    }

    #[test]
    fn the_cooldown_is_a_budget_of_one() {
        let config = JwksConfig::default().with_unknown_kid_cooldown(Duration::from_secs(30));
        assert_eq!((config.unknown_kid_burst, config.unknown_kid_every), (1, Duration::from_secs(30)));
        let zero = JwksConfig::default().with_unknown_kid_cooldown(Duration::ZERO);
        assert!(zero.validate().is_ok(), "a zero cooldown keeps working");
        let refused = JwksConfig::default().with_unknown_kid_fetches(3, Duration::ZERO);
        assert!(matches!(refused.validate(), Err(ConfigError::Invalid { .. })));
        let default = JwksConfig::default();
        assert_eq!((default.unknown_kid_burst, default.unknown_kid_every), (5, Duration::from_secs(5)));
    }
}
