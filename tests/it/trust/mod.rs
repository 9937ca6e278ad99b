//! Trust: the secret scanner on `handoff send`, the bus server under abuse, crash safety.

mod abuse;
#[cfg(feature = "drive")]
mod confine;
mod disk;
mod secrets;
