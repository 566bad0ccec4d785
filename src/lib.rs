//! # tower-stepup
//!
//! Session verification and route-based ("just-in-time") step-up authentication for
//! [tower] and [axum], for Stytch sessions and standard OAuth 2.0 / OpenID Connect
//! access tokens.
//!
//! A [`SessionLayer`] on the router finds the credential of each request (bearer
//! token, else session cookies), verifies JWTs locally against the issuer's cached
//! JWKS, and puts an [`AuthState`] in the request extensions. It never rejects by
//! itself; handlers read a typed [`Session`] through the extractor, and guards decide
//! per route what is required.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tower_stepup::{Session, SessionLayer, StytchProject};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let project = StytchProject::consumer("project-test-6c20cd16-73d5-44f7-852c-9a7e7b2ccf62")?;
//! let app: Router = Router::new()
//!     .route("/public", get(|| async { "hello" }))
//!     .route("/me", get(|session: Session| async move { session.subject().to_owned() }))
//!     .layer(SessionLayer::stytch(&project).build().await?);
//! # Ok(()) }
//! ```
//!
//! ## Crypto backend
//!
//! Exactly one `jsonwebtoken` backend must be compiled in: `aws-lc-rs` (default,
//! fastest) or `rust-crypto` (pure Rust; build with `default-features = false,
//! features = ["axum", "rust-crypto"]`). Selecting neither is a compile error
//! rather than a panic at run time; selecting both (as `--all-features` does) uses
//! aws-lc-rs.
//!
//! [tower]: https://docs.rs/tower
//! [axum]: https://docs.rs/axum

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!("tower-stepup: enable one of the features `aws-lc-rs` (default) or `rust-crypto`");

pub mod authority;
mod cache;
pub mod challenge;
mod cookies;
mod credential;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod guard;
mod http_client;
mod jwks;
mod layer;
pub mod profile;
mod secret;
mod service;
mod session;
mod stytch;
mod verify;

#[cfg(feature = "dev-issuer")]
pub mod testing;

/// The README's examples, compiled as doctests.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use authority::{
    Authority, AuthorityCredential, AuthorityFuture, Confirmation, IntrospectionAuthority, RenewedTokens,
    StytchAuthority, DEFAULT_AUTHORITY_TIMEOUT,
};
pub use challenge::{safe_return_to, Challenge, ChallengeContext, DefaultChallenge, Rejection};
pub use cookies::CookieAttributes;
pub use credential::{CredentialSource, DEFAULT_JWT_COOKIE, DEFAULT_MAX_TOKEN_LEN, DEFAULT_TOKEN_COOKIE};
pub use error::{AuthError, AuthErrorKind, ConfigError};
#[cfg(feature = "axum")]
pub use extract::SessionRejection;
pub use future::ResponseFuture;
pub use guard::{
    FactorRequirement, Forbidden, Guard, GuardConfig, GuardFuture, GuardService, RbacPolicy, Requirement, Shortfall,
    StepUpRequired,
};
#[cfg(feature = "axum")]
pub use guard::{Require, RequirementSpec};
pub use jsonwebtoken::Algorithm;
pub use jwks::{JwksConfig, KeySource};
pub use layer::{SessionLayer, SessionLayerBuilder, DEFAULT_LEEWAY, DEFAULT_OPAQUE_TOKEN_TTL};
pub use profile::{ClaimProfile, OidcProfile, StytchProfile, VerifiedClaims};
pub use service::SessionService;
pub use session::{AuthState, Factor, FactorKind, Organization, Session, SessionBuilder, TokenKind};
pub use stytch::StytchProject;
pub use verify::TypPolicy;
