//! Trust: the secret scanner on `handoff send`, the bus server under abuse, crash safety.

mod secrets;
mod abuse;
mod disk;
