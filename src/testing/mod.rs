//! Dev issuer (work in progress)
