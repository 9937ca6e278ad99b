//! SSH and SFTP shared by the droplet channel and the drive channel's `sftp` remotes.
//!
//! Both reach a server through the system `ssh` (the `openssh` crate, multiplexed, so the user's agent, keys,
//! `~/.ssh/config` and known_hosts apply as for `ssh` itself) and move files with `openssh-sftp-client`:
//! uploads keep many write requests in flight, downloads many read requests, and both hash on the way, with
//! memory bounded by a few MiB whatever the file size. [`errors`] turns what `ssh` printed into errors that
//! name the peer, the cause and the fix.

#[cfg(unix)]
pub(crate) mod download;
pub mod errors;
#[cfg(unix)]
pub(crate) mod reader;
#[cfg(unix)]
pub(crate) mod sftp;
#[cfg(unix)]
pub(crate) mod writer;
