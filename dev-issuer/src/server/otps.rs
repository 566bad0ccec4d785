//! Email one-time passcodes, as Stytch serves them: `POST /v1/otps/email/login_or_create`
//! "sends" a code (the dev issuer keeps it for [`DevIssuer::sent_email_otp`](crate::DevIssuer::sent_email_otp)
//! instead of mailing it) and `POST /v1/otps/authenticate` checks it, starting a
//! session or adding the factor to an existing one.
//!
//! Shapes from stytch-node 14: `OTPsEmailLoginOrCreateRequest` / `…Response`
//! (`lib/b2c/otps_email.ts`: `email`, `expiration_minutes` 1..=10, default 2 →
//! `user_id`, `email_id`, `user_created`) and `OTPsAuthenticateRequest` /
//! `OTPsAuthenticateResponse` (`lib/b2c/otps.ts`: `method_id`, `code`, optional
//! session fields → `user_id`, `method_id`, `session_token`, `session_jwt`,
//! `session`, `user`, `reset_sessions`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{
    bad_request, custom_claims, duration_minutes, factor_answer, only_fields, opt_str, request_id, session_api_request,
    step_up_session, step_up_target, stytch_error, AppState, Rejected,
};
use crate::session::SessionRecord;
use crate::token::{DevFactor, StoredFactor};
use crate::util::{random_bytes, stable_uuid, time_add};
use crate::{lock, Endpoint, Shared};

/// The body fields of `POST /v1/otps/email/login_or_create`.
const SEND_FIELDS: &[&str] = &[
    "email",
    "expiration_minutes",
    "attributes",
    "create_user_as_pending",
    "locale",
    "login_template_id",
    "signup_template_id",
];

/// The body fields of `POST /v1/otps/authenticate`.
const AUTHENTICATE_FIELDS: &[&str] = &[
    "method_id",
    "code",
    "attributes",
    "options",
    "session_token",
    "session_jwt",
    "session_duration_minutes",
    "session_custom_claims",
    "telemetry_id",
];

/// Wrong codes a passcode survives; then it is gone (a 6-digit code must not be
/// guessable by trying them all). The dev issuer's choice: Stytch rate-limits too,
/// without documenting the number.
const MAX_ATTEMPTS: u8 = 5;

/// The passcodes sent and not used yet, and the addresses that have a user.
#[derive(Debug, Default)]
pub(crate) struct EmailOtps {
    /// By `email_id` (the `method_id` of `otps/authenticate`).
    pending: HashMap<String, PendingOtp>,
    known: HashSet<String>,
}

#[derive(Debug)]
struct PendingOtp {
    code: String,
    email: String,
    user_id: String,
    expires_at: SystemTime,
    failures: u8,
}

impl EmailOtps {
    /// The live code last sent to `email`.
    pub(crate) fn sent_to(&self, email: &str, now: SystemTime) -> Option<String> {
        let email = email.trim().to_ascii_lowercase();
        self.pending.values().find(|p| p.email == email && p.expires_at > now).map(|p| p.code.clone())
    }
}

/// The user and email ids of an address: stable, so the same address is the same user.
fn ids_for(email: &str) -> (String, String) {
    let user_id = format!("user-test-{}", stable_uuid(&[email, "email-user"]));
    // The `email_id` the session responses list for this user (`consumer_body`).
    let email_id = format!("email-test-{}", stable_uuid(&[&user_id, "email"]));
    (user_id, email_id)
}

/// A plausible address: one `@`, something on each side, no spaces or controls.
fn valid_email(email: &str) -> bool {
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && email.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii())
}

/// The `attributes` the app passes (`ip_address`, `user_agent` of its user): what
/// a session started by this call records. Stytch knows nothing of the user's
/// browser but what the app tells it, so without them both are empty.
fn attributes_of(body: &serde_json::Map<String, Value>) -> Result<Value, Rejected> {
    let given = match body.get("attributes") {
        None | Some(Value::Null) => return Ok(json!({ "ip_address": "", "user_agent": "" })),
        Some(Value::Object(given)) => given,
        Some(_) => return Err(bad_request("attributes must be an object.")),
    };
    let member = |name: &str| match given.get(name) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(value)) => Ok(value.as_str()),
        Some(_) => Err(bad_request::<Rejected>("attributes members must be strings.")),
    };
    Ok(json!({ "ip_address": member("ip_address")?, "user_agent": member("user_agent")? }))
}

/// Six random digits.
fn new_code() -> String {
    format!("{:06}", u32::from_le_bytes(random_bytes::<4>()) % 1_000_000)
}

/// `POST /v1/otps/email/login_or_create`: `{request_id, status_code, user_id,
/// email_id, user_created}`. A new code replaces the address's earlier one.
pub(super) async fn email_login_or_create(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let body = match session_api_request(&shared, Endpoint::OtpsEmailLoginOrCreate, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let parsed = (|| {
        only_fields(&body, SEND_FIELDS)?;
        let email = opt_str(&body, "email")?.ok_or_else(|| bad_request::<Rejected>("email is required."))?;
        let email = email.trim().to_ascii_lowercase();
        if !valid_email(&email) {
            return Err(stytch_error(StatusCode::BAD_REQUEST, "invalid_email", "Email format is invalid."));
        }
        let minutes = match body.get("expiration_minutes") {
            None | Some(Value::Null) => 2,
            Some(value) => match value.as_u64() {
                Some(minutes @ 1..=10) => minutes,
                _ => return Err(bad_request("expiration_minutes must be between 1 and 10.")),
            },
        };
        Ok::<_, Rejected>((email, minutes))
    })();
    let (email, minutes) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let (user_id, email_id) = ids_for(&email);
    let expires_at = time_add(SystemTime::now(), Duration::from_secs(minutes * 60));
    let user_created = {
        let mut otps = lock(&shared.email_otps);
        let created = otps.known.insert(email.clone());
        let pending = PendingOtp { code: new_code(), email, user_id: user_id.clone(), expires_at, failures: 0 };
        otps.pending.insert(email_id.clone(), pending);
        created
    };
    Json(json!({
        "request_id": request_id(), "status_code": 200,
        "user_id": user_id, "email_id": email_id, "user_created": user_created,
    }))
    .into_response()
}

/// Why a code was not accepted: every case is Stytch's `404 otp_code_not_found`,
/// so that a guesser learns nothing.
fn code_not_found() -> Response {
    stytch_error(StatusCode::NOT_FOUND, "otp_code_not_found", "The OTP code could not be found.")
}

/// Checks `code` for `method_id`: the code is used up on success, and after
/// [`MAX_ATTEMPTS`] failures. Returns the user id.
fn take_code(shared: &Shared, method_id: &str, code: &str) -> Option<String> {
    let mut otps = lock(&shared.email_otps);
    let pending = otps.pending.get_mut(method_id)?;
    if pending.expires_at <= SystemTime::now() {
        otps.pending.remove(method_id);
        return None;
    }
    if pending.code != code {
        pending.failures += 1;
        if pending.failures >= MAX_ATTEMPTS {
            otps.pending.remove(method_id);
        }
        return None;
    }
    otps.pending.remove(method_id).map(|p| p.user_id)
}

/// `POST /v1/otps/authenticate`: checks `code` for `method_id` (an `email_id`);
/// with a `session_token` or `session_jwt` of that user's live session, adds an
/// email OTP factor to it; else starts a session when `session_duration_minutes`
/// is given (Stytch's rule). A wrong, used or expired code is `404
/// otp_code_not_found`; a session of another user `404 session_not_found`.
pub(super) async fn authenticate(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Response {
    let body = match session_api_request(&shared, Endpoint::OtpsAuthenticate, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let parsed = (|| {
        only_fields(&body, AUTHENTICATE_FIELDS)?;
        let method_id =
            opt_str(&body, "method_id")?.ok_or_else(|| bad_request::<Rejected>("method_id is required."))?;
        let code = opt_str(&body, "code")?.ok_or_else(|| bad_request::<Rejected>("code is required."))?;
        let minutes = duration_minutes(&body)?;
        let claims = custom_claims(&body)?;
        let session = step_up_target(&shared, &body)?;
        let attributes = attributes_of(&body)?;
        Ok::<_, Rejected>((method_id.to_owned(), code.to_owned(), minutes, claims, session, attributes))
    })();
    let (method_id, code, minutes, claims, session, attributes) = match parsed {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let Some(user_id) = take_code(&shared, &method_id, &code) else {
        return code_not_found();
    };
    let now = SystemTime::now();
    let record = match session {
        Some(target) => {
            match step_up_session(&shared, target.session_id(), &user_id, DevFactor::email_otp(), minutes, claims, now)
            {
                Ok(record) => Some(record),
                Err(refused) => return refused,
            }
        }
        None => minutes.map(|minutes| {
            let lifetime = Duration::from_secs(minutes.saturating_mul(60));
            let mut record =
                SessionRecord::new(&user_id, vec![StoredFactor::new(DevFactor::email_otp())], lifetime, None);
            record.custom_claims.extend(claims.into_iter().flatten().filter(|(_, v)| !v.is_null()));
            record.attributes = attributes;
            lock(&shared.sessions).insert(record.clone());
            record
        }),
    };
    let mut extra = Map::new();
    extra.insert("method_id".into(), Value::String(method_id));
    extra.insert("reset_sessions".into(), Value::Bool(false));
    factor_answer(&shared, record, user_id, extra)
}
