//! [`SignIn`]: the tokens of a sign-in become the session cookies only once they
//! verify, belong together and name a live session; the attacker's tokens are
//! refused with nothing written.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_stepup::{CookieAttributes, Guard, RenewedTokens, SessionLayer, SignIn, SignedIn};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer};

use crate::common::{
    client, info, project, project_with_secret, serve, set_cookies, TestResult, JWT_COOKIE, TOKEN_COOKIE,
};

/// `POST /sign-in {"session_jwt", "session_token"}`: what the app's sign-in route
/// does with the issuer's answer.
async fn finish_sign_in(
    sign_in: SignIn,
    Json(body): Json<Value>,
) -> Result<(SignedIn, Json<Value>), (StatusCode, String)> {
    let mut tokens = RenewedTokens::new();
    if let Some(jwt) = body["session_jwt"].as_str() {
        tokens = tokens.with_session_jwt(jwt);
    }
    if let Some(token) = body["session_token"].as_str() {
        tokens = tokens.with_session_token(token);
    }
    match sign_in.complete(tokens).await {
        Ok(signed_in) => {
            let subject = signed_in.session().subject().to_owned();
            Ok((signed_in, Json(json!({ "sub": subject }))))
        }
        Err(error) => Err((StatusCode::UNAUTHORIZED, format!("{:?}", error.kind()))),
    }
}

async fn app(layer: SessionLayer) -> String {
    serve(
        Router::new()
            .route("/sign-in", post(finish_sign_in))
            .route("/me", get(info).route_layer(Guard::authenticated()))
            .layer(layer),
    )
    .await
}

async fn stytch_app(issuer: &DevIssuer) -> String {
    let layer = SessionLayer::stytch(&project_with_secret(issuer))
        .with_cookie_attributes(CookieAttributes::default().with_domain("example.com"))
        .build()
        .await
        .expect("layer");
    app(layer).await
}

async fn post_sign_in(url: &str, body: Value) -> reqwest::Response {
    client().post(format!("{url}/sign-in")).json(&body).send().await.expect("request")
}

#[tokio::test]
async fn a_verified_sign_in_writes_both_cookies_with_the_layers_attributes() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let url = stytch_app(&issuer).await;
    let login = issuer.create_session("user-ada", vec![DevFactor::email_otp()]);

    let response =
        post_sign_in(&url, json!({ "session_jwt": login.session_jwt, "session_token": login.session_token })).await;
    assert_eq!(response.status(), 200);
    let cookies = set_cookies(response.headers());
    let names: Vec<&str> = cookies.iter().map(cookie::Cookie::name).collect();
    assert_eq!(names, [JWT_COOKIE, TOKEN_COOKIE]);
    for cookie in &cookies {
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.domain(), Some("example.com"));
        assert!(cookie.max_age().is_some_and(|age| age.whole_seconds() > 0));
    }
    assert_eq!(cookies[0].value(), login.session_jwt);
    assert_eq!(cookies[1].value(), login.session_token);
    assert_eq!(response.json::<Value>().await?["sub"], "user-ada");
    Ok(())
}

#[tokio::test]
async fn forged_mismatched_or_revoked_tokens_write_nothing() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let url = stytch_app(&issuer).await;
    let ada = issuer.create_session("user-ada", vec![DevFactor::email_otp()]);
    let eve = issuer.create_session("user-eve", vec![DevFactor::email_otp()]);
    let other_ada = issuer.create_session("user-ada", vec![DevFactor::email_otp()]);
    let mut forged = ada.session_jwt.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 1.., last);
    let foreign = DevIssuer::start().await?.create_session("user-ada", vec![DevFactor::email_otp()]);
    let gone = issuer.create_session("user-gone", vec![DevFactor::email_otp()]);
    assert!(issuer.revoke_session(&gone.session_id));

    let cases = [
        ("a forged signature", json!({ "session_jwt": forged })),
        ("another issuer's JWT", json!({ "session_jwt": foreign.session_jwt })),
        ("garbage", json!({ "session_jwt": "not.a.jwt", "session_token": "garbage" })),
        (
            "another user's token beside the JWT",
            json!({ "session_jwt": ada.session_jwt, "session_token": eve.session_token }),
        ),
        (
            "another session of the same user beside the JWT",
            json!({ "session_jwt": ada.session_jwt, "session_token": other_ada.session_token }),
        ),
        ("a revoked session", json!({ "session_jwt": gone.session_jwt, "session_token": gone.session_token })),
        ("no token at all", json!({})),
    ];
    for (case, body) in cases {
        let response = post_sign_in(&url, body).await;
        assert_eq!(response.status(), 401, "{case}");
        assert!(set_cookies(response.headers()).is_empty(), "{case}: no cookie written");
    }
    Ok(())
}

#[tokio::test]
async fn without_an_authority_only_the_verified_jwt_is_written() -> TestResult {
    let issuer = DevIssuer::start().await?;
    // Local verification only: the session token cannot be checked, so it is not written.
    let url = app(SessionLayer::stytch(&project(&issuer)).build().await?).await;
    let login = issuer.create_session("user-ada", vec![DevFactor::email_otp()]);
    let response =
        post_sign_in(&url, json!({ "session_jwt": login.session_jwt, "session_token": login.session_token })).await;
    assert_eq!(response.status(), 200);
    let names: Vec<String> = set_cookies(response.headers()).iter().map(|c| c.name().to_owned()).collect();
    assert_eq!(names, [JWT_COOKIE]);
    let me = client().get(format!("{url}/me")).bearer_auth(&login.session_jwt).send().await?;
    assert_eq!(me.status(), 200);
    Ok(())
}
