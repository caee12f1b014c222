//! The two forwarders under test as child processes: `ferry up` and `kubectl
//! port-forward`, and what `/proc` says about a process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::measure::lock;

/// Where the `ferry` binary is: `$FERRY_BIN`, else next to this program.
pub fn ferry_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FERRY_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("FERRY_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let me = std::env::current_exe().context("locating this program")?;
    let next = me.with_file_name("ferry");
    if next.is_file() {
        return Ok(next);
    }
    bail!(
        "no `ferry` binary next to {} (build it with `cargo build --release -p ferry-cli`, \
         or set FERRY_BIN)",
        me.display()
    )
}

/// The `kubectl` to compare with: `$KUBECTL`, else the one on PATH; `None` when absent.
pub fn kubectl_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
}

/// `kubectl version --client`, first line.
pub async fn kubectl_version(bin: &Path) -> String {
    let out = Command::new(bin)
        .args(["version", "--client"])
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Per forward: its last state and local address, from the JSON events.
type ForwardStates = Arc<Mutex<HashMap<String, (String, Option<SocketAddr>)>>>;

/// A forward's state change, as the JSON events said it.
#[derive(Debug, Clone)]
pub struct Transition {
    pub at: Instant,
    pub forward: String,
    /// The state before (`None` for the forward's first event).
    pub from: Option<String>,
    pub to: String,
    pub pod: Option<String>,
    pub error: Option<String>,
}

/// The first this many state changes are kept (a soak run sees a few hundred).
const TRANSITIONS_KEPT: usize = 100_000;

/// A running `ferry up -c FILE --events json`.
pub struct Ferry {
    child: Child,
    /// Per forward: its last state and local address, from the JSON events.
    forwards: ForwardStates,
    /// Every change of a forward's state, in order.
    transitions: Arc<Mutex<Vec<Transition>>>,
    stderr: PathBuf,
}

impl Ferry {
    /// Writes `config` next to `kubeconfig` as `file_name` and starts `ferry up` on it.
    pub fn start(
        bin: &Path,
        kubeconfig: &Path,
        dir: &Path,
        file_name: &str,
        config: &str,
    ) -> anyhow::Result<Self> {
        let file = dir.join(file_name);
        std::fs::write(&file, config).with_context(|| format!("writing {}", file.display()))?;
        let stderr = dir.join(format!("{file_name}.stderr"));
        let mut child = Command::new(bin)
            .arg("up")
            .arg("-c")
            .arg(&file)
            .args(["--events", "json"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("FERRY_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("ferry's stdout")?;
        let forwards: ForwardStates = Arc::default();
        let seen = forwards.clone();
        let transitions: Arc<Mutex<Vec<Transition>>> = Arc::default();
        let changes = transitions.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let (Some(name), Some(state)) = (v["forward"].as_str(), v["state"].as_str()) else {
                    continue;
                };
                let local = v["local"].as_str().and_then(|s| s.parse().ok());
                let before = lock(&seen).insert(name.to_string(), (state.to_string(), local));
                let from = before.map(|(s, _)| s);
                if from.as_deref() != Some(state) {
                    let mut log = lock(&changes);
                    if log.len() < TRANSITIONS_KEPT {
                        log.push(Transition {
                            at: Instant::now(),
                            forward: name.to_string(),
                            from,
                            to: state.to_string(),
                            pod: v["pod"].as_str().map(str::to_string),
                            error: v["error"].as_str().map(str::to_string),
                        });
                    }
                }
            }
        });
        Ok(Self {
            child,
            forwards,
            transitions,
            stderr,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The forwards' state changes from the `from`-th on.
    pub fn transitions(&self, from: usize) -> Vec<Transition> {
        lock(&self.transitions)
            .get(from..)
            .map(<[Transition]>::to_vec)
            .unwrap_or_default()
    }

    /// Where the process's stderr goes.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr
    }

    /// How the process ended, with its stderr, if it has.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "ferry exited ({status}): {}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            )),
            Ok(None) => None,
            Err(e) => Some(format!("cannot tell whether ferry runs: {e}")),
        }
    }

    /// Waits until every forward in `names` has a local address and (with `active`) is
    /// `active`; returns the local addresses.
    pub async fn wait(
        &mut self,
        names: &[String],
        active: bool,
        limit: Duration,
    ) -> anyhow::Result<HashMap<String, SocketAddr>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "ferry exited ({status}): {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            let ready: HashMap<String, SocketAddr> = {
                let seen = lock(&self.forwards);
                names
                    .iter()
                    .filter_map(|n| {
                        let (state, local) = seen.get(n)?;
                        if active && state != "active" {
                            return None;
                        }
                        Some((n.clone(), (*local)?))
                    })
                    .collect()
            };
            if ready.len() == names.len() {
                return Ok(ready);
            }
            if Instant::now() >= deadline {
                let seen = lock(&self.forwards);
                let missing: Vec<String> = names
                    .iter()
                    .filter(|n| !ready.contains_key(*n))
                    .take(5)
                    .map(|n| format!("{n}: {:?}", seen.get(n)))
                    .collect();
                bail!(
                    "{} of {} ferry forwards not ready after {limit:?} (e.g. {})",
                    names.len() - ready.len(),
                    names.len(),
                    missing.join(", ")
                );
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the process (SIGKILL) and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A running `kubectl port-forward`.
pub struct Kubectl {
    child: Child,
    /// Remote port → local address, from the "Forwarding from" lines.
    ports: Arc<Mutex<HashMap<u16, SocketAddr>>>,
    stderr: PathBuf,
}

impl Kubectl {
    /// Starts `kubectl port-forward -n NS TARGET :P…` on 127.0.0.1.
    pub fn start(
        bin: &Path,
        kubeconfig: &Path,
        dir: &Path,
        namespace: &str,
        target: &str,
        ports: &[u16],
    ) -> anyhow::Result<Self> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr = dir.join(format!("kubectl-{seq}.stderr"));
        let mut child = Command::new(bin)
            .args([
                "port-forward",
                "--address",
                "127.0.0.1",
                "-n",
                namespace,
                target,
            ])
            .args(ports.iter().map(|p| format!(":{p}")))
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("kubectl's stdout")?;
        let seen: Arc<Mutex<HashMap<u16, SocketAddr>>> = Arc::default();
        let map = seen.clone();
        // Drained for the process's whole life: kubectl prints a line per connection.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Forwarding from 127.0.0.1:41234 -> 8080
                let Some(rest) = line.strip_prefix("Forwarding from ") else {
                    continue;
                };
                let mut parts = rest.split(" -> ");
                let (Some(local), Some(remote)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if let (Ok(local), Ok(remote)) = (
                    local.trim().parse::<SocketAddr>(),
                    remote.trim().parse::<u16>(),
                ) {
                    lock(&map).insert(remote, local);
                }
            }
        });
        Ok(Self {
            child,
            ports: seen,
            stderr,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for a "Forwarding from" line per port; returns remote → local.
    pub async fn wait(
        &mut self,
        ports: &[u16],
        limit: Duration,
    ) -> anyhow::Result<HashMap<u16, SocketAddr>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "kubectl exited ({status}): {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            {
                let seen = lock(&self.ports);
                if ports.iter().all(|p| seen.contains_key(p)) {
                    return Ok(seen.clone());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "kubectl printed no \"Forwarding from\" for every port within {limit:?}: {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits up to `limit` for the process to exit; true when it did.
    pub async fn exited_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.child.wait()).await.is_ok()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// What `/proc/PID` says: resident memory, threads and CPU time so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    /// `Threads:` of `/proc/PID/status`.
    pub threads: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces and parentheses).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3 (state); utime and stime are fields 14 and 15.
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .context("malformed stat")
    };
    Ok(ProcSample {
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
        threads: kb("Threads:"),
        cpu_ticks: num(11)? + num(12)?,
    })
}

/// How many descriptors `pid` has open (the entries of `/proc/PID/fd`).
pub fn open_fds(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        entry.with_context(|| format!("reading {dir}"))?;
        n += 1;
    }
    Ok(n)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The soft and hard limits on open files of `pid` (`/proc/PID/limits`; `u64::MAX` for
/// `unlimited`).
pub fn open_files_limit(pid: u32) -> anyhow::Result<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .with_context(|| format!("reading /proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .context("no \"Max open files\" in /proc/PID/limits")?;
    let mut values = line.split_whitespace().map(|v| match v {
        "unlimited" => Ok(u64::MAX),
        v => v.parse::<u64>().context("malformed open files limit"),
    });
    let soft = values.next().context("no soft limit")??;
    let hard = values.next().context("no hard limit")??;
    Ok((soft, hard))
}

/// Makes sure this process may open `need` files: when its soft limit is lower, raises it
/// to the hard limit with `prlimit(1)` (util-linux; the same as `ulimit -n HARD` in the
/// shell). Child processes started afterwards — the forwarders — inherit the limit.
/// Returns the soft limit in force and, when it was raised, the one before; or why it
/// stays too low.
pub fn ensure_open_files(need: u64) -> Result<(u64, Option<u64>), String> {
    let me = std::process::id();
    let (soft, hard) = open_files_limit(me).map_err(|e| format!("{e:#}"))?;
    if soft >= need {
        return Ok((soft, None));
    }
    let advice = format!(
        "the open-file limit is {soft} (hard {hard}), under the {need} the largest scenario \
         needs: run `ulimit -n {need}` (or higher) first"
    );
    if hard > soft {
        let to = if hard == u64::MAX {
            "unlimited".to_string()
        } else {
            hard.to_string()
        };
        let ran = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(me.to_string())
            .arg(format!("--nofile={to}:"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if ran.is_ok_and(|s| s.success())
            && let Ok((now, _)) = open_files_limit(me)
            && now >= need
        {
            return Ok((now, Some(soft)));
        }
    }
    Err(advice)
}
