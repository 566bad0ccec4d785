//! The Stytch-shaped email OTP endpoints of the dev issuer:
//! `POST /v1/otps/email/login_or_create` and `POST /v1/otps/authenticate`.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tower_stepup_dev_issuer::{DevIssuer, Endpoint};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn call(issuer: &DevIssuer, path: &str, body: Value) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", issuer.base_url()))
        .basic_auth(issuer.project_id(), Some(issuer.secret()))
        .json(&body)
        .send()
        .await?;
    Ok((response.status(), response.json().await?))
}

async fn send(issuer: &DevIssuer, email: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let (status, body) = call(issuer, "/v1/otps/email/login_or_create", json!({ "email": email })).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

#[tokio::test]
async fn login_or_create_sends_a_code_to_a_stable_user() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let first = send(&issuer, "Ada@Example.com").await?;
    assert_eq!(first["user_created"], true);
    assert!(first["user_id"].as_str().unwrap().starts_with("user-test-"));
    assert!(first["email_id"].as_str().unwrap().starts_with("email-test-"));
    let code = issuer.sent_email_otp("ada@example.com").expect("a code was sent");
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");

    let again = send(&issuer, "ada@example.com").await?;
    assert_eq!(again["user_created"], false);
    assert_eq!((&again["user_id"], &again["email_id"]), (&first["user_id"], &first["email_id"]));
    assert_eq!(issuer.request_count(Endpoint::OtpsEmailLoginOrCreate), 2);
    assert!(issuer.sent_email_otp("eve@example.com").is_none());
    Ok(())
}

#[tokio::test]
async fn login_or_create_refuses_what_stytch_refuses() -> TestResult {
    let issuer = DevIssuer::start().await?;
    for body in [
        json!({}),
        json!({ "email": "no-at-sign" }),
        json!({ "email": "a@b@c.com" }),
        json!({ "email": "ada@example.com", "expiration_minutes": 11 }),
        json!({ "email": "ada@example.com", "expiration_minutes": 0 }),
        json!({ "email": "ada@example.com", "unknown": true }),
    ] {
        let (status, answer) = call(&issuer, "/v1/otps/email/login_or_create", body.clone()).await?;
        assert_eq!(status, 400, "{body} → {answer}");
    }
    let anonymous = reqwest::Client::new()
        .post(format!("{}/v1/otps/email/login_or_create", issuer.base_url()))
        .json(&json!({ "email": "ada@example.com" }))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    Ok(())
}

#[tokio::test]
async fn the_code_starts_a_session_once_recording_the_apps_attributes() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let sent = send(&issuer, "ada@example.com").await?;
    let code = issuer.sent_email_otp("ada@example.com").unwrap();
    let body = json!({
        "method_id": sent["email_id"], "code": code, "session_duration_minutes": 60,
        "attributes": { "ip_address": "203.0.113.7", "user_agent": "UA/1" },
    });
    let (status, answer) = call(&issuer, "/v1/otps/authenticate", body.clone()).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user_id"], sent["user_id"]);
    assert_eq!(answer["method_id"], sent["email_id"]);
    assert_eq!(answer["reset_sessions"], false);
    let factors = &answer["session"]["authentication_factors"];
    assert_eq!((&factors[0]["type"], &factors[0]["delivery_method"]), (&json!("otp"), &json!("email")), "{factors}");
    assert_eq!(answer["session"]["attributes"], json!({ "ip_address": "203.0.113.7", "user_agent": "UA/1" }));
    assert!(answer["session_jwt"].as_str().is_some_and(|jwt| jwt.split('.').count() == 3));

    // Used up: the same code again is not found.
    let (status, answer) = call(&issuer, "/v1/otps/authenticate", body).await?;
    assert_eq!((status, answer["error_type"].as_str()), (StatusCode::NOT_FOUND, Some("otp_code_not_found")));
    assert!(issuer.sent_email_otp("ada@example.com").is_none());
    Ok(())
}

#[tokio::test]
async fn wrong_codes_are_not_found_and_five_of_them_burn_the_code() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let sent = send(&issuer, "ada@example.com").await?;
    let code = issuer.sent_email_otp("ada@example.com").unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let body = json!({ "method_id": sent["email_id"], "code": wrong, "session_duration_minutes": 60 });
        let (status, answer) = call(&issuer, "/v1/otps/authenticate", body).await?;
        assert_eq!((status, answer["error_type"].as_str()), (StatusCode::NOT_FOUND, Some("otp_code_not_found")));
    }
    let body = json!({ "method_id": sent["email_id"], "code": code, "session_duration_minutes": 60 });
    let (status, _) = call(&issuer, "/v1/otps/authenticate", body).await?;
    assert_eq!(status, 404, "the right code after five wrong ones");
    // Another address's method id never takes this address's code.
    send(&issuer, "ada@example.com").await?;
    let eve = send(&issuer, "eve@example.com").await?;
    let ada_code = issuer.sent_email_otp("ada@example.com").unwrap();
    let body = json!({ "method_id": eve["email_id"], "code": ada_code, "session_duration_minutes": 60 });
    let eve_code = issuer.sent_email_otp("eve@example.com").unwrap();
    let (status, _) = call(&issuer, "/v1/otps/authenticate", body).await?;
    // (One chance in a million that both addresses drew the same code.)
    assert_eq!(status == 404, ada_code != eve_code);
    Ok(())
}

#[tokio::test]
async fn with_a_session_the_code_adds_the_factor_to_that_users_session_only() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let ada = sign_in(&issuer, "ada@example.com").await?;
    let eve_session = issuer.create_session("user-eve", vec![]);

    let sent = send(&issuer, "ada@example.com").await?;
    let code = issuer.sent_email_otp("ada@example.com").unwrap();
    let body = json!({ "method_id": sent["email_id"], "code": code, "session_token": eve_session.session_token });
    let (status, answer) = call(&issuer, "/v1/otps/authenticate", body).await?;
    assert_eq!((status, answer["error_type"].as_str()), (StatusCode::NOT_FOUND, Some("session_not_found")));

    let sent = send(&issuer, "ada@example.com").await?;
    let code = issuer.sent_email_otp("ada@example.com").unwrap();
    let body = json!({ "method_id": sent["email_id"], "code": code, "session_token": ada["session_token"] });
    let (status, answer) = call(&issuer, "/v1/otps/authenticate", body).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["session"]["session_id"], ada["session"]["session_id"], "the same session, stepped up");
    assert_eq!(answer["session_token"], ada["session_token"]);

    // Without a session and without a duration: the code is checked, no session starts.
    send(&issuer, "ada@example.com").await?;
    let code = issuer.sent_email_otp("ada@example.com").unwrap();
    let (status, answer) =
        call(&issuer, "/v1/otps/authenticate", json!({ "method_id": sent["email_id"], "code": code })).await?;
    assert_eq!(status, 200);
    assert_eq!((&answer["session"], &answer["session_jwt"]), (&Value::Null, &json!("")));
    Ok(())
}

/// Signs `email` in through the endpoints; Stytch's answer.
async fn sign_in(issuer: &DevIssuer, email: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let sent = send(issuer, email).await?;
    let code = issuer.sent_email_otp(email).unwrap();
    let body = json!({ "method_id": sent["email_id"], "code": code, "session_duration_minutes": 60 });
    let (status, answer) = call(issuer, "/v1/otps/authenticate", body).await?;
    assert_eq!(status, 200, "{answer}");
    Ok(answer)
}
