//! End-to-end smoke test: dev issuer → layer → guard → handler, over real HTTP.

use crate::common::{project_with_secret, serve};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tower_stepup::{FactorKind, Guard, Requirement, Session, SessionLayer};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer};

#[tokio::test]
async fn stytch_session_end_to_end() {
    let issuer = DevIssuer::start().await.unwrap();
    let project = project_with_secret(&issuer);
    let layer = SessionLayer::stytch(&project).build().await.unwrap();
    let app = Router::new()
        .route("/me", get(|s: Session| async move { s.subject().to_owned() }))
        .route(
            "/transfer",
            get(|| async { "sent" }).route_layer(
                Guard::new(Requirement::factor(FactorKind::TOTP).within(Duration::from_secs(300))).fresh(),
            ),
        )
        .layer(layer);
    let base = serve(app).await;
    let client = reqwest::Client::new();

    let session = issuer.create_session("user-1", vec![DevFactor::password()]);
    let me = client.get(format!("{base}/me")).bearer_auth(&session.session_jwt).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.text().await.unwrap(), "user-1");

    let cookie = format!("stytch_session_jwt={}; stytch_session={}", session.session_jwt, session.session_token);
    let transfer = client.get(format!("{base}/transfer")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(transfer.status(), 401, "{:?}", transfer.headers());
    let challenge = transfer.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("insufficient_user_authentication"), "{challenge}");

    issuer.add_factor(&session.session_token, DevFactor::totp()).unwrap();
    let transfer = client.get(format!("{base}/transfer")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(transfer.status(), 200);
    assert!(transfer.headers().get_all("set-cookie").iter().count() >= 2);

    assert!(issuer.revoke_session(&session.session_id));
    let transfer = client.get(format!("{base}/transfer")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(transfer.status(), 401);
    let me = client.get(format!("{base}/me")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(me.status(), 401, "revocation learned on /transfer applies everywhere");
}
