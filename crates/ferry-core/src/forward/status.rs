//! What a forward shows, as a pure function of its inputs.
//!
//! Each input has one writer: the resolver writes [`Resolution`], the bind and accept
//! loop [`Listener`], the health monitor [`Health`], the manager [`Alias`]; connections
//! count [`Traffic`]. [`compose`] turns them, with what was shown before ([`Shown`]),
//! into the [`ForwardStatus`] the manager publishes. It reads no clock and takes no lock,
//! so every rule of what is shown is tested here, row by row.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Forward, PortRef, ProbeKind};
use crate::events::{ForwardState, ForwardStatus, IdleClosed};
use crate::health::{HealthState, Transition};

/// What cluster access found. Written by the resolver only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// `Starting` until the first resolution, then `Active`, `Reconnecting` or `Error`.
    pub state: ForwardState,
    /// Why the target cannot be reached now.
    pub error: Option<String>,
    /// The pod new connections go to.
    pub pod: Option<String>,
    /// The kubeconfig context in use, once known.
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// The credential plugin the context runs, and where it was found.
    pub credential_plugin: Option<String>,
}

impl Default for Resolution {
    fn default() -> Self {
        Self {
            state: ForwardState::Starting,
            error: None,
            pod: None,
            context: None,
            namespace: None,
            credential_plugin: None,
        }
    }
}

/// The local socket. Written by the bind and accept loop only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Listener {
    /// The bound address (with the real port when the config says 0).
    pub local: Option<SocketAddr>,
    /// Why the local address cannot be bound; overrides everything else.
    pub bind_error: Option<String>,
    /// The address is taken by another socket.
    pub port_in_use: bool,
}

/// The health checks' findings. Written by the health monitor only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    /// Whether health decides between active and degraded (false for `kind: none`).
    pub checked: bool,
    pub state: HealthState,
    /// The last probe's latency.
    pub latency_ms: Option<u64>,
    /// The last probe's finding.
    pub detail: Option<String>,
    /// When the last probe's finding was last published (ms since the epoch).
    pub last_probe_ms: Option<u64>,
    /// Health transitions, oldest first.
    pub history: Vec<Transition>,
    /// Why what the checks found is in doubt until the next passing probe (the machine
    /// woke, the network changed): the forward shows `reconnecting` meanwhile.
    pub doubt: Option<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            checked: false,
            state: HealthState::Unknown,
            latency_ms: None,
            detail: None,
            last_probe_ms: None,
            history: Vec::new(),
            doubt: None,
        }
    }
}

/// How the forward is named and reached. Written by the manager only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alias {
    /// The alias, without `.local`.
    pub alias: Option<String>,
    /// The scheme of the forward's URL (see [`url_scheme`]).
    pub scheme: &'static str,
    /// Whether the forward listens beyond this machine.
    pub exposed: bool,
    /// Why the alias is not published.
    pub warning: Option<String>,
}

impl Alias {
    /// What `spec` says, with no warning.
    pub(crate) fn of(spec: &Forward) -> Self {
        Self {
            alias: spec.alias.clone(),
            scheme: url_scheme(&spec.port, spec.health.kind),
            exposed: !spec.bind.is_loopback(),
            warning: None,
        }
    }
}

/// The traffic counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Traffic {
    pub connections: u64,
    pub total_connections: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub idle_closed: Option<IdleClosed>,
}

/// What was shown before: the state and since when, and the most recent problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    pub state: ForwardState,
    /// When `state` was entered (ms since the epoch).
    pub since_ms: u64,
    /// The most recent problem: the last error shown, or a later note (a tunnel that
    /// failed, a watchdog restart).
    pub last_error: Option<String>,
}

impl Shown {
    /// What `status` shows, to compose the next status from.
    pub(crate) fn of(status: &ForwardStatus) -> Self {
        Self {
            state: status.state,
            since_ms: status.since_ms,
            last_error: status.last_error.clone(),
        }
    }
}

/// Everything a status is composed from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    pub name: &'a str,
    /// The target label (`service/echo:80`).
    pub target: &'a str,
    pub resolution: &'a Resolution,
    pub listener: &'a Listener,
    pub health: &'a Health,
    pub alias: &'a Alias,
    pub traffic: Traffic,
}

/// The status shown for `inputs`, given what was shown `before`, at `now_ms`.
///
/// - A bind error overrides everything: the state is `error`, the bind error is the
///   error, and since nothing listens, health shows `unknown` with no latency.
/// - Otherwise the state is the resolution's, except that an `active` forward whose
///   checks say `down` is `degraded`; the error is the resolution's.
/// - `since_ms` moves to `now_ms` when the state differs from the one shown before.
/// - `last_error` is the error shown now, else the most recent problem before.
/// - The URL is built from the bound address once there is one, with the alias as host
///   when there is one.
pub(crate) fn compose(inputs: &Inputs<'_>, before: &Shown, now_ms: u64) -> ForwardStatus {
    let Inputs {
        name,
        target,
        resolution,
        listener,
        health,
        alias,
        traffic,
    } = *inputs;
    let (state, error, health_state, latency_ms) = match &listener.bind_error {
        Some(e) => (
            ForwardState::Error,
            Some(e.clone()),
            HealthState::Unknown,
            None,
        ),
        None => match (&health.doubt, resolution.state) {
            // Never `active` on a path not proven since the machine woke or the network
            // changed: `reconnecting`, saying why, until a probe passes.
            (Some(why), ForwardState::Active) if health.checked => (
                ForwardState::Reconnecting,
                Some(format!("{why}; checking that the forward works")),
                health.state,
                health.latency_ms,
            ),
            _ => (
                shown_state(resolution.state, health.checked, health.state),
                resolution.error.clone(),
                health.state,
                health.latency_ms,
            ),
        },
    };
    let since_ms = if state == before.state {
        before.since_ms
    } else {
        now_ms
    };
    let last_error = error.clone().or_else(|| before.last_error.clone());
    let url = listener
        .local
        .map(|local| url(alias.scheme, alias.alias.as_deref(), local));
    ForwardStatus {
        forward: name.to_string(),
        state,
        target: target.to_string(),
        context: resolution.context.clone(),
        namespace: resolution.namespace.clone(),
        pod: resolution.pod.clone(),
        local: listener.local,
        error,
        last_error,
        connections: traffic.connections,
        total_connections: traffic.total_connections,
        bytes_out: traffic.bytes_out,
        bytes_in: traffic.bytes_in,
        since_ms,
        health: health_state,
        latency_ms,
        detail: health.detail.clone(),
        last_probe_ms: health.last_probe_ms,
        history: health.history.clone(),
        credential_plugin: resolution.credential_plugin.clone(),
        url,
        alias: alias.alias.as_ref().map(|a| format!("{a}.local")),
        alias_warning: alias.warning.clone(),
        exposed: alias.exposed,
        port_in_use: listener.port_in_use,
        idle_closed: traffic.idle_closed,
    }
}

/// The state shown while the local address is bound: cluster access first, then health.
/// A forward that listens and has a ready pod is `active` at once (health `unknown` until
/// the first verdict: traffic already flows), `degraded` while Down.
fn shown_state(resolution: ForwardState, checked: bool, health: HealthState) -> ForwardState {
    match (resolution, checked, health) {
        (ForwardState::Active, true, HealthState::Down) => ForwardState::Degraded,
        (other, _, _) => other,
    }
}

/// The scheme of a forward's URL, guessed from the port (name or number) and the health
/// check.
pub(crate) fn url_scheme(port: &PortRef, kind: ProbeKind) -> &'static str {
    let (name, number) = match port {
        PortRef::Name(n) => (n.as_str(), 0),
        PortRef::Number(n) => ("", *n),
    };
    if name.contains("https") || matches!(number, 443 | 8443) {
        "https"
    } else if kind == ProbeKind::Http
        || name.contains("http")
        || name == "web"
        || matches!(number, 80 | 3000 | 5000 | 8000 | 8080 | 8081 | 9090)
    {
        "http"
    } else {
        "tcp"
    }
}

/// The forward's address as a URL: the host from the alias or the bound address.
fn url(scheme: &str, alias: Option<&str>, local: SocketAddr) -> String {
    let host = match alias {
        Some(a) => format!("{a}.local"),
        None if local.ip().is_unspecified() => "localhost".into(),
        None => match local.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        },
    };
    format!("{scheme}://{host}:{}", local.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForwardState::{Active, Degraded, Error, Reconnecting, Starting};
    use HealthState as H;

    const BIND_ERROR: &str = "127.0.0.1:8080 is already in use";
    const LATENCY: Option<u64> = Some(7);

    /// The error cluster access reports in each resolution state.
    fn resolution_error(state: ForwardState) -> Option<String> {
        match state {
            Reconnecting => Some("no ready pod".into()),
            Error => Some("forbidden".into()),
            _ => None,
        }
    }

    fn inputs_for(
        state: ForwardState,
        bind_error: bool,
        checked: bool,
        health: HealthState,
    ) -> (Resolution, Listener, Health, Alias) {
        let resolution = Resolution {
            state,
            error: resolution_error(state),
            pod: (state == Active).then(|| "echo-0".into()),
            context: Some("kind".into()),
            namespace: Some("default".into()),
            credential_plugin: None,
        };
        let listener = Listener {
            local: (!bind_error).then(|| "127.0.0.1:8080".parse().unwrap()),
            bind_error: bind_error.then(|| BIND_ERROR.into()),
            port_in_use: bind_error,
        };
        let health = Health {
            checked,
            state: health,
            latency_ms: LATENCY,
            detail: Some("tunnel opened".into()),
            last_probe_ms: Some(1_000),
            history: Vec::new(),
            doubt: None,
        };
        let alias = Alias {
            alias: None,
            scheme: "http",
            exposed: false,
            warning: None,
        };
        (resolution, listener, health, alias)
    }

    fn compose_row(
        state: ForwardState,
        bind_error: bool,
        checked: bool,
        health: HealthState,
        before: &Shown,
    ) -> ForwardStatus {
        compose_parts(&inputs_for(state, bind_error, checked, health), before)
    }

    /// [`compose`] of a forward named `echo` with these inputs and no traffic.
    fn compose_parts(
        (resolution, listener, health, alias): &(Resolution, Listener, Health, Alias),
        before: &Shown,
    ) -> ForwardStatus {
        let inputs = Inputs {
            name: "echo",
            target: "service/echo:80",
            resolution,
            listener,
            health,
            alias,
            traffic: Traffic::default(),
        };
        compose(&inputs, before, 2_000)
    }

    /// Resolution, bind error, checked, health ⇒ state, health shown.
    type StateRow = (
        ForwardState,
        bool,
        bool,
        HealthState,
        ForwardState,
        HealthState,
    );
    /// Before: state, last error; now: resolution, bind error, health ⇒ state, since,
    /// last error.
    type HistoryRow = (
        ForwardState,
        Option<&'static str>,
        ForwardState,
        bool,
        HealthState,
        ForwardState,
        u64,
        Option<&'static str>,
    );
    /// Alias, scheme, local address ⇒ alias shown, URL.
    type UrlRow = (
        Option<&'static str>,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    const NO_BIND: bool = false;
    const BIND: bool = true;
    const UNCHECKED: bool = false;
    const CHECKED: bool = true;

    /// Resolution × bind error × checked × health ⇒ the state and health shown. The
    /// error shown is the bind error when there is one, else the resolution's; the
    /// latency is hidden with a bind error.
    #[rustfmt::skip]
    const STATES: &[StateRow] = &[
        // resolution, bind, checked, health => state, health shown
        (Starting, NO_BIND, UNCHECKED, H::Unknown, Starting, H::Unknown),
        (Starting, NO_BIND, UNCHECKED, H::Up, Starting, H::Up),
        (Starting, NO_BIND, UNCHECKED, H::Down, Starting, H::Down),
        (Starting, NO_BIND, UNCHECKED, H::Paused, Starting, H::Paused),
        (Starting, NO_BIND, UNCHECKED, H::Disabled, Starting, H::Disabled),
        (Starting, NO_BIND, CHECKED, H::Unknown, Starting, H::Unknown),
        (Starting, NO_BIND, CHECKED, H::Up, Starting, H::Up),
        (Starting, NO_BIND, CHECKED, H::Down, Starting, H::Down),
        (Starting, NO_BIND, CHECKED, H::Paused, Starting, H::Paused),
        (Starting, NO_BIND, CHECKED, H::Disabled, Starting, H::Disabled),
        (Starting, BIND, UNCHECKED, H::Unknown, Error, H::Unknown),
        (Starting, BIND, UNCHECKED, H::Up, Error, H::Unknown),
        (Starting, BIND, UNCHECKED, H::Down, Error, H::Unknown),
        (Starting, BIND, UNCHECKED, H::Paused, Error, H::Unknown),
        (Starting, BIND, UNCHECKED, H::Disabled, Error, H::Unknown),
        (Starting, BIND, CHECKED, H::Unknown, Error, H::Unknown),
        (Starting, BIND, CHECKED, H::Up, Error, H::Unknown),
        (Starting, BIND, CHECKED, H::Down, Error, H::Unknown),
        (Starting, BIND, CHECKED, H::Paused, Error, H::Unknown),
        (Starting, BIND, CHECKED, H::Disabled, Error, H::Unknown),
        (Active, NO_BIND, UNCHECKED, H::Unknown, Active, H::Unknown),
        (Active, NO_BIND, UNCHECKED, H::Up, Active, H::Up),
        (Active, NO_BIND, UNCHECKED, H::Down, Active, H::Down),
        (Active, NO_BIND, UNCHECKED, H::Paused, Active, H::Paused),
        (Active, NO_BIND, UNCHECKED, H::Disabled, Active, H::Disabled),
        (Active, NO_BIND, CHECKED, H::Unknown, Active, H::Unknown),
        (Active, NO_BIND, CHECKED, H::Up, Active, H::Up),
        (Active, NO_BIND, CHECKED, H::Down, Degraded, H::Down),
        (Active, NO_BIND, CHECKED, H::Paused, Active, H::Paused),
        (Active, NO_BIND, CHECKED, H::Disabled, Active, H::Disabled),
        (Active, BIND, UNCHECKED, H::Unknown, Error, H::Unknown),
        (Active, BIND, UNCHECKED, H::Up, Error, H::Unknown),
        (Active, BIND, UNCHECKED, H::Down, Error, H::Unknown),
        (Active, BIND, UNCHECKED, H::Paused, Error, H::Unknown),
        (Active, BIND, UNCHECKED, H::Disabled, Error, H::Unknown),
        (Active, BIND, CHECKED, H::Unknown, Error, H::Unknown),
        (Active, BIND, CHECKED, H::Up, Error, H::Unknown),
        (Active, BIND, CHECKED, H::Down, Error, H::Unknown),
        (Active, BIND, CHECKED, H::Paused, Error, H::Unknown),
        (Active, BIND, CHECKED, H::Disabled, Error, H::Unknown),
        (Reconnecting, NO_BIND, UNCHECKED, H::Unknown, Reconnecting, H::Unknown),
        (Reconnecting, NO_BIND, UNCHECKED, H::Up, Reconnecting, H::Up),
        (Reconnecting, NO_BIND, UNCHECKED, H::Down, Reconnecting, H::Down),
        (Reconnecting, NO_BIND, UNCHECKED, H::Paused, Reconnecting, H::Paused),
        (Reconnecting, NO_BIND, UNCHECKED, H::Disabled, Reconnecting, H::Disabled),
        (Reconnecting, NO_BIND, CHECKED, H::Unknown, Reconnecting, H::Unknown),
        (Reconnecting, NO_BIND, CHECKED, H::Up, Reconnecting, H::Up),
        (Reconnecting, NO_BIND, CHECKED, H::Down, Reconnecting, H::Down),
        (Reconnecting, NO_BIND, CHECKED, H::Paused, Reconnecting, H::Paused),
        (Reconnecting, NO_BIND, CHECKED, H::Disabled, Reconnecting, H::Disabled),
        (Reconnecting, BIND, UNCHECKED, H::Unknown, Error, H::Unknown),
        (Reconnecting, BIND, UNCHECKED, H::Up, Error, H::Unknown),
        (Reconnecting, BIND, UNCHECKED, H::Down, Error, H::Unknown),
        (Reconnecting, BIND, UNCHECKED, H::Paused, Error, H::Unknown),
        (Reconnecting, BIND, UNCHECKED, H::Disabled, Error, H::Unknown),
        (Reconnecting, BIND, CHECKED, H::Unknown, Error, H::Unknown),
        (Reconnecting, BIND, CHECKED, H::Up, Error, H::Unknown),
        (Reconnecting, BIND, CHECKED, H::Down, Error, H::Unknown),
        (Reconnecting, BIND, CHECKED, H::Paused, Error, H::Unknown),
        (Reconnecting, BIND, CHECKED, H::Disabled, Error, H::Unknown),
        (Error, NO_BIND, UNCHECKED, H::Unknown, Error, H::Unknown),
        (Error, NO_BIND, UNCHECKED, H::Up, Error, H::Up),
        (Error, NO_BIND, UNCHECKED, H::Down, Error, H::Down),
        (Error, NO_BIND, UNCHECKED, H::Paused, Error, H::Paused),
        (Error, NO_BIND, UNCHECKED, H::Disabled, Error, H::Disabled),
        (Error, NO_BIND, CHECKED, H::Unknown, Error, H::Unknown),
        (Error, NO_BIND, CHECKED, H::Up, Error, H::Up),
        (Error, NO_BIND, CHECKED, H::Down, Error, H::Down),
        (Error, NO_BIND, CHECKED, H::Paused, Error, H::Paused),
        (Error, NO_BIND, CHECKED, H::Disabled, Error, H::Disabled),
        (Error, BIND, UNCHECKED, H::Unknown, Error, H::Unknown),
        (Error, BIND, UNCHECKED, H::Up, Error, H::Unknown),
        (Error, BIND, UNCHECKED, H::Down, Error, H::Unknown),
        (Error, BIND, UNCHECKED, H::Paused, Error, H::Unknown),
        (Error, BIND, UNCHECKED, H::Disabled, Error, H::Unknown),
        (Error, BIND, CHECKED, H::Unknown, Error, H::Unknown),
        (Error, BIND, CHECKED, H::Up, Error, H::Unknown),
        (Error, BIND, CHECKED, H::Down, Error, H::Unknown),
        (Error, BIND, CHECKED, H::Paused, Error, H::Unknown),
        (Error, BIND, CHECKED, H::Disabled, Error, H::Unknown),
    ];

    #[test]
    fn the_state_and_health_shown_follow_the_table() {
        let before = Shown {
            state: Starting,
            since_ms: 1,
            last_error: None,
        };
        for &(resolution, bind, checked, health, state, shown_health) in STATES {
            let row = format!("{resolution:?}, bind error {bind}, checked {checked}, {health:?}");
            let s = compose_row(resolution, bind, checked, health, &before);
            assert_eq!(s.state, state, "state for {row}");
            assert_eq!(s.health, shown_health, "health for {row}");
            let (error, latency) = if bind {
                (Some(BIND_ERROR.to_string()), None)
            } else {
                (resolution_error(resolution), LATENCY)
            };
            assert_eq!(s.error, error, "error for {row}");
            assert_eq!(s.latency_ms, latency, "latency for {row}");
            assert_eq!(s.last_error, error, "last error for {row}");
            assert_eq!(s.port_in_use, bind, "port in use for {row}");
            // What health does not override is shown as it is.
            assert_eq!(s.detail.as_deref(), Some("tunnel opened"), "{row}");
            assert_eq!(s.last_probe_ms, Some(1_000), "{row}");
            assert_eq!(s.pod, resolution_pod(resolution), "{row}");
        }
    }

    fn resolution_pod(state: ForwardState) -> Option<String> {
        (state == Active).then(|| "echo-0".into())
    }

    #[test]
    fn the_state_table_covers_every_combination_once() {
        let resolutions = [Starting, Active, Reconnecting, Error];
        let healths = [H::Unknown, H::Up, H::Down, H::Paused, H::Disabled];
        let mut expected = Vec::new();
        for r in resolutions {
            for bind in [NO_BIND, BIND] {
                for checked in [UNCHECKED, CHECKED] {
                    for h in healths {
                        expected.push((r, bind, checked, h));
                    }
                }
            }
        }
        let rows: Vec<_> = STATES.iter().map(|r| (r.0, r.1, r.2, r.3)).collect();
        assert_eq!(rows, expected);
    }

    /// What was shown before, and the resolution, bind error and health now ⇒ the state,
    /// `since_ms` and `last_error` shown (composed at 2000 ms).
    #[rustfmt::skip]
    const HISTORY: &[HistoryRow] = &[
        // before: state, last error; now: resolution, bind, health => state, since, last error
        // The same state keeps its time; a new one starts now.
        (Starting, None, Starting, NO_BIND, H::Unknown, Starting, 1, None),
        (Starting, None, Active, NO_BIND, H::Unknown, Active, 2_000, None),
        (Active, None, Active, NO_BIND, H::Up, Active, 1, None),
        (Active, None, Active, NO_BIND, H::Down, Degraded, 2_000, None),
        (Degraded, None, Active, NO_BIND, H::Down, Degraded, 1, None),
        (Degraded, None, Active, NO_BIND, H::Up, Active, 2_000, None),
        (Active, None, Reconnecting, NO_BIND, H::Up, Reconnecting, 2_000, Some("no ready pod")),
        (Reconnecting, None, Reconnecting, NO_BIND, H::Up, Reconnecting, 1, Some("no ready pod")),
        (Active, None, Active, BIND, H::Up, Error, 2_000, Some(BIND_ERROR)),
        (Error, None, Active, BIND, H::Up, Error, 1, Some(BIND_ERROR)),
        (Error, None, Error, NO_BIND, H::Unknown, Error, 1, Some("forbidden")),
        // The most recent problem is kept after recovery, and replaced by a new error.
        (Reconnecting, Some("no ready pod"), Active, NO_BIND, H::Up, Active, 2_000, Some("no ready pod")),
        (Active, Some("tunnel refused"), Active, NO_BIND, H::Up, Active, 1, Some("tunnel refused")),
        (Active, Some("tunnel refused"), Error, NO_BIND, H::Up, Error, 2_000, Some("forbidden")),
        (Active, Some("tunnel refused"), Reconnecting, BIND, H::Up, Error, 2_000, Some(BIND_ERROR)),
        (Error, Some(BIND_ERROR), Active, NO_BIND, H::Up, Active, 2_000, Some(BIND_ERROR)),
        // A Down verdict alone is no problem to remember.
        (Active, None, Active, NO_BIND, H::Down, Degraded, 2_000, None),
    ];

    #[test]
    fn since_and_last_error_follow_the_table() {
        for &(before_state, before_error, resolution, bind, health, state, since, last) in HISTORY {
            let before = Shown {
                state: before_state,
                since_ms: 1,
                last_error: before_error.map(str::to_string),
            };
            let row = format!(
                "before {before_state:?} ({before_error:?}), now {resolution:?}, bind error {bind}, {health:?}"
            );
            let s = compose_row(resolution, bind, CHECKED, health, &before);
            assert_eq!(s.state, state, "state for {row}");
            assert_eq!(s.since_ms, since, "since for {row}");
            assert_eq!(s.last_error.as_deref(), last, "last error for {row}");
            let again = compose_row(resolution, bind, CHECKED, health, &Shown::of(&s));
            assert_eq!(again, s, "composing again changes nothing for {row}");
        }
    }

    /// Alias, scheme and bound address ⇒ the alias and URL shown.
    #[rustfmt::skip]
    const URLS: &[UrlRow] = &[
        // alias, scheme, local => alias shown, url
        (None, "tcp", None, None, None),
        (Some("web"), "http", None, Some("web.local"), None),
        (None, "tcp", Some("127.0.0.1:5432"), None, Some("tcp://127.0.0.1:5432")),
        (None, "http", Some("0.0.0.0:8080"), None, Some("http://localhost:8080")),
        (None, "https", Some("[::]:8443"), None, Some("https://localhost:8443")),
        (None, "tcp", Some("[::1]:6379"), None, Some("tcp://[::1]:6379")),
        (None, "tcp", Some("192.168.1.20:5432"), None, Some("tcp://192.168.1.20:5432")),
        (Some("web"), "http", Some("127.0.0.1:8080"), Some("web.local"), Some("http://web.local:8080")),
        (Some("db"), "tcp", Some("0.0.0.0:5432"), Some("db.local"), Some("tcp://db.local:5432")),
    ];

    #[test]
    fn alias_and_url_follow_the_table() {
        for &(name, scheme, local, shown_alias, shown_url) in URLS {
            let resolution = Resolution::default();
            let listener = Listener {
                local: local.map(|l| l.parse().unwrap()),
                ..Listener::default()
            };
            let alias = Alias {
                alias: name.map(str::to_string),
                scheme,
                exposed: true,
                warning: Some("mDNS could not start".into()),
            };
            let inputs = Inputs {
                name: "web",
                target: "service/web:80",
                resolution: &resolution,
                listener: &listener,
                health: &Health::default(),
                alias: &alias,
                traffic: Traffic::default(),
            };
            let before = Shown {
                state: Starting,
                since_ms: 1,
                last_error: None,
            };
            let s = compose(&inputs, &before, 2_000);
            let row = format!("{name:?} {scheme} {local:?}");
            assert_eq!(s.alias.as_deref(), shown_alias, "alias for {row}");
            assert_eq!(s.url.as_deref(), shown_url, "url for {row}");
            assert!(s.exposed, "{row}");
            assert_eq!(s.alias_warning.as_deref(), Some("mDNS could not start"));
        }
    }

    /// Port and health check ⇒ the URL's scheme.
    #[rustfmt::skip]
    const SCHEMES: &[(&str, ProbeKind, &str)] = &[
        ("5432", ProbeKind::Tunnel, "tcp"),
        ("5432", ProbeKind::Http, "http"),
        ("443", ProbeKind::Tunnel, "https"),
        ("8443", ProbeKind::Http, "https"),
        ("80", ProbeKind::Tcp, "http"),
        ("3000", ProbeKind::None, "http"),
        ("8080", ProbeKind::Tunnel, "http"),
        ("9090", ProbeKind::Tunnel, "http"),
        ("https", ProbeKind::Tunnel, "https"),
        ("https-web", ProbeKind::Http, "https"),
        ("http-metrics", ProbeKind::Tunnel, "http"),
        ("web", ProbeKind::Tunnel, "http"),
        ("postgres", ProbeKind::Tunnel, "tcp"),
        ("postgres", ProbeKind::Http, "http"),
    ];

    #[test]
    fn the_url_scheme_follows_the_table() {
        for &(port, kind, scheme) in SCHEMES {
            let port = match port.parse() {
                Ok(n) => PortRef::Number(n),
                Err(_) => PortRef::Name(port.into()),
            };
            assert_eq!(url_scheme(&port, kind), scheme, "{port:?} {kind:?}");
        }
    }

    #[test]
    fn traffic_and_health_findings_are_shown_as_they_are() {
        let (resolution, listener, mut health, alias) = inputs_for(Active, NO_BIND, CHECKED, H::Up);
        health.history = vec![Transition {
            from: H::Unknown,
            to: H::Up,
            at_ms: 5,
            code: "ok".into(),
            detail: "tunnel opened".into(),
        }];
        let traffic = Traffic {
            connections: 2,
            total_connections: 9,
            bytes_in: 300,
            bytes_out: 40,
            idle_closed: Some(IdleClosed {
                count: 1,
                at_ms: 7,
                quiet_ms: 300_000,
            }),
        };
        let inputs = Inputs {
            name: "echo",
            target: "service/echo:80",
            resolution: &resolution,
            listener: &listener,
            health: &health,
            alias: &alias,
            traffic,
        };
        let before = Shown {
            state: Active,
            since_ms: 1,
            last_error: None,
        };
        let s = compose(&inputs, &before, 2_000);
        assert_eq!(
            (s.connections, s.total_connections, s.bytes_in, s.bytes_out),
            (2, 9, 300, 40)
        );
        assert_eq!(
            s.idle_closed.map(|i| (i.count, i.quiet_ms)),
            Some((1, 300_000))
        );
        assert_eq!(s.history, health.history);
        assert_eq!(s.forward, "echo");
        assert_eq!(s.target, "service/echo:80");
        assert_eq!(s.context.as_deref(), Some("kind"));
        assert_eq!(s.namespace.as_deref(), Some("default"));
        assert_eq!(s.local, listener.local);
    }

    /// A verdict in doubt (the machine woke, the network changed) shows an active, checked
    /// forward as reconnecting with the reason, whatever the last verdict; a forward without
    /// checks, one with a bind error and one already reconnecting keep their own.
    #[test]
    fn a_verdict_in_doubt_is_reconnecting_with_the_reason() {
        let before = Shown {
            state: Active,
            since_ms: 1,
            last_error: None,
        };
        for (state, bind_error, checked, want, error) in [
            (
                Active,
                false,
                true,
                Reconnecting,
                Some("the network changed"),
            ),
            (Active, false, false, Active, None),
            (Active, true, true, Error, Some(BIND_ERROR)),
            (
                Reconnecting,
                false,
                true,
                Reconnecting,
                Some("no ready pod"),
            ),
        ] {
            for h in [H::Unknown, H::Up, H::Down] {
                let mut parts = inputs_for(state, bind_error, checked, h);
                parts.2.doubt = Some("the network changed".into());
                let shown = compose_parts(&parts, &before);
                assert_eq!(shown.state, want, "{state:?} {bind_error} {checked} {h:?}");
                match error {
                    Some(e) => assert!(
                        shown.error.as_deref().is_some_and(|s| s.starts_with(e)),
                        "{state:?} {checked} {h:?}: {:?}",
                        shown.error
                    ),
                    None => assert_eq!(shown.error, None),
                }
            }
        }
    }
}
