//! The key set over real HTTP: rotation, unknown-kid floods, failures of the JWKS
//! endpoint, eager and lazy start, discovery, `Cache-Control`, limits and key filtering.
#![allow(clippy::too_many_lines)]

mod common;

use common::{hmac_sha256, serve};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tower_stepup::{
    Algorithm, AuthErrorKind, AuthState, ConfigError, JwksConfig, KeySource, OidcProfile, Session, SessionLayer,
    SessionLayerBuilder, StytchProject, TypPolicy,
};
use tower_stepup_dev_issuer::{DevAlg, DevIssuer, DevIssuerConfig, Endpoint, Failure, DEFAULT_AUDIENCE};

// ------------------------------------------------------------------ harness

async fn issuer_with(algs: &[DevAlg]) -> DevIssuer {
    DevIssuer::start_with(DevIssuerConfig::default().with_algs(algs)).await.expect("dev issuer starts")
}

/// An issuer with an Ed25519 signer only: quick to start.
async fn quick_issuer() -> DevIssuer {
    issuer_with(&[DevAlg::EdDSA]).await
}

/// Serves a JSON document (that the test may change) at `path`: a hand-made JWKS or
/// discovery document.
async fn serve_json(path: &str, document: Arc<Mutex<Value>>) -> String {
    let app = Router::new().route(
        path,
        get(move || {
            let document = document.clone();
            async move { Json(document.lock().expect("document").clone()) }
        }),
    );
    serve(app).await
}

fn state_text(state: &AuthState) -> String {
    match state {
        AuthState::Anonymous => "anonymous".to_owned(),
        AuthState::Authenticated(session) => format!("ok:{}", session.subject()),
        AuthState::Invalid(error) => format!("{:?}", error.kind()),
    }
}

#[derive(Clone)]
struct Harness {
    base: String,
    client: reqwest::Client,
}

impl Harness {
    async fn start(layer: SessionLayer) -> Self {
        let app = Router::new()
            .route("/state", get(|state: AuthState| async move { state_text(&state) }))
            .route("/me", get(|s: Session| async move { format!("ok:{}", s.subject()) }))
            .layer(layer);
        Self { base: serve(app).await, client: reqwest::Client::new() }
    }

    async fn state(&self, token: &str) -> String {
        let response =
            self.client.get(format!("{}/state", self.base)).bearer_auth(token).send().await.expect("request");
        assert_eq!(response.status(), 200);
        response.text().await.expect("body")
    }

    async fn anonymous(&self) -> String {
        let response = self.client.get(format!("{}/state", self.base)).send().await.expect("request");
        response.text().await.expect("body")
    }

    async fn me_status(&self, token: &str) -> u16 {
        let response = self.client.get(format!("{}/me", self.base)).bearer_auth(token).send().await.expect("request");
        response.status().as_u16()
    }
}

fn project(issuer: &DevIssuer) -> StytchProject {
    StytchProject::consumer(issuer.project_id()).expect("project id").with_base_url(issuer.base_url())
}

fn stytch(issuer: &DevIssuer, jwks: JwksConfig) -> SessionLayerBuilder {
    SessionLayer::stytch(&project(issuer)).with_jwks_config(jwks)
}

/// A fresh token (never seen by the layer, so never served from its cache).
fn fresh(issuer: &DevIssuer, subject: &str) -> String {
    issuer.stytch_session().subject(subject).mint()
}

fn jwks(issuer: &DevIssuer) -> u64 {
    issuer.request_count(Endpoint::Jwks) as u64
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Polls `check` every 25 ms until it holds, for at most `limit`. Returns whether it held.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(ms(25)).await;
    }
}

fn key_set_error(result: Result<SessionLayer, ConfigError>) -> AuthErrorKind {
    match result {
        Err(ConfigError::KeySet(error)) => error.kind(),
        Err(other) => panic!("expected ConfigError::KeySet, got {other:?}"),
        Ok(_) => panic!("expected ConfigError::KeySet, the layer was built"),
    }
}

// ------------------------------------------------------------------ rotation

async fn rotation(cache: bool) {
    let issuer = issuer_with(&[DevAlg::RS256]).await;
    // Budget enough for every look below: each unknown kid is looked for.
    let mut builder = stytch(&issuer, JwksConfig::default().with_unknown_kid_fetches(10, Duration::from_secs(60)));
    if !cache {
        builder = builder.with_session_cache_bytes(0);
    }
    let harness = Harness::start(builder.build().await.expect("layer")).await;
    let label = if cache { "cache on" } else { "cache off" };
    assert_eq!(jwks(&issuer), 1, "{label}: eager start fetched once");

    let old_kid = issuer.current_kid(DevAlg::RS256);
    let old = fresh(&issuer, "old");
    assert_eq!(harness.state(&old).await, "ok:old", "{label}");

    // Rotation: the new key signs, both are served; the new kid triggers one refresh.
    let new_kid = issuer.rotate(DevAlg::RS256);
    assert_ne!(new_kid, old_kid);
    let new = fresh(&issuer, "new");
    assert_eq!(harness.state(&new).await, "ok:new", "{label}: the new kid is fetched and accepted");
    assert_eq!(jwks(&issuer), 2, "{label}: exactly one refresh for the new kid");
    assert_eq!(harness.state(&old).await, "ok:old", "{label}: old tokens still verify while the old key is served");
    let old_again = issuer.stytch_session().subject("old-again").signed_by(&old_kid).mint();
    assert_eq!(harness.state(&old_again).await, "ok:old-again", "{label}: the old key still verifies new tokens");
    assert_eq!(jwks(&issuer), 2, "{label}: known kids cause no fetch");

    // The old key is retired. Until the layer refreshes, it still holds the old key.
    assert!(issuer.remove_key(&old_kid));
    let before_refresh = issuer.stytch_session().subject("before-refresh").signed_by(&old_kid).mint();
    assert_eq!(harness.state(&before_refresh).await, "ok:before-refresh", "{label}: no refresh yet");

    // Any unknown kid triggers a refresh that drops the old key.
    let probe = issuer.stytch_session().kid("kid-probe").mint();
    assert_eq!(harness.state(&probe).await, "UnknownKey", "{label}");
    assert_eq!(jwks(&issuer), 3, "{label}: the probe refreshed the set");

    // The old kid is unknown now: looked for again (no blind window), not found.
    let after = issuer.stytch_session().subject("after").signed_by(&old_kid).mint();
    assert_eq!(harness.state(&after).await, "UnknownKey", "{label}: the removed key no longer verifies");
    assert_eq!(jwks(&issuer), 4, "{label}: each unknown kid is looked for while the budget lasts");
    assert_eq!(harness.state(&fresh(&issuer, "new-2")).await, "ok:new-2", "{label}: the new key still does");
    if cache {
        // Documented: a token verified before the removal stays cached until its exp.
        assert_eq!(harness.state(&old).await, "ok:old");
    } else {
        assert_eq!(harness.state(&old).await, "UnknownKey", "without the cache, the old token is checked again");
        assert_eq!(harness.state(&before_refresh).await, "UnknownKey");
    }
}

#[tokio::test]
async fn key_rotation_with_the_session_cache() {
    rotation(true).await;
}

#[tokio::test]
async fn key_rotation_without_the_session_cache() {
    rotation(false).await;
}

// ------------------------------------------------------------------ unknown-kid flood

/// Sends one request per token, all at once; returns the state texts.
async fn flood(harness: &Harness, tokens: Vec<String>) -> Vec<String> {
    let mut set = JoinSet::new();
    for token in tokens {
        let harness = harness.clone();
        set.spawn(async move { harness.state(&token).await });
    }
    let mut out = Vec::new();
    while let Some(result) = set.join_next().await {
        out.push(result.expect("request task"));
    }
    out
}

/// Opens `n` pooled connections first, so that a flood is not slowed by connects.
async fn warm(harness: &Harness, n: usize) {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let harness = harness.clone();
        set.spawn(async move { harness.anonymous().await });
    }
    while let Some(result) = set.join_next().await {
        assert_eq!(result.expect("warm-up task"), "anonymous");
    }
}

fn unknown_kid_tokens(issuer: &DevIssuer, wave: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| issuer.stytch_session().kid(format!("unknown-{wave}-{i}")).mint()).collect()
}

/// `with_unknown_kid_cooldown` is a budget of one fetch per cooldown. Requests that
/// joined the fetch learn the kid is unknown (`UnknownKey`); those that came after it,
/// within the cooldown, could not look (`KeySetUnavailable`, a `503`).
#[tokio::test]
async fn unknown_kid_flood_with_a_cooldown_fetches_once_per_cooldown() {
    const N: usize = 200;
    let issuer = quick_issuer().await;

    // A long cooldown: two floods, one fetch.
    let harness = Harness::start(
        stytch(&issuer, JwksConfig::default().with_unknown_kid_cooldown(Duration::from_secs(60)))
            .build()
            .await
            .expect("layer"),
    )
    .await;
    warm(&harness, N).await;
    issuer.reset_counts();
    let results = flood(&harness, unknown_kid_tokens(&issuer, "a", N)).await;
    assert_eq!(results.len(), N);
    assert_flood(&results);
    assert_eq!(jwks(&issuer), 1, "{N} concurrent unknown kids: one fetch");
    let results = flood(&harness, unknown_kid_tokens(&issuer, "b", N)).await;
    assert!(results.iter().all(|r| r == "KeySetUnavailable"), "within the cooldown nobody could look");
    assert_eq!(jwks(&issuer), 1, "a second flood within the cooldown: no fetch");
    assert_eq!(harness.state(&fresh(&issuer, "known")).await, "ok:known", "known kids are unaffected");
    assert_eq!(jwks(&issuer), 1);

    // A short cooldown: one fetch per flood once it has passed.
    let cooldown = Duration::from_secs(2);
    let harness = Harness::start(
        stytch(&issuer, JwksConfig::default().with_unknown_kid_cooldown(cooldown)).build().await.expect("layer"),
    )
    .await;
    warm(&harness, N).await;
    issuer.reset_counts();
    let results = flood(&harness, unknown_kid_tokens(&issuer, "c", N)).await;
    assert_flood(&results);
    assert_eq!(jwks(&issuer), 1, "first flood: one fetch");
    tokio::time::sleep(cooldown + ms(100)).await;
    let results = flood(&harness, unknown_kid_tokens(&issuer, "d", N)).await;
    assert_flood(&results);
    assert_eq!(jwks(&issuer), 2, "after the cooldown: exactly one more fetch");
}

/// The outcomes of one flood of unknown kids: those that joined the fetch learned the
/// kid is unknown (at least the one that started it), the others could not look.
fn assert_flood(results: &[String]) {
    assert!(
        results.iter().all(|r| r == "UnknownKey" || r == "KeySetUnavailable"),
        "{:?}",
        results.iter().find(|r| *r != "UnknownKey" && *r != "KeySetUnavailable")
    );
    assert!(results.iter().any(|r| r == "UnknownKey"), "the request that started the fetch learned the answer");
}

#[tokio::test]
async fn a_refresh_does_not_block_known_keys() {
    let issuer = quick_issuer().await;
    let config = JwksConfig::default().with_fetch_timeout(Duration::from_secs(10));
    let harness = Harness::start(stytch(&issuer, config).build().await.expect("layer")).await;
    issuer.set_endpoint_failure(Endpoint::Jwks, Failure::Slow(Duration::from_secs(3)));
    let before = jwks(&issuer);

    let unknown = issuer.stytch_session().kid("slow-unknown").mint();
    let slow = {
        let harness = harness.clone();
        tokio::spawn(async move { harness.state(&unknown).await })
    };
    assert!(eventually(Duration::from_secs(5), || async { jwks(&issuer) > before }).await, "the refresh started");
    // While that fetch hangs, requests with known keys go through.
    for i in 0..5 {
        assert_eq!(harness.state(&fresh(&issuer, &format!("known-{i}"))).await, format!("ok:known-{i}"));
    }
    assert!(!slow.is_finished(), "the unknown-kid request is still waiting for the slow fetch");
    assert_eq!(slow.await.expect("task"), "UnknownKey");
}

// ------------------------------------------------------------------ failures of the JWKS endpoint

#[tokio::test]
async fn jwks_failures_keep_the_last_good_set() {
    let issuer = quick_issuer().await;
    let failures =
        [Failure::Status500, Failure::Unavailable, Failure::Garbage, Failure::Slow(Duration::from_millis(1500))];
    for failure in failures {
        issuer.set_failure(Failure::None);
        let cooldown = ms(100);
        let config = JwksConfig::default().with_unknown_kid_cooldown(cooldown).with_fetch_timeout(ms(300));
        let harness = Harness::start(stytch(&issuer, config).build().await.expect("layer")).await;
        assert_eq!(harness.state(&fresh(&issuer, "before")).await, "ok:before");

        issuer.set_endpoint_failure(Endpoint::Jwks, failure);
        let before = jwks(&issuer);
        let unknown = issuer.stytch_session().kid("unknown-while-down").mint();
        assert_eq!(
            harness.state(&unknown).await,
            "KeySetUnavailable",
            "{failure:?}: an unknown kid cannot be judged while the key set cannot be refreshed"
        );
        assert_eq!(jwks(&issuer), before + 1, "{failure:?}: the refresh was tried");
        assert_eq!(harness.me_status(&unknown).await, 503, "{failure:?}: the server is at fault, not the token");
        for i in 0..3 {
            let subject = format!("known-{i}");
            assert_eq!(
                harness.state(&fresh(&issuer, &subject)).await,
                format!("ok:{subject}"),
                "{failure:?}: known kids keep verifying with the last good set"
            );
        }

        // Recovery: a key rotated in while the endpoint was down is picked up.
        issuer.set_failure(Failure::None);
        issuer.rotate(DevAlg::EdDSA);
        tokio::time::sleep(cooldown + ms(50)).await;
        assert_eq!(harness.state(&fresh(&issuer, "rotated")).await, "ok:rotated", "{failure:?}: recovered");
    }
}

#[tokio::test]
async fn background_refresh_failures_serve_stale_keys_up_to_the_limit() {
    let issuer = quick_issuer().await;
    let refresh = |max_stale: Duration| {
        JwksConfig::default()
            .with_default_refresh(ms(100))
            .with_refresh_bounds(ms(50), Duration::from_secs(3600))
            .with_unknown_kid_cooldown(ms(50))
            .with_max_stale(max_stale)
    };
    let tolerant =
        Harness::start(stytch(&issuer, refresh(Duration::from_secs(3600))).build().await.expect("layer")).await;
    let strict = Harness::start(stytch(&issuer, refresh(ms(300))).build().await.expect("layer")).await;

    issuer.set_endpoint_failure(Endpoint::Jwks, Failure::Status500);
    let failed_at = jwks(&issuer);
    // Several background refreshes fail…
    assert!(eventually(Duration::from_secs(5), || async { jwks(&issuer) >= failed_at + 6 }).await);
    // …and the tolerant layer keeps verifying with its last good set.
    assert_eq!(tolerant.state(&fresh(&issuer, "stale-ok")).await, "ok:stale-ok");
    // The strict one dropped its keys once they were older than its limit.
    let mut n = 0;
    let dropped = eventually(Duration::from_secs(5), || {
        n += 1;
        let token = fresh(&issuer, &format!("strict-{n}"));
        let strict = strict.clone();
        async move { strict.state(&token).await == "KeySetUnavailable" }
    })
    .await;
    assert!(dropped, "the strict layer stops trusting keys it cannot refresh");
    assert_eq!(strict.me_status(&fresh(&issuer, "strict-me")).await, 503, "keys unavailable: a server-side fault");
    assert_eq!(tolerant.state(&fresh(&issuer, "still-ok")).await, "ok:still-ok");

    // The issuer comes back: the background refresh restores the keys.
    issuer.set_failure(Failure::None);
    let mut n = 0;
    let restored = eventually(Duration::from_secs(5), || {
        n += 1;
        let subject = format!("back-{n}");
        let token = fresh(&issuer, &subject);
        let strict = strict.clone();
        async move { strict.state(&token).await == format!("ok:{subject}") }
    })
    .await;
    assert!(restored, "keys come back after the issuer recovers");
}

// ------------------------------------------------------------------ eager and lazy start

#[tokio::test]
async fn eager_start_fails_fast_when_the_jwks_is_failing() {
    let issuer = quick_issuer().await;
    let config = || JwksConfig::default().with_fetch_timeout(ms(300));
    for failure in [Failure::Status500, Failure::Unavailable, Failure::Garbage, Failure::Slow(ms(1500))] {
        issuer.set_endpoint_failure(Endpoint::Jwks, failure);
        let kind = key_set_error(stytch(&issuer, config()).build().await);
        assert_eq!(kind, AuthErrorKind::KeySetUnavailable, "{failure:?}");
    }
    issuer.set_failure(Failure::None);
    issuer.reset_counts();
    let _layer = stytch(&issuer, config()).build().await.expect("healthy issuer");
    assert_eq!(jwks(&issuer), 1, "an eager start fetches the keys before the first request");

    // An issuer that is not there at all.
    let gone = quick_issuer().await;
    let gone_project = project(&gone);
    gone.shutdown();
    drop(gone);
    let mut refused = false;
    for _ in 0..40 {
        let result = SessionLayer::stytch(&gone_project).with_jwks_config(config()).build().await;
        if let Err(ConfigError::KeySet(error)) = result {
            assert_eq!(error.kind(), AuthErrorKind::KeySetUnavailable);
            refused = true;
            break;
        }
        // The server may still be finishing its graceful shutdown.
        tokio::time::sleep(ms(50)).await;
    }
    assert!(refused, "a layer cannot start eagerly without an issuer");
}

#[tokio::test]
async fn lazy_start_builds_without_keys_and_fetches_on_first_request() {
    let issuer = quick_issuer().await;
    let cooldown = ms(100);
    let config = || JwksConfig::default().with_unknown_kid_cooldown(cooldown).with_fetch_timeout(ms(300));

    // Healthy: nothing is fetched until the first request needs a key.
    issuer.reset_counts();
    let harness = Harness::start(stytch(&issuer, config()).with_lazy_start().build().await.expect("lazy layer")).await;
    assert_eq!(jwks(&issuer), 0, "a lazy start fetches nothing");
    assert_eq!(harness.anonymous().await, "anonymous");
    assert_eq!(jwks(&issuer), 0, "anonymous requests need no keys");
    assert_eq!(harness.state(&fresh(&issuer, "first")).await, "ok:first");
    assert_eq!(jwks(&issuer), 1, "the first token fetched the keys");
    assert_eq!(harness.state(&fresh(&issuer, "second")).await, "ok:second");
    assert_eq!(jwks(&issuer), 1);

    // Failing at start: the build still succeeds.
    issuer.set_endpoint_failure(Endpoint::Jwks, Failure::Status500);
    issuer.reset_counts();
    let layer = stytch(&issuer, config()).with_lazy_start().build().await.expect("lazy layer while the JWKS fails");
    let harness = Harness::start(layer).await;
    assert_eq!(jwks(&issuer), 0);
    assert_eq!(harness.state(&fresh(&issuer, "down")).await, "KeySetUnavailable", "no keys at all: the server's fault");
    assert_eq!(jwks(&issuer), 1);
    assert_eq!(harness.me_status(&fresh(&issuer, "down-me")).await, 503);

    issuer.set_failure(Failure::None);
    tokio::time::sleep(cooldown + ms(50)).await;
    assert_eq!(
        harness.state(&fresh(&issuer, "up")).await,
        "ok:up",
        "the next request after the cooldown fetches again"
    );
}

// ------------------------------------------------------------------ discovery

#[tokio::test]
async fn discovery_finds_the_keys_and_checks_the_issuer() {
    let issuer = quick_issuer().await;
    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).build().await.expect("discovery");
    assert_eq!(issuer.request_count(Endpoint::Discovery), 1);
    assert_eq!(jwks(&issuer), 1, "jwks_uri from the discovery document");
    let harness = Harness::start(layer).await;
    assert_eq!(harness.state(&issuer.access_token().subject("discovered").mint()).await, "ok:discovered");

    // A discovery document that names another issuer is refused (and its jwks_uri
    // never fetched).
    let document = Arc::new(Mutex::new(json!({
        "issuer": "https://impostor.example",
        "jwks_uri": issuer.jwks_url(),
    })));
    let impostor = serve_json("/.well-known/openid-configuration", document.clone()).await;
    let builder = || {
        SessionLayer::builder(KeySource::discovery(impostor.clone()))
            .with_issuer(impostor.clone())
            .with_audience(DEFAULT_AUDIENCE)
            .with_typ(TypPolicy::AccessToken)
            .with_profile(OidcProfile::rfc9068())
            .with_jwks_config(JwksConfig::default().with_unknown_kid_cooldown(ms(50)))
    };
    issuer.reset_counts();
    assert_eq!(key_set_error(builder().build().await), AuthErrorKind::KeySetUnavailable);
    let lazy = Harness::start(builder().with_lazy_start().build().await.expect("lazy")).await;
    let token = issuer.access_token().issuer(impostor.clone()).mint();
    assert_eq!(lazy.state(&token).await, "KeySetUnavailable");
    assert_eq!(jwks(&issuer), 0, "the impostor's jwks_uri was never followed");

    // A jwks_uri over plain http to a non-loopback host is refused too.
    *document.lock().expect("document") = json!({ "issuer": impostor, "jwks_uri": "http://keys.example/jwks.json" });
    assert_eq!(key_set_error(builder().build().await), AuthErrorKind::KeySetUnavailable);

    // Once the document is right, the same lazy layer finds the keys.
    *document.lock().expect("document") = json!({ "issuer": impostor, "jwks_uri": issuer.jwks_url() });
    tokio::time::sleep(ms(100)).await;
    let token = issuer.access_token().issuer(impostor.clone()).subject("fixed").mint();
    assert_eq!(lazy.state(&token).await, "ok:fixed");

    // Discovery down: an eager start fails.
    issuer.set_endpoint_failure(Endpoint::Discovery, Failure::Status500);
    let down = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).build().await;
    assert_eq!(key_set_error(down), AuthErrorKind::KeySetUnavailable);
}

// ------------------------------------------------------------------ Cache-Control

#[tokio::test]
async fn cache_control_max_age_schedules_the_refresh() {
    // max-age=1 beats a one-hour default.
    let issuer = quick_issuer().await;
    issuer.set_jwks_cache_control(Some("public, max-age=1"));
    let config = JwksConfig::default()
        .with_default_refresh(Duration::from_secs(3600))
        .with_refresh_bounds(ms(100), Duration::from_secs(3600));
    let layer = stytch(&issuer, config).build().await.expect("layer");
    assert_eq!(jwks(&issuer), 1);
    assert!(
        eventually(Duration::from_secs(6), || async { jwks(&issuer) >= 2 }).await,
        "max-age=1 refreshes long before the one-hour default"
    );
    drop(layer);

    // A long max-age is clamped to the configured maximum.
    let issuer = quick_issuer().await;
    issuer.set_jwks_cache_control(Some("max-age=86400"));
    let config = JwksConfig::default().with_refresh_bounds(ms(50), ms(200));
    let layer = stytch(&issuer, config).build().await.expect("layer");
    assert!(
        eventually(Duration::from_secs(6), || async { jwks(&issuer) >= 3 }).await,
        "max-age above the upper bound is clamped to it"
    );
    drop(layer);

    // no-store means "now", clamped to the configured minimum.
    let issuer = quick_issuer().await;
    issuer.set_jwks_cache_control(Some("no-store"));
    let config = JwksConfig::default()
        .with_default_refresh(Duration::from_secs(3600))
        .with_refresh_bounds(ms(100), Duration::from_secs(3600));
    let layer = stytch(&issuer, config).build().await.expect("layer");
    assert!(
        eventually(Duration::from_secs(6), || async { jwks(&issuer) >= 3 }).await,
        "no-store: refresh at the minimum"
    );
    drop(layer);

    // A long max-age beats a short default.
    let issuer = quick_issuer().await;
    issuer.set_jwks_cache_control(Some("max-age=3600"));
    let config =
        JwksConfig::default().with_default_refresh(ms(50)).with_refresh_bounds(ms(10), Duration::from_secs(7200));
    let layer = stytch(&issuer, config).build().await.expect("layer");
    tokio::time::sleep(ms(500)).await;
    assert_eq!(jwks(&issuer), 1, "max-age=3600: no refresh although the default is 50 ms");
    drop(layer);

    // Without a header, the default interval applies.
    let issuer = quick_issuer().await;
    let config =
        JwksConfig::default().with_default_refresh(ms(100)).with_refresh_bounds(ms(10), Duration::from_secs(3600));
    let layer = stytch(&issuer, config).build().await.expect("layer");
    assert!(eventually(Duration::from_secs(6), || async { jwks(&issuer) >= 3 }).await, "the default interval applies");
    drop(layer);
}

#[tokio::test]
async fn invalid_refresh_configuration_is_refused() {
    let issuer = quick_issuer().await;
    let inverted = JwksConfig::default().with_refresh_bounds(Duration::from_secs(10), Duration::from_secs(1));
    assert!(matches!(stytch(&issuer, inverted).build().await, Err(ConfigError::Invalid { .. })));
    let zero = JwksConfig::default().with_fetch_timeout(Duration::ZERO);
    assert!(matches!(stytch(&issuer, zero).build().await, Err(ConfigError::Invalid { .. })));
    let unlimited = JwksConfig::default().with_unknown_kid_fetches(3, Duration::ZERO);
    assert!(
        matches!(stytch(&issuer, unlimited).build().await, Err(ConfigError::Invalid { .. })),
        "an unknown-kid budget that never runs out"
    );
    let hmac = JwksConfig::default().with_algorithms(&[Algorithm::RS256, Algorithm::HS256]);
    assert!(
        matches!(stytch(&issuer, hmac).build().await, Err(ConfigError::Invalid { .. })),
        "HMAC can never be allowed"
    );
    let empty = JwksConfig::default().with_algorithms(&[]);
    assert!(matches!(stytch(&issuer, empty).build().await, Err(ConfigError::Invalid { .. })));
    // A JWKS URL over plain http to a non-loopback host.
    let remote = SessionLayer::builder(KeySource::url("http://keys.example/jwks.json"))
        .with_issuer("i")
        .with_audience("a")
        .build()
        .await;
    assert!(matches!(remote, Err(ConfigError::Invalid { .. })));
}

// ------------------------------------------------------------------ limits

#[tokio::test]
async fn key_count_and_body_size_limits() {
    let issuer = quick_issuer().await;
    issuer.add_keys(DevAlg::EdDSA, 9); // 10 keys served in all
    let kind = key_set_error(stytch(&issuer, JwksConfig::default().with_max_keys(5)).build().await);
    assert_eq!(kind, AuthErrorKind::KeySetUnavailable, "more keys than allowed");
    let _ok = stytch(&issuer, JwksConfig::default().with_max_keys(10)).build().await.expect("10 keys allowed");

    let kind = key_set_error(stytch(&issuer, JwksConfig::default().with_max_body_bytes(512)).build().await);
    assert_eq!(kind, AuthErrorKind::KeySetUnavailable, "a body over the limit");
    let _ok = stytch(&issuer, JwksConfig::default().with_max_body_bytes(64 * 1024)).build().await.expect("room");

    // At run time: a set that grows past the limit is refused, the last good set stays.
    let config = JwksConfig::default().with_max_keys(12).with_unknown_kid_cooldown(ms(50));
    let harness = Harness::start(stytch(&issuer, config).build().await.expect("layer")).await;
    let first_kid = issuer.current_kid(DevAlg::EdDSA);
    issuer.rotate(DevAlg::EdDSA);
    issuer.add_keys(DevAlg::EdDSA, 5); // 16 keys
    let before = jwks(&issuer);
    assert_eq!(
        harness.state(&fresh(&issuer, "new-key")).await,
        "KeySetUnavailable",
        "the oversized set was not installed: the new kid cannot be judged"
    );
    assert_eq!(jwks(&issuer), before + 1);
    let old_signed = issuer.stytch_session().subject("old-key").signed_by(&first_kid).mint();
    assert_eq!(harness.state(&old_signed).await, "ok:old-key", "the last good set keeps serving");
}

// ------------------------------------------------------------------ key filtering

#[tokio::test]
async fn only_asymmetric_signature_keys_are_used() {
    let issuer = issuer_with(&[DevAlg::RS256, DevAlg::ES256, DevAlg::EdDSA]).await;
    let served: Value = reqwest::get(issuer.jwks_url()).await.expect("jwks").json().await.expect("json");
    let keys = served["keys"].as_array().expect("keys").clone();
    let find = |kty: &str| keys.iter().find(|k| k["kty"] == kty).expect("key of type").clone();
    let copy = |kty: &str, kid: &str, changes: Value| {
        let mut key = find(kty);
        key["kid"] = json!(kid);
        for (name, value) in changes.as_object().expect("object") {
            key[name] = value.clone();
        }
        key
    };
    let secret = b"a shared secret that must never be accepted";
    let mut document = keys.clone();
    document.extend([
        json!({ "kty": "oct", "kid": "hmac", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret) }),
        copy("RSA", "encryption-key", json!({ "use": "enc" })),
        copy("EC", "encrypt-only", json!({ "key_ops": ["encrypt"] })),
        copy("RSA", "lying-alg", json!({ "alg": "ES256" })),
        copy("RSA", "private-published", json!({ "d": "AAAA" })),
        copy("OKP", "twice", json!({})),
        copy("OKP", "twice", json!({})),
        copy("EC", "wrong-curve", json!({ "crv": "P-384" })),
        json!({ "kty": "RSA", "kid": "short-rsa", "n": "AQAB", "e": "AQAB" }),
        json!("not even an object"),
    ]);
    let url = serve_json("/jwks", Arc::new(Mutex::new(json!({ "keys": document })))).await;
    let layer = SessionLayer::builder(KeySource::url(format!("{url}/jwks")))
        .with_issuer(issuer.stytch_issuer())
        .with_audience(issuer.project_id())
        // Budget enough for each case below to be looked for.
        .with_jwks_config(JwksConfig::default().with_unknown_kid_fetches(20, Duration::from_secs(60)))
        .build()
        .await
        .expect("a JWKS with odd keys still loads");
    let harness = Harness::start(layer).await;

    let rs = issuer.stytch_session().alg(DevAlg::RS256).subject("rs").mint();
    let es = issuer.stytch_session().alg(DevAlg::ES256).subject("es").mint();
    let ed = issuer.stytch_session().alg(DevAlg::EdDSA).subject("ed").mint();
    assert_eq!(harness.state(&rs).await, "ok:rs");
    assert_eq!(harness.state(&es).await, "ok:es");
    assert_eq!(harness.state(&ed).await, "ok:ed");

    // HS256 signed with the oct key's secret, naming it.
    let header = json!({ "alg": "HS256", "kid": "hmac", "typ": "JWT" });
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(rs.split('.').nth(1).expect("payload")).expect("base64"))
            .expect("claims");
    let message =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let hs = format!("{message}.{}", URL_SAFE_NO_PAD.encode(hmac_sha256(secret, message.as_bytes())));
    assert_eq!(harness.state(&hs).await, "UnsupportedAlgorithm");

    let cases = [
        ("oct kid with RS256", DevAlg::RS256, "hmac"),
        ("use enc", DevAlg::RS256, "encryption-key"),
        ("key_ops without verify", DevAlg::ES256, "encrypt-only"),
        ("alg that contradicts the key type", DevAlg::RS256, "lying-alg"),
        ("private key published", DevAlg::RS256, "private-published"),
        ("duplicate kid", DevAlg::EdDSA, "twice"),
        ("curve that contradicts the alg", DevAlg::ES256, "wrong-curve"),
        ("RSA key below 2048 bits", DevAlg::RS256, "short-rsa"),
    ];
    for (name, alg, kid) in cases {
        // Signed by the real key of that type: only the JWK entry is wrong.
        let token = issuer.stytch_session().alg(alg).kid(kid).mint();
        assert_eq!(harness.state(&token).await, "UnknownKey", "{name}: the key must not be usable");
    }

    // The algorithm allow-list also filters keys.
    let layer = SessionLayer::builder(KeySource::url(format!("{url}/jwks")))
        .with_issuer(issuer.stytch_issuer())
        .with_audience(issuer.project_id())
        .with_jwks_config(JwksConfig::default().with_algorithms(&[Algorithm::ES256]))
        .build()
        .await
        .expect("layer");
    let es_only = Harness::start(layer).await;
    assert_eq!(es_only.state(&rs).await, "UnsupportedAlgorithm");
    assert_eq!(es_only.state(&ed).await, "UnsupportedAlgorithm");
    assert_eq!(es_only.state(&es).await, "ok:es");
}

#[tokio::test]
async fn static_key_sets_never_fetch() {
    let issuer = quick_issuer().await;
    let served = reqwest::get(issuer.jwks_url()).await.expect("jwks").text().await.expect("body");
    issuer.reset_counts();
    let layer = SessionLayer::builder(KeySource::from_json(&served).expect("static set"))
        .with_issuer(issuer.stytch_issuer())
        .with_audience(issuer.project_id())
        .build()
        .await
        .expect("layer");
    let harness = Harness::start(layer).await;
    assert_eq!(harness.state(&fresh(&issuer, "static")).await, "ok:static");
    assert_eq!(harness.state(&issuer.stytch_session().kid("elsewhere").mint()).await, "UnknownKey");
    assert_eq!(jwks(&issuer), 0, "a static set is never fetched");
    assert!(KeySource::from_json("not json").is_err());
}
