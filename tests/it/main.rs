//! The one integration-test binary: drives the real `handoff` executable and the real servers it talks to
//! (bus serve, sshd, git, rclone, Prism), all started on loopback by `support`.

mod support;

mod boundary;
mod bus;
mod channels;
mod cli;
mod crash;
mod crypt;
mod day;
#[cfg(feature = "drive")]
mod drive;
#[cfg(feature = "droplet")]
mod droplet;
#[cfg(feature = "email")]
mod email;
#[cfg(feature = "folder")]
mod folder;
#[cfg(feature = "git")]
mod git;
#[cfg(feature = "git")]
mod git_http;
#[cfg(feature = "git")]
mod git_ssh;
#[cfg(feature = "imessage")]
mod imessage;
mod inbox;
mod layout;
mod mcp;
mod original_bus;
mod pg;
#[cfg(feature = "sms")]
mod sms;
mod trust;
mod ux;
mod watch;
#[cfg(any(feature = "slack", feature = "discord"))]
mod webhooks;
