//! The one-pass claims parser (issue 13): payloads an attacker writes byte by byte,
//! signed with a key the layer trusts, so that only the parser stands between them
//! and a session. Built-in Stytch profile (the fast path) and a custom profile (the
//! generic path) must agree on what passes.

use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{json, Value};
use tower_stepup::{
    AuthError, AuthErrorKind, ClaimProfile, FactorKind, Guard, KeySource, Session, SessionLayer, StytchProfile,
    VerifiedClaims,
};

use crate::common::{status_kind_body, TestResult};

/// The RFC 8410 example Ed25519 key (§10.3), as in `issuers.rs`: it signs payloads
/// written as bytes (duplicate names, invalid UTF-8), which no JSON value can hold.
const ED25519_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC";
const ED25519_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"rfc8410",
    "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;
const ISSUER: &str = "https://issuer.example";

/// A compact JWS of exactly these payload bytes.
fn sign(payload: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"alg":"EdDSA","kid":"rfc8410","typ":"JWT"}"#);
    let signed = format!("{header}.{}", b64(payload));
    let der = base64::engine::general_purpose::STANDARD.decode(ED25519_PKCS8).expect("base64");
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).expect("sign");
    format!("{signed}.{signature}")
}

/// Roles from `groups`: a profile of the generic path (a `serde_json::Map`).
struct Groups;

impl ClaimProfile for Groups {
    fn session(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
        let groups = claims.take_strings("groups")?;
        let other = serde_json::Value::Object(std::mem::take(&mut claims.other));
        Ok(claims.session_builder().roles(groups).claims(other).build())
    }
}

async fn app(profile: impl ClaimProfile) -> Router {
    async fn me(session: Session) -> Json<Value> {
        Json(json!({
            "sub": session.subject(),
            "sid": session.session_id(),
            "aud": session.audience(),
            "roles": session.roles(),
            "factors": session.factors().len(),
            "totp": session.factor_authenticated_at(&FactorKind::TOTP).is_some(),
            "claims": session.raw_claims(),
        }))
    }
    let layer = SessionLayer::builder(KeySource::from_json(ED25519_JWKS).expect("jwks"))
        .with_issuer(ISSUER)
        .with_audience("api")
        .with_profile(profile)
        .with_session_cache_bytes(0)
        .build()
        .await
        .expect("layer");
    Router::new().route("/me", get(me).route_layer(Guard::authenticated())).layer(layer)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A Stytch payload: the registered claims, then `session` as the session claim's
/// members, then `extra` verbatim (each starting with a comma).
fn stytch_payload(registered: &str, session: &str, extra: &str) -> String {
    format!(r#"{{{registered},"https://stytch.com/session":{{{session}}}{extra}}}"#)
}

/// `n` custom claims with distinct names, each after a comma.
fn distinct_names(n: usize) -> String {
    use std::fmt::Write as _;
    let mut names = String::new();
    for i in 0..n {
        let _ = write!(names, ",\"c{i}\":0");
    }
    names
}

fn registered() -> String {
    let now = now();
    format!(r#""iss":"{ISSUER}","sub":"user-1","aud":"api","iat":{now},"nbf":{now},"exp":{}"#, now + 300)
}

const SESSION: &str = r#""id":"session-1","started_at":"2026-01-01T10:00:00Z","authentication_factors":[{"type":"totp","delivery_method":"authenticator_app","last_authenticated_at":"2026-01-01T10:00:00Z"}],"roles":["editor"]"#;

/// The control: the payload shape every case below breaks passes, on both paths,
/// with its custom claims kept (escaped names unescaped).
#[tokio::test]
async fn a_well_formed_payload_passes_on_both_paths() -> TestResult {
    let stytch = app(StytchProfile::new()).await;
    let token =
        sign(stytch_payload(&registered(), SESSION, r#","plan":"pro","n\u0061me":{"k":[1,2.5,null]}"#).as_bytes());
    let (status, kind, body) = status_kind_body(&stytch, &token).await;
    assert_eq!((status, kind), (StatusCode::OK, None), "{body}");
    assert_eq!(body["sid"], "session-1");
    assert_eq!(body["roles"], json!(["editor"]));
    assert_eq!((body["factors"].as_u64(), body["totp"].as_bool()), (Some(1), Some(true)));
    assert_eq!(body["claims"], json!({"plan": "pro", "name": {"k": [1, 2.5, null]}}));

    let groups = app(Groups).await;
    let token = sign(format!(r#"{{{},"groups":["a","b"],"plan":"pro"}}"#, registered()).as_bytes());
    let (status, kind, body) = status_kind_body(&groups, &token).await;
    assert_eq!((status, kind), (StatusCode::OK, None), "{body}");
    assert_eq!(body["roles"], json!(["a", "b"]));
    assert_eq!(body["claims"], json!({"plan": "pro"}));
    // `aud` as an array, `exp` with a fraction (dropped).
    let now = now();
    let token = sign(
        format!(r#"{{"iss":"{ISSUER}","sub":"u","aud":["other","api"],"exp":{}.75,"https://stytch.com/session":{{{SESSION}}}}}"#, now + 300)
            .as_bytes(),
    );
    assert_eq!(status_kind_body(&stytch, &token).await.0, StatusCode::OK);
    // Control: a payload larger than the decoder's stack buffer passes too.
    let padded = stytch_payload(&registered(), SESSION, &format!(r#","pad":"{}""#, "x".repeat(4_000)));
    let (status, _, body) = status_kind_body(&stytch, &sign(padded.as_bytes())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["claims"]["pad"].as_str().map(str::len), Some(4_000));
    Ok(())
}

/// A name sent twice at the top level is two claims that disagree: refused on both
/// paths, also when spelled with an escape, also for the session claim itself.
#[tokio::test]
async fn duplicate_top_level_names_are_malformed() -> TestResult {
    let stytch = app(StytchProfile::new()).await;
    let groups = app(Groups).await;
    let r = registered();
    let cases = [
        stytch_payload(&r, SESSION, r#","plan":"pro","plan":"free""#),
        stytch_payload(&r, SESSION, &format!(r#","https://stytch.com/session":{{{SESSION}}}"#)),
        stytch_payload(&r, SESSION, r#","sub":"user-2""#),
        stytch_payload(&r, SESSION, r#","su\u0062":"user-2""#),
        stytch_payload(&r, SESSION, r#","aud":"api""#),
        stytch_payload(&r, SESSION, &format!(r#","exp":{}"#, now() + 9_000)),
        // Many distinct names, then one twice (the sorted check).
        stytch_payload(&r, SESSION, &format!("{},\"c7\":0", distinct_names(40))),
    ];
    for payload in &cases {
        let token = sign(payload.as_bytes());
        assert_eq!(status_kind_body(&stytch, &token).await.1, Some(AuthErrorKind::Malformed), "{payload}");
        assert_eq!(status_kind_body(&groups, &token).await.1, Some(AuthErrorKind::Malformed), "{payload}");
    }
    // Control: 40 distinct names pass.
    let many = stytch_payload(&r, SESSION, &distinct_names(40));
    assert_eq!(status_kind_body(&stytch, &sign(many.as_bytes())).await.0, StatusCode::OK);
    Ok(())
}

/// Inside the Stytch session claim, a member sent twice (two session ids, two role
/// lists) is refused rather than the last one winning.
#[tokio::test]
async fn duplicate_members_of_the_session_claim_are_refused() -> TestResult {
    let stytch = app(StytchProfile::new()).await;
    let r = registered();
    for session in [
        format!(r#"{SESSION},"id":"session-2""#),
        format!(r#"{SESSION},"roles":["admin"]"#),
        format!(r#"{SESSION},"session_id":"session-2""#),
        format!(r#"{SESSION},"started_at":"2026-01-01T09:00:00Z""#),
    ] {
        let token = sign(stytch_payload(&r, &session, "").as_bytes());
        let (status, kind, _) = status_kind_body(&stytch, &token).await;
        assert_eq!((status, kind), (StatusCode::UNAUTHORIZED, Some(AuthErrorKind::InvalidClaim)), "{session}");
    }
    Ok(())
}

/// Wrong JSON types are the claim's `InvalidClaim` (as before the one-pass parser),
/// never a session; registered claims on both paths alike.
#[tokio::test]
async fn wrong_types_are_invalid_claims() -> TestResult {
    let stytch = app(StytchProfile::new()).await;
    let groups = app(Groups).await;
    let now = now();
    let with = |name: &str, value: &str| {
        let mut claims = vec![
            ("iss", format!("\"{ISSUER}\"")),
            ("sub", "\"user-1\"".to_owned()),
            ("aud", "\"api\"".to_owned()),
            ("iat", now.to_string()),
            ("exp", (now + 300).to_string()),
        ];
        claims.retain(|(n, _)| *n != name);
        claims.push((name, value.to_owned()));
        let registered = claims.iter().map(|(n, v)| format!("\"{n}\":{v}")).collect::<Vec<_>>().join(",");
        sign(stytch_payload(&registered, SESSION, "").as_bytes())
    };
    let cases: &[(&str, &str, AuthErrorKind)] = &[
        ("exp", r#""1999999999""#, AuthErrorKind::InvalidClaim),
        ("exp", "null", AuthErrorKind::InvalidClaim),
        ("exp", "-1", AuthErrorKind::InvalidClaim),
        ("exp", "true", AuthErrorKind::InvalidClaim),
        ("exp", "[1999999999]", AuthErrorKind::InvalidClaim),
        // Past year 9999, and past `u64`.
        ("exp", "253402300800", AuthErrorKind::InvalidClaim),
        ("exp", "99999999999999999999999999", AuthErrorKind::InvalidClaim),
        ("exp", "1e300", AuthErrorKind::InvalidClaim),
        ("iat", r#"{"t":1}"#, AuthErrorKind::InvalidClaim),
        ("nbf", r#""0""#, AuthErrorKind::InvalidClaim),
        ("iss", "5", AuthErrorKind::InvalidClaim),
        ("iss", r#""""#, AuthErrorKind::InvalidClaim),
        ("sub", "[]", AuthErrorKind::InvalidClaim),
        ("sub", "null", AuthErrorKind::InvalidClaim),
        ("aud", "5", AuthErrorKind::InvalidClaim),
        ("aud", r#"["api",5]"#, AuthErrorKind::InvalidClaim),
        ("aud", r#"{"api":true}"#, AuthErrorKind::InvalidClaim),
        ("aud", "[]", AuthErrorKind::MissingClaim),
        ("jti", "7", AuthErrorKind::InvalidClaim),
    ];
    for (name, value, expected) in cases {
        let token = with(name, value);
        assert_eq!(status_kind_body(&stytch, &token).await.1, Some(*expected), "{name}: {value}");
        assert_eq!(status_kind_body(&groups, &token).await.1, Some(*expected), "{name}: {value}");
    }
    // Control: a fractional `exp` in range passes.
    assert_eq!(status_kind_body(&stytch, &with("exp", &format!("{}.5", now + 300))).await.0, StatusCode::OK);

    // The session claim's own members.
    let r = registered();
    for session in [
        r#""id":5"#.to_owned(),
        format!(r#"{SESSION},"user_id":7"#),
        r#""id":"s","roles":"admin""#.to_owned(),
        r#""id":"s","roles":["admin",1]"#.to_owned(),
        r#""id":"s","authentication_factors":{"type":"totp"}"#.to_owned(),
        r#""id":"s","authentication_factors":[{"type":"totp","last_authenticated_at":5}]"#.to_owned(),
        r#""id":"s","authentication_factors":[{"type":7}]"#.to_owned(),
        // Not objects, and members sent twice inside a factor object.
        r#""id":"s","authentication_factors":[5]"#.to_owned(),
        r#""id":"s","authentication_factors":["totp"]"#.to_owned(),
        r#""id":"s","authentication_factors":[[{"type":"totp"}]]"#.to_owned(),
        r#""id":"s","authentication_factors":[null]"#.to_owned(),
        r#""id":"s","authentication_factors":[{"type":"totp","type":"otp"}]"#.to_owned(),
        r#""id":"s","authentication_factors":[{"type":"otp","delivery_method":"sms","delivery_method":"email"}]"#.to_owned(),
        r#""id":"s","authentication_factors":[{"type":"otp","phone_number_factor":{},"phone_number_factor":{"phone_id":"p"}}]"#.to_owned(),
        r#""id":"s","started_at":"yesterday""#.to_owned(),
    ] {
        let token = sign(stytch_payload(&r, &session, "").as_bytes());
        assert_eq!(status_kind_body(&stytch, &token).await.1, Some(AuthErrorKind::InvalidClaim), "{session}");
    }
    for claim in [r#""https://stytch.com/session":"session-1""#, r#""https://stytch.com/session":null"#] {
        let token = sign(format!("{{{r},{claim}}}").as_bytes());
        assert_eq!(status_kind_body(&stytch, &token).await.1, Some(AuthErrorKind::InvalidClaim), "{claim}");
    }
    let token = sign(format!("{{{r}}}").as_bytes());
    assert_eq!(status_kind_body(&stytch, &token).await.1, Some(AuthErrorKind::MissingClaim));
    let token = sign(stytch_payload(&r, SESSION, r#","https://stytch.com/organization":{"slug":"x"}"#).as_bytes());
    assert_eq!(status_kind_body(&stytch, &token).await.1, Some(AuthErrorKind::InvalidClaim));
    Ok(())
}

/// Bytes that are not a JSON object with unique names are `Malformed`, whatever
/// the profile: invalid UTF-8, trailing bytes, other top-level values, nesting
/// deeper than the parser goes (without a stack overflow).
#[tokio::test]
async fn garbage_payloads_are_malformed() -> TestResult {
    let stytch = app(StytchProfile::new()).await;
    let groups = app(Groups).await;
    let good = stytch_payload(&registered(), SESSION, r#","plan":"pro""#);
    let mut invalid_utf8 = good.clone().into_bytes();
    let at = good.find("pro").unwrap();
    invalid_utf8[at] = 0xff;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8 in a value", invalid_utf8),
        ("trailing bytes", format!("{good} x").into_bytes()),
        ("two objects", format!("{good}{good}").into_bytes()),
        ("an array", format!("[{good}]").into_bytes()),
        ("a string", br#""iss""#.to_vec()),
        ("whitespace only", b" ".to_vec()),
        ("truncated", good.as_bytes()[..good.len() - 1].to_vec()),
        ("lone surrogate in a name", stytch_payload(&registered(), SESSION, r#","\ud800":1"#).into_bytes()),
    ];
    // Nesting: past serde_json's recursion limit (128), and as far as the default
    // token size allows.
    for depth in [200, 2_500] {
        let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        cases.push((
            "a deeply nested custom claim",
            stytch_payload(&registered(), SESSION, &format!(r#","deep":{deep}"#)).into_bytes(),
        ));
    }
    for (what, payload) in &cases {
        let token = sign(payload);
        assert_eq!(status_kind_body(&stytch, &token).await.1, Some(AuthErrorKind::Malformed), "{what}");
        assert_eq!(status_kind_body(&groups, &token).await.1, Some(AuthErrorKind::Malformed), "{what}");
    }
    // Inside the session claim, too deep a member is that claim's error.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let token = sign(stytch_payload(&registered(), &format!(r#"{SESSION},"attributes":{deep}"#), "").as_bytes());
    assert!(status_kind_body(&stytch, &token).await.1.is_some(), "too deep is never a session");
    // Control: a nesting serde_json accepts passes.
    let shallow = format!("{}{}", "[".repeat(20), "]".repeat(20));
    let token = sign(stytch_payload(&registered(), SESSION, &format!(r#","deep":{shallow}"#)).as_bytes());
    assert_eq!(status_kind_body(&stytch, &token).await.0, StatusCode::OK);
    Ok(())
}
