//! The model handlers see: [`Session`], its [`Factor`]s, and the per-request [`AuthState`].

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{AuthError, AuthErrorKind};

/// What the [`SessionLayer`](crate::SessionLayer) found out about a request.
///
/// The layer inserts one into the request extensions on every request and never
/// rejects by itself: routes without a guard stay public, which is what makes the
/// authentication "just in time".
///
/// # Example
///
/// ```
/// use tower_stepup::AuthState;
///
/// fn who(state: &AuthState) -> &str {
///     match state {
///         AuthState::Authenticated(session) => session.subject(),
///         AuthState::Anonymous => "anonymous",
///         AuthState::Invalid(_) => "invalid credential",
///     }
/// }
/// assert_eq!(who(&AuthState::Anonymous), "anonymous");
/// ```
#[derive(Clone, Debug)]
pub enum AuthState {
    /// No credential was sent.
    Anonymous,
    /// A credential was sent and verified.
    Authenticated(Session),
    /// A credential was sent and rejected.
    Invalid(AuthError),
}

impl AuthState {
    /// The session, when authenticated.
    pub fn session(&self) -> Option<&Session> {
        match self {
            Self::Authenticated(session) => Some(session),
            _ => None,
        }
    }
}

/// Which kind of credential a session was established from.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A JWT verified locally.
    Jwt,
    /// An opaque token checked with the issuing server.
    Opaque,
}

/// A verified session: who the user is, how and when they authenticated, and what
/// they may do.
///
/// A cheap handle (one `Arc`): cloning it does not copy the claims. Kept compact,
/// because the layer caches one per live token: times are held as integers
/// (milliseconds since the epoch, so sub-millisecond parts are dropped), the issuer
/// and audience are shared by the sessions of one issuer, and custom claims are kept
/// as their JSON text, parsed when read ([`claims`](Self::claims),
/// [`claim`](Self::claim), [`raw_claims`](Self::raw_claims)). Reading them never
/// grows the session.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_stepup::{Factor, FactorKind, Session};
///
/// let session = Session::builder("user-123", "stytch.com/project-test-1")
///     .session_id("session-abc")
///     .factor(Factor::new(FactorKind::TOTP).with_last_authenticated_at(SystemTime::now()))
///     .role("admin")
///     .claims(serde_json::json!({ "plan": "pro" }))
///     .build();
///
/// assert_eq!(session.subject(), "user-123");
/// assert!(session.has_role("admin"));
/// assert!(session.factors().iter().any(|f| f.kind() == &FactorKind::TOTP));
/// assert_eq!(session.claim("plan"), Some(serde_json::json!("pro")));
///
/// #[derive(serde::Deserialize)]
/// struct Plan { plan: String }
/// assert_eq!(session.claims::<Plan>().unwrap().plan, "pro");
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionData>,
}

/// A point in time as the session keeps it: milliseconds since the epoch in 8 bytes
/// (`Option<SystemTime>` takes 16). [`Millis::NONE`] is "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Millis(u64);

impl Millis {
    const NONE: Self = Self(u64::MAX);
    /// The latest time kept (9999-12-31T23:59:59Z, the latest NumericDate accepted):
    /// anything later is as good as never, and converts back on every platform.
    const LATEST: u64 = crate::verify::MAX_NUMERIC_DATE * 1000;

    fn new(at: Option<SystemTime>) -> Self {
        match at {
            None => Self::NONE,
            // Before the epoch: no issuer sends such times; the epoch is as old.
            Some(at) => Self(
                at.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).min(Self::LATEST)),
            ),
        }
    }

    fn get(self) -> Option<SystemTime> {
        (self != Self::NONE).then(|| UNIX_EPOCH + Duration::from_millis(self.0))
    }
}

/// What a session holds, compact: the layer caches one per live token.
#[derive(Debug, Clone, PartialEq)]
struct SessionData {
    /// The subject, then the session id (from [`Self::session_id_at`]): one
    /// allocation for both.
    ids: Box<str>,
    /// Where the session id starts in `ids`; [`Self::NO_SESSION_ID`] without one.
    session_id_at: u32,
    /// Issuer and audience, shared by the sessions of one configured issuer (see
    /// [`Session::share_names`]).
    names: Arc<Names>,
    issued_at: Millis,
    expires_at: Millis,
    session_expires_at: Millis,
    started_at: Millis,
    last_accessed_at: Millis,
    factors: Box<[Factor]>,
    /// Shared by the sessions with the same roles (see [`Session::share_names`]).
    roles: Arc<[String]>,
    /// The custom claims as JSON text; `None` for `{}`.
    claims: Option<Box<str>>,
    /// `None` when nothing was recorded (the common case costs 8 bytes).
    attributes: Option<Box<SessionAttributes>>,
    /// What Stytch sessions do not carry (OIDC claims, B2B organization): 8 bytes
    /// when absent.
    extra: Option<Box<Extra>>,
    token_kind: TokenKind,
}

impl SessionData {
    const NO_SESSION_ID: u32 = u32::MAX;

    fn subject_end(&self) -> usize {
        if self.session_id_at == Self::NO_SESSION_ID {
            self.ids.len()
        } else {
            usize::try_from(self.session_id_at).unwrap_or(self.ids.len())
        }
    }
}

/// A session's issuer and audience: one pointer in the session, shared by every
/// session of a configured issuer whose audience is the configured one.
#[derive(Debug, PartialEq)]
pub(crate) struct Names {
    issuer: Box<str>,
    audience: Box<[String]>,
}

impl Names {
    pub(crate) fn new(issuer: &str, audience: Vec<String>) -> Arc<Self> {
        Arc::new(Self { issuer: issuer.into(), audience: boxed_strings(audience) })
    }
}

/// The less common parts of a session, boxed.
#[derive(Debug, Clone, Default, PartialEq)]
struct Extra {
    acr: Option<Box<str>>,
    amr: Box<[String]>,
    scopes: Box<[String]>,
    organization: Option<Organization>,
    client_id: Option<Box<str>>,
    /// Where the claim profile looked for roles (dotted claim paths), for
    /// diagnostics of a missing role.
    roles_from: Option<Arc<str>>,
    /// `auth_time` when it is not the latest factor time (as with Stytch, whose
    /// sessions then hold no copy); `Some(Millis::NONE)` for "none" despite factor
    /// times.
    auth_time: Option<Millis>,
}

/// Nothing recorded, for sessions that hold no attributes.
static NO_ATTRIBUTES: SessionAttributes = SessionAttributes { ip_address: None, user_agent: None };

/// The latest `last_authenticated_at` of `factors`; [`Millis::NONE`] when none has one.
fn latest_factor_time(factors: &[Factor]) -> Millis {
    factors
        .iter()
        .map(|f| f.last_authenticated_at)
        .filter(|&at| at != Millis::NONE)
        .max_by_key(|at| at.0)
        .unwrap_or(Millis::NONE)
}

fn boxed_strings(strings: Vec<String>) -> Box<[String]> {
    strings.into_iter().map(|s| String::from(s.into_boxed_str())).collect()
}

impl Session {
    /// Starts building a session, for claim profiles and authorities (and tests).
    pub fn builder(subject: impl Into<String>, issuer: impl Into<String>) -> SessionBuilder {
        SessionBuilder {
            data: BuilderData {
                subject: subject.into(),
                issuer: issuer.into(),
                session_id: None,
                audience: Vec::new(),
                issued_at: None,
                expires_at: None,
                session_expires_at: None,
                started_at: None,
                last_accessed_at: None,
                factors: Vec::new(),
                acr: None,
                amr: Vec::new(),
                auth_time: None,
                roles: Vec::new(),
                scopes: Vec::new(),
                organization: None,
                client_id: None,
                claims: Value::Object(serde_json::Map::new()),
                token_kind: TokenKind::Jwt,
                attributes: SessionAttributes::default(),
                roles_from: None,
            },
        }
    }

    fn extra(&self) -> Option<&Extra> {
        self.inner.extra.as_deref()
    }

    /// The user (`sub`): a Stytch user id, a B2B member id, or the OIDC subject.
    pub fn subject(&self) -> &str {
        self.inner.ids.get(..self.inner.subject_end()).unwrap_or_default()
    }
    /// The issuer (`iss`) that vouched for this session.
    pub fn issuer(&self) -> &str {
        &self.inner.names.issuer
    }
    /// The session id (Stytch `session.id`, OIDC `sid`), when the token carries one.
    pub fn session_id(&self) -> Option<&str> {
        let at = self.inner.session_id_at;
        if at == SessionData::NO_SESSION_ID {
            return None;
        }
        self.inner.ids.get(usize::try_from(at).ok()?..)
    }
    /// The audiences (`aud`) of the token.
    pub fn audience(&self) -> &[String] {
        &self.inner.names.audience
    }
    /// When the token was issued (`iat`).
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.inner.issued_at.get()
    }
    /// When the credential stops being valid (`exp`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at.get()
    }
    /// When the whole session ends (Stytch `expires_at`; falls back to `exp`). The
    /// layer refuses a session past it (beyond its leeway), cached or not.
    pub fn session_expires_at(&self) -> Option<SystemTime> {
        self.inner.session_expires_at.get().or_else(|| self.expires_at())
    }
    /// When the session started (Stytch `started_at`).
    pub fn started_at(&self) -> Option<SystemTime> {
        self.inner.started_at.get()
    }
    /// When the session was last used at the issuer (Stytch `last_accessed_at`).
    pub fn last_accessed_at(&self) -> Option<SystemTime> {
        self.inner.last_accessed_at.get()
    }
    /// The authentication factors used in this session.
    pub fn factors(&self) -> &[Factor] {
        &self.inner.factors
    }
    /// The authentication context class (`acr`), when known.
    pub fn acr(&self) -> Option<&str> {
        self.extra().and_then(|extra| extra.acr.as_deref())
    }
    /// The authentication methods (`amr`, RFC 8176), as sent.
    pub fn amr(&self) -> &[String] {
        self.extra().map_or(&[], |extra| &extra.amr)
    }
    /// When the user last actively authenticated (`auth_time`).
    pub fn auth_time(&self) -> Option<SystemTime> {
        match self.extra().and_then(|extra| extra.auth_time) {
            Some(stated) => stated.get(),
            None => latest_factor_time(&self.inner.factors).get(),
        }
    }
    /// The roles granted to the session.
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }
    /// Whether the session has this role.
    pub fn has_role(&self, role: &str) -> bool {
        self.inner.roles.iter().any(|r| r == role)
    }
    /// The OAuth scopes granted (`scope`, space separated on the wire).
    pub fn scopes(&self) -> &[String] {
        self.extra().map_or(&[], |extra| &extra.scopes)
    }
    /// Whether the session has this scope.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().iter().any(|s| s == scope)
    }
    /// The organization (Stytch B2B).
    pub fn organization(&self) -> Option<&Organization> {
        self.extra().and_then(|extra| extra.organization.as_ref())
    }
    /// The OAuth client the token was issued to (`client_id`).
    pub fn client_id(&self) -> Option<&str> {
        self.extra().and_then(|extra| extra.client_id.as_deref())
    }
    /// The custom claims as a JSON value (registered and profile claims removed): an
    /// object, empty when there are none. Parsed from the kept JSON text on every
    /// call; prefer [`claims`](Self::claims) into your own type.
    pub fn raw_claims(&self) -> Value {
        match self.claims_json() {
            // The text was written by `serde_json` from a `Value`: it parses back.
            Some(json) => serde_json::from_str(json).unwrap_or(Value::Null),
            None => Value::Object(serde_json::Map::new()),
        }
    }
    /// The custom claims as JSON text, as kept (`None` when there are none).
    ///
    /// ```
    /// use tower_stepup::Session;
    ///
    /// let session = Session::builder("user-1", "issuer").claims(serde_json::json!({ "plan": "pro" })).build();
    /// assert_eq!(session.claims_json(), Some(r#"{"plan":"pro"}"#));
    /// assert_eq!(Session::builder("user-1", "issuer").build().claims_json(), None);
    /// ```
    pub fn claims_json(&self) -> Option<&str> {
        self.inner.claims.as_deref()
    }
    /// One custom claim, parsed on demand (an owned value).
    pub fn claim(&self, name: &str) -> Option<Value> {
        match self.raw_claims() {
            Value::Object(mut claims) => claims.remove(name),
            _ => None,
        }
    }
    /// The custom claims, deserialized into your own type.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.claims_json().unwrap_or("{}"))
    }
    /// Where the session began, as the issuer recorded it (Stytch `attributes`;
    /// for OIDC the claims named with
    /// [`OidcProfile::with_ip_address_claim`](crate::OidcProfile::with_ip_address_claim)
    /// and [`with_user_agent_claim`](crate::OidcProfile::with_user_agent_claim)).
    /// Empty when the issuer recorded nothing. See
    /// [`Requirement::same_context`](crate::Requirement::same_context).
    pub fn attributes(&self) -> &SessionAttributes {
        self.inner.attributes.as_deref().unwrap_or(&NO_ATTRIBUTES)
    }
    /// Where the claim profile looked for roles, when it said (diagnostics).
    pub(crate) fn roles_from(&self) -> Option<&str> {
        self.extra().and_then(|extra| extra.roles_from.as_deref())
    }
    /// Whether the session came from a JWT or an opaque token.
    pub fn token_kind(&self) -> TokenKind {
        self.inner.token_kind
    }
    /// The most recent authentication time of a factor of this kind, if any.
    pub fn factor_authenticated_at(&self, kind: &FactorKind) -> Option<SystemTime> {
        self.inner.factors.iter().filter(|f| f.kind() == kind).filter_map(Factor::last_authenticated_at).max()
    }
    /// The same session, marked as coming from another kind of credential.
    pub(crate) fn with_token_kind(self, kind: TokenKind) -> Session {
        let mut data = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| (*shared).clone());
        data.token_kind = kind;
        Session { inner: Arc::new(data) }
    }

    /// Shares the issuer's name and audience with the other sessions of the same
    /// issuer (a verified `iss` equals a configured issuer name, and the audience
    /// is most often exactly the configured one), and the role list with the
    /// sessions that hold the same roles (`roles` gives the shared list, when there
    /// is room for one). Only a session nobody else holds
    /// yet (fresh from a profile) is changed; equal values only, so nothing a
    /// handler sees changes.
    pub(crate) fn share_names(
        mut self,
        names: Option<&Arc<Names>>,
        roles: impl FnOnce(&Arc<[String]>) -> Option<Arc<[String]>>,
    ) -> Session {
        if let Some(data) = Arc::get_mut(&mut self.inner) {
            if let Some(names) = names.filter(|names| ***names == *data.names) {
                data.names = Arc::clone(names);
            }
            if let Some(shared) = roles(&data.roles).filter(|shared| **shared == *data.roles) {
                data.roles = shared;
            }
        }
        self
    }

    /// The heap this session holds, in bytes: what the cache weighs. Parts shared
    /// with other sessions (issuer, audience, roles) are not counted.
    pub(crate) fn heap_size(&self) -> usize {
        use std::mem::size_of;
        let data = &*self.inner;
        let strings = |list: &[String]| list.iter().map(String::capacity).sum::<usize>();
        let string_list = |list: &[String]| std::mem::size_of_val(list) + strings(list);
        let shared = |count: usize, size: usize| if count > 1 { 0 } else { size };
        let mut size = 2 * size_of::<usize>() + size_of::<SessionData>() + data.ids.len();
        let names =
            2 * size_of::<usize>() + size_of::<Names>() + data.names.issuer.len() + string_list(&data.names.audience);
        size += shared(Arc::strong_count(&data.names), names);
        size += data.factors.iter().map(|f| size_of::<Factor>() + f.heap_size()).sum::<usize>();
        size += shared(Arc::strong_count(&data.roles), 2 * size_of::<usize>() + string_list(&data.roles));
        size += data.claims.as_ref().map_or(0, |c| c.len());
        if let Some(attributes) = &data.attributes {
            size += size_of::<SessionAttributes>() + attributes.user_agent.as_ref().map_or(0, String::capacity);
        }
        if let Some(extra) = &data.extra {
            size += size_of::<Extra>() + extra.acr.as_ref().map_or(0, |s| s.len());
            size += string_list(&extra.amr) + string_list(&extra.scopes);
            size += extra.client_id.as_ref().map_or(0, |s| s.len());
            if let Some(org) = &extra.organization {
                size += org.id.capacity() + org.slug.as_ref().map_or(0, String::capacity);
            }
            size += extra
                .roles_from
                .as_ref()
                .map_or(0, |from| shared(Arc::strong_count(from), 2 * size_of::<usize>() + from.len()));
        }
        size
    }

    /// Checks the times the session itself carries against `now`, allowing `leeway`
    /// of clock skew. The one place these rules live: local verification, cache hits
    /// and sessions from an issuer's API all go through it.
    ///
    /// - `auth_time` or a factor's `last_authenticated_at` later than `now + leeway`:
    ///   [`InvalidClaim`](AuthErrorKind::InvalidClaim). Such a time is not "just now":
    ///   read as now it would satisfy every recency rule for as long as the token lives.
    /// - The session's own end (Stytch `expires_at`) at or before `now - leeway`:
    ///   [`Expired`](AuthErrorKind::Expired), even while the credential's `exp` runs.
    ///   Only an end the issuer stated is checked here; the credential's `exp` is the
    ///   token rules' business.
    pub(crate) fn check_times(&self, now: SystemTime, leeway: Duration) -> Result<(), AuthError> {
        let data = &*self.inner;
        // `None` only when the sum does not fit a `SystemTime`: nothing is later then.
        let horizon = now.checked_add(leeway);
        let in_future = |at: SystemTime| horizon.is_some_and(|horizon| at > horizon);
        // One detail for both: Stytch's `auth_time` is derived from its factor times.
        let mut times =
            self.auth_time().into_iter().chain(data.factors.iter().filter_map(Factor::last_authenticated_at));
        if times.any(in_future) {
            return Err(AuthError::with_detail(AuthErrorKind::InvalidClaim, "authentication time in the future"));
        }
        // An end too far out to add the leeway to never arrives.
        if data.session_expires_at.get().and_then(|end| end.checked_add(leeway)).is_some_and(|end| now >= end) {
            return Err(AuthError::with_detail(AuthErrorKind::Expired, "session expires_at"));
        }
        Ok(())
    }

    /// Whether `other` (an issuer's answer) is about this session: same subject, and
    /// the same session id where this session has one. A session without an id is
    /// confirmed by its own token only.
    pub(crate) fn is_same_session(&self, other: &Session) -> bool {
        self.subject() == other.subject() && self.session_id().is_none_or(|id| other.session_id() == Some(id))
    }

    /// Whether both handles point to the same verified session data.
    pub(crate) fn ptr_eq(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims are the user's data, not credentials; still keep the output short.
        f.debug_struct("Session")
            .field("subject", &self.subject())
            .field("issuer", &self.issuer())
            .field("session_id", &self.session_id())
            .field("factors", &self.factors())
            .field("acr", &self.acr())
            .field("roles", &self.roles())
            .field("token_kind", &self.token_kind())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other) || self.inner == other.inner
    }
}

/// Builds a [`Session`]; used by claim profiles and authorities.
///
/// See [`Session::builder`]. The builder holds plain values; [`build`](Self::build)
/// turns them into the session's compact form (custom claims into JSON text).
#[derive(Debug, Clone)]
#[must_use]
pub struct SessionBuilder {
    data: BuilderData,
}

/// A session in the making, in the shapes the builder's methods take.
#[derive(Debug, Clone)]
struct BuilderData {
    subject: String,
    issuer: String,
    session_id: Option<String>,
    audience: Vec<String>,
    issued_at: Option<SystemTime>,
    expires_at: Option<SystemTime>,
    session_expires_at: Option<SystemTime>,
    started_at: Option<SystemTime>,
    last_accessed_at: Option<SystemTime>,
    factors: Vec<Factor>,
    acr: Option<String>,
    amr: Vec<String>,
    auth_time: Option<SystemTime>,
    roles: Vec<String>,
    scopes: Vec<String>,
    organization: Option<Organization>,
    client_id: Option<String>,
    claims: Value,
    token_kind: TokenKind,
    attributes: SessionAttributes,
    roles_from: Option<Arc<str>>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: Option<String>) => {
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.data.$name = Some(value.into());
            self
        }
    };
    ($(#[$doc:meta])* $name:ident: Option<SystemTime>) => {
        $(#[$doc])*
        pub fn $name(mut self, value: SystemTime) -> Self {
            self.data.$name = Some(value);
            self
        }
    };
}

impl SessionBuilder {
    setter!(/// Sets the session id.
        session_id: Option<String>);
    setter!(/// Sets `acr`.
        acr: Option<String>);
    setter!(/// Sets the OAuth client id.
        client_id: Option<String>);
    setter!(/// Sets `iat`.
        issued_at: Option<SystemTime>);
    setter!(/// Sets `exp` (when the credential stops being valid).
        expires_at: Option<SystemTime>);
    setter!(/// Sets when the whole session ends.
        session_expires_at: Option<SystemTime>);
    setter!(/// Sets when the session started.
        started_at: Option<SystemTime>);
    setter!(/// Sets when the session was last used at the issuer.
        last_accessed_at: Option<SystemTime>);
    setter!(/// Sets `auth_time`.
        auth_time: Option<SystemTime>);

    /// Sets the audiences.
    pub fn audience(mut self, audience: Vec<String>) -> Self {
        self.data.audience = audience;
        self
    }
    /// Adds a factor.
    pub fn factor(mut self, factor: Factor) -> Self {
        self.data.factors.push(factor);
        self
    }
    /// Replaces the factors.
    pub fn factors(mut self, factors: Vec<Factor>) -> Self {
        self.data.factors = factors;
        self
    }
    /// Sets `amr`.
    pub fn amr(mut self, amr: Vec<String>) -> Self {
        self.data.amr = amr;
        self
    }
    /// Adds a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.data.roles.push(role.into());
        self
    }
    /// Replaces the roles.
    pub fn roles(mut self, roles: Vec<String>) -> Self {
        self.data.roles = roles;
        self
    }
    /// Replaces the scopes.
    pub fn scopes(mut self, scopes: Vec<String>) -> Self {
        self.data.scopes = scopes;
        self
    }
    /// Sets the organization.
    pub fn organization(mut self, organization: Organization) -> Self {
        self.data.organization = Some(organization);
        self
    }
    /// Sets the custom claims (a JSON object; other values are stored as given).
    pub fn claims(mut self, claims: Value) -> Self {
        self.data.claims = claims;
        self
    }
    /// Sets where the session began (default: nothing recorded).
    pub fn attributes(mut self, attributes: SessionAttributes) -> Self {
        self.data.attributes = attributes;
        self
    }
    /// Sets the kind of credential the session came from (default: JWT).
    pub fn token_kind(mut self, kind: TokenKind) -> Self {
        self.data.token_kind = kind;
        self
    }
    /// Records where the roles were looked for (dotted claim paths).
    pub(crate) fn roles_from(mut self, paths: String) -> Self {
        self.data.roles_from = Some(Arc::from(paths));
        self
    }
    /// Finishes the session, in its compact form.
    pub fn build(self) -> Session {
        let data = self.data;
        let claims = match &data.claims {
            Value::Object(map) if map.is_empty() => None,
            // Serializing a `Value` cannot fail (its keys are strings).
            claims => serde_json::to_string(claims).ok().map(String::into_boxed_str),
        };
        let attributes = (data.attributes != SessionAttributes::default()).then(|| Box::new(data.attributes));
        let extra = Extra {
            acr: data.acr.map(String::into_boxed_str),
            amr: boxed_strings(data.amr),
            scopes: boxed_strings(data.scopes),
            organization: data.organization,
            client_id: data.client_id.map(String::into_boxed_str),
            roles_from: data.roles_from,
            auth_time: Some(Millis::new(data.auth_time)).filter(|&at| at != latest_factor_time(&data.factors)),
        };
        let extra = (extra != Extra::default()).then(|| Box::new(extra));
        let mut factors = data.factors;
        factors.shrink_to_fit();
        // A subject too long to split at (4 GiB) cannot come from a token.
        let split = u32::try_from(data.subject.len()).ok().filter(|&at| at != SessionData::NO_SESSION_ID);
        let (ids, session_id_at) = match (data.session_id, split) {
            (Some(id), Some(at)) => ([data.subject, id].concat().into_boxed_str(), at),
            _ => (data.subject.into_boxed_str(), SessionData::NO_SESSION_ID),
        };
        Session {
            inner: Arc::new(SessionData {
                session_id_at,
                ids,
                names: Names::new(&data.issuer, data.audience),
                issued_at: Millis::new(data.issued_at),
                expires_at: Millis::new(data.expires_at),
                session_expires_at: Millis::new(data.session_expires_at),
                started_at: Millis::new(data.started_at),
                last_accessed_at: Millis::new(data.last_accessed_at),
                factors: factors.into_boxed_slice(),
                roles: Arc::from(boxed_strings(data.roles).into_vec()),
                claims,
                attributes,
                extra,
                token_kind: data.token_kind,
            }),
        }
    }
}

/// Where a session began, as its issuer recorded it: Stytch's session
/// `attributes` (`ip_address`, `user_agent`).
///
/// Stytch records what the app passed as `attributes` when it started the session
/// (or what its frontend SDK saw). An empty string, a missing member or an address
/// that does not parse is "not recorded" (`None`): never a match for
/// [`Requirement::same_context`](crate::Requirement::same_context).
///
/// # Example
///
/// ```
/// use tower_stepup::SessionAttributes;
///
/// let attributes = SessionAttributes::new()
///     .with_ip_address("203.0.113.7".parse().unwrap())
///     .with_user_agent("Mozilla/5.0");
/// assert_eq!(attributes.user_agent.as_deref(), Some("Mozilla/5.0"));
/// assert!(SessionAttributes::new().ip_address.is_none());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionAttributes {
    /// The client's IP address when the session began.
    pub ip_address: Option<IpAddr>,
    /// The client's `User-Agent` when the session began.
    pub user_agent: Option<String>,
}

impl SessionAttributes {
    /// Nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the IP address.
    #[must_use]
    pub fn with_ip_address(mut self, ip: IpAddr) -> Self {
        self.ip_address = Some(ip);
        self
    }
    /// Sets the user agent.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }
    /// From the wire strings: empty or unparseable values are "not recorded".
    pub(crate) fn from_wire(ip_address: Option<&str>, user_agent: Option<&str>) -> Self {
        Self {
            ip_address: ip_address.and_then(|ip| ip.trim().parse().ok()),
            user_agent: user_agent.filter(|ua| !ua.is_empty()).map(str::to_owned),
        }
    }
}

/// A Stytch B2B organization.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// `organization_id`.
    pub id: String,
    /// The organization's slug, when sent.
    pub slug: Option<String>,
}

impl Organization {
    /// An organization with this id.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), slug: None }
    }
    /// Sets the slug.
    #[must_use]
    pub fn with_slug(mut self, slug: impl Into<String>) -> Self {
        self.slug = Some(slug.into());
        self
    }
}

/// One authentication factor of a session.
///
/// Compact, as sessions are cached: a kind and a delivery method Stytch documents
/// are a byte each, the time is 8 bytes, and the rest of the issuer's factor object
/// is kept as JSON text, parsed by [`details`](Self::details).
///
/// # Example
///
/// ```
/// use tower_stepup::{Factor, FactorKind};
///
/// let factor = Factor::new(FactorKind::OTP)
///     .with_delivery_method("sms")
///     .with_details(serde_json::json!({ "type": "otp", "phone_number_factor": { "phone_id": "p-1" } }));
/// assert_eq!(factor.kind().as_str(), "otp");
/// assert_eq!(factor.delivery_method(), Some("sms"));
/// assert_eq!(factor.details()["phone_number_factor"]["phone_id"], "p-1");
/// assert!(factor.details().get("type").is_none(), "kept structurally, not twice");
/// ```
#[derive(Clone, PartialEq)]
pub struct Factor {
    last_authenticated_at: Millis,
    /// The factor object less the members kept structurally; `None` when nothing
    /// else was sent.
    details: Option<Box<Details>>,
    /// A kind or delivery method this crate does not name: kept as sent.
    unnamed: Option<Box<Unnamed>>,
    /// Index into [`FactorKind::KNOWN`], or [`Factor::UNNAMED`].
    kind: u8,
    /// Index into [`DELIVERY_METHODS`] plus one (`0`: none), or [`Factor::UNNAMED`].
    delivery_method: u8,
}

/// A factor object's members beyond kind, delivery method and time: its
/// `created_at` and `updated_at` (Stytch's) as integers when they read back to the
/// very text sent, the rest as JSON text ([packed](crate::compact_json): the
/// member names Stytch repeats in every session are a byte each).
#[derive(Clone, PartialEq)]
struct Details {
    created_at: Millis,
    updated_at: Millis,
    rest: Option<Box<str>>,
}

/// A factor object's rest as kept: JSON text, packed.
fn text(value: &Value) -> Option<Box<str>> {
    serde_json::to_string(value).ok().map(|json| crate::compact_json::pack(&json))
}

/// Stytch's factor timestamps, kept as integers (see [`Details`]).
const TIMESTAMPS: [&str; 2] = ["created_at", "updated_at"];

/// `text` as a time that renders back to exactly `text` (RFC 3339), else `None`.
fn lossless_time(text: &str) -> Option<Millis> {
    let at = crate::profile::parse_rfc3339(text).ok()?;
    let millis = Millis::new(Some(at));
    (rfc3339(millis).as_deref() == Some(text)).then_some(millis)
}

/// The RFC 3339 text of a kept time.
fn rfc3339(at: Millis) -> Option<String> {
    time::OffsetDateTime::from(at.get()?).format(&time::format_description::well_known::Rfc3339).ok()
}

/// The parts of a factor outside the known names.
#[derive(Clone, PartialEq)]
struct Unnamed {
    kind: Option<FactorKind>,
    delivery_method: Option<Box<str>>,
}

/// The delivery methods Stytch documents (its session object's
/// `AuthenticationFactorDeliveryMethod`, <https://stytch.com/docs/api-reference/consumer/api/sessions/authenticate>):
/// held as one byte; any other value is kept as sent.
const DELIVERY_METHODS: [&str; 44] = [
    "email",
    "sms",
    "whatsapp",
    "embedded",
    "oauth_google",
    "oauth_microsoft",
    "oauth_apple",
    "webauthn_registration",
    "authenticator_app",
    "oauth_github",
    "recovery_code",
    "oauth_facebook",
    "crypto_wallet",
    "oauth_amazon",
    "oauth_bitbucket",
    "oauth_coinbase",
    "oauth_discord",
    "oauth_figma",
    "oauth_gitlab",
    "oauth_instagram",
    "oauth_linkedin",
    "oauth_shopify",
    "oauth_slack",
    "oauth_snapchat",
    "oauth_spotify",
    "oauth_steam",
    "oauth_tiktok",
    "oauth_twitch",
    "oauth_twitter",
    "knowledge",
    "biometric",
    "sso_saml",
    "sso_oidc",
    "oauth_salesforce",
    "oauth_yahoo",
    "oauth_hubspot",
    "imported_auth0",
    "oauth_exchange_slack",
    "oauth_exchange_hubspot",
    "oauth_exchange_github",
    "oauth_exchange_google",
    "impersonation",
    "oauth_access_token_exchange",
    "trusted_token_exchange",
];

/// The known kinds, addressable by reference (`FactorKind::KNOWN` is a constant).
static KNOWN_KINDS: [FactorKind; 14] = FactorKind::KNOWN;

/// The members of a factor object kept structurally, left out of its details.
const STRUCTURAL: [&str; 3] = ["type", "delivery_method", "last_authenticated_at"];

impl Factor {
    const UNNAMED: u8 = u8::MAX;

    /// A factor of this kind, without delivery method or time.
    pub fn new(kind: FactorKind) -> Self {
        let mut factor =
            Self { last_authenticated_at: Millis::NONE, details: None, unnamed: None, kind: 0, delivery_method: 0 };
        match KNOWN_KINDS.iter().position(|known| *known == kind).and_then(|i| u8::try_from(i).ok()) {
            Some(index) => factor.kind = index,
            None => {
                factor.kind = Self::UNNAMED;
                factor.unnamed_mut().kind = Some(kind);
            }
        }
        factor
    }

    fn unnamed_mut(&mut self) -> &mut Unnamed {
        self.unnamed.get_or_insert_with(|| Box::new(Unnamed { kind: None, delivery_method: None }))
    }

    /// Sets the delivery method.
    #[must_use]
    pub fn with_delivery_method(mut self, method: impl Into<String>) -> Self {
        let method = method.into();
        match DELIVERY_METHODS.iter().position(|known| *known == method).and_then(|i| u8::try_from(i + 1).ok()) {
            Some(index) => {
                self.delivery_method = index;
                if let Some(unnamed) = &mut self.unnamed {
                    unnamed.delivery_method = None;
                }
                // Equal factors compare equal however they were built.
                self.unnamed = self.unnamed.take().filter(|unnamed| unnamed.kind.is_some());
            }
            None => {
                self.delivery_method = Self::UNNAMED;
                self.unnamed_mut().delivery_method = Some(method.into_boxed_str());
            }
        }
        self
    }
    /// Sets when the user last authenticated with it (kept to the millisecond).
    #[must_use]
    pub fn with_last_authenticated_at(mut self, at: SystemTime) -> Self {
        self.last_authenticated_at = Millis::new(Some(at));
        self
    }
    /// Sets the issuer's factor object. Its `type`, `delivery_method` and
    /// `last_authenticated_at` members are not kept twice: they are the factor's
    /// [`kind`](Self::kind), [`delivery_method`](Self::delivery_method) and
    /// [`last_authenticated_at`](Self::last_authenticated_at). The rest is kept as
    /// JSON text.
    #[must_use]
    pub fn with_details(mut self, details: Value) -> Self {
        match details {
            Value::Null => {
                self.details = None;
                self
            }
            Value::Object(mut object) => {
                object.retain(|name, _| !STRUCTURAL.contains(&name.as_str()));
                self.with_detail_members(object)
            }
            other => {
                self.details =
                    Some(Box::new(Details { created_at: Millis::NONE, updated_at: Millis::NONE, rest: text(&other) }));
                self
            }
        }
    }

    /// [`with_details`](Self::with_details) of an object without the structural
    /// members (the Stytch profile reads them apart).
    pub(crate) fn with_detail_members(mut self, mut object: serde_json::Map<String, Value>) -> Self {
        let mut kept = Details { created_at: Millis::NONE, updated_at: Millis::NONE, rest: None };
        for (name, slot) in TIMESTAMPS.into_iter().zip([&mut kept.created_at, &mut kept.updated_at]) {
            if let Some(at) = object.get(name).and_then(Value::as_str).and_then(lossless_time) {
                *slot = at;
                object.remove(name);
            }
        }
        if !object.is_empty() {
            kept.rest = text(&Value::Object(object));
        }
        let empty = kept.rest.is_none() && kept.created_at == Millis::NONE && kept.updated_at == Millis::NONE;
        self.details = (!empty).then(|| Box::new(kept));
        self
    }

    /// What kind of factor (Stytch `type`, or mapped from `amr`).
    pub fn kind(&self) -> &FactorKind {
        match KNOWN_KINDS.get(usize::from(self.kind)) {
            Some(kind) => kind,
            // `new` sets one or the other.
            None => self.unnamed.as_ref().and_then(|u| u.kind.as_ref()).unwrap_or(&KNOWN_KINDS[0]),
        }
    }
    /// How it was delivered (Stytch `delivery_method`: `email`, `sms`,
    /// `authenticator_app`, …), kept as sent: the set is open.
    pub fn delivery_method(&self) -> Option<&str> {
        match self.delivery_method {
            0 => None,
            Self::UNNAMED => self.unnamed.as_ref().and_then(|u| u.delivery_method.as_deref()),
            index => DELIVERY_METHODS.get(usize::from(index - 1)).copied(),
        }
    }
    /// When the user last authenticated with it.
    pub fn last_authenticated_at(&self) -> Option<SystemTime> {
        self.last_authenticated_at.get()
    }
    /// The rest of the issuer's factor object (e.g. Stytch's `phone_number_factor`),
    /// parsed from the kept JSON text on every call: `Value::Null` when there is
    /// none.
    pub fn details(&self) -> Value {
        let Some(details) = self.details.as_deref() else { return Value::Null };
        // The text was written by `serde_json` from a `Value`: it parses back.
        let rest = details.rest.as_deref().map_or(Value::Null, |packed| {
            serde_json::from_str(&crate::compact_json::unpack(packed)).unwrap_or(Value::Null)
        });
        let times = TIMESTAMPS.into_iter().zip([details.created_at, details.updated_at]);
        let times: Vec<(&str, String)> = times.filter_map(|(name, at)| Some((name, rfc3339(at)?))).collect();
        if times.is_empty() {
            return rest;
        }
        let mut object = match rest {
            Value::Object(object) => object,
            _ => serde_json::Map::new(),
        };
        for (name, at) in times {
            object.insert(name.to_owned(), Value::String(at));
        }
        Value::Object(object)
    }

    /// The heap this factor holds, beyond its own size.
    fn heap_size(&self) -> usize {
        let details = self
            .details
            .as_ref()
            .map_or(0, |d| std::mem::size_of::<Details>() + d.rest.as_ref().map_or(0, |r| r.len()));
        let unnamed = self.unnamed.as_ref().map_or(0, |u| {
            std::mem::size_of::<Unnamed>()
                + u.kind.as_ref().filter(|k| !k.is_known()).map_or(0, |k| k.as_str().len())
                + u.delivery_method.as_ref().map_or(0, |m| m.len())
        });
        details + unnamed
    }
}

impl fmt::Debug for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Factor")
            .field("kind", self.kind())
            .field("delivery_method", &self.delivery_method())
            .field("last_authenticated_at", &self.last_authenticated_at())
            .field("details", &self.details.as_ref().and_then(|d| d.rest.as_deref()).map(crate::compact_json::unpack))
            .field("created_at", &self.details.as_ref().and_then(|d| d.created_at.get()))
            .field("updated_at", &self.details.as_ref().and_then(|d| d.updated_at.get()))
            .finish_non_exhaustive()
    }
}

/// The kind of an authentication factor: its wire name (Stytch `type`, or the name an
/// `amr` value maps to).
///
/// An open set, as [`http::Method`] is: associated constants name the factor types
/// Stytch documents, and any other value parses to a kind that keeps the name as sent,
/// so a new Stytch factor type never breaks verification. Equality is by name, so a
/// constant added in a later release compares equal to the same name parsed today:
/// code written against the name keeps its meaning.
///
/// Cheap to clone and compare: the known names are `&'static str`, without allocation.
/// Serialized and deserialized as the plain name.
///
/// # Example
///
/// ```
/// use tower_stepup::FactorKind;
///
/// assert_eq!(FactorKind::parse("totp"), FactorKind::TOTP);
/// assert_eq!(FactorKind::TOTP.as_str(), "totp");
/// let unknown = FactorKind::from("retina_scan");
/// assert_eq!(unknown.as_str(), "retina_scan");
/// assert_eq!(unknown, FactorKind::parse("retina_scan"));
/// assert_eq!(unknown.to_string(), "retina_scan");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FactorKind(Cow<'static, str>);

impl FactorKind {
    /// Email magic link (`magic_link`).
    pub const MAGIC_LINK: Self = Self::known("magic_link");
    /// One-time passcode (`otp`: SMS, WhatsApp, email, …; see the delivery method).
    pub const OTP: Self = Self::known("otp");
    /// OAuth login with an identity provider (`oauth`).
    pub const OAUTH: Self = Self::known("oauth");
    /// WebAuthn / passkey (`webauthn`).
    pub const WEBAUTHN: Self = Self::known("webauthn");
    /// Time-based one-time password from an authenticator app (`totp`).
    pub const TOTP: Self = Self::known("totp");
    /// Crypto wallet (`crypto`).
    pub const CRYPTO: Self = Self::known("crypto");
    /// Password (`password`).
    pub const PASSWORD: Self = Self::known("password");
    /// Signature challenge (`signature_challenge`).
    pub const SIGNATURE_CHALLENGE: Self = Self::known("signature_challenge");
    /// Enterprise SSO, SAML or OIDC (`sso`).
    pub const SSO: Self = Self::known("sso");
    /// Imported from another system (`imported`).
    pub const IMPORTED: Self = Self::known("imported");
    /// Recovery codes (`recovery_codes`).
    pub const RECOVERY_CODES: Self = Self::known("recovery_codes");
    /// Email one-time passcode (`email_otp`).
    pub const EMAIL_OTP: Self = Self::known("email_otp");
    /// Impersonation by an administrator (`impersonated`).
    pub const IMPERSONATED: Self = Self::known("impersonated");
    /// A trusted auth token (`trusted_auth_token`).
    pub const TRUSTED_AUTH_TOKEN: Self = Self::known("trusted_auth_token");

    /// The named constants, so parsing a known name borrows instead of allocating.
    const KNOWN: [Self; 14] = [
        Self::MAGIC_LINK,
        Self::OTP,
        Self::OAUTH,
        Self::WEBAUTHN,
        Self::TOTP,
        Self::CRYPTO,
        Self::PASSWORD,
        Self::SIGNATURE_CHALLENGE,
        Self::SSO,
        Self::IMPORTED,
        Self::RECOVERY_CODES,
        Self::EMAIL_OTP,
        Self::IMPERSONATED,
        Self::TRUSTED_AUTH_TOKEN,
    ];

    const fn known(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// The kind named `value` (a Stytch factor `type`), known to this crate or not.
    pub fn parse(value: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|kind| kind.as_str() == value)
            .cloned()
            .unwrap_or_else(|| Self(Cow::Owned(value.to_owned())))
    }

    /// The wire name (Stytch `type`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of the named constants (a factor type Stytch documents).
    pub(crate) fn is_known(&self) -> bool {
        Self::KNOWN.contains(self)
    }
}

impl fmt::Debug for FactorKind {
    // The name alone, as `http::Method` prints: the variant-free type has nothing else.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for FactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for FactorKind {
    fn from(value: &str) -> Self {
        Self::parse(value)
    }
}

impl From<String> for FactorKind {
    fn from(value: String) -> Self {
        match Self::KNOWN.iter().find(|kind| kind.as_str() == value) {
            Some(kind) => kind.clone(),
            None => Self(Cow::Owned(value)),
        }
    }
}

impl std::str::FromStr for FactorKind {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(value))
    }
}

impl AsRef<str> for FactorKind {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for FactorKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FactorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for FactorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for FactorKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    const LEEWAY: Duration = Duration::from_secs(30);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Subject and session id share one allocation: every split reads back, an
    /// empty id is not "no id", and moving the split makes another session.
    #[test]
    fn subject_and_session_id_read_back_from_one_allocation() {
        let with = |subject: &str, id: Option<&str>| {
            let mut builder = Session::builder(subject, "i");
            if let Some(id) = id {
                builder = builder.session_id(id);
            }
            builder.build()
        };
        for (subject, id) in
            [("u", Some("s")), ("", Some("s")), ("u", Some("")), ("u", None), ("", None), ("é✓", Some("✓é"))]
        {
            let session = with(subject, id);
            assert_eq!((session.subject(), session.session_id()), (subject, id));
        }
        assert_ne!(with("ab", Some("c")), with("a", Some("bc")));
        assert_ne!(with("u", Some("")), with("u", None));
    }

    /// `auth_time` equal to the latest factor time is not stored twice (Stytch);
    /// any other stated value, "none" included, is kept as stated.
    #[test]
    fn auth_time_is_derived_only_when_it_is_the_latest_factor_time() {
        let factor = |t| Factor::new(FactorKind::OTP).with_last_authenticated_at(at(t));
        let session = |auth_time: Option<u64>| {
            let mut builder = Session::builder("u", "i").factor(factor(100)).factor(factor(200));
            if let Some(t) = auth_time {
                builder = builder.auth_time(at(t));
            }
            builder.build()
        };
        let stytch = session(Some(200));
        assert_eq!(stytch.auth_time(), Some(at(200)));
        assert!(stytch.extra().is_none(), "nothing stored beyond the factors");
        assert_eq!(session(Some(150)).auth_time(), Some(at(150)));
        assert_eq!(session(Some(300)).auth_time(), Some(at(300)));
        assert_eq!(session(None).auth_time(), None, "none stated, despite factor times");
        assert_eq!(Session::builder("u", "i").auth_time(at(5)).build().auth_time(), Some(at(5)));
        assert_eq!(Session::builder("u", "i").build().auth_time(), None);
    }

    fn kind(session: &Session, now: u64) -> Option<AuthErrorKind> {
        session.check_times(at(now), LEEWAY).err().map(|e| e.kind())
    }

    #[test]
    fn authentication_times_ahead_beyond_the_leeway_are_invalid() {
        let now = 1_000_000;
        let auth_time = |t| Session::builder("u", "i").auth_time(at(t)).build();
        let factor = |t| {
            Session::builder("u", "i").factor(Factor::new(FactorKind::TOTP).with_last_authenticated_at(at(t))).build()
        };
        for session in [auth_time(now + 30), factor(now + 30), auth_time(now - 3600), factor(now)] {
            assert_eq!(kind(&session, now), None);
        }
        for session in [auth_time(now + 31), factor(now + 31), auth_time(now + 365 * 86_400)] {
            assert_eq!(kind(&session, now), Some(AuthErrorKind::InvalidClaim));
        }
        // One factor in the future is enough, whatever the others say.
        let mixed = Session::builder("u", "i")
            .factor(Factor::new(FactorKind::PASSWORD).with_last_authenticated_at(at(now - 10)))
            .factor(Factor::new(FactorKind::TOTP).with_last_authenticated_at(at(now + 3600)))
            .factor(Factor::new(FactorKind::MAGIC_LINK))
            .build();
        assert_eq!(kind(&mixed, now), Some(AuthErrorKind::InvalidClaim));
    }

    #[test]
    fn the_sessions_own_end_is_enforced_with_the_leeway() {
        let now = 1_000_000;
        let ends = |t| Session::builder("u", "i").expires_at(at(now + 300)).session_expires_at(at(t)).build();
        assert_eq!(kind(&ends(now + 10), now), None);
        assert_eq!(kind(&ends(now - 29), now), None);
        assert_eq!(kind(&ends(now - 30), now), Some(AuthErrorKind::Expired));
        assert_eq!(kind(&ends(now - 3600), now), Some(AuthErrorKind::Expired));
        // Only an end the issuer stated: the credential's `exp` is checked elsewhere.
        let exp_only = Session::builder("u", "i").expires_at(at(now - 3600)).build();
        assert_eq!(kind(&exp_only, now), None);
    }

    #[test]
    fn extreme_times_never_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let session = Session::builder("u", "i")
            .session_expires_at(far)
            .auth_time(far)
            .factor(Factor::new(FactorKind::TOTP).with_last_authenticated_at(UNIX_EPOCH))
            .build();
        assert_eq!(session.check_times(SystemTime::now(), LEEWAY).unwrap_err().kind(), AuthErrorKind::InvalidClaim);
        let ended = Session::builder("u", "i").session_expires_at(UNIX_EPOCH).build();
        assert_eq!(ended.check_times(far, Duration::MAX).err(), None);
        assert_eq!(ended.check_times(far, LEEWAY).unwrap_err().kind(), AuthErrorKind::Expired);
    }

    #[test]
    fn factor_kind_is_an_open_name_compared_by_name() {
        assert_eq!(FactorKind::parse("totp"), FactorKind::TOTP);
        assert_eq!(FactorKind::from("webauthn"), FactorKind::WEBAUTHN);
        assert_eq!(FactorKind::from(String::from("sso")), FactorKind::SSO);
        assert_eq!("email_otp".parse::<FactorKind>(), Ok(FactorKind::EMAIL_OTP));
        // A known name parses to the borrowed constant: no allocation on the guard path.
        assert!(matches!(FactorKind::parse("otp").0, Cow::Borrowed(_)));
        let unknown = FactorKind::parse("retina_scan");
        assert_eq!(unknown.as_str(), "retina_scan");
        assert_eq!(unknown, FactorKind::parse("retina_scan"));
        assert_ne!(unknown, FactorKind::TOTP);
        assert_eq!(unknown, "retina_scan");
        assert_eq!(format!("{unknown} {unknown:?} {}", FactorKind::MAGIC_LINK), "retina_scan retina_scan magic_link");
        for kind in FactorKind::KNOWN {
            assert_eq!(FactorKind::parse(kind.as_str()), kind);
        }
    }

    #[test]
    fn factor_kind_serializes_as_its_name() {
        assert_eq!(serde_json::to_value(FactorKind::RECOVERY_CODES).ok(), Some(Value::from("recovery_codes")));
        let parsed: Vec<FactorKind> = serde_json::from_str(r#"["password","face"]"#).unwrap_or_default();
        assert_eq!(parsed, [FactorKind::PASSWORD, FactorKind::parse("face")]);
    }
}
