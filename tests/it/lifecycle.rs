//! Session lifecycle (issue 10): logout through [`SessionControl`], over HTTP
//! against the dev issuer.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use http::header::{COOKIE, SET_COOKIE};
use tower_stepup::{
    AuthErrorKind, Authority, AuthorityCredential, ClearSessionCookies, CookieAttributes, Guard, SessionControl,
    SessionLayer, SessionLayerBuilder, StytchAuthority,
};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, Endpoint, Failure, OpaqueTokenSpec, DEFAULT_AUDIENCE};

use crate::common::{
    b2b_project_with_secret, bearer, client, cookies, info, introspection, project_with_secret, serve, set_cookies,
    TestResult, JWT_COOKIE, TOKEN_COOKIE,
};

/// `204` after a revocation, `503` when the issuer failed; the cookies cleared
/// either way (for cookie clients).
async fn logout(control: SessionControl) -> (ClearSessionCookies, StatusCode) {
    let status = match control.revoke().await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(error) if error.kind().is_server_fault() => StatusCode::SERVICE_UNAVAILABLE,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (control.cleared_cookies(), status)
}

/// `/me` (local), `/transfer` (fresh) and `POST /logout` behind `builder`'s layer.
async fn app(builder: SessionLayerBuilder) -> String {
    let layer = builder.build().await.expect("layer");
    serve(
        Router::new()
            .route("/me", get(info))
            .route("/transfer", get(info).route_layer(Guard::authenticated().fresh()))
            .route("/logout", post(logout))
            .layer(layer),
    )
    .await
}

async fn post_bearer(http: &reqwest::Client, url: String, token: &str) -> reqwest::Response {
    http.post(url).bearer_auth(token).send().await.expect("request")
}

async fn post_cookies(http: &reqwest::Client, url: String, cookie: &str) -> reqwest::Response {
    http.post(url).header(COOKIE, cookie).send().await.expect("request")
}

#[tokio::test]
async fn stytch_logout_ends_the_session_here_and_at_the_issuer() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let http = client();
    let session = issuer.create_session("user-logout", vec![DevFactor::password()]);
    let other = issuer.create_session("user-logout", vec![DevFactor::password()]);

    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 200);
    let out = post_bearer(&http, format!("{base}/logout"), &session.session_jwt).await;
    assert_eq!(out.status(), 204);
    assert_eq!(out.headers().get_all(SET_COOKIE).iter().count(), 0, "bearer clients never get cookies");
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 1);

    // Refused on a local route from the next request on, with no issuer call.
    let calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), calls);
    // Its session token too (an opaque token names its session only once asked about).
    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_token).await.status(), 401);
    // Gone at the issuer.
    let authority = StytchAuthority::new(&project_with_secret(&issuer))?;
    let error = authority.authenticate(AuthorityCredential::Opaque(&session.session_token)).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::SessionRevoked);
    assert!(!issuer.revoke_session(&session.session_id), "already revoked");

    // Another session of the same user is unaffected.
    assert_eq!(bearer(&http, format!("{base}/me"), &other.session_jwt).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &other.session_jwt).await.status(), 200);
    Ok(())
}

#[tokio::test]
async fn cookie_logout_clears_both_cookies_with_the_layer_attributes() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let attributes = CookieAttributes::default().with_domain("example.test").with_path("/app");
    let base = app(SessionLayer::stytch(&project_with_secret(&issuer)).with_cookie_attributes(attributes)).await;
    let http = client();
    let session = issuer.create_session("user-cookie-logout", vec![DevFactor::password()]);
    let cookie = cookies(&session);

    let out = post_cookies(&http, format!("{base}/logout"), &cookie).await;
    assert_eq!(out.status(), 204);
    let cleared = set_cookies(out.headers());
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    for name in [JWT_COOKIE, TOKEN_COOKIE] {
        let cookie = cleared.iter().find(|c| c.name() == name).ok_or("cookie not cleared")?;
        assert_eq!(cookie.value(), "");
        assert_eq!(cookie.max_age(), Some(cookie::time::Duration::ZERO));
        assert_eq!(cookie.domain(), Some("example.test"));
        assert_eq!(cookie.path(), Some("/app"));
    }
    let me = http.get(format!("{base}/me")).header(COOKIE, &cookie).send().await?;
    assert_eq!(me.status(), 401);
    Ok(())
}

#[tokio::test]
async fn b2b_logout_revokes_by_member_session_id() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(SessionLayer::stytch(&b2b_project_with_secret(&issuer))).await;
    let http = client();
    let session =
        issuer.create_b2b_session("member-logout", "organization-logout", "acme", vec![DevFactor::password()]);

    // The dev issuer's B2B endpoint refuses `session_id` (`400`): a `204` means the
    // request named `member_session_id`.
    let out = post_bearer(&http, format!("{base}/logout"), &session.session_jwt).await;
    assert_eq!(out.status(), 204);
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 1);
    assert!(!issuer.revoke_session(&session.session_id), "revoked at the issuer");
    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 401);
    Ok(())
}

#[tokio::test]
async fn rfc7009_revocation_of_an_opaque_token() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let authority = introspection(&issuer).with_revocation_url(issuer.revocation_url());
    let base = app(SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_authority(authority)).await;
    let http = client();
    let token = issuer.issue_opaque_access_token(OpaqueTokenSpec::new().audience(DEFAULT_AUDIENCE));
    let other = issuer.issue_opaque_access_token(OpaqueTokenSpec::new().audience(DEFAULT_AUDIENCE));

    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200);
    assert_eq!(post_bearer(&http, format!("{base}/logout"), &token).await.status(), 204);
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 1, "one RFC 7009 call");
    assert!(!issuer.revoke_opaque_access_token(&token), "revoked at the issuer");
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &other).await.status(), 200);

    // Without a revocation URL: local only, no issuer call.
    let base = app(SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_authority(introspection(&issuer))).await;
    assert_eq!(post_bearer(&http, format!("{base}/logout"), &other).await.status(), 204);
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 1);
    assert_eq!(bearer(&http, format!("{base}/me"), &other).await.status(), 401);
    Ok(())
}

#[tokio::test]
async fn issuer_failure_on_revoke_is_an_error_but_the_session_is_refused_locally() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let http = client();
    let session = issuer.create_session("user-revoke-500", vec![DevFactor::password()]);
    let cookie = cookies(&session);

    issuer.set_endpoint_failure(Endpoint::SessionsRevoke, Failure::Status500);
    let out = post_cookies(&http, format!("{base}/logout"), &cookie).await;
    assert_eq!(out.status(), 503);
    assert_eq!(set_cookies(out.headers()).len(), 2, "cleared all the same");
    assert_eq!(http.get(format!("{base}/me")).header(COOKIE, &cookie).send().await?.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 401);
    assert!(issuer.revoke_session(&session.session_id), "still alive at the issuer");
    Ok(())
}

#[tokio::test]
async fn logout_without_a_session_is_401() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(SessionLayer::stytch(&project_with_secret(&issuer))).await;
    let out = client().post(format!("{base}/logout")).send().await?;
    assert_eq!(out.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 0);
    Ok(())
}

#[tokio::test]
async fn logout_without_an_authority_is_remembered_by_the_layer() -> TestResult {
    // Nobody to tell: the layer itself refuses the session until it would have
    // ended (its other JWTs too), and clears the cookies.
    let issuer = DevIssuer::start().await?;
    let base = app(SessionLayer::stytch(&crate::common::project(&issuer))).await;
    let http = client();
    let session = issuer.create_session("user-no-authority", vec![DevFactor::password()]);
    let other = issuer.create_session("user-no-authority", vec![DevFactor::password()]);
    let second_jwt = issuer.stytch_session().session_id(&session.session_id).subject(&session.user_id).mint();
    assert_eq!(http.get(format!("{base}/me")).bearer_auth(&session.session_jwt).send().await?.status(), 200);
    let out = post_cookies(&http, format!("{base}/logout"), &cookies(&session)).await;
    assert_eq!(out.status(), 204);
    assert_eq!(set_cookies(out.headers()).len(), 2, "both cookies cleared");
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 0, "no issuer to ask");
    for jwt in [&session.session_jwt, &second_jwt] {
        assert_eq!(http.get(format!("{base}/me")).bearer_auth(jwt).send().await?.status(), 401);
    }
    // Another session of the same user is not logged out.
    assert_eq!(http.get(format!("{base}/me")).bearer_auth(&other.session_jwt).send().await?.status(), 200);
    Ok(())
}
