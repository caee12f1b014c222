//! Who holds a local port: the process the system says listens on it, for messages that
//! say what to stop instead of only "in use".

use std::time::Duration;

/// The process listening on TCP `port` on this machine, as `name (pid N)`, where the system
/// tells (Linux: /proc; macOS and Windows: their socket tables). `None` when it does not:
/// another user's process, a system without support, no listener.
pub fn holder(port: u16) -> Option<String> {
    if port == 0 {
        return None;
    }
    listeners::get_process_by_port(port, listeners::Protocol::TCP)
        .ok()
        .map(|p| format!("{} (pid {})", p.name, p.pid))
}

/// [`holder`] off the async threads (it reads the system's socket and process tables),
/// giving up after 2 s.
pub async fn holder_async(port: u16) -> Option<String> {
    let lookup = tokio::task::spawn_blocking(move || holder(port));
    match tokio::time::timeout(Duration::from_secs(2), lookup).await {
        Ok(Ok(found)) => found,
        _ => None,
    }
}

/// Whether TCP `port` on `bind` can be listened on now.
pub fn is_free(bind: std::net::IpAddr, port: u16) -> bool {
    std::net::TcpListener::bind(std::net::SocketAddr::new(bind, port)).is_ok()
}

/// Lets the process open as many files as the system allows it: the soft limit of open
/// files raised to the hard one (Unix; a shell's default soft limit of 1,024 would run out
/// near a thousand simultaneous connections, each a local socket). Returns the limit now
/// in force, or `None` where there is none to raise.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::debug!(error = %e, "the open files limit could not be raised");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
        ignore = "the system does not say who listens"
    )]
    fn a_port_this_process_listens_on_is_held_by_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let found = holder(port).expect("a holder");
        assert!(
            found.ends_with(&format!("(pid {})", std::process::id())),
            "{found}"
        );
        drop(listener);
        assert_eq!(holder(port), None);
    }
}
