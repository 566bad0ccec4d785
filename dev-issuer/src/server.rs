//! The HTTP side of the dev issuer: routes and handlers.
//!
//! Handlers never panic on client input: every malformed request gets a JSON error.

mod otps;
mod sessions;

pub(crate) use self::otps::EmailOtps;

pub use self::sessions::DEV_TOTP_CODE;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::claims;
use super::session::{Organization, SessionRecord};
use super::shape::DevShape;
use super::token::{DevFactor, SessionClaim, StoredFactor, SESSION_CLAIM};
use super::util::{random_uuid, rfc3339, stable_uuid, time_add, unix_secs};
use super::{lock, DevAlg, Endpoint, Failure, Shared};

type AppState = State<Arc<Shared>>;

/// An early error response (boxed: `Response` is large).
pub(super) type Rejected = Box<Response>;

/// `session_duration_minutes` bounds of Stytch's API reference: 5 minutes to 366 days.
const MIN_SESSION_MINUTES: u64 = 5;
const MAX_SESSION_MINUTES: u64 = 527_040;

/// The body fields each Stytch session endpoint takes (stytch-node's request types and
/// the API reference); any other field is refused, as a request Stytch cannot read.
const AUTHENTICATE_FIELDS: &[&str] =
    &["session_token", "session_jwt", "session_duration_minutes", "session_custom_claims", "authorization_check"];
/// Consumer revoke: exactly one of these.
const REVOKE_FIELDS: &[&str] = &["session_id", "session_token", "session_jwt"];
/// B2B revoke: exactly one of these (no `session_id`).
const B2B_REVOKE_FIELDS: &[&str] = &["member_session_id", "member_id", "session_token", "session_jwt"];

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/sessions/jwks/{project_id}", get(stytch_jwks))
        .route("/v1/b2b/sessions/jwks/{project_id}", get(stytch_jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        // Provider-shaped issuers (see `DevShape::issuer`): the same keys.
        .route(
            "/realms/dev/.well-known/openid-configuration",
            get(|s: AppState| shaped_discovery(s, DevShape::Keycloak)),
        )
        .route("/auth0/.well-known/openid-configuration", get(|s: AppState| shaped_discovery(s, DevShape::Auth0)))
        .route(
            "/11111111-2222-4333-8444-555555555555/v2.0/.well-known/openid-configuration",
            get(|s: AppState| shaped_discovery(s, DevShape::Entra)),
        )
        .route(
            "/oauth2/default/.well-known/openid-configuration",
            get(|s: AppState| shaped_discovery(s, DevShape::Okta)),
        )
        .route("/v1/sessions/authenticate", post(authenticate_consumer))
        .route("/v1/b2b/sessions/authenticate", post(authenticate_b2b))
        .route("/v1/sessions/revoke", post(revoke_consumer))
        .route("/v1/b2b/sessions/revoke", post(revoke_b2b))
        .route("/v1/sessions", get(sessions::list_consumer))
        .route("/v1/b2b/sessions", get(sessions::list_b2b))
        .route("/v1/totps/authenticate", post(sessions::totp_authenticate))
        .route("/v1/rbac/policy", get(super::rbac::policy))
        .route("/v1/b2b/rbac/policy", get(super::rbac::policy))
        .route("/v1/otps/email/login_or_create", post(otps::email_login_or_create))
        .route("/v1/otps/authenticate", post(otps::authenticate))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke_oauth))
        .route("/dev/login", post(dev_login))
        .route("/dev/step-up", post(dev_step_up))
        .with_state(shared)
}

pub(super) fn request_id() -> String {
    format!("request-id-test-{}", random_uuid())
}

/// A Stytch error body: `{status_code, request_id, error_type, error_message, error_url}`.
pub(super) fn stytch_error<R: From<Response>>(status: StatusCode, error_type: &str, message: &str) -> R {
    let body = json!({
        "status_code": status.as_u16(),
        "request_id": request_id(),
        "error_type": error_type,
        "error_message": message,
        "error_url": format!("https://stytch.com/docs/api/errors/{}#{error_type}", status.as_u16()),
    });
    (status, Json(body)).into_response().into()
}

pub(super) fn bad_request<R: From<Response>>(message: &str) -> R {
    stytch_error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// The message Stytch sends with a few well-known error types (an injected error of
/// another type gets a generic one).
fn stytch_message(error_type: &str) -> &'static str {
    match error_type {
        "session_not_found" => "Session could not be found.",
        "unauthorized_credentials" => "Unauthorized credentials.",
        "too_many_requests" => "Too many requests have been made.",
        "bad_request" => "The submitted request is invalid.",
        "use_https" => "Requests must be made over HTTPS.",
        "cname_required_for_http_only_cookies" => {
            "You may not make a request via the default API URL with your HTTP-only cookies setting set to 'ENFORCED'."
        }
        "internal_server_error" => "Oops, something seems to have gone wrong.",
        _ => "Error injected by the dev issuer.",
    }
}

fn session_not_found() -> Response {
    stytch_error(StatusCode::NOT_FOUND, "session_not_found", "Session could not be found.")
}

fn internal_error() -> Response {
    stytch_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_server_error",
        "Oops, something seems to have gone wrong.",
    )
}

/// Counts the request, then applies the injected failure, if any.
pub(super) async fn gate(shared: &Shared, endpoint: Endpoint) -> Option<Response> {
    shared.count(endpoint);
    tracing::debug!(?endpoint, "dev issuer request");
    match shared.failure_for(endpoint) {
        Failure::None => None,
        Failure::Slow(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Failure::Status500 => Some(internal_error()),
        Failure::StytchError { status, error_type } => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(stytch_error(status, error_type, stytch_message(error_type)))
        }
        Failure::Garbage => Some((StatusCode::OK, [(CONTENT_TYPE, "text/plain")], "<html>not json").into_response()),
        Failure::Unavailable => Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(RETRY_AFTER, "1"), (CONTENT_TYPE, "text/plain")],
                "service unavailable",
            )
                .into_response(),
        ),
    }
}

/// `Authorization: Basic …` → (user, password).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Constant-time check of Basic credentials.
fn basic_matches(headers: &HeaderMap, user: &str, password: &str) -> bool {
    basic_credentials(headers).is_some_and(|(u, p)| {
        let user_ok = aws_lc_rs::constant_time::verify_slices_are_equal(u.as_bytes(), user.as_bytes()).is_ok();
        let password_ok = aws_lc_rs::constant_time::verify_slices_are_equal(p.as_bytes(), password.as_bytes()).is_ok();
        user_ok & password_ok
    })
}

pub(super) fn check_project_credentials(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if basic_matches(headers, &shared.project_id, &shared.secret) {
        None
    } else {
        Some(stytch_error(StatusCode::UNAUTHORIZED, "unauthorized_credentials", "Unauthorized credentials."))
    }
}

/// Parses a JSON object body.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, Rejected> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad_request("The request body must be a JSON object.")),
    }
}

/// A string field: absent or `null` → `Ok(None)`; not a string → error.
fn opt_str<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Rejected> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad_request(&format!("{name} must be a string."))),
    }
}

// ---------------------------------------------------------------- JWKS and discovery

fn jwks_response(shared: &Shared) -> Response {
    with_cache_control(shared, Json(shared.jwks()).into_response())
}

/// Adds the configured `Cache-Control` header to a JWKS answer.
fn with_cache_control(shared: &Shared, mut response: Response) -> Response {
    if let Some(value) = shared.cache_control() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(CACHE_CONTROL, value);
        }
    }
    response
}

async fn jwks(State(shared): AppState) -> Response {
    if let Some(failed) = gate(&shared, Endpoint::Jwks).await {
        return failed;
    }
    jwks_response(&shared)
}

/// Stytch's JWKS answer: the keys plus `request_id` and `status_code`, like every
/// Stytch API answer (the API reference's `GET /v1/sessions/jwks/{project_id}`). In
/// Stytch mode only the RS256 keys are served here, as Stytch signs with RS256 only.
async fn stytch_jwks(State(shared): AppState, Path(project_id): Path<String>) -> Response {
    if let Some(failed) = gate(&shared, Endpoint::Jwks).await {
        return failed;
    }
    if project_id != shared.project_id {
        return stytch_error(StatusCode::NOT_FOUND, "project_not_found", "Project could not be found.");
    }
    let mut body = shared.stytch_jwks();
    if let Some(object) = body.as_object_mut() {
        object.insert("request_id".into(), Value::String(request_id()));
        object.insert("status_code".into(), json!(200));
    }
    with_cache_control(&shared, Json(body).into_response())
}

async fn discovery(State(shared): AppState) -> Response {
    if let Some(failed) = gate(&shared, Endpoint::Discovery).await {
        return failed;
    }
    let base = &shared.base_url;
    let algs: Vec<&str> = DevAlg::ALL.iter().map(|a| a.as_str()).collect();
    Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "amr", "sid"],
        "acr_values_supported": ["urn:example:loa:1", "urn:example:loa:2", "urn:example:loa:3"],
    }))
    .into_response()
}

/// The discovery document of a provider-shaped issuer: its own `issuer`, the dev
/// issuer's keys.
async fn shaped_discovery(State(shared): AppState, shape: DevShape) -> Response {
    if let Some(failed) = gate(&shared, Endpoint::Discovery).await {
        return failed;
    }
    let base = &shared.base_url;
    Json(json!({
        "issuer": shape.issuer(base),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": DevAlg::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    }))
    .into_response()
}

// ---------------------------------------------------------------- Stytch sessions

/// Finds the session id named by a `session_jwt` (signature checked, expiry ignored).
fn session_id_from_jwt(shared: &Shared, jwt: &str) -> Option<(String, String)> {
    let claims = shared.verify_stytch_jwt(jwt)?;
    let id = claims.get(SESSION_CLAIM)?.get("id")?.as_str()?.to_owned();
    let sub = claims.get("sub")?.as_str()?.to_owned();
    Some((id, sub))
}

/// Refuses a body with a field outside `allowed` (Stytch answers `400` to fields it
/// does not know, e.g. `session_id` on the B2B revoke endpoint).
fn only_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), Rejected> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => {
            Err(bad_request(&format!("Unknown field {unknown:?}; this endpoint takes {}.", allowed.join(", "))))
        }
        None => Ok(()),
    }
}

/// Which session(s) a request names.
enum Target {
    /// One session, by id (`None`: no such session, answered `session_not_found`).
    Session(Option<String>),
    /// Every session of a user or member (`member_id` on B2B revoke).
    User(String),
}

/// Resolves exactly one of `names` (a subset of `session_id`, `member_session_id`,
/// `member_id`, `session_token`, `session_jwt`) to its target.
/// The session an OTP or TOTP authenticate call is to step up: its `session_token` or
/// `session_jwt`, when the request names one (always a [`Target::Session`]).
fn step_up_target(shared: &Shared, body: &Map<String, Value>) -> Result<Option<Target>, Rejected> {
    let names = ["session_token", "session_jwt"];
    if !names.iter().any(|name| body.get(*name).is_some_and(|v| !v.is_null())) {
        return Ok(None);
    }
    match resolve_target(shared, body, &names)? {
        Target::User(_) => Err(bad_request("Exactly one of session_token, session_jwt is allowed.")),
        session @ Target::Session(_) => Ok(Some(session)),
    }
}

/// Adds `factor` to `user_id`'s live consumer session `id` (a step-up through an
/// authenticate endpoint), extends it by `minutes` and merges `claims` as Stytch does
/// (nested objects merge, a `null` deletes, at most 4 KB). Anything but this user's
/// live consumer session is `session_not_found`; a refused request changes nothing.
fn step_up_session(
    shared: &Shared,
    id: Option<&str>,
    user_id: &str,
    factor: DevFactor,
    minutes: Option<u64>,
    claims: Option<Map<String, Value>>,
    now: SystemTime,
) -> Result<SessionRecord, Response> {
    let mut sessions = lock(&shared.sessions);
    let Some(record) = id.and_then(|id| sessions.get_mut(id)) else {
        return Err(session_not_found());
    };
    if !record.is_live(now) || record.user_id != user_id || record.organization.is_some() {
        return Err(session_not_found());
    }
    let merged = claims.map(|patch| {
        let mut merged = record.custom_claims.clone();
        claims::merge(&mut merged, patch);
        merged
    });
    if merged.as_ref().is_some_and(|merged| !claims::fits(merged)) {
        return Err(stytch_error(
            StatusCode::BAD_REQUEST,
            "custom_claims_too_large",
            "Total custom claims size cannot exceed four kilobytes.",
        ));
    }
    match record.factors.iter_mut().find(|f| f.factor.same_kind(&factor)) {
        Some(existing) => existing.factor = factor,
        None => record.factors.push(StoredFactor::new(factor)),
    }
    record.last_accessed_at = now;
    if let Some(minutes) = minutes {
        record.expires_at = time_add(now, Duration::from_secs(minutes.saturating_mul(60)));
    }
    if let Some(merged) = merged {
        record.custom_claims = merged;
    }
    Ok(record.clone())
}

/// The answer of an OTP or TOTP authenticate call: the session it started or stepped
/// up, else (none asked for) empty tokens and no session, as Stytch answers; `extra`
/// names the factor (`method_id`, `totp_id`, …).
fn factor_answer(
    shared: &Shared,
    record: Option<SessionRecord>,
    user_id: String,
    extra: Map<String, Value>,
) -> Response {
    let mut answer = match record {
        None => json!({
            "request_id": request_id(), "status_code": 200,
            "session": null, "session_token": "", "session_jwt": "",
            "user": { "user_id": user_id, "status": "active" },
        }),
        Some(record) => {
            let Ok(session_jwt) = shared.session_jwt(&record) else {
                return internal_error();
            };
            consumer_body(&record, &session_jwt)
        }
    };
    if let Some(object) = answer.as_object_mut() {
        object.insert("user_id".into(), Value::String(user_id));
        object.extend(extra);
    }
    Json(answer).into_response()
}

impl Target {
    /// The session asked about, when it exists.
    fn session_id(&self) -> Option<&str> {
        match self {
            Target::Session(id) => id.as_deref(),
            Target::User(_) => None,
        }
    }
}

fn resolve_target(shared: &Shared, body: &Map<String, Value>, names: &[&str]) -> Result<Target, Rejected> {
    let mut given = Vec::new();
    for name in names {
        if let Some(value) = opt_str(body, name)? {
            given.push((*name, value));
        }
    }
    let [(name, value)] = given[..] else {
        return Err(bad_request(&format!("Exactly one of {} is required.", names.join(", "))));
    };
    match name {
        "session_token" => Ok(Target::Session(lock(&shared.sessions).id_for_token(value))),
        "session_jwt" => {
            let Some((id, sub)) = session_id_from_jwt(shared, value) else {
                return Err(stytch_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_session_jwt",
                    "The session JWT could not be verified.",
                ));
            };
            let owner_matches = lock(&shared.sessions).get_mut(&id).is_some_and(|r| r.user_id == sub);
            Ok(Target::Session(owner_matches.then_some(id)))
        }
        "member_id" => Ok(Target::User(value.to_owned())),
        // session_id, member_session_id
        _ => Ok(Target::Session(Some(value.to_owned()))),
    }
}

/// Parses `session_duration_minutes`.
fn duration_minutes(body: &Map<String, Value>) -> Result<Option<u64>, Rejected> {
    match body.get("session_duration_minutes") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(m) if (MIN_SESSION_MINUTES..=MAX_SESSION_MINUTES).contains(&m) => Ok(Some(m)),
            _ => Err(stytch_error(
                StatusCode::BAD_REQUEST,
                "invalid_session_duration_minutes",
                "session_duration_minutes is invalid, should be between 5 to 527040 minutes.",
            )),
        },
    }
}

/// Parses `session_custom_claims`.
fn custom_claims(body: &Map<String, Value>) -> Result<Option<Map<String, Value>>, Rejected> {
    match body.get("session_custom_claims") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => {
            if map.keys().any(|k| claims::is_reserved(k)) {
                Err(stytch_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_session_custom_claims",
                    "Custom claims may not use reserved claim names.",
                ))
            } else {
                Ok(Some(map.clone()))
            }
        }
        Some(_) => Err(bad_request("session_custom_claims must be an object.")),
    }
}

pub(super) fn session_claim(record: &SessionRecord) -> SessionClaim<'_> {
    SessionClaim {
        session_id: &record.session_id,
        subject: &record.user_id,
        started_at: record.started_at,
        last_accessed_at: record.last_accessed_at,
        expires_at: Some(record.expires_at),
        factors: &record.factors,
        roles: &record.roles,
        attributes: &record.attributes,
    }
}

fn consumer_body(record: &SessionRecord, session_jwt: &str) -> Value {
    let claim = session_claim(record);
    let user_id = &record.user_id;
    let email_id = format!("email-test-{}", stable_uuid(&[user_id, "email"]));
    let email = format!("dev+{}@example.com", &stable_uuid(&[user_id, "addr"])[..8]);
    json!({
        "request_id": request_id(),
        "status_code": 200,
        "session": {
            "session_id": record.session_id,
            "user_id": user_id,
            "started_at": rfc3339(record.started_at),
            "last_accessed_at": rfc3339(record.last_accessed_at),
            "expires_at": rfc3339(record.expires_at),
            "attributes": record.attributes,
            "authentication_factors": claim.factors_json(),
            "roles": record.roles,
            "custom_claims": record.custom_claims,
        },
        "user": {
            "user_id": user_id,
            "status": "active",
            "name": { "first_name": "Dev", "middle_name": "", "last_name": "User" },
            "emails": [{ "email_id": email_id, "email": email, "verified": true }],
            "phone_numbers": [],
            "webauthn_registrations": [],
            "totps": [],
            "providers": [],
            "roles": record.roles,
            "created_at": rfc3339(record.started_at),
            "trusted_metadata": {},
            "untrusted_metadata": {},
        },
        "session_token": record.token,
        "session_jwt": session_jwt,
    })
}

fn b2b_body(record: &SessionRecord, org: &Organization, session_jwt: &str) -> Value {
    let claim = session_claim(record);
    let member_id = &record.user_id;
    let email = format!("dev+{}@example.com", &stable_uuid(&[member_id, "addr"])[..8]);
    json!({
        "request_id": request_id(),
        "status_code": 200,
        "member_session": {
            "member_session_id": record.session_id,
            "member_id": member_id,
            "organization_id": org.id,
            "organization_slug": org.slug,
            "started_at": rfc3339(record.started_at),
            "last_accessed_at": rfc3339(record.last_accessed_at),
            "expires_at": rfc3339(record.expires_at),
            "authentication_factors": claim.factors_json(),
            "roles": record.roles,
            "custom_claims": record.custom_claims,
        },
        "member": {
            "member_id": member_id,
            "organization_id": org.id,
            "email_address": email,
            "name": "Dev Member",
            "status": "active",
            "roles": [],
            "trusted_metadata": {},
            "untrusted_metadata": {},
        },
        "organization": {
            "organization_id": org.id,
            "organization_name": org.slug,
            "organization_slug": org.slug,
        },
        "member_authenticated": true,
        "session_token": record.token,
        "session_jwt": session_jwt,
    })
}

/// The common start of the Stytch session endpoints: failure mode, project
/// credentials, JSON object body.
async fn session_api_request(
    shared: &Shared,
    endpoint: Endpoint,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, Response> {
    if let Some(failed) = gate(shared, endpoint).await {
        return Err(failed);
    }
    if let Some(denied) = check_project_credentials(shared, headers) {
        return Err(denied);
    }
    json_object(body).map_err(|response| *response)
}

async fn authenticate(shared: Arc<Shared>, headers: HeaderMap, body: Bytes, b2b: bool) -> Response {
    let body = match session_api_request(&shared, Endpoint::SessionsAuthenticate, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let parsed = (|| {
        only_fields(&body, AUTHENTICATE_FIELDS)?;
        let minutes = duration_minutes(&body)?;
        let patch = custom_claims(&body)?;
        let check = super::rbac::parse_check(&body, b2b)?;
        if opt_str(&body, "session_token")?.is_some() && opt_str(&body, "session_jwt")?.is_some() {
            return Err(stytch_error(
                StatusCode::BAD_REQUEST,
                "too_many_session_arguments",
                "Please include at most one of session_token, session_jwt, or intermediate_session_token in an authenticate request, not multiple.",
            ));
        }
        let Target::Session(id) = resolve_target(&shared, &body, &["session_token", "session_jwt"])? else {
            return Err(bad_request("Exactly one of session_token, session_jwt is required."));
        };
        Ok::<_, Rejected>((minutes, patch, check, id))
    })();
    let (minutes, patch, check, id) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let Some(id) = id else {
        return session_not_found();
    };
    let now = SystemTime::now();
    let record = {
        let mut sessions = lock(&shared.sessions);
        let Some(record) = sessions.get_mut(&id) else {
            return session_not_found();
        };
        if !record.is_live(now) || record.organization.is_some() != b2b {
            return session_not_found();
        }
        // A refused check answers 403 and leaves the session untouched.
        let verdict = match check.as_ref().map(|check| super::rbac::authorize(&shared, record, check)).transpose() {
            Ok(verdict) => verdict,
            Err(refused) => return refused,
        };
        // Stytch's merge: nested objects merge, a null deletes (at any depth). Checked
        // before anything changes, so that a refused request leaves the session alone.
        let merged = patch.map(|patch| {
            let mut merged = record.custom_claims.clone();
            claims::merge(&mut merged, patch);
            merged
        });
        if merged.as_ref().is_some_and(|merged| !claims::fits(merged)) {
            return stytch_error(
                StatusCode::BAD_REQUEST,
                "custom_claims_too_large",
                "Total custom claims size cannot exceed four kilobytes.",
            );
        }
        record.last_accessed_at = now;
        if let Some(minutes) = minutes {
            record.expires_at = time_add(now, Duration::from_secs(minutes.saturating_mul(60)));
        }
        if let Some(merged) = merged {
            record.custom_claims = merged;
        }
        (record.clone(), verdict)
    };
    let (record, verdict) = record;
    let Ok(session_jwt) = shared.session_jwt(&record) else {
        return internal_error();
    };
    let mut body = match &record.organization {
        Some(org) => b2b_body(&record, org, &session_jwt),
        None => consumer_body(&record, &session_jwt),
    };
    if let (Some(verdict), Some(object)) = (verdict, body.as_object_mut()) {
        object.insert("verdict".to_owned(), verdict);
    }
    Json(body).into_response()
}

async fn authenticate_consumer(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    authenticate(shared, headers, body, false).await
}

async fn authenticate_b2b(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    authenticate(shared, headers, body, true).await
}

async fn revoke(shared: Arc<Shared>, headers: HeaderMap, body: Bytes, b2b: bool) -> Response {
    let body = match session_api_request(&shared, Endpoint::SessionsRevoke, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let fields = if b2b { B2B_REVOKE_FIELDS } else { REVOKE_FIELDS };
    let target = match only_fields(&body, fields).and_then(|()| resolve_target(&shared, &body, fields)) {
        Ok(target) => target,
        Err(response) => return *response,
    };
    let now = SystemTime::now();
    let revoked = {
        let mut sessions = lock(&shared.sessions);
        // Each API revokes only its own kind of session (consumer or B2B member).
        let ids: Vec<String> = match target {
            Target::Session(Some(id)) => vec![id],
            Target::Session(None) => Vec::new(),
            Target::User(member_id) => sessions.ids_of_user(&member_id),
        };
        let mut revoked = 0_usize;
        for id in ids {
            let kind_matches = sessions.get_mut(&id).is_some_and(|r| r.is_live(now) && r.organization.is_some() == b2b);
            if kind_matches && sessions.remove(&id) {
                revoked += 1;
            }
        }
        revoked
    };
    if revoked > 0 {
        Json(json!({ "request_id": request_id(), "status_code": 200 })).into_response()
    } else {
        session_not_found()
    }
}

async fn revoke_consumer(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    revoke(shared, headers, body, false).await
}

async fn revoke_b2b(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    revoke(shared, headers, body, true).await
}

// ---------------------------------------------------------------- introspection

fn inactive() -> Response {
    Json(json!({ "active": false })).into_response()
}

/// The prelude of the OAuth endpoints (RFC 7662, RFC 7009): `client_secret_basic`,
/// then the form's `token`.
fn oauth_client_token(
    shared: &Shared,
    headers: &HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<String, Response> {
    if !basic_matches(headers, &shared.client_id, &shared.client_secret) {
        let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"dev-issuer\""));
        return Err(response);
    }
    let Ok(Form(mut form)) = form else {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request"));
    };
    form.remove("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth_error(StatusCode::BAD_REQUEST, "invalid_request"))
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn introspect(
    State(shared): AppState,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    if let Some(failed) = gate(&shared, Endpoint::Introspect).await {
        return failed;
    }
    let token = match oauth_client_token(&shared, &headers, form) {
        Ok(token) => token,
        Err(response) => return response,
    };
    let now = SystemTime::now();
    let record = lock(&shared.opaque).get(token.as_str()).cloned();
    if let Some(record) = record {
        if now >= record.expires_at {
            return inactive();
        }
        let spec = &record.spec;
        let mut body = Map::new();
        body.insert("active".into(), Value::Bool(true));
        body.insert("sub".into(), Value::String(spec.subject.clone()));
        body.insert(
            "client_id".into(),
            Value::String(spec.client_id.clone().unwrap_or_else(|| shared.client_id.clone())),
        );
        body.insert("iss".into(), Value::String(shared.base_url.clone()));
        body.insert("iat".into(), json!(unix_secs(record.issued_at)));
        body.insert("exp".into(), json!(unix_secs(record.expires_at)));
        body.insert("token_type".into(), Value::String("Bearer".into()));
        if let Some(scope) = &spec.scope {
            body.insert("scope".into(), Value::String(scope.clone()));
        }
        if let Some(acr) = &spec.acr {
            body.insert("acr".into(), Value::String(acr.clone()));
        }
        if !spec.amr.is_empty() {
            body.insert("amr".into(), json!(spec.amr));
        }
        if let Some(auth_time) = spec.auth_time {
            body.insert("auth_time".into(), json!(unix_secs(auth_time)));
        }
        if let Some(aud) = &spec.audience {
            body.insert("aud".into(), Value::String(aud.clone()));
        }
        if let Some(sid) = &spec.sid {
            body.insert("sid".into(), Value::String(sid.clone()));
        }
        for (k, v) in &spec.extra {
            body.insert(k.clone(), v.clone());
        }
        return Json(Value::Object(body)).into_response();
    }
    // A JWT access token minted by this issuer: active while signed by a served key,
    // issued by this issuer, and inside its validity window.
    if let Some(Value::Object(mut claims)) = shared.verify_compact(&token) {
        let now_secs = unix_secs(now);
        let iss_ok = claims.get("iss").and_then(Value::as_str) == Some(shared.base_url.as_str());
        let exp_ok = claims.get("exp").and_then(Value::as_i64).is_some_and(|exp| now_secs < exp);
        let nbf_ok = claims.get("nbf").and_then(Value::as_i64).is_none_or(|nbf| nbf <= now_secs);
        if iss_ok && exp_ok && nbf_ok {
            claims.insert("active".into(), Value::Bool(true));
            claims.insert("token_type".into(), Value::String("Bearer".into()));
            return Json(Value::Object(claims)).into_response();
        }
    }
    inactive()
}

/// RFC 7009 revocation (`client_secret_basic`): ends an opaque access token; `200`
/// for any token, known or not (§2.2), including JWT access tokens, which stay
/// valid until they expire (nothing to revoke in a self-contained token).
async fn revoke_oauth(
    State(shared): AppState,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    if let Some(failed) = gate(&shared, Endpoint::SessionsRevoke).await {
        return failed;
    }
    let token = match oauth_client_token(&shared, &headers, form) {
        Ok(token) => token,
        Err(response) => return response,
    };
    lock(&shared.opaque).remove(token.as_str());
    StatusCode::OK.into_response()
}

// ---------------------------------------------------------------- dev conveniences

fn dev_error<R: From<Response>>(status: StatusCode, message: &str) -> R {
    (status, Json(json!({ "error": message }))).into_response().into()
}

fn parse_factor(name: &str) -> Result<DevFactor, Rejected> {
    DevFactor::from_short_name(name).ok_or_else(|| {
        dev_error(
            StatusCode::BAD_REQUEST,
            "unknown factor; use password, totp, webauthn, sms_otp, email_otp, magic_link or oauth_google",
        )
    })
}

/// `POST /dev/login`: starts a session. Like Stytch, it records where the session
/// began as `attributes`: the body's `attributes` (`ip_address`, `user_agent`), as a
/// backend passes them to Stytch's authenticate endpoints; without them, what the
/// request itself shows (peer address, `User-Agent`), as when Stytch's frontend SDK
/// calls Stytch from the browser. Unknown members are `""`, as Stytch sends them.
async fn dev_login(
    State(shared): AppState,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match json_object(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    match opt_str(&body, "shape") {
        Ok(None | Some("stytch")) => {}
        Ok(Some(name)) => {
            return match DevShape::parse(name) {
                Some(shape) => shaped_login(&shared, shape, &body).unwrap_or_else(|response| *response),
                None => dev_error(
                    StatusCode::BAD_REQUEST,
                    "unknown shape; use stytch, rfc9068, keycloak, auth0, entra or okta",
                ),
            }
        }
        Err(response) => return *response,
    }
    let parsed = (|| {
        let user_id = opt_str(&body, "user_id")?.unwrap_or(super::DEFAULT_SUBJECT);
        let factors = match body.get("factors") {
            None | Some(Value::Null) => vec![DevFactor::password()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item.as_str() {
                    Some(name) => parse_factor(name),
                    None => Err(bad_request("factors must be strings.")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(bad_request("factors must be an array of strings.")),
        };
        let organization = match (opt_str(&body, "organization_id")?, opt_str(&body, "organization_slug")?) {
            (Some(id), slug) => Some(Organization { id: id.to_owned(), slug: slug.unwrap_or(id).to_owned() }),
            (None, _) => None,
        };
        let attributes = match body.get("attributes") {
            None | Some(Value::Null) => {
                let user_agent = headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok());
                json!({ "ip_address": peer.ip().to_string(), "user_agent": user_agent.unwrap_or("") })
            }
            Some(Value::Object(given)) => {
                let member = |name: &str| match given.get(name) {
                    None | Some(Value::Null) => Ok(""),
                    Some(Value::String(value)) => Ok(value.as_str()),
                    Some(_) => Err(bad_request::<Rejected>("attributes members must be strings.")),
                };
                json!({ "ip_address": member("ip_address")?, "user_agent": member("user_agent")? })
            }
            Some(_) => return Err(bad_request("attributes must be an object.")),
        };
        Ok::<_, Rejected>((user_id.to_owned(), factors, organization, attributes))
    })();
    let (user_id, factors, organization, attributes) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    match shared.create_session_with(&user_id, factors, organization, attributes) {
        Ok(session) => Json(session).into_response(),
        Err(_) => internal_error(),
    }
}

/// Fields `/dev/login` takes for a provider shape (anything else is refused).
const SHAPED_LOGIN_FIELDS: &[&str] = &[
    "shape",
    "user_id",
    "factors",
    "roles",
    "client_roles",
    "roles_claim",
    "scope",
    "permissions",
    "acr",
    "audience",
    "client_id",
    "custom_claims",
];

/// An array of strings, if present.
fn opt_strings(body: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, Rejected> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| bad_request(&format!("{name} must be strings.")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad_request(&format!("{name} must be an array of strings."))),
    }
}

/// `POST /dev/login` with a provider `shape`: mints an access token shaped like that
/// provider's (see `DevShape`), for the user and factors given.
fn shaped_login(shared: &Arc<Shared>, shape: DevShape, body: &Map<String, Value>) -> Result<Response, Rejected> {
    if let Some(unknown) = body.keys().find(|key| !SHAPED_LOGIN_FIELDS.contains(&key.as_str())) {
        return Err(bad_request(&format!("unknown field {unknown} for shape {shape}.")));
    }
    let factor_names = opt_strings(body, "factors")?.unwrap_or_else(|| vec!["password".to_owned()]);
    for name in &factor_names {
        parse_factor(name)?;
    }
    let mut amr: Vec<String> = Vec::new();
    for name in &factor_names {
        let method = DevShape::amr_of_factor(&name.to_ascii_lowercase()).to_owned();
        if !amr.contains(&method) {
            amr.push(method);
        }
    }
    let mut token =
        super::AccessTokenBuilder::new(shared).shape(shape).amr(&amr.iter().map(String::as_str).collect::<Vec<_>>());
    token = token.auth_time(SystemTime::now()).sid(random_uuid());
    if let Some(user) = opt_str(body, "user_id")? {
        token = token.subject(user);
    }
    if let Some(roles) = opt_strings(body, "roles")? {
        token = token.roles(roles);
    }
    match body.get("client_roles") {
        None | Some(Value::Null) => {}
        Some(Value::Object(clients)) => {
            for (client, roles) in clients {
                let roles: Vec<String> = match roles {
                    Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                    _ => return Err(bad_request("client_roles must map client ids to arrays of strings.")),
                };
                token = token.client_roles(client.clone(), roles);
            }
        }
        Some(_) => return Err(bad_request("client_roles must be an object.")),
    }
    if let Some(claim) = opt_str(body, "roles_claim")? {
        token = token.roles_claim(claim);
    }
    if let Some(scope) = opt_str(body, "scope")? {
        token = token.scope(scope);
    }
    if let Some(permissions) = opt_strings(body, "permissions")? {
        token = token.permissions(permissions);
    }
    if let Some(acr) = opt_str(body, "acr")? {
        token = token.acr(acr);
    }
    if let Some(audience) = opt_str(body, "audience")? {
        token = token.audience(audience);
    }
    if let Some(client) = opt_str(body, "client_id")? {
        token = token.client_id(client);
    }
    match body.get("custom_claims") {
        None | Some(Value::Null) => {}
        Some(Value::Object(custom)) => {
            for (name, value) in custom {
                token = token.custom_claim(name.clone(), value.clone());
            }
        }
        Some(_) => return Err(bad_request("custom_claims must be an object.")),
    }
    let access_token = token.mint();
    Ok(Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": shared.jwt_lifetime.as_secs(),
        "shape": shape.as_str(),
        "issuer": shape.issuer(&shared.base_url),
    }))
    .into_response())
}

async fn dev_step_up(State(shared): AppState, body: Bytes) -> Response {
    let body = match json_object(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let parsed = (|| {
        let token =
            opt_str(&body, "session_token")?.ok_or_else(|| bad_request::<Rejected>("session_token is required."))?;
        let factor =
            parse_factor(opt_str(&body, "factor")?.ok_or_else(|| bad_request::<Rejected>("factor is required."))?)?;
        Ok::<_, Rejected>((token.to_owned(), factor))
    })();
    let (token, factor) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    match shared.add_factor(&token, factor) {
        Some(Ok(session)) => Json(session).into_response(),
        Some(Err(_)) => internal_error(),
        None => session_not_found(),
    }
}
