//! Issue 8, items 8, 14 and 15: strict key sets (every duplicated `kid` dropped, RSA
//! size counted in bits), unknown `kid`s refreshed on a budget of fetches (a new key
//! is accepted soon even during a flood of made-up kids), and `503` when the key set
//! cannot be refreshed for a token naming a key we do not hold.

mod common;

use common::serve;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::task::JoinSet;
use tower_stepup::{KeySource, OidcProfile, Session, SessionLayer, StytchProject, TypPolicy};
use tower_stepup_dev_issuer::{DevAlg, DevIssuer, DevIssuerConfig, Endpoint, Failure, DEFAULT_AUDIENCE};

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

/// Whether a layer over a static set holding one RSA key with this modulus uses that
/// key: a token naming it fails on its signature (key used) or as an unknown key
/// (key refused). Public API only: the challenge's `error_description` tells which.
async fn rsa_key_is_used(issuer: &DevIssuer, modulus: &[u8]) -> Result<bool, Box<dyn std::error::Error>> {
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k", "alg": "RS256", "n": URL_SAFE_NO_PAD.encode(modulus), "e": "AQAB"}]});
    let layer = SessionLayer::builder(KeySource::from_json(&jwks.to_string())?)
        .with_issuer(issuer.issuer())
        .with_audience(DEFAULT_AUDIENCE)
        .with_typ(TypPolicy::AccessToken)
        .with_profile(OidcProfile::rfc9068())
        .build()
        .await?;
    let base = serve(Router::new().route("/me", get(info)).layer(layer)).await;
    let token = issuer.access_token().kid("k").mint();
    let response = reqwest::Client::new().get(format!("{base}/me")).bearer_auth(token).send().await?;
    let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if challenge.contains("unknown key") {
        return Ok(false);
    }
    assert!(challenge.contains("signature is invalid"), "unexpected answer: {challenge}");
    Ok(true)
}

/// F10 turned around: the RSA size is counted in bits, not bytes.
#[tokio::test]
async fn rsa_keys_below_2048_bits_are_refused() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let mut n = vec![0xffu8; 256];
    n[0] = 0x01; // 2041 bits in 256 bytes
    assert!(!rsa_key_is_used(&issuer, &n).await?, "a 2041-bit modulus is refused");
    n[0] = 0x7f; // 2047 bits
    assert!(!rsa_key_is_used(&issuer, &n).await?, "a 2047-bit modulus is refused");
    n.insert(0, 0x00);
    assert!(!rsa_key_is_used(&issuer, &n).await?, "a leading zero byte does not add to the size");
    n[1] = 0x80; // 2048 bits after a zero byte
    assert!(rsa_key_is_used(&issuer, &n).await?, "a 2048-bit modulus with a leading zero byte is accepted");
    assert!(rsa_key_is_used(&issuer, &n[1..]).await?, "a 2048-bit modulus is accepted");
    Ok(())
}

// ------------------------------------------------------------------ items 14 and 15

/// The documented defaults of the unknown-kid budget: a burst of 5, one more every 5 s.
const BURST: usize = 5;
const EVERY: Duration = Duration::from_secs(5);

/// The most fetches the budget allows over `elapsed`, counted from a full bucket.
fn budget(elapsed: Duration) -> usize {
    BURST + usize::try_from(elapsed.as_millis() / EVERY.as_millis()).expect("a short test")
}

async fn quick_issuer() -> DevIssuer {
    DevIssuer::start_with(DevIssuerConfig::default().with_algs(&[DevAlg::EdDSA])).await.expect("dev issuer starts")
}

/// A Stytch layer with the default key set configuration, served on loopback.
async fn stytch_app(issuer: &DevIssuer) -> Result<String, Box<dyn std::error::Error>> {
    let project = StytchProject::consumer(issuer.project_id())?.with_base_url(issuer.base_url());
    let layer = SessionLayer::stytch(&project).build().await?;
    Ok(serve(Router::new().route("/me", get(info)).layer(layer)).await)
}

fn jwks(issuer: &DevIssuer) -> usize {
    issuer.request_count(Endpoint::Jwks)
}

/// Status and `Retry-After` (seconds) of `GET /me` with `token`.
async fn me(http: &reqwest::Client, base: &str, token: &str) -> (u16, Option<u64>) {
    let response = http.get(format!("{base}/me")).bearer_auth(token).send().await.expect("request");
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii").parse::<u64>().expect("delay-seconds"));
    (response.status().as_u16(), retry_after)
}

/// A token signed by the issuer's current key but naming a key that does not exist.
fn made_up(issuer: &DevIssuer, n: usize) -> String {
    static SALT: AtomicUsize = AtomicUsize::new(0);
    let salt = SALT.fetch_add(1, Ordering::Relaxed);
    issuer.stytch_session().kid(format!("made-up-{n}-{salt}")).mint()
}

/// Issue 8 item 14: after a fetch that found nothing new, the next unknown kid is
/// looked for again (budget permitting), so a key published just after a made-up-kid
/// fetch is accepted at once, not after a 30 s window.
#[tokio::test]
async fn a_key_published_right_after_a_made_up_kid_fetch_is_accepted_at_once() -> TestResult {
    let issuer = quick_issuer().await;
    let base = stytch_app(&issuer).await?;
    let http = reqwest::Client::new();
    let before = jwks(&issuer);
    assert_eq!(me(&http, &base, &made_up(&issuer, 0)).await.0, 401, "a made-up kid, looked for and not found");
    assert_eq!(jwks(&issuer), before + 1);

    // The issuer publishes a new key and signs with it right away.
    issuer.rotate(DevAlg::EdDSA);
    let new = issuer.stytch_session().subject("new-key").mint();
    assert_eq!(me(&http, &base, &new).await, (200, None), "the new key is fetched and accepted");
    assert_eq!(jwks(&issuer), before + 2);

    Ok(())
}

/// Issue 8 item 14, second half: a token that arrives slightly before its key is
/// published is refused after a successful look, and accepted as soon as the key is
/// out (not after a cooldown).
#[tokio::test]
async fn a_token_that_arrives_before_its_key_is_accepted_once_the_key_is_out() -> TestResult {
    let issuer = quick_issuer().await;
    let kid = issuer.add_keys(DevAlg::EdDSA, 1).remove(0);
    let served: Value = reqwest::get(issuer.jwks_url()).await?.json().await?;
    let all = served["keys"].as_array().ok_or("keys")?.clone();
    let without: Vec<Value> = all.iter().filter(|k| k["kid"] != json!(kid)).cloned().collect();
    assert_eq!(without.len() + 1, all.len());
    // The issuer's key set as the layer sees it: the new key not published yet.
    let document = Arc::new(std::sync::Mutex::new(json!({ "keys": without })));
    let fetches = Arc::new(AtomicUsize::new(0));
    let keys = {
        let (document, fetches) = (document.clone(), fetches.clone());
        serve(Router::new().route(
            "/jwks",
            get(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = document.lock().expect("document").clone();
                async move { Json(body) }
            }),
        ))
        .await
    };
    let layer = SessionLayer::builder(KeySource::url(format!("{keys}/jwks")))
        .with_issuer(issuer.stytch_issuer())
        .with_audience(issuer.project_id())
        .build()
        .await?;
    let base = serve(Router::new().route("/me", get(info)).layer(layer)).await;
    let http = reqwest::Client::new();
    let early = issuer.stytch_session().subject("early").signed_by(&kid).mint();
    assert_eq!(me(&http, &base, &early).await.0, 401, "looked for, not published yet");
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "start + one look");

    *document.lock().expect("document") = json!({ "keys": all });
    assert_eq!(me(&http, &base, &early).await, (200, None), "published: accepted at once");
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
    Ok(())
}

/// Sends one request per token, all at once; returns the statuses.
async fn flood(http: &reqwest::Client, base: &str, tokens: Vec<String>) -> Vec<u16> {
    let mut set = JoinSet::new();
    for token in tokens {
        let (http, base) = (http.clone(), base.to_owned());
        set.spawn(async move { me(&http, &base, &token).await.0 });
    }
    let mut out = Vec::new();
    while let Some(status) = set.join_next().await {
        out.push(status.expect("request task"));
    }
    out
}

/// Issue 8 item 14, the drill: a flood of made-up kids costs the issuer no more than
/// the documented budget, known keys are unaffected, and a key published while the
/// flood goes on is accepted after one `Retry-After`.
#[tokio::test]
async fn unknown_kid_flood_stays_within_the_budget_and_a_new_key_is_accepted_after_retry_after() -> TestResult {
    const N: usize = 200;
    let issuer = quick_issuer().await;
    let base = stytch_app(&issuer).await?;
    let http = reqwest::Client::new();
    let known = issuer.stytch_session().subject("known").mint();
    assert_eq!(me(&http, &base, &known).await.0, 200);
    issuer.reset_counts();
    let start = Instant::now();

    // N concurrent made-up kids: each is looked for (401) or the budget is spent (503).
    let statuses = flood(&http, &base, (0..N).map(|i| made_up(&issuer, i)).collect()).await;
    assert!(statuses.iter().all(|s| *s == 401 || *s == 503), "{statuses:?}");
    assert!(jwks(&issuer) >= 1);
    assert!(jwks(&issuer) <= budget(start.elapsed()), "{} fetches for {N} made-up kids", jwks(&issuer));
    // Spend what is left of the budget, one made-up kid at a time.
    let mut exhausted = false;
    for i in 0..=BURST {
        let (status, retry_after) = me(&http, &base, &made_up(&issuer, N + i)).await;
        if status == 503 {
            assert!(retry_after.is_some_and(|s| (1..=EVERY.as_secs()).contains(&s)), "{retry_after:?}");
            exhausted = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(exhausted, "the budget runs out");
    assert!(jwks(&issuer) <= budget(start.elapsed()));
    assert_eq!(me(&http, &base, &issuer.stytch_session().mint()).await.0, 200, "known keys are unaffected");

    // The attacker keeps going while the issuer publishes a new key.
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        let tokens: Vec<String> = (0..2000).map(|i| made_up(&issuer, 10_000 + i)).collect();
        tokio::spawn(async move {
            let mut requests = 0;
            for token in tokens {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let status = me(&http, &base, &token).await.0;
                assert!(status == 401 || status == 503, "{status}");
                requests += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            requests
        })
    };
    issuer.rotate(DevAlg::EdDSA);
    let new = issuer.stytch_session().subject("new-key").mint();
    let (status, retry_after) = me(&http, &base, &new).await;
    let accepted = if status == 503 {
        // The budget was spent before we could look: the client is told when to retry.
        let wait = retry_after.ok_or("a 503 without Retry-After")?;
        assert!((1..=EVERY.as_secs()).contains(&wait), "Retry-After {wait}");
        tokio::time::sleep(Duration::from_secs(wait)).await;
        me(&http, &base, &new).await.0
    } else {
        status
    };
    stop.store(true, Ordering::SeqCst);
    let paced = attacker.await?;
    assert_eq!(accepted, 200, "the new key is accepted after one Retry-After, flood or not");
    let fetches = jwks(&issuer);
    let allowed = budget(start.elapsed());
    println!(
        "flood: {N} concurrent + {paced} paced made-up kids over {:?}: {fetches} fetches (budget {allowed})",
        start.elapsed()
    );
    assert!(fetches <= allowed, "{fetches} fetches, budget {allowed}");
    Ok(())
}

/// Issue 8 item 15: while the key set cannot be refreshed, a token naming a key we
/// do not hold is answered `503` with `Retry-After` (we cannot tell whether it is
/// good); tokens of known keys keep working; the issuer is not hammered.
#[tokio::test]
async fn issuer_outage_unknown_kid_is_503_with_retry_after_and_known_keys_work() -> TestResult {
    let issuer = quick_issuer().await;
    let base = stytch_app(&issuer).await?;
    let http = reqwest::Client::new();
    assert_eq!(me(&http, &base, &issuer.stytch_session().mint()).await.0, 200);

    issuer.set_endpoint_failure(Endpoint::Jwks, Failure::Unavailable);
    issuer.reset_counts();
    let start = Instant::now();
    // A key rotated in during the outage: its tokens cannot be checked yet.
    let old_kid = issuer.current_kid(DevAlg::EdDSA);
    issuer.rotate(DevAlg::EdDSA);
    let new = issuer.stytch_session().subject("new").mint();
    for i in 0..20 {
        let token = if i % 2 == 0 { new.clone() } else { made_up(&issuer, i) };
        let (status, retry_after) = me(&http, &base, &token).await;
        assert_eq!(status, 503, "request {i}: unknown key while the key set cannot be refreshed");
        assert!(retry_after.is_some_and(|s| (1..=EVERY.as_secs()).contains(&s)), "request {i}: {retry_after:?}");
        let known = issuer.stytch_session().subject("known").signed_by(&old_kid).mint();
        assert_eq!(me(&http, &base, &known).await.0, 200, "known keys keep working");
    }
    assert!(jwks(&issuer) >= 1, "the refresh was tried");
    assert!(jwks(&issuer) <= budget(start.elapsed()), "{} fetches while down", jwks(&issuer));

    // The issuer is back: once the budget allows a look, the new key is accepted.
    issuer.set_failure(Failure::None);
    let (status, retry_after) = me(&http, &base, &new).await;
    let status = if status == 503 {
        tokio::time::sleep(Duration::from_secs(retry_after.ok_or("Retry-After")?)).await;
        me(&http, &base, &new).await.0
    } else {
        status
    };
    assert_eq!(status, 200, "recovered");
    Ok(())
}
