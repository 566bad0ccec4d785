//! Micro-benchmarks of the hot and cold paths (criterion). Run with `cargo bench`.
//!
//! Tokens and keys come from a real [`DevIssuer`] started on loopback inside the
//! bench; the layers fetch its JWKS over HTTP (`KeySource::url`) like in production.
//! The baseline of every cold verification is raw `jsonwebtoken::decode` with the
//! same key, measured in the same run.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures_util::FutureExt as _;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower::{Service, ServiceExt as _};
use tower_stepup::__bench::{self as internals, Extractor, KeyLookup};
use tower_stepup::{
    AuthState, DefaultChallenge, FactorKind, GuardConfig, KeySource, Rejection, Requirement, Session, SessionLayer,
    SessionService, StytchProfile,
};
use tower_stepup_dev_issuer::{DevAlg, DevFactor, DevIssuer, DevIssuerConfig};

/// Everything the benches share: one issuer (kept alive by the runtime) and tokens.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    issuer: DevIssuer,
}

impl Fixture {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let issuer = runtime
            .block_on(DevIssuer::start_with(DevIssuerConfig::new().with_algs(&DevAlg::ALL)))
            .expect("dev issuer");
        Self { runtime, issuer }
    }

    /// A layer on the issuer's Stytch JWKS URL; `cache_bytes` 0 disables the cache.
    fn layer(&self, cache_bytes: Option<u64>) -> SessionLayer {
        let mut builder = SessionLayer::builder(KeySource::url(self.issuer.stytch_jwks_url()))
            .with_issuer(self.issuer.stytch_issuer())
            .with_audience(self.issuer.project_id())
            // Stytch session JWTs: read as before the generic builder stopped defaulting to Stytch.
            .with_profile(StytchProfile::new())
            // Read the Stytch session cookies too, as `SessionLayer::stytch` does.
            .with_jwt_cookie(Some(tower_stepup::DEFAULT_JWT_COOKIE))
            .with_token_cookie(Some(tower_stepup::DEFAULT_TOKEN_COOKIE));
        if let Some(bytes) = cache_bytes {
            builder = builder.with_session_cache_bytes(bytes);
        }
        self.runtime.block_on(builder.build()).expect("layer")
    }

    /// A typical Stytch session JWT: email OTP + TOTP, two roles.
    fn token(&self, alg: DevAlg) -> String {
        self.issuer
            .stytch_session()
            .alg(alg)
            .factor(DevFactor::email_otp())
            .factor(DevFactor::totp())
            .roles(["stytch_member", "editor"])
            .mint()
    }

    fn jwks_json(&self) -> String {
        let url = self.issuer.stytch_jwks_url();
        self.runtime.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
    }
}

/// The registered claims only (jwt-authorizer's default claims type).
#[derive(serde::Deserialize)]
#[allow(dead_code)] // deserialized, never read
struct Registered {
    iss: String,
    sub: String,
    exp: u64,
    nbf: Option<u64>,
    iat: Option<u64>,
}

/// A no-op inner service that answers 200 only for an authenticated request.
#[derive(Clone)]
struct Inner;

impl Service<Request<()>> for Inner {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let ok = matches!(request.extensions().get::<AuthState>(), Some(AuthState::Authenticated(_)));
        let mut response = Response::new(());
        if !ok {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        std::future::ready(Ok(response))
    }
}

fn bearer_request(token: &str) -> Request<()> {
    Request::builder().uri("/").header(header::AUTHORIZATION, format!("Bearer {token}")).body(()).unwrap()
}

fn cookie_request(token: &str) -> Request<()> {
    Request::builder()
        .uri("/")
        .header(
            header::COOKIE,
            format!(
                "_ga=GA1.1.123456789.1700000000; theme=dark; stytch_session=mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q; stytch_session_jwt={token}; csrf=abcdef0123456789"
            ),
        )
        .body(())
        .unwrap()
}

/// One request through the service, as axum drives it (clone, ready, call). The
/// future of a cache hit is ready at once, so no executor is needed.
fn oneshot<S>(service: &S, request: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone,
{
    service.clone().oneshot(request).now_or_never().expect("completes without waiting").unwrap()
}

fn extraction(c: &mut Criterion, fixture: &Fixture) {
    let token = fixture.token(DevAlg::RS256);
    let extractor = Extractor::default();
    let mut bearer = HeaderMap::new();
    bearer.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    bearer.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let mut cookies = HeaderMap::new();
    cookies.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!(
            "_ga=GA1.1.123456789.1700000000; theme=dark; stytch_session=mZAYn5aLEqKUlZ_Ad9U_fWr38GaAQ1oFAhT8ds245v7Q; stytch_session_jwt={token}; csrf=abcdef0123456789"
        ))
        .unwrap(),
    );
    cookies.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
    let anonymous = HeaderMap::new();
    assert_eq!(extractor.find(&bearer), Some(token.as_str()));
    assert_eq!(extractor.find(&cookies), Some(token.as_str()));

    let mut group = c.benchmark_group("extract");
    group.bench_function("bearer", |b| b.iter(|| extractor.find(black_box(&bearer)).map(str::len)));
    group.bench_function("cookies", |b| b.iter(|| extractor.find(black_box(&cookies)).map(str::len)));
    group.bench_function("none", |b| b.iter(|| extractor.find(black_box(&anonymous)).map(str::len)));
    group.finish();
}

fn hot(c: &mut Criterion, fixture: &Fixture) {
    let layer = fixture.layer(None);
    let token = fixture.token(DevAlg::RS256);
    let service: SessionService<Inner> = tower::Layer::layer(&layer, Inner);
    // Warm the cache, and check the fixture authenticates.
    assert_eq!(oneshot(&service, bearer_request(&token)).status(), StatusCode::OK);
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    assert!(matches!(internals::resolve(&layer, &headers), Some(AuthState::Authenticated(_))));

    let mut group = c.benchmark_group("hot");
    // The floor: building the request and calling the no-op inner service alone.
    group.bench_function("baseline_inner_only", |b| {
        b.iter_batched(|| bearer_request(&token), |request| oneshot(&Inner, request), BatchSize::SmallInput);
    });
    group.bench_function("service_oneshot_cache_hit", |b| {
        b.iter_batched(|| bearer_request(&token), |request| oneshot(&service, request), BatchSize::SmallInput);
    });
    // The cookie hot path through the service: a browser's whole Cookie header.
    assert_eq!(oneshot(&service, cookie_request(&token)).status(), StatusCode::OK);
    group.bench_function("service_oneshot_cookie_cache_hit", |b| {
        b.iter_batched(|| cookie_request(&token), |request| oneshot(&service, request), BatchSize::SmallInput);
    });
    // The same with requests made 64 at a time, so that their headers are in the CPU
    // cache as those hyper just parsed are (`SmallInput` batches are megabytes: each
    // read of the 1.3 KB token then misses the cache).
    let warm = BatchSize::NumIterations(64);
    group.bench_function("baseline_inner_only_warm", |b| {
        b.iter_batched(|| bearer_request(&token), |request| oneshot(&Inner, request), warm);
    });
    group.bench_function("service_oneshot_cache_hit_warm", |b| {
        b.iter_batched(|| bearer_request(&token), |request| oneshot(&service, request), warm);
    });
    group.bench_function("service_oneshot_cookie_cache_hit_warm", |b| {
        b.iter_batched(|| cookie_request(&token), |request| oneshot(&service, request), warm);
    });
    assert!(matches!(internals::resolve_cached_bearer(&layer, &headers), Some(AuthState::Authenticated(_))));
    // Validate-then-look-up (the path for cookies) vs look-up-on-raw-bytes (bearer).
    group.bench_function("resolve_cache_hit", |b| b.iter(|| internals::resolve(&layer, black_box(&headers))));
    group.bench_function("resolve_cached_bearer_raw", |b| {
        b.iter(|| internals::resolve_cached_bearer(&layer, black_box(&headers)));
    });
    let cookies = cookie_request(&token).headers().clone();
    assert!(matches!(internals::resolve(&layer, &cookies), Some(AuthState::Authenticated(_))));
    group.bench_function("resolve_cookie_cache_hit", |b| b.iter(|| internals::resolve(&layer, black_box(&cookies))));
    group.finish();
}

/// A request as hyper hands it to axum, with a bearer token or the session cookies.
fn axum_request(token: &str, cookie: bool) -> Request<axum::body::Body> {
    let request = if cookie { cookie_request(token) } else { bearer_request(token) };
    request.map(|()| axum::body::Body::empty())
}

/// One request through an axum `Router`, as `axum::serve` drives it. Every handler
/// here answers without waiting, so no executor is needed.
fn route(router: &axum::Router, request: Request<axum::body::Body>) -> StatusCode {
    let response = router.clone().oneshot(request).now_or_never().expect("completes without waiting").unwrap();
    response.status()
}

/// `GET /hot` of the example resource server (the `Session` extractor, the subject
/// as plain text) behind the layer, against the same route without the layer
/// answering a constant: the layer's whole cost as an app sees it, in one run.
fn axum_hot(c: &mut Criterion, fixture: &Fixture) {
    use axum::routing::get;
    let layer = fixture.layer(None);
    let token = fixture.token(DevAlg::RS256);
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let Some(AuthState::Authenticated(session)) = internals::resolve(&layer, &headers) else {
        panic!("the fixture token must verify")
    };
    // The same answer, and the same allocation of it, without the layer.
    let subject = session.subject().to_owned();
    let bare: axum::Router = axum::Router::new().route(
        "/",
        get(move || {
            let subject = subject.clone();
            async move { subject }
        }),
    );
    let with_layer: axum::Router = axum::Router::new()
        .route("/", get(|session: Session| async move { session.subject().to_owned() }))
        .layer(layer);
    for cookie in [false, true] {
        assert_eq!(route(&bare, axum_request(&token, cookie)), StatusCode::OK);
        assert_eq!(route(&with_layer, axum_request(&token, cookie)), StatusCode::OK);
    }
    // Requests made 64 at a time: their 1.4 KB headers stay in the CPU cache, as
    // those hyper just parsed do (`SmallInput` batches are megabytes).
    let batch = BatchSize::NumIterations(64);
    let mut group = c.benchmark_group("axum_hot");
    for (name, cookie) in [("bearer", false), ("cookie", true)] {
        group.bench_function(format!("{name}/bare"), |b| {
            b.iter_batched(|| axum_request(&token, cookie), |request| route(&bare, request), batch);
        });
        group.bench_function(format!("{name}/session_extractor"), |b| {
            b.iter_batched(|| axum_request(&token, cookie), |request| route(&with_layer, request), batch);
        });
    }
    group.finish();
}

fn cold(c: &mut Criterion, fixture: &Fixture) {
    let layer = fixture.layer(Some(0));
    let service: SessionService<Inner> = tower::Layer::layer(&layer, Inner);
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&fixture.jwks_json()).unwrap();

    let mut group = c.benchmark_group("cold");
    for alg in DevAlg::ALL {
        let token = fixture.token(alg);
        let kid = fixture.issuer.current_kid(alg);
        let jwk = jwks.find(&kid).expect("the signer is served");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg.as_str().parse().expect("a JOSE algorithm"));
        validation.set_issuer(&[fixture.issuer.stytch_issuer()]);
        validation.set_audience(&[fixture.issuer.project_id()]);
        validation.leeway = 30;
        let decode = || jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation);
        decode().expect("raw decode accepts the token");
        // What jwt-authorizer decodes by default: the registered claims only.
        let decode_registered = || jsonwebtoken::decode::<Registered>(black_box(&token), &key, &validation);
        decode_registered().expect("raw decode accepts the token");
        assert_eq!(oneshot(&service, bearer_request(&token)).status(), StatusCode::OK);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());

        // The signature alone: jsonwebtoken's `crypto::verify` (the key rebuilt from
        // its components at every call: tower-stepup's path before issue 13) against
        // the key the set parsed once (the path now).
        let jose_alg: jsonwebtoken::Algorithm = alg.as_str().parse().expect("a JOSE algorithm");
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let crypto_verify = || jsonwebtoken::crypto::verify(signature, black_box(signed.as_bytes()), &key, jose_alg);
        assert!(crypto_verify().unwrap());
        let lookup = KeyLookup::parse(&fixture.jwks_json());
        let our_alg: tower_stepup::Algorithm = alg.as_str().parse().unwrap();
        assert!(lookup.verify_signature(&kid, our_alg, &token));
        group.bench_function(format!("{alg}/signature_jsonwebtoken_crypto_verify"), |b| b.iter(crypto_verify));
        group.bench_function(format!("{alg}/signature_parsed_key"), |b| {
            b.iter(|| lookup.verify_signature(&kid, our_alg, black_box(&token)));
        });
        group.bench_function(format!("{alg}/jsonwebtoken_decode"), |b| b.iter(decode));
        group.bench_function(format!("{alg}/jsonwebtoken_decode_registered_only"), |b| b.iter(decode_registered));
        group.bench_function(format!("{alg}/resolve_no_cache"), |b| {
            b.iter(|| internals::resolve(&layer, black_box(&headers)));
        });
        group.bench_function(format!("{alg}/service_oneshot_no_cache"), |b| {
            b.iter_batched(|| bearer_request(&token), |request| oneshot(&service, request), BatchSize::SmallInput);
        });
    }
    group.finish();
}

fn session(fixture: &Fixture, layer: &SessionLayer) -> Session {
    let mut headers = HeaderMap::new();
    let token = fixture.token(DevAlg::ES256);
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    match internals::resolve(layer, &headers) {
        Some(AuthState::Authenticated(session)) => session,
        _ => panic!("the fixture token must verify"),
    }
}

fn guards(c: &mut Criterion, fixture: &Fixture) {
    let layer = fixture.layer(Some(0));
    let session = session(fixture, &layer);
    let config = GuardConfig::default();
    let five_minutes = Duration::from_secs(300);
    let authenticated = Requirement::authenticated();
    let totp = Requirement::factor(FactorKind::TOTP).within(five_minutes);
    let composite = Requirement::any([
        Requirement::factor(FactorKind::WEBAUTHN).within(Duration::from_secs(600)),
        Requirement::factor(FactorKind::TOTP).within(five_minutes),
    ])
    .and(Requirement::role("editor"));
    let secure = Requirement::secure_session();
    let unmet = Requirement::factor(FactorKind::WEBAUTHN).within(five_minutes);
    for requirement in [&authenticated, &totp, &composite, &secure] {
        assert!(requirement.is_met(&session, &config, SystemTime::now()), "{requirement:?}");
    }
    assert!(!unmet.is_met(&session, &config, SystemTime::now()));

    let mut group = c.benchmark_group("guard_is_met");
    for (name, requirement) in
        [("authenticated", &authenticated), ("totp_within_5m", &totp), ("any_of_two_factors_and_role", &composite)]
    {
        group.bench_function(name, |b| {
            b.iter(|| black_box(requirement).is_met(black_box(&session), &config, SystemTime::now()));
        });
    }
    group.bench_function("secure_session", |b| {
        b.iter(|| black_box(&secure).is_met(black_box(&session), &config, SystemTime::now()));
    });
    group.bench_function("unmet_webauthn_shortfall", |b| {
        b.iter(|| black_box(&unmet).shortfall(black_box(&session), &config, SystemTime::now()));
    });
    group.finish();
}

fn challenges(c: &mut Criterion, fixture: &Fixture) {
    let layer = fixture.layer(Some(0));
    let session = session(fixture, &layer);
    let config = GuardConfig::default();
    let requirement = Requirement::factor(FactorKind::WEBAUTHN).within(Duration::from_secs(300));
    let step_up = requirement.shortfall(&session, &config, SystemTime::now()).unwrap().step_up.unwrap();
    let step_up = Rejection::StepUp(step_up);
    let challenge = DefaultChallenge;

    let mut group = c.benchmark_group("challenge");
    group.bench_function("unauthenticated_bearer", |b| {
        b.iter(|| internals::render(&challenge, &Rejection::Unauthenticated, true, None, "/", None, None));
    });
    group.bench_function("step_up_bearer_problem_json", |b| {
        b.iter(|| {
            internals::render(&challenge, black_box(&step_up), true, Some("application/json"), "/transfer", None, None)
        });
    });
    group.bench_function("step_up_browser_redirect", |b| {
        b.iter(|| {
            internals::render(
                &challenge,
                black_box(&step_up),
                false,
                Some("text/html,application/xhtml+xml"),
                "/transfer?amount=10",
                Some("/login"),
                Some("/step-up"),
            )
        });
    });
    group.finish();
}

fn key_lookup(c: &mut Criterion, fixture: &Fixture) {
    // 100 keys in all; subsets of 1, 10, 50 and 100 keys, looking up the last one.
    let served: serde_json::Value = serde_json::from_str(&fixture.jwks_json()).unwrap();
    let have = served["keys"].as_array().map_or(0, Vec::len);
    fixture.issuer.add_keys(DevAlg::EdDSA, 100usize.saturating_sub(have));
    let jwks: serde_json::Value = serde_json::from_str(&fixture.jwks_json()).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.len() >= 100);
    let mut group = c.benchmark_group("jwks_lookup");
    for size in [1usize, 10, 50, 100] {
        let subset = &keys[keys.len() - size..];
        let set = KeyLookup::parse(&serde_json::json!({ "keys": subset }).to_string());
        assert_eq!(set.len(), size);
        let last = subset.last().unwrap();
        let kid = last["kid"].as_str().unwrap().to_owned();
        let alg: tower_stepup::Algorithm = last["alg"].as_str().unwrap().parse().unwrap();
        assert!(set.find(&kid, alg));
        group.bench_function(format!("{size}_keys"), |b| b.iter(|| set.find(black_box(&kid), alg)));
        group.bench_function(format!("{size}_keys_unknown_kid"), |b| {
            b.iter(|| set.find(black_box("no-such-kid-0000000000000000"), alg));
        });
    }
    group.finish();
}

fn all(c: &mut Criterion) {
    let fixture = Fixture::start();
    extraction(c, &fixture);
    hot(c, &fixture);
    axum_hot(c, &fixture);
    cold(c, &fixture);
    guards(c, &fixture);
    challenges(c, &fixture);
    key_lookup(c, &fixture);
}

criterion_group! {
    name = benches;
    // Modest times: the whole `cargo bench` stays within a few minutes.
    config = Criterion::default()
        .measurement_time(Duration::from_millis(1500))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(40);
    targets = all
}

/// jwt-authorizer 0.15's default claims type (`RegisteredClaims`): every registered
/// claim optional, `aud` one string or an array, times as integers.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // deserialized, never read
struct PeerRegisteredClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<PeerOneOrArray>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
#[allow(dead_code)] // deserialized, never read
enum PeerOneOrArray {
    One(String),
    Array(Vec<String>),
}

/// The peer's work per verification, measured in the same run as ours on the same
/// token and key: jwt-authorizer 0.15 verifies with jsonwebtoken 9.3 (ring 0.17),
/// `decode::<RegisteredClaims>` with `iss`, `aud`, `exp` and `nbf` validated. Its
/// key lookup by `kid` and header parse come on top of this (not counted: the
/// comparison is conservative for us).
fn peer_cold(c: &mut Criterion) {
    use jsonwebtoken9 as peer;
    let fixture = Fixture::start();
    let layer = fixture.layer(Some(0));
    let jwks: peer::jwk::JwkSet = serde_json::from_str(&fixture.jwks_json()).unwrap();
    let mut group = c.benchmark_group("cold");
    for alg in [DevAlg::RS256, DevAlg::ES256] {
        let token = fixture.token(alg);
        let kid = fixture.issuer.current_kid(alg);
        let key = peer::DecodingKey::from_jwk(jwks.find(&kid).expect("the signer is served")).unwrap();
        let mut validation = peer::Validation::new(alg.as_str().parse().expect("a JOSE algorithm"));
        validation.set_issuer(&[fixture.issuer.stytch_issuer()]);
        validation.set_audience(&[fixture.issuer.project_id()]);
        validation.validate_nbf = true;
        let decode_registered = || peer::decode::<PeerRegisteredClaims>(black_box(&token), &key, &validation);
        decode_registered().expect("the peer accepts the token");
        let decode_value = || peer::decode::<serde_json::Value>(black_box(&token), &key, &validation);
        decode_value().expect("the peer accepts the token");
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        assert!(matches!(internals::resolve(&layer, &headers), Some(AuthState::Authenticated(_))));
        group.bench_function(format!("{alg}/peer_decode_registered"), |b| b.iter(decode_registered));
        group.bench_function(format!("{alg}/peer_decode_value"), |b| b.iter(decode_value));
        // Ours on the same token and key, cache disabled.
        group.bench_function(format!("{alg}/resolve_peer_token"), |b| {
            b.iter(|| internals::resolve(&layer, black_box(&headers)));
        });
    }
    group.finish();
}

criterion_group! {
    name = peer_benches;
    config = Criterion::default()
        .measurement_time(Duration::from_millis(1500))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(40);
    targets = peer_cold
}
criterion_main!(benches, peer_benches);
