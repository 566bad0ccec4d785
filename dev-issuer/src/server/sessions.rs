//! A user's sessions and step-up, as Stytch serves them: `GET /v1/sessions`,
//! `GET /v1/b2b/sessions` ("sign out other devices") and `POST /v1/totps/authenticate`
//! (a step-up of an existing session).
//!
//! Shapes from stytch-node 14: `SessionsGetRequest` / `SessionsGetResponse`
//! (`lib/b2c/sessions.ts`: `user_id` → `sessions`), `B2BSessionsGetRequest` /
//! `B2BSessionsGetResponse` (`lib/b2b/sessions.ts`: `organization_id`, `member_id`
//! → `member_sessions`), `TOTPsAuthenticateRequest` / `TOTPsAuthenticateResponse`
//! (`lib/b2c/totps.ts`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{
    b2b_body, bad_request, check_project_credentials, consumer_body, custom_claims, duration_minutes, factor_answer,
    gate, only_fields, request_id, session_api_request, step_up_session, step_up_target, stytch_error, AppState,
    Rejected,
};
use crate::session::SessionRecord;
use crate::token::{DevFactor, StoredFactor};
use crate::util::stable_uuid;
use crate::{lock, Endpoint, Shared};

/// The one TOTP code the dev issuer's `POST /v1/totps/authenticate` accepts, for
/// every user (it keeps no TOTP secrets), as Stytch's test environment has fixed
/// sandbox codes.
pub const DEV_TOTP_CODE: &str = "000000";

/// The body fields of `POST /v1/totps/authenticate`.
const TOTP_FIELDS: &[&str] = &[
    "user_id",
    "totp_code",
    "session_token",
    "session_jwt",
    "session_duration_minutes",
    "session_custom_claims",
    "telemetry_id",
];

/// Live sessions of one kind (consumer or B2B) of `user_id`, in start order.
fn live_sessions(shared: &Shared, user_id: &str, organization_id: Option<&str>) -> Vec<SessionRecord> {
    let now = SystemTime::now();
    let mut sessions = lock(&shared.sessions);
    let mut records: Vec<SessionRecord> = sessions
        .ids_of_user(user_id)
        .into_iter()
        .filter_map(|id| sessions.get_mut(&id).map(|r| r.clone()))
        .filter(|r| r.is_live(now) && r.organization.as_ref().map(|o| o.id.as_str()) == organization_id)
        .collect();
    records.sort_by_key(|r| r.started_at);
    records
}

/// A required, non-empty query parameter.
fn required<'a>(query: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Response> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| *bad_request::<Rejected>(&format!("{name} is required.")))
}

/// The common start of the listing endpoints: failure mode, project credentials.
async fn listing_request(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if let Some(failed) = gate(shared, Endpoint::SessionsGet).await {
        return Some(failed);
    }
    check_project_credentials(shared, headers)
}

/// `GET /v1/sessions?user_id=`: `{request_id, status_code, sessions}`, the user's
/// live consumer sessions (an unknown user has none).
pub(super) async fn list_consumer(
    State(shared): AppState,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = listing_request(&shared, &headers).await {
        return refused;
    }
    let user_id = match required(&query, "user_id") {
        Ok(user_id) => user_id,
        Err(response) => return response,
    };
    let sessions: Vec<Value> =
        live_sessions(&shared, user_id, None).iter().map(|r| consumer_body(r, "")["session"].clone()).collect();
    Json(json!({ "request_id": request_id(), "status_code": 200, "sessions": sessions })).into_response()
}

/// `GET /v1/b2b/sessions?organization_id=&member_id=`: `{request_id, status_code,
/// member_sessions}`, the member's live sessions in that organization.
pub(super) async fn list_b2b(
    State(shared): AppState,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = listing_request(&shared, &headers).await {
        return refused;
    }
    let (organization_id, member_id) = match (required(&query, "organization_id"), required(&query, "member_id")) {
        (Ok(organization), Ok(member)) => (organization, member),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let sessions: Vec<Value> = live_sessions(&shared, member_id, Some(organization_id))
        .iter()
        .filter_map(|r| r.organization.as_ref().map(|org| b2b_body(r, org, "")["member_session"].clone()))
        .collect();
    Json(json!({ "request_id": request_id(), "status_code": 200, "member_sessions": sessions })).into_response()
}

/// `POST /v1/totps/authenticate`: checks `totp_code` for `user_id` and, with a
/// `session_token` or `session_jwt` of that user's live consumer session, adds a
/// TOTP factor to it (a step-up: same session id and token, a new JWT); without
/// one, starts a session when `session_duration_minutes` is given. A wrong code
/// gets `404 otp_code_not_found` (the dev issuer's choice, the error Stytch's OTP
/// endpoints give), a session of another user `404 session_not_found`.
pub(super) async fn totp_authenticate(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let body = match session_api_request(&shared, Endpoint::TotpsAuthenticate, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let parsed = (|| {
        only_fields(&body, TOTP_FIELDS)?;
        let user_id =
            super::opt_str(&body, "user_id")?.ok_or_else(|| bad_request::<Rejected>("user_id is required."))?;
        let code =
            super::opt_str(&body, "totp_code")?.ok_or_else(|| bad_request::<Rejected>("totp_code is required."))?;
        let minutes = duration_minutes(&body)?;
        let claims = custom_claims(&body)?;
        let session = step_up_target(&shared, &body)?;
        Ok::<_, Rejected>((user_id.to_owned(), code.to_owned(), minutes, claims, session))
    })();
    let (user_id, code, minutes, claims, session) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    if code != DEV_TOTP_CODE {
        return stytch_error(StatusCode::NOT_FOUND, "otp_code_not_found", "The OTP code could not be found.");
    }
    let now = SystemTime::now();
    let record = match session {
        // A step-up: the named session must be this user's live consumer session.
        Some(target) => {
            match step_up_session(&shared, target.session_id(), &user_id, DevFactor::totp(), minutes, claims, now) {
                Ok(record) => Some(record),
                Err(refused) => return refused,
            }
        }
        None => minutes.map(|minutes| {
            let lifetime = Duration::from_secs(minutes.saturating_mul(60));
            let record = SessionRecord::new(&user_id, vec![StoredFactor::new(DevFactor::totp())], lifetime, None);
            lock(&shared.sessions).insert(record.clone());
            record
        }),
    };
    let totp_id = format!("totp-test-{}", stable_uuid(&[&user_id, "totp"]));
    let mut extra = Map::new();
    extra.insert("totp_id".into(), Value::String(totp_id));
    factor_answer(&shared, record, user_id, extra)
}
