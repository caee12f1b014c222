//! What a worker shares with the manager and the health monitor: one input per writer,
//! the traffic counters, the heartbeat, and the record of what was last shown.
//!
//! Each input sits behind its own short `parking_lot` lock and has one writer: the
//! resolver ([`Resolution`]), the bind and accept loop ([`Listener`]), the health monitor
//! ([`Health`]) and the manager ([`Alias`]). After every write the status is composed
//! again (see [`super::status::compose`]) under the record's lock, which remembers the
//! state shown and since when, and what was last news for the manager; a write that
//! raced it is seen by its own composition, which follows. Composing takes the record,
//! then the inputs in declaration order; a writer holds its input alone and releases it
//! before composing. No lock is held across `.await`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::status::{
    Alias, Health, Inputs, Listener, Resolution, Shown, Traffic, compose, url_scheme,
};
use crate::config::{Forward, Inspect};
use crate::events::{ForwardStatus, IdleClosed, now_ms};
use crate::health::Checker;
use crate::inspect::Inspection;

/// What a worker shares with the manager and the health monitor.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    /// The forward's name, fixed for the worker's life.
    name: String,
    /// The target label (`service/echo:80`), fixed for the worker's life.
    target: String,
    /// What cluster access found. Written by the resolver only.
    resolution: Mutex<Resolution>,
    /// The local socket. Written by the bind and accept loop only.
    listener: Mutex<Listener>,
    /// The health checks' findings. Written by the health monitor only.
    health: Mutex<Health>,
    /// Alias, URL scheme, exposure and alias warning. Written by the manager only.
    alias: Mutex<Alias>,
    /// Traffic counters, written by the accept loop and connections without a lock.
    counters: Counters,
    /// What was last shown, composed again after every write.
    record: Mutex<Record>,
    /// When the accept loop (or the bind loop before it) last made progress, ms since
    /// `born`; the watchdog restarts a worker whose heartbeat stops.
    heartbeat_ms: AtomicU64,
    /// The monotonic origin of `heartbeat_ms` and `Counters::last_used_ms`.
    born: tokio::time::Instant,
    /// Test hook: makes the accept loop hang, as a stuck loop would.
    freeze: AtomicBool,
    /// Tells the manager to republish; a full queue is fine (a publish is pending anyway).
    notify: mpsc::Sender<()>,
    /// The HTTP inspection new connections feed, when the spec asks for one. Written by
    /// the manager only (at start and on a reload).
    inspection: Mutex<Option<Arc<Inspection>>>,
}

/// Traffic counters: atomics, so connections count without a lock.
#[derive(Debug, Default)]
struct Counters {
    conns_open: AtomicU64,
    conns_total: AtomicU64,
    /// When a connection last opened or closed (or the worker started), ms since `born`.
    last_used_ms: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Connections the far side closed after a quiet spell; the last one's time (ms since
    /// the epoch) and quiet spell (ms). The time is written last and read first.
    idle_closes: AtomicU64,
    idle_close_quiet_ms: AtomicU64,
    idle_close_at_ms: AtomicU64,
}

impl Counters {
    fn traffic(&self) -> Traffic {
        Traffic {
            connections: self.conns_open.load(Ordering::Relaxed),
            total_connections: self.conns_total.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            idle_closed: match self.idle_closes.load(Ordering::Acquire) {
                0 => None,
                count => Some(IdleClosed {
                    count,
                    at_ms: self.idle_close_at_ms.load(Ordering::Acquire),
                    quiet_ms: self.idle_close_quiet_ms.load(Ordering::Relaxed),
                }),
            },
        }
    }
}

/// What was last shown.
#[derive(Debug)]
struct Record {
    /// The state and since when, and the most recent problem: what the next status is
    /// composed with.
    shown: Shown,
    /// The last status the manager was told about, without what changes all the time
    /// (see [`ForwardStatus::news`]).
    news: ForwardStatus,
}

impl WorkerShared {
    pub(crate) fn new(spec: &Forward, notify: mpsc::Sender<()>) -> Self {
        let name = spec.name.clone();
        let target = spec.target_label();
        let (resolution, listener, health, alias) = (
            Resolution::default(),
            Listener::default(),
            Health::default(),
            Alias::of(spec),
        );
        let now = now_ms();
        let before = Shown {
            state: resolution.state,
            since_ms: now,
            last_error: None,
        };
        let first = compose(
            &Inputs {
                name: &name,
                target: &target,
                resolution: &resolution,
                listener: &listener,
                health: &health,
                alias: &alias,
                traffic: Traffic::default(),
            },
            &before,
            now,
        );
        Self {
            name,
            target,
            resolution: Mutex::new(resolution),
            listener: Mutex::new(listener),
            health: Mutex::new(health),
            alias: Mutex::new(alias),
            counters: Counters::default(),
            record: Mutex::new(Record {
                shown: before,
                news: first.news(),
            }),
            heartbeat_ms: AtomicU64::new(0),
            born: tokio::time::Instant::now(),
            freeze: AtomicBool::new(false),
            notify,
            inspection: Mutex::new(spec.inspect.as_ref().map(Inspection::new)),
        }
    }

    // === the writers ===

    /// Follows the spec's `inspect` for new connections: a new inspection when it changed
    /// (the exchanges kept go with the old one), none when it is off. The manager's only.
    pub(crate) fn set_inspect(&self, spec: Option<&Inspect>) {
        let mut current = self.inspection.lock();
        if current.as_ref().map(|i| i.spec()) != spec {
            if let Some(old) = current.take() {
                old.end();
            }
            *current = spec.map(Inspection::new);
        }
    }

    /// Ends the inspection for its followers: the worker stops.
    pub(crate) fn end_inspection(&self) {
        if let Some(old) = self.inspection.lock().take() {
            old.end();
        }
    }

    /// The inspection new connections feed, if the forward is inspected.
    pub(crate) fn inspection(&self) -> Option<Arc<Inspection>> {
        self.inspection.lock().clone()
    }

    /// Changes what cluster access found. The resolver's only.
    pub(super) fn set_resolution(&self, f: impl FnOnce(&mut Resolution)) {
        f(&mut self.resolution.lock());
        self.refresh(None);
    }

    /// Changes what is known of the local socket. The bind and accept loop's only.
    pub(super) fn set_listener(&self, f: impl FnOnce(&mut Listener)) {
        f(&mut self.listener.lock());
        self.refresh(None);
    }

    /// Shows the health checker's verdict. `checked` says whether health decides between
    /// active and degraded (false for `kind: none`). The health monitor's only.
    pub(crate) fn publish_health(&self, checker: &Checker, checked: bool) {
        let history = checker.history().cloned().collect();
        let now = now_ms();
        {
            let mut h = self.health.lock();
            h.checked = checked;
            h.state = checker.state();
            if let Some(last) = checker.last() {
                h.latency_ms = Some(last.latency.as_millis() as u64);
                h.detail = Some(last.detail.clone());
                h.last_probe_ms = Some(now);
            }
            h.history = history;
            h.doubt = checker.doubted().map(str::to_string);
        }
        self.refresh(None);
    }

    /// Shows the alias, the URL (with the alias when there is one) and exposure, as
    /// `spec` says now. The manager's only.
    pub(crate) fn set_alias(&self, alias: Option<&str>, spec: &Forward) {
        {
            let mut a = self.alias.lock();
            a.alias = alias.map(str::to_string);
            a.scheme = url_scheme(&spec.port, spec.health.kind);
            a.exposed = !spec.bind.is_loopback();
            if alias.is_none() {
                a.warning = None;
            }
        }
        self.refresh(None);
    }

    /// Records why the alias could not be published (`None`: it is). The manager's only.
    pub(crate) fn set_alias_warning(&self, warning: Option<String>) {
        self.alias.lock().warning = warning;
        self.refresh(None);
    }

    /// Counts a connection the far side closed after `quiet` without traffic either way
    /// (see [`IdleClosed`]), and says so at once.
    pub(crate) fn note_idle_close(&self, quiet: Duration) {
        let c = &self.counters;
        c.idle_close_quiet_ms
            .store(quiet.as_millis() as u64, Ordering::Relaxed);
        c.idle_close_at_ms.store(now_ms(), Ordering::Release);
        c.idle_closes.fetch_add(1, Ordering::Release);
        self.refresh(None);
    }

    /// Remembers a problem that is not the forward's state (a tunnel that failed, a
    /// restart by the watchdog) as the most recent one, until the next.
    pub(crate) fn note_problem(&self, problem: String) {
        self.refresh(Some(problem));
    }

    // === the status ===

    /// The status with live counters.
    pub(crate) fn status(&self) -> ForwardStatus {
        let mut record = self.record.lock();
        self.compose_now(&mut record.shown)
    }

    /// Composes the status again after a write (with `note` as the most recent problem,
    /// if given); tells the manager when anything shown changed.
    fn refresh(&self, note: Option<String>) {
        let changed = {
            let mut record = self.record.lock();
            if let Some(note) = note {
                record.shown.last_error = Some(note);
            }
            let status = self.compose_now(&mut record.shown);
            // A probe's latency and time alone are not news: they reach the snapshot with
            // the next real change or with `Engine::snapshot`, without waking the manager
            // for every probe of every forward.
            let news = status.news();
            let changed = news != record.news;
            record.news = news;
            changed
        };
        if changed {
            let _ = self.notify.try_send(());
        }
    }

    /// The status from the inputs now, moving `shown` along with it.
    fn compose_now(&self, shown: &mut Shown) -> ForwardStatus {
        let status = compose(
            &Inputs {
                name: &self.name,
                target: &self.target,
                resolution: &self.resolution.lock(),
                listener: &self.listener.lock(),
                health: &self.health.lock(),
                alias: &self.alias.lock(),
                traffic: self.counters.traffic(),
            },
            shown,
            now_ms(),
        );
        *shown = Shown::of(&status);
        status
    }

    // === readers ===

    /// The bound local address.
    pub(super) fn local(&self) -> Option<std::net::SocketAddr> {
        self.listener.lock().local
    }

    /// The kubeconfig context the forward resolved with.
    pub(super) fn context(&self) -> Option<String> {
        self.resolution.lock().context.clone()
    }

    // === counters ===

    /// A connection was accepted; its number (from 1).
    pub(super) fn accepted(&self) -> u64 {
        self.counters.conns_total.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A connection opened.
    pub(super) fn opened(&self) {
        self.counters.conns_open.fetch_add(1, Ordering::Relaxed);
        self.used();
    }

    /// A connection closed.
    pub(super) fn closed(&self) {
        self.counters.conns_open.fetch_sub(1, Ordering::Relaxed);
        self.used();
    }

    /// Bytes went from a local client to the pod.
    pub(super) fn sent(&self, n: usize) {
        self.counters
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes went from the pod to a local client.
    pub(super) fn received(&self, n: usize) {
        self.counters
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    fn used(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.counters.last_used_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the forward has carried no connection (zero while one is open).
    pub(super) fn idle_for(&self) -> Duration {
        if self.counters.conns_open.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.counters.last_used_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(since)
    }

    // === heartbeat ===

    /// Time since the last heartbeat, on the monotonic clock (a suspended laptop or a clock
    /// step does not count as silence).
    pub(crate) fn silent_for(&self) -> Duration {
        let now = self.born.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)))
    }

    pub(super) fn beat(&self) {
        self.heartbeat_ms
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Test hook: hang the accept loop.
    pub(crate) fn freeze(&self) {
        self.freeze.store(true, Ordering::Relaxed);
    }

    /// Whether the accept loop should hang.
    pub(super) fn frozen(&self) -> bool {
        self.freeze.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PortRef, Target};
    use crate::events::ForwardState;
    use crate::health::{HealthState, ProbeResult};

    fn shared() -> (WorkerShared, mpsc::Receiver<()>) {
        let mut spec = Forward::new(
            "web",
            Target::Service("web".into()),
            PortRef::Number(8080),
            0,
        );
        spec.alias = Some("web".into());
        let (tx, rx) = mpsc::channel(16);
        (WorkerShared::new(&spec, tx), rx)
    }

    fn told(rx: &mut mpsc::Receiver<()>) -> bool {
        let mut any = false;
        while rx.try_recv().is_ok() {
            any = true;
        }
        any
    }

    fn active(s: &WorkerShared) {
        s.set_resolution(|r| {
            r.state = ForwardState::Active;
            r.pod = Some("web-0".into());
        });
    }

    #[tokio::test]
    async fn each_write_is_composed_and_news_wakes_the_manager() {
        let (s, mut rx) = shared();
        assert_eq!(s.status().state, ForwardState::Starting);
        assert!(!told(&mut rx));

        active(&s);
        assert!(told(&mut rx), "a new state is news");
        let st = s.status();
        assert_eq!(st.state, ForwardState::Active);
        assert_eq!(st.pod.as_deref(), Some("web-0"));

        // The same write again is no news.
        active(&s);
        assert!(!told(&mut rx));

        s.set_listener(|l| l.local = Some("127.0.0.1:8080".parse().unwrap()));
        assert!(told(&mut rx));
        assert_eq!(
            s.status().url.as_deref(),
            Some("http://web.local:8080"),
            "the URL takes the alias the worker started with"
        );

        let spec = Forward::new(
            "web",
            Target::Service("web".into()),
            PortRef::Number(5432),
            0,
        );
        s.set_alias(None, &spec);
        assert!(told(&mut rx));
        assert_eq!(s.status().url.as_deref(), Some("tcp://127.0.0.1:8080"));
        assert_eq!(s.status().alias, None);
    }

    #[tokio::test]
    async fn a_bind_error_hides_health_until_it_clears() {
        let (s, mut rx) = shared();
        active(&s);
        let mut checker = Checker::new(8);
        let spec = crate::config::HealthSpec::default();
        for _ in 0..5 {
            checker.step(
                &spec,
                ProbeResult::fail("refused", "refused", Duration::from_millis(3)),
                now_ms(),
            );
        }
        assert_eq!(checker.state(), HealthState::Down);
        s.publish_health(&checker, true);
        assert_eq!(s.status().state, ForwardState::Degraded);
        told(&mut rx);

        s.set_listener(|l| {
            l.bind_error = Some("127.0.0.1:8080 is already in use".into());
            l.port_in_use = true;
        });
        assert!(told(&mut rx));
        let st = s.status();
        assert_eq!(st.state, ForwardState::Error);
        assert_eq!(st.health, HealthState::Unknown);
        assert_eq!(st.latency_ms, None);
        assert_eq!(
            st.last_error.as_deref(),
            Some("127.0.0.1:8080 is already in use")
        );

        s.set_listener(|l| *l = Listener::default());
        let st = s.status();
        assert_eq!(
            st.state,
            ForwardState::Degraded,
            "the checker's verdict is back"
        );
        assert_eq!(st.error, None);
        assert_eq!(
            st.last_error.as_deref(),
            Some("127.0.0.1:8080 is already in use"),
            "the problem is remembered"
        );
    }

    #[tokio::test]
    async fn a_probe_time_alone_is_no_news_and_since_moves_with_the_state_only() {
        let (s, mut rx) = shared();
        active(&s);
        let mut checker = Checker::new(8);
        let spec = crate::config::HealthSpec::default();
        let pass = |ms| ProbeResult::pass("tunnel opened", Duration::from_millis(ms));
        for _ in 0..5 {
            checker.step(&spec, pass(3), now_ms());
        }
        assert_eq!(checker.state(), HealthState::Up);
        s.publish_health(&checker, true);
        told(&mut rx);
        let since = s.status().since_ms;

        // The same verdict with another latency and time.
        checker.step(&spec, pass(9), now_ms());
        s.publish_health(&checker, true);
        assert!(!told(&mut rx), "a probe's latency alone is no news");
        let st = s.status();
        assert_eq!(st.latency_ms, Some(9), "but it is shown");
        assert_eq!(st.since_ms, since, "the state did not change");
    }

    #[tokio::test]
    async fn a_note_is_the_last_problem_unless_an_error_is_shown() {
        let (s, mut rx) = shared();
        active(&s);
        told(&mut rx);
        s.note_problem("tunnel refused".into());
        assert!(told(&mut rx));
        assert_eq!(s.status().last_error.as_deref(), Some("tunnel refused"));

        s.set_resolution(|r| {
            r.state = ForwardState::Reconnecting;
            r.error = Some("no ready pod".into());
        });
        s.note_problem("tunnel refused again".into());
        assert_eq!(
            s.status().last_error.as_deref(),
            Some("no ready pod"),
            "the error shown is the most recent problem"
        );
        active(&s);
        s.set_resolution(|r| r.error = None);
        assert_eq!(s.status().last_error.as_deref(), Some("no ready pod"));
    }
}
