//! tower-stepup (skeleton)
#[cfg(feature = "dev-issuer")]
pub mod testing;
