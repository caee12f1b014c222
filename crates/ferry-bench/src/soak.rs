//! `ferry-bench --soak DURATION`: one release `ferry up` with five forwards against the fake
//! cluster for a long time, under steady connection load, pod churn and injected faults;
//! samples the process's memory, descriptors and threads, and counts every failed
//! connection, each classified as ended by its pod's deletion, inside an injected fault's
//! window, or lost. See "Soak" in `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use ferry_fakecluster::cluster::{Cluster, pod_is_ready};
use ferry_fakecluster::kind::Kind;
use ferry_fakecluster::{FakeCluster, Faults, Options, Scenario};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::measure::{lock, percentile_ms};
use crate::procs::{self, Ferry};
use crate::{loadavg, machine, note};

/// The soak scenario's namespace.
const NS: &str = "soak";

/// The soak run's fake cluster.
const SCENARIO: &str = include_str!("../soak.yaml");

/// A pod is deleted at the start of every slot.
const SLOT: Duration = Duration::from_secs(30);
/// Every this many slots, a fault is injected `FAULT_AT` into the slot; the next deletion
/// comes after the fault's window and its grace have ended.
const FAULT_EVERY_SLOTS: u64 = 3;
const FAULT_AT: Duration = Duration::from_secs(10);
/// How long sessions stay frozen: longer than two of Ferry's session pings (5 s apart),
/// so that Ferry gives the frozen sessions up before they thaw.
const FREEZE_FOR: Duration = Duration::from_secs(12);
/// How long every API request (upgrades included) is answered with a 500.
const API_FAIL_FOR: Duration = Duration::from_secs(10);
/// A failure this long after a fault's window still counts as inside it.
const GRACE: Duration = Duration::from_secs(5);
/// The longest a connect, or one request and its answer, may take before it counts as
/// failed.
const OP_LIMIT: Duration = Duration::from_secs(20);
/// Short-lived connections: this many clients, each opening one every `SHORT_EVERY`,
/// the forwards in turn.
const SHORT_TASKS: usize = 4;
const SHORT_EVERY: Duration = Duration::from_millis(250);
/// Long-lived connections send a request this often...
const LONG_EVERY: Duration = Duration::from_secs(3);
/// ...and are closed after these many seconds, in turn, then opened again.
const LONG_HOLD_SECS: [u64; 5] = [60, 120, 180, 240, 300];
/// How long a long-lived client waits after a failure before opening a new connection.
const LONG_RETRY: Duration = Duration::from_secs(1);
/// A deletion of a connection's pod this long before its last answer still explains its
/// end (the answer may have been on its way).
const DELETION_SLACK: Duration = Duration::from_millis(500);
/// Pods are deleted in this rotation of deployments/statefulsets (`app` labels).
const CHURN: [&str; 4] = ["web", "api", "web", "db"];

/// What `--soak` was given.
#[derive(Debug, Clone)]
pub struct SoakArgs {
    pub duration: Duration,
    pub interval: Duration,
    pub json: Option<PathBuf>,
}

/// A duration as humantime writes it: `30m`, `90s`, `1h30m`, `1h 30m`, `500ms`; units
/// `ms`, `s`/`sec`/`secs`, `m`/`min`/`mins`, `h`/`hr`/`hours`, `d`/`days`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("expected a duration such as 30m, 90s or 1h30m".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?}: expected a number at {rest:?}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|e| format!("{text:?}: {e}"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let one = match unit {
            "ms" | "msec" | "millis" => Duration::from_millis(1),
            "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(1),
            "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(60),
            "h" | "hr" | "hrs" | "hour" | "hours" => Duration::from_secs(3600),
            "d" | "day" | "days" => Duration::from_secs(86_400),
            "" => return Err(format!("{text:?}: {n} needs a unit (ms, s, m, h)")),
            other => return Err(format!("{text:?}: unknown unit {other:?}")),
        };
        let add = u32::try_from(n)
            .ok()
            .and_then(|n| one.checked_mul(n))
            .ok_or_else(|| format!("{text:?}: too long"))?;
        total = total
            .checked_add(add)
            .ok_or_else(|| format!("{text:?}: too long"))?;
        rest = rest[unit_len..].trim_start();
    }
    if total.is_zero() {
        return Err(format!("{text:?}: must be longer than zero"));
    }
    Ok(total)
}

/// One forward of the soak run.
#[derive(Debug, Clone, Copy)]
struct Spec {
    name: &'static str,
    target: &'static str,
    port: u16,
    pick: Option<&'static str>,
    /// The port speaks HTTP (its `GET /` answer names the pod), else it echoes.
    http: bool,
}

const FORWARDS: [Spec; 5] = [
    Spec {
        name: "web",
        target: "service/web",
        port: 80,
        pick: Some("round-robin"),
        http: true,
    },
    Spec {
        name: "web-echo",
        target: "service/web",
        port: 9000,
        pick: None,
        http: false,
    },
    Spec {
        name: "api",
        target: "deployment/api",
        port: 8080,
        pick: None,
        http: true,
    },
    Spec {
        name: "api-echo",
        target: "deployment/api",
        port: 9000,
        pick: None,
        http: false,
    },
    Spec {
        name: "db",
        target: "pod/db-0",
        port: 8080,
        pick: None,
        http: true,
    },
];

/// The forwards the long-lived clients use (HTTP ones, so that each answer names the
/// pod): two clients each.
const LONG_FORWARDS: [&str; 6] = ["web", "web", "api", "api", "db", "db"];

fn ferry_config() -> String {
    let mut s = String::from("version: 1\nforwards:\n");
    for f in FORWARDS {
        let pick = f.pick.map(|p| format!(", pick: {p}")).unwrap_or_default();
        s.push_str(&format!(
            "  - {{name: {}, namespace: {NS}, target: {}, port: {}, local_port: 0{pick}}}\n",
            f.name, f.target, f.port
        ));
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// Every open tunnel dropped at once, as a broken connection.
    Drop,
    /// Every open session frozen for `FREEZE_FOR`, then thawed.
    Freeze,
    /// Every API request (upgrades included) answered with a 500 for `API_FAIL_FOR`.
    ApiErrors,
}

impl FaultKind {
    const ROTATION: [FaultKind; 3] = [FaultKind::Drop, FaultKind::Freeze, FaultKind::ApiErrors];

    fn name(self) -> &'static str {
        match self {
            FaultKind::Drop => "drop",
            FaultKind::Freeze => "freeze",
            FaultKind::ApiErrors => "api-errors",
        }
    }
}

/// An injected fault, in seconds since the load started.
#[derive(Debug, Clone)]
struct Window {
    kind: FaultKind,
    start: f64,
    /// `None` while it lasts.
    end: Option<f64>,
    detail: String,
}

#[derive(Debug, Clone)]
struct Deletion {
    at: f64,
    pod: String,
    app: String,
}

/// Why a connection failed, as far as the bench can tell.
#[derive(Debug, Clone, PartialEq)]
enum Class {
    /// The pod that answered the connection last was deleted between that answer (less
    /// `DELETION_SLACK`) and the failure.
    PodDeleted { pod: String, deleted_at: f64 },
    /// The failed exchange overlapped an injected fault's window (or its grace).
    Fault { index: usize, kind: FaultKind },
    /// Neither: a lost connection. `near` names a pod deletion during the failed exchange
    /// or in the 5 s before it, if there was one (a hint, not an excuse).
    Lost { near: Option<(String, f64)> },
}

impl Class {
    fn word(&self) -> &'static str {
        match self {
            Class::PodDeleted { .. } => "pod-deleted",
            Class::Fault { .. } => "in-fault",
            Class::Lost { .. } => "lost",
        }
    }
}

/// Classifies a failure: the exchange that failed ran from `since` to `at` (seconds);
/// `pod` answered the connection last (`None` before any answer).
fn classify(
    since: f64,
    at: f64,
    pod: Option<&str>,
    faults: &[Window],
    deletions: &[Deletion],
) -> Class {
    let slack = DELETION_SLACK.as_secs_f64();
    if let Some(pod) = pod
        && let Some(d) = deletions
            .iter()
            .rev()
            .find(|d| d.pod == pod && d.at >= since - slack && d.at <= at)
    {
        return Class::PodDeleted {
            pod: pod.to_string(),
            deleted_at: d.at,
        };
    }
    let grace = GRACE.as_secs_f64();
    if let Some((index, w)) = faults
        .iter()
        .enumerate()
        .find(|(_, w)| w.start <= at && since <= w.end.unwrap_or(f64::INFINITY) + grace)
    {
        return Class::Fault {
            index,
            kind: w.kind,
        };
    }
    let near = deletions
        .iter()
        .rev()
        .find(|d| d.at <= at && d.at >= since - 5.0)
        .map(|d| (d.pod.clone(), d.at));
    Class::Lost { near }
}

#[derive(Debug, Clone)]
struct Failure {
    at: f64,
    since: f64,
    forward: &'static str,
    long: bool,
    /// Answers the connection had received before it failed.
    answers: u64,
    pod: Option<String>,
    error: String,
    class: Class,
}

impl Failure {
    fn json(&self) -> Value {
        let mut v = json!({
            "at_s": round1(self.at),
            "since_s": round1(self.since),
            "forward": self.forward,
            "connection": if self.long { "long-lived" } else { "short-lived" },
            "answers_before": self.answers,
            "pod": self.pod,
            "error": self.error,
            "class": self.class.word(),
        });
        match &self.class {
            Class::PodDeleted { pod, deleted_at } => {
                v["deleted_pod"] = json!(pod);
                v["deleted_at_s"] = json!(round1(*deleted_at));
            }
            Class::Fault { index, kind } => {
                v["fault"] = json!(index + 1);
                v["fault_kind"] = json!(kind.name());
            }
            Class::Lost {
                near: Some((pod, at)),
            } => {
                v["deletion_nearby"] = json!({"pod": pod, "at_s": round1(*at)});
            }
            Class::Lost { near: None } => {}
        }
        v
    }

    fn describe(&self) -> String {
        let kind = if self.long {
            "long-lived"
        } else {
            "short-lived"
        };
        let pod = self
            .pod
            .as_deref()
            .map(|p| format!(", last answered by {p}"))
            .unwrap_or_default();
        let near = match &self.class {
            Class::Lost {
                near: Some((p, at)),
            } => format!(" (pod {p} was deleted at {at:.1} s)"),
            _ => String::new(),
        };
        format!(
            "{:.1} s: {kind} connection on {} ({} answers{pod}; failed exchange from {:.1} s): {}{near}",
            self.at, self.forward, self.answers, self.since, self.error
        )
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Everything the clients, the churn and the faults record.
struct Log {
    t0: Instant,
    faults: Mutex<Vec<Window>>,
    deletions: Mutex<Vec<Deletion>>,
    failures: Mutex<Vec<Failure>>,
    short_ok: AtomicU64,
    long_opened: AtomicU64,
    /// Long-lived connections closed by their client after their time, as planned.
    long_done: AtomicU64,
    /// Long-lived connections open now.
    long_open: AtomicU64,
    /// Request/answer round trips on long-lived connections.
    round_trips: AtomicU64,
    /// A long-lived connection whose answers came from another pod than before: a
    /// connection moved between pods after its first answer (should never happen).
    pod_switches: Mutex<Vec<String>>,
    /// Short-lived connections' whole times since the last sample.
    short_times: Mutex<Vec<Duration>>,
}

impl Log {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            faults: Mutex::default(),
            deletions: Mutex::default(),
            failures: Mutex::default(),
            short_ok: AtomicU64::new(0),
            long_opened: AtomicU64::new(0),
            long_done: AtomicU64::new(0),
            long_open: AtomicU64::new(0),
            round_trips: AtomicU64::new(0),
            pod_switches: Mutex::default(),
            short_times: Mutex::default(),
        }
    }

    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    fn now(&self) -> f64 {
        self.secs(Instant::now())
    }

    #[allow(clippy::too_many_arguments)]
    fn fail(
        &self,
        since: Instant,
        forward: &'static str,
        long: bool,
        answers: u64,
        pod: Option<String>,
        error: &anyhow::Error,
    ) {
        let at = self.now();
        let since = self.secs(since);
        // Lock order: faults, deletions, failures (the churn task takes one at a time).
        let class = {
            let faults = lock(&self.faults);
            let deletions = lock(&self.deletions);
            classify(since, at, pod.as_deref(), &faults, &deletions)
        };
        let f = Failure {
            at,
            since,
            forward,
            long,
            answers,
            pod,
            error: format!("{error:#}"),
            class,
        };
        if matches!(f.class, Class::Lost { .. }) {
            note(format!("LOST {}", f.describe()));
        }
        lock(&self.failures).push(f);
    }

    fn counts(&self) -> (u64, u64, u64) {
        let failures = lock(&self.failures);
        let mut c = (0, 0, 0);
        for f in failures.iter() {
            match f.class {
                Class::Lost { .. } => c.0 += 1,
                Class::Fault { .. } => c.1 += 1,
                Class::PodDeleted { .. } => c.2 += 1,
            }
        }
        c
    }
}

/// A forward's local address and what its port speaks.
#[derive(Debug, Clone, Copy)]
struct Fwd {
    name: &'static str,
    addr: SocketAddr,
    http: bool,
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let sock = timeout(OP_LIMIT, TcpStream::connect(addr))
        .await
        .context("connect timed out")?
        .context("connect")?;
    sock.set_nodelay(true)?;
    Ok(sock)
}

/// One `GET /` on an HTTP/1.1 connection; returns the pod the answer names.
async fn http_get(conn: &mut BufReader<TcpStream>, close: bool) -> anyhow::Result<String> {
    let req: &[u8] = if close {
        b"GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"
    };
    conn.get_mut().write_all(req).await.context("sending")?;
    let mut line = String::new();
    let n = conn.read_line(&mut line).await.context("reading")?;
    ensure!(n > 0, "closed before an answer");
    ensure!(
        line.starts_with("HTTP/1.1 200"),
        "unexpected answer {:?}",
        line.trim_end()
    );
    let mut length = None;
    loop {
        line.clear();
        let n = conn.read_line(&mut line).await.context("reading")?;
        ensure!(n > 0, "closed within an answer's headers");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let length = length.context("an answer without content-length")?;
    ensure!(length <= 4096, "an answer of {length} bytes");
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body)
        .await
        .context("closed within an answer's body")?;
    let body = String::from_utf8_lossy(&body);
    let pod = body
        .trim()
        .strip_prefix("hello from ")
        .with_context(|| format!("unexpected body {body:?}"))?;
    Ok(pod.to_string())
}

/// One short-lived connection: connect, one exchange, close. Returns the pod for HTTP.
async fn short_once(f: Fwd, seq: u64) -> anyhow::Result<Option<String>> {
    let sock = connect(f.addr).await?;
    if f.http {
        let mut conn = BufReader::new(sock);
        let pod = timeout(OP_LIMIT, http_get(&mut conn, true))
            .await
            .context("no answer within the limit")??;
        return Ok(Some(pod));
    }
    let mut sock = sock;
    let mut msg = [b'.'; 64];
    msg[..8].copy_from_slice(&seq.to_be_bytes());
    let work = async {
        sock.write_all(&msg).await.context("sending")?;
        let mut back = [0u8; 64];
        sock.read_exact(&mut back)
            .await
            .context("closed before the whole echo")?;
        ensure!(back == msg, "the echo answered other bytes");
        Ok(())
    };
    timeout(OP_LIMIT, work)
        .await
        .context("no echo within the limit")??;
    Ok(None)
}

async fn short_client(log: Arc<Log>, fwds: Arc<Vec<Fwd>>, i: usize) {
    let offset = SHORT_EVERY.mul_f64(i as f64 / SHORT_TASKS as f64);
    let mut tick = tokio::time::interval_at(Instant::now() + offset, SHORT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = i as u64;
    loop {
        tick.tick().await;
        let f = fwds[n as usize % fwds.len()];
        n += 1;
        let start = Instant::now();
        match short_once(f, n).await {
            Ok(_) => {
                log.short_ok.fetch_add(1, Ordering::Relaxed);
                lock(&log.short_times).push(start.elapsed());
            }
            Err(e) => log.fail(start, f.name, false, 0, None, &e),
        }
    }
}

/// Counts a long-lived connection as open while alive.
struct OpenGuard<'a>(&'a AtomicU64);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a long-lived connection saw so far.
struct LongState {
    last_ok: Instant,
    answers: u64,
    pod: Option<String>,
}

async fn long_once(
    log: &Log,
    f: Fwd,
    hold: Duration,
    opened: Instant,
    st: &mut LongState,
) -> anyhow::Result<()> {
    let sock = connect(f.addr).await?;
    let mut conn = BufReader::new(sock);
    loop {
        let pod = timeout(OP_LIMIT, http_get(&mut conn, false))
            .await
            .context("no answer within the limit")??;
        st.answers += 1;
        st.last_ok = Instant::now();
        log.round_trips.fetch_add(1, Ordering::Relaxed);
        if let Some(before) = &st.pod
            && *before != pod
        {
            let what = format!(
                "{:.1} s: a long-lived connection on {} was answered by {before}, then by {pod}",
                log.now(),
                f.name
            );
            note(format!("ANOMALY {what}"));
            lock(&log.pod_switches).push(what);
        }
        st.pod = Some(pod);
        if opened.elapsed() >= hold {
            return Ok(());
        }
        sleep(LONG_EVERY).await;
    }
}

async fn long_client(log: Arc<Log>, f: Fwd, i: usize) {
    sleep(LONG_EVERY.mul_f64(i as f64 / LONG_FORWARDS.len() as f64)).await;
    let mut k = i;
    loop {
        let hold = Duration::from_secs(LONG_HOLD_SECS[k % LONG_HOLD_SECS.len()]);
        k += 1;
        let opened = Instant::now();
        log.long_opened.fetch_add(1, Ordering::Relaxed);
        log.long_open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(&log.long_open);
        let mut st = LongState {
            last_ok: opened,
            answers: 0,
            pod: None,
        };
        let res = long_once(&log, f, hold, opened, &mut st).await;
        drop(guard);
        match res {
            Ok(()) => {
                log.long_done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let since = if st.answers > 0 { st.last_ok } else { opened };
                log.fail(since, f.name, true, st.answers, st.pod.clone(), &e);
                sleep(LONG_RETRY).await;
            }
        }
    }
}

/// The ready pods of `app`, by name.
fn ready_pods(cluster: &Cluster, app: &str) -> Vec<String> {
    let mut pods: Vec<String> = cluster
        .list(Kind::Pod, Some(NS))
        .1
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"].as_str() == Some(app) && pod_is_ready(p))
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    pods.sort();
    pods
}

/// Deletes a pod at the start of every slot, in `CHURN`'s rotation, and injects a fault
/// in every `FAULT_EVERY_SLOTS`-th slot, in `FaultKind::ROTATION`'s; stops before `end`.
async fn churn_and_faults(log: Arc<Log>, cluster: Arc<Cluster>, faults: Arc<Faults>, end: Instant) {
    let mut slot: u32 = 1;
    let mut injected = 0usize;
    loop {
        let at = log.t0 + SLOT * slot;
        if at >= end {
            return;
        }
        sleep_until(at).await;
        let app = CHURN[(slot as usize - 1) % CHURN.len()];
        let pods = ready_pods(&cluster, app);
        if let Some(pod) = pods.get((slot as usize / CHURN.len()) % pods.len().max(1)) {
            lock(&log.deletions).push(Deletion {
                at: log.now(),
                pod: pod.clone(),
                app: app.to_string(),
            });
            match cluster.delete_pod(NS, pod) {
                Ok(_) => note(format!("{:.1} s: deleted pod {pod}", log.now())),
                Err(e) => note(format!("{:.1} s: deleting pod {pod}: {e}", log.now())),
            }
        } else {
            note(format!(
                "{:.1} s: no ready {app} pod to delete this time",
                log.now()
            ));
        }
        if u64::from(slot).is_multiple_of(FAULT_EVERY_SLOTS) {
            let at = at + FAULT_AT;
            if at >= end {
                return;
            }
            sleep_until(at).await;
            let kind = FaultKind::ROTATION[injected % FaultKind::ROTATION.len()];
            injected += 1;
            inject(&log, &faults, kind).await;
        }
        slot += 1;
    }
}

async fn inject(log: &Log, faults: &Faults, kind: FaultKind) {
    let index = {
        let mut w = lock(&log.faults);
        w.push(Window {
            kind,
            start: log.now(),
            end: None,
            detail: String::new(),
        });
        w.len() - 1
    };
    let detail = match kind {
        FaultKind::Drop => format!("{} tunnels dropped", faults.drop_tunnels()),
        FaultKind::Freeze => {
            let n = faults.freeze_sessions();
            sleep(FREEZE_FOR).await;
            faults.thaw_sessions();
            format!("{n} tunnels frozen for {} s", FREEZE_FOR.as_secs())
        }
        FaultKind::ApiErrors => {
            faults.fail_api(API_FAIL_FOR);
            sleep(API_FAIL_FOR).await;
            format!(
                "every API request answered 500 for {} s",
                API_FAIL_FOR.as_secs()
            )
        }
    };
    let end = log.now();
    let mut w = lock(&log.faults);
    if let Some(win) = w.get_mut(index) {
        win.end = Some(end);
        win.detail = detail.clone();
        note(format!(
            "fault {} ({}): {:.1}–{:.1} s, {detail}",
            index + 1,
            kind.name(),
            win.start,
            end
        ));
    }
}

/// One sample of `ferry up` and of the load.
#[derive(Debug, Clone, Default)]
struct Sample {
    t: f64,
    rss_kb: u64,
    hwm_kb: u64,
    fds: u64,
    threads: u64,
    /// `ferry up`'s CPU since the previous sample, % of one core.
    cpu_pct: f64,
    /// Tunnels open on the fake API server (every client's; Ferry's and the health checks').
    tunnels: usize,
    /// Upgrades (sessions, tunnels) Ferry asked the fake API server for so far.
    upgrades: u64,
    short_ok: u64,
    long_opened: u64,
    long_done: u64,
    long_open: u64,
    round_trips: u64,
    lost: u64,
    in_faults: u64,
    pod_deleted: u64,
    /// Short-lived connections' times since the previous sample.
    short_p50_ms: Option<f64>,
    short_p99_ms: Option<f64>,
    short_max_ms: Option<f64>,
}

impl Sample {
    fn json(&self) -> Value {
        json!({
            "t_s": round1(self.t),
            "rss_mib": mib(self.rss_kb),
            "hwm_mib": mib(self.hwm_kb),
            "fds": self.fds,
            "threads": self.threads,
            "cpu_pct": round1(self.cpu_pct),
            "server_tunnels_open": self.tunnels,
            "ferry_upgrades": self.upgrades,
            "short_ok": self.short_ok,
            "long_opened": self.long_opened,
            "long_closed_as_planned": self.long_done,
            "long_open": self.long_open,
            "long_round_trips": self.round_trips,
            "failed_lost": self.lost,
            "failed_in_faults": self.in_faults,
            "ended_by_pod_deletion": self.pod_deleted,
            "short_p50_ms": self.short_p50_ms,
            "short_p99_ms": self.short_p99_ms,
            "short_max_ms": self.short_max_ms,
        })
    }

    fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        format!(
            "{:>7.0} {:>8.1} {:>5} {:>7} {:>5.1} {:>7} {:>8} {:>9} {:>6} {:>6} {:>6} {:>6} {:>5} {:>7} {:>8}",
            self.t,
            mib(self.rss_kb),
            self.fds,
            self.threads,
            self.cpu_pct,
            self.tunnels,
            self.upgrades,
            self.short_ok + self.long_done,
            self.round_trips,
            self.lost,
            self.in_faults,
            self.pod_deleted,
            self.long_open,
            ms(self.short_p99_ms),
            ms(self.short_max_ms),
        )
    }
}

const HEADER: &str = "    t s  RSS MiB   fds threads  CPU% tunnels upgrades  conns ok  round   lost  fault  poddel  long p99 ms   max ms";

/// Kibibytes in MiB, to 0.1.
fn mib(kb: u64) -> f64 {
    round1(kb as f64 / 1024.0)
}

fn ferry_upgrades(fake: &FakeCluster) -> u64 {
    fake.requests()
        .agents()
        .iter()
        .filter(|a| a.user_agent.starts_with("ferry/"))
        .map(|a| a.upgrades)
        .sum()
}

/// A figure over the run: at the end of warm-up, at the end, the largest, and the
/// least-squares slope per hour after warm-up.
fn series(samples: &[Sample], warmup: f64, get: impl Fn(&Sample) -> f64) -> Value {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t >= warmup).collect();
    let at_warmup = after.first().map(|s| get(s));
    let end = samples.last().map(&get);
    let max = samples
        .iter()
        .map(&get)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let min_after = after
        .iter()
        .map(|s| get(s))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
    let slope = slope_per_hour(
        &after
            .iter()
            .map(|s| (s.t / 3600.0, get(s)))
            .collect::<Vec<_>>(),
    );
    json!({
        "at_warmup_end": at_warmup,
        "end": end,
        "max": max,
        "min_after_warmup": min_after,
        "slope_per_hour_after_warmup": slope.map(|s| (s * 100.0).round() / 100.0),
    })
}

/// Least-squares slope of `(x, y)` points (`x` in hours): `y` per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn show(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn series_line(what: &str, unit: &str, v: &Value, warmup: f64) -> String {
    format!(
        "{what}: {} {unit} at the end of warm-up ({warmup:.0} s), {} at the end, max {}, min after warm-up {}; slope after warm-up {} {unit}/h",
        show(&v["at_warmup_end"]),
        show(&v["end"]),
        show(&v["max"]),
        show(&v["min_after_warmup"]),
        v["slope_per_hour_after_warmup"]
            .as_f64()
            .map_or("-".into(), |s| format!("{s:+.2}")),
    )
}

async fn start_cluster(dir: &std::path::Path) -> anyhow::Result<(FakeCluster, PathBuf)> {
    let scenario = Scenario::from_yaml(SCENARIO).context("the soak scenario")?;
    let fake = FakeCluster::start(Options::default().scenario(scenario)).await?;
    let kubeconfig = dir.join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig)?;
    if !fake.wait_pods_ready(Duration::from_secs(20)).await {
        bail!("the fake cluster's pods never became ready");
    }
    Ok((fake, kubeconfig))
}

/// Starts `ferry up`, waits until every forward is active and answers.
async fn start_ferry(
    bin: &std::path::Path,
    kubeconfig: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<(Ferry, Vec<Fwd>)> {
    let mut ferry = Ferry::start(bin, kubeconfig, dir, "ferry-soak.yaml", &ferry_config())?;
    let names: Vec<String> = FORWARDS.iter().map(|f| f.name.to_string()).collect();
    let locals = ferry.wait(&names, true, Duration::from_secs(60)).await?;
    let mut fwds = Vec::new();
    for f in FORWARDS {
        let addr = *locals.get(f.name).context("no local address")?;
        let fwd = Fwd {
            name: f.name,
            addr,
            http: f.http,
        };
        timeout(Duration::from_secs(30), short_once(fwd, 0))
            .await
            .with_context(|| format!("{}: no answer within 30 s", f.name))?
            .with_context(|| format!("{}: the first connection", f.name))?;
        fwds.push(fwd);
    }
    Ok((ferry, fwds))
}

pub async fn run(args: SoakArgs) -> anyhow::Result<bool> {
    let load_start = loadavg();
    let ferry_bin = procs::ferry_bin()?;
    note(format!(
        "soak for {:?}, a sample every {:?}; ferry: {}",
        args.duration,
        args.interval,
        ferry_bin.display()
    ));
    let dir = tempfile::tempdir()?;
    let (fake, kubeconfig) = start_cluster(dir.path())
        .await
        .context("starting the fake cluster")?;
    let (mut ferry, fwds) = start_ferry(&ferry_bin, &kubeconfig, dir.path())
        .await
        .context("starting ferry up")?;
    let pid = ferry.pid().context("ferry's pid")?;
    let ticks_per_s = procs::clock_ticks();

    let log = Arc::new(Log::new());
    let end = log.t0 + args.duration;
    let fwds = Arc::new(fwds);
    let mut tasks = JoinSet::new();
    for i in 0..SHORT_TASKS {
        tasks.spawn(short_client(log.clone(), fwds.clone(), i));
    }
    for (i, name) in LONG_FORWARDS.iter().enumerate() {
        let f = *fwds
            .iter()
            .find(|f| f.name == *name)
            .context("a long-lived client's forward")?;
        tasks.spawn(long_client(log.clone(), f, i));
    }
    tasks.spawn(churn_and_faults(
        log.clone(),
        fake.cluster().clone(),
        fake.faults().clone(),
        end,
    ));

    let warmup = (args.duration / 6).min(Duration::from_secs(120));
    let mut errors = Vec::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut transitions_seen = 0usize;
    let mut transitions = Vec::new();
    let mut prev_ticks: Option<(f64, u64)> = None;
    println!(
        "soak: {:?}, samples every {:?}; warm-up {:?}; ferry pid {pid}",
        args.duration, args.interval, warmup
    );
    println!("{HEADER}");
    let mut k: u32 = 0;
    loop {
        let due = (log.t0 + args.interval * k).min(end);
        sleep_until(due).await;
        if let Some(why) = ferry.exited() {
            note(format!("FAILED {why}"));
            errors.push(why);
            break;
        }
        let t = log.secs(due);
        let proc_sample = procs::sample(pid).and_then(|s| Ok((s, procs::open_fds(pid)?)));
        let (ps, fds) = match proc_sample {
            Ok(v) => v,
            Err(e) => {
                let why = format!("sampling ferry at {t:.0} s: {e:#}");
                note(format!("FAILED {why}"));
                errors.push(why);
                break;
            }
        };
        let now_s = log.now();
        let cpu_pct = match prev_ticks {
            Some((at, ticks)) if now_s > at => {
                100.0 * ps.cpu_ticks.saturating_sub(ticks) as f64 / ticks_per_s / (now_s - at)
            }
            _ => 0.0,
        };
        prev_ticks = Some((now_s, ps.cpu_ticks));
        let times = std::mem::take(&mut *lock(&log.short_times));
        let (lost, in_faults, pod_deleted) = log.counts();
        let s = Sample {
            t,
            rss_kb: ps.rss_kb,
            hwm_kb: ps.hwm_kb,
            fds,
            threads: ps.threads,
            cpu_pct,
            tunnels: fake.faults().open_tunnels(),
            upgrades: ferry_upgrades(&fake),
            short_ok: log.short_ok.load(Ordering::Relaxed),
            long_opened: log.long_opened.load(Ordering::Relaxed),
            long_done: log.long_done.load(Ordering::Relaxed),
            long_open: log.long_open.load(Ordering::Relaxed),
            round_trips: log.round_trips.load(Ordering::Relaxed),
            lost,
            in_faults,
            pod_deleted,
            short_p50_ms: percentile_ms(&times, 50.0),
            short_p99_ms: percentile_ms(&times, 99.0),
            short_max_ms: times.iter().max().map(|d| d.as_secs_f64() * 1000.0),
        };
        println!("{}", s.line());
        samples.push(s);
        for tr in ferry.transitions(transitions_seen) {
            transitions_seen += 1;
            // Negative: before the load started (while ferry came up).
            let at = if tr.at >= log.t0 {
                log.secs(tr.at)
            } else {
                -log.t0.duration_since(tr.at).as_secs_f64()
            };
            if tr.at >= log.t0 {
                note(format!(
                    "{at:.1} s: ferry: {} {} → {}{}{}",
                    tr.forward,
                    tr.from.as_deref().unwrap_or("-"),
                    tr.to,
                    tr.pod
                        .as_deref()
                        .map(|p| format!(" (pod {p})"))
                        .unwrap_or_default(),
                    tr.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default(),
                ));
            }
            transitions.push(json!({
                "at_s": round1(at),
                "before_load": tr.at < log.t0,
                "forward": tr.forward,
                "from": tr.from,
                "to": tr.to,
                "pod": tr.pod,
                "error": tr.error,
            }));
        }
        if due >= end {
            break;
        }
        k += 1;
    }
    tasks.shutdown().await;
    fake.faults().clear();
    let ran = log.now();

    let failures = lock(&log.failures).clone();
    let faults = lock(&log.faults).clone();
    let deletions = lock(&log.deletions).clone();
    let pod_switches = lock(&log.pod_switches).clone();
    let (lost, in_faults, pod_deleted) = log.counts();
    let warm = warmup.as_secs_f64();
    let rss = series(&samples, warm, |s| mib(s.rss_kb));
    let fds = series(&samples, warm, |s| s.fds as f64);
    let threads = series(&samples, warm, |s| s.threads as f64);
    let mut by_kind: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for w in &faults {
        by_kind.entry(w.kind.name()).or_default().0 += 1;
    }
    let mut per_fault = vec![0u64; faults.len()];
    let mut pod_deleted_by_forward: BTreeMap<&str, u64> = BTreeMap::new();
    for f in &failures {
        match &f.class {
            Class::Fault { index, kind } => {
                by_kind.entry(kind.name()).or_default().1 += 1;
                if let Some(c) = per_fault.get_mut(*index) {
                    *c += 1;
                }
            }
            Class::PodDeleted { .. } => *pod_deleted_by_forward.entry(f.forward).or_default() += 1,
            Class::Lost { .. } => {}
        }
    }
    let short_ok = log.short_ok.load(Ordering::Relaxed);
    let short_failed = failures.iter().filter(|f| !f.long).count() as u64;
    let long_opened = log.long_opened.load(Ordering::Relaxed);
    let long_done = log.long_done.load(Ordering::Relaxed);
    let long_failed = failures.iter().filter(|f| f.long).count() as u64;
    let round_trips = log.round_trips.load(Ordering::Relaxed);
    let hwm_end = samples.last().map(|s| mib(s.hwm_kb));

    // The summary.
    println!();
    println!(
        "soak summary ({:.0} s of load; {} pod deletions; {} faults injected)",
        ran,
        deletions.len(),
        faults.len()
    );
    println!("  lost connections outside fault windows: {lost}");
    let kinds: Vec<String> = by_kind
        .iter()
        .map(|(k, (n, failed))| format!("{k} ×{n}: {failed}"))
        .collect();
    println!(
        "  failed inside fault windows (+{} s grace): {in_faults} ({})",
        GRACE.as_secs(),
        kinds.join(", ")
    );
    let by_fwd: Vec<String> = pod_deleted_by_forward
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect();
    println!(
        "  long-lived connections ended by their pod's deletion: {pod_deleted}{}",
        if by_fwd.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_fwd.join(", "))
        }
    );
    println!(
        "  connections: short-lived {short_ok} ok, {short_failed} failed; long-lived {long_opened} opened, {long_done} closed as planned, {long_failed} failed, {round_trips} round trips ok"
    );
    if !pod_switches.is_empty() {
        println!(
            "  ANOMALY: {} long-lived connections answered by another pod than before",
            pod_switches.len()
        );
    }
    println!("  {}", series_line("RSS", "MiB", &rss, warm));
    println!("  {}", series_line("open fds", "fds", &fds, warm));
    println!("  {}", series_line("threads", "threads", &threads, warm));
    println!(
        "  peak RSS (VmHWM) {} MiB; ferry up reports no task count: threads are shown instead",
        hwm_end.map_or("-".into(), |v| format!("{v:.1}"))
    );
    let forward_changes = transitions
        .iter()
        .filter(|t| t["before_load"] == json!(false))
        .count();
    println!("  ferry forward state changes during the load: {forward_changes}");
    println!("  faults:");
    for (i, w) in faults.iter().enumerate() {
        println!(
            "    {:>2}. {:<10} {:>7.1}–{:<7.1} s  {} failed  ({})",
            i + 1,
            w.kind.name(),
            w.start,
            w.end.unwrap_or(ran),
            per_fault.get(i).copied().unwrap_or(0),
            w.detail
        );
    }
    let lost_list: Vec<&Failure> = failures
        .iter()
        .filter(|f| matches!(f.class, Class::Lost { .. }))
        .collect();
    if !lost_list.is_empty() {
        println!("  lost connections:");
        for f in lost_list.iter().take(50) {
            println!("    {}", f.describe());
        }
        if lost_list.len() > 50 {
            println!("    … and {} more (all in the JSON)", lost_list.len() - 50);
        }
    }

    let stderr = std::fs::read_to_string(ferry.stderr_path()).unwrap_or_default();
    let stderr_lines: Vec<&str> = stderr.lines().collect();
    let tail: Vec<&str> = stderr_lines
        .iter()
        .skip(stderr_lines.len().saturating_sub(40))
        .copied()
        .collect();
    let summary = json!({
        "load_seconds": round1(ran),
        "warmup_seconds": warm,
        "lost_outside_faults": lost,
        "failed_in_fault_windows": in_faults,
        "ended_by_pod_deletion": pod_deleted,
        "failed_in_fault_windows_by_kind": by_kind
            .iter()
            .map(|(k, (n, failed))| (k.to_string(), json!({"faults": n, "failed": failed})))
            .collect::<serde_json::Map<_, _>>(),
        "ended_by_pod_deletion_by_forward": pod_deleted_by_forward,
        "pod_deletions": deletions.len(),
        "short_lived": {"ok": short_ok, "failed": short_failed},
        "long_lived": {
            "opened": long_opened,
            "closed_as_planned": long_done,
            "failed": long_failed,
            "round_trips_ok": round_trips,
        },
        "pod_switches": pod_switches,
        "rss_mib": rss,
        "peak_rss_mib": hwm_end,
        "fds": fds,
        "threads": threads,
        "tasks": "not reported: ferry up exposes no task count",
        "forward_state_changes": forward_changes,
    });
    let value = json!({
        "mode": "soak",
        "machine": machine(),
        "ferry": ferry_bin.display().to_string(),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "settings": {
            "duration_s": args.duration.as_secs_f64(),
            "interval_s": args.interval.as_secs_f64(),
            "slot_s": SLOT.as_secs(),
            "fault_every_slots": FAULT_EVERY_SLOTS,
            "fault_at_s": FAULT_AT.as_secs(),
            "freeze_s": FREEZE_FOR.as_secs(),
            "api_errors_s": API_FAIL_FOR.as_secs(),
            "grace_s": GRACE.as_secs(),
            "op_limit_s": OP_LIMIT.as_secs(),
            "short_clients": SHORT_TASKS,
            "short_every_ms": SHORT_EVERY.as_millis() as u64,
            "long_clients": LONG_FORWARDS.len(),
            "long_every_s": LONG_EVERY.as_secs(),
            "long_hold_s": LONG_HOLD_SECS,
            "churn": CHURN,
        },
        "ferry_config": ferry_config(),
        "summary": summary,
        "samples": samples.iter().map(Sample::json).collect::<Vec<_>>(),
        "faults": faults.iter().enumerate().map(|(i, w)| json!({
            "index": i + 1,
            "kind": w.kind.name(),
            "start_s": round1(w.start),
            "end_s": w.end.map(round1),
            "detail": w.detail,
            "failed": per_fault.get(i).copied().unwrap_or(0),
        })).collect::<Vec<_>>(),
        "deletions": deletions.iter().map(|d| json!({
            "at_s": round1(d.at), "pod": d.pod, "app": d.app,
        })).collect::<Vec<_>>(),
        "failures": failures.iter().map(Failure::json).collect::<Vec<_>>(),
        "forward_state_changes": transitions,
        "ferry_stderr_lines": stderr_lines.len(),
        "ferry_stderr_tail": tail,
        "harness_errors": errors,
    });
    ferry.stop().await;
    fake.shutdown().await;
    let path = args
        .json
        .unwrap_or_else(|| crate::default_json_path().with_file_name("ferry-soak.json"));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&value)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("\nresults: {}", path.display());
    if errors.is_empty() {
        Ok(true)
    } else {
        eprintln!("\nharness failures:");
        for e in &errors {
            eprintln!("  - {e}");
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_humantime_writes_them() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m 5s"), Ok(Duration::from_secs(5405)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
    }

    fn window(kind: FaultKind, start: f64, end: Option<f64>) -> Window {
        Window {
            kind,
            start,
            end,
            detail: String::new(),
        }
    }

    fn deletion(at: f64, pod: &str) -> Deletion {
        Deletion {
            at,
            pod: pod.into(),
            app: "web".into(),
        }
    }

    #[test]
    fn a_connection_whose_pod_went_ended_by_the_deletion() {
        let d = [deletion(100.0, "web-a")];
        let c = classify(98.0, 101.0, Some("web-a"), &[], &d);
        assert!(matches!(c, Class::PodDeleted { .. }));
        // Another pod's deletion does not explain it: lost, with the deletion as a hint.
        let c = classify(98.0, 101.0, Some("web-b"), &[], &d);
        assert_eq!(
            c,
            Class::Lost {
                near: Some(("web-a".into(), 100.0))
            }
        );
        // A deletion before the connection's last answer (beyond the slack) was another
        // pod of the same name (a statefulset's replacement).
        let c = classify(101.0, 104.0, Some("web-a"), &[], &d);
        assert!(matches!(c, Class::Lost { .. }));
        // Nor does it explain a connection that never had an answer: Ferry claims to
        // carry new connections through pod deletions.
        let c = classify(99.5, 100.5, None, &[], &d);
        assert!(matches!(c, Class::Lost { .. }));
    }

    #[test]
    fn failures_overlapping_a_fault_window_or_its_grace_are_in_it() {
        let w = [
            window(FaultKind::Drop, 10.0, Some(10.0)),
            window(FaultKind::Freeze, 40.0, Some(52.0)),
            window(FaultKind::ApiErrors, 70.0, None),
        ];
        let in_fault =
            |since, at| matches!(classify(since, at, None, &w, &[]), Class::Fault { .. });
        assert!(in_fault(9.0, 10.5));
        assert!(in_fault(14.0, 14.5), "within the grace");
        assert!(!in_fault(15.5, 16.0), "after the grace");
        assert!(!in_fault(5.0, 9.9), "before the fault");
        assert!(
            in_fault(30.0, 60.0),
            "an exchange that hung through the freeze"
        );
        assert!(in_fault(75.0, 75.1), "a fault still on");
        assert_eq!(
            classify(55.0, 56.0, None, &w, &[]),
            Class::Fault {
                index: 1,
                kind: FaultKind::Freeze
            }
        );
    }

    #[test]
    fn slopes_fit_a_line() {
        let pts = [(0.0, 10.0), (0.5, 11.0), (1.0, 12.0)];
        assert_eq!(slope_per_hour(&pts), Some(2.0));
        assert_eq!(slope_per_hour(&pts[..1]), None);
    }
}
