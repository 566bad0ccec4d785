//! Context-bound sessions: `Requirement::same_context` against sessions the dev
//! issuer started with recorded `attributes`, over real HTTP (the peer address comes
//! from the connection) and in process (`MockConnectInfo` for other addresses).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::get;
use axum::Router;
use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use serde_json::{json, Value};
use tower::ServiceExt as _;
use tower_stepup::{
    ContextMismatch, Dialect, FactorKind, FindingKind, Guard, GuardConfig, OidcProfile, Rejection, Requirement,
    SameContext, SessionLayer, SessionLayerBuilder,
};
use tower_stepup_dev_issuer::{DevIssuer, DevSession, DEFAULT_AUDIENCE};

use crate::common::{b2b_project_with_secret, client, info, project, project_with_secret, quick_issuer, TestResult};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) TestBrowser/1.0";

/// Serves `app` on loopback with the peer address available to the guards.
async fn serve_with_peer(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.expect("serve") });
    format!("http://{addr}")
}

/// `/here` (same context), `/here-fresh` (same context, confirmed with the issuer).
fn routes(layer: SessionLayer) -> Router {
    Router::new()
        .route("/here", get(info).route_layer(Guard::new(Requirement::same_context())))
        .route("/here-fresh", get(info).route_layer(Guard::new(Requirement::same_context()).fresh()))
        .layer(layer)
}

async fn app(builder: SessionLayerBuilder, same_context: SameContext) -> String {
    let layer = builder.with_guard_config(GuardConfig::default().with_same_context(same_context)).build().await;
    serve_with_peer(routes(layer.expect("layer"))).await
}

/// Logs in at the dev issuer, which records these attributes.
async fn login(issuer: &DevIssuer, attributes: Value) -> DevSession {
    let response = client()
        .post(format!("{}/dev/login", issuer.base_url()))
        .json(&json!({ "attributes": attributes }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    response.json().await.expect("dev session")
}

async fn get_with(url: String, token: &str, user_agent: Option<&str>, forwarded: Option<&str>) -> reqwest::Response {
    let mut request = client().get(url).bearer_auth(token).header(ACCEPT, "application/json");
    if let Some(user_agent) = user_agent {
        request = request.header(USER_AGENT, user_agent);
    }
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    request.send().await.expect("request")
}

/// Asserts a `same_context` step-up naming `context`; returns the problem body.
async fn assert_step_up(response: reqwest::Response, context: &[&str]) -> Value {
    assert_eq!(response.status(), 401);
    let challenge = crate::common::challenge(&response);
    assert!(challenge.contains("error=\"insufficient_user_authentication\""), "{challenge}");
    assert!(challenge.contains("max_age=\"0\""), "{challenge}");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["context"], json!(context), "{body}");
    assert_eq!(body["max_age"], 0);
    body
}

#[tokio::test]
async fn same_user_agent_and_network_pass_another_network_steps_up() -> TestResult {
    let issuer = quick_issuer().await;
    let base = app(SessionLayer::stytch(&project_with_secret(&issuer)), SameContext::default()).await;
    // The test client is 127.0.0.1.
    let here = login(&issuer, json!({ "ip_address": "127.0.0.1", "user_agent": UA })).await;
    let same_24 = login(&issuer, json!({ "ip_address": "127.0.0.254", "user_agent": UA })).await;
    let other_24 = login(&issuer, json!({ "ip_address": "127.0.1.1", "user_agent": UA })).await;
    for path in ["/here", "/here-fresh"] {
        assert_eq!(get_with(format!("{base}{path}"), &here.session_jwt, Some(UA), None).await.status(), 200);
        assert_eq!(get_with(format!("{base}{path}"), &same_24.session_jwt, Some(UA), None).await.status(), 200);
        let response = get_with(format!("{base}{path}"), &other_24.session_jwt, Some(UA), None).await;
        assert_step_up(response, &["ip_address"]).await;
    }
    // The opaque session token: the issuer's answer carries the attributes too.
    assert_eq!(get_with(format!("{base}/here"), &here.session_token, Some(UA), None).await.status(), 200);
    let response = get_with(format!("{base}/here"), &other_24.session_token, Some(UA), None).await;
    assert_step_up(response, &["ip_address"]).await;
    Ok(())
}

#[tokio::test]
async fn another_user_agent_or_none_steps_up_unless_only_the_network_is_compared() -> TestResult {
    let issuer = quick_issuer().await;
    let strict = app(SessionLayer::stytch(&project_with_secret(&issuer)), SameContext::default()).await;
    let session = login(&issuer, json!({ "ip_address": "127.0.0.1", "user_agent": UA })).await;
    let other = get_with(format!("{strict}/here"), &session.session_jwt, Some("curl/8.0"), None).await;
    assert_step_up(other, &["user_agent"]).await;
    let none = get_with(format!("{strict}/here"), &session.session_jwt, None, None).await;
    assert_step_up(none, &["user_agent"]).await;

    let network_only = SameContext::default().without_user_agent();
    let lenient = app(SessionLayer::stytch(&project_with_secret(&issuer)), network_only).await;
    let other = get_with(format!("{lenient}/here"), &session.session_jwt, Some("curl/8.0"), None).await;
    assert_eq!(other.status(), 200);
    Ok(())
}

#[tokio::test]
async fn a_spoofed_forwarded_header_is_ignored_without_trusted_proxies() -> TestResult {
    let issuer = quick_issuer().await;
    // The session began at 203.0.113.7; the attacker, at 127.0.0.1, claims that address.
    let session = login(&issuer, json!({ "ip_address": "203.0.113.7", "user_agent": UA })).await;
    let untrusting = app(SessionLayer::stytch(&project(&issuer)), SameContext::default()).await;
    let spoofed = get_with(format!("{untrusting}/here"), &session.session_jwt, Some(UA), Some("203.0.113.7")).await;
    assert_step_up(spoofed, &["ip_address"]).await;

    // Behind a trusted proxy (here: the loopback peer), the header is the client.
    let proxied = SameContext::default().with_trusted_proxies(["127.0.0.1"]);
    let trusting = app(SessionLayer::stytch(&project(&issuer)), proxied).await;
    let forwarded = get_with(format!("{trusting}/here"), &session.session_jwt, Some(UA), Some("203.0.113.99")).await;
    assert_eq!(forwarded.status(), 200);
    // The client writes the left part of the list; the proxy appends the address it
    // saw: only the right-most untrusted entry counts.
    let appended = Some("203.0.113.7, 198.51.100.1");
    let response = get_with(format!("{trusting}/here"), &session.session_jwt, Some(UA), appended).await;
    assert_step_up(response, &["ip_address"]).await;
    // Several proxies: trusted hops on the right are skipped.
    let chained = Some("203.0.113.7, 127.0.0.1");
    assert_eq!(get_with(format!("{trusting}/here"), &session.session_jwt, Some(UA), chained).await.status(), 200);
    // Garbage where the client address should be: unknown, refused (not the proxy).
    let garbage = get_with(format!("{trusting}/here"), &session.session_jwt, Some(UA), Some("nonsense")).await;
    assert_eq!(garbage.status(), 403);
    let no_header = get_with(format!("{trusting}/here"), &session.session_jwt, Some(UA), None).await;
    assert_eq!(no_header.status(), 403, "a trusted proxy that does not say is not the client");
    Ok(())
}

/// In process, from `peer`, with a bearer token and `User-Agent: UA`.
async fn from_peer(app: Router, peer: &str, token: &str) -> http::Response<Body> {
    let peer: SocketAddr = peer.parse().expect("socket address");
    let request = http::Request::builder()
        .uri("/here")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(USER_AGENT, UA)
        .body(Body::empty())
        .expect("request");
    app.layer(MockConnectInfo(peer)).oneshot(request).await.expect("response")
}

#[tokio::test]
async fn ipv6_sessions_are_compared_by_64_prefix() -> TestResult {
    let issuer = quick_issuer().await;
    let token =
        issuer.stytch_session().attributes(json!({ "ip_address": "2001:db8:1:2::10", "user_agent": UA })).mint();
    let layer = SessionLayer::stytch(&project(&issuer)).build().await?;
    let app = routes(layer);
    assert_eq!(from_peer(app.clone(), "[2001:db8:1:2:abcd::5]:4000", &token).await.status(), 200);
    let other = from_peer(app.clone(), "[2001:db8:1:3::10]:4000", &token).await;
    assert_eq!(other.status(), 401);
    match other.extensions().get::<Rejection>() {
        Some(Rejection::StepUp(step_up)) => assert_eq!(step_up.context, ["ip_address"]),
        other => panic!("expected a step-up, got {other:?}"),
    }
    assert_eq!(from_peer(app.clone(), "203.0.113.7:4000", &token).await.status(), 401, "IPv4 never matches IPv6");

    // A /48 tolerance lets the neighbouring /64 through; IPv4-mapped peers count as IPv4.
    let v4 = issuer.stytch_session().attributes(json!({ "ip_address": "198.51.100.4", "user_agent": UA })).mint();
    let wide = GuardConfig::default().with_same_context(SameContext::default().with_ipv6_prefix(48));
    let layer = SessionLayer::stytch(&project(&issuer)).with_guard_config(wide).build().await?;
    let app = routes(layer);
    assert_eq!(from_peer(app.clone(), "[2001:db8:1:3::10]:4000", &token).await.status(), 200);
    assert_eq!(from_peer(app.clone(), "[2001:db8:2::10]:4000", &token).await.status(), 401);
    assert_eq!(from_peer(app.clone(), "[::ffff:198.51.100.200]:4000", &v4).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn the_hook_is_told_once_per_mismatch_without_tokens() -> TestResult {
    let issuer = quick_issuer().await;
    let seen: Arc<Mutex<Vec<ContextMismatch>>> = Arc::default();
    let record = Arc::clone(&seen);
    let same_context = SameContext::default().on_mismatch(move |mismatch| {
        record.lock().expect("lock").push(mismatch.clone());
    });
    let base = app(SessionLayer::stytch(&project_with_secret(&issuer)), same_context).await;
    let count = || seen.lock().expect("lock").len();

    let session = login(&issuer, json!({ "ip_address": "127.0.0.1", "user_agent": UA })).await;
    assert_eq!(get_with(format!("{base}/here"), &session.session_jwt, Some(UA), None).await.status(), 200);
    assert_eq!(count(), 0, "no mismatch, no call");

    // A fresh route judges twice (locally, then the confirmed session): one call.
    let moved = login(&issuer, json!({ "ip_address": "192.0.2.44", "user_agent": UA })).await;
    assert_eq!(get_with(format!("{base}/here-fresh"), &moved.session_jwt, Some(UA), None).await.status(), 401);
    assert_eq!(count(), 1);
    // The same context again, on any route: not reported again.
    for path in ["/here", "/here-fresh", "/here"] {
        assert_eq!(get_with(format!("{base}{path}"), &moved.session_jwt, Some(UA), None).await.status(), 401);
    }
    assert_eq!(count(), 1);
    // Another user agent is another mismatch.
    assert_eq!(get_with(format!("{base}/here"), &moved.session_jwt, Some("Other/2"), None).await.status(), 401);
    assert_eq!(count(), 2);

    let calls = seen.lock().expect("lock").clone();
    let first = &calls[0];
    assert_eq!(first.subject, moved.user_id);
    assert_eq!(first.session_id.as_deref(), Some(moved.session_id.as_str()));
    assert_eq!(first.differs, ["ip_address"]);
    assert!(!first.unrecorded);
    assert_eq!(first.recorded.ip_address, "192.0.2.44".parse().ok());
    assert_eq!(first.observed_ip_address, "127.0.0.1".parse().ok());
    assert_eq!(first.observed_user_agent.as_deref(), Some(UA));
    assert_eq!(calls[1].differs, ["ip_address", "user_agent"]);
    let printed = format!("{calls:?}");
    for secret in [&moved.session_jwt, &moved.session_token] {
        assert!(!printed.contains(secret.as_str()), "a token reached the hook");
    }
    Ok(())
}

#[tokio::test]
async fn sessions_that_recorded_no_context_fail_closed_unless_allowed() -> TestResult {
    let issuer = quick_issuer().await;
    let missing = issuer.stytch_session().attributes(Value::Null).mint();
    let empty = issuer.stytch_session().attributes(json!({ "ip_address": "", "user_agent": "" })).mint();
    let malformed = issuer.stytch_session().attributes(json!({ "ip_address": 127, "user_agent": ["x"] })).mint();
    let no_agent = issuer.stytch_session().attributes(json!({ "ip_address": "127.0.0.1" })).mint();
    let strict = app(SessionLayer::stytch(&project(&issuer)), SameContext::default()).await;
    for token in [&missing, &empty, &malformed] {
        let response = get_with(format!("{strict}/here"), token, Some(UA), None).await;
        assert_step_up(response, &["ip_address", "user_agent"]).await;
    }
    let response = get_with(format!("{strict}/here"), &no_agent, Some(UA), None).await;
    assert_step_up(response, &["user_agent"]).await;

    let lenient = app(SessionLayer::stytch(&project(&issuer)), SameContext::default().allow_unrecorded()).await;
    for token in [&missing, &empty, &malformed, &no_agent] {
        assert_eq!(get_with(format!("{lenient}/here"), token, Some(UA), None).await.status(), 200);
    }
    // What was recorded is still compared.
    let elsewhere = issuer.stytch_session().attributes(json!({ "ip_address": "192.0.2.1" })).mint();
    let response = get_with(format!("{lenient}/here"), &elsewhere, Some(UA), None).await;
    assert_step_up(response, &["ip_address"]).await;
    Ok(())
}

#[tokio::test]
async fn b2b_member_sessions_confirmed_on_fresh_routes_keep_the_jwts_context() -> TestResult {
    let issuer = quick_issuer().await;
    let base = app(SessionLayer::stytch(&b2b_project_with_secret(&issuer)), SameContext::default()).await;
    let member = issuer.create_b2b_session("member-test-1", "organization-test-1", "acme", vec![]);
    // Stytch's `member_session` has no `attributes`, but the session JWT's claim does
    // (stytch-node reads `attributes` from it for both dialects), and the layer's
    // profile shapes the confirmed session from the renewed JWT: the dev issuer
    // recorded 127.0.0.1 (same network) and its own User-Agent (not this one).
    let response = get_with(format!("{base}/here-fresh"), &member.session_jwt, Some(UA), None).await;
    assert_step_up(response, &["user_agent"]).await;
    let response =
        get_with(format!("{base}/here-fresh"), &member.session_jwt, Some("tower-stepup dev issuer"), None).await;
    assert_eq!(response.status(), 200);
    Ok(())
}

#[tokio::test]
async fn an_unknown_client_address_is_a_server_configuration_error() -> TestResult {
    let issuer = quick_issuer().await;
    let session = login(&issuer, json!({ "ip_address": "127.0.0.1", "user_agent": UA })).await;
    let layer = SessionLayer::stytch(&project(&issuer)).build().await?;
    // Served without `into_make_service_with_connect_info`: no peer address.
    let base = crate::common::serve(routes(layer)).await;
    let response = get_with(format!("{base}/here"), &session.session_jwt, Some(UA), None).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await?;
    assert!(body["configuration_error"].as_str().is_some_and(|e| e.contains("client address")), "{body}");
    Ok(())
}

#[tokio::test]
async fn dev_login_records_the_request_context_by_default() -> TestResult {
    let issuer = quick_issuer().await;
    let base = app(SessionLayer::stytch(&project(&issuer)), SameContext::default()).await;
    // No `attributes` in the body: the issuer records what the login request showed.
    let response = client()
        .post(format!("{}/dev/login", issuer.base_url()))
        .header(USER_AGENT, UA)
        .json(&json!({}))
        .send()
        .await?;
    let session: DevSession = response.json().await?;
    assert_eq!(get_with(format!("{base}/here"), &session.session_jwt, Some(UA), None).await.status(), 200);
    let other = get_with(format!("{base}/here"), &session.session_jwt, Some("Other/1"), None).await;
    assert_step_up(other, &["user_agent"]).await;
    // Malformed attributes are refused like Stytch's bad requests.
    let bad = client()
        .post(format!("{}/dev/login", issuer.base_url()))
        .json(&json!({ "attributes": { "ip_address": 5 } }))
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    Ok(())
}

#[tokio::test]
async fn browsers_are_sent_to_step_up_with_max_age_zero() -> TestResult {
    let issuer = quick_issuer().await;
    let session = login(&issuer, json!({ "ip_address": "192.0.2.1", "user_agent": UA })).await;
    let config = GuardConfig::default().with_step_up_url("/step-up");
    let layer = SessionLayer::stytch(&project(&issuer)).with_guard_config(config).build().await?;
    let base = serve_with_peer(routes(layer)).await;
    let cookie = format!("stytch_session_jwt={}", session.session_jwt);
    let response = client()
        .get(format!("{base}/here"))
        .header("cookie", cookie)
        .header(ACCEPT, "text/html")
        .header(USER_AGENT, UA)
        .send()
        .await?;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str()?;
    assert!(location.starts_with("/step-up?return_to=%2Fhere"), "{location}");
    assert!(location.contains("max_age=0"), "{location}");
    Ok(())
}

#[tokio::test]
async fn oidc_sessions_record_context_from_the_configured_claims() -> TestResult {
    let issuer = quick_issuer().await;
    let ip_claim = "https://example.com/login_ip";
    let ua_claim = "https://example.com/login_ua";
    let token =
        issuer.access_token().custom_claim(ip_claim, json!("198.51.100.4")).custom_claim(ua_claim, json!(UA)).mint();
    // Without the claims configured nothing is recorded: fail closed.
    let plain = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).build().await?;
    assert_eq!(from_peer(routes(plain), "198.51.100.9:4000", &token).await.status(), 401);
    let profile = OidcProfile::rfc9068().with_ip_address_claim(ip_claim).with_user_agent_claim(ua_claim);
    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_profile(profile).build().await?;
    let app = routes(layer);
    assert_eq!(from_peer(app.clone(), "198.51.100.9:4000", &token).await.status(), 200);
    assert_eq!(from_peer(app, "192.0.2.9:4000", &token).await.status(), 401);
    Ok(())
}

#[tokio::test]
async fn layers_check_requirements_against_their_dialect_at_startup() -> TestResult {
    let issuer = quick_issuer().await;
    let levels = GuardConfig::default().with_acr_levels(["pwd", "mfa", "phr"]);
    let stytch = SessionLayer::stytch(&project(&issuer)).with_guard_config(levels.clone()).build().await?;
    let b2b_project = tower_stepup::StytchProject::b2b(issuer.project_id())?.with_base_url(issuer.base_url());
    let b2b = SessionLayer::stytch(&b2b_project).with_guard_config(levels.clone()).build().await?;
    let oidc = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_guard_config(levels).build().await?;
    assert_eq!((stytch.dialect(), b2b.dialect(), oidc.dialect()), (Dialect::Stytch, Dialect::StytchB2b, Dialect::Oidc));

    let phr = Requirement::acr_at_least("phr");
    let kinds = |layer: &SessionLayer, requirement: &Requirement| {
        layer.requirement_findings(requirement).into_iter().map(|f| (f.kind, f.certain)).collect::<Vec<_>>()
    };
    assert_eq!(kinds(&stytch, &phr), [(FindingKind::AcrUnreachable, true)]);
    assert_eq!(kinds(&oidc, &phr), []);
    let webauthn = Requirement::from(Requirement::factor(FactorKind::WEBAUTHN));
    assert_eq!(kinds(&b2b, &webauthn), [(FindingKind::FactorNotInDialect, true)]);
    assert_eq!(kinds(&stytch, &webauthn), []);
    assert_eq!(kinds(&b2b, &Requirement::same_context()), [(FindingKind::ContextNotRecorded, false)]);

    // The guard is built either way (the warning is logged), and judges as usual:
    // a Stytch session with two factor kinds is `mfa`, never `phr`.
    let token = issuer
        .stytch_session()
        .factor(tower_stepup_dev_issuer::DevFactor::password())
        .factor(tower_stepup_dev_issuer::DevFactor::totp())
        .mint();
    let app = Router::new()
        .route("/phr", get(info).route_layer(stytch.guard(phr)))
        .route("/mfa", get(info).route_layer(stytch.guard(Requirement::acr_at_least("mfa"))))
        .layer(stytch);
    assert_eq!(crate::common::oneshot(app.clone(), "/mfa", &token).await.status(), 200);
    assert_eq!(crate::common::oneshot(app, "/phr", &token).await.status(), 401);
    Ok(())
}
