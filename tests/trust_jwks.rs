//! Issue 8, items 8, 14 and 15: strict key sets (every duplicated `kid` dropped, RSA
//! size counted in bits), unknown `kid`s refreshed on a budget of fetches (a new key
//! is accepted soon even during a flood of made-up kids), and `503` when the key set
//! cannot be refreshed for a token naming a key we do not hold.

mod common;

use common::serve;

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tower_stepup::testing::{DevAlg, DevIssuer, DEFAULT_AUDIENCE};
use tower_stepup::{KeySource, OidcProfile, Session, SessionLayer, TypPolicy};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn info(session: Session) -> Json<Value> {
    Json(json!({ "sub": session.subject() }))
}

// ------------------------------------------------------------------ item 8

/// F9 turned around: a kid listed three times (or more) is as ambiguous as a pair.
#[tokio::test]
async fn a_kid_listed_three_or_more_times_is_never_used() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let kids = issuer.add_keys(DevAlg::ES256, 4);
    let jwks: Value = reqwest::get(issuer.jwks_url()).await?.json().await?;
    let mut keys: Vec<Value> = jwks["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .filter(|k| kids.iter().any(|kid| k["kid"] == json!(kid)))
        .cloned()
        .collect();
    assert_eq!(keys.len(), 4);
    for k in &mut keys {
        k["kid"] = json!("dup");
    }
    // A control key with a kid of its own, to show the layer verifies at all.
    let mut unique = keys[0].clone();
    unique["kid"] = json!("unique");
    let build = |mut keys: Vec<Value>| {
        keys.push(unique.clone());
        let doc = json!({ "keys": keys }).to_string();
        SessionLayer::builder(KeySource::from_json(&doc).expect("static set"))
            .with_issuer(issuer.issuer())
            .with_audience(DEFAULT_AUDIENCE)
            .with_typ(TypPolicy::AccessToken)
            .with_profile(OidcProfile::rfc9068())
            .build()
    };
    let http = reqwest::Client::new();
    let by = |i: usize| issuer.access_token().signed_by(&kids[i]).kid("dup").mint();
    for copies in [2, 3, 4] {
        let base = serve(Router::new().route("/me", get(info)).layer(build(keys[..copies].to_vec()).await?)).await;
        for (i, _) in kids.iter().enumerate().take(copies) {
            let status = http.get(format!("{base}/me")).bearer_auth(by(i)).send().await?.status();
            assert_eq!(status, 401, "kid 'dup' listed {copies} times, token signed by copy {i}");
        }
        let control = issuer.access_token().signed_by(&kids[0]).kid("unique").mint();
        let status = http.get(format!("{base}/me")).bearer_auth(control).send().await?.status();
        assert_eq!(status, 200, "{copies} copies: a kid listed once still works");
    }
    Ok(())
}

fn rsa_set(modulus: &[u8]) -> tower_stepup::__bench::KeyLookup {
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k", "n": URL_SAFE_NO_PAD.encode(modulus), "e": "AQAB"}]});
    tower_stepup::__bench::KeyLookup::parse(&jwks.to_string())
}

/// F10 turned around: the RSA size is counted in bits, not bytes.
#[test]
fn rsa_keys_below_2048_bits_are_refused() {
    let mut n = vec![0xffu8; 256];
    n[0] = 0x01; // 2041 bits in 256 bytes
    assert!(rsa_set(&n).is_empty(), "a 2041-bit modulus is refused");
    n[0] = 0x7f; // 2047 bits
    assert!(rsa_set(&n).is_empty(), "a 2047-bit modulus is refused");
    n.insert(0, 0x00);
    assert!(rsa_set(&n).is_empty(), "a leading zero byte does not add to the size");
    n[1] = 0x80; // 2048 bits after a zero byte
    assert_eq!(rsa_set(&n).len(), 1, "a 2048-bit modulus with a leading zero byte is accepted");
    assert_eq!(rsa_set(&n[1..]).len(), 1, "a 2048-bit modulus is accepted");
}
