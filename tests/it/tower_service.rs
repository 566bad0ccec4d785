//! The layer in a plain tower stack (no axum): a `service_fn` over `http::Request<B>`,
//! driven in-process with `ServiceExt`. The keys still come from the dev issuer over
//! real HTTP.

use std::convert::Infallible;

use crate::common::{project, state_text};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};
use tower_stepup::{AuthState, FactorKind, Guard, JwksConfig, Rejection, Requirement, SessionLayer};
use tower_stepup_dev_issuer::{DevAlg, DevFactor, DevIssuer, DevIssuerConfig, DEFAULT_AUDIENCE};

/// The inner service: echoes the AuthState it sees and the request body.
async fn echo(request: Request<String>) -> Result<Response<String>, Infallible> {
    let text = format!(
        "{}|{}",
        request.extensions().get::<AuthState>().map_or_else(|| "no state".to_owned(), state_text),
        request.body()
    );
    let mut response = Response::new(text);
    *response.status_mut() = StatusCode::ACCEPTED;
    response.headers_mut().insert("x-inner", "yes".parse().expect("header"));
    Ok(response)
}

async fn stytch_layer(issuer: &DevIssuer) -> SessionLayer {
    SessionLayer::stytch(&project(issuer))
        .with_jwks_config(JwksConfig::default().with_unknown_kid_fetches(5, std::time::Duration::from_millis(10)))
        .build()
        .await
        .expect("layer")
}

fn request(authorization: Option<&str>, body: &str) -> Request<String> {
    let mut builder = Request::builder().uri("/resource");
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder.body(body.to_owned()).expect("request")
}

#[tokio::test]
async fn service_fn_sees_the_auth_state() {
    let issuer = DevIssuer::start().await.expect("issuer");
    let layer = stytch_layer(&issuer).await;
    let service = layer.layer(service_fn(echo));

    let token = issuer.stytch_session().subject("tower-user").mint();
    let response = service.clone().oneshot(request(Some(&format!("Bearer {token}")), "payload")).await.expect("call");
    assert_eq!(response.status(), StatusCode::ACCEPTED, "the inner response passes through");
    assert_eq!(response.headers()["x-inner"], "yes");
    assert_eq!(response.into_body(), "ok:tower-user|payload");

    let anonymous = service.clone().oneshot(request(None, "")).await.expect("call");
    assert_eq!(anonymous.into_body(), "anonymous|");

    let expired = issuer.stytch_session().issued_at(std::time::SystemTime::now() - std::time::Duration::from_secs(900));
    let expired = expired.mint();
    let invalid = service.clone().oneshot(request(Some(&format!("Bearer {expired}")), "x")).await.expect("call");
    assert_eq!(invalid.status(), StatusCode::ACCEPTED, "the layer never rejects by itself");
    assert_eq!(invalid.into_body(), "Expired|x");

    let mut twice = request(Some(&format!("Bearer {token}")), "");
    twice.headers_mut().append(AUTHORIZATION, format!("Bearer {token}").parse().expect("header"));
    assert_eq!(service.clone().oneshot(twice).await.expect("call").into_body(), "MultipleAuthorizationHeaders|");

    let mut cookie = request(None, "c");
    cookie.headers_mut().insert(COOKIE, format!("stytch_session_jwt={token}").parse().expect("header"));
    assert_eq!(service.clone().oneshot(cookie).await.expect("call").into_body(), "ok:tower-user|c");
}

#[tokio::test]
async fn unknown_kids_are_fetched_from_the_issuer_in_a_plain_tower_stack() {
    let issuer = DevIssuer::start_with(DevIssuerConfig::default().with_algs(&[DevAlg::EdDSA])).await.expect("issuer");
    let layer = stytch_layer(&issuer).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        service_fn(move |request: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            echo(request)
        })
    };
    let mut service = ServiceBuilder::new().layer(layer).service(counted);

    // A key made after the layer started: the layer must fetch the JWKS (the
    // asynchronous path of its response future) before calling the inner service.
    issuer.rotate(DevAlg::EdDSA);
    let rotated = issuer.stytch_session().subject("rotated").mint();
    let unknown = issuer.stytch_session().kid("never-served").mint();
    let cases = [
        (format!("Bearer {rotated}"), "ok:rotated|1"),
        (format!("Bearer {unknown}"), "UnknownKey|2"),
        (format!("Bearer {rotated}"), "ok:rotated|3"),
        ("Bearer".to_owned(), "MalformedHeader|4"),
    ];
    // The same service, called repeatedly through `ready` + `call`.
    for (i, (authorization, want)) in cases.iter().enumerate() {
        let ready = service.ready().await.expect("ready");
        let response = ready.call(request(Some(authorization), &(i + 1).to_string())).await.expect("call");
        assert_eq!(response.into_body(), *want);
    }
    assert_eq!(calls.load(Ordering::SeqCst), cases.len(), "the inner service ran once per request");
}

#[tokio::test]
async fn any_request_body_type_works() {
    let issuer = DevIssuer::start().await.expect("issuer");
    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).build().await.expect("layer");
    let service = layer.layer(service_fn(|request: Request<Full<Bytes>>| async move {
        let state = request.extensions().get::<AuthState>().map_or_else(|| "no state".to_owned(), state_text);
        let body = request.into_body().collect().await.expect("body").to_bytes();
        Ok::<_, Infallible>(Response::new(format!("{state}|{}", String::from_utf8_lossy(&body))))
    }));
    let token = issuer.access_token().subject("api-client").mint();
    let request = Request::builder()
        .uri("/api")
        .header(AUTHORIZATION, format!("bearer {token}"))
        .body(Full::new(Bytes::from_static(b"bytes body")))
        .expect("request");
    let response = service.oneshot(request).await.expect("call");
    assert_eq!(response.into_body(), "ok:api-client|bytes body");
}

/// A `Guard` in a plain tower stack (no axum) over a route whose body cannot be made
/// from bytes (`Empty<Bytes>`): refusals carry the challenge, allowed requests the
/// route's own response.
#[tokio::test]
async fn a_guard_works_in_a_plain_tower_stack_with_any_body() {
    let issuer = DevIssuer::start().await.expect("issuer");
    let layer = stytch_layer(&issuer).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let route = {
        let calls = calls.clone();
        service_fn(move |request: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let subject =
                request.extensions().get::<AuthState>().and_then(AuthState::session).map(|s| s.subject().to_owned());
            async move {
                let mut response = Response::new(Empty::<Bytes>::new());
                *response.status_mut() = StatusCode::ACCEPTED;
                response.headers_mut().insert("x-subject", subject.unwrap_or_default().parse().expect("header"));
                Ok::<_, Infallible>(response)
            }
        })
    };
    let service =
        ServiceBuilder::new().layer(layer).layer(Guard::new(Requirement::factor(FactorKind::TOTP))).service(route);

    let anonymous = service.clone().oneshot(request(None, "")).await.expect("call");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="api""#);
    assert_eq!(anonymous.extensions().get::<Rejection>(), Some(&Rejection::Unauthenticated));

    let weak = issuer.stytch_session().subject("weak").without_factors().mint();
    let mut refused = request(Some(&format!("Bearer {weak}")), "");
    refused.headers_mut().insert(http::header::ACCEPT, "application/json".parse().expect("header"));
    let refused = service.clone().oneshot(refused).await.expect("call");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(refused.extensions().get::<Rejection>(), Some(Rejection::StepUp(_))));
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let body = refused.into_body().collect().await.expect("body").to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem+json");
    assert_eq!(problem["type"], "urn:tower-stepup:problem:step-up-required");
    assert_eq!(problem["factors"], serde_json::json!(["totp"]));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "refused requests never reach the route");

    let strong = issuer.stytch_session().subject("strong").factor(DevFactor::totp()).mint();
    let allowed = service.clone().oneshot(request(Some(&format!("Bearer {strong}")), "")).await.expect("call");
    assert_eq!(allowed.status(), StatusCode::ACCEPTED, "the route's own response");
    assert_eq!(allowed.headers()["x-subject"], "strong");
    assert!(allowed.extensions().get::<Rejection>().is_none());
    let body = allowed.into_body().collect().await.expect("body").to_bytes();
    assert!(body.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
