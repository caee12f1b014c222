//! Health checks: probe kinds, the rise/fall state machine ([`state`]), and the monitor
//! task that schedules probes for every forward. The monitor sees a forward only through
//! [`ProbeTarget`] (in `target`), which the forward's worker implements: `forward` depends
//! on `health`, never the reverse.
//!
//! The monitor lives as long as the engine. It owns one [`Checker`] per forward (its
//! counters and bounded history), keyed by name, so that a reload which keeps a forward's
//! health spec keeps its checker, a changed spec restarts only that checker, and removing
//! a forward removes it. A forward is first probed as soon as it has a pod; when many are
//! added at once (an engine starting), first probes beyond a few are staggered over one
//! interval.

pub mod state;
mod target;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span};

pub use state::{Checker, DEFAULT_HISTORY, HealthState, ProbeResult, Transition};
pub(crate) use target::{ProbeHandle, ProbeTarget};

use crate::clock::now_ms;
use crate::config::{HealthSpec, ProbeKind};

/// The golden ratio's fractional part: successive multiples spread evenly over [0, 1).
const SPREAD: f64 = 0.618_033_988_749_895;

/// Forwards added at about the same time that are probed at once; those beyond are
/// staggered over one interval (an engine starting with many forwards).
const BURST_FREE: u64 = 8;
/// Forwards added within this long of the first of a burst belong to it.
const BURST_WINDOW: Duration = Duration::from_secs(1);
/// How often a new forward without a pod yet looks again before its first probe.
const FIRST_PROBE_WAIT: Duration = Duration::from_millis(50);

/// Recently added forwards, for staggering first probes.
struct Burst {
    since: Instant,
    count: u64,
}

impl Burst {
    /// How long after being added a forward is first probed: at once, unless many
    /// were added together, then the k-th beyond [`BURST_FREE`] at frac(k·φ) of an
    /// interval.
    fn first_probe_after(&mut self, interval: Duration) -> Duration {
        let now = Instant::now();
        if now.duration_since(self.since) > BURST_WINDOW {
            self.since = now;
            self.count = 0;
        }
        let k = self.count;
        self.count += 1;
        match k.checked_sub(BURST_FREE) {
            None => Duration::ZERO,
            Some(k) => interval.mul_f64((k as f64 * SPREAD).fract()),
        }
    }
}

/// A forward that carried no connection for this long is probed at its `idle_interval`
/// while Up.
pub const IDLE_AFTER: Duration = Duration::from_secs(60);

/// How long a `tunnel` probe waits for the pod side to refuse after the stream opened.
const REFUSAL_GRACE: Duration = Duration::from_millis(300);

/// Commands to the monitor.
pub(crate) enum MonitorCmd {
    /// A forward runs (again) with this spec; keeps the checker when the spec is unchanged.
    Upsert {
        name: String,
        spec: Box<HealthSpec>,
        probe: ProbeHandle,
    },
    /// The forward was disabled: its checker says Disabled and keeps its history.
    Disable { name: String },
    /// The forward left the config.
    Remove { name: String },
    Pause {
        name: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Resume {
        name: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Probe now, without reusing earlier results: these forwards, or every one.
    CheckNow {
        names: Option<Vec<String>>,
        /// Why: a checked forward shows `reconnecting` with it until a probe passes.
        /// `None` (the window's Retry) leaves the state alone.
        why: Option<String>,
    },
}

struct Entry {
    spec: HealthSpec,
    checker: Checker,
    probe: Option<ProbeHandle>,
    next_due: Instant,
    /// When the forward was (re)enabled or its spec changed.
    added: Instant,
    /// Its first probe runs as soon as it has a pod (not staggered).
    eager: bool,
    /// Bumped whenever the spec or target changes; stale probe results are dropped.
    generation: u64,
    in_flight: bool,
}

/// Runs until `token` is cancelled.
pub(crate) async fn monitor(rx: mpsc::Receiver<MonitorCmd>, token: CancellationToken) {
    schedule(rx, token, |spec, probe| async move {
        run_probe(&spec, &probe).await
    })
    .await;
}

/// The monitor's loop, with `run` doing each probe (the tests' probes take no I/O).
async fn schedule<F, Fut>(mut rx: mpsc::Receiver<MonitorCmd>, token: CancellationToken, run: F)
where
    F: Fn(HealthSpec, ProbeHandle) -> Fut,
    Fut: Future<Output = ProbeResult> + Send + 'static,
{
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut probes: JoinSet<(String, u64, Option<String>, ProbeResult)> = JoinSet::new();
    // Recent results by what was probed (see `probe_key`), shared by forwards that check
    // the same pod port the same way.
    let mut cache: HashMap<String, (Instant, ProbeResult)> = HashMap::new();
    // Which forward each probe task is for, so a probe that panics does not leave its
    // forward marked in flight (and never probed again).
    let mut running: HashMap<tokio::task::Id, (String, Option<String>)> = HashMap::new();
    // Forwards waiting for a probe of the same key that another forward has in flight,
    // with their generation when they started waiting: one probe serves them all.
    let mut waiting: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    let mut burst = Burst {
        since: Instant::now(),
        count: 0,
    };
    loop {
        let next_due = entries
            .values()
            .filter(|e| is_scheduled(e))
            .map(|e| e.next_due)
            .min();
        let sleep = crate::backoff::sleep_until_or_never(next_due);
        tokio::select! {
            () = token.cancelled() => return,
            cmd = rx.recv() => match cmd {
                Some(MonitorCmd::CheckNow { names, why }) => {
                    cache.clear();
                    let now = Instant::now();
                    for (name, e) in entries.iter_mut() {
                        if !names.as_ref().is_none_or(|n| n.contains(name)) {
                            continue;
                        }
                        if !e.in_flight {
                            e.next_due = now;
                        }
                        if let (Some(why), Some(p)) = (&why, &e.probe)
                            && e.spec.kind != ProbeKind::None
                        {
                            e.checker.doubt(why);
                            p.publish(&e.checker, true);
                        }
                    }
                }
                Some(cmd) => handle(&mut entries, cmd, &mut burst),
                None => return,
            },
            Some(done) = probes.join_next_with_id() => {
                let (name, key, outcome) = match done {
                    Ok((id, (name, generation, key, result))) => {
                        running.remove(&id);
                        if let Some(key) = &key {
                            cache.insert(key.clone(), (Instant::now(), result.clone()));
                        }
                        (name, key, Some((generation, result)))
                    }
                    // A probe that panicked: its forward is probed again after an interval.
                    Err(e) => match running.remove(&e.id()) {
                        Some((name, key)) => (name, key, None),
                        None => continue,
                    },
                };
                let waiters = key.as_ref().and_then(|k| waiting.remove(k)).unwrap_or_default();
                let mut told: Vec<String> = Vec::with_capacity(waiters.len() + 1);
                let everyone = std::iter::once((name, outcome.as_ref().map(|(g, _)| *g)))
                    .chain(waiters.into_iter().map(|(n, g)| (n, Some(g))));
                for (name, generation) in everyone {
                    told.push(name.clone());
                    let Some(e) = entries.get_mut(&name) else { continue };
                    match (&outcome, generation) {
                        (Some((_, result)), Some(g)) if g == e.generation => {
                            apply(e, result.clone());
                        }
                        (Some(_), _) => {}
                        (None, _) => {
                            if e.in_flight {
                                e.in_flight = false;
                                e.next_due = Instant::now() + e.spec.interval;
                            }
                        }
                    }
                }
                // News for the other forwards checking the same pod port the same way: a
                // result that says otherwise than their last one is theirs at once, so
                // they agree within their own rise or fall (at the fast interval) instead
                // of at their next scheduled probe (up to the idle interval).
                if let (Some(k), Some((_, result))) = (&key, &outcome) {
                    for (name, e) in entries.iter_mut() {
                        if e.in_flight || told.contains(name) || !is_scheduled(e) {
                            continue;
                        }
                        // The key is built only for the rare forward whose last result
                        // differs: this runs after every probe.
                        let differs = e.checker.last().is_some_and(|l| l.passed != result.passed);
                        if differs
                            && e.probe.as_ref().and_then(|p| probe_key(&e.spec, p)).as_ref() == Some(k)
                        {
                            apply(e, result.clone());
                        }
                    }
                }
            }
            () = sleep => {
                let now = Instant::now();
                cache.retain(|_, (at, _)| now.duration_since(*at) < CACHE_FOR);
                for (name, e) in entries.iter_mut() {
                    if !is_scheduled(e) || e.next_due > now {
                        continue;
                    }
                    let Some(probe) = e.probe.clone() else { continue };
                    if e.eager
                        && e.checker.last().is_none()
                        && probe.endpoint().is_none()
                        && now.duration_since(e.added) < e.spec.interval
                    {
                        // Newly added and no pod yet: the first probe waits for one
                        // (briefly) instead of failing with "no ready pod". (Staggered
                        // first probes keep their places: waiting would bunch them.)
                        e.next_due = now + FIRST_PROBE_WAIT;
                        continue;
                    }
                    // Forwards checking the same pod port the same way share results: a
                    // fresh enough one is reused instead of probing again.
                    let key = probe_key(&e.spec, &probe);
                    // Half the entry's own period: steady forwards share widely, those
                    // counting towards a change only very recent results.
                    let fresh = e.checker.next_interval(&e.spec) / 2;
                    if let Some((_, result)) = key
                        .as_ref()
                        .and_then(|k| cache.get(k))
                        .filter(|(at, _)| now.duration_since(*at) < fresh)
                    {
                        apply(e, result.clone());
                        continue;
                    }
                    e.in_flight = true;
                    if let Some(w) = key.as_ref().and_then(|k| waiting.get_mut(k)) {
                        // The same check is already running for another forward.
                        w.push((name.clone(), e.generation));
                        continue;
                    }
                    if let Some(k) = &key {
                        waiting.insert(k.clone(), Vec::new());
                    }
                    let generation = e.generation;
                    let name = name.clone();
                    let span = debug_span!("probe", forward.name = %name, kind = ?e.spec.kind);
                    let for_name = (name.clone(), key.clone());
                    let work = run(e.spec.clone(), probe);
                    let handle = probes.spawn(
                        async move {
                            let result = work.await;
                            debug!(passed = result.passed, detail = %result.detail, "probe done");
                            (name, generation, key, result)
                        }
                        .instrument(span),
                    );
                    running.insert(handle.id(), for_name);
                }
            }
        }
    }
}

/// How long a shared result is kept at most.
const CACHE_FOR: Duration = Duration::from_secs(60);

/// Feeds a result to an entry's checker, reschedules it and shows the verdict.
fn apply(e: &mut Entry, result: ProbeResult) {
    e.in_flight = false;
    let failed = !result.passed;
    let was_doubted = e.checker.doubted().is_some();
    e.checker.step(&e.spec, result, now_ms());
    let idle_for = e.probe.as_ref().map_or(Duration::ZERO, |p| p.idle_for());
    e.next_due = Instant::now() + next_interval(&e.spec, &e.checker, idle_for);
    if let Some(p) = &e.probe {
        p.publish(&e.checker, true);
        if failed {
            // The pod may be gone: look again, as pod churn does.
            p.nudge();
        } else if was_doubted {
            // The way is back: the resolver, which may be waiting out a backoff from
            // the outage, looks again now instead of showing `reconnecting` meanwhile.
            p.nudge();
        }
    }
}

/// When to probe next: the checker's period, stretched to `idle_interval` for a steady
/// Up forward that has carried no connection for [`IDLE_AFTER`].
fn next_interval(spec: &HealthSpec, checker: &Checker, idle_for: Duration) -> Duration {
    let next = checker.next_interval(spec);
    if checker.steady_up() && idle_for >= IDLE_AFTER {
        next.max(spec.idle_interval)
    } else {
        next
    }
}

/// What a probe checks, when it can be shared: the same context, pod port and check
/// settings. `tcp` checks go through each forward's own listener, so they are not shared.
fn probe_key(spec: &HealthSpec, probe: &ProbeHandle) -> Option<String> {
    if matches!(spec.kind, ProbeKind::Tcp | ProbeKind::None) {
        return None;
    }
    let (_, namespace, ep) = probe.endpoint()?;
    let context = probe.context()?;
    // An HTTP check's Host defaults to the target's name: part of what is checked.
    let host = match spec.kind {
        ProbeKind::Http => spec
            .http
            .host
            .clone()
            .unwrap_or_else(|| probe.target_name()),
        _ => String::new(),
    };
    Some(format!(
        "{context}|{namespace}|{}|{}|{:?}|{:?}|{:?}|{host}",
        ep.pod, ep.port, spec.kind, spec.timeout, spec.http
    ))
}

fn is_scheduled(e: &Entry) -> bool {
    !e.in_flight
        && e.probe.is_some()
        && e.spec.kind != ProbeKind::None
        && !matches!(
            e.checker.state(),
            HealthState::Paused | HealthState::Disabled
        )
}

fn handle(entries: &mut HashMap<String, Entry>, cmd: MonitorCmd, burst: &mut Burst) {
    match cmd {
        MonitorCmd::Upsert { name, spec, probe } => {
            let spec = *spec;
            let offset = burst.first_probe_after(spec.interval);
            let now = Instant::now();
            let entry = entries.entry(name).or_insert_with(|| Entry {
                spec: spec.clone(),
                checker: Checker::new(DEFAULT_HISTORY),
                probe: None,
                next_due: now + offset,
                added: now,
                eager: offset.is_zero(),
                generation: 0,
                in_flight: false,
            });
            if entry.spec != spec {
                // A changed spec restarts only this checker.
                entry.checker = Checker::new(DEFAULT_HISTORY);
                entry.spec = spec;
                entry.next_due = now + offset;
                entry.added = now;
                entry.eager = offset.is_zero();
            }
            if entry.probe.is_none() {
                // Enabled again: probed as a new forward is.
                entry.next_due = now + offset;
                entry.added = now;
                entry.eager = offset.is_zero();
            }
            entry.checker.enable(now_ms());
            entry.generation += 1;
            entry.in_flight = false;
            if entry.spec.kind == ProbeKind::None {
                entry.checker.disable(now_ms());
            }
            probe.publish(&entry.checker, entry.spec.kind != ProbeKind::None);
            entry.probe = Some(probe);
        }
        MonitorCmd::Disable { name } => {
            if let Some(e) = entries.get_mut(&name) {
                e.checker.disable(now_ms());
                e.probe = None;
                e.generation += 1;
                e.in_flight = false;
            }
        }
        MonitorCmd::Remove { name } => {
            entries.remove(&name);
        }
        MonitorCmd::Pause { name, reply } => {
            let _ = reply.send(pause_or_resume(entries, &name, true));
        }
        MonitorCmd::Resume { name, reply } => {
            let _ = reply.send(pause_or_resume(entries, &name, false));
        }
        // Handled by the monitor loop, which owns the shared results.
        MonitorCmd::CheckNow { .. } => {}
    }
}

/// Pauses or resumes `name`'s checks; an error for a forward that is off or has none.
fn pause_or_resume(
    entries: &mut HashMap<String, Entry>,
    name: &str,
    pause: bool,
) -> Result<(), String> {
    let Some(e) = entries.get_mut(name).filter(|e| e.probe.is_some()) else {
        return Err(format!(
            "forward `{name}` is disabled; enable it before pausing or resuming its checks"
        ));
    };
    if e.spec.kind == ProbeKind::None {
        return Err(format!(
            "forward `{name}` has no health checks (kind: none)"
        ));
    }
    if pause {
        e.checker.pause(now_ms());
        e.generation += 1;
        e.in_flight = false;
    } else {
        e.checker.resume(now_ms());
        e.next_due = Instant::now();
    }
    if let Some(p) = &e.probe {
        p.publish(&e.checker, true);
    }
    Ok(())
}

/// Runs one probe of `spec.kind`, bounded by `spec.timeout`.
pub(crate) async fn run_probe(spec: &HealthSpec, probe: &ProbeHandle) -> ProbeResult {
    let started = Instant::now();
    let work = async {
        match spec.kind {
            ProbeKind::None => ProbeResult::pass("no checks", Duration::ZERO),
            ProbeKind::Tcp => tcp_probe(probe, started).await,
            ProbeKind::Tunnel => tunnel_probe(probe, started).await,
            ProbeKind::Http => http_probe(spec, probe, started).await,
        }
    };
    match tokio::time::timeout(spec.timeout, work).await {
        Ok(result) => result,
        Err(_) => ProbeResult::fail(
            "timeout",
            format!(
                "timed out after {}",
                humantime::format_duration(spec.timeout)
            ),
            started.elapsed(),
        ),
    }
}

async fn tcp_probe(probe: &ProbeHandle, started: Instant) -> ProbeResult {
    let Some(mut local) = probe.local() else {
        return ProbeResult::fail("error", "the forward is not listening", started.elapsed());
    };
    if local.ip().is_unspecified() {
        // A wildcard listener is reached through loopback (connecting to 0.0.0.0 is not
        // portable).
        local.set_ip(match local.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    match TcpStream::connect(local).await {
        Ok(_) => ProbeResult::pass(format!("connected to {local}"), started.elapsed()),
        Err(e) => ProbeResult::fail(
            "refused",
            format!("connecting to {local} failed: {e}"),
            started.elapsed(),
        ),
    }
}

async fn tunnel_probe(probe: &ProbeHandle, started: Instant) -> ProbeResult {
    let Some((tunnels, namespace, ep)) = probe.endpoint() else {
        return ProbeResult::fail("no-pod", "no ready pod to check", started.elapsed());
    };
    let place = format!("{namespace}/{}:{}", ep.pod, ep.port);
    let mut stream = match tunnels.open_brief(&namespace, &ep.pod, ep.port).await {
        Ok(s) => s,
        Err(e) => return ProbeResult::fail("error", e.to_string(), started.elapsed()),
    };
    let latency = started.elapsed();
    // A refusing pod port reports on the error channel right after the stream opens.
    let mut buf = [0u8; 1];
    match tokio::time::timeout(REFUSAL_GRACE, stream.read(&mut buf)).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeResult::fail("refused", format!("connection refused by {place}"), latency)
        }
        Ok(Err(e)) => ProbeResult::fail("error", format!("{place}: {e}"), latency),
        _ => ProbeResult::pass(format!("tunnel to {place} open"), latency),
    }
}

async fn http_probe(spec: &HealthSpec, probe: &ProbeHandle, started: Instant) -> ProbeResult {
    let Some((tunnels, namespace, ep)) = probe.endpoint() else {
        return ProbeResult::fail("no-pod", "no ready pod to check", started.elapsed());
    };
    let path = &spec.http.path;
    let stream = match tunnels.open_brief(&namespace, &ep.pod, ep.port).await {
        Ok(s) => s,
        Err(e) => return ProbeResult::fail("error", e.to_string(), started.elapsed()),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => {
            return ProbeResult::fail(
                "error",
                format!("HTTP to {path} failed: {e}"),
                started.elapsed(),
            );
        }
    };
    // Owned: dropped (and so aborted) with this probe, also when its timeout fires.
    let driver = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(conn));
    let host = spec
        .http
        .host
        .clone()
        .unwrap_or_else(|| probe.target_name());
    let request = http::Request::get(path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "ferry-health")
        .body(Empty::<Bytes>::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return ProbeResult::fail(
                "error",
                format!("bad request for {path}: {e}"),
                started.elapsed(),
            );
        }
    };
    let result = match sender.send_request(request).await {
        Err(e) => {
            let refused = crate::cluster::error_chain(&e).contains("connection refused");
            let code = if refused { "refused" } else { "error" };
            let detail = if refused {
                format!("connection refused by {namespace}/{}:{}", ep.pod, ep.port)
            } else {
                format!("HTTP to {path} failed: {e}")
            };
            ProbeResult::fail(code, detail, started.elapsed())
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let latency = started.elapsed();
            if !spec.http.expect_status.contains(status) {
                ProbeResult::fail(
                    "status",
                    format!(
                        "HTTP {status} from {path} (expected {})",
                        spec.http.expect_status
                    ),
                    latency,
                )
            } else if let Some(pattern) = &spec.http.body_regex {
                let body = Limited::new(response.into_body(), 64 * 1024)
                    .collect()
                    .await;
                let text = body
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                    .unwrap_or_default();
                match regex::Regex::new(pattern) {
                    Ok(re) if re.is_match(&text) => {
                        ProbeResult::pass(format!("HTTP {status} from {path}"), latency)
                    }
                    _ => ProbeResult::fail(
                        "body",
                        format!(
                            "HTTP {status} from {path}, but the body does not match /{pattern}/"
                        ),
                        latency,
                    ),
                }
            } else {
                ProbeResult::pass(format!("HTTP {status} from {path}"), latency)
            }
        }
    };
    drop(driver);
    result
}

#[cfg(test)]
mod schedule_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn up(spec: &HealthSpec) -> Checker {
        let mut c = Checker::new(DEFAULT_HISTORY);
        c.enable(0);
        for i in 0..spec.rise {
            c.step(spec, ProbeResult::pass("ok", Duration::ZERO), u64::from(i));
        }
        assert_eq!(c.state(), HealthState::Up);
        c
    }

    #[test]
    fn unused_steady_forwards_are_probed_at_the_idle_interval() {
        let spec = HealthSpec::default();
        let c = up(&spec);
        assert_eq!(next_interval(&spec, &c, Duration::ZERO), spec.interval);
        assert_eq!(next_interval(&spec, &c, IDLE_AFTER / 2), spec.interval);
        assert_eq!(next_interval(&spec, &c, IDLE_AFTER), spec.idle_interval);
        // Never shorter than the steady interval.
        let slow = HealthSpec {
            interval: Duration::from_secs(60),
            ..HealthSpec::default()
        };
        let c = up(&slow);
        assert_eq!(next_interval(&slow, &c, IDLE_AFTER * 2), slow.interval);
    }

    #[test]
    fn counting_towards_a_change_stays_fast_when_idle() {
        // Also when the steady and fast intervals are the same.
        let spec = HealthSpec {
            interval: Duration::from_secs(1),
            ..HealthSpec::default()
        };
        let mut c = up(&spec);
        c.step(
            &spec,
            ProbeResult::fail("refused", "no", Duration::ZERO),
            10,
        );
        assert_eq!(next_interval(&spec, &c, IDLE_AFTER * 2), spec.fast_interval);
        let mut unknown = Checker::new(DEFAULT_HISTORY);
        unknown.enable(0);
        assert_eq!(
            next_interval(&spec, &unknown, IDLE_AFTER * 2),
            spec.fast_interval
        );
    }
}
