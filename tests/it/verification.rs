//! Verification rules, attacks, the session model, the extractors and secret hygiene,
//! for both dialects (Stytch session JWTs and RFC 9068 access tokens), against the dev
//! issuer and an axum app over real HTTP.
#![allow(clippy::too_many_lines)]

/// Times a session carries, end to end and on the synchronous API.
mod times;

use crate::common::{hmac_sha256, project, serve};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tower_stepup::{
    AuthState, ConfigError, KeySource, OidcProfile, Session, SessionLayer, SessionLayerBuilder, SessionRejection,
    StytchProject, TypPolicy, DEFAULT_JWT_COOKIE,
};
use tower_stepup_dev_issuer::{DevAlg, DevFactor, DevIssuer, DevIssuerConfig, DEFAULT_AUDIENCE, DEFAULT_MEMBER_ID};

// ------------------------------------------------------------------ harness

async fn start_issuer() -> DevIssuer {
    // Every algorithm has its key from the start, so the layer's first JWKS fetch
    // already holds them all (no unknown-kid refresh needed).
    DevIssuer::start_with(DevIssuerConfig::default().with_algs(&DevAlg::ALL)).await.expect("dev issuer starts")
}

fn secs(at: Option<SystemTime>) -> Option<u64> {
    at.map(|t| t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs())
}

/// The AuthState as text: `anonymous`, `ok:<sub>`, or `<Kind>` / `<Kind>: <detail>`.
fn state_text(state: &AuthState) -> String {
    match state {
        AuthState::Anonymous => "anonymous".to_owned(),
        AuthState::Authenticated(session) => format!("ok:{}", session.subject()),
        AuthState::Invalid(error) => match error.detail() {
            Some(detail) => format!("{:?}: {detail}", error.kind()),
            None => format!("{:?}", error.kind()),
        },
    }
}

#[derive(Debug, Deserialize)]
struct Custom {
    plan: String,
    tenant: Tenant,
}

#[derive(Debug, Deserialize)]
struct Tenant {
    id: u32,
}

async fn session_json(session: Session) -> Json<Value> {
    let factors: Vec<Value> = session
        .factors()
        .iter()
        .map(|f| {
            json!({
                "kind": f.kind().as_str(),
                "type": f.kind().as_str(),
                "delivery_method": f.delivery_method(),
                "last_authenticated_at": secs(f.last_authenticated_at()),
                "details": f.details(),
            })
        })
        .collect();
    let custom = match session.claims::<Custom>() {
        Ok(custom) => json!({ "plan": custom.plan, "tenant": custom.tenant.id }),
        Err(error) => json!({ "error": error.to_string() }),
    };
    Json(json!({
        "sub": session.subject(),
        "iss": session.issuer(),
        "sid": session.session_id(),
        "aud": session.audience(),
        "iat": secs(session.issued_at()),
        "exp": secs(session.expires_at()),
        "session_expires_at": secs(session.session_expires_at()),
        "started_at": secs(session.started_at()),
        "last_accessed_at": secs(session.last_accessed_at()),
        "factors": factors,
        "acr": session.acr(),
        "amr": session.amr(),
        "auth_time": secs(session.auth_time()),
        "roles": session.roles(),
        "scopes": session.scopes(),
        "organization": session.organization().map(|o| json!({ "id": o.id, "slug": o.slug })),
        "client_id": session.client_id(),
        "claims": session.raw_claims(),
        "custom": custom,
        "token_kind": format!("{:?}", session.token_kind()),
    }))
}

/// Every `Debug`/`Display` a handler can see, for the secret-hygiene test.
async fn debug_text(state: AuthState, result: Result<Session, SessionRejection>) -> String {
    let mut out = format!("{state:?}\n{result:?}\n");
    if let AuthState::Invalid(error) = &state {
        let _ = writeln!(out, "{error}\n{error:?}");
    }
    match &result {
        Ok(session) => {
            let _ = writeln!(out, "{session:?}");
        }
        Err(rejection) => {
            let _ = writeln!(out, "{rejection}\n{:?}\n{:?}", rejection.rejection(), rejection.error());
        }
    }
    out
}

fn routes() -> Router {
    Router::new()
        .route("/state", get(|state: AuthState| async move { state_text(&state) }))
        .route("/session", get(session_json))
        .route("/me", get(|s: Session| async move { format!("ok:{}", s.subject()) }))
        .route(
            "/maybe",
            get(|s: Option<Session>| async move {
                match s {
                    Some(s) => format!("some:{}", s.subject()),
                    None => "none".to_owned(),
                }
            }),
        )
        .route("/debug", get(debug_text))
}

struct Harness {
    base: String,
    client: reqwest::Client,
}

impl Harness {
    async fn start(layer: SessionLayer) -> Self {
        let base = serve(routes().layer(layer)).await;
        Self { base, client: reqwest::Client::new() }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    /// The AuthState text for a bearer token.
    async fn state(&self, token: &str) -> String {
        self.text(self.get("/state").bearer_auth(token)).await
    }

    async fn text(&self, request: reqwest::RequestBuilder) -> String {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 200, "/state always answers 200");
        response.text().await.expect("body")
    }

    async fn session(&self, token: &str) -> Value {
        let response = self.get("/session").bearer_auth(token).send().await.expect("request");
        assert_eq!(response.status(), 200, "session route");
        response.json().await.expect("json")
    }
}

/// Compares a state text with an expectation: an expectation with `:` must match
/// exactly, otherwise only the kind (`ok`, `anonymous`, `Expired`, …) is compared.
fn matches(got: &str, want: &str) -> bool {
    if want.contains(':') {
        got == want
    } else {
        got.split(':').next() == Some(want)
    }
}

/// Runs every case and reports all mismatches at once.
async fn expect_all(harness: &Harness, label: &str, cases: Vec<(&str, String, &str)>) {
    let mut failures = Vec::new();
    for (name, token, want) in &cases {
        let got = harness.state(token).await;
        if !matches(&got, want) {
            failures.push(format!("{label} / {name}: expected {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Stytch,
    Oidc,
}

const DIALECTS: [Dialect; 2] = [Dialect::Stytch, Dialect::Oidc];

impl Dialect {
    fn audience(self, issuer: &DevIssuer) -> String {
        match self {
            Dialect::Stytch => issuer.project_id().to_owned(),
            Dialect::Oidc => DEFAULT_AUDIENCE.to_owned(),
        }
    }

    fn iss(self, issuer: &DevIssuer) -> String {
        match self {
            Dialect::Stytch => issuer.stytch_issuer(),
            Dialect::Oidc => issuer.issuer(),
        }
    }

    /// The preset for the dialect: the Stytch project preset, or OIDC discovery.
    fn builder(self, issuer: &DevIssuer) -> SessionLayerBuilder {
        match self {
            Dialect::Stytch => SessionLayer::stytch(&project(issuer)),
            Dialect::Oidc => SessionLayer::oidc(issuer.issuer(), DEFAULT_AUDIENCE),
        }
    }

    async fn harness(self, issuer: &DevIssuer) -> Harness {
        Harness::start(self.builder(issuer).build().await.expect("layer builds")).await
    }
}

/// What a test changes in a minted token; applied to either dialect's builder.
#[derive(Default, Clone)]
struct Spec {
    alg: Option<DevAlg>,
    subject: Option<String>,
    issued_at: Option<SystemTime>,
    lifetime: Option<Duration>,
    not_before: Option<SystemTime>,
    iss: Option<String>,
    aud: Option<String>,
    /// `Some(None)` would be an `Option<Option<_>>`: whether to set it, and to what.
    set_typ: bool,
    typ: Option<String>,
    kid: Option<String>,
    custom: Vec<(String, Value)>,
}

impl Spec {
    fn new() -> Self {
        Self::default()
    }
    fn alg(mut self, alg: DevAlg) -> Self {
        self.alg = Some(alg);
        self
    }
    fn subject(mut self, subject: &str) -> Self {
        self.subject = Some(subject.to_owned());
        self
    }
    fn issued_at(mut self, at: SystemTime) -> Self {
        self.issued_at = Some(at);
        self
    }
    fn lifetime(mut self, secs: u64) -> Self {
        self.lifetime = Some(Duration::from_secs(secs));
        self
    }
    fn not_before(mut self, at: SystemTime) -> Self {
        self.not_before = Some(at);
        self
    }
    fn iss(mut self, iss: &str) -> Self {
        self.iss = Some(iss.to_owned());
        self
    }
    fn aud(mut self, aud: &str) -> Self {
        self.aud = Some(aud.to_owned());
        self
    }
    fn typ(mut self, typ: Option<&str>) -> Self {
        self.set_typ = true;
        self.typ = typ.map(str::to_owned);
        self
    }
    fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }
    fn claim(mut self, name: &str, value: Value) -> Self {
        self.custom.push((name.to_owned(), value));
        self
    }

    fn mint(&self, issuer: &DevIssuer, dialect: Dialect) -> String {
        macro_rules! apply {
            ($builder:expr) => {{
                let mut b = $builder;
                if let Some(alg) = self.alg {
                    b = b.alg(alg);
                }
                if let Some(subject) = &self.subject {
                    b = b.subject(subject.clone());
                }
                if let Some(at) = self.issued_at {
                    b = b.issued_at(at);
                }
                if let Some(lifetime) = self.lifetime {
                    b = b.lifetime(lifetime);
                }
                if let Some(at) = self.not_before {
                    b = b.not_before(at);
                }
                if let Some(iss) = &self.iss {
                    b = b.issuer(iss.clone());
                }
                if let Some(aud) = &self.aud {
                    b = b.audience(aud.clone());
                }
                if self.set_typ {
                    b = b.typ(self.typ.as_deref());
                }
                if let Some(kid) = &self.kid {
                    b = b.kid(kid.clone());
                }
                for (name, value) in &self.custom {
                    b = b.custom_claim(name.clone(), value.clone());
                }
                b.mint()
            }};
        }
        match dialect {
            Dialect::Stytch => apply!(issuer.stytch_session()),
            Dialect::Oidc => apply!(issuer.access_token()),
        }
    }
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn ahead(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

// ------------------------------------------------------------------ token surgery

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segment_json(segment: &str) -> Map<String, Value> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON object segment")
}

/// (header, claims, signature segment) of a compact JWT.
fn split(token: &str) -> (Map<String, Value>, Map<String, Value>, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    (segment_json(parts[0]), segment_json(parts[1]), parts[2].to_owned())
}

fn signature(token: &str) -> String {
    split(token).2
}

/// Re-signs `token` with the key that signed it, after editing header and claims.
fn resign(
    issuer: &DevIssuer,
    token: &str,
    edit: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>),
) -> String {
    let (mut header, mut claims, _) = split(token);
    let kid = header["kid"].as_str().expect("kid").to_owned();
    edit(&mut header, &mut claims);
    issuer.sign_raw(Value::Object(header), &Value::Object(claims), &kid)
}

/// A compact JWT from raw parts (no signing).
fn assemble(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
}

/// The classic key-confusion attack: HS256 keyed with the RSA public key bytes.
fn hs256_with_public_key(issuer: &DevIssuer, token: &str) -> String {
    let (mut header, claims, _) = split(token);
    let kid = header["kid"].as_str().expect("kid").to_owned();
    let der = issuer.public_key_der(&kid).expect("public key");
    header.insert("alg".into(), json!("HS256"));
    let message = format!(
        "{}.{}",
        b64(Value::Object(header).to_string().as_bytes()),
        b64(Value::Object(claims).to_string().as_bytes())
    );
    let mac = hmac_sha256(&der, message.as_bytes());
    format!("{message}.{}", b64(&mac))
}

// ------------------------------------------------------------------ valid tokens

#[tokio::test]
async fn every_algorithm_verifies_in_both_dialects() {
    let issuer = start_issuer().await;
    for dialect in DIALECTS {
        let harness = dialect.harness(&issuer).await;
        let mut cases = Vec::new();
        for alg in DevAlg::ALL {
            let token = Spec::new().alg(alg).subject(&format!("user-{alg}")).mint(&issuer, dialect);
            assert_eq!(split(&token).0["alg"], json!(alg.as_str()));
            cases.push(("valid", token, "ok"));
        }
        expect_all(&harness, &format!("{dialect:?}"), cases).await;
        // The subject really is the one minted (not just "some ok").
        let token = Spec::new().alg(DevAlg::EdDSA).subject("user-eddsa-check").mint(&issuer, dialect);
        assert_eq!(harness.state(&token).await, "ok:user-eddsa-check");
    }

    // The OIDC dialect also works with an explicit JWKS URL instead of discovery.
    let layer = SessionLayer::builder(KeySource::url(issuer.jwks_url()))
        .with_issuer(issuer.issuer())
        .with_audience(DEFAULT_AUDIENCE)
        .with_typ(TypPolicy::AccessToken)
        .with_profile(OidcProfile::rfc9068())
        .build()
        .await
        .expect("layer");
    let harness = Harness::start(layer).await;
    let cases =
        DevAlg::ALL.iter().map(|alg| ("jwks url", Spec::new().alg(*alg).mint(&issuer, Dialect::Oidc), "ok")).collect();
    expect_all(&harness, "oidc via KeySource::url", cases).await;
}

#[tokio::test]
async fn anonymous_requests_are_anonymous() {
    let issuer = start_issuer().await;
    for dialect in DIALECTS {
        let harness = dialect.harness(&issuer).await;
        assert_eq!(harness.text(harness.get("/state")).await, "anonymous");
    }
}

// ------------------------------------------------------------------ time rules

#[tokio::test]
async fn time_rules_in_both_dialects() {
    let issuer = start_issuer().await;
    for dialect in DIALECTS {
        let harness = dialect.harness(&issuer).await;
        let cases = vec![
            ("fresh", Spec::new().mint(&issuer, dialect), "ok"),
            // exp 5 minutes ago: far beyond the 30 s default leeway.
            ("expired", Spec::new().issued_at(ago(600)).lifetime(300).mint(&issuer, dialect), "Expired"),
            ("expired 90 s ago", Spec::new().issued_at(ago(390)).lifetime(300).mint(&issuer, dialect), "Expired"),
            // exp 10 s ago: inside the leeway.
            ("expired within leeway", Spec::new().issued_at(ago(310)).lifetime(300).mint(&issuer, dialect), "ok"),
            ("nbf in the future", Spec::new().not_before(ahead(300)).mint(&issuer, dialect), "NotYetValid"),
            ("nbf within leeway", Spec::new().not_before(ahead(10)).mint(&issuer, dialect), "ok"),
            (
                "iat in the future",
                Spec::new().issued_at(ahead(300)).not_before(ago(1)).mint(&issuer, dialect),
                "IssuedInFuture",
            ),
            ("iat within leeway", Spec::new().issued_at(ahead(10)).not_before(ago(1)).mint(&issuer, dialect), "ok"),
            (
                "exp not a number",
                Spec::new().claim("exp", json!("tomorrow")).mint(&issuer, dialect),
                "InvalidClaim: exp",
            ),
            ("nbf negative", Spec::new().claim("nbf", json!(-5)).mint(&issuer, dialect), "InvalidClaim: nbf"),
            ("iat a string", Spec::new().claim("iat", json!("now")).mint(&issuer, dialect), "InvalidClaim: iat"),
            // Signed by the issuer but beyond any representable time: refused, never a panic.
            ("exp u64::MAX", Spec::new().claim("exp", json!(u64::MAX)).mint(&issuer, dialect), "InvalidClaim: exp"),
            ("exp 1e300", Spec::new().claim("exp", json!(1e300)).mint(&issuer, dialect), "InvalidClaim: exp"),
            (
                "iat i64::MAX + 1",
                Spec::new().claim("iat", json!(1u64 << 63)).mint(&issuer, dialect),
                "InvalidClaim: iat",
            ),
            // The last accepted date (year 9999): the session cache must cope with it.
            ("exp in the year 9999", Spec::new().claim("exp", json!(253_402_300_799_u64)).mint(&issuer, dialect), "ok"),
            (
                "exp fractional",
                Spec::new()
                    .claim(
                        "exp",
                        json!(
                            f64::from(u32::try_from(secs(Some(ahead(300))).expect("now")).expect("before 2106")) + 0.5
                        ),
                    )
                    .mint(&issuer, dialect),
                "ok",
            ),
        ];
        expect_all(&harness, &format!("{dialect:?}"), cases).await;

        // Leeway is configurable: with none, 10 s past exp is expired.
        let strict =
            Harness::start(dialect.builder(&issuer).with_leeway(Duration::ZERO).build().await.expect("layer")).await;
        let cases = vec![
            ("fresh", Spec::new().mint(&issuer, dialect), "ok"),
            ("10 s past exp", Spec::new().issued_at(ago(310)).lifetime(300).mint(&issuer, dialect), "Expired"),
            ("nbf in 10 s", Spec::new().not_before(ahead(10)).mint(&issuer, dialect), "NotYetValid"),
        ];
        expect_all(&strict, &format!("{dialect:?} leeway 0"), cases).await;

        // Maximum token age, whatever exp says.
        let aged = Harness::start(
            dialect.builder(&issuer).with_max_token_age(Duration::from_secs(120)).build().await.expect("layer"),
        )
        .await;
        let cases = vec![
            ("fresh", Spec::new().mint(&issuer, dialect), "ok"),
            (
                "issued 10 min ago, valid 1 h",
                Spec::new().issued_at(ago(600)).lifetime(3600).mint(&issuer, dialect),
                "TooOld",
            ),
            ("issued 60 s ago", Spec::new().issued_at(ago(60)).lifetime(3600).mint(&issuer, dialect), "ok"),
        ];
        expect_all(&aged, &format!("{dialect:?} max age"), cases).await;
        // A maximum age needs iat.
        let token = resign(&issuer, &Spec::new().mint(&issuer, dialect), |_, c| {
            c.remove("iat");
        });
        assert_eq!(aged.state(&token).await, "MissingClaim: iat");
    }

    let too_lax = Dialect::Stytch.builder(&issuer).with_leeway(Duration::from_secs(301)).build().await;
    assert!(matches!(too_lax, Err(ConfigError::Invalid { .. })), "leeway above 5 minutes is refused");
}

// ------------------------------------------------------------------ iss / aud / required claims

#[tokio::test]
async fn issuer_and_audience_rules_in_both_dialects() {
    let issuer = start_issuer().await;
    for dialect in DIALECTS {
        let harness = dialect.harness(&issuer).await;
        let ours = dialect.audience(&issuer);
        let cases = vec![
            ("own issuer", Spec::new().iss(&dialect.iss(&issuer)).mint(&issuer, dialect), "ok"),
            ("wrong iss", Spec::new().iss("https://evil.example").mint(&issuer, dialect), "WrongIssuer"),
            (
                "iss with trailing slash",
                Spec::new().iss(&format!("{}/", dialect.iss(&issuer))).mint(&issuer, dialect),
                "WrongIssuer",
            ),
            (
                "iss of the other dialect",
                Spec::new().iss(&Dialect::other(dialect).iss(&issuer)).mint(&issuer, dialect),
                "WrongIssuer",
            ),
            ("iss empty", Spec::new().claim("iss", json!("")).mint(&issuer, dialect), "InvalidClaim: iss"),
            ("iss not a string", Spec::new().claim("iss", json!(42)).mint(&issuer, dialect), "InvalidClaim: iss"),
            ("wrong aud", Spec::new().aud("someone-else").mint(&issuer, dialect), "WrongAudience"),
            (
                "aud array with ours",
                Spec::new().claim("aud", json!(["someone-else", ours])).mint(&issuer, dialect),
                "ok",
            ),
            (
                "aud array without ours",
                Spec::new().claim("aud", json!(["a", "b"])).mint(&issuer, dialect),
                "WrongAudience",
            ),
            ("aud string", Spec::new().claim("aud", json!(ours)).mint(&issuer, dialect), "ok"),
            ("aud empty array", Spec::new().claim("aud", json!([])).mint(&issuer, dialect), "MissingClaim: aud"),
            ("aud a number", Spec::new().claim("aud", json!(7)).mint(&issuer, dialect), "InvalidClaim: aud"),
            ("sub not a string", Spec::new().claim("sub", json!(["x"])).mint(&issuer, dialect), "InvalidClaim: sub"),
        ];
        expect_all(&harness, &format!("{dialect:?}"), cases).await;

        let base = Spec::new().mint(&issuer, dialect);
        let mut cases = Vec::new();
        for claim in ["sub", "exp", "iss", "aud"] {
            let token = resign(&issuer, &base, |_, c| {
                c.remove(claim);
            });
            cases.push((claim, token, format!("MissingClaim: {claim}")));
        }
        let cases = cases.iter().map(|(n, t, w)| (*n, t.clone(), w.as_str())).collect();
        expect_all(&harness, &format!("{dialect:?} missing"), cases).await;
    }
}

impl Dialect {
    fn other(self) -> Dialect {
        match self {
            Dialect::Stytch => Dialect::Oidc,
            Dialect::Oidc => Dialect::Stytch,
        }
    }
}

#[tokio::test]
async fn several_accepted_issuers() {
    let issuer = start_issuer().await;
    // Stytch with a custom domain: `stytch.com/{project}` and the domain are both issuers.
    let project = StytchProject::consumer(issuer.project_id())
        .expect("project")
        .with_custom_domain(format!("{}/", issuer.base_url()));
    let harness = Harness::start(SessionLayer::stytch(&project).build().await.expect("layer")).await;
    let cases = vec![
        ("stytch.com issuer", Spec::new().mint(&issuer, Dialect::Stytch), "ok"),
        ("custom domain issuer", Spec::new().iss(&issuer.base_url()).mint(&issuer, Dialect::Stytch), "ok"),
        (
            "another project",
            Spec::new().iss("stytch.com/project-test-other").mint(&issuer, Dialect::Stytch),
            "WrongIssuer",
        ),
        ("another domain", Spec::new().iss("https://login.evil.example").mint(&issuer, Dialect::Stytch), "WrongIssuer"),
    ];
    expect_all(&harness, "stytch custom domain", cases).await;

    // OIDC: several issuers and audiences on the builder.
    let layer = SessionLayer::builder(KeySource::url(issuer.jwks_url()))
        .with_issuer(issuer.issuer())
        .with_issuer("https://second.example")
        .with_audience(DEFAULT_AUDIENCE)
        .with_audience("api://second")
        .with_typ(TypPolicy::AccessToken)
        .with_profile(OidcProfile::rfc9068())
        .build()
        .await
        .expect("layer");
    let harness = Harness::start(layer).await;
    let cases = vec![
        ("first issuer", Spec::new().mint(&issuer, Dialect::Oidc), "ok"),
        ("second issuer", Spec::new().iss("https://second.example").mint(&issuer, Dialect::Oidc), "ok"),
        ("second audience", Spec::new().aud("api://second").mint(&issuer, Dialect::Oidc), "ok"),
        ("third issuer", Spec::new().iss("https://third.example").mint(&issuer, Dialect::Oidc), "WrongIssuer"),
        ("third audience", Spec::new().aud("api://third").mint(&issuer, Dialect::Oidc), "WrongAudience"),
    ];
    expect_all(&harness, "oidc several", cases).await;

    // Building without issuer or audience is refused.
    let no_issuer = SessionLayer::builder(KeySource::url(issuer.jwks_url())).with_audience("a").build().await;
    assert!(matches!(no_issuer, Err(ConfigError::Missing("issuer"))));
    let no_audience = SessionLayer::builder(KeySource::url(issuer.jwks_url())).with_issuer("i").build().await;
    assert!(matches!(no_audience, Err(ConfigError::Missing("audience"))));

    // A Stytch project's unusable URL is reported by the preset's `build()`.
    let insecure = crate::common::project(&issuer).with_base_url("http://stytch.example.com");
    let error = SessionLayer::stytch(&insecure).with_lazy_start().build().await;
    assert!(matches!(error, Err(ConfigError::Invalid { name: "Stytch base URL", .. })), "{error:?}");
    let insecure = crate::common::project(&issuer).with_custom_domain("ftp://login.example.com");
    let error = SessionLayer::stytch(&insecure).with_lazy_start().build().await;
    assert!(matches!(error, Err(ConfigError::Invalid { name: "Stytch custom domain", .. })), "{error:?}");
}

// ------------------------------------------------------------------ typ and RFC 9068 claims

#[tokio::test]
async fn typ_policy() {
    let issuer = start_issuer().await;
    let stytch = Dialect::Stytch.harness(&issuer).await;
    let typ = |t: Option<&str>| Spec::new().typ(t).mint(&issuer, Dialect::Stytch);
    let cases = vec![
        ("JWT", typ(Some("JWT")), "ok"),
        ("jwt", typ(Some("jwt")), "ok"),
        ("absent", typ(None), "ok"),
        ("application/jwt", typ(Some("application/jwt")), "ok"),
        ("at+jwt", typ(Some("at+jwt")), "InvalidType"),
        ("application/at+jwt", typ(Some("application/at+jwt")), "InvalidType"),
        ("id token", typ(Some("id+jwt")), "InvalidType"),
        ("empty", typ(Some("")), "InvalidType"),
        // Non-ASCII typ whose 12th byte falls inside a character: must not panic.
        ("non-ASCII", typ(Some("a\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}")), "InvalidType"),
        ("non-ASCII application/", typ(Some("applicatio\u{e9}/jwt")), "InvalidType"),
    ];
    expect_all(&stytch, "stytch (JWT)", cases).await;

    let oidc = Dialect::Oidc.harness(&issuer).await;
    let typ = |t: Option<&str>| Spec::new().typ(t).mint(&issuer, Dialect::Oidc);
    let cases = vec![
        ("at+jwt", typ(Some("at+jwt")), "ok"),
        ("application/at+jwt", typ(Some("application/at+jwt")), "ok"),
        ("AT+JWT", typ(Some("AT+JWT")), "ok"),
        ("JWT", typ(Some("JWT")), "InvalidType"),
        ("absent", typ(None), "InvalidType"),
        ("application/jwt", typ(Some("application/jwt")), "InvalidType"),
        ("non-ASCII", typ(Some("a\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}at+jwt")), "InvalidType"),
    ];
    expect_all(&oidc, "oidc (at+jwt)", cases).await;

    let any =
        Harness::start(Dialect::Oidc.builder(&issuer).with_typ(TypPolicy::Any).build().await.expect("layer")).await;
    let cases = vec![
        ("at+jwt", typ(Some("at+jwt")), "ok"),
        ("JWT", typ(Some("JWT")), "ok"),
        ("absent", typ(None), "ok"),
        ("odd", typ(Some("secevent+jwt")), "ok"),
        ("non-ASCII", typ(Some("a\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}")), "ok"),
    ];
    expect_all(&any, "oidc (Any)", cases).await;
}

#[tokio::test]
async fn rfc9068_required_claims() {
    let issuer = start_issuer().await;
    let strict = Dialect::Oidc.harness(&issuer).await;
    let lenient =
        Harness::start(Dialect::Oidc.builder(&issuer).with_profile(OidcProfile::new()).build().await.expect("layer"))
            .await;
    let base = Spec::new().mint(&issuer, Dialect::Oidc);
    for claim in ["client_id", "jti", "iat"] {
        let token = resign(&issuer, &base, |_, c| {
            c.remove(claim);
        });
        assert_eq!(strict.state(&token).await, format!("MissingClaim: {claim}"), "rfc9068 requires {claim}");
        assert!(lenient.state(&token).await.starts_with("ok:"), "the lenient profile does not require {claim}");
    }
    let wrong_type = Spec::new().claim("client_id", json!(12)).mint(&issuer, Dialect::Oidc);
    assert_eq!(strict.state(&wrong_type).await, "InvalidClaim: client_id");
    let wrong_jti = Spec::new().claim("jti", json!({})).mint(&issuer, Dialect::Oidc);
    assert_eq!(strict.state(&wrong_jti).await, "InvalidClaim: jti");
}

// ------------------------------------------------------------------ attacks on the token

#[tokio::test]
async fn token_attacks_in_both_dialects() {
    let issuer = start_issuer().await;
    let rs_kid = issuer.current_kid(DevAlg::RS256);
    let ps_kid = issuer.current_kid(DevAlg::PS256);
    let es_kid = issuer.current_kid(DevAlg::ES256);
    // A key the layers never see: the attacker's own.
    let attacker_kid = issuer.rotate(DevAlg::ES256);
    assert!(issuer.remove_key(&attacker_kid));
    for dialect in DIALECTS {
        let harness = dialect.harness(&issuer).await;
        let token = Spec::new().mint(&issuer, dialect);
        let (header, claims, sig) = split(&token);
        let set = |name: &str, value: Value| {
            let mut h = header.clone();
            h.insert(name.to_owned(), value);
            Value::Object(h)
        };
        let claims_v = Value::Object(claims.clone());
        // A different, validly signed token: its signature does not fit our payload.
        let other = Spec::new().subject("someone-else").mint(&issuer, dialect);
        let mut tampered = claims.clone();
        tampered.insert("sub".into(), json!("admin"));
        let mut flipped = sig.clone();
        let last = flipped.pop().expect("non-empty signature");
        flipped.push(if last == 'A' { 'B' } else { 'A' });

        let cases = vec![
            (
                "alg none, empty signature",
                assemble(&set("alg", json!("none")), &claims_v, ""),
                "OpaqueTokenUnsupported",
            ),
            ("alg none, any signature", assemble(&set("alg", json!("none")), &claims_v, &sig), "UnsupportedAlgorithm"),
            ("alg None", assemble(&set("alg", json!("None")), &claims_v, &sig), "UnsupportedAlgorithm"),
            (
                "alg missing",
                {
                    let mut h = header.clone();
                    h.remove("alg");
                    assemble(&Value::Object(h), &claims_v, &sig)
                },
                "Malformed",
            ),
            ("HS256 keyed with the public key", hs256_with_public_key(&issuer, &token), "UnsupportedAlgorithm"),
            ("HS512", issuer.sign_raw(set("alg", json!("HS512")), &claims_v, &rs_kid), "UnsupportedAlgorithm"),
            (
                "RS384 header on an RS256 key",
                issuer.sign_raw(set("alg", json!("RS384")), &claims_v, &rs_kid),
                "AlgorithmMismatch",
            ),
            (
                "PS256 header on an RS256 key",
                issuer.sign_raw(set("alg", json!("PS256")), &claims_v, &rs_kid),
                "AlgorithmMismatch",
            ),
            (
                "RS256 header on a PS256 key",
                {
                    let mut h = header.clone();
                    h.insert("kid".into(), json!(ps_kid));
                    issuer.sign_raw(Value::Object(h), &claims_v, &ps_kid)
                },
                "AlgorithmMismatch",
            ),
            (
                "ES256 header on an RSA kid",
                issuer.sign_raw(set("alg", json!("ES256")), &claims_v, &rs_kid),
                "AlgorithmMismatch",
            ),
            (
                "ES384 header on an ES256 key",
                {
                    let mut h = header.clone();
                    h.insert("alg".into(), json!("ES384"));
                    h.insert("kid".into(), json!(es_kid));
                    issuer.sign_raw(Value::Object(h), &claims_v, &es_kid)
                },
                "AlgorithmMismatch",
            ),
            (
                "EdDSA header on an ES256 key",
                {
                    let mut h = header.clone();
                    h.insert("alg".into(), json!("EdDSA"));
                    h.insert("kid".into(), json!(es_kid));
                    issuer.sign_raw(Value::Object(h), &claims_v, &es_kid)
                },
                "AlgorithmMismatch",
            ),
            (
                "embedded jwk",
                issuer.sign_raw(set("jwk", json!({"kty": "oct", "k": "c2VjcmV0"})), &claims_v, &rs_kid),
                "ForbiddenHeader",
            ),
            (
                "jku",
                issuer.sign_raw(set("jku", json!("https://evil.example/jwks.json")), &claims_v, &rs_kid),
                "ForbiddenHeader",
            ),
            (
                "x5u",
                issuer.sign_raw(set("x5u", json!("https://evil.example/cert.pem")), &claims_v, &rs_kid),
                "ForbiddenHeader",
            ),
            ("crit", issuer.sign_raw(set("crit", json!(["exp"])), &claims_v, &rs_kid), "ForbiddenHeader"),
            ("unknown kid", Spec::new().kid("kid-that-was-never-served").mint(&issuer, dialect), "UnknownKey"),
            (
                "no kid",
                {
                    let mut h = header.clone();
                    h.remove("kid");
                    issuer.sign_raw(Value::Object(h), &claims_v, &rs_kid)
                },
                "UnknownKey",
            ),
            (
                "signed by another key, kid of a served one",
                {
                    let mut h = header.clone();
                    h.insert("alg".into(), json!("ES256"));
                    h.insert("kid".into(), json!(es_kid));
                    issuer.sign_raw(Value::Object(h), &claims_v, &attacker_kid)
                },
                "InvalidSignature",
            ),
            (
                "tampered payload",
                assemble(&Value::Object(header.clone()), &Value::Object(tampered), &sig),
                "InvalidSignature",
            ),
            (
                "signature of another token",
                format!("{}.{}", token.rsplit_once('.').expect("dot").0, signature(&other)),
                "InvalidSignature",
            ),
            ("flipped signature", format!("{}.{flipped}", token.rsplit_once('.').expect("dot").0), "InvalidSignature"),
            (
                "truncated signature",
                format!("{}.{}", token.rsplit_once('.').expect("dot").0, &sig[..sig.len() / 2]),
                "InvalidSignature",
            ),
            ("garbage segments", "abc.def.ghi".to_owned(), "Malformed"),
            ("non-base64 header length", "a.eyJ9.c2ln".to_owned(), "Malformed"),
            ("header is a JSON array", assemble(&json!([1, 2]), &claims_v, &sig), "Malformed"),
            (
                "payload not an object (signed)",
                issuer.sign_raw(Value::Object(header.clone()), &json!("not an object"), &rs_kid),
                "Malformed",
            ),
            ("four segments", format!("{token}.extra"), "OpaqueTokenUnsupported"),
            ("two segments", token.rsplit_once('.').expect("dot").0.to_owned(), "OpaqueTokenUnsupported"),
            ("base64 alphabet mix", "ab+c.de/f.gh".to_owned(), "OpaqueTokenUnsupported"),
            ("the real token still works", token.clone(), "ok"),
        ];
        expect_all(&harness, &format!("{dialect:?}"), cases).await;
    }
}

// ------------------------------------------------------------------ attacks on the header

#[tokio::test]
async fn credential_header_rules() {
    let issuer = start_issuer().await;
    for dialect in DIALECTS {
        let harness = dialect.harness(&issuer).await;
        let token = Spec::new().subject("header-user").mint(&issuer, dialect);
        let with_auth = |values: &[&[u8]]| {
            let mut request = harness.get("/state");
            for value in values {
                request = request.header(AUTHORIZATION, HeaderValue::from_bytes(value).expect("header bytes"));
            }
            request
        };
        let bearer = format!("Bearer {token}");
        let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
            ("Bearer", vec![bearer.clone().into_bytes()], "ok:header-user"),
            ("lower-case scheme", vec![format!("bearer {token}").into_bytes()], "ok:header-user"),
            ("upper-case scheme, several spaces", vec![format!("BEARER   {token}").into_bytes()], "ok:header-user"),
            (
                "two Authorization headers",
                vec![bearer.clone().into_bytes(), bearer.clone().into_bytes()],
                "MultipleAuthorizationHeaders",
            ),
            (
                "Bearer and Basic",
                vec![bearer.clone().into_bytes(), b"Basic dXNlcjpwYXNz".to_vec()],
                "MultipleAuthorizationHeaders",
            ),
            ("bare scheme", vec![b"Bearer".to_vec()], "MalformedHeader"),
            ("scheme and spaces", vec![b"Bearer    ".to_vec()], "MalformedHeader"),
            ("token with a space", vec![format!("Bearer {token} extra").into_bytes()], "InvalidCharacters"),
            ("non-ASCII token", vec!["Bearer t\u{f6}k\u{e9}n.\u{fc}.x".as_bytes().to_vec()], "InvalidCharacters"),
            ("non-ASCII after a JWT", vec![format!("Bearer {token}\u{e9}").into_bytes()], "InvalidCharacters"),
            ("forbidden characters", vec![b"Bearer ab@cd.ef.gh".to_vec()], "InvalidCharacters"),
            ("only padding", vec![b"Bearer ===".to_vec()], "InvalidCharacters"),
            ("other scheme", vec![b"Basic dXNlcjpwYXNz".to_vec()], "anonymous"),
            ("bare token without scheme", vec![token.clone().into_bytes()], "anonymous"),
        ];
        let mut failures = Vec::new();
        for (name, values, want) in &cases {
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let got = harness.text(with_auth(&refs)).await;
            if !matches(&got, want) {
                failures.push(format!("{dialect:?} / {name}: expected {want}, got {got}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));

        // A correctly signed token over 8 KiB is refused before any verification...
        let huge = Spec::new().claim("padding", json!("x".repeat(9 * 1024))).mint(&issuer, dialect);
        assert!(huge.len() > 8 * 1024);
        assert_eq!(harness.state(&huge).await, "TokenTooLarge");
        // ...and so is a huge garbage token.
        assert_eq!(harness.state(&"a".repeat(20 * 1024)).await, "TokenTooLarge");
        // The limit is configurable.
        let roomy =
            Harness::start(dialect.builder(&issuer).with_max_token_len(16 * 1024).build().await.expect("layer")).await;
        assert!(roomy.state(&huge).await.starts_with("ok:"));
        let tight = Harness::start(dialect.builder(&issuer).with_max_token_len(64).build().await.expect("layer")).await;
        assert_eq!(tight.state(&token).await, "TokenTooLarge");
    }
}

// ------------------------------------------------------------------ cookies vs bearer

#[tokio::test]
async fn cookies_and_bearer_precedence() {
    let issuer = start_issuer().await;
    let harness = Dialect::Stytch.harness(&issuer).await;
    let cookie_jwt = Spec::new().subject("cookie-user").mint(&issuer, Dialect::Stytch);
    let bearer_jwt = Spec::new().subject("bearer-user").mint(&issuer, Dialect::Stytch);
    let cookie = format!("theme=dark; stytch_session_jwt={cookie_jwt}");
    let expired = Spec::new().issued_at(ago(900)).mint(&issuer, Dialect::Stytch);

    let state = |request: reqwest::RequestBuilder| harness.text(request);
    assert_eq!(state(harness.get("/state").header(COOKIE, &cookie).bearer_auth(&bearer_jwt)).await, "ok:bearer-user");
    assert_eq!(state(harness.get("/state").header(COOKIE, &cookie)).await, "ok:cookie-user");
    assert_eq!(
        state(harness.get("/state").header(COOKIE, &cookie).header(AUTHORIZATION, "Basic dXNlcjpwYXNz")).await,
        "ok:cookie-user",
        "another scheme falls back to cookies"
    );
    assert_eq!(
        state(harness.get("/state").header(COOKIE, &cookie).bearer_auth(&expired)).await,
        "Expired",
        "a bearer token wins even when it is invalid and the cookie is valid"
    );
    assert_eq!(
        state(harness.get("/state").header(COOKIE, &cookie).header(AUTHORIZATION, "Bearer")).await,
        "MalformedHeader: no token after Bearer",
        "a malformed Bearer header does not fall back to cookies"
    );
    // Two Cookie headers are fine (HTTP/1.1 clients may split them).
    assert_eq!(
        state(harness.get("/state").header(COOKIE, "a=b").header(COOKIE, format!("stytch_session_jwt={cookie_jwt}")))
            .await,
        "ok:cookie-user"
    );
    assert_eq!(
        state(harness.get("/state").header(COOKIE, "stytch_session_jwt=not-a-jwt")).await,
        "Malformed: session JWT cookie is not a JWT"
    );
    assert_eq!(state(harness.get("/state").header(COOKIE, format!("stytch_session_jwt={expired}"))).await, "Expired");
    assert_eq!(state(harness.get("/state").header(COOKIE, "stytch_session_jwt=")).await, "anonymous");
    assert_eq!(state(harness.get("/state").header(COOKIE, "other=1")).await, "anonymous");
    assert_eq!(
        state(harness.get("/state").header(COOKIE, "stytch_session=opaque-token-123")).await,
        "OpaqueTokenUnsupported",
        "an opaque session token without an authority is refused, not ignored"
    );

    // Custom cookie names.
    let custom =
        Harness::start(Dialect::Stytch.builder(&issuer).with_jwt_cookie(Some("my_jwt")).build().await.expect("layer"))
            .await;
    assert_eq!(
        custom.text(custom.get("/state").header(COOKIE, format!("my_jwt={cookie_jwt}"))).await,
        "ok:cookie-user"
    );
    assert_eq!(custom.text(custom.get("/state").header(COOKIE, &cookie)).await, "anonymous");

    // The OIDC preset reads bearer tokens only.
    let oidc = Dialect::Oidc.harness(&issuer).await;
    let access = Spec::new().subject("api-user").mint(&issuer, Dialect::Oidc);
    assert_eq!(oidc.text(oidc.get("/state").header(COOKIE, format!("stytch_session_jwt={access}"))).await, "anonymous");
    assert_eq!(oidc.text(oidc.get("/state").bearer_auth(&access)).await, "ok:api-user");

    // The generic builder reads no cookie unless one is named: a Stytch JWT in the
    // Stytch cookie is ignored, the same JWT as a bearer token is verified.
    let generic = |issuer: &DevIssuer| {
        SessionLayer::builder(KeySource::url(issuer.stytch_jwks_url()))
            .with_issuer(issuer.stytch_issuer())
            .with_audience(issuer.project_id())
    };
    let plain = Harness::start(generic(&issuer).build().await.expect("layer")).await;
    assert_eq!(plain.text(plain.get("/state").header(COOKIE, &cookie)).await, "anonymous");
    assert_eq!(plain.text(plain.get("/state").bearer_auth(&cookie_jwt)).await, "ok:cookie-user");
    let named = generic(&issuer).with_jwt_cookie(Some(DEFAULT_JWT_COOKIE)).build().await.expect("layer");
    let named = Harness::start(named).await;
    assert_eq!(named.text(named.get("/state").header(COOKIE, &cookie)).await, "ok:cookie-user");
}

// ------------------------------------------------------------------ extractors

#[tokio::test]
async fn session_extractor_challenges() {
    let issuer = start_issuer().await;
    for dialect in DIALECTS {
        let harness = dialect.harness(&issuer).await;
        let token = Spec::new().subject("extract-user").mint(&issuer, dialect);
        let expired = Spec::new().issued_at(ago(900)).mint(&issuer, dialect);

        let ok = harness.get("/me").bearer_auth(&token).send().await.expect("request");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.expect("body"), "ok:extract-user");

        let anonymous = harness.get("/me").send().await.expect("request");
        assert_eq!(anonymous.status(), 401);
        assert_eq!(anonymous.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#, "no error for a missing credential");

        let invalid = harness.get("/me").bearer_auth(&expired).send().await.expect("request");
        assert_eq!(invalid.status(), 401);
        let challenge = invalid.headers()[WWW_AUTHENTICATE].to_str().expect("ascii").to_owned();
        assert_eq!(
            challenge,
            r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#
        );

        let forged =
            harness.get("/me").bearer_auth(hs256_with_public_key(&issuer, &token)).send().await.expect("request");
        assert_eq!(forged.status(), 401);
        assert!(forged.headers()[WWW_AUTHENTICATE].to_str().expect("ascii").contains(r#"error="invalid_token""#));

        let twice = harness
            .get("/me")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .expect("request");
        assert_eq!(twice.status(), 400);
        let challenge = twice.headers()[WWW_AUTHENTICATE].to_str().expect("ascii").to_owned();
        assert!(challenge.starts_with(r#"Bearer realm="api", error="invalid_request""#), "{challenge}");

        let malformed = harness.get("/me").header(AUTHORIZATION, "Bearer").send().await.expect("request");
        assert_eq!(malformed.status(), 400);

        // A JSON client gets an RFC 9457 body too.
        let json_client = harness
            .get("/me")
            .bearer_auth(&expired)
            .header("accept", "application/json")
            .send()
            .await
            .expect("request");
        assert_eq!(json_client.status(), 401);
        assert_eq!(json_client.headers()["content-type"], "application/problem+json");
        let body: Value = json_client.json().await.expect("problem json");
        assert_eq!(body["status"], 401);
        assert_eq!(body["error"], "invalid_token");

        // Option<Session>: None for anonymous and for invalid credentials.
        let maybe = |request: reqwest::RequestBuilder| async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200);
            response.text().await.expect("body")
        };
        assert_eq!(maybe(harness.get("/maybe").bearer_auth(&token)).await, "some:extract-user");
        assert_eq!(maybe(harness.get("/maybe")).await, "none");
        assert_eq!(maybe(harness.get("/maybe").bearer_auth(&expired)).await, "none");
        assert_eq!(maybe(harness.get("/maybe").bearer_auth("abc.def.ghi")).await, "none");
    }
}

#[tokio::test]
async fn extractors_without_the_layer_name_it() {
    let issuer = start_issuer().await;
    let base = serve(routes()).await;
    let token = Spec::new().mint(&issuer, Dialect::Stytch);
    let client = reqwest::Client::new();
    for path in ["/me", "/maybe", "/state", "/session"] {
        let response = client.get(format!("{base}{path}")).bearer_auth(&token).send().await.expect("request");
        assert_eq!(response.status(), 500, "{path}");
        let body = response.text().await.expect("body");
        assert!(body.contains("SessionLayer"), "{path}: {body}");
        assert!(!body.contains(&token), "{path}: the body echoes the token");
    }
}

// ------------------------------------------------------------------ session model

#[tokio::test]
async fn stytch_consumer_session_model() {
    let issuer = start_issuer().await;
    let harness = Dialect::Stytch.harness(&issuer).await;
    let totp_at = 1_700_000_000;
    let sms_at = 1_700_000_500;
    let started = secs(Some(ago(1800))).expect("now");
    let session_end = started + 7200;
    let token = issuer
        .stytch_session()
        .subject("user-test-model")
        .session_id("session-test-model")
        .factor(DevFactor::totp().authenticated_at(at(totp_at)))
        .factor(DevFactor::sms_otp().authenticated_at(at(sms_at)))
        .factor(DevFactor::custom("retina_scan", "eyeball_v2"))
        .role("admin")
        .role("billing")
        .session_started_at(at(started))
        .session_expires_at(at(session_end))
        .custom_claim("plan", json!("pro"))
        .custom_claim("tenant", json!({ "id": 42 }))
        .mint();
    let (_, claims, _) = split(&token);
    let s = harness.session(&token).await;
    assert_eq!(s["sub"], "user-test-model");
    assert_eq!(s["sid"], "session-test-model");
    assert_eq!(s["iss"], issuer.stytch_issuer());
    assert_eq!(s["aud"], json!([issuer.project_id()]));
    assert_eq!(s["iat"], claims["iat"]);
    assert_eq!(s["exp"], claims["exp"]);
    assert_eq!(s["started_at"], started);
    assert_eq!(s["session_expires_at"], session_end);
    assert_eq!(s["roles"], json!(["stytch_user", "admin", "billing"]));
    assert_eq!(s["token_kind"], "Jwt");

    let factors = s["factors"].as_array().expect("factors");
    assert_eq!(factors.len(), 3);
    assert_eq!(factors[0]["kind"], "totp");
    assert_eq!(factors[0]["delivery_method"], "authenticator_app");
    assert_eq!(factors[0]["last_authenticated_at"], totp_at);
    assert!(
        factors[0]["details"]["authenticator_app_factor"]["totp_id"].is_string(),
        "raw details kept: {}",
        factors[0]
    );
    assert_eq!(factors[1]["kind"], "otp");
    assert_eq!(factors[1]["delivery_method"], "sms");
    assert_eq!(factors[1]["last_authenticated_at"], sms_at);
    assert_eq!(factors[1]["details"]["phone_number_factor"]["phone_number"], "+15555550100");
    // An unknown factor type and delivery method are preserved, not rejected.
    assert_eq!(factors[2]["kind"], "retina_scan");
    assert_eq!(factors[2]["type"], "retina_scan");
    assert_eq!(factors[2]["delivery_method"], "eyeball_v2");

    // Custom claims: typed, and only the custom ones are left.
    assert_eq!(s["custom"], json!({ "plan": "pro", "tenant": 42 }));
    let raw = s["claims"].as_object().expect("claims object");
    let mut names: Vec<&str> = raw.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["plan", "tenant"], "registered and Stytch claims are not custom claims");

    // An unknown factor shape (no delivery method, unknown extra fields) still parses.
    let odd = resign(&issuer, &token, |_, c| {
        c["https://stytch.com/session"]["authentication_factors"] =
            json!([{ "type": "brand_new_factor", "brand_new_factor_object": { "x": 1 } }]);
    });
    let s = harness.session(&odd).await;
    assert_eq!(s["factors"][0]["kind"], "brand_new_factor");
    assert_eq!(s["factors"][0]["delivery_method"], Value::Null);
    assert_eq!(s["factors"][0]["details"]["brand_new_factor_object"]["x"], 1);

    // A factor without a type, or a session claim without an id, is invalid.
    let no_type = resign(&issuer, &token, |_, c| {
        c["https://stytch.com/session"]["authentication_factors"] = json!([{ "delivery_method": "sms" }]);
    });
    assert_eq!(harness.state(&no_type).await, "InvalidClaim: authentication_factors");
    let no_session = resign(&issuer, &token, |_, c| {
        c.remove("https://stytch.com/session");
    });
    assert_eq!(harness.state(&no_session).await, "MissingClaim: https://stytch.com/session");
    let bad_time = resign(&issuer, &token, |_, c| {
        c["https://stytch.com/session"]["started_at"] = json!("yesterday");
    });
    assert_eq!(harness.state(&bad_time).await, "InvalidClaim: timestamp");
}

#[tokio::test]
async fn stytch_expires_at_falls_back_to_exp() {
    let issuer = start_issuer().await;
    let harness = Dialect::Stytch.harness(&issuer).await;
    let token = issuer.stytch_session().without_expires_at().mint();
    let (_, claims, _) = split(&token);
    assert!(claims["https://stytch.com/session"].get("expires_at").is_none());
    let s = harness.session(&token).await;
    assert_eq!(s["session_expires_at"], claims["exp"]);
    assert_eq!(s["exp"], claims["exp"]);

    let with = issuer.stytch_session().mint();
    let (_, claims, _) = split(&with);
    let s = harness.session(&with).await;
    assert_ne!(s["session_expires_at"], claims["exp"], "expires_at is used when present");
    assert!(s["session_expires_at"].as_u64() > s["exp"].as_u64());
}

#[tokio::test]
async fn stytch_b2b_session_model() {
    let issuer = start_issuer().await;
    let project = StytchProject::b2b(issuer.project_id()).expect("project").with_base_url(issuer.base_url());
    assert!(project.jwks_url().contains("/v1/b2b/sessions/jwks/"));
    let harness = Harness::start(SessionLayer::stytch(&project).build().await.expect("layer")).await;
    let token = issuer
        .stytch_session()
        .b2b("organization-test-acme", "acme")
        .factor(DevFactor::custom("sso", "sso_saml"))
        .role("stytch_admin")
        .mint();
    let s = harness.session(&token).await;
    assert_eq!(s["sub"], DEFAULT_MEMBER_ID);
    assert_eq!(s["organization"], json!({ "id": "organization-test-acme", "slug": "acme" }));
    assert_eq!(s["roles"], json!(["stytch_member", "stytch_admin"]));
    assert_eq!(s["factors"][0]["kind"], "sso");
    assert_eq!(s["factors"][0]["delivery_method"], "sso_saml");
    assert!(s["sid"].as_str().expect("sid").starts_with("member-session-test-"));
    // The organization claim is not a custom claim.
    assert_eq!(s["claims"], json!({}));

    let bad_org = resign(&issuer, &token, |_, c| {
        c["https://stytch.com/organization"] = json!({ "slug": "no-id" });
    });
    assert_eq!(harness.state(&bad_org).await, "InvalidClaim: https://stytch.com/organization");
    // A consumer token (no organization) is a session without organization.
    let consumer = issuer.stytch_session().mint();
    assert_eq!(harness.session(&consumer).await["organization"], Value::Null);
}

#[tokio::test]
async fn oidc_session_model() {
    let issuer = start_issuer().await;
    let harness = Dialect::Oidc.harness(&issuer).await;
    let auth_time = secs(Some(ago(120))).expect("now");
    let token = issuer
        .access_token()
        .subject("oidc-user")
        .acr("urn:example:loa:2")
        .amr(&["pwd", "otp", "sms", "hwk", "mfa", "face"])
        .auth_time(at(auth_time))
        .scope("read write  admin")
        .sid("sid-123")
        .roles(["admin", "auditor"])
        .custom_claim("plan", json!("team"))
        .custom_claim("tenant", json!({ "id": 7 }))
        .mint();
    let s = harness.session(&token).await;
    assert_eq!(s["sub"], "oidc-user");
    assert_eq!(s["iss"], issuer.issuer());
    assert_eq!(s["acr"], "urn:example:loa:2");
    assert_eq!(s["amr"], json!(["pwd", "otp", "sms", "hwk", "mfa", "face"]));
    assert_eq!(s["auth_time"], auth_time);
    assert_eq!(s["scopes"], json!(["read", "write", "admin"]));
    assert_eq!(s["sid"], "sid-123");
    assert_eq!(s["roles"], json!(["admin", "auditor"]));
    assert_eq!(s["client_id"], issuer.client_id());
    assert_eq!(s["custom"], json!({ "plan": "team", "tenant": 7 }));

    let factors = s["factors"].as_array().expect("factors");
    let kinds: Vec<&str> = factors.iter().map(|f| f["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["password", "otp", "otp", "webauthn", "face"], "mfa is a summary, not a factor");
    assert_eq!(factors[2]["delivery_method"], "sms");
    assert!(factors.iter().all(|f| f["last_authenticated_at"] == json!(auth_time)), "factors take auth_time");

    // `scp` as an array, roles from a custom claim.
    let layer = Dialect::Oidc
        .builder(&issuer)
        .with_profile(OidcProfile::rfc9068().with_roles_claim("groups"))
        .build()
        .await
        .expect("layer");
    let groups = Harness::start(layer).await;
    let token =
        issuer.access_token().custom_claim("scp", json!(["a", "b"])).custom_claim("groups", json!("ops")).mint();
    let s = groups.session(&token).await;
    assert_eq!(s["scopes"], json!(["a", "b"]));
    assert_eq!(s["roles"], json!(["ops"]));
    assert_eq!(s["acr"], Value::Null);
    assert_eq!(s["auth_time"], Value::Null);
    assert_eq!(s["factors"], json!([]));

    let bad_amr = issuer.access_token().custom_claim("amr", json!("pwd")).mint();
    assert_eq!(harness.state(&bad_amr).await, "InvalidClaim: amr");
    let bad_auth_time = issuer.access_token().custom_claim("auth_time", json!("recently")).mint();
    assert_eq!(harness.state(&bad_auth_time).await, "InvalidClaim: auth_time");
    // Signed, but beyond any representable time: refused, never a panic.
    let far_auth_time = issuer.access_token().custom_claim("auth_time", json!(u64::MAX)).mint();
    assert_eq!(harness.state(&far_auth_time).await, "InvalidClaim: auth_time");
    // Signed, but beyond any representable time: refused, never a panic.
    let far_auth_time = issuer.access_token().custom_claim("auth_time", json!(u64::MAX)).mint();
    assert_eq!(harness.state(&far_auth_time).await, "InvalidClaim: auth_time");
}

// ------------------------------------------------------------------ secrets

/// A tracing writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_no_secret(what: &str, text: &str, token: &str) {
    let sig = signature(token);
    let payload = token.split('.').nth(1).expect("payload");
    assert!(!text.contains(token), "{what} contains the token:\n{text}");
    assert!(!text.contains(&sig), "{what} contains the signature:\n{text}");
    assert!(!text.contains(payload), "{what} contains the payload segment:\n{text}");
}

// current_thread: the servers and the layer run on this thread, so the thread-local
// subscriber sees every log line of the crate.
#[tokio::test(flavor = "current_thread")]
async fn no_token_text_in_debug_errors_challenges_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("tower_stepup=trace"))
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let issuer = start_issuer().await;
    for dialect in DIALECTS {
        let layer = dialect.builder(&issuer).build().await.expect("layer");
        let harness = Harness::start(layer.clone()).await;
        let valid = Spec::new().mint(&issuer, dialect);
        let base = Spec::new().subject("secret-user").mint(&issuer, dialect);
        let mut tampered_claims = split(&base).1;
        tampered_claims.insert("sub".into(), json!("admin"));
        let tokens = vec![
            ("valid", valid.clone()),
            ("expired", Spec::new().issued_at(ago(900)).mint(&issuer, dialect)),
            ("wrong audience", Spec::new().aud("elsewhere").mint(&issuer, dialect)),
            ("wrong issuer", Spec::new().iss("https://evil.example").mint(&issuer, dialect)),
            ("unknown kid", Spec::new().kid("never-served").mint(&issuer, dialect)),
            ("hs256", hs256_with_public_key(&issuer, &base)),
            (
                "jku",
                resign(&issuer, &base, |h, _| {
                    h.insert("jku".into(), json!("https://evil.example"));
                }),
            ),
            ("tampered", assemble(&Value::Object(split(&base).0), &Value::Object(tampered_claims), &signature(&base))),
            (
                "missing claim",
                resign(&issuer, &base, |_, c| {
                    c.remove("sub");
                }),
            ),
            ("too large", Spec::new().claim("padding", json!("y".repeat(9000))).mint(&issuer, dialect)),
        ];
        for (name, token) in &tokens {
            let what = format!("{dialect:?} / {name}");
            let debug = harness.text(harness.get("/debug").bearer_auth(token)).await;
            assert_no_secret(&format!("{what}: Debug of AuthState/Session/SessionRejection/AuthError"), &debug, token);
            if *name != "valid" {
                assert!(debug.contains("Invalid("), "{what}: {debug}");
            }
            for accept in ["application/json", "text/html", "*/*"] {
                let response =
                    harness.get("/me").bearer_auth(token).header("accept", accept).send().await.expect("request");
                let status = response.status();
                let headers = format!("{:?}", response.headers());
                let body = response.text().await.expect("body");
                if *name != "valid" {
                    assert!(status == 401 || status == 400, "{what}: {status}");
                }
                assert_no_secret(&format!("{what}: challenge headers ({accept})"), &headers, token);
                assert_no_secret(&format!("{what}: challenge body ({accept})"), &body, token);
            }
            // The same token in a cookie (Stytch reads cookies).
            let response = harness
                .get("/me")
                .header(COOKIE, format!("stytch_session_jwt={token}"))
                .header("accept", "application/json")
                .send()
                .await
                .expect("request");
            let headers = format!("{:?}", response.headers());
            let body = response.text().await.expect("body");
            assert_no_secret(&format!("{what}: cookie challenge headers"), &headers, token);
            assert_no_secret(&format!("{what}: cookie challenge body"), &body, token);
        }
        // Header-level failures with a real token inside.
        let twice = harness
            .get("/debug")
            .header(AUTHORIZATION, format!("Bearer {valid}"))
            .header(AUTHORIZATION, format!("Bearer {valid}"))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body");
        assert!(twice.contains("MultipleAuthorizationHeaders"), "{twice}");
        assert_no_secret("several Authorization headers", &twice, &valid);
        let spaced = harness.text(harness.get("/debug").header(AUTHORIZATION, format!("Bearer {valid} x"))).await;
        assert!(spaced.contains("InvalidCharacters"), "{spaced}");
        assert_no_secret("token with a space", &spaced, &valid);

        assert_no_secret("Debug of SessionLayer", &format!("{layer:?}"), &valid);
        for (_, token) in &tokens {
            assert_no_secret("Debug of SessionLayer", &format!("{layer:?}"), token);
        }
        let logged = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8 logs");
        for (name, token) in &tokens {
            assert_no_secret(&format!("{dialect:?} / {name}: logs"), &logged, token);
        }
    }
    let logged = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8 logs");
    assert!(!logged.is_empty(), "the capture works (the crate logs at debug/trace)");
}
