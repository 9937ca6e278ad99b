//! SSH and SFTP shared by the droplet channel and the drive channel's `sftp` remotes.
//!
//! Both reach a server through the system `ssh` (the `openssh` crate, multiplexed, so the user's agent, keys,
//! `~/.ssh/config` and known_hosts apply as for `ssh` itself) and move files with `openssh-sftp-client`:
//! uploads keep many write requests in flight, downloads many read requests, and both hash on the way, with
//! memory bounded by a few MiB whatever the file size. [`errors`] turns what `ssh` printed into errors that
//! name the peer, the cause and the fix.

#[cfg(all(unix, any(feature = "droplet", feature = "drive")))]
pub(crate) mod download;
pub mod errors;
#[cfg(all(unix, any(feature = "droplet", feature = "drive")))]
pub(crate) mod reader;
#[cfg(all(unix, any(feature = "droplet", feature = "drive")))]
pub(crate) mod sftp;
#[cfg(all(unix, any(feature = "droplet", feature = "drive")))]
pub(crate) mod writer;

/// The OpenSSH client program `name` (`ssh`, `sftp`) to run. On Windows: the one on `PATH` (Windows' own
/// OpenSSH client, or another the user put first), else Windows' own in `%SystemRoot%\System32\OpenSSH`,
/// which is not on the `PATH` of every process (services, some shells). Elsewhere: `name`, found on `PATH`.
pub fn program(name: &str) -> std::path::PathBuf {
    #[cfg(windows)]
    {
        let exe = format!("{name}.exe");
        let on_path = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(&exe).is_file()))
            .unwrap_or(false);
        if !on_path && let Some(root) = std::env::var_os("SystemRoot") {
            let system = std::path::Path::new(&root).join("System32").join("OpenSSH").join(&exe);
            if system.is_file() {
                return system;
            }
        }
    }
    std::path::PathBuf::from(name)
}
