//! The integration tests, one binary (linked once) with a module per concern.

mod common;

mod authority;
mod browser;
mod challenges;
mod claims_parser;
mod context;
mod control;
mod fallback;
mod guards;
mod interop_oidc;
mod interop_stytch;
mod issuers;
mod jwks;
mod lifecycle;
mod providers;
mod rbac;
mod requirements;
mod resource_metadata;
mod resource_server;
mod session_cache;
mod sign_in;
mod smoke;
mod tower_service;
mod verification;
