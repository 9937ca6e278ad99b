//! The portable transport: the system `sftp` binary in batch mode (`sftp -b -`), for systems where the
//! `openssh` crate does not build (Windows). Each operation is one `sftp` run; paths travel as quoted
//! arguments of SFTP batch commands, which `sftp` turns into SFTP requests — there is no remote shell.
//! Local paths that the batch syntax cannot carry verbatim are staged under a plain temporary name.

use super::RemoteEntry;
use super::ssh_errors;
use super::transport::Remote;
use crate::{ChannelError, ProgressBar};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

/// A droplet reached through the `sftp` program.
pub struct CliRemote {
    host: String,
}

/// Quotes one argument of an sftp batch command (double quotes; `\` and `"` escaped).
pub(crate) fn quote(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('"');
    for c in arg.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A remote path is carried verbatim when it has no control characters and no glob characters.
fn check_remote(path: &str) -> Result<(), ChannelError> {
    if path.chars().any(|c| c.is_control() || matches!(c, '*' | '?' | '[' | ']')) {
        return Err(ChannelError::permanent(format!(
            "droplet path {path:?} has characters the sftp program cannot take verbatim; choose a plainer [droplet] dir"
        )));
    }
    Ok(())
}

/// The local path as sftp should see it, or `None` when it must be staged under a plain name.
fn local_arg(path: &Path) -> Option<String> {
    let s = path.to_str()?;
    let s = if cfg!(windows) { s.replace('\\', "/") } else { s.to_string() };
    let plain = s.chars().all(|c| !c.is_control() && !matches!(c, '"' | '\\' | '\'' | '*' | '?' | '[' | ']' | '#'));
    plain.then_some(s)
}

/// Parses one `ls -ln` line: (is regular file, size, mtime, name).
pub(crate) fn parse_ls_line(line: &str, now: SystemTime) -> Option<(bool, u64, Option<SystemTime>, String)> {
    let mut fields = line.split_whitespace();
    let perms = fields.next()?;
    let (_links, _uid, _gid) = (fields.next()?, fields.next()?, fields.next()?);
    let size: u64 = fields.next()?.parse().ok()?;
    let (mon, day, time_or_year) = (fields.next()?, fields.next()?, fields.next()?);
    let name_start = {
        // The name is everything after the 8th field, verbatim (it may hold spaces).
        let mut idx = 0;
        let mut seen = 0;
        let bytes = line.as_bytes();
        while seen < 8 && idx < bytes.len() {
            while idx < bytes.len() && bytes[idx].is_ascii_whitespace() {
                idx += 1;
            }
            while idx < bytes.len() && !bytes[idx].is_ascii_whitespace() {
                idx += 1;
            }
            seen += 1;
        }
        while idx < bytes.len() && bytes[idx].is_ascii_whitespace() {
            idx += 1;
        }
        idx
    };
    let full = &line[name_start..];
    let name = full.rsplit('/').next().unwrap_or(full).to_string();
    Some((perms.starts_with('-'), size, ls_time(mon, day, time_or_year, now), name))
}

/// `ls -l` dates: `Nov 24 06:00` (within the last half year) or `Nov 24  2025`. Read as UTC; the hours of
/// a time zone do not matter for pruning by days.
fn ls_time(mon: &str, day: &str, time_or_year: &str, now: SystemTime) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = MONTHS.iter().position(|x| *x == mon)? as u32 + 1;
    let d: u32 = day.parse().ok()?;
    let Some((hh, mm)) = time_or_year.split_once(':') else {
        return crate::dates::utc_instant(time_or_year.parse().ok()?, m, d, 0, 0);
    };
    let (hh, mm): (u32, u32) = (hh.parse().ok()?, mm.parse().ok()?);
    // a time instead of a year: within the last half year, so the latest of these years not in the future
    let this_year = 1970 + now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs() as i64 / 31_556_952;
    let candidates: Vec<SystemTime> = [this_year + 1, this_year, this_year - 1]
        .into_iter()
        .filter_map(|y| crate::dates::utc_instant(y, m, d, hh, mm))
        .collect();
    candidates.iter().copied().find(|t| *t <= now + Duration::from_secs(86400)).or(candidates.last().copied())
}

/// A plain-named path in the system temp dir, for files whose own path sftp's batch syntax cannot carry.
fn staging_path(what: &str) -> Result<PathBuf, ChannelError> {
    let p = std::env::temp_dir().join(format!("handoff-{what}-{}", uuid::Uuid::new_v4().simple()));
    match local_arg(&p) {
        Some(_) => Ok(p),
        None => Err(ChannelError::permanent(format!(
            "the temporary directory {} has characters sftp cannot take; set TMPDIR to a plainer path",
            std::env::temp_dir().display()
        ))),
    }
}

/// Size and sha256 of a local file ([`crate::hashing::sha256_file`] on a blocking thread).
async fn hash_file(path: &Path) -> Result<(u64, String), ChannelError> {
    let p = path.to_path_buf();
    let (sha, size) = tokio::task::spawn_blocking(move || crate::hashing::sha256_file(&p))
        .await
        .map_err(|e| ChannelError::permanent(format!("hashing {} stopped: {e}", path.display())))?
        .map_err(|e| ChannelError::permanent(format!("cannot read {}: {e}", path.display())))?;
    Ok((size, sha))
}

/// Output of one sftp run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl CliRemote {
    /// Checks that `host` answers over SFTP.
    pub async fn connect(host: &str) -> Result<Self, ChannelError> {
        let me = Self { host: host.to_string() };
        let r = me.run("pwd\n").await?;
        if !r.ok {
            return Err(ssh_errors::classify(host, &r.stderr));
        }
        Ok(me)
    }

    async fn run(&self, batch: &str) -> Result<Run, ChannelError> {
        let mut child = tokio::process::Command::new(crate::ssh::program("sftp"))
            .args([
                "-q",
                "-b",
                "-",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=15",
            ])
            .arg(&self.host)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                ChannelError::permanent(format!(
                    "droplet host {}: the `sftp` program could not be started ({e}); install the OpenSSH client",
                    self.host
                ))
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(batch.as_bytes()).await?;
        drop(stdin);
        let out = child.wait_with_output().await?;
        Ok(Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs a batch that must succeed; failures are classified from sftp's messages.
    async fn must(&self, what: &str, path: &str, batch: &str) -> Result<Run, ChannelError> {
        let r = self.run(batch).await?;
        if r.ok {
            return Ok(r);
        }
        let msg = r.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("sftp failed").trim().to_string();
        let lower = r.stderr.to_lowercase();
        if lower.contains("connection closed")
            || lower.contains("broken pipe")
            || lower.contains("couldn't read packet")
            || lower.contains("connect to host")
        {
            return Err(ssh_errors::classify(&self.host, &r.stderr));
        }
        Err(ChannelError::permanent(format!("droplet host {}: {what} {path:?} failed: {msg}", self.host)))
    }
}

impl Remote for CliRemote {
    async fn size_of(&self, path: &str) -> Result<Option<u64>, ChannelError> {
        check_remote(path)?;
        let r = self.run(&format!("ls -ln {}\n", quote(path))).await?;
        if !r.ok {
            if r.stderr.contains("not found") || r.stderr.contains("No such file") {
                return Ok(None);
            }
            return self.must("checking", path, &format!("ls -ln {}\n", quote(path))).await.map(|_| None);
        }
        Ok(r.stdout.lines().find_map(|l| parse_ls_line(l, SystemTime::now())).map(|(_, size, _, _)| size))
    }

    async fn ensure_dir(&self, dir: &str) -> Result<(), ChannelError> {
        check_remote(dir)?;
        let mut batch = String::new();
        let mut prefix = String::new();
        for (i, part) in dir.split('/').enumerate() {
            if i > 0 || dir.starts_with('/') {
                prefix.push('/');
            }
            prefix.push_str(part);
            if !part.is_empty() && part != "." {
                batch.push_str(&format!("-mkdir {}\n", quote(&prefix)));
            }
        }
        batch.push_str(&format!("cd {}\n", quote(dir)));
        self.must("creating directory", dir, &batch).await.map(|_| ())
    }

    async fn upload(&self, src: &Path, dest: &str, bar: &dyn ProgressBar) -> Result<(u64, String), ChannelError> {
        check_remote(dest)?;
        let (total, sha) = hash_file(src).await?;
        let mut staged = None;
        let local = match local_arg(src) {
            Some(s) => s,
            None => {
                let tmp = staging_path("upload")?;
                staged = Some(tmp.clone());
                tokio::fs::copy(src, &tmp).await?;
                local_arg(&tmp).expect("checked by staging_path")
            }
        };
        let sent = self.must("uploading to", dest, &format!("put {} {}\n", quote(&local), quote(dest))).await;
        if let Some(tmp) = staged {
            let _ = tokio::fs::remove_file(tmp).await;
        }
        sent?;
        bar.advance(total);
        Ok((total, sha))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), ChannelError> {
        check_remote(from)?;
        check_remote(to)?;
        self.must("renaming", from, &format!("rename {} {}\n", quote(from), quote(to))).await.map(|_| ())
    }

    async fn remove(&self, path: &str) -> Result<(), ChannelError> {
        check_remote(path)?;
        self.run(&format!("-rm {}\n", quote(path))).await.map(|_| ())
    }

    async fn download(
        &self,
        src: &str,
        _size: u64,
        dest: &Path,
        bar: &dyn ProgressBar,
    ) -> Result<(u64, String), ChannelError> {
        check_remote(src)?;
        let target: PathBuf = match local_arg(dest) {
            Some(_) => dest.to_path_buf(),
            None => staging_path("download")?,
        };
        let arg = local_arg(&target).expect("checked");
        if let Err(e) = self.must("downloading", src, &format!("get {} {}\n", quote(src), quote(&arg))).await {
            let _ = tokio::fs::remove_file(&target).await;
            return Err(e);
        }
        if target != dest && tokio::fs::rename(&target, dest).await.is_err() {
            tokio::fs::copy(&target, dest).await?;
            let _ = tokio::fs::remove_file(&target).await;
        }
        let (n, sha) = hash_file(dest).await?;
        bar.advance(n);
        Ok((n, sha))
    }

    async fn list(&self, dir: &str) -> Result<Vec<RemoteEntry>, ChannelError> {
        check_remote(dir)?;
        let r = self.must("listing", dir, &format!("ls -lna {}\n", quote(dir))).await?;
        let now = SystemTime::now();
        Ok(r.stdout
            .lines()
            .filter_map(|l| parse_ls_line(l, now))
            .map(|(is_file, size, modified, name)| RemoteEntry { name, is_file, size, modified })
            .collect())
    }

    async fn close(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_arguments_are_quoted_and_ls_lines_parse() {
        assert_eq!(quote(r#"a b"c\d"#), r#""a b\"c\\d""#);
        let now = crate::dates::utc_instant(2026, 11, 24, 0, 0).unwrap();
        let (file, size, t, name) =
            parse_ls_line("-rw-r--r--    1 0        0            5 Nov 20 06:00 /srv/d/handoff-ab-x y.png", now)
                .unwrap();
        assert!(file);
        assert_eq!((size, name.as_str()), (5, "handoff-ab-x y.png"));
        let age = now.duration_since(t.unwrap()).unwrap();
        assert!(age > Duration::from_secs(3 * 86400) && age < Duration::from_secs(5 * 86400), "{age:?}");
        let (_, _, t, _) = parse_ls_line("drwxr-xr-x    2 0 0 4096 Dec 31  2024 sub", now).unwrap();
        assert_eq!(t, crate::dates::utc_instant(2024, 12, 31, 0, 0));
        // a time stamp from late last year, read in January, is last year's
        let jan = crate::dates::utc_instant(2027, 1, 3, 0, 0).unwrap();
        let (_, _, t, _) = parse_ls_line("-rw-r--r-- 1 0 0 5 Dec 30 23:00 x", jan).unwrap();
        assert_eq!(t, crate::dates::utc_instant(2026, 12, 30, 23, 0));
        // hostile dates parse as a file without a time (never pruned by age), not a panic
        for bad in ["Feb 30  2025", "Feb 29 12:00", "Nov 99 06:00", "Nov 24 25:61", "Nov 24 99999999999"] {
            let (_, _, t, _) = parse_ls_line(&format!("-rw-r--r-- 1 0 0 5 {bad} x"), now).unwrap();
            assert_eq!(t, None, "{bad}");
        }
        assert!(parse_ls_line("sftp> ls", now).is_none());
        assert!(local_arg(Path::new("/tmp/a b.png")).is_some());
        assert!(local_arg(Path::new("/tmp/a\"b")).is_none() && local_arg(Path::new("/tmp/a\nb")).is_none());
        assert!(check_remote("/srv/d/x*").is_err() && check_remote("/srv/d/handoff-1-x.png").is_ok());
    }
}
