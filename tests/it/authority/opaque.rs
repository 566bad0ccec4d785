//! Credentials the layer cannot verify by itself (opaque tokens, session tokens sent
//! to renew an expired Stytch JWT): the issuer-call budget, the layer's issuer and
//! audience rules applied to the issuer's answers, answers that end with the token,
//! and revocations remembered until the session itself would have ended.

use std::time::{Duration, Instant, SystemTime};

use crate::common::{bearer, introspection, project_with_secret, routes, serve, with_cookies, TestResult};
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::json;
use tower_stepup::{IntrospectionAuthority, IssuerBudget, SessionLayer};
use tower_stepup_dev_issuer::{DevAlg, DevFactor, DevIssuer, DevSession, Endpoint, OpaqueTokenSpec, DEFAULT_AUDIENCE};

/// The `error_description` of a `WWW-Authenticate: Bearer` challenge.
fn description(response: &reqwest::Response) -> String {
    response.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Counts one flood of made-up tokens: refused by the issuer (401) or not sent
/// because the budget was spent (503 + Retry-After).
#[derive(Default, Debug)]
struct Flood {
    refused: usize,
    busy: usize,
}

impl Flood {
    fn record(&mut self, response: &reqwest::Response) {
        match response.status().as_u16() {
            401 => self.refused += 1,
            503 => {
                let retry = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                assert!(retry.is_some_and(|secs| secs >= 1), "503 without a usable Retry-After: {retry:?}");
                self.busy += 1;
            }
            other => panic!("a made-up token got {other}"),
        }
    }
}

/// Issue 8 item 3: 150 made-up, well-shaped tokens used to be 150 issuer calls.
/// With a budget of 10 calls at once and 1 per second, the calls stay within what the
/// budget allows for the time the flood took, the rest are `503` + `Retry-After`
/// without a call, and a locally verified JWT keeps getting in during the flood (on
/// plain and on `fresh()` routes).
#[tokio::test]
async fn made_up_tokens_spend_the_issuer_budget_and_never_starve_local_jwts() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let budget = IssuerBudget::per_second(1).with_burst(10);
    let stytch =
        serve(routes(SessionLayer::stytch(&project_with_secret(&issuer)).with_issuer_budget(budget).build().await?))
            .await;
    let oidc = serve(routes(
        SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE)
            .with_authority(introspection(&issuer))
            .with_issuer_budget(budget)
            .build()
            .await?,
    ))
    .await;
    let http = reqwest::Client::new();
    let user = issuer.create_session("user-legit", vec![DevFactor::password()]);
    let access = issuer.access_token().mint();

    let started = Instant::now();
    let (mut stytch_flood, mut oidc_flood) = (Flood::default(), Flood::default());
    for i in 0..50u32 {
        let cookie = format!("stytch_session={i:0>44}");
        stytch_flood.record(&with_cookies(&http, format!("{stytch}/me"), &cookie).await);
        stytch_flood.record(&bearer(&http, format!("{stytch}/me"), &format!("{i:x>44}")).await);
        oidc_flood.record(&bearer(&http, format!("{oidc}/me"), &format!("junk{i}")).await);
        // Local JWTs on the same layers, during the flood.
        assert_eq!(bearer(&http, format!("{stytch}/me"), &user.session_jwt).await.status(), 200);
        assert_eq!(bearer(&http, format!("{oidc}/me"), &access).await.status(), 200);
    }
    // A fresh() confirmation of a locally verified session is not budgeted either.
    assert_eq!(bearer(&http, format!("{stytch}/transfer"), &user.session_jwt).await.status(), 200);
    let elapsed = started.elapsed().as_secs();

    let stytch_calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    let introspections = issuer.request_count(Endpoint::Introspect);
    println!("stytch {stytch_flood:?} with {stytch_calls} calls; oidc {oidc_flood:?} with {introspections} calls");
    // Bucket of 10, refilled at 1 per second while the flood ran; one call was the
    // fresh() confirmation.
    let allowed = 10 + usize::try_from(elapsed)? + 1;
    assert!(stytch_calls - 1 <= allowed, "{stytch_calls} Stytch calls for a budget of {allowed}");
    assert!(introspections <= allowed, "{introspections} introspections for a budget of {allowed}");
    // Each call was one refusal by the issuer; everything else was never sent.
    assert_eq!(stytch_flood.refused, stytch_calls - 1);
    assert_eq!(oidc_flood.refused, introspections);
    assert!(stytch_flood.busy >= 100 - allowed && oidc_flood.busy >= 50 - allowed);

    // A token the issuer already refused is answered from memory: no call, no budget.
    let before = issuer.request_count(Endpoint::SessionsAuthenticate);
    let repeated = with_cookies(&http, format!("{stytch}/me"), &format!("stytch_session={:0>44}", 0)).await;
    assert_eq!(repeated.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), before);
    Ok(())
}

/// Issue 8 item 4: an introspected token for another resource (or another issuer, or
/// naming no audience) is refused like a JWT would be, on plain and fresh routes.
#[tokio::test]
async fn introspected_tokens_obey_the_layer_issuer_and_audience() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let build = |relaxed: bool| {
        let authority = introspection(&issuer);
        let issuer = issuer.issuer();
        async move {
            let builder = SessionLayer::oidc(issuer, DEFAULT_AUDIENCE).with_authority(authority);
            let builder = if relaxed { builder.with_authority_audience_optional() } else { builder };
            Ok::<_, Box<dyn std::error::Error>>(serve(routes(builder.build().await?)).await)
        }
    };
    let base = build(false).await?;
    let relaxed = build(true).await?;
    // Issuer check done by the layer, not only by a `with_issuer` on the authority.
    let unpinned = serve(routes(
        SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE)
            .with_authority(IntrospectionAuthority::new(
                &issuer.introspection_url(),
                issuer.client_id(),
                issuer.client_secret(),
            )?)
            .build()
            .await?,
    ))
    .await;
    let http = reqwest::Client::new();

    let ours = issuer.issue_opaque_access_token(OpaqueTokenSpec::new().audience(DEFAULT_AUDIENCE));
    let other = issuer.issue_opaque_access_token(OpaqueTokenSpec::new().audience("https://payments.example"));
    let none = issuer.issue_opaque_access_token(OpaqueTokenSpec::new());
    let foreign = issuer.issue_opaque_access_token(
        OpaqueTokenSpec::new().audience(DEFAULT_AUDIENCE).extra("iss", json!("https://other-issuer.example")),
    );

    assert_eq!(bearer(&http, format!("{base}/me"), &ours).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &ours).await.status(), 200);
    for route in ["me", "transfer"] {
        let response = bearer(&http, format!("{base}/{route}"), &other).await;
        assert_eq!(response.status(), 401, "other audience on /{route}");
        assert!(description(&response).contains("audience"), "{}", description(&response));
        let response = bearer(&http, format!("{base}/{route}"), &none).await;
        assert_eq!(response.status(), 401, "no audience on /{route}");
        let response = bearer(&http, format!("{base}/{route}"), &foreign).await;
        assert_eq!(response.status(), 401, "other issuer on /{route}");
        assert!(description(&response).contains("issuer"), "{}", description(&response));
        let response = bearer(&http, format!("{unpinned}/{route}"), &foreign).await;
        assert_eq!(response.status(), 401, "other issuer, authority without with_issuer, on /{route}");
        assert!(description(&response).contains("issuer"), "{}", description(&response));
    }
    // Relaxed: no audience passes, another audience still does not.
    assert_eq!(bearer(&http, format!("{relaxed}/me"), &none).await.status(), 200);
    assert_eq!(bearer(&http, format!("{relaxed}/me"), &other).await.status(), 401);
    Ok(())
}

/// Issue 8 item 6: an introspection answer is not reused past the token's `exp`,
/// even when the opaque-token window (30 s by default) is longer.
#[tokio::test]
async fn opaque_answer_ends_with_the_token() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = serve(routes(
        SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_authority(introspection(&issuer)).build().await?,
    ))
    .await;
    let http = reqwest::Client::new();
    let token = issuer
        .issue_opaque_access_token(OpaqueTokenSpec::new().audience(DEFAULT_AUDIENCE).lifetime(Duration::from_secs(2)));
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200);
    assert_eq!(issuer.request_count(Endpoint::Introspect), 1, "reused while the token lives");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::Introspect), 2, "asked again once past exp");
    Ok(())
}

/// Issue 8 item 5: a revocation learned from a short-lived JWT is remembered while a
/// longer-lived JWT of the same session still verifies locally.
#[tokio::test]
async fn revocation_outlives_the_presented_jwt() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let layer = SessionLayer::stytch(&project_with_secret(&issuer))
        .with_leeway(Duration::from_secs(1))
        .with_opaque_token_ttl(Duration::from_secs(1))
        .build()
        .await?;
    let base = serve(routes(layer)).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-stolen", vec![DevFactor::password()]);
    let long_jwt = session.session_jwt.clone(); // 5 minutes
    let short_jwt = issuer
        .stytch_session()
        .session_id(&session.session_id)
        .subject(&session.user_id)
        .lifetime(Duration::from_secs(1))
        .mint();
    assert_eq!(bearer(&http, format!("{base}/me"), &long_jwt).await.status(), 200);
    assert!(issuer.revoke_session(&session.session_id));
    assert_eq!(bearer(&http, format!("{base}/transfer"), &short_jwt).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &long_jwt).await.status(), 401);
    // Past the short JWT's exp + leeway and the opaque window.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(bearer(&http, format!("{base}/me"), &long_jwt).await.status(), 401);
    Ok(())
}

/// Issue 8 item 5: a token without a session id that the issuer stopped vouching for
/// on a fresh route is refused on local routes afterwards (remembered by its hash).
#[tokio::test]
async fn revocation_without_session_id_is_remembered() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = serve(routes(
        SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_authority(introspection(&issuer)).build().await?,
    ))
    .await;
    let http = reqwest::Client::new();
    let kid = issuer.rotate(DevAlg::RS256);
    let jwt = issuer.access_token().signed_by(&kid).mint();
    let other = issuer.access_token().mint();
    assert_eq!(bearer(&http, format!("{base}/me"), &jwt).await.status(), 200);
    // The issuer stops vouching for it: introspection now says inactive.
    assert!(issuer.remove_key(&kid));
    assert_eq!(bearer(&http, format!("{base}/transfer"), &jwt).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &jwt).await.status(), 401);
    // Only that token: another session-less token of the same issuer is unaffected.
    assert_eq!(bearer(&http, format!("{base}/me"), &other).await.status(), 200);
    Ok(())
}

/// A session JWT of `session` that expired five minutes ago (signed, so it can be
/// renewed while its session lives).
fn expired_jwt_of(issuer: &DevIssuer, session: &DevSession) -> String {
    issuer
        .stytch_session()
        .session_id(&session.session_id)
        .subject(&session.user_id)
        .issued_at(SystemTime::now() - Duration::from_secs(600))
        .lifetime(Duration::from_secs(300))
        .mint()
}

/// Issue 8 item 5: the issuer saying "session gone" while renewing an expired Stytch
/// JWT from its session token is remembered for the session named by the expired
/// JWT: its other, still valid JWTs are refused without asking the issuer again.
#[tokio::test]
async fn revocation_learned_while_renewing_is_remembered() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = serve(routes(SessionLayer::stytch(&project_with_secret(&issuer)).build().await?)).await;
    let http = reqwest::Client::new();
    let session = issuer.create_session("user-renewing", vec![DevFactor::password()]);
    let expired = expired_jwt_of(&issuer, &session);
    assert!(issuer.revoke_session(&session.session_id));

    let cookies = format!("stytch_session_jwt={expired}; stytch_session={}", session.session_token);
    let renewal = with_cookies(&http, format!("{base}/me"), &cookies).await;
    assert_eq!(renewal.status(), 401);
    // One call with the session token, one with the expired JWT itself (the
    // answer about the token alone does not prove which session ended).
    let calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    assert_eq!(calls, 2);
    // The session's live JWT (never presented before) is refused locally.
    assert_eq!(bearer(&http, format!("{base}/me"), &session.session_jwt).await.status(), 401);
    // The same renewal again: known revoked, no issuer call.
    assert_eq!(with_cookies(&http, format!("{base}/me"), &cookies).await.status(), 401);
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), calls);
    Ok(())
}

/// The other side of the renewal rule: a made-up session token planted next to
/// someone's expired JWT is refused, but does not end that person's session.
#[tokio::test]
async fn planted_session_token_next_to_an_expired_jwt_ends_nobody() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = serve(routes(SessionLayer::stytch(&project_with_secret(&issuer)).build().await?)).await;
    let http = reqwest::Client::new();
    let victim = issuer.create_session("user-victim", vec![DevFactor::password()]);
    let expired = expired_jwt_of(&issuer, &victim);
    let planted = format!("stytch_session_jwt={expired}; stytch_session={}", "A".repeat(44));
    assert_eq!(with_cookies(&http, format!("{base}/me"), &planted).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &victim.session_jwt).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &victim.session_jwt).await.status(), 200);
    Ok(())
}

/// An expired session JWT of one user next to the live session token of another:
/// two credentials that disagree. The renewal must not serve (or write the cookies
/// of) either session.
#[tokio::test]
async fn expired_jwt_next_to_another_users_session_token_is_refused() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = serve(routes(SessionLayer::stytch(&project_with_secret(&issuer)).build().await?)).await;
    let http = reqwest::Client::new();
    let victim = issuer.create_session("user-victim", vec![DevFactor::password()]);
    let other = issuer.create_session("user-other", vec![DevFactor::password()]);
    let expired = expired_jwt_of(&issuer, &victim);
    let mixed = format!("stytch_session_jwt={expired}; stytch_session={}", other.session_token);
    let response = with_cookies(&http, format!("{base}/me"), &mixed).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers().get_all(http::header::SET_COOKIE).iter().count(), 0, "no cookies for anybody");
    // Neither session was ended by it.
    assert_eq!(bearer(&http, format!("{base}/me"), &victim.session_jwt).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/transfer"), &other.session_jwt).await.status(), 200);
    // The matching pair renews as before.
    let own = format!("stytch_session_jwt={expired}; stytch_session={}", victim.session_token);
    let response = with_cookies(&http, format!("{base}/me"), &own).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get_all(http::header::SET_COOKIE).iter().count() >= 1, "renewed cookies");
    Ok(())
}

/// RFC 7662 answers are about one token: an inactive access token says nothing of
/// the other tokens that carry the same `sid` (Keycloak puts the SSO session id in
/// every token). The revoked token is refused everywhere; its sibling is not.
#[tokio::test]
async fn an_inactive_access_token_does_not_end_the_other_tokens_of_its_sid() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let layer =
        SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_authority(introspection(&issuer)).build().await?;
    let base = serve(routes(layer)).await;
    let http = reqwest::Client::new();
    let current = issuer.current_kid(DevAlg::RS256);
    let retiring = issuer.rotate(DevAlg::RS256);
    let revoked = issuer.access_token().sid("sso-1").signed_by(&retiring).mint();
    let sibling = issuer.access_token().sid("sso-1").signed_by(&current).mint();
    // Both verified locally (the layer fetches the new key on first sight).
    assert_eq!(bearer(&http, format!("{base}/me"), &revoked).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/me"), &sibling).await.status(), 200);
    // The issuer stops vouching for the first token only: introspection says inactive.
    assert!(issuer.remove_key(&retiring));
    assert_eq!(bearer(&http, format!("{base}/transfer"), &revoked).await.status(), 401);
    // Learned: refused on local routes too, while the layer still holds its key.
    assert_eq!(bearer(&http, format!("{base}/me"), &revoked).await.status(), 401);
    // The sibling of the same sid is untouched, locally and at the issuer.
    let response = bearer(&http, format!("{base}/me"), &sibling).await;
    assert_eq!(response.status(), 200, "{}", description(&response));
    assert_eq!(bearer(&http, format!("{base}/transfer"), &sibling).await.status(), 200);
    Ok(())
}

/// Without a session cache, a revocation learned on a fresh route is still
/// remembered for the token that was confirmed.
#[tokio::test]
async fn revocation_is_remembered_without_a_session_cache() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE)
        .with_authority(introspection(&issuer))
        .with_session_cache_bytes(0)
        .build()
        .await?;
    let base = serve(routes(layer)).await;
    let http = reqwest::Client::new();
    let retiring = issuer.rotate(DevAlg::RS256);
    let token = issuer.access_token().signed_by(&retiring).mint();
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 200);
    assert!(issuer.remove_key(&retiring));
    assert_eq!(bearer(&http, format!("{base}/transfer"), &token).await.status(), 401);
    assert_eq!(bearer(&http, format!("{base}/me"), &token).await.status(), 401);
    Ok(())
}
