//! Integration tests of the dev issuer over real HTTP.

use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tower_stepup_dev_issuer::{DevAlg, DevFactor, DevIssuer, DevIssuerConfig, Endpoint, Failure, OpaqueTokenSpec};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// jsonwebtoken's crypto backend for these checks (aws-lc-rs, as the dev issuer signs with).
fn init_crypto() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// The `jsonwebtoken` name of a dev issuer algorithm.
fn algorithm(alg: DevAlg) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().expect("every DevAlg is a JOSE algorithm jsonwebtoken knows")
}

async fn start_all_algs() -> std::io::Result<DevIssuer> {
    DevIssuer::start_with(DevIssuerConfig::default().with_algs(&DevAlg::ALL)).await
}

async fn fetch_jwks(url: &str) -> Result<JwkSet, Box<dyn std::error::Error>> {
    Ok(reqwest::get(url).await?.error_for_status()?.json().await?)
}

fn jwk_for<'a>(set: &'a JwkSet, token: &str) -> Result<&'a Jwk, Box<dyn std::error::Error>> {
    let kid = decode_header(token)?.kid.ok_or("no kid")?;
    Ok(set.find(&kid).ok_or("kid not in JWKS")?)
}

fn verify(set: &JwkSet, token: &str, alg: DevAlg, aud: &str, iss: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let key = DecodingKey::from_jwk(jwk_for(set, token)?)?;
    let mut validation = Validation::new(algorithm(alg));
    validation.set_audience(&[aud]);
    validation.set_issuer(&[iss]);
    Ok(decode::<Value>(token, &key, &validation)?.claims)
}

/// Claims of a JWT, unverified (for inspecting what the issuer returned).
fn peek(token: &str) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token)?)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn authenticate(
    issuer: &DevIssuer,
    path: &str,
    body: Value,
) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let response = client()
        .post(format!("{}{path}", issuer.base_url()))
        .basic_auth(issuer.project_id(), Some(issuer.secret()))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

async fn introspect(issuer: &DevIssuer, token: &str) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let response = client()
        .post(issuer.introspection_url())
        .basic_auth(issuer.client_id(), Some(issuer.client_secret()))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

#[tokio::test]
async fn jwks_verifies_stytch_and_access_tokens_for_every_alg() -> TestResult {
    init_crypto();
    let issuer = start_all_algs().await?;
    let set = fetch_jwks(&issuer.jwks_url()).await?;
    assert_eq!(set.keys.len(), 5);
    for key in &set.keys {
        let raw = serde_json::to_value(key)?;
        assert_eq!(raw["use"], "sig");
        assert!(raw["kid"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(raw.get("d").is_none(), "private part leaked");
    }

    for alg in DevAlg::ALL {
        let token = issuer
            .stytch_session()
            .alg(alg)
            .factor(DevFactor::totp())
            .factor(DevFactor::email_otp().authenticated_ago(Duration::from_secs(600)))
            .role("admin")
            .custom_claim("tenant", json!("acme"))
            .mint();
        let header = decode_header(&token)?;
        assert_eq!(header.alg, algorithm(alg));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.kid.as_deref(), Some(issuer.current_kid(alg).as_str()));
        let claims = verify(&set, &token, alg, issuer.project_id(), &issuer.stytch_issuer())?;
        assert_eq!(claims["aud"], json!([issuer.project_id()]));
        assert_eq!(claims["tenant"], "acme");
        let exp = claims["exp"].as_i64().ok_or("exp")?;
        let iat = claims["iat"].as_i64().ok_or("iat")?;
        assert_eq!(exp - iat, 300);
        assert_eq!(claims["nbf"], claims["iat"]);
        let session = &claims["https://stytch.com/session"];
        assert!(session["id"].as_str().is_some_and(|id| id.starts_with("session-test-")));
        for field in ["started_at", "last_accessed_at", "expires_at"] {
            let text = session[field].as_str().ok_or(field)?;
            assert!(text.ends_with('Z') && text.len() == 20, "{field}: {text}");
        }
        assert_eq!(session["attributes"]["ip_address"], "127.0.0.1");
        assert_eq!(session["roles"], json!(["stytch_user", "admin"]));
        let factors = session["authentication_factors"].as_array().ok_or("factors")?;
        assert_eq!(factors.len(), 2);
        assert_eq!(factors[0]["type"], "totp");
        assert_eq!(factors[0]["delivery_method"], "authenticator_app");
        assert!(factors[0]["authenticator_app_factor"]["totp_id"].is_string());
        assert_eq!(factors[1]["type"], "otp");
        assert_eq!(factors[1]["delivery_method"], "email");
        assert!(factors[1]["email_factor"]["email_address"].is_string());
        assert_ne!(factors[0]["last_authenticated_at"], factors[1]["last_authenticated_at"]);

        let at = issuer
            .access_token()
            .alg(alg)
            .scope("read write")
            .acr("urn:example:loa:2")
            .amr(&["pwd", "otp"])
            .auth_time(SystemTime::now())
            .sid("sid-1")
            .roles(["admin"])
            .mint();
        let header = decode_header(&at)?;
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let claims = verify(&set, &at, alg, "api://default", &issuer.issuer())?;
        assert_eq!(claims["client_id"], issuer.client_id());
        assert_eq!(claims["scope"], "read write");
        assert_eq!(claims["amr"], json!(["pwd", "otp"]));
        assert_eq!(claims["roles"], json!(["admin"]));
        assert!(claims["jti"].is_string() && claims["auth_time"].is_i64());
        assert!(claims["sub"].is_string());
    }
    Ok(())
}

#[tokio::test]
async fn builder_options_shape_the_token() -> TestResult {
    init_crypto();
    let issuer = DevIssuer::start().await?;
    let old = SystemTime::now() - Duration::from_secs(3600);
    let token = issuer
        .stytch_session()
        .subject("member-test-x")
        .b2b("organization-test-1", "acme")
        .session_id("member-session-test-1")
        .issued_at(old)
        .lifetime(Duration::from_secs(60))
        .without_expires_at()
        .typ(None)
        .kid("some-other-kid")
        .without_factors()
        .mint();
    let header = decode_header(&token)?;
    assert_eq!(header.typ, None);
    assert_eq!(header.kid.as_deref(), Some("some-other-kid"));
    let claims = peek(&token)?;
    assert_eq!(claims["sub"], "member-test-x");
    assert_eq!(claims["https://stytch.com/organization"]["slug"], "acme");
    let session = &claims["https://stytch.com/session"];
    assert_eq!(session["id"], "member-session-test-1");
    assert!(session.get("expires_at").is_none());
    assert_eq!(session["roles"], json!(["stytch_member"]));
    assert_eq!(session["authentication_factors"], json!([]));
    let now = i64::try_from(jsonwebtoken::get_current_timestamp())?;
    assert!(claims["exp"].as_i64() < Some(now));

    // A typ override and an issuer/audience override.
    let token = issuer.access_token().typ(Some("JWT")).audience("other").issuer("https://elsewhere").mint();
    assert_eq!(decode_header(&token)?.typ.as_deref(), Some("JWT"));
    let claims = peek(&token)?;
    assert_eq!(claims["aud"], "other");
    assert_eq!(claims["iss"], "https://elsewhere");
    assert!(claims.get("nbf").is_none());
    Ok(())
}

#[tokio::test]
async fn stytch_paths_serve_the_same_keys() -> TestResult {
    init_crypto();
    let issuer = DevIssuer::start().await?;
    let a = fetch_jwks(&issuer.jwks_url()).await?;
    let b = fetch_jwks(&issuer.stytch_jwks_url()).await?;
    let c = fetch_jwks(&format!("{}/v1/b2b/sessions/jwks/{}", issuer.base_url(), issuer.project_id())).await?;
    assert_eq!(serde_json::to_value(&a)?, serde_json::to_value(&b)?);
    assert_eq!(serde_json::to_value(&a)?, serde_json::to_value(&c)?);
    assert_eq!(a.keys.len(), 3);
    let wrong = reqwest::get(format!("{}/v1/sessions/jwks/project-test-nope", issuer.base_url())).await?;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
    assert_eq!(issuer.request_count(Endpoint::Jwks), 4);
    Ok(())
}

#[tokio::test]
async fn rotation_removal_and_extra_keys_show_in_jwks() -> TestResult {
    init_crypto();
    let issuer = DevIssuer::start().await?;
    let old = issuer.current_kid(DevAlg::RS256);
    let before = issuer.stytch_session().mint();
    let new = issuer.rotate(DevAlg::RS256);
    assert_ne!(old, new);
    assert_eq!(issuer.current_kid(DevAlg::RS256), new);
    let set = fetch_jwks(&issuer.jwks_url()).await?;
    assert!(set.find(&old).is_some() && set.find(&new).is_some());
    // The old token still verifies while its key is served.
    verify(&set, &before, DevAlg::RS256, issuer.project_id(), &issuer.stytch_issuer())?;
    let after = issuer.stytch_session().mint();
    assert_eq!(decode_header(&after)?.kid.as_deref(), Some(new.as_str()));

    assert!(issuer.remove_key(&old));
    assert!(!issuer.remove_key(&old));
    let set = fetch_jwks(&issuer.jwks_url()).await?;
    assert!(set.find(&old).is_none() && set.find(&new).is_some());
    assert!(jwk_for(&set, &before).is_err());
    // Removed keys can still sign (for tests) and still expose their public key.
    let by_old = issuer.stytch_session().signed_by(old.as_str()).mint();
    assert_eq!(decode_header(&by_old)?.kid.as_deref(), Some(old.as_str()));
    assert!(issuer.public_key_der(&old).is_some());
    assert!(issuer.public_key_der("nope").is_none());

    let extra = issuer.add_keys(DevAlg::ES256, 47);
    assert_eq!(extra.len(), 47);
    let set = fetch_jwks(&issuer.stytch_jwks_url()).await?;
    assert_eq!(set.keys.len(), 50);
    // Extra keys never become signers.
    assert!(!extra.contains(&issuer.current_kid(DevAlg::ES256)));

    // A lazily created algorithm gets a key on first use.
    let ps = issuer.access_token().alg(DevAlg::PS256).mint();
    let set = fetch_jwks(&issuer.jwks_url()).await?;
    assert_eq!(set.keys.len(), 51);
    verify(&set, &ps, DevAlg::PS256, "api://default", &issuer.issuer())?;
    Ok(())
}

#[tokio::test]
async fn cache_control_counters_and_discovery() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let response = reqwest::get(issuer.jwks_url()).await?;
    assert!(response.headers().get("cache-control").is_none());
    issuer.set_jwks_cache_control(Some("public, max-age=600"));
    let response = reqwest::get(issuer.stytch_jwks_url()).await?;
    assert_eq!(response.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("public, max-age=600"));
    issuer.set_jwks_cache_control(None);
    let response = reqwest::get(issuer.jwks_url()).await?;
    assert!(response.headers().get("cache-control").is_none());
    assert_eq!(issuer.request_count(Endpoint::Jwks), 3);

    let discovery: Value = reqwest::get(issuer.discovery_url()).await?.json().await?;
    assert_eq!(discovery["issuer"], issuer.issuer());
    assert_eq!(discovery["jwks_uri"], issuer.jwks_url());
    assert_eq!(discovery["introspection_endpoint"], issuer.introspection_url());
    assert_eq!(issuer.request_count(Endpoint::Discovery), 1);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 0);
    assert!(!issuer.base_url().ends_with('/'));

    issuer.reset_counts();
    assert_eq!(issuer.request_count(Endpoint::Jwks), 0);
    assert_eq!(issuer.request_count(Endpoint::Discovery), 0);
    Ok(())
}

#[tokio::test]
async fn failure_modes() -> TestResult {
    let issuer = DevIssuer::start().await?;

    issuer.set_failure(Failure::Status500);
    let response = reqwest::get(issuer.jwks_url()).await?;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = response.json().await?;
    assert_eq!(body["status_code"], 500);
    assert_eq!(body["error_type"], "internal_server_error");
    let (status, _) = authenticate(&issuer, "/v1/sessions/authenticate", json!({})).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    issuer.set_failure(Failure::Garbage);
    let response = reqwest::get(issuer.discovery_url()).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = response.text().await?;
    assert!(serde_json::from_str::<Value>(&text).is_err());

    issuer.set_failure(Failure::Unavailable);
    let response = reqwest::get(issuer.stytch_jwks_url()).await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    issuer.set_failure(Failure::Slow(Duration::from_millis(300)));
    let response = reqwest::get(issuer.jwks_url()).await?;
    assert_eq!(response.status(), StatusCode::OK);
    // Slowness shown by behaviour, not by a clock: a client that waits less times out.
    let timed_out = client().get(issuer.jwks_url()).timeout(Duration::from_millis(50)).send().await;
    assert!(timed_out.is_err_and(|e| e.is_timeout()));

    // Per endpoint: only the JWKS fails.
    issuer.set_failure(Failure::None);
    issuer.set_endpoint_failure(Endpoint::Jwks, Failure::Status500);
    assert_eq!(reqwest::get(issuer.jwks_url()).await?.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reqwest::get(issuer.discovery_url()).await?.status(), StatusCode::OK);

    issuer.set_failure(Failure::None);
    assert_eq!(reqwest::get(issuer.jwks_url()).await?.status(), StatusCode::OK);
    // Failed requests are counted too.
    assert_eq!(issuer.request_count(Endpoint::Jwks), 6);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 1);
    Ok(())
}

#[tokio::test]
async fn stytch_error_failures_answer_stytch_error_bodies() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let login = issuer.create_session("user-test-injected", vec![DevFactor::password()]);
    let body = json!({ "session_token": login.session_token });
    for (status, error_type) in [
        (400, "bad_request"),
        (401, "cname_required_for_http_only_cookies"),
        (403, "use_https"),
        (404, "session_not_found"),
        (408, "request_timeout"),
        (429, "too_many_requests"),
        (500, "internal_server_error"),
    ] {
        issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::StytchError { status, error_type });
        let (got, error) = authenticate(&issuer, "/v1/sessions/authenticate", body.clone()).await?;
        assert_eq!(got.as_u16(), status, "{error}");
        assert_eq!(error["status_code"], status);
        assert_eq!(error["error_type"], error_type);
        assert!(error["request_id"].as_str().is_some_and(|id| id.starts_with("request-id-test-")), "{error}");
        assert!(error["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
        let url = error["error_url"].as_str().unwrap_or_default();
        assert_eq!(url, format!("https://stytch.com/docs/api/errors/{status}#{error_type}"));
    }
    // Only that endpoint: revoke still works (and so the session is gone afterwards).
    let (status, _) = authenticate(&issuer, "/v1/sessions/revoke", json!({ "session_id": login.session_id })).await?;
    assert_eq!(status, StatusCode::OK);
    // Not an error status: answered as a 500, never as a success.
    for status in [200, 302, 42] {
        issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::StytchError { status, error_type: "x" });
        let (got, error) = authenticate(&issuer, "/v1/sessions/authenticate", body.clone()).await?;
        assert_eq!(got, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
        assert_eq!(error["status_code"], 500);
    }
    Ok(())
}

#[tokio::test]
async fn sessions_authenticate_happy_paths() -> TestResult {
    init_crypto();
    let issuer = DevIssuer::start().await?;
    let set = fetch_jwks(&issuer.stytch_jwks_url()).await?;
    let login = issuer.create_session("user-test-alice", vec![DevFactor::password()]);
    assert_eq!(login.user_id, "user-test-alice");
    assert_eq!(login.session_token.len(), 44);
    let claims = verify(&set, &login.session_jwt, DevAlg::RS256, issuer.project_id(), &issuer.stytch_issuer())?;
    assert_eq!(claims["https://stytch.com/session"]["id"], login.session_id.as_str());

    // By token.
    let (status, body) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_token": login.session_token })).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status_code"], 200);
    assert!(body["request_id"].is_string());
    assert_eq!(body["session"]["session_id"], login.session_id.as_str());
    assert_eq!(body["session"]["user_id"], "user-test-alice");
    assert_eq!(body["user"]["user_id"], "user-test-alice");
    assert_eq!(body["session_token"], login.session_token.as_str());
    assert_eq!(body["session"]["authentication_factors"][0]["type"], "password");
    assert_eq!(body["session"]["roles"], json!(["stytch_user"]));
    let fresh = body["session_jwt"].as_str().ok_or("jwt")?;
    verify(&set, fresh, DevAlg::RS256, issuer.project_id(), &issuer.stytch_issuer())?;
    let expires_before = body["session"]["expires_at"].clone();

    // By JWT, extending the session and setting custom claims.
    let (status, body) = authenticate(
        &issuer,
        "/v1/sessions/authenticate",
        json!({
            "session_jwt": login.session_jwt,
            "session_duration_minutes": 600,
            "session_custom_claims": { "plan": "pro" },
        }),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["session"]["expires_at"].as_str() > expires_before.as_str());
    assert_eq!(body["session"]["custom_claims"]["plan"], "pro");
    let fresh = body["session_jwt"].as_str().ok_or("jwt")?;
    assert_eq!(peek(fresh)?["plan"], "pro");

    // An expired but correctly signed JWT of a live session is accepted (Stytch behaviour).
    let expired = issuer
        .stytch_session()
        .subject("user-test-alice")
        .session_id(login.session_id.as_str())
        .issued_at(SystemTime::now() - Duration::from_secs(3600))
        .mint();
    let (status, body) = authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_jwt": expired })).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["session_jwt"].as_str().ok_or("jwt")?;
    verify(&set, fresh, DevAlg::RS256, issuer.project_id(), &issuer.stytch_issuer())?;

    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 3);
    Ok(())
}

#[tokio::test]
async fn step_up_and_b2b_sessions() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let login = issuer.create_session("user-test-alice", vec![DevFactor::password()]);
    // Step-up appends a factor and mints a new JWT; the same kind replaces.
    let stepped = issuer.add_factor(&login.session_token, DevFactor::totp()).ok_or("step-up")?;
    assert_eq!(stepped.session_id, login.session_id);
    let factors = peek(&stepped.session_jwt)?["https://stytch.com/session"]["authentication_factors"].clone();
    assert_eq!(factors.as_array().map(Vec::len), Some(2));
    assert_eq!(factors[1]["type"], "totp");
    let again = issuer.add_factor(&login.session_token, DevFactor::totp()).ok_or("step-up")?;
    let factors = peek(&again.session_jwt)?["https://stytch.com/session"]["authentication_factors"].clone();
    assert_eq!(factors.as_array().map(Vec::len), Some(2));
    assert!(issuer.add_factor("unknown", DevFactor::totp()).is_none());

    // B2B sessions on the B2B path.
    let member =
        issuer.create_b2b_session("member-test-bob", "organization-test-1", "acme", vec![DevFactor::magic_link()]);
    let (status, body) =
        authenticate(&issuer, "/v1/b2b/sessions/authenticate", json!({ "session_jwt": member.session_jwt })).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["member_session"]["member_session_id"], member.session_id.as_str());
    assert_eq!(body["member"]["member_id"], "member-test-bob");
    assert_eq!(body["organization"]["organization_slug"], "acme");
    let fresh = body["session_jwt"].as_str().ok_or("jwt")?;
    assert_eq!(peek(fresh)?["https://stytch.com/organization"]["organization_id"], "organization-test-1");
    // ...and not on the consumer path.
    let (status, _) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_token": member.session_token })).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), 2);
    Ok(())
}

#[tokio::test]
async fn sessions_authenticate_errors() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let url = format!("{}/v1/sessions/authenticate", issuer.base_url());
    let login = issuer.create_session("user-test-carol", vec![DevFactor::password()]);
    let body = json!({ "session_token": login.session_token });

    // Basic auth: missing, wrong secret, wrong project.
    for builder in [
        client().post(&url),
        client().post(&url).basic_auth(issuer.project_id(), Some("wrong")),
        client().post(&url).basic_auth("project-test-other", Some(issuer.secret())),
        client().post(&url).header("authorization", "Bearer x"),
        client().post(&url).header("authorization", "Basic !!!"),
    ] {
        let response = builder.json(&body).send().await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let error: Value = response.json().await?;
        assert_eq!(error["error_type"], "unauthorized_credentials");
        assert_eq!(error["status_code"], 401);
        for field in ["request_id", "error_message", "error_url"] {
            assert!(error[field].is_string(), "{field}");
        }
    }

    // Malformed requests.
    for bad in [
        json!({}),
        json!({ "session_token": login.session_token, "session_jwt": login.session_jwt }),
        json!({ "session_token": 42 }),
        json!({ "session_token": login.session_token, "session_duration_minutes": -1 }),
        json!({ "session_token": login.session_token, "session_duration_minutes": "ten" }),
        json!({ "session_token": login.session_token, "session_custom_claims": { "sub": "x" } }),
        json!([1, 2]),
    ] {
        let (status, error) = authenticate(&issuer, "/v1/sessions/authenticate", bad).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["status_code"], 400);
    }
    let response = client()
        .post(&url)
        .basic_auth(issuer.project_id(), Some(issuer.secret()))
        .body("not json at all")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    Ok(())
}

#[tokio::test]
async fn sessions_authenticate_rejects_bad_jwts_and_dead_sessions() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let login = issuer.create_session("user-test-carol", vec![DevFactor::password()]);
    // Bad JWTs.
    let mut tampered = login.session_jwt.clone();
    tampered.push('A');
    let foreign = issuer.stytch_session().session_id(login.session_id.as_str()).mint();
    for (jwt, expected) in [
        (tampered.as_str(), StatusCode::UNAUTHORIZED),
        ("a.b.c", StatusCode::UNAUTHORIZED),
        ("", StatusCode::UNAUTHORIZED),
        // Valid signature, live session id, but another user: not found.
        (foreign.as_str(), StatusCode::NOT_FOUND),
    ] {
        let (status, error) = authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_jwt": jwt })).await?;
        assert_eq!(status, expected, "{error}");
    }
    // A JWT whose key was removed no longer authenticates.
    let kid = issuer.current_kid(DevAlg::RS256);
    issuer.rotate(DevAlg::RS256);
    issuer.remove_key(&kid);
    let (status, _) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_jwt": login.session_jwt })).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Unknown, revoked and expired sessions.
    let (status, error) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_token": "x".repeat(44) })).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error_type"], "session_not_found");

    let other = issuer.create_session("user-test-dave", vec![DevFactor::password()]);
    assert!(issuer.expire_session(&other.session_id));
    let (status, _) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_token": other.session_token })).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(issuer.add_factor(&other.session_token, DevFactor::totp()).is_none());

    assert!(issuer.revoke_session(&login.session_id));
    assert!(!issuer.revoke_session(&login.session_id));
    let (status, error) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_token": login.session_token })).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error_type"], "session_not_found");
    Ok(())
}

#[tokio::test]
async fn short_session_lifetime_expires() -> TestResult {
    let issuer = DevIssuer::start_with(
        DevIssuerConfig::default()
            .with_session_lifetime(Duration::from_millis(1500))
            .with_secret("secret-test-fixed")
            .with_project_id("project-test-custom"),
    )
    .await?;
    assert_eq!(issuer.secret(), "secret-test-fixed");
    assert_eq!(issuer.stytch_issuer(), "stytch.com/project-test-custom");
    assert!(issuer.stytch_jwks_url().ends_with("/v1/sessions/jwks/project-test-custom"));
    let login = issuer.create_session("user-test-erin", vec![DevFactor::webauthn()]);
    let (status, _) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_token": login.session_token })).await?;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (status, _) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_jwt": login.session_jwt })).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn sessions_revoke() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let path = "/v1/sessions/revoke";
    let a = issuer.create_session("user-test-1", vec![DevFactor::password()]);
    let b = issuer.create_session("user-test-2", vec![DevFactor::password()]);
    let c = issuer.create_session("user-test-3", vec![DevFactor::password()]);

    let (status, body) = authenticate(&issuer, path, json!({ "session_id": a.session_id })).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status_code"], 200);
    assert!(body["request_id"].is_string());
    let (status, _) = authenticate(&issuer, path, json!({ "session_token": b.session_token })).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = authenticate(&issuer, path, json!({ "session_jwt": c.session_jwt })).await?;
    assert_eq!(status, StatusCode::OK);

    for (body, expected) in [
        (json!({ "session_id": a.session_id }), StatusCode::NOT_FOUND),
        (json!({ "session_token": b.session_token }), StatusCode::NOT_FOUND),
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({ "session_id": "x", "session_token": "y" }), StatusCode::BAD_REQUEST),
    ] {
        let (status, _) = authenticate(&issuer, path, body).await?;
        assert_eq!(status, expected);
    }
    let (status, _) =
        authenticate(&issuer, "/v1/sessions/authenticate", json!({ "session_token": c.session_token })).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response =
        client().post(format!("{}{path}", issuer.base_url())).json(&json!({ "session_id": "x" })).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(issuer.request_count(Endpoint::SessionsRevoke), 8);
    Ok(())
}

#[tokio::test]
async fn introspection() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let auth_time = SystemTime::now() - Duration::from_secs(30);
    let active = issuer.issue_opaque_access_token(
        OpaqueTokenSpec::new()
            .subject("user-test-frank")
            .scope("read write")
            .acr("urn:example:loa:2")
            .amr(&["pwd", "hwk"])
            .auth_time(auth_time)
            .audience("api://default"),
    );
    let (status, body) = introspect(&issuer, &active).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], "user-test-frank");
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["client_id"], issuer.client_id());
    assert_eq!(body["acr"], "urn:example:loa:2");
    assert_eq!(body["amr"], json!(["pwd", "hwk"]));
    assert_eq!(body["iss"], issuer.issuer());
    assert_eq!(body["token_type"], "Bearer");
    let exp = body["exp"].as_i64().ok_or("exp")?;
    let iat = body["iat"].as_i64().ok_or("iat")?;
    assert_eq!(exp - iat, 300);
    assert!(body["auth_time"].is_i64());

    let expired = issuer.issue_opaque_access_token(
        OpaqueTokenSpec::default()
            .issued_at(SystemTime::now() - Duration::from_secs(600))
            .lifetime(Duration::from_secs(60)),
    );
    let revoked = issuer.issue_opaque_access_token(OpaqueTokenSpec::default());
    assert!(issuer.revoke_opaque_access_token(&revoked));
    for token in [expired.as_str(), revoked.as_str(), "unknown-token"] {
        let (status, body) = introspect(&issuer, token).await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "active": false }));
    }

    // JWT access tokens from this issuer introspect too; expired ones are inactive.
    let jwt = issuer.access_token().scope("read").mint();
    let (_, body) = introspect(&issuer, &jwt).await?;
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "read");
    let old_jwt = issuer.access_token().issued_at(SystemTime::now() - Duration::from_secs(3600)).mint();
    let (_, body) = introspect(&issuer, &old_jwt).await?;
    assert_eq!(body, json!({ "active": false }));

    // Client authentication.
    let response = client()
        .post(issuer.introspection_url())
        .basic_auth(issuer.client_id(), Some("wrong"))
        .form(&[("token", active.as_str())])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let response = client().post(issuer.introspection_url()).form(&[("token", active.as_str())]).send().await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Missing token / not a form.
    let response = client()
        .post(issuer.introspection_url())
        .basic_auth(issuer.client_id(), Some(issuer.client_secret()))
        .form(&[("token_type_hint", "access_token")])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = client()
        .post(issuer.introspection_url())
        .basic_auth(issuer.client_id(), Some(issuer.client_secret()))
        .json(&json!({ "token": active }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    issuer.set_failure(Failure::Unavailable);
    let response = client()
        .post(issuer.introspection_url())
        .basic_auth(issuer.client_id(), Some(issuer.client_secret()))
        .form(&[("token", active.as_str())])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(issuer.request_count(Endpoint::Introspect), 11);
    Ok(())
}

#[tokio::test]
async fn sign_raw_for_attack_tests() -> TestResult {
    init_crypto();
    let issuer = DevIssuer::start().await?;
    let set = fetch_jwks(&issuer.jwks_url()).await?;
    let kid = issuer.current_kid(DevAlg::RS256);
    let claims = json!({
        "iss": issuer.stytch_issuer(),
        "aud": [issuer.project_id()],
        "sub": "user-test-x",
        "exp": jsonwebtoken::get_current_timestamp() + 300,
    });
    // Extra header members are kept verbatim and the signature is valid.
    let token = issuer.sign_raw(
        json!({ "alg": "RS256", "kid": kid, "typ": "JWT", "jku": "https://evil.example/jwks" }),
        &claims,
        &kid,
    );
    let (header_b64, _) = token.split_once('.').ok_or("jwt")?;
    let header: Value = serde_json::from_slice(&base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        header_b64,
    )?)?;
    assert_eq!(header["jku"], "https://evil.example/jwks");
    verify(&set, &token, DevAlg::RS256, issuer.project_id(), &issuer.stytch_issuer())?;

    // A lying alg: the header says ES256 but the RSA key signs with RS256.
    let liar = issuer.sign_raw(json!({ "alg": "ES256", "kid": kid }), &claims, &kid);
    assert_eq!(decode_header(&liar)?.alg, jsonwebtoken::Algorithm::ES256);
    let (message, signature) = liar.rsplit_once('.').ok_or("jwt")?;
    let jwk = set.find(&kid).ok_or("kid")?;
    assert!(jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        &DecodingKey::from_jwk(jwk)?,
        jsonwebtoken::Algorithm::RS256,
    )?);

    // The public key DER is usable as an (attacker's) HMAC secret.
    let der = issuer.public_key_der(&kid).ok_or("der")?;
    assert!(der.len() > 256);
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&der),
    )?;
    assert_eq!(decode_header(&hs)?.alg, jsonwebtoken::Algorithm::HS256);
    Ok(())
}

#[tokio::test]
async fn dev_endpoints() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let response = client()
        .post(format!("{}/dev/login", issuer.base_url()))
        .json(&json!({ "user_id": "user-test-gina", "factors": ["password", "sms_otp"] }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let session: tower_stepup_dev_issuer::DevSession = response.json().await?;
    assert_eq!(session.user_id, "user-test-gina");
    let factors = peek(&session.session_jwt)?["https://stytch.com/session"]["authentication_factors"].clone();
    assert_eq!(factors[1]["phone_number_factor"]["phone_number"], "+15555550100");

    let response = client()
        .post(format!("{}/dev/step-up", issuer.base_url()))
        .json(&json!({ "session_token": session.session_token, "factor": "webauthn" }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let stepped: tower_stepup_dev_issuer::DevSession = response.json().await?;
    let factors = peek(&stepped.session_jwt)?["https://stytch.com/session"]["authentication_factors"].clone();
    assert_eq!(factors.as_array().map(Vec::len), Some(3));
    assert_eq!(factors[2]["webauthn_factor"]["domain"], "localhost");

    for (path, body, expected) in [
        ("/dev/login", json!({ "factors": ["nope"] }), StatusCode::BAD_REQUEST),
        ("/dev/login", json!({ "factors": "password" }), StatusCode::BAD_REQUEST),
        ("/dev/step-up", json!({ "factor": "totp" }), StatusCode::BAD_REQUEST),
        ("/dev/step-up", json!({ "session_token": "nope", "factor": "totp" }), StatusCode::NOT_FOUND),
    ] {
        let response = client().post(format!("{}{path}", issuer.base_url())).json(&body).send().await?;
        assert_eq!(response.status(), expected, "{path} {body}");
    }
    Ok(())
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_server_stops_on_drop() -> TestResult {
    let issuer = DevIssuer::start_with(DevIssuerConfig::default().with_secret("s3cr3t-value")).await?;
    let session = issuer.create_session("user-test-h", vec![DevFactor::password()]);
    let shown = format!("{session:?} {issuer:?}");
    assert!(!shown.contains(&session.session_token));
    assert!(!shown.contains(&session.session_jwt));
    assert!(!shown.contains("s3cr3t-value"));
    assert!(!shown.contains(issuer.client_secret()));
    let config = format!("{:?}", DevIssuerConfig::default().with_secret("s3cr3t-value"));
    assert!(!config.contains("s3cr3t-value"));
    let builder = format!("{:?}", issuer.stytch_session());
    assert!(builder.contains("StytchJwtBuilder"));

    let url = issuer.jwks_url();
    let clone = issuer.clone();
    drop(issuer);
    // A clone keeps it running.
    assert_eq!(reqwest::get(&url).await?.status(), StatusCode::OK);
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    assert!(fresh.get(&url).send().await.is_err());

    let other = DevIssuer::start().await?;
    let url = other.jwks_url();
    other.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fresh.get(&url).send().await.is_err());
    Ok(())
}

#[tokio::test]
async fn every_listed_route_is_served() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = reqwest::Client::new();
    for (method, path) in tower_stepup_dev_issuer::ROUTES {
        let url = format!("{}{}", issuer.base_url(), path.replace("{project_id}", issuer.project_id()));
        let request = match *method {
            "GET" => http.get(&url),
            "POST" => http.post(&url).header("content-type", "application/json").body("{}"),
            other => return Err(format!("unexpected method {other}").into()),
        };
        let status = request.send().await?.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_binary_serves_and_prints_its_routes() -> TestResult {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tower-stepup-dev-issuer"))
        .args(["--listen", "127.0.0.1:0", "--project-id", "project-test-11111111-2222-3333-4444-000000000000"])
        .args(["--secret", "secret-for-the-binary-test"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await??.ok_or("no output")?;
    let base = first.rsplit(' ').next().ok_or("no address")?.to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await? {
        printed.push(line);
        if printed.len() == 7 + tower_stepup_dev_issuer::ROUTES.len() {
            break;
        }
    }
    assert!(printed.iter().any(|l| l.contains("/v1/sessions/authenticate")), "{printed:?}");
    let jwks: Value =
        reqwest::get(format!("{base}/v1/sessions/jwks/project-test-11111111-2222-3333-4444-000000000000"))
            .await?
            .json()
            .await?;
    assert!(jwks["keys"].as_array().is_some_and(|keys| !keys.is_empty()), "{jwks}");
    // The configured secret authenticates; another does not.
    let body = json!({"session_token": "x".repeat(44)});
    let url = format!("{base}/v1/sessions/authenticate");
    let http = reqwest::Client::new();
    let wrong =
        http.post(&url).basic_auth("project-test-11111111-2222-3333-4444-000000000000", Some("nope")).json(&body);
    assert_eq!(wrong.send().await?.status(), StatusCode::UNAUTHORIZED);
    let right = http
        .post(&url)
        .basic_auth("project-test-11111111-2222-3333-4444-000000000000", Some("secret-for-the-binary-test"))
        .json(&body);
    assert_eq!(right.send().await?.status(), StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn the_binary_refuses_a_non_loopback_address() -> TestResult {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tower-stepup-dev-issuer"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .await?;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
    Ok(())
}
