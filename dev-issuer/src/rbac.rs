//! Stytch RBAC: the project's policy (`GET /v1/rbac/policy`, `GET /v1/b2b/rbac/policy`)
//! and `authorization_check` on `sessions/authenticate`.
//!
//! Semantics from stytch-node 14 (`lib/shared/rbac_local.ts`: a role grants an action
//! when one of its permissions names the resource exactly and lists the action or
//! `*`), error bodies from Stytch's 403 error reference
//! (`consumer_session_authorization_error`, `session_authorization_error`,
//! `session_authorization_tenancy_error`).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::server::{bad_request, gate, request_id, stytch_error, Rejected};
use super::session::SessionRecord;
use super::{lock, DevIssuer, DevIssuerConfig, DevSession, Endpoint, Shared};

/// The fields of `authorization_check`: consumer, then B2B.
const CHECK_FIELDS: &[&str] = &["resource_id", "action"];
const B2B_CHECK_FIELDS: &[&str] = &["organization_id", "resource_id", "action"];

/// The policy a dev issuer serves unless configured otherwise: Stytch's default
/// roles (`stytch_user`; B2B `stytch_member`, `stytch_admin` with the `stytch.*`
/// resources), nothing for custom resources.
pub(crate) fn default_policy() -> Value {
    let all = |resource: &str| json!({ "resource_id": resource, "actions": ["*"] });
    json!({
        "roles": [
            { "role_id": "stytch_user", "description": "Granted to all Users", "permissions": [] },
            { "role_id": "stytch_member", "description": "Granted to all Members", "permissions": [all("stytch.self")] },
            { "role_id": "stytch_admin", "description": "Granted to Organization admins", "permissions": [
                all("stytch.organization"), all("stytch.member"), all("stytch.sso"), all("stytch.self")
            ]},
        ],
        "resources": [],
        "scopes": [],
    })
}

/// The served policy.
#[derive(Debug)]
pub(crate) struct RbacState {
    policy: Mutex<Value>,
}

impl RbacState {
    pub(crate) fn new(policy: Option<Value>) -> Self {
        Self { policy: Mutex::new(policy.unwrap_or_else(default_policy)) }
    }
}

/// `GET /v1/rbac/policy` and `GET /v1/b2b/rbac/policy` (HTTP Basic).
pub(crate) async fn policy(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(failed) = gate(&shared, Endpoint::RbacPolicy).await {
        return failed;
    }
    if let Some(denied) = super::server::check_project_credentials(&shared, &headers) {
        return denied;
    }
    let policy = lock(&shared.rbac.policy).clone();
    Json(json!({ "request_id": request_id(), "status_code": 200, "policy": policy })).into_response()
}

/// A parsed `authorization_check`.
pub(crate) struct Check {
    organization_id: Option<String>,
    resource_id: String,
    action: String,
}

/// Reads `authorization_check` from an authenticate body: `400` when it is not an
/// object of exactly the fields the endpoint takes, all strings.
pub(crate) fn parse_check(body: &Map<String, Value>, b2b: bool) -> Result<Option<Check>, Rejected> {
    let check = match body.get("authorization_check") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(check)) => check,
        Some(_) => return Err(bad_request("authorization_check must be an object.")),
    };
    let fields = if b2b { B2B_CHECK_FIELDS } else { CHECK_FIELDS };
    if check.keys().any(|k| !fields.contains(&k.as_str())) {
        return Err(bad_request(&format!("authorization_check takes {}.", fields.join(", "))));
    }
    let field = |name: &str| -> Result<String, Rejected> {
        match check.get(name) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
            _ => Err(bad_request(&format!("authorization_check.{name} is required."))),
        }
    };
    Ok(Some(Check {
        organization_id: if b2b { Some(field("organization_id")?) } else { None },
        resource_id: field("resource_id")?,
        action: field("action")?,
    }))
}

/// Judges `check` for the session in `record`: the `verdict`, or Stytch's `403`.
/// Tenancy first (B2B), then roles, as Stytch's SDKs do.
pub(crate) fn authorize(shared: &Shared, record: &SessionRecord, check: &Check) -> Result<Value, Response> {
    if let Some(wanted) = &check.organization_id {
        if record.organization.as_ref().is_none_or(|org| &org.id != wanted) {
            return Err(stytch_error(
                StatusCode::FORBIDDEN,
                "session_authorization_tenancy_error",
                "OrganizationID in AuthorizationCheck request does not match session's Organization ID",
            ));
        }
    }
    let policy = lock(&shared.rbac.policy).clone();
    let granting: Vec<&String> =
        record.roles.iter().filter(|role| grants(&policy, role, &check.resource_id, &check.action)).collect();
    if granting.is_empty() {
        let (error_type, who) = if record.organization.is_some() {
            ("session_authorization_error", "Member")
        } else {
            ("consumer_session_authorization_error", "User")
        };
        return Err(stytch_error(
            StatusCode::FORBIDDEN,
            error_type,
            &format!("The {who} is not authorized to perform the requested action on that resource."),
        ));
    }
    Ok(json!({ "authorized": true, "granting_roles": granting }))
}

/// Whether `role` of `policy` may take `action` on `resource`: the resource matches
/// exactly, `*` is a wildcard for actions only.
fn grants(policy: &Value, role: &str, resource: &str, action: &str) -> bool {
    let roles = policy.get("roles").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    roles.iter().filter(|r| r.get("role_id").and_then(Value::as_str) == Some(role)).any(|r| {
        let permissions = r.get("permissions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        permissions.iter().any(|p| {
            let actions = p.get("actions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            p.get("resource_id").and_then(Value::as_str) == Some(resource)
                && actions.iter().any(|a| a.as_str() == Some(action) || a.as_str() == Some("*"))
        })
    })
}

impl DevIssuerConfig {
    /// The RBAC policy served by `GET /v1/rbac/policy` and `GET /v1/b2b/rbac/policy`
    /// and applied to `authorization_check`: Stytch's policy object
    /// (`{"roles": [{"role_id", "description", "permissions": [{"resource_id",
    /// "actions"}]}], "resources": [...], "scopes": [...]}`). Default: Stytch's
    /// default roles only (`stytch_user`, `stytch_member`, `stytch_admin`).
    #[must_use]
    pub fn with_rbac_policy(mut self, policy: Value) -> Self {
        self.rbac_policy = Some(policy);
        self
    }
}

impl DevIssuer {
    /// Replaces the RBAC policy (as an edit in Stytch's dashboard does): served from
    /// the next request on.
    pub fn set_rbac_policy(&self, policy: Value) {
        *lock(&self.shared().rbac.policy) = policy;
    }

    /// Sets the roles of a stored session (as a role assignment at Stytch does) and
    /// returns it with a new JWT carrying them; `None` if the session is unknown.
    /// Earlier JWTs keep the roles they were minted with.
    ///
    /// # Panics
    ///
    /// If the crypto library fails to sign.
    pub fn set_session_roles(&self, session_id: &str, roles: &[&str]) -> Option<DevSession> {
        let record = {
            let mut sessions = lock(&self.shared().sessions);
            let record = sessions.get_mut(session_id)?;
            record.roles = roles.iter().map(|r| (*r).to_owned()).collect();
            record.clone()
        };
        Some(self.shared().dev_session(&record).unwrap_or_else(|e| panic!("{e}")))
    }
}
