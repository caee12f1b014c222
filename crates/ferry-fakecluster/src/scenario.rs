//! Scenario files: the objects a fake cluster starts with.
//!
//! ```yaml
//! timing: {recreate_delay_ms: 300, ready_delay_ms: 500}
//! namespaces:
//!   - name: demo
//!     deployments:            # and `statefulsets:`, same shape
//!       - name: echo
//!         replicas: 2
//!         labels: {app: echo}
//!         ports: [{name: echo, port: 9000, behavior: echo}]
//!     pods:                   # bare pods, no owner
//!       - {name: solo, labels: {app: solo}, ports: [{port: 9000}]}
//!     services:               # workloads and services take `annotations: {k: v}` too
//!       - name: echo
//!         selector: {app: echo}
//!         ports: [{port: 80, target_port: echo}]   # number or container port name
//! users:                      # bearer tokens with limited rights (see `crate::rbac`)
//!   - name: dev
//!     token: dev-token
//!     groups: [developers]    # besides system:authenticated
//!     rules:
//!       - verbs: [get, list, watch]
//!         resources: [pods, services]
//!         api_groups: [""]    # default: any group
//!         namespaces: [demo]  # default: every namespace, and cluster-scoped resources
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The built-in scenario used when none is given.
pub const DEMO_YAML: &str = include_str!("../scenarios/demo.yaml");

/// Ferry forwards to the demo scenario's echo, web and db services, in Ferry's config
/// format, with a `demo` profile holding them (used by `ferry up --demo` and the app's
/// demo mode).
pub const DEMO_FORWARDS: &str = "\
version: 1
forwards:
  - {name: echo, context: ferry-fake, namespace: demo, target: service/echo, port: 80, local_port: 18080}
  - {name: web, context: ferry-fake, namespace: demo, target: service/web, port: 80, local_port: 18081}
  - {name: db, context: ferry-fake, namespace: demo, target: statefulset/db, port: pg, local_port: 15432}
profiles:
  - {name: demo, forwards: [echo, web, db]}
";

/// Why a scenario could not be loaded. Messages name the field path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    #[error("reading scenario {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario is not valid YAML for this format: {0}")]
    Parse(String),
    #[error("scenario field {path}: {message}")]
    Invalid { path: String, message: String },
}

pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// How fast the fake controllers act.
    #[serde(default)]
    pub timing: Timing,
    /// Namespaces and what they contain.
    #[serde(default)]
    pub namespaces: Vec<NamespaceSpec>,
    /// Users with limited rights, besides the kubeconfig's own (see [`crate::rbac`]).
    #[serde(default)]
    pub users: Vec<crate::rbac::User>,
}

/// Delays of the fake controllers.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Time between a pod's deletion and the creation of its replacement.
    #[serde(default = "Timing::default_recreate")]
    pub recreate_delay_ms: u64,
    /// Time between a pod's creation and it becoming Running and Ready.
    #[serde(default = "Timing::default_ready")]
    pub ready_delay_ms: u64,
    /// Kubelet's streaming idle timeout (`--streaming-connection-idle-timeout`, 4 h by
    /// default, often 5 min on hardened clusters): a port-forward session in which nothing
    /// moved either way for this long is closed by the server. Absent: never.
    #[serde(default)]
    pub streaming_idle_timeout_ms: Option<u64>,
}

impl Timing {
    fn default_recreate() -> u64 {
        300
    }
    fn default_ready() -> u64 {
        500
    }
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            recreate_delay_ms: Self::default_recreate(),
            ready_delay_ms: Self::default_ready(),
            streaming_idle_timeout_ms: None,
        }
    }
}

/// One namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    pub name: String,
    #[serde(default)]
    pub deployments: Vec<WorkloadSpec>,
    #[serde(default)]
    pub statefulsets: Vec<WorkloadSpec>,
    #[serde(default)]
    pub pods: Vec<PodSpec>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
}

/// A Deployment or StatefulSet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub name: String,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Labels of the pods, also the workload's selector.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The workload's own annotations (such as forwards it declares).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
}

fn one() -> u32 {
    1
}

/// A bare pod.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
}

/// A container port and the behaviour of the server behind it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub behavior: Behavior,
}

/// A Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// The service's annotations (such as forwards it declares).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub ports: Vec<ServicePortSpec>,
}

/// One port of a Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePortSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    /// The pods' port, by number or by container port name; defaults to `port`.
    #[serde(default)]
    pub target_port: Option<TargetPort>,
}

/// A Service's `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// What the in-process server behind a pod port does with a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Behavior {
    /// Writes back whatever it reads.
    #[default]
    Echo,
    /// A small HTTP/1.1 server: `GET /` names the pod, `/healthz` is 200, `/bytes?n=N`
    /// streams N bytes, `/chunked?n=N` sends N bytes in chunked encoding, `/status/CODE`
    /// answers CODE, any other method echoes the request body, and `/ws` is a WebSocket
    /// echo server.
    Http,
    /// Reads and discards everything.
    Sink,
    /// Accepts and then never reads nor answers.
    Blackhole,
    /// Nothing listens: connections are refused.
    Refuse,
    /// Relays to a loopback address.
    Proxy(SocketAddr),
}

impl fmt::Display for Behavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Echo => f.write_str("echo"),
            Self::Http => f.write_str("http"),
            Self::Sink => f.write_str("sink"),
            Self::Blackhole => f.write_str("blackhole"),
            Self::Refuse => f.write_str("refuse"),
            Self::Proxy(addr) => write!(f, "proxy:{addr}"),
        }
    }
}

impl FromStr for Behavior {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "echo" => Ok(Self::Echo),
            "http" => Ok(Self::Http),
            "sink" => Ok(Self::Sink),
            "blackhole" => Ok(Self::Blackhole),
            "refuse" => Ok(Self::Refuse),
            other => match other.strip_prefix("proxy:") {
                Some(rest) => {
                    let addr: SocketAddr =
                        rest.replace("localhost", "127.0.0.1")
                            .parse()
                            .map_err(|_| {
                                format!("`{other}`: expected proxy:HOST:PORT with a loopback HOST")
                            })?;
                    if !addr.ip().is_loopback() {
                        return Err(format!(
                            "`{other}`: proxy targets must be loopback addresses"
                        ));
                    }
                    Ok(Self::Proxy(addr))
                }
                None => Err(format!(
                    "unknown behaviour `{other}`; expected echo, http, sink, blackhole, refuse or proxy:HOST:PORT"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Behavior {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Scenario {
    /// The built-in `demo` scenario.
    pub fn demo() -> Self {
        // The demo file is part of the crate and covered by a test, so parsing cannot fail
        // at run time; fall back to an empty scenario rather than panic all the same.
        Self::from_yaml(DEMO_YAML).unwrap_or_else(|_| Self {
            timing: Timing::default(),
            namespaces: Vec::new(),
            users: Vec::new(),
        })
    }

    /// Reads and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Parses and validates scenario YAML.
    pub fn from_yaml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario =
            serde_norway::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks names, ports, references and users, naming the offending field.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        crate::rbac::validate_users(&self.users, "users")?;
        let mut namespaces = BTreeSet::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            let at = format!("namespaces[{i}]");
            check_name(&format!("{at}.name"), &ns.name)?;
            if !namespaces.insert(ns.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("namespace `{}` appears twice", ns.name),
                ));
            }
            let mut pod_names = BTreeSet::new();
            for (kind, list) in [
                ("deployments", &ns.deployments),
                ("statefulsets", &ns.statefulsets),
            ] {
                let mut names = BTreeSet::new();
                for (j, w) in list.iter().enumerate() {
                    let at = format!("{at}.{kind}[{j}]");
                    check_name(&format!("{at}.name"), &w.name)?;
                    if !names.insert(w.name.as_str()) {
                        return Err(invalid(
                            format!("{at}.name"),
                            format!("`{}` appears twice", w.name),
                        ));
                    }
                    if w.labels.is_empty() {
                        return Err(invalid(
                            format!("{at}.labels"),
                            "a workload needs at least one label to select its pods",
                        ));
                    }
                    check_ports(&at, &w.ports)?;
                    if kind == "statefulsets" {
                        for r in 0..w.replicas {
                            pod_names.insert(format!("{}-{r}", w.name));
                        }
                    }
                }
            }
            for (j, p) in ns.pods.iter().enumerate() {
                let at = format!("{at}.pods[{j}]");
                check_name(&format!("{at}.name"), &p.name)?;
                if !pod_names.insert(p.name.clone()) {
                    return Err(invalid(
                        format!("{at}.name"),
                        format!("pod `{}` clashes with another pod", p.name),
                    ));
                }
                check_ports(&at, &p.ports)?;
            }
            let mut svc_names = BTreeSet::new();
            for (j, s) in ns.services.iter().enumerate() {
                let at = format!("{at}.services[{j}]");
                check_name(&format!("{at}.name"), &s.name)?;
                if !svc_names.insert(s.name.as_str()) {
                    return Err(invalid(
                        format!("{at}.name"),
                        format!("service `{}` appears twice", s.name),
                    ));
                }
                if s.ports.is_empty() {
                    return Err(invalid(
                        format!("{at}.ports"),
                        "a service needs at least one port",
                    ));
                }
                let mut seen = BTreeSet::new();
                for (k, p) in s.ports.iter().enumerate() {
                    let at = format!("{at}.ports[{k}]");
                    if p.port == 0 {
                        return Err(invalid(format!("{at}.port"), "0 is not a port"));
                    }
                    if !seen.insert(p.port) {
                        return Err(invalid(
                            format!("{at}.port"),
                            format!("port {} appears twice", p.port),
                        ));
                    }
                    if s.ports.len() > 1 && p.name.is_none() {
                        return Err(invalid(
                            format!("{at}.name"),
                            "ports of a multi-port service need names",
                        ));
                    }
                    match &p.target_port {
                        Some(TargetPort::Number(0)) => {
                            return Err(invalid(format!("{at}.target_port"), "0 is not a port"));
                        }
                        Some(TargetPort::Name(n)) => check_name(&format!("{at}.target_port"), n)?,
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_ports(at: &str, ports: &[PortSpec]) -> Result<(), ScenarioError> {
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (k, p) in ports.iter().enumerate() {
        let at = format!("{at}.ports[{k}]");
        if p.port == 0 {
            return Err(invalid(format!("{at}.port"), "0 is not a port"));
        }
        if !numbers.insert(p.port) {
            return Err(invalid(
                format!("{at}.port"),
                format!("port {} appears twice", p.port),
            ));
        }
        if let Some(name) = &p.name {
            if name.len() > 15 {
                return Err(invalid(
                    format!("{at}.name"),
                    "a port name has at most 15 characters",
                ));
            }
            check_name(&format!("{at}.name"), name)?;
            if !names.insert(name.as_str()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("port name `{name}` appears twice"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks an RFC 1123 label: lower-case alphanumerics and `-`, at most 63 characters,
/// starting and ending with an alphanumeric.
pub(crate) fn check_name(path: &str, name: &str) -> Result<(), ScenarioError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "`{name}` is not a valid name (lower-case letters, digits and '-', at most 63)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_parses_and_has_the_documented_objects() {
        let s = Scenario::from_yaml(DEMO_YAML).expect("demo scenario parses");
        let ns = &s.namespaces[0];
        assert_eq!(ns.name, "demo");
        assert_eq!(ns.deployments.len(), 2);
        assert_eq!(ns.deployments[0].replicas, 2);
        assert_eq!(ns.statefulsets[0].name, "db");
        assert_eq!(ns.pods[0].name, "solo");
        assert_eq!(ns.services.len(), 3);
    }

    fn check_err(yaml: &str, expect: &str) {
        let err = Scenario::from_yaml(yaml)
            .expect_err("scenario should be rejected")
            .to_string();
        assert!(
            err.contains(expect),
            "error `{err}` should contain `{expect}`"
        );
    }

    #[test]
    fn bad_scenarios_name_the_field() {
        check_err("namespaces: [{name: Demo}]", "namespaces[0].name");
        check_err(
            "namespaces: [{name: a, pods: [{name: p, ports: [{port: 0}]}]}]",
            "namespaces[0].pods[0].ports[0].port",
        );
        check_err(
            "namespaces: [{name: a, pods: [{name: p, ports: [{port: 1, behavior: nope}]}]}]",
            "unknown behaviour",
        );
        check_err(
            "namespaces: [{name: a, pods: [{name: p, ports: [{port: 1, behavior: 'proxy:10.0.0.1:80'}]}]}]",
            "loopback",
        );
        check_err("namespaces: [{name: a, colour: red}]", "unknown field");
        check_err(
            "namespaces: [{name: a, statefulsets: [{name: db, labels: {a: b}}], pods: [{name: db-0}]}]",
            "namespaces[0].pods[0].name",
        );
        check_err(
            "users: [{name: dev, token: t, rules: [{verbs: [get, fly], resources: [pods]}]}]",
            "users[0].rules[0].verbs[1]",
        );
        check_err(
            "users: [{name: dev, token: t, rules: [{verbs: [get], resources: [pods, widgets]}]}]",
            "users[0].rules[0].resources[1]",
        );
        check_err(
            "users: [{name: dev, token: t}, {name: ops, token: u, rules: [{verbs: [get], resources: [pods], namespaces: [Demo]}]}]",
            "users[1].rules[0].namespaces[0]",
        );
        check_err("users: [{name: '', token: t}]", "users[0].name");
        check_err(
            "users: [{name: dev, token: t}, {name: dev, token: u}]",
            "users[1].name",
        );
        check_err(
            "users: [{name: dev, token: t, role: admin}]",
            "unknown field",
        );
        check_err("users: [{name: dev}]", "missing field `token`");
    }

    #[test]
    fn users_parse_with_rbac_defaults() {
        let s = Scenario::from_yaml(
            "users: [{name: dev, token: t, rules: [{verbs: [get], resources: [pods]}]}]",
        )
        .expect("parses");
        let rule = &s.users[0].rules[0];
        assert_eq!(rule.api_groups, ["*"]);
        assert_eq!(rule.namespaces, ["*"]);
        assert!(rule.resource_names.is_empty());
        assert!(s.users[0].groups.is_empty());
    }

    #[test]
    fn behaviours_round_trip_through_text() {
        for b in [
            "echo",
            "http",
            "sink",
            "blackhole",
            "refuse",
            "proxy:127.0.0.1:5000",
        ] {
            let parsed: Behavior = b.parse().expect("parses");
            assert_eq!(parsed.to_string(), b);
        }
        assert_eq!(
            "proxy:localhost:80".parse::<Behavior>(),
            Ok(Behavior::Proxy(SocketAddr::from(([127, 0, 0, 1], 80))))
        );
    }
}
