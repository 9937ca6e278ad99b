//! The one integration-test binary: drives the real `handoff` executable and the real servers it talks to
//! (bus serve, sshd, git, rclone, Prism), all started on loopback by `support`.

mod support;

mod bus;
mod cli;
mod original_bus;
mod pg;
mod trust;
mod crash;
#[cfg(feature = "git")]
mod git;
#[cfg(feature = "drive")]
mod drive;
#[cfg(feature = "droplet")]
mod droplet;
#[cfg(feature = "sms")]
mod sms;
mod day;
