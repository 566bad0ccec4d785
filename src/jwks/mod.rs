//! The issuer's signing keys: where they come from ([`KeySource`]), how they are
//! cached and refreshed ([`JwksConfig`]).
//!
//! Reads are lock-free: the usable keys are an immutable snapshot behind an
//! [`ArcSwap`], replaced whole by a refresh. A token with an unknown `kid` triggers
//! at most one fetch per cooldown; concurrent requests wait for that one fetch
//! (coalesced by `moka`), never for a lock held across the network. A background task
//! refreshes the set on the schedule the issuer asks for (`Cache-Control: max-age`,
//! bounded), and when a fetch fails the last good set keeps serving, up to
//! [`JwksConfig::with_max_stale`].

mod key_set;

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use jsonwebtoken::Algorithm;
use serde::Deserialize;

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
/// Defaults: refresh every 10 minutes unless the issuer's `Cache-Control: max-age`
/// says otherwise (bounded to 1 minute … 24 hours); an unknown `kid` may trigger a
/// refresh at most every 30 seconds; a failed refresh keeps the last good set for up
/// to 12 hours; each fetch times out after 5 seconds; a document over 256 KiB or with
/// more than 100 keys is refused; algorithms RS256/384/512, PS256/384/512, ES256,
/// ES384 and EdDSA.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_stepup::JwksConfig;
///
/// let config = JwksConfig::default()
///     .with_unknown_kid_cooldown(Duration::from_secs(10))
///     .with_max_stale(Duration::from_secs(3600));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct JwksConfig {
    pub(crate) default_refresh: Duration,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) unknown_kid_cooldown: Duration,
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
            unknown_kid_cooldown: Duration::from_secs(30),
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
    /// Minimum time between two refreshes caused by unknown `kid`s (default 30 s).
    pub fn with_unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.unknown_kid_cooldown = cooldown;
        self
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
        if self.fetch_timeout.is_zero() {
            return Err(ConfigError::invalid("fetch timeout", "must be above zero"));
        }
        if self.algorithms.iter().any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)) {
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
    /// Coalesces unknown-`kid` refreshes and remembers their outcome for the cooldown.
    gate: moka::future::Cache<(), Result<(), AuthError>>,
    last_success: Mutex<Option<Instant>>,
    config: JwksConfig,
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
        let gate = moka::future::Cache::builder()
            .max_capacity(1)
            .time_to_live(config.unknown_kid_cooldown.max(Duration::from_millis(1)))
            .build();
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

    /// Called when a token names a key we do not have. At most one fetch per
    /// cooldown; concurrent callers share it.
    pub(crate) async fn refresh_for_unknown_key(&self) -> Result<(), AuthError> {
        if self.fetcher.is_none() {
            return Err(AuthErrorKind::UnknownKey.into());
        }
        self.gate.get_with((), async { self.refresh().await.map(|_| ()) }).await
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
