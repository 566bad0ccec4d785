//! The integration tests, one binary (linked once) with a module per concern.

mod common;

mod authority;
mod challenges;
mod fallback;
mod guards;
mod jwks;
mod lifecycle;
mod requirements;
mod resource_server;
mod smoke;
mod tower_service;
mod verification;
