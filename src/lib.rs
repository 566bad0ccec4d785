// The crate docs are the README, so docs.rs and the repository tell the same story
// and the README's examples are compiled as doctests. They use axum; without the
// `axum` feature a short summary stands in.
#![cfg_attr(feature = "axum", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "axum"),
    doc = "Session verification and route-based (\"just-in-time\") step-up authentication for \
           tower, for Stytch sessions and OAuth 2.0 / OpenID Connect access tokens. Build with \
           the `axum` feature for the full documentation and the extractors."
)]
// Module graph, top-down (each module imports only modules below it):
//
//   layer            SessionLayer, its builder          -> service, state, and the leaves
//   service          SessionService (tower Service)     -> state, future
//   future           SessionService's response future   -> (std, pin-project only)
//   guard            Guard, GuardService, GuardFuture   -> state, guard::requirement, rejection
//   extract, guard::extract   axum extractors           -> guard (check), state, rejection
//   state            LayerState: resolve, settle, confirm, refuse, write_cookies
//                                                       -> challenge, guard::config, rejection,
//                                                          authority, cache, cookies, credential,
//                                                          jwks, verify, session, error
//   guard::requirement  Requirement                     -> guard::config, rejection, session
//   guard::config    GuardConfig (realm, challenge, acr) -> challenge, guard::policy, session
//   challenge        Challenge, DefaultChallenge        -> rejection, credential, session, error
//   rejection        Rejection, StepUpRequired, Forbidden, Shortfall -> session, error
//   metadata         ResourceMetadata (RFC 9728)      -> http_client, error
//   verify, issuers  the verifier and its per-issuer rules (IssuerConfig): one unit,
//                    each uses the other's types    -> jwks, profile, session, error
//   leaves           authority, jwks, cache, cookies, credential, profile, stytch,
//                    http_client, secret, session, error (none imports a module above;
//                    authority::state holds answers to the issuers' rules)
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!("tower-stepup: enable one of the features `aws-lc-rs` (default) or `rust-crypto`");

mod authority;
mod cache;
mod challenge;
mod compact_json;
#[cfg(feature = "axum")]
mod control;
mod cookies;
mod credential;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod guard;
mod http_client;
mod issuers;
mod jwks;
mod layer;
mod metadata;
mod preset;
mod profile;
mod rbac;
mod rejection;
mod secret;
mod service;
mod session;
#[cfg(feature = "axum")]
mod sign_in;
mod state;
mod stytch;
mod verify;

/// Thin wrappers around internals for the micro-benchmarks in `benches/` (hidden
/// feature `__bench`). Not a public API: no semver guarantee, may change any time.
#[cfg(feature = "__bench")]
#[doc(hidden)]
pub mod __bench {
    use bytes::Bytes;
    use http::{HeaderMap, Response};

    use crate::challenge::{Challenge, ChallengeContext};
    use crate::credential::{CredentialConfig, CredentialSource};
    use crate::rejection::Rejection;
    use crate::session::AuthState;
    use crate::state::Resolution;
    use crate::SessionLayer;

    /// Credential extraction with the default configuration (bearer, Stytch cookies).
    #[derive(Debug, Default)]
    pub struct Extractor(CredentialConfig);

    impl Extractor {
        /// The JWT (else the opaque token) of a request; `None` when anonymous or
        /// malformed.
        pub fn find<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
            let credential = self.0.find(headers).ok()??;
            credential.jwt.or(credential.opaque)
        }
    }

    /// The synchronous part of the layer without the tower service around it:
    /// extraction, cache lookup, verification. `None` when the request would need
    /// the network (unknown `kid`, opaque token).
    pub fn resolve(layer: &SessionLayer, headers: &HeaderMap) -> Option<AuthState> {
        match layer.state.resolve(layer.state.credentials.find(headers)) {
            Resolution::Done(state) => Some(state),
            Resolution::NeedsKeys(_) | Resolution::NeedsAuthority { .. } => None,
        }
    }

    /// The bearer hot path of the service: a cache lookup on the raw header bytes,
    /// before any validation. `None` on a miss.
    pub fn resolve_cached_bearer(layer: &SessionLayer, headers: &HeaderMap) -> Option<AuthState> {
        layer.state.cached_bearer(headers)
    }

    /// Renders `rejection` with `challenge`, as a guard does.
    pub fn render(
        challenge: &dyn Challenge,
        rejection: &Rejection,
        bearer: bool,
        accept: Option<&str>,
        return_to: &str,
        login_url: Option<&str>,
        step_up_url: Option<&str>,
    ) -> Response<Bytes> {
        let source = Some(if bearer { CredentialSource::Bearer } else { CredentialSource::Cookie });
        let context = ChallengeContext::new("api", return_to)
            .with_source(source)
            .with_accept(accept)
            .with_login_url(login_url)
            .with_step_up_url(step_up_url);
        challenge.respond(rejection, &context)
    }

    /// A parsed key set, for lookup costs.
    #[derive(Debug)]
    pub struct KeyLookup(crate::jwks::KeySet);

    impl KeyLookup {
        /// Parses a JWKS document with the default algorithm allow-list.
        pub fn parse(jwks: &str) -> Self {
            let algorithms = crate::JwksConfig::default().algorithms;
            Self(crate::jwks::KeySet::parse(jwks.as_bytes(), &algorithms, 1_000).expect("a valid JWKS"))
        }
        /// Number of usable keys.
        pub fn len(&self) -> usize {
            self.0.len()
        }
        /// Whether the set is empty.
        pub fn is_empty(&self) -> bool {
            self.0.len() == 0
        }
        /// Whether a key `kid` for `algorithm` is found.
        pub fn find(&self, kid: &str, algorithm: crate::Algorithm) -> bool {
            self.0.find(Some(kid), algorithm).is_some()
        }
        /// The signature check alone: `token`'s signature against key `kid`, with
        /// the key parsed when the set was loaded.
        pub fn verify_signature(&self, kid: &str, algorithm: crate::Algorithm, token: &str) -> bool {
            let Some((signed, signature)) = token.rsplit_once('.') else { return false };
            self.0.find(Some(kid), algorithm).is_some_and(|key| key.key.verify(signed.as_bytes(), signature))
        }
    }

    /// `(entries, weighted size)` of the layer's verified-session cache, after its
    /// pending maintenance ran; `None` when the cache is disabled.
    pub fn cache_stats(layer: &SessionLayer) -> Option<(u64, u64)> {
        layer.state.cache.as_ref().map(crate::cache::SessionCache::stats)
    }
}

pub use authority::{
    Authority, AuthorityCredential, AuthorityFuture, Confirmation, IntrospectionAuthority, IssuerBudget, RenewedTokens,
    RevokeFuture, SessionsFuture, StytchAuthority, DEFAULT_AUTHORITY_TIMEOUT, DEFAULT_ISSUER_BURST,
    DEFAULT_ISSUER_CONCURRENCY, DEFAULT_ISSUER_RATE,
};
pub use challenge::{safe_return_to, Challenge, ChallengeContext, DefaultChallenge};
#[cfg(feature = "axum")]
pub use control::{ClearSessionCookies, SessionControl, SteppedUp};
pub use cookies::{CookieAttributes, CookieMode, SameSite};
pub use credential::{CredentialSource, DEFAULT_JWT_COOKIE, DEFAULT_MAX_TOKEN_LEN, DEFAULT_TOKEN_COOKIE};
pub use error::{AuthError, AuthErrorKind, ConfigError};
#[cfg(feature = "axum")]
pub use extract::SessionRejection;
pub use future::SessionFuture;
pub use guard::{
    ContextMismatch, Dialect, FactorRequirement, FindingKind, Guard, GuardBody, GuardConfig, GuardFuture, GuardService,
    OrganizationScope, RequestContext, Requirement, RequirementFinding, SameContext, DEFAULT_IPV4_PREFIX,
    DEFAULT_IPV6_PREFIX,
};
#[cfg(feature = "axum")]
pub use guard::{Require, RequirementSpec};
pub use issuers::IssuerConfig;
pub use jwks::{Algorithm, JwksConfig, KeySource, UnknownAlgorithm};
pub use layer::{SessionLayer, SessionLayerBuilder, DEFAULT_LEEWAY, DEFAULT_OPAQUE_TOKEN_TTL};
pub use metadata::ResourceMetadata;
pub use preset::Preset;
pub use profile::{ClaimPath, ClaimProfile, OidcProfile, StytchProfile, VerifiedClaims};
pub use rbac::{AuthorizationCheck, AuthorizationVerdict, RbacPolicy, StytchRbac, DEFAULT_RBAC_REFRESH};
pub use rejection::{Forbidden, Rejection, Shortfall, StepUpRequired};
pub use service::SessionService;
pub use session::{AuthState, Factor, FactorKind, Organization, Session, SessionAttributes, SessionBuilder, TokenKind};
#[cfg(feature = "axum")]
pub use sign_in::{SignIn, SignedIn};
pub use stytch::StytchProject;
pub use verify::TypPolicy;
