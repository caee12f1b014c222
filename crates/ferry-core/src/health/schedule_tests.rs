//! The monitor's schedule on Tokio's paused clock: the real loop ([`schedule`]) with
//! forwards seen through fake [`ProbeTarget`]s and probes that answer at once (or after a
//! set latency) as the test says. Time moves only when every task waits, so each probe's
//! start is exact to the timer's millisecond, with no sleeps.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::sleep_until;

use super::*;
use crate::cluster::Endpoint;
use crate::sessions::Tunnels;

/// What a test says of one forward, and what the monitor did with it.
#[derive(Default)]
struct Fwd {
    /// Whether it has a ready pod.
    pod: bool,
    /// Whether its probes pass.
    healthy: bool,
    /// How long it has carried no connection.
    idle: Duration,
    /// How long each probe takes.
    latency: Duration,
    /// When each probe started, since the test's start.
    probed: Vec<Duration>,
    /// The state last shown.
    shown: Option<HealthState>,
    /// The pod its probes reach, when not one of its own (named after the forward).
    pod_name: Option<String>,
}

/// The forwards of one test.
struct Lab {
    start: Instant,
    /// Sessions to nowhere: the probes here never open one.
    tunnels: Arc<Tunnels>,
    forwards: Mutex<HashMap<String, Fwd>>,
}

impl Lab {
    fn new() -> Arc<Lab> {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URI"));
        let client = kube::Client::try_from(config).expect("a client");
        Arc::new(Lab {
            start: Instant::now(),
            tunnels: Tunnels::new(client),
            forwards: Mutex::new(HashMap::new()),
        })
    }

    fn set(&self, name: &str, f: impl FnOnce(&mut Fwd)) {
        f(self.forwards.lock().entry(name.to_string()).or_default());
    }

    fn get<T>(&self, name: &str, f: impl FnOnce(&Fwd) -> T) -> T {
        f(self.forwards.lock().entry(name.to_string()).or_default())
    }

    /// When `name` was probed, in milliseconds since the start.
    fn probed(&self, name: &str) -> Vec<u64> {
        self.get(name, |f| {
            f.probed.iter().map(|d| d.as_millis() as u64).collect()
        })
    }

    /// Sleeps until `ms` milliseconds after the start.
    async fn at(&self, ms: u64) {
        sleep_until(self.start + Duration::from_millis(ms)).await;
    }
}

/// A forward as the monitor sees it.
struct Fake {
    name: String,
    lab: Arc<Lab>,
}

impl ProbeTarget for Fake {
    fn local(&self) -> Option<SocketAddr> {
        None
    }

    fn endpoint(&self) -> Option<(Arc<Tunnels>, String, Endpoint)> {
        let pod = self
            .lab
            .get(&self.name, |f| f.pod_name.clone())
            .unwrap_or_else(|| self.name.clone());
        let ep = Endpoint { pod, port: 80 };
        self.lab
            .get(&self.name, |f| f.pod)
            .then(|| (self.lab.tunnels.clone(), "default".to_string(), ep))
    }

    fn context(&self) -> Option<String> {
        Some("test".into())
    }

    fn target_name(&self) -> String {
        self.name.clone()
    }

    fn publish(&self, checker: &Checker, _checked: bool) {
        self.lab
            .set(&self.name, |f| f.shown = Some(checker.state()));
    }

    fn idle_for(&self) -> Duration {
        self.lab.get(&self.name, |f| f.idle)
    }

    fn nudge(&self) {}

    fn no_pod(&self) -> String {
        "no pod".into()
    }
}

/// Starts the monitor; its probes pass or fail as the lab says, after the lab's latency.
fn start(lab: &Arc<Lab>) -> (mpsc::Sender<MonitorCmd>, CancellationToken) {
    let (tx, rx) = mpsc::channel(64);
    let token = CancellationToken::new();
    let runner = {
        let lab = lab.clone();
        move |_spec: HealthSpec, probe: ProbeHandle| {
            let name = probe.target_name();
            let (healthy, latency) = {
                let mut forwards = lab.forwards.lock();
                let f = forwards.entry(name).or_default();
                f.probed.push(lab.start.elapsed());
                (f.healthy, f.latency)
            };
            async move {
                tokio::time::sleep(latency).await;
                if healthy {
                    ProbeResult::pass("ok", latency)
                } else {
                    ProbeResult::fail("refused", "refused", latency)
                }
            }
        }
    };
    tokio::spawn(schedule(rx, token.clone(), runner));
    (tx, token)
}

/// Checks every 5 s, 1 s while counting (2 passes to go Up, 3 failures to go Down), every
/// 30 s when steady and unused.
fn spec() -> HealthSpec {
    HealthSpec {
        kind: ProbeKind::Tcp,
        interval: Duration::from_secs(5),
        fast_interval: Duration::from_secs(1),
        down_interval: None,
        idle_interval: Duration::from_secs(30),
        rise: 2,
        fall: 3,
        ..HealthSpec::default()
    }
}

async fn upsert(tx: &mpsc::Sender<MonitorCmd>, lab: &Arc<Lab>, name: &str, spec: HealthSpec) {
    let probe = ProbeHandle::new(Fake {
        name: name.to_string(),
        lab: lab.clone(),
    });
    let cmd = MonitorCmd::Upsert {
        name: name.to_string(),
        spec: Box::new(spec),
        probe,
    };
    tx.send(cmd).await.expect("the monitor runs");
}

/// A healthy pod that is ready.
fn ready(f: &mut Fwd) {
    f.pod = true;
    f.healthy = true;
}

#[tokio::test(start_paused = true)]
async fn probes_follow_the_checkers_period_up_and_down() {
    let lab = Lab::new();
    let (tx, token) = start(&lab);
    lab.set("web", ready);
    let spec = HealthSpec {
        down_interval: Some(Duration::from_secs(10)),
        ..spec()
    };
    upsert(&tx, &lab, "web", spec).await;
    lab.at(12_000).await;
    assert_eq!(lab.get("web", |f| f.shown), Some(HealthState::Up));
    lab.set("web", |f| f.healthy = false);
    lab.at(20_000).await;
    assert_eq!(lab.get("web", |f| f.shown), Some(HealthState::Down));
    lab.set("web", |f| f.healthy = true);
    lab.at(40_000).await;
    assert_eq!(lab.get("web", |f| f.shown), Some(HealthState::Up));
    assert_eq!(
        lab.probed("web"),
        [
            // At once, then fast until Up (two passes), then every interval.
            0, 1_000, 6_000, 11_000,
            // Failing: fast until Down (three failures), then the down interval.
            16_000, 17_000, 18_000, 28_000,
            // Passing again: fast until Up, then every interval.
            29_000, 34_000, 39_000,
        ]
    );
    token.cancel();
}

#[tokio::test(start_paused = true)]
async fn an_unused_steady_forward_is_probed_at_the_idle_interval() {
    let lab = Lab::new();
    let (tx, token) = start(&lab);
    lab.set("web", |f| {
        ready(f);
        f.idle = IDLE_AFTER;
    });
    upsert(&tx, &lab, "web", spec()).await;
    // Up and unused: every 30 s. Then failing while unused: fast all the same.
    lab.at(62_000).await;
    lab.set("web", |f| f.healthy = false);
    // Down: every interval (unused or not). Then passing and in use: fast, then every 5 s.
    lab.at(99_000).await;
    lab.set("web", |f| {
        f.healthy = true;
        f.idle = Duration::ZERO;
    });
    lab.at(115_000).await;
    assert_eq!(
        lab.probed("web"),
        [
            0, 1_000, 31_000, 61_000, // Up, unused
            91_000, 92_000, 93_000, 98_000, // failing, Down
            103_000, 104_000, 109_000, 114_000, // Up, in use
        ]
    );
    token.cancel();
}

#[tokio::test(start_paused = true)]
async fn first_probes_are_staggered_at_start_and_at_once_for_a_forward_enabled_later() {
    let lab = Lab::new();
    let (tx, token) = start(&lab);
    let names: Vec<String> = (0..12).map(|i| format!("f{i:02}")).collect();
    for name in &names {
        lab.set(name, ready);
        upsert(&tx, &lab, name, spec()).await;
    }
    lab.at(20_000).await;
    // Enabled alone, later: at once.
    lab.set("late", ready);
    upsert(&tx, &lab, "late", spec()).await;
    lab.at(21_000).await;
    tx.send(MonitorCmd::Disable { name: "f09".into() })
        .await
        .expect("the monitor runs");
    lab.at(22_000).await;
    // Enabled again: probed as a new forward is, at once.
    upsert(&tx, &lab, "f09", spec()).await;
    lab.at(22_500).await;

    let first: Vec<u64> = names.iter().map(|n| lab.probed(n)[0]).collect();
    // The first eight and the ninth (at 0 · φ) at once; then the k-th beyond at
    // frac(k · φ) of the 5 s interval, rounded up to the timer's millisecond.
    assert_eq!(first, [0, 0, 0, 0, 0, 0, 0, 0, 0, 3_091, 1_181, 4_271]);
    assert_eq!(lab.probed("late"), [20_000, 21_000]);
    let f09 = lab.probed("f09");
    assert_eq!(f09[..5], [3_091, 4_091, 9_091, 14_091, 19_091]);
    assert_eq!(f09[5..], [22_000], "disabled at 21 s, enabled at 22 s");
    token.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_new_forward_waits_for_its_pod_up_to_an_interval() {
    let lab = Lab::new();
    let (tx, token) = start(&lab);
    lab.set("late-pod", |f| f.healthy = true);
    lab.set("no-pod", |f| f.healthy = true);
    upsert(&tx, &lab, "late-pod", spec()).await;
    upsert(&tx, &lab, "no-pod", spec()).await;
    lab.at(120).await;
    lab.set("late-pod", |f| f.pod = true);
    lab.at(5_500).await;
    // Looked at every 50 ms: the first look after the pod came.
    assert_eq!(lab.probed("late-pod")[0], 150);
    // No pod within an interval: probed then (and found wanting).
    assert_eq!(lab.probed("no-pod"), [5_000]);
    token.cancel();
}

#[tokio::test(start_paused = true)]
async fn checking_now_and_resuming_probe_at_once() {
    let lab = Lab::new();
    let (tx, token) = start(&lab);
    lab.set("web", ready);
    upsert(&tx, &lab, "web", spec()).await;
    lab.at(7_500).await;
    tx.send(MonitorCmd::CheckNow {
        names: None,
        why: None,
    })
    .await
    .expect("the monitor runs");
    lab.at(8_500).await;
    tx.send(MonitorCmd::CheckNow {
        names: Some(vec!["other".into()]),
        why: None,
    })
    .await
    .expect("the monitor runs");
    lab.at(13_000).await;
    let (reply, paused) = oneshot::channel();
    tx.send(MonitorCmd::Pause {
        name: "web".into(),
        reply,
    })
    .await
    .expect("the monitor runs");
    assert_eq!(paused.await, Ok(Ok(())));
    lab.at(30_000).await;
    let (reply, resumed) = oneshot::channel();
    tx.send(MonitorCmd::Resume {
        name: "web".into(),
        reply,
    })
    .await
    .expect("the monitor runs");
    assert_eq!(resumed.await, Ok(Ok(())));
    lab.at(36_000).await;
    assert_eq!(
        lab.probed("web"),
        [0, 1_000, 6_000, 7_500, 12_500, 30_000, 35_000]
    );
    token.cancel();
}

#[tokio::test(start_paused = true)]
async fn the_next_probe_is_timed_from_the_end_of_the_last() {
    let lab = Lab::new();
    let (tx, token) = start(&lab);
    lab.set("slow", |f| {
        ready(f);
        f.latency = Duration::from_millis(1_500);
    });
    upsert(&tx, &lab, "slow", spec()).await;
    lab.at(16_000).await;
    // Ends at 1.5 s, fast: 2.5 s; ends at 4 s, Up: 9 s; ends at 10.5 s: 15.5 s.
    assert_eq!(lab.probed("slow"), [0, 2_500, 9_000, 15_500]);
    token.cancel();
}

/// Two forwards checking the same pod port the same way agree: when the pod breaks, the
/// one in use finds out at its next probe (5 s) and the unused one (probed every 30 s)
/// hears it at once, going down within its fall count at the fast interval; the same on
/// the way back up.
#[tokio::test(start_paused = true)]
async fn forwards_on_the_same_pod_port_learn_of_a_change_together() {
    let lab = Lab::new();
    let (tx, token) = start(&lab);
    for name in ["busy", "idle"] {
        lab.set(name, |f| {
            ready(f);
            f.pod_name = Some("shared".into());
        });
    }
    lab.set("idle", |f| f.idle = Duration::from_secs(600));
    let spec = HealthSpec {
        kind: ProbeKind::Tunnel,
        ..spec()
    };
    upsert(&tx, &lab, "busy", spec.clone()).await;
    upsert(&tx, &lab, "idle", spec).await;
    lab.at(70_000).await;
    for name in ["busy", "idle"] {
        assert_eq!(lab.get(name, |f| f.shown), Some(HealthState::Up), "{name}");
    }
    // When each first shows `want`, sampled every 100 ms from `from` for 40 s.
    let when = |want: HealthState, from: u64| {
        let lab = lab.clone();
        async move {
            let mut seen: HashMap<&str, u64> = HashMap::new();
            let mut ms = from;
            while seen.len() < 2 && ms < from + 40_000 {
                lab.at(ms).await;
                for name in ["busy", "idle"] {
                    if lab.get(name, |f| f.shown) == Some(want) {
                        seen.entry(name).or_insert(ms);
                    }
                }
                ms += 100;
            }
            seen
        }
    };
    for name in ["busy", "idle"] {
        lab.set(name, |f| f.healthy = false);
    }
    let down = when(HealthState::Down, 70_000).await;
    let (busy, idle) = (down["busy"], down["idle"]);
    assert!(
        idle.abs_diff(busy) <= 3_000,
        "down: busy at {busy} ms, idle at {idle} ms"
    );
    for name in ["busy", "idle"] {
        lab.set(name, |f| f.healthy = true);
    }
    let from = busy.max(idle) + 100;
    let up = when(HealthState::Up, from).await;
    let (busy, idle) = (up["busy"], up["idle"]);
    assert!(
        idle.abs_diff(busy) <= 3_000,
        "up: busy at {busy} ms, idle at {idle} ms"
    );
    token.cancel();
}
