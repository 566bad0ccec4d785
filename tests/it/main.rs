//! The integration tests, one binary (linked once) with a module per concern.

mod common;

mod authority;
mod guards;
mod jwks;
mod resource_server;
mod smoke;
mod tower_service;
mod trust_confirm;
mod trust_jwks;
mod trust_opaque;
mod trust_stytch;
mod trust_times;
mod verification;
