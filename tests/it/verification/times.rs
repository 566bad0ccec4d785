//! Times a session carries, end to end: authentication times in the future are
//! refused (never read as "just now"), a Stytch session's own `expires_at` ends it
//! even while its JWT runs (also once cached), and decimal `auth_time` follows the
//! NumericDate rules of `exp`. Plus the same rules on the synchronous
//! `Requirement` API, for sessions that never went through verification.

use crate::common::{project, serve};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tower_stepup::{AuthState, Factor, FactorKind, Guard, GuardConfig, Requirement, Session, SessionLayer};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, DEFAULT_AUDIENCE};

const YEAR: Duration = Duration::from_secs(365 * 86_400);
const FIVE_MIN: Duration = Duration::from_secs(300);

/// What the layer concluded, for an unguarded route.
async fn state(Extension(state): Extension<AuthState>) -> Json<Value> {
    Json(match state {
        AuthState::Authenticated(session) => json!({ "state": "authenticated", "sub": session.subject() }),
        AuthState::Anonymous => json!({ "state": "anonymous" }),
        AuthState::Invalid(error) => {
            json!({ "state": "invalid", "kind": format!("{:?}", error.kind()), "detail": error.detail() })
        }
    })
}

async fn sub(session: Session) -> String {
    session.subject().to_owned()
}

fn app(layer: SessionLayer) -> Router {
    Router::new()
        .route("/state", get(state))
        .route("/me", get(sub).route_layer(Guard::authenticated()))
        .route("/totp", get(sub).route_layer(Guard::new(Requirement::factor(FactorKind::TOTP).within(FIVE_MIN))))
        .route("/secure", get(sub).route_layer(Guard::new(Requirement::secure_session())))
        .route("/recent", get(sub).route_layer(Guard::new(Requirement::max_age(FIVE_MIN))))
        .layer(layer)
}

/// `(status, WWW-Authenticate)` of `GET base+path` with `token` as a bearer.
async fn get_bearer(base: &str, path: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    let challenge =
        response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (response.status().as_u16(), challenge)
}

/// Status of `GET base+path` with `jwt` in the Stytch session JWT cookie.
async fn get_cookie(base: &str, path: &str, jwt: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", format!("stytch_session_jwt={jwt}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn state_of(base: &str, token: &str) -> Value {
    reqwest::Client::new().get(format!("{base}/state")).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

fn invalid_token(description: &str) -> String {
    format!(r#"Bearer realm="api", error="invalid_token", error_description="{description}""#)
}

#[tokio::test]
async fn stytch_factor_times_in_the_future_are_refused_not_read_as_now() {
    let issuer = DevIssuer::start().await.unwrap();
    let base = serve(app(SessionLayer::stytch(&project(&issuer)).build().await.unwrap())).await;
    let now = SystemTime::now();

    let future = issuer
        .stytch_session()
        .factor(DevFactor::totp().authenticated_at(now + YEAR))
        .factor(DevFactor::magic_link().authenticated_at(now + YEAR))
        .mint();
    // One factor in the future is enough: the token's times cannot be trusted.
    let one_future = issuer
        .stytch_session()
        .factor(DevFactor::magic_link())
        .factor(DevFactor::totp().authenticated_at(now + YEAR))
        .mint();
    for token in [&future, &one_future] {
        for path in ["/totp", "/secure", "/me"] {
            let (status, challenge) = get_bearer(&base, path, token).await;
            assert_eq!(status, 401, "{path}");
            assert_eq!(challenge, invalid_token("the token has an invalid claim"), "{path}");
        }
        let seen = state_of(&base, token).await;
        assert_eq!(seen["kind"], "InvalidClaim", "{seen}");
        assert_eq!(seen["detail"], "authentication time in the future", "{seen}");
    }

    // Ahead by less than the layer's leeway (30 s): clock skew, counted as now.
    let skewed = issuer
        .stytch_session()
        .factor(DevFactor::totp().authenticated_at(now + Duration::from_secs(10)))
        .factor(DevFactor::magic_link().authenticated_at(now + Duration::from_secs(10)))
        .mint();
    assert_eq!(get_bearer(&base, "/totp", &skewed).await.0, 200);
    assert_eq!(get_bearer(&base, "/secure", &skewed).await.0, 200);

    // The route does check recency: a TOTP from ten minutes ago is a step-up.
    let old = issuer.stytch_session().factor(DevFactor::totp().authenticated_ago(Duration::from_secs(600))).mint();
    let (status, challenge) = get_bearer(&base, "/totp", &old).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(r#"error="insufficient_user_authentication""#), "{challenge}");
}

#[tokio::test]
async fn oidc_auth_time_in_the_future_is_refused_and_decimals_read_like_exp() {
    let issuer = DevIssuer::start().await.unwrap();
    let base = serve(app(SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).build().await.unwrap())).await;
    let strict =
        SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_leeway(Duration::ZERO).build().await.unwrap();
    let strict = serve(app(strict)).await;
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();

    let year_ahead = issuer.access_token().auth_time(now + YEAR).mint();
    let (status, challenge) = get_bearer(&base, "/recent", &year_ahead).await;
    assert_eq!((status, challenge), (401, invalid_token("the token has an invalid claim")));
    let seen = state_of(&base, &year_ahead).await;
    assert_eq!(seen["kind"], "InvalidClaim", "{seen}");
    assert_eq!(seen["detail"], "authentication time in the future", "{seen}");

    // Within the leeway: accepted, and recent. The same token under a layer without
    // leeway is refused: the bound is the layer's own.
    let skewed = issuer.access_token().auth_time(now + Duration::from_secs(10)).mint();
    assert_eq!(get_bearer(&base, "/recent", &skewed).await.0, 200);
    assert_eq!(get_bearer(&strict, "/recent", &skewed).await.0, 401);
    assert_eq!(state_of(&strict, &skewed).await["kind"], "InvalidClaim");

    // Decimal auth_time: fractions dropped, like `exp`.
    let decimal = |value: Value| issuer.access_token().custom_claim("auth_time", value).mint();
    assert_eq!(get_bearer(&base, "/recent", &decimal(json!(secs - 60.0 + 0.25))).await.0, 200);
    let (status, challenge) = get_bearer(&base, "/recent", &decimal(json!(secs + YEAR.as_secs_f64() + 0.5))).await;
    assert_eq!((status, challenge), (401, invalid_token("the token has an invalid claim")));
    let old = decimal(json!(secs - 3600.5));
    let (status, challenge) = get_bearer(&base, "/recent", &old).await;
    assert_eq!(status, 401);
    assert!(challenge.contains(r#"error="insufficient_user_authentication""#), "{challenge}");
    for bad in [json!(-1.5), json!(1e300), json!("1700000000"), json!(f64::MAX)] {
        let seen = state_of(&base, &decimal(bad.clone())).await;
        assert_eq!(seen["kind"], "InvalidClaim", "{bad}: {seen}");
        assert_eq!(seen["detail"], "auth_time", "{bad}: {seen}");
    }
    // `null` reads as absent: a valid token, but no authentication time to show.
    assert_eq!(state_of(&base, &decimal(Value::Null)).await["state"], "authenticated");
    assert_eq!(get_bearer(&base, "/recent", &decimal(Value::Null)).await.0, 401);
}

#[tokio::test]
async fn a_stytch_sessions_own_expiry_ends_it_while_the_jwt_runs() {
    let issuer = DevIssuer::start().await.unwrap();
    let base = serve(app(SessionLayer::stytch(&project(&issuer)).build().await.unwrap())).await;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);

    // The JWT lives five more minutes; the session ended an hour ago.
    let ended = issuer.stytch_session().session_started_at(now - 2 * hour).session_expires_at(now - hour).mint();
    let (status, challenge) = get_bearer(&base, "/me", &ended).await;
    assert_eq!((status, challenge), (401, invalid_token("the token has expired")));
    let seen = state_of(&base, &ended).await;
    assert_eq!(seen["kind"], "Expired", "{seen}");
    assert_eq!(seen["detail"], "session expires_at", "{seen}");
    assert_eq!(get_cookie(&base, "/me", &ended).await, 401);

    // Ended within the leeway (30 s): still accepted, like `exp`.
    let just_ended =
        issuer.stytch_session().session_started_at(now - hour).session_expires_at(now - Duration::from_secs(10)).mint();
    assert_eq!(get_bearer(&base, "/me", &just_ended).await.0, 200);
}

#[tokio::test]
async fn a_cached_session_is_refused_once_it_expires() {
    let issuer = DevIssuer::start().await.unwrap();
    let layer = SessionLayer::stytch(&project(&issuer)).with_leeway(Duration::ZERO).build().await.unwrap();
    let base = serve(app(layer)).await;
    let expiring = issuer.stytch_session().session_expires_at(SystemTime::now() + Duration::from_secs(2)).mint();

    // Valid now: verified and cached (the bearer hot path and the cookie path).
    assert_eq!(get_bearer(&base, "/me", &expiring).await.0, 200);
    assert_eq!(get_cookie(&base, "/me", &expiring).await, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The JWT's `exp` is minutes away, the session is over.
    let (status, challenge) = get_bearer(&base, "/me", &expiring).await;
    assert_eq!((status, challenge), (401, invalid_token("the token has expired")));
    assert_eq!(get_cookie(&base, "/me", &expiring).await, 401);
    assert_eq!(state_of(&base, &expiring).await["detail"], "session expires_at");
}

// ---------------------------------------------------------------------------------
// The synchronous Requirement API, on sessions built by hand
// ---------------------------------------------------------------------------------

fn session(factors: Vec<Factor>, auth_time: Option<SystemTime>) -> Session {
    let builder = Session::builder("user-1", "https://issuer.example").factors(factors);
    match auth_time {
        Some(at) => builder.auth_time(at).build(),
        None => builder.build(),
    }
}

#[test]
fn recency_rules_never_count_a_far_future_time_as_now() {
    let config = GuardConfig::default();
    let now = SystemTime::now();
    let totp = |at| Factor::new(FactorKind::TOTP).with_last_authenticated_at(at);
    let email = |at| Factor::new(FactorKind::MAGIC_LINK).with_last_authenticated_at(at);
    let recent_totp = Requirement::factor(FactorKind::TOTP).within(FIVE_MIN);
    let secure = Requirement::secure_session();
    let max_age = Requirement::max_age(FIVE_MIN);

    let future = session(vec![totp(now + YEAR), email(now + YEAR)], Some(now + YEAR));
    for (name, requirement) in [("totp", &recent_totp), ("secure", &secure), ("max_age", &max_age)] {
        assert!(!requirement.is_met(&future, &config, now), "{name}");
        let shortfall = requirement.shortfall(&future, &config, now).expect(name);
        assert!(shortfall.step_up.is_some() && shortfall.forbidden.is_none(), "{name}: {shortfall:?}");
    }
    // A minute ahead is clock skew: counted as now.
    let skewed = now + Duration::from_secs(60);
    let skewed = session(vec![totp(skewed), email(skewed)], Some(skewed));
    for (name, requirement) in [("totp", &recent_totp), ("secure", &secure), ("max_age", &max_age)] {
        assert!(requirement.is_met(&skewed, &config, now), "{name}");
        assert_eq!(requirement.shortfall(&skewed, &config, now), None, "{name}");
    }
    // Without a recency bound the time does not matter.
    assert!(Requirement::factor(FactorKind::TOTP).and(Requirement::authenticated()).is_met(&future, &config, now));
}

#[test]
fn empty_combinators_refuse_every_session_and_fail_validation() {
    let config = GuardConfig::default();
    let now = SystemTime::now();
    let strong = session(
        vec![
            Factor::new(FactorKind::TOTP).with_last_authenticated_at(now),
            Factor::new(FactorKind::PASSWORD).with_last_authenticated_at(now),
        ],
        Some(now),
    );
    let none: Vec<FactorKind> = Vec::new();
    let cases = [
        ("all_factors", Requirement::all_factors(none.clone(), Some(FIVE_MIN)), "all_factors"),
        ("any_factor", Requirement::any_factor(none.clone(), None), "any_factor"),
        ("all", Requirement::all(Vec::<Requirement>::new()), "Requirement::all "),
        ("any", Requirement::any(Vec::<Requirement>::new()), "Requirement::any "),
        (
            "nested",
            Requirement::all([Requirement::authenticated(), Requirement::any(Vec::<Requirement>::new())]),
            "any",
        ),
        ("or", Requirement::authenticated().or(Requirement::all_factors(none.clone(), None)), "all_factors"),
        ("and", Requirement::all_factors(none, None).and(Requirement::authenticated()), "all_factors"),
        ("factor.or", Requirement::factor(FactorKind::TOTP).or(Requirement::any(Vec::<Requirement>::new())), "any"),
    ];
    for (name, requirement, names) in cases {
        assert!(!requirement.is_met(&strong, &config, now), "{name}");
        let forbidden = requirement.shortfall(&strong, &config, now).and_then(|s| s.forbidden).expect(name);
        let reason = forbidden.configuration_error.expect(name);
        assert!(reason.contains(names), "{name}: {reason}");
        let error = requirement.validate().expect_err(name);
        assert!(error.to_string().contains(&reason), "{name}: {error}");
    }
    for requirement in [
        Requirement::all_factors([FactorKind::TOTP, FactorKind::PASSWORD], Some(FIVE_MIN)),
        Requirement::any_factor([FactorKind::TOTP], None),
        Requirement::all([Requirement::authenticated()]),
        Requirement::any([Requirement::role("admin"), Requirement::authenticated()]),
    ] {
        assert!(requirement.validate().is_ok(), "{requirement:?}");
        assert!(requirement.is_met(&strong, &config, now), "{requirement:?}");
    }
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_misconfigured_requirement_is_logged_once_when_built() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let (requirement, before_use) = tracing::subscriber::with_default(subscriber, || {
        let configured: Vec<FactorKind> = Vec::new();
        let requirement = Requirement::all([
            Requirement::authenticated(),
            Requirement::any_factor(configured, Some(FIVE_MIN)).or(Requirement::role("admin")),
        ])
        .and(Requirement::scope("write"));
        let before_use = logs.0.lock().unwrap().len();
        // Judging and validating do not log again.
        let session = session(vec![], None);
        assert!(!requirement.is_met(&session, &GuardConfig::default(), SystemTime::now()));
        assert!(requirement.validate().is_err());
        (requirement, before_use)
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(before_use, text.len(), "{text}");
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("Requirement::any_factor over no factor kinds"), "{text}");
    assert!(format!("{requirement:?}").contains("Misconfigured"));
}
