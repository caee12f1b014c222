//! The listener: binds the local address (retrying while it cannot, saying why), then
//! accepts connections and hands each to a [`Connection`] task, beating for the
//! watchdog all along.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug_span, info, warn};

use super::Worker;
use super::connection::Connection;

impl Worker {
    /// Binds the local address (retrying while it is taken), then accepts.
    pub(super) async fn serve(&self, tracker: TaskTracker) {
        let addr = SocketAddr::new(self.spec.bind, self.spec.local_port);
        // Who holds the port, looked up on the first failure and every 30 s after.
        let mut holder: Option<String> = None;
        let mut failures = 0u32;
        let listener = loop {
            self.shared.beat();
            match listen(addr) {
                Ok(l) => break l,
                Err(e) => {
                    let in_use = e.kind() == io::ErrorKind::AddrInUse;
                    if in_use && failures.is_multiple_of(15) {
                        holder = crate::ports::holder_async(addr.port()).await;
                    }
                    failures += 1;
                    let msg = match (&holder, in_use) {
                        (Some(h), true) => format!(
                            "{addr} is already in use by {h}; stop it, or choose another local port"
                        ),
                        (None, true) => format!(
                            "{addr} is already in use by another program; choose another local port"
                        ),
                        _ => bind_error(addr, &e),
                    };
                    warn!(%msg, "cannot listen");
                    self.shared.set_listener(|l| {
                        l.bind_error = Some(msg);
                        l.port_in_use = in_use;
                    });
                    // Retry every 2 s, beating meanwhile so the watchdog sees a live loop.
                    for _ in 0..4 {
                        tokio::select! {
                            () = self.token.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(500)) => self.shared.beat(),
                        }
                    }
                }
            }
        };
        let local = listener.local_addr().unwrap_or(addr);
        info!(local.addr = %local, "listening");
        self.shared.set_listener(|l| {
            l.local = Some(local);
            l.bind_error = None;
            l.port_in_use = false;
        });
        self.accept_loop(listener, tracker).await;
    }

    async fn accept_loop(&self, listener: TcpListener, tracker: TaskTracker) {
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut heartbeat = tokio::time::interval(self.beat);
        loop {
            let accepted = tokio::select! {
                () = self.token.cancelled() => return,
                _ = heartbeat.tick() => {
                    if self.shared.frozen() {
                        // A stuck loop, for the watchdog's tests: no heartbeat, no accepts.
                        std::future::pending::<()>().await;
                    }
                    self.shared.beat();
                    continue;
                }
                a = listener.accept() => a,
            };
            match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    self.tunnels.touch();
                    let conn = Connection {
                        limits: *self.limits.borrow(),
                        spec: self.spec.clone(),
                        shared: self.shared.clone(),
                        targets: self.targets.subscribe(),
                        nudge: self.nudge.clone(),
                        sticky: self.sticky.clone(),
                        next_rr: self.next_rr.clone(),
                        tunnels: self.tunnels.clone(),
                        skip_pool: false,
                        token: self.token.child_token(),
                        inspect: self.shared.inspection().map(|i| i.connection()),
                    };
                    let id = self.shared.accepted();
                    let span = debug_span!(
                        "conn",
                        conn.id = id,
                        client.addr = %peer,
                        local.addr = %local,
                        pod.name = tracing::field::Empty,
                    );
                    tracker.spawn(conn.serve(sock).instrument(span));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// How many connections may wait to be accepted. The system's default (128 where tokio
/// asks for 1024 on some systems) drops SYNs of a burst of new connections, which clients
/// resend only after a second; kubectl's listeners ask for 4096.
const BACKLOG: u32 = 4096;

/// Binds `addr` as `TcpListener::bind` does (address reuse on Unix, so a restarted forward
/// gets its port back), with a deep accept queue.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => format!("{addr} is already in use"),
        io::ErrorKind::PermissionDenied => {
            format!("binding {addr} is not permitted (ports below 1024 need privileges)")
        }
        io::ErrorKind::AddrNotAvailable => format!(
            "{addr} is not an address of this machine (on macOS, loopback aliases like 127.0.0.2 must be added first: sudo ifconfig lo0 alias {})",
            addr.ip()
        ),
        _ => format!("binding {addr} failed: {e}"),
    }
}
