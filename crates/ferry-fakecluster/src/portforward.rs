//! The `pods/{name}/portforward` subresource over WebSocket, as kubelet serves it.
//!
//! Framing (`v4.channel.k8s.io`, and the legacy unnamed binary protocol): every binary
//! message starts with a channel byte. Port `i` of the request uses channel `2i` for data
//! and `2i+1` for errors. The first message the server sends on each channel carries the
//! port number as two little-endian bytes. An error is one text message on the error
//! channel, worded as kubelet words it. When every port's connection has ended, the server
//! closes the WebSocket.
//!
//! Data flows through three kinds of tasks so that a slow side never blocks the other
//! direction: one reader per pod connection (pod → frames), one writer owning the
//! WebSocket sink (frames → client), and the session loop (client frames → pod). Every
//! queue is bounded, so nothing buffers without limit.
//!
//! Freezing (a fault): while the session's gate is frozen, neither the session loop nor
//! the writer touches the WebSocket, so WebSocket pings go unanswered and no data moves;
//! the connection stays open until the session is thawed or cut.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span};

use crate::cluster::{Cluster, PortTarget};
use crate::faults::{Gate, TunnelGuard};
use crate::idle::Activity;
use crate::spdy::session::PortConnector;
use crate::stats::{Counters, Open};

/// Subprotocols served, in order of preference.
pub(crate) const PROTOCOLS: [&str; 2] = ["v4.channel.k8s.io", "channel.k8s.io"];

/// Bytes read from a pod connection per frame.
const CHUNK: usize = 64 * 1024;

/// Parses `ports=80,81` and `ports=80&ports=81`, as the API server takes them.
#[cfg(test)]
pub(crate) fn parse_ports(query: &str) -> Result<Vec<u16>, String> {
    parse_ports_named(query, "ports")
}

/// Parses the ports of a query parameter named `key` (`ports` for the API server, `port`
/// for kubelet, which the API server sends one `port=N` per port).
pub(crate) fn parse_ports_named(query: &str, key: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in form_pairs(query) {
        if k != key {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => {
                    return Err(format!(
                        "invalid port `{p}`: ports must be numbers from 1 to 65535"
                    ));
                }
            }
        }
    }
    if ports.is_empty() {
        return Err(format!("at least one port must be given with ?{key}="));
    }
    if ports.len() > 127 {
        return Err("at most 127 ports can be forwarded over one connection".into());
    }
    Ok(ports)
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

/// One accepted portforward request.
pub(crate) struct Session<C> {
    /// Reaches the pod's ports.
    pub connector: Arc<C>,
    pub namespace: String,
    pub pod: String,
    pub ports: Vec<u16>,
    /// Cancelled when the pod goes away: the WebSocket is closed.
    pub end: CancellationToken,
    /// Cancelled to cut the session at once (the drop-tunnels fault).
    pub drop_all: CancellationToken,
    /// Counts the session as an open tunnel while it runs.
    pub guard: Option<TunnelGuard>,
    /// While it is frozen, the session neither reads nor writes.
    pub gate: Gate,
    /// Counts the session as open while it runs.
    pub open: Option<Open>,
    /// Kubelet's streaming idle timeout: no data message either way for this long closes
    /// the WebSocket (WebSocket pings do not count: the API server answers them).
    pub idle: Option<std::time::Duration>,
    /// Counts a close for idleness.
    pub stats: Option<Arc<Counters>>,
}

/// What the writer task sends to the client.
enum Out {
    Frame(Bytes),
    /// One port's pod connection has ended (or never started).
    PortDone,
    /// Close the WebSocket now.
    Close,
}

fn frame(channel: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + payload.len());
    b.put_u8(channel);
    b.put_slice(payload);
    b.freeze()
}

impl<C: PortConnector> Session<C> {
    pub(crate) async fn run(self, socket: WebSocket) {
        let span = debug_span!("tunnel", pod.namespace = %self.namespace, pod.name = %self.pod, ports = ?self.ports);
        self.serve(socket).instrument(span).await;
    }

    async fn serve(mut self, socket: WebSocket) {
        let _open = (self.guard.take(), self.open.take());
        let mut gate = self.gate.clone();
        let (mut sink, mut stream) = socket.split();
        for (i, port) in self.ports.iter().enumerate() {
            let ch = (2 * i) as u8;
            let prefix = port.to_le_bytes();
            for c in [ch, ch + 1] {
                if sink.send(Message::Binary(frame(c, &prefix))).await.is_err() {
                    return;
                }
            }
        }
        let (out_tx, out_rx) = mpsc::channel::<Out>(16);
        let mut tasks = JoinSet::new();
        let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::with_capacity(self.ports.len());
        let pod_gone = self.end.clone();
        for (i, &port) in self.ports.iter().enumerate() {
            let ch = (2 * i) as u8;
            match self.connector.connect(port).await {
                Ok(sock) => {
                    let (r, w) = sock.into_split();
                    writers.push(Some(w));
                    tasks.spawn(read_pod(ch, r, out_tx.clone()).in_current_span());
                }
                Err(message) => {
                    debug!(pod.port = port, %message, "pod port unreachable");
                    writers.push(None);
                    let _ = out_tx
                        .send(Out::Frame(frame(ch + 1, message.as_bytes())))
                        .await;
                    let _ = out_tx.send(Out::PortDone).await;
                }
            }
        }
        let ports = self.ports.len();
        let mut writer_gate = self.gate.clone();
        let activity = Activity::default();
        let writer_activity = activity.clone();
        let idle = activity.idle_for(self.idle);
        tokio::pin!(idle);
        let mut writer = tokio::spawn(
            async move {
                let mut out_rx = out_rx;
                let mut done = 0;
                loop {
                    if !writer_gate.thaw().await {
                        return;
                    }
                    let out = tokio::select! {
                        biased;
                        () = writer_gate.frozen() => continue,
                        out = out_rx.recv() => out,
                    };
                    let Some(out) = out else { break };
                    match out {
                        Out::Frame(b) => {
                            if sink.send(Message::Binary(b)).await.is_err() {
                                return;
                            }
                            writer_activity.saw();
                        }
                        Out::PortDone => {
                            done += 1;
                            if done == ports {
                                break;
                            }
                        }
                        Out::Close => break,
                    }
                }
                let _ = sink.send(Message::Close(None)).await;
                let _ = sink.close().await;
            }
            .in_current_span(),
        );
        let mut finished_writer = false;
        loop {
            tokio::select! {
                biased;
                () = self.drop_all.cancelled() => {
                    debug!("tunnel dropped by fault injection");
                    writer.abort();
                    return;
                }
                () = gate.frozen() => {
                    debug!("tunnel frozen by fault injection");
                    let thawed = tokio::select! {
                        () = self.drop_all.cancelled() => false,
                        thawed = gate.thaw() => thawed,
                    };
                    if !thawed {
                        debug!("frozen tunnel cut");
                        writer.abort();
                        return;
                    }
                    debug!("tunnel thawed");
                }
                () = pod_gone.cancelled() => {
                    debug!("pod went away; closing the tunnel");
                    let _ = out_tx.send(Out::Close).await;
                    break;
                }
                quiet = &mut idle => {
                    debug!(?quiet, "no data either way for the streaming idle timeout; closing the tunnel");
                    if let Some(stats) = &self.stats {
                        stats.idle_closed();
                    }
                    let _ = out_tx.send(Out::Close).await;
                    break;
                }
                _ = &mut writer => {
                    finished_writer = true;
                    break;
                }
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(data))) if data.len() > 1 => {
                        activity.saw();
                        let ch = data[0] as usize;
                        if ch.is_multiple_of(2)
                            && let Some(Some(w)) = writers.get_mut(ch / 2)
                                && let Err(e) = w.write_all(&data[1..]).await {
                                    debug!(error = %e, "writing to the pod failed");
                                    writers[ch / 2] = None;
                                }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        let _ = out_tx.send(Out::Close).await;
                        break;
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "client connection failed");
                        writer.abort();
                        break;
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
        for w in writers.iter_mut().flatten() {
            let _ = w.shutdown().await;
        }
        tasks.abort_all();
        drop(out_tx);
        if !finished_writer {
            // Let the writer flush its close frame, but never wait long.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
        }
    }
}

/// Connects to a pod's port the way kubelet does, or explains why it could not, in
/// kubelet's words.
pub(crate) async fn connect_pod(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<TcpStream, String> {
    let (target, _) = cluster
        .port_target(namespace, pod, port)
        .map_err(|e| format!("error forwarding port {port} to pod {pod}: {e}"))?;
    dial(&target, namespace, pod, port).await
}

/// Connects to `target` (one port of `namespace/pod`), with kubelet's wording of failures.
pub(crate) async fn dial(
    target: &PortTarget,
    namespace: &str,
    pod: &str,
    port: u16,
) -> Result<TcpStream, String> {
    let uid = &target.pod_uid;
    if !target.running {
        return Err(format!(
            "error forwarding port {port} to pod {uid}, uid : container not running in pod {namespace}/{pod}"
        ));
    }
    let refused = || {
        format!(
            "error forwarding port {port} to pod {uid}, uid : failed to execute portforward in network namespace \"/var/run/netns/cni-{uid}\": failed to connect to localhost:{port} inside namespace \"{uid}\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
        )
    };
    let Some(addr) = target.addr else {
        return Err(refused());
    };
    match TcpStream::connect(addr).await {
        Ok(sock) => {
            let _ = sock.set_nodelay(true);
            Ok(sock)
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(refused()),
        Err(e) => Err(format!(
            "error forwarding port {port} to pod {uid}, uid : failed to connect to localhost:{port}: {e}"
        )),
    }
}

async fn read_pod(ch: u8, mut r: OwnedReadHalf, tx: mpsc::Sender<Out>) {
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK + 1);
        buf.put_u8(ch);
        match r.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {
                if tx.send(Out::Frame(buf.freeze())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                debug!(error = %e, "reading from the pod failed");
                break;
            }
        }
    }
    let _ = tx.send(Out::PortDone).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_in_both_spellings() {
        assert_eq!(parse_ports("ports=80%2C1234"), Ok(vec![80, 1234]));
        assert_eq!(parse_ports("ports=80&ports=81"), Ok(vec![80, 81]));
        assert!(parse_ports("ports=0").is_err());
        assert!(parse_ports("ports=http").is_err());
        assert!(parse_ports("").is_err());
    }
}
