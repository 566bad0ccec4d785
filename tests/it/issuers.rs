//! Several issuers in one layer (issue 12): the token's `iss` selects its issuer's
//! keys, audiences, `typ` policy and claim profile before any signature check;
//! unknown issuers are refused without a fetch; tenant-templated issuers (Entra ID
//! multi-tenant apps) check `tid`. Dev issuers on loopback stand in for realms.

use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::{json, Value};
use tower_stepup::{
    AuthErrorKind, ConfigError, Guard, IntrospectionAuthority, IssuerConfig, KeySource, OidcProfile, Session,
    SessionLayer, TypPolicy,
};
use tower_stepup_dev_issuer::{DevAlg, DevIssuer, Endpoint, OpaqueTokenSpec};

use crate::common::{quick_issuer, status_kind_body, TestResult};

const ENTRA_TEMPLATE: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
const TENANT_A: &str = "4a1e3c52-0d55-4c3b-a5a5-6c1a0f7d9b21";
const TENANT_B: &str = "e2d1b9a8-7c6f-4e5d-9c8b-1a2b3c4d5e6f";
const TENANT_OTHER: &str = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a";

fn entra_issuer(tenant: &str) -> String {
    ENTRA_TEMPLATE.replace("{tenantid}", tenant)
}

/// `/me` behind an authenticated guard: the session's issuer, subject and roles.
fn app(layer: SessionLayer) -> Router {
    async fn me(session: Session) -> Json<Value> {
        Json(json!({"iss": session.issuer(), "sub": session.subject(), "roles": session.roles()}))
    }
    Router::new().route("/me", get(me).route_layer(Guard::authenticated())).layer(layer)
}

/// Every fetch an issuer served (key sets and discovery).
fn fetches(issuer: &DevIssuer) -> usize {
    issuer.request_count(Endpoint::Jwks) + issuer.request_count(Endpoint::Discovery)
}

/// Two realms with their own discovery, keys, `typ` policy and roles claim.
async fn two_realms(a: &DevIssuer, b: &DevIssuer) -> SessionLayer {
    SessionLayer::multi_issuer()
        .with_audience(tower_stepup_dev_issuer::DEFAULT_AUDIENCE)
        .with_typ(TypPolicy::AccessToken)
        .with_issuer_config(IssuerConfig::new(a.issuer(), KeySource::discovery(a.issuer())))
        .with_issuer_config(
            IssuerConfig::new(b.issuer(), KeySource::discovery(b.issuer()))
                .with_typ(TypPolicy::Jwt)
                .with_profile(OidcProfile::new().with_roles_claim("groups")),
        )
        .build()
        .await
        .expect("two realms")
}

/// Multi-realm Keycloak: each realm's tokens verify with its own keys and rules,
/// on the first request and on cache hits alike.
#[tokio::test]
async fn each_realm_verifies_with_its_own_rules() -> TestResult {
    let (a, b) = (quick_issuer().await, quick_issuer().await);
    let app = app(two_realms(&a, &b).await);
    let from_a = a.access_token().subject("alice").roles(["a-role"]).custom_claim("groups", json!(["g"])).mint();
    let from_b = b
        .access_token()
        .typ(Some("JWT"))
        .subject("bob")
        .roles(["ignored"])
        .custom_claim("groups", json!(["b-group"]))
        .mint();
    for _ in 0..2 {
        let (status, _, body) = status_kind_body(&app, &from_a).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"iss": a.issuer(), "sub": "alice", "roles": ["a-role"]}));
        let (status, _, body) = status_kind_body(&app, &from_b).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"iss": b.issuer(), "sub": "bob", "roles": ["b-group"]}), "B's profile reads groups");
    }
    // Each realm's `typ` policy is its own.
    let jwt_from_a = a.access_token().typ(Some("JWT")).mint();
    assert_eq!(status_kind_body(&app, &jwt_from_a).await.1, Some(AuthErrorKind::InvalidType));
    let at_from_b = b.access_token().mint();
    assert_eq!(status_kind_body(&app, &at_from_b).await.1, Some(AuthErrorKind::InvalidType));
    Ok(())
}

/// A token signed by A's key but claiming B, with A's `kid` or with B's: never
/// verified by A's key, whatever the header says.
#[tokio::test]
async fn one_issuers_key_never_verifies_anothers_token() -> TestResult {
    let (a, b) = (quick_issuer().await, quick_issuer().await);
    let app = app(two_realms(&a, &b).await);
    let b_kid = b.current_kid(DevAlg::EdDSA);
    // Control: A's own token passes, so only the claimed issuer differs below.
    assert_eq!(status_kind_body(&app, &a.access_token().mint()).await.0, StatusCode::OK);

    let as_b_by_kid_of_a = a.access_token().issuer(b.issuer()).typ(Some("JWT")).mint();
    let (status, kind, _) = status_kind_body(&app, &as_b_by_kid_of_a).await;
    assert_eq!((status, kind), (StatusCode::UNAUTHORIZED, Some(AuthErrorKind::UnknownKey)));

    let as_b_naming_kid_of_b = a.access_token().issuer(b.issuer()).typ(Some("JWT")).kid(&b_kid).mint();
    let (status, kind, _) = status_kind_body(&app, &as_b_naming_kid_of_b).await;
    assert_eq!((status, kind), (StatusCode::UNAUTHORIZED, Some(AuthErrorKind::InvalidSignature)));

    // A kid known only to the other issuer: A's token naming B's kid.
    let a_with_b_kid = a.access_token().kid(&b_kid).mint();
    let (status, kind, _) = status_kind_body(&app, &a_with_b_kid).await;
    assert_eq!((status, kind), (StatusCode::UNAUTHORIZED, Some(AuthErrorKind::UnknownKey)));
    Ok(())
}

/// An issuer nobody configured (a third dev issuer, or a configured one spelled
/// with a trailing slash or another case) is refused without any fetch, from
/// anyone: not even the named issuer's own key set.
#[tokio::test]
async fn unknown_issuers_cause_no_fetch() -> TestResult {
    let (a, b, stranger) = (quick_issuer().await, quick_issuer().await, quick_issuer().await);
    let layer = SessionLayer::multi_issuer()
        .with_audience(tower_stepup_dev_issuer::DEFAULT_AUDIENCE)
        .with_typ(TypPolicy::AccessToken)
        .with_issuer_config(IssuerConfig::new(a.issuer(), KeySource::discovery(a.issuer())))
        .with_issuer_config(IssuerConfig::new(b.issuer(), KeySource::discovery(b.issuer())))
        .with_lazy_start()
        .build()
        .await?;
    let app = app(layer);
    let upper = a.issuer().replace("http://", "HTTP://");
    let tokens = [
        stranger.access_token().mint(),
        stranger.access_token().kid("made-up").mint(),
        a.access_token().issuer(format!("{}/", a.issuer())).kid("made-up").mint(),
        a.access_token().issuer(upper).kid("made-up").mint(),
        a.access_token().issuer(format!("{}/", a.issuer())).mint(),
    ];
    for token in &tokens {
        let (status, kind, _) = status_kind_body(&app, token).await;
        assert_eq!((status, kind), (StatusCode::UNAUTHORIZED, Some(AuthErrorKind::WrongIssuer)));
    }
    assert_eq!((fetches(&a), fetches(&b), fetches(&stranger)), (0, 0, 0), "no key set was fetched");
    // Control: the lazy layer does fetch for a configured issuer.
    assert_eq!(status_kind_body(&app, &b.access_token().mint()).await.0, StatusCode::OK);
    assert!(fetches(&b) > 0);
    assert_eq!(fetches(&a), 0);
    Ok(())
}

/// The single-issuer builder keeps its rules, and an unknown issuer with a made-up
/// `kid` no longer costs it a fetch either.
#[tokio::test]
async fn the_single_issuer_builder_refuses_strangers_without_a_fetch() -> TestResult {
    let issuer = quick_issuer().await;
    let layer = SessionLayer::oidc(issuer.issuer(), tower_stepup_dev_issuer::DEFAULT_AUDIENCE).build().await?;
    let app = app(layer);
    assert_eq!(status_kind_body(&app, &issuer.access_token().mint()).await.0, StatusCode::OK);
    issuer.reset_counts();
    let stranger = issuer.access_token().issuer("https://elsewhere.example").kid("made-up").mint();
    assert_eq!(status_kind_body(&app, &stranger).await.1, Some(AuthErrorKind::WrongIssuer));
    assert_eq!(fetches(&issuer), 0);
    // A made-up kid of the configured issuer still looks for the key, as before.
    let unknown = issuer.access_token().kid("made-up").mint();
    assert_eq!(status_kind_body(&app, &unknown).await.1, Some(AuthErrorKind::UnknownKey));
    assert_eq!(issuer.request_count(Endpoint::Jwks), 1);
    Ok(())
}

/// Auth0: the canonical domain and a custom domain are two issuer strings of one
/// tenant, with one key set; the other realm is unaffected.
#[tokio::test]
async fn two_issuer_strings_share_one_key_set() -> TestResult {
    let (tenant, realm) = (quick_issuer().await, quick_issuer().await);
    let custom = "https://login.example.com/";
    let layer = SessionLayer::oidc(realm.issuer(), tower_stepup_dev_issuer::DEFAULT_AUDIENCE)
        .with_issuer_config(
            IssuerConfig::new(tenant.issuer(), KeySource::discovery(tenant.issuer()))
                .with_additional_issuer(custom)
                .with_audience("https://orders.example.com")
                .with_typ(TypPolicy::Any),
        )
        .build()
        .await?;
    let app = app(layer);
    let audience = "https://orders.example.com";
    let canonical = tenant.access_token().audience(audience).typ(Some("JWT")).mint();
    let custom_domain = tenant.access_token().issuer(custom).audience(audience).typ(Some("JWT")).mint();
    assert_eq!(status_kind_body(&app, &canonical).await.2["iss"], json!(tenant.issuer()));
    assert_eq!(status_kind_body(&app, &custom_domain).await.2["iss"], json!(custom));
    let no_slash = tenant.access_token().issuer("https://login.example.com").audience(audience).mint();
    assert_eq!(status_kind_body(&app, &no_slash).await.1, Some(AuthErrorKind::WrongIssuer));
    // Audiences are per issuer: the realm's audience is not the tenant's, and back.
    let realm_audience = tenant.access_token().mint();
    assert_eq!(status_kind_body(&app, &realm_audience).await.1, Some(AuthErrorKind::WrongAudience));
    let tenant_audience = realm.access_token().audience(audience).mint();
    assert_eq!(status_kind_body(&app, &tenant_audience).await.1, Some(AuthErrorKind::WrongAudience));
    // The builder's own issuer is still there, with its RFC 9068 rules.
    assert_eq!(status_kind_body(&app, &realm.access_token().mint()).await.0, StatusCode::OK);
    assert_eq!(
        status_kind_body(&app, &realm.access_token().typ(Some("JWT")).mint()).await.1,
        Some(AuthErrorKind::InvalidType)
    );
    Ok(())
}

/// Entra ID multi-tenant apps: one template, an allow-list of tenants, the common
/// key set, and `tid` must name the tenant in `iss`.
#[tokio::test]
async fn tenant_templates_check_the_allow_list_and_tid() -> TestResult {
    let (entra, other) = (quick_issuer().await, quick_issuer().await);
    let layer = SessionLayer::multi_issuer()
        .with_audience("api://orders")
        .with_typ(TypPolicy::Jwt)
        .with_issuer_config(
            IssuerConfig::tenant_template(ENTRA_TEMPLATE, KeySource::url(entra.jwks_url()))
                .with_tenants([TENANT_A, TENANT_B]),
        )
        .with_issuer_config(IssuerConfig::new(other.issuer(), KeySource::discovery(other.issuer())))
        .build()
        .await?;
    let app = app(layer);
    let token = |iss: &str, tid: Option<&str>| {
        let builder = entra.access_token().issuer(iss).audience("api://orders").typ(Some("JWT"));
        match tid {
            Some(tid) => builder.custom_claim("tid", json!(tid)).mint(),
            None => builder.mint(),
        }
    };
    for tenant in [TENANT_A, TENANT_B] {
        let (status, _, body) = status_kind_body(&app, &token(&entra_issuer(tenant), Some(tenant))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["iss"], json!(entra_issuer(tenant)));
    }
    entra.reset_counts();
    let outsider = token(&entra_issuer(TENANT_OTHER), Some(TENANT_OTHER));
    assert_eq!(status_kind_body(&app, &outsider).await.1, Some(AuthErrorKind::WrongIssuer));
    let outsider_new_kid = entra.access_token().issuer(entra_issuer(TENANT_OTHER)).kid("rotated").mint();
    assert_eq!(status_kind_body(&app, &outsider_new_kid).await.1, Some(AuthErrorKind::WrongIssuer));
    assert_eq!(fetches(&entra), 0, "a tenant outside the list costs no fetch");
    let mismatch = token(&entra_issuer(TENANT_A), Some(TENANT_B));
    assert_eq!(status_kind_body(&app, &mismatch).await.1, Some(AuthErrorKind::InvalidClaim));
    let missing = token(&entra_issuer(TENANT_A), None);
    assert_eq!(status_kind_body(&app, &missing).await.1, Some(AuthErrorKind::MissingClaim));
    let not_a_string = entra
        .access_token()
        .issuer(entra_issuer(TENANT_A))
        .audience("api://orders")
        .typ(Some("JWT"))
        .custom_claim("tid", json!([TENANT_A]))
        .mint();
    assert_eq!(status_kind_body(&app, &not_a_string).await.1, Some(AuthErrorKind::InvalidClaim));
    // The template in the issuer's own spelling is no tenant.
    assert_eq!(
        status_kind_body(&app, &token(ENTRA_TEMPLATE, Some("{tenantid}"))).await.1,
        Some(AuthErrorKind::WrongIssuer)
    );
    Ok(())
}

/// The same rules with the template alone (a layer of one configuration takes the
/// single-issuer path).
#[tokio::test]
async fn a_lone_tenant_template_checks_tid_too() -> TestResult {
    let entra = quick_issuer().await;
    let layer = SessionLayer::multi_issuer()
        .with_audience("api://orders")
        .with_typ(TypPolicy::Jwt)
        .with_issuer_config(
            IssuerConfig::tenant_template(ENTRA_TEMPLATE, KeySource::url(entra.jwks_url())).with_tenants([TENANT_A]),
        )
        .build()
        .await?;
    let app = app(layer);
    let token = |tid: &str| {
        entra
            .access_token()
            .issuer(entra_issuer(TENANT_A))
            .audience("api://orders")
            .typ(Some("JWT"))
            .custom_claim("tid", json!(tid))
            .mint()
    };
    assert_eq!(status_kind_body(&app, &token(TENANT_A)).await.0, StatusCode::OK);
    assert_eq!(status_kind_body(&app, &token(TENANT_B)).await.1, Some(AuthErrorKind::InvalidClaim));
    Ok(())
}

/// The authority's answers are held to the rules of the issuer they name: an
/// opaque token of A for B's audience is refused, though the layer accepts that
/// audience from B.
#[tokio::test]
async fn authority_answers_follow_their_issuers_rules() -> TestResult {
    let (a, b) = (quick_issuer().await, quick_issuer().await);
    let layer = SessionLayer::multi_issuer()
        .with_typ(TypPolicy::AccessToken)
        .with_issuer_config(IssuerConfig::new(a.issuer(), KeySource::discovery(a.issuer())).with_audience("api-a"))
        .with_issuer_config(IssuerConfig::new(b.issuer(), KeySource::discovery(b.issuer())).with_audience("api-b"))
        // No `with_issuer`: whatever `iss` the answer names, the layer judges it.
        .with_authority(IntrospectionAuthority::new(&a.introspection_url(), a.client_id(), a.client_secret())?)
        .build()
        .await?;
    let app = app(layer);
    let opaque = |audience: &str| a.issue_opaque_access_token(OpaqueTokenSpec::new().audience(audience));
    let (status, _, body) = status_kind_body(&app, &opaque("api-a")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["iss"], json!(a.issuer()));
    assert_eq!(status_kind_body(&app, &opaque("api-b")).await.1, Some(AuthErrorKind::WrongAudience));
    // JWTs: B's audience on A's token is refused the same way.
    assert_eq!(
        status_kind_body(&app, &a.access_token().audience("api-b").mint()).await.1,
        Some(AuthErrorKind::WrongAudience)
    );
    assert_eq!(status_kind_body(&app, &b.access_token().audience("api-b").mint()).await.0, StatusCode::OK);
    // An answer naming B is held to B's audiences; one naming a stranger is refused.
    let naming = |iss: String, audience: &str| {
        let mut spec = OpaqueTokenSpec::new().audience(audience);
        spec.extra.insert("iss".into(), json!(iss));
        a.issue_opaque_access_token(spec)
    };
    assert_eq!(status_kind_body(&app, &naming(b.issuer(), "api-b")).await.2["iss"], json!(b.issuer()));
    assert_eq!(status_kind_body(&app, &naming(b.issuer(), "api-a")).await.1, Some(AuthErrorKind::WrongAudience));
    let stranger = naming("https://elsewhere.example".to_owned(), "api-a");
    assert_eq!(status_kind_body(&app, &stranger).await.1, Some(AuthErrorKind::WrongIssuer));
    Ok(())
}

/// The RFC 8410 example Ed25519 key (§10.3): tokens with payloads no JSON value
/// can hold (a duplicate name) are signed with it.
/// Its PKCS #8 document (the PEM body).
const ED25519_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC";
const ED25519_JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"rfc8410",
    "x":"Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE"}]}"#;

/// A compact JWS of exactly `payload` (its bytes as written).
fn sign_payload(payload: &str) -> String {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"alg":"EdDSA","kid":"rfc8410","typ":"JWT"}"#);
    let signed = format!("{header}.{}", b64(payload.as_bytes()));
    let der = base64::engine::general_purpose::STANDARD.decode(ED25519_PKCS8).expect("base64");
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).expect("sign");
    format!("{signed}.{signature}")
}

/// A payload naming `iss` twice: serde_json would keep the last; the layer refuses
/// it, in a multi-issuer layer (where the unverified `iss` selects) and in a
/// single-issuer one alike.
#[tokio::test]
async fn a_token_with_two_issuers_is_refused() -> TestResult {
    let keys = || KeySource::from_json(ED25519_JWKS).expect("jwks");
    let multi = SessionLayer::multi_issuer()
        .with_audience("api")
        .with_issuer_config(IssuerConfig::new("https://a.example", keys()))
        .with_issuer_config(IssuerConfig::new("https://b.example", keys()).with_audience("api-b"))
        .build()
        .await?;
    let single = SessionLayer::builder(keys()).with_issuer("https://b.example").with_audience("api").build().await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let payload = |iss: &str| format!(r#"{{{iss},"sub":"u","aud":"api","iat":{now},"exp":{}}}"#, now + 300);
    let good = sign_payload(&payload(r#""iss":"https://b.example""#));
    let twice = sign_payload(&payload(r#""iss":"https://a.example","iss":"https://b.example""#));
    let twice_reversed = sign_payload(&payload(r#""iss":"https://b.example","iss":"https://a.example""#));
    let (multi, single) = (app(multi), app(single));
    // Control: the same key and shape with one `iss` passes (A takes the layer's
    // audience, B has its own).
    let good_a = sign_payload(&payload(r#""iss":"https://a.example""#));
    assert_eq!(status_kind_body(&multi, &good_a).await.0, StatusCode::OK);
    assert_eq!(status_kind_body(&single, &good).await.0, StatusCode::OK);
    for app in [&multi, &single] {
        for token in [&twice, &twice_reversed] {
            assert_eq!(status_kind_body(app, token).await.1, Some(AuthErrorKind::Malformed));
        }
    }
    Ok(())
}

/// Misconfigurations surface at build.
#[tokio::test]
async fn multi_issuer_misconfigurations_are_refused_at_build() -> TestResult {
    let keys = || KeySource::from_json(ED25519_JWKS).expect("jwks");
    let none = SessionLayer::multi_issuer().with_audience("api").build().await;
    assert!(matches!(none, Err(ConfigError::Missing(_))));
    let keyless = SessionLayer::multi_issuer()
        .with_audience("api")
        .with_issuer("https://a.example")
        .with_issuer_config(IssuerConfig::new("https://b.example", keys()))
        .build()
        .await;
    assert!(matches!(keyless, Err(ConfigError::Invalid { .. })));
    let twice = SessionLayer::builder(keys())
        .with_issuer("https://a.example")
        .with_audience("api")
        .with_issuer_config(IssuerConfig::new("https://a.example", keys()))
        .build()
        .await;
    assert!(matches!(twice, Err(ConfigError::Invalid { .. })));
    let no_audience =
        SessionLayer::multi_issuer().with_issuer_config(IssuerConfig::new("https://a.example", keys())).build().await;
    assert!(matches!(no_audience, Err(ConfigError::Missing("audience"))));
    let no_tenants = SessionLayer::multi_issuer()
        .with_audience("api")
        .with_issuer_config(IssuerConfig::tenant_template(ENTRA_TEMPLATE, keys()))
        .build()
        .await;
    assert!(matches!(no_tenants, Err(ConfigError::Invalid { .. })));
    Ok(())
}
