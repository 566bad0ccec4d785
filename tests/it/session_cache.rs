//! The verified-session cache over HTTP, under eviction: a budget that holds only
//! part of the sessions in use, many clients at once. Every answer must be the
//! presented token's own session, whichever sessions were evicted and verified
//! again, and a token one byte away from a cached one must never hit.

use std::sync::Arc;

use http::StatusCode;
use serde_json::Value;
use tower_stepup::SessionLayer;
use tower_stepup_dev_issuer::DevFactor;

use crate::common::{bearer, client, project, quick_issuer, routes, serve, TestResult};

/// 256 KiB: room for a few hundred typical sessions, fewer than the test uses.
const BUDGET: u64 = 256 * 1024;
const USERS: usize = 900;

#[tokio::test]
async fn an_evicting_cache_answers_every_token_with_its_own_session() -> TestResult {
    let issuer = quick_issuer().await;
    let layer = SessionLayer::stytch(&project(&issuer)).with_session_cache_bytes(BUDGET).build().await?;
    let base = serve(routes(layer.clone())).await;
    let users: Arc<Vec<(String, String)>> = Arc::new(
        (0..USERS)
            .map(|i| {
                let subject = format!("user-test-{i:04}");
                let token = issuer
                    .stytch_session()
                    .subject(subject.clone())
                    .factor(DevFactor::email_otp())
                    .factor(DevFactor::totp())
                    .roles(["stytch_member", if i % 2 == 0 { "editor" } else { "viewer" }])
                    .mint();
                (subject, token)
            })
            .collect(),
    );
    let http = client();
    // Three passes in different orders, 16 clients at once: inserts, evictions and
    // hits interleave across the cache's shards.
    for pass in 0..3_usize {
        let mut order: Vec<usize> = (0..USERS).collect();
        match pass {
            0 => {}
            1 => order.reverse(),
            _ => order.sort_by_key(|i| (i * 7919) % USERS),
        }
        let mut clients = tokio::task::JoinSet::new();
        for part in order.chunks(USERS.div_ceil(16)) {
            let (part, users, http, base) = (part.to_vec(), Arc::clone(&users), http.clone(), base.clone());
            clients.spawn(async move {
                for i in part {
                    let (subject, token) = &users[i];
                    let response = bearer(&http, format!("{base}/me"), token).await;
                    assert_eq!(response.status(), StatusCode::OK, "user {i}");
                    let body: Value = response.json().await.expect("json");
                    assert_eq!(body["sub"], subject.as_str(), "user {i} answered as another user");
                }
            });
        }
        while let Some(done) = clients.join_next().await {
            done?;
        }
    }
    #[cfg(feature = "__bench")]
    {
        let (entries, bytes) = tower_stepup::__bench::cache_stats(&layer).expect("cache on");
        let entries = usize::try_from(entries)?;
        assert!(entries > 0 && entries < USERS, "the budget forced evictions: {entries} of {USERS} cached");
        // One entry may pass the budget when two shards take the last room at once.
        assert!(bytes <= BUDGET + 4096, "{bytes} bytes for a budget of {BUDGET}");
    }

    // Tokens one byte away from a cached one (the last signature character, a
    // character of the body, the token cut short) are refused, never a hit.
    let (_, token) = &users[USERS - 1];
    assert_eq!(bearer(&http, format!("{base}/me"), token).await.status(), StatusCode::OK);
    let flip = |at: usize| {
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).expect("ascii")
    };
    for forged in [flip(token.len() - 1), flip(token.len() / 2), token[..token.len() - 1].to_owned()] {
        assert_eq!(bearer(&http, format!("{base}/me"), &forged).await.status(), StatusCode::UNAUTHORIZED);
    }
    Ok(())
}
