//! Publishing `<alias>.local` names over mDNS (mdns-sd).
//!
//! One daemon per engine, started when the first alias appears (nothing is announced while
//! no forward has one) and kept across reloads. Each alias is registered as an instance of
//! `_ferry._tcp.local.` whose host is `<alias>.local.`, so the daemon answers address
//! queries for the name; unregistering sends goodbye records. A failure to publish is a
//! warning on that forward, never a failed forward.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{HostnameResolutionEvent, IfKind, ServiceDaemon, ServiceInfo};
use tracing::{debug, info, warn};

/// The DNS-SD service type Ferry's names are registered under.
pub const SERVICE_TYPE: &str = "_ferry._tcp.local.";

/// Which interfaces carry announcements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Interfaces {
    /// Every multicast-capable interface, loopback included.
    #[default]
    All,
    /// Only these interface names.
    Named(Vec<String>),
}

/// One published alias.
struct Published {
    alias: String,
    ip: IpAddr,
    port: u16,
    fullname: String,
}

/// The publisher. Not shared: the engine's manager owns it.
pub(crate) struct Publisher {
    interfaces: Interfaces,
    daemon: Option<ServiceDaemon>,
    /// By forward name.
    published: HashMap<String, Published>,
}

impl Publisher {
    pub(crate) fn new(interfaces: Interfaces) -> Self {
        Self {
            interfaces,
            daemon: None,
            published: HashMap::new(),
        }
    }

    fn daemon(&mut self) -> Result<&ServiceDaemon, String> {
        if self.daemon.is_none() {
            let daemon = ServiceDaemon::new().map_err(|e| format!("starting mDNS failed: {e}"))?;
            if let Interfaces::Named(names) = &self.interfaces {
                let _ = daemon.disable_interface(IfKind::All);
                for name in names {
                    let _ = daemon.enable_interface(IfKind::Name(name.clone()));
                }
            }
            info!(interfaces = ?self.interfaces, "mDNS publisher started");
            self.daemon = Some(daemon);
        }
        self.daemon
            .as_ref()
            .ok_or_else(|| "mDNS is not running".to_string())
    }

    /// Publishes `alias.local` → `ip` for `forward` (re-publishing when anything changed).
    /// Returns a warning when the name could not be published.
    pub(crate) fn publish(
        &mut self,
        forward: &str,
        alias: &str,
        ip: IpAddr,
        port: u16,
    ) -> Option<String> {
        if let Some(p) = self.published.get(forward)
            && p.alias == alias
            && p.ip == ip
            && p.port == port
        {
            return None;
        }
        self.withdraw(forward);
        // An alias another forward of ours still holds is handed over, not contested.
        let holders: Vec<String> = self
            .published
            .iter()
            .filter(|(_, p)| p.alias == alias)
            .map(|(k, _)| k.clone())
            .collect();
        for other in holders {
            self.withdraw(&other);
        }
        let host = format!("{alias}.local.");
        let daemon = match self.daemon() {
            Ok(d) => d,
            Err(e) => return Some(e),
        };
        // Someone else answering for the name already? Ask briefly before claiming it.
        if let Some(other) = answered_elsewhere(daemon, &host, ip) {
            return Some(format!(
                "{alias}.local is already answered by another host ({other}); not published"
            ));
        }
        // An unspecified bind (0.0.0.0, ::) is announced with the interfaces' own addresses.
        let info = if ip.is_unspecified() {
            ServiceInfo::new(
                SERVICE_TYPE,
                alias,
                &host,
                "",
                port,
                None::<HashMap<String, String>>,
            )
            .map(ServiceInfo::enable_addr_auto)
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                alias,
                &host,
                ip,
                port,
                None::<HashMap<String, String>>,
            )
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => return Some(format!("publishing {alias}.local failed: {e}")),
        };
        let fullname = info.get_fullname().to_string();
        match daemon.register(info) {
            Ok(()) => {
                debug!(forward.name = forward, %host, %ip, "alias published");
                self.published.insert(
                    forward.to_string(),
                    Published {
                        alias: alias.to_string(),
                        ip,
                        port,
                        fullname,
                    },
                );
                None
            }
            Err(e) => Some(format!("publishing {alias}.local failed: {e}")),
        }
    }

    /// Withdraws `forward`'s name (goodbye records), if it has one.
    pub(crate) fn withdraw(&mut self, forward: &str) {
        let Some(p) = self.published.remove(forward) else {
            return;
        };
        if let Some(daemon) = &self.daemon {
            match daemon.unregister(&p.fullname) {
                Ok(rx) => {
                    // Wait briefly so the goodbye is on the wire before we go on.
                    let _ = rx.recv_timeout(Duration::from_millis(500));
                }
                Err(e) => warn!(error = %e, alias = %p.alias, "withdrawing the alias failed"),
            }
            debug!(forward.name = forward, alias = %p.alias, "alias withdrawn");
        }
    }

    /// Withdraws everything and stops the daemon.
    pub(crate) fn shutdown(&mut self) {
        let names: Vec<String> = self.published.keys().cloned().collect();
        for name in names {
            self.withdraw(&name);
        }
        if let Some(daemon) = self.daemon.take()
            && let Ok(rx) = daemon.shutdown()
        {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the manager asks of the publisher thread.
pub(crate) enum MdnsCmd {
    /// Publish `alias.local` for `forward`; `report` receives the warning, if any.
    Publish {
        forward: String,
        alias: String,
        ip: IpAddr,
        port: u16,
        report: Box<dyn FnOnce(Option<String>) + Send>,
    },
    Withdraw {
        forward: String,
    },
}

/// The publisher runs on its own thread (mdns-sd is synchronous); the engine holds this
/// handle. Dropping it withdraws every name and stops the daemon.
pub(crate) struct MdnsHandle {
    /// Set when the engine stops: queued publications are skipped, only goodbyes go out.
    stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tx: Option<std::sync::mpsc::Sender<MdnsCmd>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MdnsHandle {
    pub(crate) fn start(interfaces: Interfaces) -> std::io::Result<Self> {
        // Unbounded but small: the manager sends one command per alias that changed, never
        // per probe or connection, and a bounded std channel would block the async manager.
        let (tx, rx) = std::sync::mpsc::channel::<MdnsCmd>();
        let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_flag = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("ferry-mdns".into())
            .spawn(move || {
                let mut publisher = Publisher::new(interfaces);
                while let Ok(cmd) = rx.recv() {
                    // Once the engine stops, queued publications are moot: only withdraw.
                    let stopping = stop_flag.load(std::sync::atomic::Ordering::Relaxed);
                    match cmd {
                        MdnsCmd::Publish { .. } if stopping => {}
                        MdnsCmd::Publish {
                            forward,
                            alias,
                            ip,
                            port,
                            report,
                        } => report(publisher.publish(&forward, &alias, ip, port)),
                        MdnsCmd::Withdraw { forward } => publisher.withdraw(&forward),
                    }
                }
                // The sender is gone: the engine stopped. Say goodbye for every name.
                publisher.shutdown();
                debug!("mDNS publisher stopped");
            })?;
        Ok(Self {
            stopping,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn send(&self, cmd: MdnsCmd) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(cmd);
        }
    }

    /// Withdraws every name and waits (on a blocking thread, at most 3 s) until the daemon
    /// stopped.
    pub(crate) async fn stop(mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let join = tokio::task::spawn_blocking(move || thread.join());
            if tokio::time::timeout(Duration::from_secs(3), join)
                .await
                .is_err()
            {
                warn!("the mDNS publisher did not stop within 3 s");
            }
        }
    }
}

impl Drop for MdnsHandle {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which withdraws every name.
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.tx.take();
    }
}

/// Whether another host answers for `host` with an address other than `ours`. Runs on the
/// mDNS thread, outside the runtime, waiting on a channel: the standard clock is the one.
#[allow(clippy::disallowed_methods)]
fn answered_elsewhere(daemon: &ServiceDaemon, host: &str, ours: IpAddr) -> Option<String> {
    // Responders wait up to 120 ms before answering, and a new daemon opens its sockets
    // lazily: give the question a second.
    let rx = daemon.resolve_hostname(host, Some(1000)).ok()?;
    let deadline = std::time::Instant::now() + Duration::from_millis(1100);
    let mut other = None;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(HostnameResolutionEvent::AddressesFound(_, addrs)) => {
                if let Some(a) = addrs.iter().map(|a| a.to_ip_addr()).find(|a| *a != ours) {
                    other = Some(a.to_string());
                    break;
                }
            }
            Ok(HostnameResolutionEvent::SearchTimeout(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = daemon.stop_resolve_hostname(host);
    other
}

/// Whether this machine resolves `.local` names for local programs (Linux needs nss-mdns
/// or systemd-resolved with mDNS). `None` when it cannot tell.
pub fn local_names_resolve() -> Option<bool> {
    if !cfg!(target_os = "linux") {
        return Some(true);
    }
    let text = std::fs::read_to_string("/etc/nsswitch.conf").ok()?;
    let hosts = text
        .lines()
        .find(|l| l.trim_start().starts_with("hosts:"))?;
    Some(hosts.contains("mdns") || hosts.contains("resolve"))
}
