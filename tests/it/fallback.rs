//! Issue 10, "Stytch's own semantics": the remote fallback of a lapsed JWT (as
//! stytch-node's `authenticateJwt`), the maximum token age, the project's issuers,
//! and the layer's claim profile on the authority's answers.

use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::SET_COOKIE;
use serde_json::{json, Map, Value};
use tower_stepup::{
    AuthError, AuthErrorKind, Authority, AuthorityCredential, AuthorityFuture, ClaimProfile, Confirmation, Guard,
    IssuerBudget, OidcProfile, RenewedTokens, Session, SessionLayer, SessionLayerBuilder, TokenKind, VerifiedClaims,
};
use tower_stepup_dev_issuer::{
    DevAlg, DevFactor, DevIssuer, DevSession, Endpoint, OpaqueTokenSpec, StytchJwtBuilder, DEFAULT_AUDIENCE,
};

use crate::common::{
    bearer, challenge, client, hmac_sha256, introspection, project, project_with_secret, serve, set_cookies,
    stytch_app, with_cookies, TestResult, TestResultOf, JWT_COOKIE, TOKEN_COOKIE,
};

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn authenticate_calls(issuer: &DevIssuer) -> usize {
    issuer.request_count(Endpoint::SessionsAuthenticate)
}

/// A JWT of `session` minted `age` ago, valid for 5 minutes (expired when `age`
/// is longer), correctly signed.
fn jwt_of(issuer: &DevIssuer, session: &DevSession, age: Duration) -> String {
    issuer
        .stytch_session()
        .session_id(&session.session_id)
        .subject(&session.user_id)
        .issued_at(SystemTime::now() - age)
        .mint()
}

/// A builder of the JWT of `session`, for attacker variations.
fn jwt_builder<'a>(issuer: &'a DevIssuer, session: &DevSession) -> StytchJwtBuilder<'a> {
    issuer.stytch_session().session_id(&session.session_id).subject(&session.user_id)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// (header, claims) of a compact JWT.
fn split(token: &str) -> (Map<String, Value>, Map<String, Value>) {
    let parts: Vec<&str> = token.split('.').collect();
    let json = |segment: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap();
    (json(parts[0]), json(parts[1]))
}

/// Re-signs `token` with its own key after editing the header.
fn resign_header(issuer: &DevIssuer, token: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let (mut header, claims) = split(token);
    let kid = header["kid"].as_str().unwrap().to_owned();
    edit(&mut header);
    issuer.sign_raw(Value::Object(header), &Value::Object(claims), &kid)
}

/// The key-confusion attack: HS256 keyed with the public key.
fn hs256_with_public_key(issuer: &DevIssuer, token: &str) -> String {
    let (mut header, claims) = split(token);
    let der = issuer.public_key_der(header["kid"].as_str().unwrap()).unwrap();
    header.insert("alg".into(), json!("HS256"));
    let signed = format!(
        "{}.{}",
        b64(Value::Object(header).to_string().as_bytes()),
        b64(Value::Object(claims).to_string().as_bytes())
    );
    let mac = hmac_sha256(&der, signed.as_bytes());
    format!("{signed}.{}", b64(&mac))
}

/// The session as JSON: subject, session id, roles, credential kind.
async fn who(session: Session) -> Json<Value> {
    Json(json!({
        "sub": session.subject(),
        "session_id": session.session_id(),
        "roles": session.roles(),
        "opaque": session.token_kind() == TokenKind::Opaque,
    }))
}

/// `/me` (any session) and `/transfer` (fresh), behind `layer`.
async fn app(layer: SessionLayerBuilder) -> TestResultOf<String> {
    let router = Router::new()
        .route("/me", get(who))
        .route("/transfer", get(who).route_layer(Guard::authenticated().fresh()))
        .layer(layer.build().await?);
    Ok(serve(router).await)
}

// ------------------------------------------------------------------ the fallback

#[tokio::test]
async fn an_expired_bearer_jwt_is_confirmed_with_itself_and_never_gets_cookies() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = client();
    let session = issuer.create_session("user-fallback-bearer", vec![DevFactor::password()]);
    let expired = jwt_of(&issuer, &session, mins(10));

    let me = bearer(&http, format!("{base}/me"), &expired).await;
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0, "a bearer client never gets cookies");
    assert_eq!(me.json::<Value>().await?["session_id"], session.session_id.as_str());
    assert_eq!(authenticate_calls(&issuer), 1);

    // The answer is reused (the opaque-token window): not one call per request.
    assert_eq!(bearer(&http, format!("{base}/me"), &expired).await.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 1);

    // A session that ended at the issuer is refused, and remembered: another
    // expired JWT of it is refused without a call.
    let ended = issuer.create_session("user-fallback-ended", vec![DevFactor::password()]);
    let first = jwt_of(&issuer, &ended, mins(10));
    let second = jwt_of(&issuer, &ended, mins(11));
    assert!(issuer.revoke_session(&ended.session_id));
    let me = bearer(&http, format!("{base}/me"), &first).await;
    assert_eq!(me.status(), 401);
    assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0);
    assert_eq!(authenticate_calls(&issuer), 2);
    let me = bearer(&http, format!("{base}/me"), &second).await;
    assert_eq!(me.status(), 401);
    assert_eq!(authenticate_calls(&issuer), 2, "a known revoked session cost an issuer call");
    Ok(())
}

#[tokio::test]
async fn an_expired_jwt_only_cookie_is_renewed_into_its_cookie() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = client();
    let session = issuer.create_session("user-fallback-cookie", vec![DevFactor::password()]);
    let expired = jwt_of(&issuer, &session, mins(10));

    let me = with_cookies(&http, format!("{base}/me"), &format!("{JWT_COOKIE}={expired}")).await;
    assert_eq!(me.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 1);
    let cookies = set_cookies(me.headers());
    assert_eq!(cookies.len(), 1, "only the cookie the client holds is renewed: {cookies:?}");
    assert_eq!(cookies[0].name(), JWT_COOKIE);
    let renewed = cookies[0].value().to_owned();
    assert_ne!(renewed, expired);
    assert_eq!(me.json::<Value>().await?["session_id"], session.session_id.as_str());

    // The renewed JWT verifies locally: no further call.
    assert_eq!(with_cookies(&http, format!("{base}/me"), &format!("{JWT_COOKIE}={renewed}")).await.status(), 200);
    assert_eq!(bearer(&http, format!("{base}/me"), &renewed).await.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 1);

    // A revoked session: refused, its cookies cleared.
    let ended = issuer.create_session("user-fallback-cookie-ended", vec![DevFactor::password()]);
    let expired = jwt_of(&issuer, &ended, mins(10));
    assert!(issuer.revoke_session(&ended.session_id));
    let me = with_cookies(&http, format!("{base}/me"), &format!("{JWT_COOKIE}={expired}")).await;
    assert_eq!(me.status(), 401);
    let cleared = set_cookies(me.headers());
    assert!(!cleared.is_empty() && cleared.iter().all(|c| c.value().is_empty()), "{cleared:?}");
    Ok(())
}

#[tokio::test]
async fn a_pair_that_disagrees_is_refused_without_cookies() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = client();
    let victim = issuer.create_session("user-fallback-victim", vec![DevFactor::password()]);
    let attacker = issuer.create_session("user-fallback-attacker", vec![DevFactor::password()]);
    // The victim's expired JWT next to the attacker's session token, either way round.
    for (jwt_owner, token_owner) in [(&victim, &attacker), (&attacker, &victim)] {
        let expired = jwt_of(&issuer, jwt_owner, mins(10));
        let cookie = format!("{JWT_COOKIE}={expired}; {TOKEN_COOKIE}={}", token_owner.session_token);
        let me = with_cookies(&http, format!("{base}/me"), &cookie).await;
        assert_eq!(me.status(), 401);
        assert!(challenge(&me).contains("invalid_token"), "{}", challenge(&me));
        assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0);
    }
    // Neither session was harmed.
    for session in [&victim, &attacker] {
        let fresh = jwt_of(&issuer, session, Duration::ZERO);
        assert_eq!(bearer(&http, format!("{base}/me"), &fresh).await.status(), 200);
    }
    Ok(())
}

#[tokio::test]
async fn nothing_but_a_lapse_reaches_the_issuer() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = stytch_app(&issuer).await;
    let http = client();
    let session = issuer.create_session("user-fallback-attacked", vec![DevFactor::password()]);
    let expired = jwt_of(&issuer, &session, mins(10));
    let later = SystemTime::now() + mins(10);
    let old = SystemTime::now() - mins(10);

    let mut tampered = expired.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let cases: Vec<(&str, String)> = vec![
        ("bad signature", tampered),
        ("signed by another key", {
            let kid = issuer.current_kid(DevAlg::RS256);
            resign_header(&issuer, &jwt_builder(&issuer, &session).alg(DevAlg::ES256).issued_at(old).mint(), |h| {
                h.insert("kid".into(), json!(kid));
            })
        }),
        (
            "alg none",
            resign_header(&issuer, &expired, |h| {
                h.insert("alg".into(), json!("none"));
            }),
        ),
        ("HS256 keyed with the public key", hs256_with_public_key(&issuer, &expired)),
        (
            "jku header",
            resign_header(&issuer, &expired, |h| {
                h.insert("jku".into(), json!("https://evil.example/jwks"));
            }),
        ),
        ("other audience", jwt_builder(&issuer, &session).audience("project-test-other").issued_at(old).mint()),
        ("unknown issuer", jwt_builder(&issuer, &session).issuer("https://evil.example").issued_at(old).mint()),
        ("typ at+jwt", jwt_builder(&issuer, &session).typ(Some("at+jwt")).issued_at(old).mint()),
        ("no session claim", {
            let (header, mut claims) = split(&expired);
            claims.remove("https://stytch.com/session");
            issuer.sign_raw(Value::Object(header.clone()), &Value::Object(claims), header["kid"].as_str().unwrap())
        }),
        ("iat in the future", jwt_builder(&issuer, &session).issued_at(later).mint()),
        ("nbf in the future", jwt_builder(&issuer, &session).not_before(later).mint()),
        ("factor authenticated in the future", {
            jwt_builder(&issuer, &session).factor(DevFactor::totp().authenticated_at(later)).issued_at(old).mint()
        }),
    ];
    for (name, token) in &cases {
        let before = authenticate_calls(&issuer);
        let me = bearer(&http, format!("{base}/me"), token).await;
        assert_eq!(me.status(), 401, "{name}");
        // With the session token next to it, in the cookies: still no call.
        let cookie = format!("{JWT_COOKIE}={token}; {TOKEN_COOKIE}={}", session.session_token);
        let me = with_cookies(&http, format!("{base}/me"), &cookie).await;
        assert_eq!(me.status(), 401, "{name} (cookies)");
        assert_eq!(me.headers().get_all(SET_COOKIE).iter().count(), 0, "{name}");
        assert_eq!(authenticate_calls(&issuer), before, "{name}: the issuer was called");
    }
    // The control: the untouched expired JWT is confirmed.
    assert_eq!(bearer(&http, format!("{base}/me"), &expired).await.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 1);
    Ok(())
}

/// Confirms every credential as a session of its own choosing (of the right
/// project), with new tokens.
struct Impostor {
    issuer: String,
    audience: String,
}

impl Authority for Impostor {
    fn authenticate<'a>(&'a self, _credential: AuthorityCredential<'a>) -> AuthorityFuture<'a> {
        Box::pin(async move {
            let session = Session::builder("user-impostor", self.issuer.clone())
                .audience(vec![self.audience.clone()])
                .session_id("session-impostor")
                .build();
            Ok(Confirmation::new(session).with_renewed(RenewedTokens::new().with_session_token("impostor-token")))
        })
    }
    fn confirms_whole_session(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn an_answer_about_another_session_is_not_believed() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let project = project_with_secret(&issuer);
    let impostor = Impostor { issuer: issuer.stytch_issuer(), audience: issuer.project_id().to_owned() };
    let layer = SessionLayer::stytch(&project).with_authority(impostor);
    let base = app(layer).await?;
    let http = client();
    let session = issuer.create_session("user-fallback-honest", vec![DevFactor::password()]);
    let expired = jwt_of(&issuer, &session, mins(10));
    for response in [
        bearer(&http, format!("{base}/me"), &expired).await,
        with_cookies(&http, format!("{base}/me"), &format!("{JWT_COOKIE}={expired}")).await,
    ] {
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers().get_all(SET_COOKIE).iter().count(), 0);
    }
    Ok(())
}

#[tokio::test]
async fn the_fallback_spends_the_issuer_budget() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let layer = SessionLayer::stytch(&project_with_secret(&issuer))
        .with_issuer_budget(IssuerBudget::per_second(1).with_burst(1));
    let base = app(layer).await?;
    let http = client();
    let sessions: Vec<DevSession> =
        (0..3).map(|i| issuer.create_session(&format!("user-budget-{i}"), vec![DevFactor::password()])).collect();
    let mut statuses = Vec::new();
    for session in &sessions {
        statuses.push(bearer(&http, format!("{base}/me"), &jwt_of(&issuer, session, mins(10))).await.status());
    }
    assert_eq!(statuses[0], 200);
    assert!(statuses.contains(&http::StatusCode::SERVICE_UNAVAILABLE), "{statuses:?}");
    assert!(authenticate_calls(&issuer) < sessions.len(), "every request became an issuer call");
    Ok(())
}

// ------------------------------------------------------------------ maximum token age

#[tokio::test]
async fn too_old_means_confirm_with_an_authority_and_refuse_without() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = client();
    let session = issuer.create_session("user-max-age", vec![DevFactor::password()]);
    // Minted two minutes ago, valid for an hour: only its age is against it.
    let aged = jwt_builder(&issuer, &session).issued_at(SystemTime::now() - mins(2)).lifetime(mins(60)).mint();
    let young = jwt_of(&issuer, &session, Duration::ZERO);

    let confirming = app(SessionLayer::stytch(&project_with_secret(&issuer)).with_max_token_age(mins(1))).await?;
    assert_eq!(bearer(&http, format!("{confirming}/me"), &young).await.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 0, "a young JWT is verified locally");
    let me = bearer(&http, format!("{confirming}/me"), &aged).await;
    assert_eq!(me.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 1, "a too-old JWT is confirmed");
    let me = with_cookies(&http, format!("{confirming}/me"), &format!("{JWT_COOKIE}={aged}")).await;
    assert_eq!(me.status(), 200);
    assert_eq!(set_cookies(me.headers()).len(), 1, "a cookie client gets the renewed JWT");

    let refusing = app(SessionLayer::stytch(&project(&issuer)).with_max_token_age(mins(1))).await?;
    assert_eq!(bearer(&http, format!("{refusing}/me"), &young).await.status(), 200);
    let me = bearer(&http, format!("{refusing}/me"), &aged).await;
    assert_eq!(me.status(), 401);

    // Zero: every JWT is too old, so every session is confirmed (with an
    // authority), or refused (without).
    issuer.reset_counts();
    let always = app(SessionLayer::stytch(&project_with_secret(&issuer)).with_max_token_age(Duration::ZERO)).await?;
    assert_eq!(bearer(&http, format!("{always}/me"), &young).await.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 1);
    let never = app(SessionLayer::stytch(&project(&issuer)).with_max_token_age(Duration::ZERO)).await?;
    assert_eq!(bearer(&http, format!("{never}/me"), &young).await.status(), 401);
    Ok(())
}

// ------------------------------------------------------------------ issuers

#[tokio::test]
async fn the_projects_issuers() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = client();
    let session = issuer.create_session("user-issuers", vec![DevFactor::password()]);
    let named = |iss: &str| jwt_builder(&issuer, &session).issuer(iss).mint();

    // Without an authority: `stytch.com/{project_id}` and the API domain
    // (`https://test.stytch.com` for a test project), plus any additional issuer.
    let local =
        app(SessionLayer::stytch(&project(&issuer)).with_additional_issuer("https://login.example.test")).await?;
    for iss in [issuer.stytch_issuer().as_str(), "https://test.stytch.com", "https://login.example.test"] {
        assert_eq!(bearer(&http, format!("{local}/me"), &named(iss)).await.status(), 200, "{iss}");
    }
    for iss in
        ["https://api.stytch.com", "https://evil.example", "https://test.stytch.com/", issuer.base_url().as_str()]
    {
        assert_eq!(bearer(&http, format!("{local}/me"), &named(iss)).await.status(), 401, "{iss}");
    }
    assert_eq!(authenticate_calls(&issuer), 0);

    // With the project's authority, a JWT naming the project's API base URL (here
    // the dev issuer's) is confirmed with the JWT itself.
    let remote = app(SessionLayer::stytch(&project_with_secret(&issuer))).await?;
    let me = bearer(&http, format!("{remote}/me"), &named(&issuer.base_url())).await;
    assert_eq!(me.status(), 200);
    assert_eq!(authenticate_calls(&issuer), 1);
    assert_eq!(bearer(&http, format!("{remote}/me"), &named("https://evil.example")).await.status(), 401);
    assert_eq!(authenticate_calls(&issuer), 1, "an unknown issuer reached the issuer");
    Ok(())
}

// ------------------------------------------------------------------ the claim profile

/// Roles from the custom claim `team` (`team:<name>`), session id from Stytch's
/// session claim, nothing else.
struct Teams;

impl ClaimProfile for Teams {
    fn session(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
        let team = claims.take_string("team")?;
        let id = claims.other.get("https://stytch.com/session").and_then(|s| s.get("id")).cloned();
        let mut builder = claims.session_builder();
        if let Some(Value::String(id)) = id {
            builder = builder.session_id(id);
        }
        if let Some(team) = team {
            builder = builder.role(format!("team:{team}"));
        }
        Ok(builder.build())
    }
}

/// Sets custom claims on a live session, through Stytch's API as an app would.
async fn set_custom_claims(issuer: &DevIssuer, session: &DevSession, claims: Value) -> TestResultOf<Value> {
    let response = client()
        .post(format!("{}/v1/sessions/authenticate", issuer.base_url()))
        .basic_auth(issuer.project_id(), Some(issuer.secret()))
        .json(&json!({"session_token": session.session_token, "session_custom_claims": claims}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    Ok(response.json().await?)
}

#[tokio::test]
async fn the_layers_profile_shapes_the_stytch_authoritys_sessions() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let base = app(SessionLayer::stytch(&project_with_secret(&issuer)).with_profile(Teams)).await?;
    let http = client();
    let session = issuer.create_session("user-teams", vec![DevFactor::password()]);
    let answer = set_custom_claims(&issuer, &session, json!({"team": "ops"})).await?;
    let jwt = answer["session_jwt"].as_str().ok_or("no session_jwt")?.to_owned();
    let calls = authenticate_calls(&issuer);

    let roles = |body: &Value| body["roles"].clone();
    // Locally verified.
    let me: Value = bearer(&http, format!("{base}/me"), &jwt).await.json().await?;
    assert_eq!(roles(&me), json!(["team:ops"]));
    // Confirmed on a fresh route.
    let transfer = bearer(&http, format!("{base}/transfer"), &jwt).await;
    assert_eq!(transfer.status(), 200);
    assert_eq!(roles(&transfer.json().await?), json!(["team:ops"]));
    // From the opaque session token.
    let opaque = with_cookies(&http, format!("{base}/me"), &format!("{TOKEN_COOKIE}={}", session.session_token)).await;
    assert_eq!(opaque.status(), 200);
    let opaque: Value = opaque.json().await?;
    assert_eq!((roles(&opaque), &opaque["opaque"]), (json!(["team:ops"]), &json!(true)));
    // From a lapsed JWT confirmed remotely.
    let expired = jwt_builder(&issuer, &session)
        .custom_claim("team", json!("ops"))
        .issued_at(SystemTime::now() - mins(10))
        .mint();
    let lapsed: Value = bearer(&http, format!("{base}/me"), &expired).await.json().await?;
    assert_eq!(roles(&lapsed), json!(["team:ops"]));
    assert_eq!(authenticate_calls(&issuer), calls + 3, "fresh route, opaque token, lapsed JWT");

    // The profile's word is final: a team the issuer now reports changes the role.
    set_custom_claims(&issuer, &session, json!({"team": "sales"})).await?;
    let transfer: Value = bearer(&http, format!("{base}/transfer"), &jwt).await.json().await?;
    assert_eq!(roles(&transfer), json!(["team:sales"]));
    Ok(())
}

/// Roles from the claim `team` of an introspection answer (or a token).
struct OidcTeams;

impl ClaimProfile for OidcTeams {
    fn session(&self, mut claims: VerifiedClaims) -> Result<Session, AuthError> {
        let team =
            claims.take_string("team")?.ok_or_else(|| AuthError::with_detail(AuthErrorKind::MissingClaim, "team"))?;
        Ok(claims.session_builder().role(format!("team:{team}")).build())
    }
}

#[tokio::test]
async fn the_layers_profile_shapes_introspection_answers() -> TestResult {
    let issuer = DevIssuer::start().await?;
    let http = client();
    let mut extra = Map::new();
    extra.insert("team".into(), json!("ops"));
    let spec = OpaqueTokenSpec { audience: Some(DEFAULT_AUDIENCE.into()), extra, ..OpaqueTokenSpec::default() };
    let token = issuer.issue_opaque_access_token(spec.clone());
    let without_team = issuer.issue_opaque_access_token(OpaqueTokenSpec { extra: Map::new(), ..spec });

    let layer = SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE)
        .with_profile(OidcTeams)
        .with_authority(introspection(&issuer));
    let base = app(layer).await?;
    for path in ["/me", "/transfer"] {
        let response = bearer(&http, format!("{base}{path}"), &token).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await?;
        assert_eq!((&body["roles"], &body["opaque"]), (&json!(["team:ops"]), &json!(true)), "{path}");
    }
    // The profile's refusal counts too.
    assert_eq!(bearer(&http, format!("{base}/me"), &without_team).await.status(), 401);

    // An authority given its own profile keeps it.
    let own = introspection(&issuer).with_profile(OidcProfile::new());
    let base =
        app(SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE).with_profile(OidcTeams).with_authority(own)).await?;
    let body: Value = bearer(&http, format!("{base}/me"), &without_team).await.json().await?;
    assert_eq!(body["roles"], json!([]));
    Ok(())
}
