//! Who asked: the `User-Agent` of every authenticated request the fake API server serves,
//! counted separately for plain API requests and connection upgrades (port-forwards), so
//! tests can assert what a client says it is (`FakeCluster::requests`, `GET
//! /fake/requests`).

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::Serialize;

/// Requests seen from one client (one `User-Agent`, `""` when none was sent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentRequests {
    pub user_agent: String,
    /// Requests other than upgrades.
    pub api: u64,
    /// Upgrade requests (`Upgrade:` header: WebSocket or SPDY port-forwards).
    pub upgrades: u64,
}

/// The counts, keyed by user agent.
#[derive(Debug, Default)]
pub struct RequestLog {
    seen: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl RequestLog {
    pub(crate) fn record(&self, user_agent: Option<&str>, upgrade: bool) {
        let mut seen = self.seen.lock();
        let entry = seen
            .entry(user_agent.unwrap_or("").to_string())
            .or_default();
        if upgrade {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
    }

    /// Every user agent seen so far, in order.
    pub fn agents(&self) -> Vec<AgentRequests> {
        self.seen
            .lock()
            .iter()
            .map(|(agent, (api, upgrades))| AgentRequests {
                user_agent: agent.clone(),
                api: *api,
                upgrades: *upgrades,
            })
            .collect()
    }
}
