//! Trust: the secret scanner on `handoff send`, the bus server under abuse, crash safety.

mod abuse;
#[cfg(feature = "drive")]
mod confine;
mod disk;
#[cfg(feature = "drive")]
mod escapes;
mod old_state;
mod secret_formats;
mod secrets;
mod shedding;
