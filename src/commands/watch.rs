//! `handoff watch`: wakes a machine that has no live session. In the foreground it long-polls the bus for
//! this machine and, when messages arrive, takes them (stored, acked and claimed as `sync` would, so
//! they are not shown again) and runs the configured command once for the batch with the digest on its
//! stdin. One watcher per machine (a lock file); backoff while the bus is unreachable; a quiet-hours
//! window and a maximum run rate hold messages on the bus until a run is allowed. `--every` runs `sync`
//! on a schedule instead. `watch install` / `uninstall` manage it as a user service ([`service`]).

pub mod service;

use crate::cli::{WatchArgs, WatchCommand, WatchRun};
use crate::commands::Session;
use crate::commands::inbox::{Taken, render, take_new};
use crate::commands::mcp::on_blocking;
use crate::config::{Overrides, Settings};
use crate::exit;
use crate::state::State;
use handoff_channels::bus::MessageQuery;
use std::collections::VecDeque;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// How long to wait after the first message of a batch for the rest posted with it.
const SETTLE: Duration = Duration::from_millis(1500);
/// First and longest pause while the bus cannot be reached.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// Runs `handoff watch` (or its install / uninstall).
pub async fn run(o: &Overrides, a: WatchArgs, json: bool) -> anyhow::Result<i32> {
    match a.command {
        Some(WatchCommand::Install(i)) => service::install(o, &i.run, &i.service, json),
        Some(WatchCommand::Uninstall(u)) => service::uninstall(&u, json),
        None => watch(o, a.run).await,
    }
}

/// A local-time window `HH:MM-HH:MM` (it may wrap past midnight) in which no command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, minutes after midnight.
    pub start: u16,
    /// End (exclusive), minutes after midnight.
    pub end: u16,
}

impl QuietHours {
    /// Parses `22:00-07:00`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let bad = || {
            exit::with_code(
                exit::USAGE,
                anyhow::anyhow!("--quiet-hours {s:?}: write a local-time window such as 22:00-07:00"),
            )
        };
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start == end {
            return Err(bad());
        }
        Ok(Self { start, end })
    }

    /// True when `minute` (after local midnight) is inside the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }

    /// Minutes from `minute` until the window ends (0 outside it).
    pub fn minutes_left(&self, minute: u16) -> u16 {
        if !self.contains(minute) {
            return 0;
        }
        (self.end + 24 * 60 - minute) % (24 * 60)
    }
}

/// The local time of day in minutes after midnight.
fn local_minute() -> u16 {
    let t = jiff::Zoned::now().time();
    t.hour() as u16 * 60 + t.minute() as u16
}

/// At most `max` runs in any hour: how long to wait before the next may start.
#[derive(Debug)]
pub struct RateLimit {
    max: usize,
    runs: VecDeque<Instant>,
}

impl RateLimit {
    /// At most `max` runs an hour (0 is taken as 1).
    pub fn new(max: u32) -> Self {
        Self { max: max.max(1) as usize, runs: VecDeque::new() }
    }
    /// How long until a run is allowed at `now` (zero when it is).
    pub fn wait(&mut self, now: Instant) -> Duration {
        while self.runs.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600)) {
            self.runs.pop_front();
        }
        if self.runs.len() < self.max {
            return Duration::ZERO;
        }
        (self.runs[0] + Duration::from_secs(3600)).saturating_duration_since(now)
    }
    /// Records a run at `now`.
    pub fn record(&mut self, now: Instant) {
        self.runs.push_back(now);
    }
}

/// Holds the single-instance lock for as long as it lives.
struct InstanceLock(#[allow(dead_code)] std::fs::File);

fn lock(settings: &Settings) -> anyhow::Result<InstanceLock> {
    let dir = settings.dirs.data.join("watch");
    crate::config::private_dir(&dir)?;
    let path = dir.join(format!("{}.lock", handoff_channels::names::safe_file_name(&settings.machine)));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open the lock file {}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(InstanceLock(f)),
        Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
            "another `handoff watch` is already running for machine {} (it holds {}); stop it first",
            settings.machine,
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}

async fn watch(o: &Overrides, run: WatchRun) -> anyhow::Result<i32> {
    let settings = Settings::load(o)?;
    let quiet = run.quiet_hours.as_deref().map(QuietHours::parse).transpose()?;
    let _lock = lock(&settings)?;
    if let Some(every) = run.every {
        return every_loop(o, every).await;
    }
    let cmd = run.exec.clone().expect("clap requires --exec or --every");
    let machine = settings.machine.clone();
    let data = settings.dirs.data.clone();
    drop(settings);
    eprintln!("handoff watch: watching the bus for {machine}; running `{cmd}` once per batch of new messages");
    let mut rate = RateLimit::new(run.max_runs_per_hour);
    let mut backoff = BACKOFF.0;
    loop {
        // hold messages on the bus (unread) while no run is allowed
        if let Some(q) = quiet {
            let left = q.minutes_left(local_minute());
            if left > 0 {
                tracing::info!(minutes = left, "quiet hours: waiting");
                tokio::time::sleep(Duration::from_secs(60).min(Duration::from_secs(left as u64 * 60))).await;
                continue;
            }
        }
        let wait = rate.wait(Instant::now());
        if !wait.is_zero() {
            eprintln!(
                "handoff watch: {} runs this hour already; next run in {}s",
                run.max_runs_per_hour,
                wait.as_secs()
            );
            tokio::time::sleep(wait).await;
            continue;
        }
        let taken = match take(o).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("handoff watch: {e:#}; retrying in {}s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
                continue;
            }
        };
        if !taken.messages.is_empty() {
            rate.record(Instant::now());
            run_command(&cmd, &render(&machine, &taken), &data, &machine).await;
        }
        if taken.code != exit::OK {
            eprintln!("handoff watch: {}; retrying in {}s", taken.notes.join("; "), backoff.as_secs());
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
            continue;
        }
        backoff = BACKOFF.0;
        match wait_for_news(o, &machine, run.poll).await {
            Ok(true) => tokio::time::sleep(SETTLE).await, // let the rest of a batch posted together arrive
            Ok(false) => {}
            Err(e) => {
                eprintln!("handoff watch: {e:#}; retrying in {}s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// Takes what is new, as the MCP channel push does (on a blocking-pool thread).
async fn take(o: &Overrides) -> anyhow::Result<Taken> {
    let o = o.clone();
    on_blocking(move || async move {
        let s = Session::open(Settings::load(&o)?)?;
        let state = State::open(&s.settings.dirs.data)?;
        take_new(&s, &state).await
    })
    .await
}

/// Long-polls the bus until something unread arrives for `machine` (true) or the poll ends (false).
async fn wait_for_news(o: &Overrides, machine: &str, poll: Duration) -> anyhow::Result<bool> {
    let bus = Session::open(Settings::load(o)?)?.reg.bus.clone();
    let q = MessageQuery {
        to: Some(machine.to_string()),
        unread_by: Some(machine.to_string()),
        limit: Some(1),
        ..Default::default()
    };
    Ok(!bus.wait_messages(&q, poll).await?.is_empty())
}

/// Runs `cmd` through the shell with `digest` on stdin. The digest is also kept in the data dir
/// (`watch/<machine>-last.md`), so a command that failed can be run again by hand.
async fn run_command(cmd: &str, digest: &str, data: &std::path::Path, machine: &str) {
    let keep = data.join("watch").join(format!("{}-last.md", handoff_channels::names::safe_file_name(machine)));
    if let Err(e) = handoff_channels::fsutil::write_atomic_private(&keep, digest.as_bytes()) {
        tracing::warn!(error = %e, "cannot keep the digest");
    }
    let mut c = if cfg!(windows) {
        let mut c = tokio::process::Command::new("cmd");
        c.arg("/C").arg(cmd);
        c
    } else {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(cmd);
        c
    };
    c.stdin(std::process::Stdio::piped());
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            eprintln!("handoff watch: cannot start `{cmd}`: {e} (the digest is in {})", keep.display());
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt as _;
        // a command that does not read its stdin is fine
        let _ = stdin.write_all(digest.as_bytes()).await;
    }
    match child.wait().await {
        Ok(st) if st.success() => {}
        Ok(st) => eprintln!("handoff watch: `{cmd}` exited with {st} (the digest is in {})", keep.display()),
        Err(e) => eprintln!("handoff watch: `{cmd}`: {e}"),
    }
}

/// `--every DUR`: runs `handoff sync` (this binary, same config and machine) on a schedule.
async fn every_loop(o: &Overrides, every: Duration) -> anyhow::Result<i32> {
    let exe = std::env::current_exe()?;
    loop {
        let mut c = tokio::process::Command::new(&exe);
        if let Some(cfg) = &o.config {
            c.arg("--config").arg(cfg);
        }
        if let Some(m) = &o.machine {
            c.arg("--machine").arg(m);
        }
        c.arg("sync");
        match c.status().await {
            Ok(st) if !st.success() => eprintln!("handoff watch: sync exited with {st}"),
            Ok(_) => {}
            Err(e) => eprintln!("handoff watch: cannot run sync: {e}"),
        }
        let _ = std::io::stdout().flush();
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_past_midnight() {
        let q = QuietHours::parse("22:00-07:00").unwrap();
        assert!(q.contains(23 * 60) && q.contains(0) && q.contains(6 * 60 + 59));
        assert!(!q.contains(7 * 60) && !q.contains(12 * 60));
        assert_eq!(q.minutes_left(23 * 60), 8 * 60);
        assert_eq!(q.minutes_left(12 * 60), 0);
        let day = QuietHours::parse("09:30-10:00").unwrap();
        assert!(day.contains(9 * 60 + 45) && !day.contains(10 * 60));
        for bad in ["22-07", "25:00-07:00", "10:00-10:00", "x", "10:00"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limit_holds_runs_beyond_the_hourly_maximum() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(2);
        assert_eq!(r.wait(t0), Duration::ZERO);
        r.record(t0);
        r.record(t0 + Duration::from_secs(10));
        assert_eq!(r.wait(t0 + Duration::from_secs(20)), Duration::from_secs(3580));
        assert_eq!(r.wait(t0 + Duration::from_secs(3600)), Duration::ZERO);
    }
}
