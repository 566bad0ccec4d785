//! The Stytch-like session store and the opaque access tokens for introspection.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::token::StoredFactor;
use super::util::{random_token, random_uuid, time_add};
use super::DEFAULT_SUBJECT;

/// A session created on the dev issuer: what a real login would hand the browser.
///
/// `Debug` redacts the token and the JWT.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevSession {
    /// Stytch session id (`session-test-…`, or `member-session-test-…` for B2B).
    pub session_id: String,
    /// The opaque 44-character session token (cookie `stytch_session`).
    pub session_token: String,
    /// A freshly minted session JWT (cookie `stytch_session_jwt`).
    pub session_jwt: String,
    /// The user id (member id for B2B).
    pub user_id: String,
}

impl fmt::Debug for DevSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevSession")
            .field("session_id", &self.session_id)
            .field("session_token", &"[redacted]")
            .field("session_jwt", &"[redacted]")
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// B2B organization of a member session.
#[derive(Debug, Clone)]
pub(crate) struct Organization {
    pub(crate) id: String,
    pub(crate) slug: String,
}

/// One live session.
#[derive(Clone)]
pub(crate) struct SessionRecord {
    pub(crate) session_id: String,
    pub(crate) token: String,
    pub(crate) user_id: String,
    pub(crate) started_at: SystemTime,
    pub(crate) last_accessed_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) factors: Vec<StoredFactor>,
    pub(crate) roles: Vec<String>,
    pub(crate) custom_claims: Map<String, Value>,
    pub(crate) organization: Option<Organization>,
    /// Where the session began: Stytch's `attributes` object.
    pub(crate) attributes: Value,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    pub(crate) fn new(
        user_id: &str,
        factors: Vec<StoredFactor>,
        lifetime: Duration,
        organization: Option<Organization>,
    ) -> Self {
        let now = SystemTime::now();
        let (session_id, roles) = if organization.is_some() {
            (format!("member-session-test-{}", random_uuid()), vec![String::from("stytch_member")])
        } else {
            (format!("session-test-{}", random_uuid()), vec![String::from("stytch_user")])
        };
        SessionRecord {
            session_id,
            token: random_token::<33>(),
            user_id: user_id.to_owned(),
            started_at: now,
            last_accessed_at: now,
            expires_at: time_add(now, lifetime),
            factors,
            roles,
            custom_claims: Map::new(),
            organization,
            attributes: super::token::session_attributes(),
        }
    }

    /// Live: not yet expired.
    pub(crate) fn is_live(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }
}

/// Sessions by id, with an index from session token to id.
#[derive(Default)]
pub(crate) struct SessionStore {
    by_id: HashMap<String, SessionRecord>,
    by_token: HashMap<String, String>,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore").field("sessions", &self.by_id.len()).finish_non_exhaustive()
    }
}

impl SessionStore {
    pub(crate) fn insert(&mut self, record: SessionRecord) {
        self.by_token.insert(record.token.clone(), record.session_id.clone());
        self.by_id.insert(record.session_id.clone(), record);
    }

    pub(crate) fn id_for_token(&self, token: &str) -> Option<String> {
        self.by_token.get(token).cloned()
    }

    pub(crate) fn get_mut(&mut self, session_id: &str) -> Option<&mut SessionRecord> {
        self.by_id.get_mut(session_id)
    }

    /// The ids of every stored session of `user_id`.
    pub(crate) fn ids_of_user(&self, user_id: &str) -> Vec<String> {
        self.by_id.values().filter(|r| r.user_id == user_id).map(|r| r.session_id.clone()).collect()
    }

    pub(crate) fn remove(&mut self, session_id: &str) -> bool {
        match self.by_id.remove(session_id) {
            Some(record) => {
                self.by_token.remove(&record.token);
                true
            }
            None => false,
        }
    }
}

/// What an opaque access token stands for, for RFC 7662 introspection; see
/// [`DevIssuer::issue_opaque_access_token`](super::DevIssuer::issue_opaque_access_token).
///
/// Build it with `OpaqueTokenSpec::default()` (or [`new`](Self::new)) and the builder
/// methods, or set the public fields directly.
#[derive(Debug, Clone, PartialEq)]
pub struct OpaqueTokenSpec {
    /// `sub` (default [`DEFAULT_SUBJECT`]).
    pub subject: String,
    /// `scope`, space separated.
    pub scope: Option<String>,
    /// `acr`.
    pub acr: Option<String>,
    /// `amr` (omitted from the response when empty).
    pub amr: Vec<String>,
    /// `auth_time`.
    pub auth_time: Option<SystemTime>,
    /// `client_id` (default the issuer's client id).
    pub client_id: Option<String>,
    /// `aud`.
    pub audience: Option<String>,
    /// `sid`.
    pub sid: Option<String>,
    /// `iat` (default the time the token is issued).
    pub issued_at: Option<SystemTime>,
    /// `exp` = `iat` + `lifetime` (default 5 minutes). Combine with an old `issued_at`
    /// for a token that is already expired.
    pub lifetime: Duration,
    /// Extra members of the introspection response (applied last).
    pub extra: Map<String, Value>,
}

impl Default for OpaqueTokenSpec {
    fn default() -> Self {
        OpaqueTokenSpec {
            subject: String::from(DEFAULT_SUBJECT),
            scope: None,
            acr: None,
            amr: Vec::new(),
            auth_time: None,
            client_id: None,
            audience: None,
            sid: None,
            issued_at: None,
            lifetime: Duration::from_secs(300),
            extra: Map::new(),
        }
    }
}

impl OpaqueTokenSpec {
    /// Same as `default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `sub`.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Sets `scope`.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets `acr`.
    #[must_use]
    pub fn acr(mut self, acr: impl Into<String>) -> Self {
        self.acr = Some(acr.into());
        self
    }

    /// Sets `amr`.
    #[must_use]
    pub fn amr(mut self, amr: &[&str]) -> Self {
        self.amr = amr.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets `auth_time`.
    #[must_use]
    pub fn auth_time(mut self, at: SystemTime) -> Self {
        self.auth_time = Some(at);
        self
    }

    /// Sets `client_id`.
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Sets `aud`.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sets `sid`.
    #[must_use]
    pub fn sid(mut self, sid: impl Into<String>) -> Self {
        self.sid = Some(sid.into());
        self
    }

    /// Sets `iat`.
    #[must_use]
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.issued_at = Some(at);
        self
    }

    /// Sets the lifetime (`exp` = `iat` + `lifetime`).
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds an extra member to the introspection response.
    #[must_use]
    pub fn extra(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }
}

/// An issued opaque token.
#[derive(Debug, Clone)]
pub(crate) struct OpaqueRecord {
    pub(crate) spec: OpaqueTokenSpec,
    pub(crate) issued_at: SystemTime,
    pub(crate) expires_at: SystemTime,
}
