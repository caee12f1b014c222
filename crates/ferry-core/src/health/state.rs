//! The health state machine, after a load balancer's checker: `rise` consecutive passes to
//! go Up, `fall` consecutive failures to go Down, each counter reset by the opposite
//! result; Paused and Disabled are states of their own. Pure: no I/O, no clock of its own.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::HealthSpec;

/// How many transitions a forward remembers by default.
pub const DEFAULT_HISTORY: usize = 32;

/// A forward's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// No verdict yet.
    Unknown,
    Up,
    Down,
    /// Checks paused by the user.
    Paused,
    /// The forward is disabled, or its checks are `none`.
    Disabled,
}

impl HealthState {
    /// The lower-case word used in JSON and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Up => "up",
            HealthState::Down => "down",
            HealthState::Paused => "paused",
            HealthState::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub passed: bool,
    /// A short machine-readable code: `ok`, `refused`, `timeout`, `status`, `body`,
    /// `no-pod`, `error`.
    pub code: &'static str,
    /// A human sentence: "HTTP 503 from /healthz", "timed out after 2s".
    pub detail: String,
    pub latency: Duration,
}

impl ProbeResult {
    pub fn pass(detail: impl Into<String>, latency: Duration) -> Self {
        Self {
            passed: true,
            code: "ok",
            detail: detail.into(),
            latency,
        }
    }

    pub fn fail(code: &'static str, detail: impl Into<String>, latency: Duration) -> Self {
        Self {
            passed: false,
            code,
            detail: detail.into(),
            latency,
        }
    }
}

/// One change of health state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Transition {
    pub from: HealthState,
    pub to: HealthState,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The code of the probe that caused it (`pause`, `resume` for the user's doing).
    pub code: String,
    pub detail: String,
}

/// The state machine of one forward's checks.
#[derive(Debug, Clone)]
pub struct Checker {
    state: HealthState,
    /// Consecutive passes while not Up (counting towards Up).
    passes: u32,
    /// Consecutive failures while not Down (counting towards Down).
    fails: u32,
    history: VecDeque<Transition>,
    capacity: usize,
    last: Option<ProbeResult>,
    /// The state to return to on resume.
    before_pause: HealthState,
    /// Why the last verdict is in doubt (the machine woke, the network changed): set by
    /// [`Checker::doubt`], cleared by the next passing probe.
    doubt: Option<String>,
}

impl Checker {
    /// A checker in `Unknown` keeping at most `capacity` transitions.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: HealthState::Unknown,
            passes: 0,
            fails: 0,
            history: VecDeque::new(),
            capacity: capacity.max(1),
            last: None,
            before_pause: HealthState::Unknown,
            doubt: None,
        }
    }

    /// Puts the verdict in doubt for `why` until a probe passes (nothing while paused or
    /// disabled: no probe would clear it).
    pub fn doubt(&mut self, why: &str) {
        if !matches!(self.state, HealthState::Paused | HealthState::Disabled) {
            self.doubt = Some(why.to_string());
        }
    }

    /// Why the verdict is in doubt, until a probe passes.
    pub fn doubted(&self) -> Option<&str> {
        self.doubt.as_deref()
    }

    /// Up, with no failure counting towards Down.
    pub fn steady_up(&self) -> bool {
        self.state == HealthState::Up && self.fails == 0 && self.doubt.is_none()
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    /// Transitions, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Transition> {
        self.history.iter()
    }

    /// The latest probe's result.
    pub fn last(&self) -> Option<&ProbeResult> {
        self.last.as_ref()
    }

    /// `(passes, fails)` counted towards the next change.
    pub fn counters(&self) -> (u32, u32) {
        (self.passes, self.fails)
    }

    fn record(&mut self, to: HealthState, at_ms: u64, code: &str, detail: &str) -> Transition {
        let t = Transition {
            from: self.state,
            to,
            at_ms,
            code: code.to_string(),
            detail: detail.to_string(),
        };
        self.state = to;
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(t.clone());
        t
    }

    /// Feeds one probe result. Returns the transition it caused, if any. Results that
    /// arrive while Paused or Disabled are ignored.
    pub fn step(
        &mut self,
        spec: &HealthSpec,
        result: ProbeResult,
        at_ms: u64,
    ) -> Option<Transition> {
        if matches!(self.state, HealthState::Paused | HealthState::Disabled) {
            return None;
        }
        let transition = if result.passed {
            self.fails = 0;
            self.doubt = None;
            if self.state == HealthState::Up {
                self.passes = 0;
                None
            } else {
                self.passes += 1;
                (self.passes >= spec.rise).then(|| {
                    self.passes = 0;
                    self.record(HealthState::Up, at_ms, result.code, &result.detail)
                })
            }
        } else {
            self.passes = 0;
            if self.state == HealthState::Down {
                self.fails = 0;
                None
            } else {
                self.fails += 1;
                (self.fails >= spec.fall).then(|| {
                    self.fails = 0;
                    self.record(HealthState::Down, at_ms, result.code, &result.detail)
                })
            }
        };
        self.last = Some(result);
        transition
    }

    /// Stops judging; keeps the history. Pausing twice is a no-op.
    pub fn pause(&mut self, at_ms: u64) -> Option<Transition> {
        if matches!(self.state, HealthState::Paused | HealthState::Disabled) {
            return None;
        }
        self.before_pause = self.state;
        self.passes = 0;
        self.fails = 0;
        Some(self.record(HealthState::Paused, at_ms, "pause", "checks paused"))
    }

    /// Judges again, from the state before the pause.
    pub fn resume(&mut self, at_ms: u64) -> Option<Transition> {
        if self.state != HealthState::Paused {
            return None;
        }
        let to = self.before_pause;
        Some(self.record(to, at_ms, "resume", "checks resumed"))
    }

    /// The forward went off: no verdicts until [`Checker::enable`].
    pub fn disable(&mut self, at_ms: u64) -> Option<Transition> {
        if self.state == HealthState::Disabled {
            return None;
        }
        self.passes = 0;
        self.fails = 0;
        Some(self.record(HealthState::Disabled, at_ms, "disable", "forward disabled"))
    }

    /// The forward is on again: start over from Unknown.
    pub fn enable(&mut self, at_ms: u64) -> Option<Transition> {
        if self.state != HealthState::Disabled {
            return None;
        }
        Some(self.record(HealthState::Unknown, at_ms, "enable", "forward enabled"))
    }

    /// How long until the next probe: `fast_interval` while counting towards a change (or
    /// without a verdict yet), `down_interval` while Down, `interval` otherwise.
    pub fn next_interval(&self, spec: &HealthSpec) -> Duration {
        // In doubt: looked at quickly, so a forward is back soon after its path is.
        if self.doubt.is_some() {
            return spec.fast_interval;
        }
        match self.state {
            HealthState::Unknown => spec.fast_interval,
            HealthState::Up if self.fails > 0 => spec.fast_interval,
            HealthState::Down if self.passes > 0 => spec.fast_interval,
            HealthState::Down => spec.down_interval.unwrap_or(spec.interval),
            _ => spec.interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rise: u32, fall: u32) -> HealthSpec {
        HealthSpec {
            rise,
            fall,
            ..HealthSpec::default()
        }
    }

    fn ok() -> ProbeResult {
        ProbeResult::pass("ok", Duration::from_millis(3))
    }

    fn bad() -> ProbeResult {
        ProbeResult::fail("refused", "connection refused", Duration::from_millis(1))
    }

    /// Feeds a sequence of results (`+` pass, `-` fail, `p` pause, `r` resume, `d` disable,
    /// `e` enable) and checks the state after each step.
    fn check(rise: u32, fall: u32, steps: &str, expect: &[HealthState]) {
        use HealthState::*;
        let spec = spec(rise, fall);
        let mut c = Checker::new(DEFAULT_HISTORY);
        let mut got = Vec::new();
        for (i, ch) in steps.chars().enumerate() {
            let at = i as u64;
            match ch {
                '+' => {
                    c.step(&spec, ok(), at);
                }
                '-' => {
                    c.step(&spec, bad(), at);
                }
                'p' => {
                    c.pause(at);
                }
                'r' => {
                    c.resume(at);
                }
                'd' => {
                    c.disable(at);
                }
                'e' => {
                    c.enable(at);
                }
                other => panic!("bad step {other}"),
            }
            got.push(c.state());
        }
        let _ = (Unknown, Up, Down, Paused, Disabled);
        assert_eq!(got, expect, "rise {rise} fall {fall} steps {steps}");
    }

    #[test]
    fn transitions_follow_rise_and_fall() {
        use HealthState::*;
        check(2, 3, "++", &[Unknown, Up]);
        check(2, 3, "---", &[Unknown, Unknown, Down]);
        check(2, 3, "++---", &[Unknown, Up, Up, Up, Down]);
        // The opposite result resets the counter.
        check(2, 3, "++--+---", &[Unknown, Up, Up, Up, Up, Up, Up, Down]);
        check(
            2,
            3,
            "---+-++",
            &[Unknown, Unknown, Down, Down, Down, Down, Up],
        );
        check(1, 1, "+-+-", &[Up, Down, Up, Down]);
    }

    #[test]
    fn pause_and_disable_are_states_of_their_own() {
        use HealthState::*;
        check(1, 1, "+p--r", &[Up, Paused, Paused, Paused, Up]);
        check(1, 1, "+pp", &[Up, Paused, Paused]);
        check(1, 1, "r+", &[Unknown, Up]);
        check(1, 1, "+d-+e", &[Up, Disabled, Disabled, Disabled, Unknown]);
        check(1, 1, "dp", &[Disabled, Disabled]);
    }

    #[test]
    fn history_is_bounded_and_says_why() {
        let spec = spec(1, 1);
        let mut c = Checker::new(4);
        for i in 0..10 {
            let r = if i % 2 == 0 { ok() } else { bad() };
            c.step(&spec, r, i);
        }
        let h: Vec<&Transition> = c.history().collect();
        assert_eq!(h.len(), 4);
        assert_eq!(h[3].to, HealthState::Down);
        assert_eq!(h[3].detail, "connection refused");
        assert_eq!(h[3].code, "refused");
        assert_eq!(h[3].at_ms, 9);
    }

    #[test]
    fn intervals_speed_up_while_counting() {
        let spec = HealthSpec {
            interval: Duration::from_secs(5),
            fast_interval: Duration::from_secs(1),
            down_interval: Some(Duration::from_secs(10)),
            rise: 2,
            fall: 2,
            ..HealthSpec::default()
        };
        let mut c = Checker::new(8);
        assert_eq!(
            c.next_interval(&spec),
            Duration::from_secs(1),
            "unknown: fast"
        );
        c.step(&spec, ok(), 0);
        c.step(&spec, ok(), 1);
        assert_eq!(c.next_interval(&spec), Duration::from_secs(5), "up: steady");
        c.step(&spec, bad(), 2);
        assert_eq!(
            c.next_interval(&spec),
            Duration::from_secs(1),
            "counting down: fast"
        );
        c.step(&spec, bad(), 3);
        assert_eq!(
            c.next_interval(&spec),
            Duration::from_secs(10),
            "down: down_interval"
        );
        c.step(&spec, ok(), 4);
        assert_eq!(
            c.next_interval(&spec),
            Duration::from_secs(1),
            "counting up: fast"
        );
    }

    /// Drives a checker the way the monitor does — probe when due, then wait
    /// `next_interval` — on tokio's paused clock, and checks when verdicts fall.
    #[tokio::test(start_paused = true)]
    async fn verdicts_arrive_on_schedule_with_a_paused_clock() {
        use tokio::time::{Instant, advance};
        let spec = HealthSpec {
            interval: Duration::from_secs(5),
            fast_interval: Duration::from_secs(1),
            down_interval: Some(Duration::from_secs(10)),
            rise: 2,
            fall: 3,
            ..HealthSpec::default()
        };
        let start = Instant::now();
        let mut c = Checker::new(DEFAULT_HISTORY);
        // The backend is healthy until t=20s, broken until t=60s, healthy after.
        let healthy = |t: Duration| t < Duration::from_secs(20) || t >= Duration::from_secs(60);
        let mut verdicts = Vec::new();
        while start.elapsed() < Duration::from_secs(90) {
            let t = start.elapsed();
            let result = if healthy(t) { ok() } else { bad() };
            if let Some(tr) = c.step(&spec, result, t.as_millis() as u64) {
                verdicts.push((tr.to, t));
            }
            advance(c.next_interval(&spec)).await;
        }
        let secs: Vec<(HealthState, u64)> =
            verdicts.iter().map(|(s, t)| (*s, t.as_secs())).collect();
        // Up after two fast probes (0 s, 1 s); probes every 5 s from then on (6, 11, 16, 21):
        // the first failure at 21 s, then fast probes at 22 and 23 make three: Down at 23 s,
        // i.e. within fall × fast_interval of the first failing probe. While Down, probes
        // every 10 s (33, 43, 53, 63): the first pass at 63 s, a fast one at 64 s: Up.
        assert_eq!(
            secs,
            vec![
                (HealthState::Up, 1),
                (HealthState::Down, 23),
                (HealthState::Up, 64)
            ]
        );
    }
}
