//! The last lines worth showing per forward (the details view's "recent log"), written
//! from the engine's transition events. Bounded per forward. The same lines go to the
//! app's log (stderr and the daily file).

use std::collections::{HashMap, VecDeque};

use ferry_core::events::{Event, ForwardStatus, now_ms};
use parking_lot::Mutex;
use serde::Serialize;

/// Lines kept per forward.
const KEEP: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct LogLine {
    pub at_ms: u64,
    pub level: &'static str,
    pub message: String,
}

/// One forward's recent lines and the last status seen (to say what changed).
type Entry = (VecDeque<LogLine>, Option<ForwardStatus>);

/// Per-forward ring buffers.
#[derive(Default)]
pub struct Logs {
    inner: Mutex<HashMap<String, Entry>>,
}

impl Logs {
    pub fn lines(&self, forward: &str) -> Vec<LogLine> {
        self.inner
            .lock()
            .get(forward)
            .map(|(lines, _)| lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn push(&self, forward: &str, level: &'static str, message: String) {
        let mut inner = self.inner.lock();
        let (lines, _) = inner.entry(forward.to_string()).or_default();
        if lines.len() == KEEP {
            lines.pop_front();
        }
        lines.push_back(LogLine {
            at_ms: now_ms(),
            level,
            message,
        });
    }

    /// Records what an engine event says changed.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Forward { status } => {
                let previous = {
                    let mut inner = self.inner.lock();
                    let entry = inner.entry(status.forward.clone()).or_default();
                    entry.1.replace((**status).clone())
                };
                for (level, line) in describe(previous.as_ref(), status) {
                    // Also in the app's log file, so what happened stays on record.
                    let forward = status.forward.as_str();
                    match level {
                        "error" | "warn" => tracing::warn!(forward = %forward, "{line}"),
                        _ => tracing::info!(forward = %forward, "{line}"),
                    }
                    self.push(&status.forward, level, line);
                }
            }
            Event::Restarted { forward, reason } => {
                self.push(forward, "warn", format!("worker restarted: {reason}"));
            }
            Event::Removed { forward } => {
                self.inner.lock().remove(forward);
            }
            _ => {}
        }
    }
}

/// Lines for what changed from `before` to `now`.
fn describe(before: Option<&ForwardStatus>, now: &ForwardStatus) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if before.map(|b| b.state) != Some(now.state) {
        let level = match now.state.as_str() {
            "error" => "error",
            "degraded" | "reconnecting" => "warn",
            _ => "info",
        };
        let mut line = format!("state {}", now.state);
        if let Some(local) = now.local {
            line.push_str(&format!(" on {local}"));
        }
        out.push((level, line));
    }
    if let Some(pod) = &now.pod
        && before.and_then(|b| b.pod.as_ref()) != Some(pod)
    {
        out.push(("info", format!("connections go to pod {pod}")));
    }
    if let Some(error) = &now.error
        && before.and_then(|b| b.error.as_ref()) != Some(error)
    {
        out.push(("error", error.clone()));
    }
    if before.map(|b| b.health) != Some(now.health) && before.is_some() {
        let detail = now.detail.clone().unwrap_or_default();
        out.push(("info", format!("health {}: {detail}", now.health)));
    }
    if let Some(closed) = now.idle_closed
        && before.and_then(|b| b.idle_closed).map(|c| c.count) != Some(closed.count)
    {
        out.push(("info", idle_close_line(closed.quiet_ms)));
    }
    out
}

/// What the log says when the far side closed a quiet connection.
fn idle_close_line(quiet_ms: u64) -> String {
    let secs = quiet_ms / 1000;
    let quiet = match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    };
    format!(
        "the cluster closed a connection after {quiet} without traffic (its streaming idle timeout, or the server's own idle limit); new connections open at once"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::events::ForwardState;

    #[test]
    fn records_state_pod_and_error_changes_and_stays_bounded() {
        let logs = Logs::default();
        let mut s = ForwardStatus::new("echo", "service/echo:80".into(), ForwardState::Starting);
        logs.record(&Event::Forward {
            status: Box::new(s.clone()),
        });
        s.state = ForwardState::Active;
        s.pod = Some("echo-1".into());
        logs.record(&Event::Forward {
            status: Box::new(s.clone()),
        });
        s.state = ForwardState::Error;
        s.error = Some("port 18080 is in use".into());
        logs.record(&Event::Forward {
            status: Box::new(s.clone()),
        });
        let lines: Vec<String> = logs.lines("echo").into_iter().map(|l| l.message).collect();
        assert_eq!(
            lines,
            [
                "state starting",
                "state active",
                "connections go to pod echo-1",
                "state error",
                "port 18080 is in use"
            ]
        );
        // A connection closed for idleness is said once per close.
        s.state = ForwardState::Active;
        s.error = None;
        s.idle_closed = Some(ferry_core::events::IdleClosed {
            count: 1,
            at_ms: 5,
            quiet_ms: 300_400,
        });
        for _ in 0..2 {
            logs.record(&Event::Forward {
                status: Box::new(s.clone()),
            });
        }
        let lines: Vec<String> = logs.lines("echo").into_iter().map(|l| l.message).collect();
        assert_eq!(
            lines[lines.len() - 2..],
            [
                "state active".to_string(),
                "the cluster closed a connection after 5 min without traffic (its streaming idle timeout, or the server's own idle limit); new connections open at once".to_string()
            ]
        );
        for i in 0..200 {
            logs.push("echo", "info", format!("{i}"));
        }
        assert_eq!(logs.lines("echo").len(), KEEP);
        assert_eq!(logs.lines("echo").last().unwrap().message, "199");
    }
}
