//! Provider presets (Keycloak, Auth0, Entra ID, Okta): documented fixtures and the dev
//! issuer's provider-shaped tokens verified through each preset; roles found where
//! each provider puts them; the attacker's tokens refused; claim paths; multi-factor
//! across dialects; diagnostics; startup findings.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_stepup::{
    ClaimPath, ConfigError, Dialect, FindingKind, Guard, GuardConfig, IssuerConfig, Preset, Requirement, Session,
    SessionLayer,
};
use tower_stepup_dev_issuer::{DevAlg, DevIssuer, DevShape, DEFAULT_AUDIENCE, DEV_AUTH0_ROLES_CLAIM, DEV_ENTRA_TENANT};

use crate::common::{quick_issuer, serve, TestResult};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The preset for `shape` at the dev issuer.
fn preset(issuer: &DevIssuer, shape: DevShape) -> Preset {
    match shape {
        DevShape::Keycloak => Preset::keycloak(issuer.shape_issuer(shape)),
        DevShape::Auth0 => Preset::auth0(issuer.shape_issuer(shape)).with_roles_claim(DEV_AUTH0_ROLES_CLAIM),
        DevShape::Entra => Preset::entra(DEV_ENTRA_TENANT).with_authority_host(issuer.base_url()),
        DevShape::Okta => Preset::okta(issuer.shape_issuer(shape)),
        _ => Preset::generic().with_issuer(issuer.shape_issuer(shape)),
    }
}

async fn session_json(session: Session) -> Json<Value> {
    Json(json!({
        "sub": session.subject(),
        "client_id": session.client_id(),
        "roles": session.roles(),
        "scopes": session.scopes(),
        "acr": session.acr(),
        "amr": session.amr(),
        "factors": session.factors().iter().map(|f| f.kind().as_str()).collect::<Vec<_>>(),
        "auth_time": session.auth_time().is_some(),
    }))
}

/// An app behind a layer for `preset`: `/me`, `/admin` (role `admin`), `/mfa`
/// (multi-factor), with `config`.
async fn app(preset: &Preset, audience: &str, config: GuardConfig) -> Result<String, ConfigError> {
    let layer = SessionLayer::from_preset(preset, audience).with_guard_config(config).build().await?;
    let router = Router::new()
        .route("/me", get(session_json))
        .route("/admin", get(session_json).route_layer(layer.guard(Requirement::role("admin"))))
        .route("/mfa", get(session_json).route_layer(layer.guard(Requirement::multi_factor())))
        .layer(layer);
    Ok(serve(router).await)
}

/// `GET {base}{path}` with `token`, asking for JSON: `(status, body)`.
async fn call(base: &str, path: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A documented token, re-signed by the dev issuer: `iss` moved to the shaped
/// issuer, times moved to now; `change` edits the payload further.
fn fixture(issuer: &DevIssuer, file: &str, shape: DevShape, change: impl FnOnce(&mut Value)) -> (String, Value) {
    let path = format!("{}/tests/fixtures/providers/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let fixture: Value = serde_json::from_str(&text).expect("fixture JSON");
    let mut header = fixture["header"].clone();
    let mut payload = fixture["payload"].clone();
    let kid = issuer.current_kid(DevAlg::EdDSA);
    header["alg"] = json!("EdDSA");
    header["kid"] = json!(kid);
    let now = now();
    payload["iss"] = json!(issuer.shape_issuer(shape));
    payload["iat"] = json!(now);
    payload["exp"] = json!(now + 300);
    for optional in ["nbf", "auth_time"] {
        if payload.get(optional).is_some() {
            payload[optional] = json!(now - 5);
        }
    }
    change(&mut payload);
    (issuer.sign_raw(header, &payload, &kid), payload)
}

/// The API audience of a documented token (its first `aud`).
fn audience_of(payload: &Value) -> String {
    match &payload["aud"] {
        Value::Array(list) => list[0].as_str().unwrap_or_default().to_owned(),
        other => other.as_str().unwrap_or_default().to_owned(),
    }
}

/// A documented token's case: (file, shape, preset, client id, roles, a scope).
type Case<'a> = (&'a str, DevShape, Preset, &'a str, Vec<&'a str>, &'a str);

#[tokio::test]
async fn each_preset_verifies_its_documented_token() -> TestResult {
    let issuer = quick_issuer().await;
    // (file, shape, preset, client id, roles, a scope)
    let cases: Vec<Case<'_>> = vec![
        (
            "keycloak.json",
            DevShape::Keycloak,
            preset(&issuer, DevShape::Keycloak),
            "demo-app",
            vec!["offline_access", "default-roles-demo", "uma_authorization", "admin"],
            "email",
        ),
        (
            "keycloak.json",
            DevShape::Keycloak,
            preset(&issuer, DevShape::Keycloak).with_client("account"),
            "demo-app",
            vec![
                "offline_access",
                "default-roles-demo",
                "uma_authorization",
                "admin",
                "manage-account",
                "manage-account-links",
                "view-profile",
            ],
            "profile",
        ),
        (
            "auth0.json",
            DevShape::Auth0,
            Preset::auth0(issuer.shape_issuer(DevShape::Auth0)).with_roles_claim("my_custom_claim"),
            "my_client_id",
            vec!["my_custom_value"],
            "read:admin",
        ),
        (
            "auth0_rfc9068.json",
            DevShape::Auth0,
            Preset::auth0(issuer.shape_issuer(DevShape::Auth0)),
            "my_client_id",
            vec![],
            "read:patients",
        ),
        (
            "entra.json",
            DevShape::Entra,
            preset(&issuer, DevShape::Entra),
            "4f8d9b3a-6a1c-4b5e-9f36-0b8e2f0c7d11",
            vec!["API.WRITER", "API.READER"],
            "access_as_user",
        ),
        (
            "okta.json",
            DevShape::Okta,
            preset(&issuer, DevShape::Okta),
            "0oa1b2c3d4e5f6g7h8i9",
            vec!["Everyone", "admin"],
            "groups",
        ),
    ];
    for (file, shape, preset, client, roles, scope) in cases {
        let (token, payload) = fixture(&issuer, file, shape, |_| {});
        let base = app(&preset, &audience_of(&payload), GuardConfig::default()).await?;
        let (status, me) = call(&base, "/me", &token).await;
        assert_eq!(status, 200, "{file}: {me}");
        assert_eq!(me["sub"], payload["sub"], "{file}");
        assert_eq!(me["client_id"], json!(client), "{file}");
        assert_eq!(me["roles"], json!(roles), "{file}");
        assert!(me["scopes"].as_array().is_some_and(|s| s.contains(&json!(scope))), "{file}: {me}");
        let admin = if roles.contains(&"admin") { 200 } else { 403 };
        assert_eq!(call(&base, "/admin", &token).await.0, admin, "{file}");
    }
    Ok(())
}

/// `POST /dev/login` with a shape: the access token.
async fn login(issuer: &DevIssuer, body: Value) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/dev/login", issuer.base_url()))
        .json(&body)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    answer["access_token"].as_str().map_or_else(|| panic!("no access token: {answer}"), str::to_owned)
}

#[tokio::test]
async fn each_preset_verifies_the_dev_issuers_shaped_tokens() -> TestResult {
    let issuer = quick_issuer().await;
    for shape in [DevShape::Keycloak, DevShape::Auth0, DevShape::Entra, DevShape::Okta, DevShape::Rfc9068] {
        let base = app(&preset(&issuer, shape), DEFAULT_AUDIENCE, GuardConfig::default()).await?;
        let admin = login(
            &issuer,
            json!({"shape": shape.as_str(), "user_id": "alice", "roles": ["admin"], "scope": "read write"}),
        )
        .await;
        let (status, me) = call(&base, "/me", &admin).await;
        assert_eq!(status, 200, "{shape}: {me}");
        assert_eq!(me["sub"], "alice", "{shape}");
        assert_eq!(me["roles"], json!(["admin"]), "{shape}");
        assert_eq!(me["scopes"], json!(["read", "write"]), "{shape}");
        assert_eq!(me["client_id"], json!(issuer.client_id()), "{shape}");
        assert_eq!(call(&base, "/admin", &admin).await.0, 200, "{shape}");
        let user = login(&issuer, json!({"shape": shape.as_str(), "roles": ["user"]})).await;
        assert_eq!(call(&base, "/admin", &user).await.0, 403, "{shape}");
        // What each provider leaves out of access tokens, the shape leaves out too.
        let auth_time = matches!(shape, DevShape::Keycloak | DevShape::Okta | DevShape::Rfc9068);
        assert_eq!(me["auth_time"], json!(auth_time), "{shape}");
        // Another shape's token is another issuer's: refused.
        let other = if shape == DevShape::Keycloak { DevShape::Okta } else { DevShape::Keycloak };
        let stranger = login(&issuer, json!({"shape": other.as_str(), "roles": ["admin"]})).await;
        assert_eq!(call(&base, "/me", &stranger).await.0, 401, "{shape} accepted a {other} token");
    }
    Ok(())
}

#[tokio::test]
async fn keycloak_client_roles_count_only_for_the_named_client() -> TestResult {
    let issuer = quick_issuer().await;
    let token = login(
        &issuer,
        json!({"shape": "keycloak", "roles": ["user"], "client_roles": {"orders-api": ["admin"], "billing": ["owner"]}}),
    )
    .await;
    let realm_only = app(&preset(&issuer, DevShape::Keycloak), DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    assert_eq!(call(&realm_only, "/admin", &token).await.0, 403);
    let with_client = preset(&issuer, DevShape::Keycloak).with_client("orders-api");
    let base = app(&with_client, DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    let (status, me) = call(&base, "/admin", &token).await;
    assert_eq!(status, 200);
    assert_eq!(me["roles"], json!(["user", "admin"]), "another client's roles never count");
    Ok(())
}

#[tokio::test]
async fn the_attackers_tokens_are_refused() -> TestResult {
    let issuer = quick_issuer().await;
    let keycloak = app(&preset(&issuer, DevShape::Keycloak), DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    let good = issuer.shaped_token(DevShape::Keycloak).role("admin");
    assert_eq!(call(&keycloak, "/admin", &good.mint()).await.0, 200);
    // An RFC 9068 `typ` where Keycloak sends `JWT`.
    let typ = issuer.shaped_token(DevShape::Keycloak).role("admin").typ(Some("at+jwt")).mint();
    assert_eq!(call(&keycloak, "/me", &typ).await.0, 401);
    // A Keycloak ID token for the same audience (payload `typ` `ID`), or none at all.
    let id_token = issuer.shaped_token(DevShape::Keycloak).role("admin").custom_claim("typ", json!("ID")).mint();
    assert_eq!(call(&keycloak, "/me", &id_token).await.0, 401);
    let untyped = issuer.shaped_token(DevShape::Keycloak).role("admin").custom_claim("typ", Value::Null).mint();
    assert_eq!(call(&keycloak, "/me", &untyped).await.0, 401);
    // Two client ids that disagree.
    let two = issuer.shaped_token(DevShape::Keycloak).custom_claim("client_id", json!("someone-else")).mint();
    assert_eq!(call(&keycloak, "/me", &two).await.0, 401);
    // Roles in the wrong shape (`realm_access.roles` not an array of strings).
    let garbage = issuer.shaped_token(DevShape::Keycloak).custom_claim("realm_access", json!({"roles": [1]})).mint();
    assert_eq!(call(&keycloak, "/me", &garbage).await.0, 401);
    // A role placed at the top level is not a realm role.
    let top = issuer.shaped_token(DevShape::Keycloak).custom_claim("roles", json!(["admin"])).mint();
    assert_eq!(call(&keycloak, "/admin", &top).await.0, 403);

    // Allowed clients: another client's token is refused.
    let only_web = preset(&issuer, DevShape::Auth0).with_allowed_clients(["web"]);
    let auth0 = app(&only_web, DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    let web = issuer.shaped_token(DevShape::Auth0).client_id("web").mint();
    assert_eq!(call(&auth0, "/me", &web).await.0, 200);
    let other = issuer.shaped_token(DevShape::Auth0).client_id("other-app").mint();
    assert_eq!(call(&auth0, "/me", &other).await.0, 401);
    let none = issuer.shaped_token(DevShape::Auth0).custom_claim("azp", Value::Null).mint();
    assert_eq!(call(&auth0, "/me", &none).await.0, 401);

    // Okta: the org authorization server's tokens are Okta's own.
    let okta = app(&preset(&issuer, DevShape::Okta), DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    let internal = issuer.shaped_token(DevShape::Okta).typ(Some("application/okta-internal-at+jwt")).mint();
    assert_eq!(call(&okta, "/me", &internal).await.0, 401);
    assert_eq!(call(&okta, "/me", &issuer.shaped_token(DevShape::Okta).mint()).await.0, 200);
    let org = SessionLayer::from_preset(&Preset::okta("https://acme.okta.com"), "api://default").build().await;
    assert!(org.unwrap_err().to_string().contains("org authorization server"));
    let common = SessionLayer::from_preset(&Preset::entra("common"), "api").build().await;
    assert!(common.unwrap_err().to_string().contains("common"));
    let no_issuer = SessionLayer::from_preset(&Preset::generic(), "api").build().await;
    assert!(matches!(no_issuer, Err(ConfigError::Missing("issuer"))));
    Ok(())
}

#[tokio::test]
async fn claim_paths_with_slashes_and_dots() -> TestResult {
    let issuer = quick_issuer().await;
    // A namespaced URL is one claim, dots and slashes included.
    let auth0 = Preset::auth0(issuer.shape_issuer(DevShape::Auth0)).with_roles_claim("https://acme.example/v1.0/roles");
    let base = app(&auth0, DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    let token =
        login(&issuer, json!({"shape": "auth0", "roles": ["admin"], "roles_claim": "https://acme.example/v1.0/roles"}))
            .await;
    assert_eq!(call(&base, "/admin", &token).await.0, 200);
    // Nested, with an escaped dot in a member name.
    let generic = Preset::generic().with_issuer(issuer.issuer()).with_roles_claim(r"app\.v2.roles");
    let base = app(&generic, DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    let nested = issuer.access_token().custom_claim("app.v2", json!({"roles": ["admin"]})).mint();
    assert_eq!(call(&base, "/admin", &nested).await.0, 200);
    let unescaped = issuer.access_token().custom_claim("app", json!({"v2": {"roles": ["admin"]}})).mint();
    assert_eq!(call(&base, "/admin", &unescaped).await.0, 403, "`app.v2` is one member, not two");
    assert_eq!(ClaimPath::parse(r"app\.v2.roles"), ClaimPath::new(["app.v2", "roles"]));
    Ok(())
}

#[tokio::test]
async fn multi_factor_across_dialects() -> TestResult {
    let issuer = quick_issuer().await;
    let config = || GuardConfig::default().with_acr_levels(["pwd", "mfa"]);
    // Auth0 says `amr: ["mfa"]` and nothing else.
    let auth0 = app(&preset(&issuer, DevShape::Auth0), DEFAULT_AUDIENCE, config()).await?;
    let two = login(&issuer, json!({"shape": "auth0", "factors": ["password", "totp"]})).await;
    let (status, me) = call(&auth0, "/mfa", &two).await;
    assert_eq!((status, &me["amr"], &me["factors"]), (200, &json!(["mfa"]), &json!([])));
    let one = login(&issuer, json!({"shape": "auth0", "factors": ["password"]})).await;
    assert_eq!(call(&auth0, "/mfa", &one).await.0, 401);
    // Keycloak's AMR mapper lists the methods: `pwd` + `otp` are two kinds.
    let keycloak = app(&preset(&issuer, DevShape::Keycloak), DEFAULT_AUDIENCE, config()).await?;
    let two = login(&issuer, json!({"shape": "keycloak", "factors": ["password", "totp"]})).await;
    let (status, me) = call(&keycloak, "/mfa", &two).await;
    assert_eq!((status, &me["factors"]), (200, &json!(["password", "otp"])));
    let codes = login(&issuer, json!({"shape": "keycloak", "factors": ["totp", "sms_otp"]})).await;
    assert_eq!(call(&keycloak, "/mfa", &codes).await.0, 401, "two one-time codes are one kind of factor");
    // An acr level configured as multi-factor.
    let loa = GuardConfig::default().with_acr_levels(["0", "1", "2"]).with_multi_factor_acr("2");
    let keycloak_loa = app(&preset(&issuer, DevShape::Keycloak), DEFAULT_AUDIENCE, loa).await?;
    let gold = login(&issuer, json!({"shape": "keycloak", "acr": "2"})).await;
    assert_eq!(call(&keycloak_loa, "/mfa", &gold).await.0, 200);
    let (status, body) = call(&keycloak_loa, "/mfa", &login(&issuer, json!({"shape": "keycloak"})).await).await;
    assert_eq!((status, &body["acr_values"]), (401, &json!(["2"])));
    // Stytch: two distinct factor kinds.
    let stytch = SessionLayer::stytch(&crate::common::project(&issuer)).build().await?;
    let router = Router::new()
        .route("/mfa", get(session_json).route_layer(Guard::new(Requirement::multi_factor())))
        .layer(stytch);
    let base = serve(router).await;
    let strong = issuer
        .stytch_session()
        .factor(tower_stepup_dev_issuer::DevFactor::magic_link())
        .factor(tower_stepup_dev_issuer::DevFactor::totp())
        .mint();
    assert_eq!(call(&base, "/mfa", &strong).await.0, 200, "magic link + totp");
    let weak = issuer.stytch_session().mint();
    assert_eq!(call(&base, "/mfa", &weak).await.0, 401);
    Ok(())
}

#[tokio::test]
async fn diagnostics_say_what_is_wrong_only_when_on() -> TestResult {
    let issuer = quick_issuer().await;
    let keycloak = preset(&issuer, DevShape::Keycloak).with_allowed_clients([issuer.client_id()]);
    let user = login(&issuer, json!({"shape": "keycloak", "roles": ["user"]})).await;
    let stranger = login(&issuer, json!({"shape": "keycloak", "client_id": "other-app"})).await;

    let off = app(&keycloak, DEFAULT_AUDIENCE, GuardConfig::default()).await?;
    for token in [&user, &stranger] {
        let (status, body) = call(&off, "/admin", token).await;
        assert!(status == 403 || status == 401);
        assert!(body.get("diagnostics").is_none(), "{body}");
        let text = body.to_string();
        assert!(!text.contains("realm_access") && !text.contains("other-app"), "{text}");
    }

    let on = app(&keycloak, DEFAULT_AUDIENCE, GuardConfig::default().with_diagnostics(true)).await?;
    let (status, body) = call(&on, "/admin", &user).await;
    assert_eq!(status, 403);
    let reason = body["diagnostics"][0].as_str().unwrap_or_default();
    assert!(
        reason.contains("role `admin`") && reason.contains("realm_access.roles") && reason.contains("`user`"),
        "{reason}"
    );
    let (status, body) = call(&on, "/admin", &stranger).await;
    assert_eq!(status, 401);
    let reason = body["diagnostics"][0].as_str().unwrap_or_default();
    assert!(reason.contains("`azp` is `other-app`") && reason.contains(issuer.client_id()), "{reason}");
    // Never the token itself.
    assert!(!body.to_string().contains(&stranger[..40]));
    let (_, body) = call(&on, "/mfa", &user).await;
    assert!(body["diagnostics"][0].as_str().is_some_and(|r| r.contains("multi-factor")), "{body}");
    Ok(())
}

#[test]
fn findings_for_presets() {
    let config = GuardConfig::default().with_acr_levels(["pwd", "mfa"]);
    let kinds = |requirement: Requirement, preset: &Preset| {
        requirement.findings(&config, preset.dialect()).into_iter().map(|f| (f.kind, f.certain)).collect::<Vec<_>>()
    };
    let entra = Preset::entra("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let auth0 = Preset::auth0("acme.auth0.com");
    let okta = Preset::okta("https://acme.okta.com/oauth2/default");
    let keycloak = Preset::keycloak("https://sso.example.com/realms/acme");
    let max_age = || Requirement::max_age(Duration::from_secs(300));
    // Entra v2.0 access tokens carry no auth_time, amr or acr: never met.
    assert_eq!(kinds(max_age(), &entra), [(FindingKind::NeedsAuthTime, true)]);
    assert_eq!(kinds(Requirement::multi_factor(), &entra), [(FindingKind::ClaimNotSent, true)]);
    assert_eq!(kinds(Requirement::acr_at_least("mfa"), &entra), [(FindingKind::ClaimNotSent, true)]);
    assert!(Requirement::multi_factor().validate_for(&config, Dialect::Entra).is_err());
    // Auth0: no auth_time unless an Action adds it; no factors at all; `mfa` is sent.
    assert_eq!(kinds(max_age(), &auth0), [(FindingKind::NeedsAuthTime, false)]);
    let totp = || Requirement::from(Requirement::factor(tower_stepup::FactorKind::OTP));
    assert_eq!(kinds(totp(), &auth0), [(FindingKind::ClaimNotSent, true)]);
    assert_eq!(kinds(Requirement::multi_factor(), &auth0), []);
    // Okta sends auth_time.
    assert_eq!(kinds(max_age(), &okta), []);
    assert_eq!(kinds(Requirement::multi_factor(), &okta), []);
    assert_eq!(kinds(totp(), &keycloak), []);
    assert_eq!(kinds(Requirement::multi_factor(), &Preset::generic()), []);
}

#[tokio::test]
async fn presets_serve_as_the_issuer_configs_of_one_layer() -> TestResult {
    // Two providers behind one API: a Keycloak realm and an Auth0 tenant, each read
    // with its own preset (typ, roles claim), selected by the token's `iss`.
    let (keycloak, auth0) = (quick_issuer().await, quick_issuer().await);
    let layer = SessionLayer::multi_issuer()
        .with_audience(DEFAULT_AUDIENCE)
        .with_issuer_config(IssuerConfig::from_preset(&preset(&keycloak, DevShape::Keycloak)))
        .with_issuer_config(IssuerConfig::from_preset(&preset(&auth0, DevShape::Auth0)))
        .build()
        .await?;
    let router = Router::new()
        .route("/me", get(session_json))
        .route("/admin", get(session_json).route_layer(Guard::new(Requirement::role("admin"))))
        .layer(layer);
    let base = serve(router).await;
    for (issuer, shape) in [(&keycloak, DevShape::Keycloak), (&auth0, DevShape::Auth0)] {
        let admin = login(issuer, json!({"shape": shape.as_str(), "roles": ["admin"]})).await;
        let (status, me) = call(&base, "/admin", &admin).await;
        assert_eq!(status, 200, "{shape}: {me}");
        assert_eq!(me["roles"], json!(["admin"]), "{shape}");
        let user = login(issuer, json!({"shape": shape.as_str(), "roles": ["user"]})).await;
        assert_eq!(call(&base, "/admin", &user).await.0, 403, "{shape}");
    }
    // Each issuer keeps its own rules: Keycloak's `typ` policy refuses `at+jwt`, which
    // the Auth0 preset would accept.
    let typed = keycloak.shaped_token(DevShape::Keycloak).role("admin").typ(Some("at+jwt")).mint();
    assert_eq!(call(&base, "/me", &typed).await.0, 401);
    // A token of a third issuer (another shape of the same dev issuer) is a stranger.
    let okta = login(&keycloak, json!({"shape": "okta", "roles": ["admin"]})).await;
    assert_eq!(call(&base, "/me", &okta).await.0, 401);
    // A preset without an issuer is refused at build.
    let refused = SessionLayer::multi_issuer()
        .with_audience(DEFAULT_AUDIENCE)
        .with_issuer_config(IssuerConfig::from_preset(&Preset::generic()))
        .build()
        .await;
    assert!(refused.is_err());
    Ok(())
}
