//! Port-forward counters: upgrades by protocol, and the sessions and forwarded connections
//! open now, kept in atomics so that reading or bumping them costs next to nothing.
//! Readable from the library (`FakeCluster::portforward_stats`) and as JSON
//! (`GET /fake/portforward`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A way of serving `pods/{name}/portforward`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Plain SPDY/3.1: `POST` with `Upgrade: SPDY/3.1` (kubectl ≤ 1.30, or any kubectl with
    /// `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`).
    Spdy,
    /// SPDY tunnelled through a WebSocket (subprotocol `SPDY/3.1+portforward.k8s.io`),
    /// what kubectl ≥ 1.31 tries first.
    #[serde(rename = "spdy-websocket")]
    SpdyWebSocket,
    /// The WebSocket channel protocol (`v4.channel.k8s.io` and the older unnamed one), as
    /// kube-rs and the Python client speak it.
    Channel,
}

impl Protocol {
    /// Every protocol, in the order of [`ProtocolCounts`]' fields.
    pub const ALL: [Protocol; 3] = [Protocol::Spdy, Protocol::SpdyWebSocket, Protocol::Channel];

    /// The protocol's name: `spdy`, `spdy-websocket` or `channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Spdy => "spdy",
            Protocol::SpdyWebSocket => "spdy-websocket",
            Protocol::Channel => "channel",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Protocol::Spdy => 0,
            Protocol::SpdyWebSocket => 1,
            Protocol::Channel => 2,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of `spdy`, `spdy-websocket` (or `spdy_websocket`) and `channel`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown port-forward protocol `{0}`; use spdy, spdy-websocket or channel")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spdy" => Ok(Protocol::Spdy),
            "spdy-websocket" | "spdy_websocket" => Ok(Protocol::SpdyWebSocket),
            "channel" => Ok(Protocol::Channel),
            other => Err(UnknownProtocol(other.to_string())),
        }
    }
}

/// One number per protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProtocolCounts {
    pub spdy: u64,
    pub spdy_websocket: u64,
    pub channel: u64,
}

impl ProtocolCounts {
    /// The number for `protocol`.
    pub fn get(&self, protocol: Protocol) -> u64 {
        match protocol {
            Protocol::Spdy => self.spdy,
            Protocol::SpdyWebSocket => self.spdy_websocket,
            Protocol::Channel => self.channel,
        }
    }

    /// The sum over every protocol.
    pub fn total(&self) -> u64 {
        self.spdy + self.spdy_websocket + self.channel
    }
}

/// A snapshot of the port-forward counters of one fake cluster.
///
/// Requests are sorted by protocol as the server reads them: `Upgrade: SPDY/…` is plain
/// SPDY; a WebSocket offering `SPDY/3.1+portforward.k8s.io` is the SPDY tunnel (unless the
/// tunnel is not served and the client offers other subprotocols too, which a server
/// older than 1.30 answers with the channel protocol); anything else is the channel
/// protocol, including a request with no usable upgrade at all.
///
/// The session and connection figures cover the sessions the fake API server serves
/// itself. A pod run by a node (`ferry-fakecluster node`) is reached through that node's
/// kubelet endpoint: its upgrades are counted here, its sessions and connections are not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortForwardStats {
    /// Port-forward requests answered with `101 Switching Protocols`.
    pub upgrades: ProtocolCounts,
    /// Port-forward requests answered with anything else: refused by a fault switch,
    /// forbidden, for a pod that does not exist, or malformed.
    pub refused: ProtocolCounts,
    /// SPDY sessions open now, plain or tunnelled through a WebSocket. A session counts
    /// from its `101` until it has ended.
    pub spdy_sessions_open: u64,
    /// SPDY sessions opened so far.
    pub spdy_sessions_total: u64,
    /// Forwarded connections open now in SPDY sessions. A connection is the pair of an
    /// `error` and a `data` stream with the same request id; it counts once both streams
    /// are open (that is when the server connects to the pod) and until the server has
    /// closed its error stream. A stream whose partner never comes is not counted.
    pub spdy_connections_open: u64,
    /// Forwarded connections opened so far in SPDY sessions.
    pub spdy_connections_total: u64,
    /// WebSocket channel-protocol sessions open now, from their `101` until they end.
    pub channel_sessions_open: u64,
    /// WebSocket channel-protocol sessions opened so far.
    pub channel_sessions_total: u64,
    /// Sessions (of any protocol) the server closed because nothing moved either way for
    /// the streaming idle timeout ([`crate::Options::streaming_idle_timeout`]).
    pub idle_closed: u64,
}

/// The live counters behind [`PortForwardStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    upgrades: [AtomicU64; 3],
    refused: [AtomicU64; 3],
    spdy_sessions: Gauge,
    spdy_connections: Gauge,
    channel_sessions: Gauge,
    idle_closed: AtomicU64,
}

/// A number of things open now, and how many were ever opened.
#[derive(Debug, Default)]
struct Gauge {
    open: AtomicU64,
    total: AtomicU64,
}

/// Which gauge an [`Open`] guard holds.
#[derive(Debug, Clone, Copy)]
enum Which {
    SpdySessions,
    SpdyConnections,
    ChannelSessions,
}

/// Counts one open session or connection while alive.
#[derive(Debug)]
pub(crate) struct Open {
    counters: Arc<Counters>,
    which: Which,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.counters
            .gauge(self.which)
            .open
            .fetch_sub(1, Ordering::SeqCst);
    }
}

fn counts(values: &[AtomicU64; 3]) -> ProtocolCounts {
    let get = |p: Protocol| values[p.index()].load(Ordering::SeqCst);
    ProtocolCounts {
        spdy: get(Protocol::Spdy),
        spdy_websocket: get(Protocol::SpdyWebSocket),
        channel: get(Protocol::Channel),
    }
}

impl Counters {
    fn gauge(&self, which: Which) -> &Gauge {
        match which {
            Which::SpdySessions => &self.spdy_sessions,
            Which::SpdyConnections => &self.spdy_connections,
            Which::ChannelSessions => &self.channel_sessions,
        }
    }

    fn open(self: &Arc<Self>, which: Which) -> Open {
        let gauge = self.gauge(which);
        gauge.total.fetch_add(1, Ordering::SeqCst);
        gauge.open.fetch_add(1, Ordering::SeqCst);
        Open {
            counters: self.clone(),
            which,
        }
    }

    /// Counts the answer to one port-forward request for `protocol`.
    pub(crate) fn answered(&self, protocol: Protocol, upgraded: bool) {
        let values = if upgraded {
            &self.upgrades
        } else {
            &self.refused
        };
        values[protocol.index()].fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a SPDY session as open until the guard is dropped.
    pub(crate) fn spdy_session(self: &Arc<Self>) -> Open {
        self.open(Which::SpdySessions)
    }

    /// Counts a forwarded SPDY connection as open until the guard is dropped.
    pub(crate) fn spdy_connection(self: &Arc<Self>) -> Open {
        self.open(Which::SpdyConnections)
    }

    /// Counts a channel-protocol session as open until the guard is dropped.
    pub(crate) fn channel_session(self: &Arc<Self>) -> Open {
        self.open(Which::ChannelSessions)
    }

    /// Counts a session closed for the streaming idle timeout.
    pub(crate) fn idle_closed(&self) {
        self.idle_closed.fetch_add(1, Ordering::SeqCst);
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> PortForwardStats {
        let load = |a: &AtomicU64| a.load(Ordering::SeqCst);
        PortForwardStats {
            upgrades: counts(&self.upgrades),
            refused: counts(&self.refused),
            spdy_sessions_open: load(&self.spdy_sessions.open),
            spdy_sessions_total: load(&self.spdy_sessions.total),
            spdy_connections_open: load(&self.spdy_connections.open),
            spdy_connections_total: load(&self.spdy_connections.total),
            channel_sessions_open: load(&self.channel_sessions.open),
            channel_sessions_total: load(&self.channel_sessions.total),
            idle_closed: load(&self.idle_closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_open_things_and_totals() {
        let c = Arc::new(Counters::default());
        let a = c.spdy_session();
        let b = c.spdy_session();
        let conn = c.spdy_connection();
        let chan = c.channel_session();
        c.answered(Protocol::Spdy, true);
        c.answered(Protocol::SpdyWebSocket, false);
        c.answered(Protocol::SpdyWebSocket, false);
        drop(a);
        let s = c.snapshot();
        assert_eq!((s.spdy_sessions_open, s.spdy_sessions_total), (1, 2));
        assert_eq!((s.spdy_connections_open, s.spdy_connections_total), (1, 1));
        assert_eq!((s.channel_sessions_open, s.channel_sessions_total), (1, 1));
        assert_eq!(s.upgrades.get(Protocol::Spdy), 1);
        assert_eq!(s.refused.spdy_websocket, 2);
        assert_eq!(s.refused.total(), 2);
        drop((b, conn, chan));
        let s = c.snapshot();
        assert_eq!(
            (
                s.spdy_sessions_open,
                s.spdy_connections_open,
                s.channel_sessions_open
            ),
            (0, 0, 0)
        );
        assert_eq!(s.spdy_sessions_total, 2);
    }

    #[test]
    fn protocols_have_names_both_ways() {
        for p in Protocol::ALL {
            assert_eq!(p.as_str().parse::<Protocol>(), Ok(p));
            assert_eq!(serde_json::to_value(p).ok(), Some(p.as_str().into()));
        }
        assert_eq!("spdy_websocket".parse(), Ok(Protocol::SpdyWebSocket));
        assert!("websocket".parse::<Protocol>().is_err());
        let json = serde_json::to_value(PortForwardStats::default()).unwrap_or_default();
        assert_eq!(json["upgrades"]["spdy_websocket"], 0);
        assert_eq!(json["spdy_connections_open"], 0);
    }
}
