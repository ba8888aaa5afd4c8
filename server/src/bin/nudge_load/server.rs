//! A fresh release server for one scenario: its own SQLite folder and port, an
//! API key from the CLI, and its CPU time, memory and disk use read from /proc.

use super::client::Conn;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    pub addr: String,
    pub key: String,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// What is left once the server has stopped.
pub struct Stopped {
    pub disk_bytes: u64,
    /// Each file's size, by its path in the data folder.
    pub disk_files: BTreeMap<String, u64>,
    pub clean_exit: bool,
    pub stop_seconds: f64,
    /// The data folder, if it was kept.
    pub kept: Option<PathBuf>,
}

/// A port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn command(bin: &Path, dir: &Path, addr: &str) -> Command {
    let mut c = Command::new(bin);
    c.env("NUDGE_DATA_DIR", dir)
        .env("NUDGE_ADDR", addr)
        .env("NUDGE_INGEST_RATE_LIMIT", "0")
        .env("NUDGE_LOG", "warn")
        // The benchmark is of the embedded SQLite database, whatever the shell says.
        .env_remove("DATABASE_URL");
    c
}

impl Server {
    /// Starts `bin` on a new data folder under the system's temp folder, its
    /// output going to `log`, and waits until `/healthz` answers.
    pub async fn start(bin: &Path, log: &Path) -> anyhow::Result<Server> {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir = std::env::temp_dir().join(format!("nudge-bench-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let out = command(bin, &dir, &addr)
            .args(["api-key", "create", "--name", "bench", "--role", "editor"])
            .output()
            .with_context(|| format!("running {} api-key create", bin.display()))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!("{} api-key create failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if key.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!("{} api-key create printed no key", bin.display());
        }
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = command(bin, &dir, &addr)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Server { pid: child.id(), child: Some(child), addr, key, dir, log: log.to_path_buf() };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut conn) = Conn::open(&self.addr).await {
                if let Ok((200, _)) = conn.get(&self.addr, "/healthz").await {
                    return Ok(());
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("the server exited ({status}) before answering /healthz: {}", self.log_tail());
                }
            }
            if Instant::now() > deadline {
                bail!("the server did not answer /healthz within 60 s: {}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines the server wrote, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
        if tail.is_empty() {
            format!("(nothing in {})", self.log.display())
        } else {
            format!("(from {})\n{tail}", self.log.display())
        }
    }

    /// CPU seconds the server has used so far (user + system).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// The server's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_kib(self.pid, "VmHWM:")
    }

    /// Stops the server with SIGTERM (so SQLite checkpoints its WAL), waits up
    /// to 60 s (then kills it), measures the data folder and removes it unless `keep`.
    pub async fn stop(mut self, keep: bool) -> anyhow::Result<Stopped> {
        let Some(mut child) = self.child.take() else { bail!("the server was already stopped") };
        let stopping = Instant::now();
        let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let mut clean_exit = false;
        if matches!(term, Ok(s) if s.success()) {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait()? {
                    clean_exit = status.success();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if !clean_exit {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stop_seconds = stopping.elapsed().as_secs_f64();
        let mut disk_files = BTreeMap::new();
        list_files(&self.dir, &self.dir, &mut disk_files)?;
        let kept = if keep {
            Some(self.dir.clone())
        } else {
            std::fs::remove_dir_all(&self.dir).with_context(|| format!("removing {}", self.dir.display()))?;
            None
        };
        Ok(Stopped { disk_bytes: disk_files.values().sum(), disk_files, clean_exit, stop_seconds, kept })
    }
}

impl Drop for Server {
    /// A scenario that failed half-way must not leave its server running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The size of every file under `dir` (nudge.db, its -wal and -shm, anything else).
fn list_files(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            list_files(root, &entry.path(), out)?;
        } else {
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            out.insert(name, meta.len());
        }
    }
    Ok(())
}

/// Clock ticks a second, for /proc/<pid>/stat (`getconf CLK_TCK`, 100 almost everywhere).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a /proc stat file, in seconds. The fields are counted after
/// the command name's closing parenthesis, which may itself contain spaces.
pub fn cpu_seconds(stat_path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(stat_path).with_context(|| format!("reading {stat_path}"))?;
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("no ')' in a /proc stat file")?;
    // After the name: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields.get(i).context("a /proc stat file is too short")?.parse().context("a /proc stat field is not a number")
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / clock_ticks())
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's resident memory in KiB (VmRSS), from /proc (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The anonymous part of it (RssAnon: heap and stacks), without the pages of
/// memory-mapped files such as the database, which the kernel can drop.
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon:")
}

/// The soft limit on open files of this process, from /proc/self/limits.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}
