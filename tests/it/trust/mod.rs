//! Trust: the secret scanner on `handoff send`, the bus server under abuse, crash safety.

mod abuse;
mod disk;
mod secrets;
