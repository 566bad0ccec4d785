//! Fixtures shared by the integration tests: one definition of each.
// Each module uses a subset of these.
#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http::header::{AUTHORIZATION, COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use tower_stepup::{
    AuthError, AuthErrorKind, AuthState, FactorKind, Guard, IntrospectionAuthority, Requirement, Session, SessionLayer,
    StytchProject, TokenKind,
};
use tower_stepup_dev_issuer::{DevAlg, DevIssuer, DevIssuerConfig, DevSession, Endpoint, DEFAULT_AUDIENCE};

/// What most tests return, so `?` works on every fallible step.
pub(crate) type TestResult = TestResultOf<()>;
pub(crate) type TestResultOf<T> = Result<T, Box<dyn std::error::Error>>;

/// The Stytch cookie names (the layer's defaults for the Stytch profile).
pub(crate) const JWT_COOKIE: &str = "stytch_session_jwt";
pub(crate) const TOKEN_COOKIE: &str = "stytch_session";
/// Upper bound for polling loops that wait on a background task.
pub(crate) const MAX_POLLS: usize = 500;
/// The `fresh_within` window of the `/short` route in [`routes`].
pub(crate) const SHORT_WINDOW: Duration = Duration::from_millis(300);

/// Serves `app` on a free loopback port; returns its base URL.
pub(crate) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

/// A dev issuer that signs with one fast algorithm only.
pub(crate) async fn quick_issuer() -> DevIssuer {
    DevIssuer::start_with(DevIssuerConfig::default().with_algs(&[DevAlg::EdDSA])).await.expect("dev issuer starts")
}

/// How many times the issuer served its JWKS.
pub(crate) fn jwks_fetches(issuer: &DevIssuer) -> usize {
    issuer.request_count(Endpoint::Jwks)
}

/// The issuer's consumer project, verified locally only (no secret, so no
/// authority: fresh routes cannot confirm).
pub(crate) fn project(issuer: &DevIssuer) -> StytchProject {
    StytchProject::consumer(issuer.project_id()).expect("project id").with_base_url(issuer.base_url())
}

/// The issuer's consumer project with its secret: the Stytch authority confirms.
pub(crate) fn project_with_secret(issuer: &DevIssuer) -> StytchProject {
    project(issuer).with_secret(issuer.secret())
}

/// The issuer's B2B project with its secret.
pub(crate) fn b2b_project_with_secret(issuer: &DevIssuer) -> StytchProject {
    StytchProject::b2b(issuer.project_id())
        .expect("project id")
        .with_base_url(issuer.base_url())
        .with_secret(issuer.secret())
}

/// RFC 7662 introspection at the dev issuer.
pub(crate) fn introspection(issuer: &DevIssuer) -> IntrospectionAuthority {
    IntrospectionAuthority::new(&issuer.introspection_url(), issuer.client_id(), issuer.client_secret())
        .expect("introspection authority")
        .with_issuer(issuer.issuer())
}

/// The handler of every route in [`routes`]: the session as JSON.
pub(crate) async fn info(session: Session) -> Json<Value> {
    Json(json!({
        "sub": session.subject(),
        "session_id": session.session_id(),
        "client_id": session.client_id(),
        "organization": session.organization().map(|o| o.id.clone()),
        "organization_slug": session.organization().and_then(|o| o.slug.clone()),
        "scopes": session.scopes(),
        "acr": session.acr(),
        "amr": session.amr(),
        "factors": session.factors().iter().map(|f| f.kind().as_str().to_owned()).collect::<Vec<_>>(),
        "opaque": session.token_kind() == TokenKind::Opaque,
    }))
}

/// The shared app: `/me` (any session), `/transfer` (fresh), `/recent` (fresh within
/// an hour), `/short` (fresh within [`SHORT_WINDOW`]), `/lenient` (fresh, fail open),
/// `/totp` (a TOTP within 5 minutes, fresh), `/admin` (scope, fresh within a minute),
/// `/admin-fresh` (scope, fresh).
pub(crate) fn routes(layer: SessionLayer) -> Router {
    let totp = Requirement::factor(FactorKind::TOTP).within(Duration::from_secs(300));
    let admin = Requirement::scope("admin");
    Router::new()
        .route("/me", get(info))
        .route("/transfer", get(info).route_layer(Guard::authenticated().fresh()))
        .route("/recent", get(info).route_layer(Guard::authenticated().fresh_within(Duration::from_secs(3600))))
        .route("/short", get(info).route_layer(Guard::authenticated().fresh_within(SHORT_WINDOW)))
        .route("/lenient", get(info).route_layer(Guard::authenticated().fresh().fail_open()))
        .route("/totp", get(info).route_layer(Guard::new(totp).fresh()))
        .route("/admin", get(info).route_layer(Guard::new(admin.clone()).fresh_within(Duration::from_secs(60))))
        .route("/admin-fresh", get(info).route_layer(Guard::new(admin).fresh()))
        .layer(layer)
}

/// [`routes`] behind the Stytch layer of [`project_with_secret`], served.
pub(crate) async fn stytch_app(issuer: &DevIssuer) -> String {
    let layer = SessionLayer::stytch(&project_with_secret(issuer)).build().await.expect("stytch layer");
    serve(routes(layer)).await
}

/// [`routes`] behind an OIDC layer confirming with [`introspection`], served.
pub(crate) async fn introspection_app(issuer: &DevIssuer) -> String {
    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_authority(introspection(issuer));
    serve(routes(layer.build().await.expect("oidc layer"))).await
}

/// The `cookie` header of a browser holding `session`.
pub(crate) fn cookies(session: &DevSession) -> String {
    format!("{JWT_COOKIE}={}; {TOKEN_COOKIE}={}", session.session_jwt, session.session_token)
}

/// An HTTP client that does not follow redirects (so 303 challenges are seen).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// `GET url` with a bearer token.
pub(crate) async fn bearer(http: &reqwest::Client, url: String, token: &str) -> reqwest::Response {
    http.get(url).bearer_auth(token).send().await.expect("request")
}

/// `GET url` with a bearer token, owning its arguments (for spawned tasks).
pub(crate) async fn bearer_owned(http: reqwest::Client, url: String, token: String) -> reqwest::Response {
    bearer(&http, url, &token).await
}

/// `GET url` with a `cookie` header.
pub(crate) async fn with_cookies(http: &reqwest::Client, url: String, cookie: &str) -> reqwest::Response {
    http.get(url).header(COOKIE, cookie).send().await.expect("request")
}

/// The response's `WWW-Authenticate` header ("" when absent).
pub(crate) fn challenge(response: &reqwest::Response) -> String {
    response.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The parsed `Set-Cookie` headers.
pub(crate) fn set_cookies(headers: &http::HeaderMap) -> Vec<cookie::Cookie<'static>> {
    headers.get_all(SET_COOKIE).iter().map(|v| cookie::Cookie::parse(v.to_str().unwrap().to_owned()).unwrap()).collect()
}

/// `GET path` with a bearer token, in process (no server), so the response
/// extensions can be read.
pub(crate) async fn oneshot(app: Router, path: &str, token: &str) -> http::Response<Body> {
    let request = http::Request::builder()
        .uri(path)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    app.oneshot(request).await.unwrap()
}

/// The kind of the [`AuthError`] a refusal carries in its extensions.
pub(crate) fn error_kind(response: &http::Response<Body>) -> Option<AuthErrorKind> {
    response.extensions().get::<AuthError>().map(AuthError::kind)
}

/// `GET /me` with a bearer token, in process: the status, the refusal's error kind,
/// and the JSON body (`null` when not JSON).
pub(crate) async fn status_kind_body(app: &Router, token: &str) -> (http::StatusCode, Option<AuthErrorKind>, Value) {
    use http_body_util::BodyExt as _;
    let response = oneshot(app.clone(), "/me", token).await;
    let status = response.status();
    let kind = error_kind(&response);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, kind, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A short text for an [`AuthState`], for assertions.
pub(crate) fn state_text(state: &AuthState) -> String {
    match state {
        AuthState::Anonymous => "anonymous".to_owned(),
        AuthState::Authenticated(session) => format!("ok:{}", session.subject()),
        AuthState::Invalid(error) => format!("{:?}", error.kind()),
    }
}

/// HMAC-SHA256 (RFC 2104), to forge HS256 tokens keyed with a public key.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    block.resize(64, 0);
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
}
