//! RBAC like Stytch's: the project's policy loaded from `GET /v1/rbac/policy` and
//! refreshed, Stytch's wildcard rules, B2B tenancy, and `authorization_check` on
//! fresh routes, against the dev issuer over HTTP.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::{HeaderName, StatusCode};
use serde_json::{json, Value};
use tower_stepup::{
    AuthErrorKind, Guard, GuardConfig, OrganizationScope, Requirement, SessionLayer, StytchProject, StytchRbac,
};
use tower_stepup_dev_issuer::{DevFactor, DevIssuer, DevIssuerConfig, Endpoint, Failure};

use crate::common::{b2b_project_with_secret, bearer, client, info, project_with_secret, serve, TestResult, MAX_POLLS};

/// A project policy in Stytch's shape.
fn policy() -> Value {
    json!({
        "roles": [
            {"role_id": "stytch_user", "description": "", "permissions": []},
            {"role_id": "stytch_member", "description": "", "permissions": []},
            {"role_id": "editor", "description": "", "permissions": [
                {"resource_id": "documents", "actions": ["read", "write"]},
                {"resource_id": "images", "actions": ["*"]}
            ]},
            {"role_id": "root", "description": "", "permissions": [{"resource_id": "*", "actions": ["*"]}]},
            {"role_id": "admin", "description": "", "permissions": [{"resource_id": "documents", "actions": ["*"]}]}
        ],
        "resources": [
            {"resource_id": "documents", "description": "", "actions": ["read", "write", "delete"]},
            {"resource_id": "images", "description": "", "actions": ["read", "delete"]}
        ],
        "scopes": []
    })
}

async fn rbac_issuer() -> DevIssuer {
    DevIssuer::start_with(DevIssuerConfig::default().with_rbac_policy(policy())).await.expect("dev issuer")
}

fn guarded(path: &str, guard: Guard) -> Router {
    Router::new().route(path, get(info).route_layer(guard))
}

fn permission(resource: &str, action: &str) -> Guard {
    Guard::new(Requirement::permission(resource, action))
}

/// A consumer app with the policy from the issuer, refreshed every `refresh`.
async fn consumer_app(issuer: &DevIssuer, refresh: Duration) -> String {
    let project = project_with_secret(issuer);
    let rbac = StytchRbac::new(&project).expect("rbac").with_refresh_interval(refresh);
    let layer = SessionLayer::stytch(&project)
        .with_guard_config(GuardConfig::default().with_stytch_rbac(rbac))
        .build()
        .await
        .expect("layer");
    let app = Router::new()
        .merge(guarded("/documents/read", permission("documents", "read")))
        .merge(guarded("/documents/write", permission("documents", "write")))
        .merge(guarded("/documents/delete", permission("documents", "delete")))
        .merge(guarded("/images/delete", permission("images", "delete")))
        .merge(guarded("/billing/read", permission("billing", "read")))
        .merge(guarded("/me", Guard::authenticated()))
        .layer(layer);
    serve(app).await
}

async fn status(base: &str, path: &str, token: &str) -> StatusCode {
    bearer(&client(), format!("{base}{path}"), token).await.status()
}

async fn problem(base: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let response =
        client().get(format!("{base}{path}")).bearer_auth(token).header("accept", "application/json").send().await;
    let response = response.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

const FIVE_MINUTES: Duration = Duration::from_secs(300);

#[tokio::test]
async fn permissions_follow_the_policy_loaded_from_stytch() -> TestResult {
    let issuer = rbac_issuer().await;
    let base = consumer_app(&issuer, FIVE_MINUTES).await;
    let user = issuer.stytch_session().mint(); // stytch_user
    let editor = issuer.stytch_session().roles(["stytch_user", "editor"]).mint();
    let admin = issuer.stytch_session().roles(["admin"]).mint();
    let root = issuer.stytch_session().roles(["root"]).mint();
    // Roles the policy does not define, and names that look like wildcards.
    let strangers = issuer.stytch_session().roles(["*", "documents", "stytch_admin", "Editor"]).mint();

    let table: [(&str, [bool; 5]); 5] = [
        // path                user   editor admin  root   strangers
        ("/documents/read", [false, true, true, false, false]),
        ("/documents/write", [false, true, true, false, false]),
        ("/documents/delete", [false, false, true, false, false]), // admin: action wildcard
        ("/images/delete", [false, true, false, false, false]),    // editor: action wildcard
        ("/billing/read", [false, false, false, false, false]),    // root: `*` is no resource wildcard
    ];
    for (path, allowed) in table {
        for (token, allowed) in [&user, &editor, &admin, &root, &strangers].into_iter().zip(allowed) {
            let expected = if allowed { StatusCode::OK } else { StatusCode::FORBIDDEN };
            assert_eq!(status(&base, path, token).await, expected, "{path}");
        }
    }
    let (code, body) = problem(&base, "/documents/delete", &editor).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["permissions"], json!(["documents:delete"]));
    // One fetch served all of that: the policy is cached.
    assert_eq!(issuer.request_count(Endpoint::RbacPolicy), 1);
    // Routes without a permission never load it.
    let fresh_issuer = rbac_issuer().await;
    let other = consumer_app(&fresh_issuer, FIVE_MINUTES).await;
    assert_eq!(status(&other, "/me", &fresh_issuer.stytch_session().mint()).await, StatusCode::OK);
    assert_eq!(fresh_issuer.request_count(Endpoint::RbacPolicy), 0);
    Ok(())
}

#[tokio::test]
async fn a_policy_change_is_seen_after_the_refresh_interval_only() -> TestResult {
    let issuer = rbac_issuer().await;
    let editor = issuer.stytch_session().role("editor").mint();
    let cached = consumer_app(&issuer, FIVE_MINUTES).await;
    let refreshing = consumer_app(&issuer, Duration::from_millis(1)).await;
    assert_eq!(status(&cached, "/documents/write", &editor).await, StatusCode::OK);
    assert_eq!(status(&refreshing, "/documents/write", &editor).await, StatusCode::OK);

    // The dashboard takes `write` away from editors.
    let mut changed = policy();
    changed["roles"][2]["permissions"][0]["actions"] = json!(["read"]);
    issuer.set_rbac_policy(changed);

    // Within five minutes the cached policy still answers.
    assert_eq!(status(&cached, "/documents/write", &editor).await, StatusCode::OK);
    // Past the interval, a request refreshes it and the change applies.
    let mut refused = false;
    for _ in 0..MAX_POLLS {
        if status(&refreshing, "/documents/write", &editor).await == StatusCode::FORBIDDEN {
            refused = true;
            break;
        }
    }
    assert!(refused, "the refreshed policy was never applied");
    assert_eq!(status(&refreshing, "/documents/read", &editor).await, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_policy() -> TestResult {
    let issuer = rbac_issuer().await;
    let editor = issuer.stytch_session().role("editor").mint();
    let base = consumer_app(&issuer, Duration::from_millis(1)).await;
    assert_eq!(status(&base, "/documents/write", &editor).await, StatusCode::OK);
    let loads = issuer.request_count(Endpoint::RbacPolicy);

    issuer.set_endpoint_failure(Endpoint::RbacPolicy, Failure::Status500);
    // Refreshes fail (and are tried again), the loaded policy keeps answering.
    for _ in 0..20 {
        assert_eq!(status(&base, "/documents/write", &editor).await, StatusCode::OK);
        assert_eq!(status(&base, "/documents/delete", &editor).await, StatusCode::FORBIDDEN);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(issuer.request_count(Endpoint::RbacPolicy) > loads, "a refresh was attempted");

    // Garbage is no policy either.
    issuer.set_endpoint_failure(Endpoint::RbacPolicy, Failure::Garbage);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(status(&base, "/documents/write", &editor).await, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn no_policy_ever_loaded_fails_closed() -> TestResult {
    let issuer = rbac_issuer().await;
    let editor = issuer.stytch_session().role("editor").mint();
    let base = consumer_app(&issuer, FIVE_MINUTES).await;
    for failure in [Failure::Status500, Failure::Unavailable, Failure::Garbage] {
        issuer.set_endpoint_failure(Endpoint::RbacPolicy, failure);
        let (code, body) = problem(&base, "/documents/read", &editor).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{failure:?}");
        assert_eq!(body["error"], json!("temporarily_unavailable"));
    }
    // A policy document without `roles` is not "nothing is allowed" either.
    issuer.set_endpoint_failure(Endpoint::RbacPolicy, Failure::None);
    issuer.set_rbac_policy(json!({"resources": []}));
    assert_eq!(status(&base, "/documents/read", &editor).await, StatusCode::SERVICE_UNAVAILABLE);
    // Wrong project secret: fail closed too.
    let wrong = StytchProject::consumer(issuer.project_id())?.with_base_url(issuer.base_url()).with_secret("nope");
    let layer = SessionLayer::stytch(&wrong)
        .with_guard_config(GuardConfig::default().with_stytch_rbac(StytchRbac::new(&wrong)?))
        .build()
        .await?;
    let wrong_base = serve(guarded("/documents/read", permission("documents", "read")).layer(layer)).await;
    assert_eq!(status(&wrong_base, "/documents/read", &editor).await, StatusCode::SERVICE_UNAVAILABLE);

    // Once the issuer serves a policy, the next request loads it.
    issuer.set_rbac_policy(policy());
    assert_eq!(status(&base, "/documents/read", &editor).await, StatusCode::OK);
    assert_eq!(status(&base, "/documents/delete", &editor).await, StatusCode::FORBIDDEN);
    // Anonymous requests are still 401, not 503: authentication comes first.
    let anonymous = client().get(format!("{base}/documents/read")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_zero_refresh_interval_is_a_configuration_error() -> TestResult {
    let issuer = rbac_issuer().await;
    let project = project_with_secret(&issuer);
    let rbac = StytchRbac::new(&project)?.with_refresh_interval(Duration::ZERO);
    let built = SessionLayer::stytch(&project).with_guard_config(GuardConfig::default().with_stytch_rbac(rbac)).build();
    assert!(built.await.is_err());
    assert!(StytchRbac::new(&StytchProject::consumer(issuer.project_id())?).is_err(), "a secret is required");
    Ok(())
}

/// A B2B app: `/orgs/{org_id}/documents` needs `documents:read` in the organization
/// of the path, `/docs` (organization in a header) the same.
async fn b2b_app(issuer: &DevIssuer) -> String {
    let project = b2b_project_with_secret(issuer);
    let rbac = StytchRbac::new(&project).expect("rbac");
    assert!(rbac.policy_url().ends_with("/v1/b2b/rbac/policy"));
    let layer = SessionLayer::stytch(&project)
        .with_guard_config(GuardConfig::default().with_stytch_rbac(rbac))
        .build()
        .await
        .expect("layer");
    let header = HeaderName::from_static("x-organization-id");
    let app = Router::new()
        .merge(guarded(
            "/orgs/{org_id}/documents",
            permission("documents", "read").for_organization(OrganizationScope::path_param("org_id")),
        ))
        .merge(guarded("/docs", permission("documents", "read").for_organization(OrganizationScope::header(header))))
        .merge(guarded(
            "/orgs/{org_id}/members",
            Guard::authenticated().for_organization(OrganizationScope::path_param("org_id")),
        ))
        .merge(guarded(
            "/orgs/{org_id}/purge",
            Guard::authenticated()
                .for_organization(OrganizationScope::path_param("org_id"))
                .with_authorization_check("documents", "delete"),
        ))
        .merge(guarded("/own/purge", Guard::authenticated().with_authorization_check("documents", "delete")))
        .merge(guarded("/typo", permission("documents", "read").for_organization(OrganizationScope::path_param("org"))))
        .layer(layer);
    serve(app).await
}

#[tokio::test]
async fn a_member_of_another_organization_is_refused() -> TestResult {
    let issuer = rbac_issuer().await;
    let base = b2b_app(&issuer).await;
    let acme_admin = issuer.stytch_session().b2b("organization-test-acme", "acme").roles(["admin"]).mint();
    let acme_member = issuer.stytch_session().b2b("organization-test-acme", "acme").roles(["stytch_member"]).mint();
    let http = client();

    assert_eq!(status(&base, "/orgs/organization-test-acme/documents", &acme_admin).await, StatusCode::OK);
    assert_eq!(status(&base, "/orgs/organization-test-acme/documents", &acme_member).await, StatusCode::FORBIDDEN);
    // The admin of acme is nobody in globex, whatever their roles say.
    let (code, body) = problem(&base, "/orgs/organization-test-globex/documents", &acme_admin).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["organization"], json!("organization-test-globex"));
    assert_eq!(body["permissions"], json!([]), "refused for tenancy, before any role is looked at");
    // Also on routes that require no permission at all.
    assert_eq!(status(&base, "/orgs/organization-test-globex/members", &acme_member).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&base, "/orgs/organization-test-acme/members", &acme_member).await, StatusCode::OK);
    // Near misses of the id are other organizations; percent-encoding is decoded first.
    for path in ["/orgs/organization-test-ACME/documents", "/orgs/organization-test-acm/documents"] {
        assert_eq!(status(&base, path, &acme_admin).await, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(status(&base, "/orgs/organization%2Dtest%2Dacme/documents", &acme_admin).await, StatusCode::OK);
    // A consumer session belongs to no organization.
    let consumer = issuer.stytch_session().roles(["admin"]).mint();
    assert_eq!(status(&base, "/orgs/organization-test-acme/documents", &consumer).await, StatusCode::FORBIDDEN);

    // The organization from a header: missing, empty, doubled or another one is refused.
    let docs = format!("{base}/docs");
    let send = |headers: &[&str]| {
        let mut request = http.get(&docs).bearer_auth(&acme_admin);
        for value in headers {
            request = request.header("x-organization-id", *value);
        }
        request.send()
    };
    assert_eq!(send(&["organization-test-acme"]).await?.status(), StatusCode::OK);
    for headers in [
        &[][..],
        &[""],
        &["organization-test-globex"],
        &["organization-test-acme", "organization-test-globex"],
        &["organization-test-acme", "organization-test-acme"],
    ] {
        assert_eq!(send(headers).await?.status(), StatusCode::FORBIDDEN, "{headers:?}");
    }
    // A route that names a parameter it does not have refuses everyone.
    assert_eq!(status(&base, "/typo", &acme_admin).await, StatusCode::FORBIDDEN);
    // Anonymous is 401 (authentication first), never a tenancy answer.
    let anonymous = http.get(format!("{base}/orgs/organization-test-acme/documents")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn the_issuers_verdict_is_honoured_on_fresh_routes() -> TestResult {
    let issuer = rbac_issuer().await;
    let project = project_with_secret(&issuer);
    let layer = SessionLayer::stytch(&project)
        .with_guard_config(GuardConfig::default().with_stytch_rbac(StytchRbac::new(&project)?))
        .build()
        .await?;
    let app = Router::new()
        .merge(guarded("/purge", Guard::authenticated().with_authorization_check("documents", "delete")))
        .merge(guarded("/write", Guard::authenticated().with_authorization_check("documents", "write")))
        .merge(guarded("/local-write", permission("documents", "write")))
        .merge(guarded("/me", Guard::authenticated()))
        .layer(layer);
    let base = serve(app).await;

    let session = issuer.create_session("user-rbac", vec![DevFactor::password()]);
    let editor = issuer.set_session_roles(&session.session_id, &["stytch_user", "editor"]).expect("session");
    assert_eq!(status(&base, "/write", &editor.session_jwt).await, StatusCode::OK);
    let calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    let (code, body) = problem(&base, "/purge", &editor.session_jwt).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "editors may not delete: the issuer says 403");
    assert_eq!(body["permissions"], json!(["documents:delete"]));
    assert!(issuer.request_count(Endpoint::SessionsAuthenticate) > calls, "asked the issuer");

    // The role is taken away at Stytch; the JWT still says `editor`.
    issuer.set_session_roles(&session.session_id, &["stytch_user"]).expect("session");
    assert_eq!(status(&base, "/local-write", &editor.session_jwt).await, StatusCode::OK, "the JWT is trusted locally");
    let (code, body) = problem(&base, "/write", &editor.session_jwt).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "the issuer knows better");
    assert_eq!(body["permissions"], json!(["documents:write"]));
    // A refusal of the check does not end the session.
    assert_eq!(status(&base, "/me", &editor.session_jwt).await, StatusCode::OK);
    // Given back: allowed again at once (refusals are not cached).
    issuer.set_session_roles(&session.session_id, &["editor"]).expect("session");
    assert_eq!(status(&base, "/write", &editor.session_jwt).await, StatusCode::OK);
    // The issuer down: no authorization is assumed.
    issuer.set_endpoint_failure(Endpoint::SessionsAuthenticate, Failure::Status500);
    assert_eq!(status(&base, "/write", &editor.session_jwt).await, StatusCode::SERVICE_UNAVAILABLE);
    Ok(())
}

#[tokio::test]
async fn b2b_authorization_checks_name_the_organization() -> TestResult {
    let issuer = rbac_issuer().await;
    let base = b2b_app(&issuer).await;
    let session = issuer.create_b2b_session("member-1", "organization-test-acme", "acme", vec![DevFactor::password()]);
    let admin = issuer.set_session_roles(&session.session_id, &["stytch_member", "admin"]).expect("session");
    assert_eq!(status(&base, "/orgs/organization-test-acme/purge", &admin.session_jwt).await, StatusCode::OK);
    assert_eq!(status(&base, "/own/purge", &admin.session_jwt).await, StatusCode::OK, "the member's own organization");
    // Another organization: refused locally, the issuer is not even asked.
    let calls = issuer.request_count(Endpoint::SessionsAuthenticate);
    let (code, body) = problem(&base, "/orgs/organization-test-globex/purge", &admin.session_jwt).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["organization"], json!("organization-test-globex"));
    assert_eq!(issuer.request_count(Endpoint::SessionsAuthenticate), calls);
    // Demoted at the issuer.
    issuer.set_session_roles(&session.session_id, &["stytch_member"]).expect("session");
    let (code, body) = problem(&base, "/orgs/organization-test-acme/purge", &admin.session_jwt).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["permissions"], json!(["documents:delete"]));
    Ok(())
}

/// The dev issuer answers `authorization_check` as Stytch does.
#[tokio::test]
async fn dev_issuer_authorization_checks_answer_like_stytch() -> TestResult {
    let issuer = rbac_issuer().await;
    let http = client();
    let consumer = issuer.create_session("user-1", vec![DevFactor::password()]);
    let consumer = issuer.set_session_roles(&consumer.session_id, &["editor"]).expect("session");
    let member = issuer.create_b2b_session("member-1", "organization-test-acme", "acme", vec![DevFactor::password()]);
    let authenticate = |path: &'static str, body: Value| {
        http.post(format!("{}{path}", issuer.base_url()))
            .basic_auth(issuer.project_id(), Some(issuer.secret()))
            .json(&body)
            .send()
    };
    let consumer_path = "/v1/sessions/authenticate";
    let b2b_path = "/v1/b2b/sessions/authenticate";

    let check = |resource: &str, action: &str| json!({"resource_id": resource, "action": action});
    let ok = authenticate(
        consumer_path,
        json!({"session_token": consumer.session_token, "authorization_check": check("images", "delete")}),
    )
    .await?;
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await?;
    assert_eq!(body["verdict"], json!({"authorized": true, "granting_roles": ["editor"]}));
    // Without a check, no verdict.
    let plain: Value =
        authenticate(consumer_path, json!({"session_token": consumer.session_token})).await?.json().await?;
    assert!(plain.get("verdict").is_none());

    let refused = authenticate(
        consumer_path,
        json!({"session_token": consumer.session_token, "authorization_check": check("documents", "delete")}),
    )
    .await?;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await?;
    assert_eq!(body["error_type"], json!("consumer_session_authorization_error"));
    assert_eq!(body["status_code"], json!(403));

    let b2b_check = |org: &str| json!({"organization_id": org, "resource_id": "stytch.self", "action": "delete"});
    let tenancy = authenticate(
        b2b_path,
        json!({"session_token": member.session_token, "authorization_check": b2b_check("organization-test-globex")}),
    )
    .await?;
    assert_eq!(tenancy.status(), StatusCode::FORBIDDEN);
    assert_eq!(tenancy.json::<Value>().await?["error_type"], json!("session_authorization_tenancy_error"));
    let not_granted = authenticate(
        b2b_path,
        json!({"session_token": member.session_token, "authorization_check":
            {"organization_id": "organization-test-acme", "resource_id": "documents", "action": "read"}}),
    )
    .await?;
    assert_eq!(not_granted.json::<Value>().await?["error_type"], json!("session_authorization_error"));

    // Malformed checks are 400s: B2B needs organization_id, consumer takes none.
    for (path, token, check) in [
        (b2b_path, &member.session_token, check("stytch.self", "delete")),
        (consumer_path, &consumer.session_token, b2b_check("organization-test-acme")),
        (consumer_path, &consumer.session_token, json!({"resource_id": "documents"})),
        (consumer_path, &consumer.session_token, json!("documents:read")),
    ] {
        let response = authenticate(path, json!({"session_token": token, "authorization_check": check})).await?;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{check}");
    }

    // The policy endpoints, with Stytch's envelope and Basic credentials.
    for path in ["/v1/rbac/policy", "/v1/b2b/rbac/policy"] {
        let response =
            http.get(format!("{}{path}", issuer.base_url())).basic_auth(issuer.project_id(), Some(issuer.secret()));
        let body: Value = response.send().await?.json().await?;
        assert_eq!(body["status_code"], json!(200));
        assert!(body["request_id"].is_string());
        assert_eq!(body["policy"], policy());
        let denied = http.get(format!("{}{path}", issuer.base_url())).basic_auth(issuer.project_id(), Some("wrong"));
        assert_eq!(denied.send().await?.status(), StatusCode::UNAUTHORIZED);
    }
    let _ = AuthErrorKind::TenancyMismatch;
    Ok(())
}

tower_stepup::requirement!(CanWriteDocuments = Requirement::permission("documents", "write"));

/// The `Require<R>` extractor loads the policy too, and fails closed without one.
#[tokio::test]
async fn the_extractor_loads_the_policy_too() -> TestResult {
    let issuer = rbac_issuer().await;
    let project = project_with_secret(&issuer);
    let layer = SessionLayer::stytch(&project)
        .with_guard_config(GuardConfig::default().with_stytch_rbac(StytchRbac::new(&project)?))
        .build()
        .await?;
    let handler = |session: tower_stepup::Require<CanWriteDocuments>| async move { session.subject().to_owned() };
    let base = serve(Router::new().route("/write", get(handler)).layer(layer)).await;
    let editor = issuer.stytch_session().role("editor").mint();
    let user = issuer.stytch_session().mint();

    issuer.set_endpoint_failure(Endpoint::RbacPolicy, Failure::Unavailable);
    assert_eq!(status(&base, "/write", &editor).await, StatusCode::SERVICE_UNAVAILABLE);
    issuer.set_endpoint_failure(Endpoint::RbacPolicy, Failure::None);
    assert_eq!(status(&base, "/write", &editor).await, StatusCode::OK);
    assert_eq!(status(&base, "/write", &user).await, StatusCode::FORBIDDEN);
    Ok(())
}

/// An authority that confirms sessions but never sends the check: no verdict.
struct ForgetsTheCheck(tower_stepup::StytchAuthority);

impl tower_stepup::Authority for ForgetsTheCheck {
    fn authenticate<'a>(
        &'a self,
        credential: tower_stepup::AuthorityCredential<'a>,
    ) -> tower_stepup::AuthorityFuture<'a> {
        self.0.authenticate(credential)
    }
    fn authenticate_authorized<'a>(
        &'a self,
        credential: tower_stepup::AuthorityCredential<'a>,
        _check: &'a tower_stepup::AuthorizationCheck,
    ) -> tower_stepup::AuthorityFuture<'a> {
        self.0.authenticate(credential)
    }
}

/// Only an authorizing verdict authorizes; an authority that cannot check fails closed.
#[tokio::test]
async fn no_verdict_no_access() -> TestResult {
    use tower_stepup::Authority as _;
    let issuer = rbac_issuer().await;
    let project = project_with_secret(&issuer);
    let session = issuer.create_session("user-verdict", vec![DevFactor::password()]);
    let editor = issuer.set_session_roles(&session.session_id, &["editor"]).expect("session");
    let app = |layer: SessionLayer| {
        serve(guarded("/write", Guard::authenticated().with_authorization_check("documents", "write")).layer(layer))
    };
    let forgetful = ForgetsTheCheck(tower_stepup::StytchAuthority::new(&project)?);
    assert!(forgetful.check().is_ok());
    let base = app(SessionLayer::stytch(&project).with_authority(forgetful).build().await?).await;
    let (code, body) = problem(&base, "/write", &editor.session_jwt).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "a confirmation without a verdict authorizes nothing");
    assert_eq!(body["permissions"], json!(["documents:write"]));

    // RFC 7662 introspection has no authorization check: 503, never a pass.
    let oidc = SessionLayer::stytch(&project).with_authority(crate::common::introspection(&issuer)).build().await?;
    let base = app(oidc).await;
    assert_eq!(status(&base, "/write", &editor.session_jwt).await, StatusCode::SERVICE_UNAVAILABLE);
    Ok(())
}
