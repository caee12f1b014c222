//! Forwards declared on cluster objects: whoever deploys a service writes, in an annotation
//! on it, which forwards it is meant to be reached through, and everyone who can read the
//! object is offered them.
//!
//! Three formats are read, each as the tool that defined it reads it (`docs/annotations.md`
//! describes them and where they come from):
//!
//! - Ferry's own [`FERRY`] (`ferry.dev/forwards`), on services, deployments, statefulsets
//!   and pods: a YAML or JSON list of forwards, for example
//!   `[{name: web, port: http, local_port: 8080, description: "The shop's front end"}]`.
//! - kftray's [`KFTRAY_ENABLED`] and [`KFTRAY_CONFIGS`] on services:
//!   `kftray.app/enabled: "true"` plus `alias-localPort-targetPort` entries separated by
//!   commas (`web-3000-8080,api-3001-http`).
//! - k9s's [`K9S_AUTO`] and [`K9S`] on pods (and pod templates):
//!   `container::[local:]port` entries separated by commas (`zorg::5556,bozo::9090:http`).
//!
//! [`from_annotations`] (and [`from_service`], which also knows the service's ports) reads
//! one object and returns what it declares, each forward pinned to the given context and
//! the object's namespace, plus the problems found, each naming the object, the annotation
//! and the field. One bad annotation or entry never hides the others. Reading is pure: the
//! caller lists the objects and hands over their annotations.
//!
//! [`annotation_for`] and [`annotate_command`] go the other way, writing Ferry's annotation
//! for forwards the user wants to share; [`already_have`] tells which declared forwards a
//! config has already.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_norway::Value;

use super::health::HealthSpec;
use super::import::{sanitize, unique};
use super::model::{Config, Forward};
use super::target::{PortRef, Target};
use super::validate::check_name;

/// Ferry's annotation: a YAML or JSON list of forwards (see the module docs).
pub const FERRY: &str = "ferry.dev/forwards";
/// kftray's switch: kftray imports a service only when this is exactly `"true"`.
pub const KFTRAY_ENABLED: &str = "kftray.app/enabled";
/// kftray's forwards of a service: `alias-localPort-targetPort`, separated by commas.
pub const KFTRAY_CONFIGS: &str = "kftray.app/configs";
/// k9s's forwards started without its dialog: `container::[local:]port`, separated by commas.
pub const K9S_AUTO: &str = "k9scli.io/auto-port-forwards";
/// k9s's forwards preselected in its dialog, in the same shape as [`K9S_AUTO`].
pub const K9S: &str = "k9scli.io/port-forwards";

/// The fields of one entry of Ferry's annotation, in the order they are documented.
const FIELDS: &str = "name, port, local_port, alias, health, pod_port, description";

/// Which tool's annotation declared a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Ferry's own [`FERRY`].
    Ferry,
    /// kftray's [`KFTRAY_CONFIGS`] (or [`KFTRAY_ENABLED`] alone: every port of the service).
    Kftray,
    /// k9s's [`K9S_AUTO`] or [`K9S`].
    K9s,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Ferry => "Ferry",
            Origin::Kftray => "kftray",
            Origin::K9s => "k9s",
        })
    }
}

/// One forward declared on a cluster object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The forward, valid on its own: its context is the one the object was read from (never
    /// `None` when a context was given, so that it never follows kubectl's current context),
    /// its namespace and target are the object's, and its name is unique among the forwards
    /// the object declares (not among the user's: [`Config::merged_with`] renames clashes).
    pub forward: Forward,
    /// Which tool's annotation declared it.
    pub source: Origin,
    /// The object it was declared on, as `KIND/NAME` (`service/web`).
    pub object: String,
    /// What it is for, in the words of whoever declared it (Ferry's `description`).
    pub description: Option<String>,
    /// What did not carry over, or was assumed, in reading it.
    pub notes: Vec<String>,
}

/// Why [`annotation_for`] cannot write an annotation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnnotationError {
    /// There were no forwards to write.
    #[error("no forwards to write")]
    Empty,
    /// The forwards point at different objects; an annotation describes one object's.
    #[error(
        "{first} points at {first_object} but {other} at {other_object}; an annotation holds the forwards of one object"
    )]
    DifferentObjects {
        first: String,
        first_object: String,
        other: String,
        other_object: String,
    },
}

/// Reads the forwards that `annotations`, those of the object `kind`/`name` in `namespace`,
/// declare, as forwards on `context` (`None` leaves them on kubectl's current context;
/// discovery names the context it read the object from).
///
/// `kind` is `service`, `deployment`, `statefulset`, `daemonset` or `pod` (any case, short
/// forms too). Returns the forwards and the problems, each problem naming the object, the
/// annotation and the field or entry (`service/web in demo: ferry.dev/forwards[1].port:
/// ...`); a bad entry is left out, the others are read. Objects without any of the
/// annotations give nothing. kftray's `kftray.app/enabled` without `kftray.app/configs`
/// means every port of the service, which only its spec lists: read such a service with
/// [`from_service`].
///
/// For workloads, k9s reads its annotations on the pod it forwards to, so they are usually
/// on the pod template: pass the template's annotations together with the workload's.
pub fn from_annotations(
    kind: &str,
    name: &str,
    namespace: &str,
    context: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> (Vec<Declared>, Vec<String>) {
    read(kind, name, namespace, context, annotations, None)
}

/// [`from_annotations`] for a service as the API returns it, whose spec's ports also serve
/// kftray's `kftray.app/enabled` without `kftray.app/configs` (one forward per TCP port).
pub fn from_service(service: &Service, context: Option<&str>) -> (Vec<Declared>, Vec<String>) {
    let meta = &service.metadata;
    let empty = BTreeMap::new();
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    read(
        "service",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or("default"),
        context,
        meta.annotations.as_ref().unwrap_or(&empty),
        Some(ports),
    )
}

/// The value of Ferry's annotation for `forwards`, which must all point at one object (same
/// context, namespace and target): a JSON list on one line (JSON is YAML too, and one line
/// fits a `kubectl annotate` command), one entry per forward with `name`, `port` and
/// `local_port`, and `alias`, `health` and `pod_port` when they are not the defaults.
/// `bind`, `pick` and `enabled` are the user's own choices and are not written.
pub fn annotation_for(forwards: &[&Forward]) -> Result<String, AnnotationError> {
    let Some(first) = forwards.first() else {
        return Err(AnnotationError::Empty);
    };
    if let Some(other) = forwards.iter().find(|f| {
        (&f.context, &f.namespace, &f.target) != (&first.context, &first.namespace, &first.target)
    }) {
        return Err(AnnotationError::DifferentObjects {
            first: first.name.clone(),
            first_object: object_label(first),
            other: other.name.clone(),
            other_object: object_label(other),
        });
    }
    Ok(value_of(forwards))
}

/// The `kubectl annotate` command that declares `f` on its object, quoted for a shell:
/// `kubectl annotate [--context C] [-n NS] service/web ferry.dev/forwards='[…]' --overwrite`.
/// It replaces whatever Ferry annotation the object has; [`annotate_command_for`] writes
/// several forwards of one object at once.
pub fn annotate_command(f: &Forward) -> String {
    command(f, &value_of(&[f]))
}

/// [`annotate_command`] for several forwards of one object (see [`annotation_for`]).
pub fn annotate_command_for(forwards: &[&Forward]) -> Result<String, AnnotationError> {
    let value = annotation_for(forwards)?;
    match forwards.first() {
        Some(first) => Ok(command(first, &value)),
        None => Err(AnnotationError::Empty),
    }
}

/// The name of the forward in `config` that already does what `d` declares, if any: the
/// same context, namespace, target and port (and `pod_port`), whatever its name. Contexts
/// and namespaces must match exactly: a forward without a context (kubectl's current one)
/// or without a namespace (the context's) matches none, and a port by name does not match
/// the same port by number, since telling needs the cluster.
pub fn already_have(config: &Config, d: &Declared) -> Option<String> {
    let want = &d.forward;
    config
        .forwards
        .iter()
        .find(|f| {
            f.context == want.context
                && f.namespace == want.namespace
                && f.target == want.target
                && f.port == want.port
                && f.pod_port == want.pod_port
        })
        .map(|f| f.name.clone())
}

// === reading ===

/// Reads one object's annotations; `service_ports` are its spec's ports when it is a
/// service read whole.
fn read(
    kind: &str,
    name: &str,
    namespace: &str,
    context: Option<&str>,
    annotations: &BTreeMap<String, String>,
    service_ports: Option<&[ServicePort]>,
) -> (Vec<Declared>, Vec<String>) {
    let present: Vec<&str> = [FERRY, KFTRAY_ENABLED, KFTRAY_CONFIGS, K9S_AUTO, K9S]
        .into_iter()
        .filter(|key| annotations.contains_key(*key))
        .collect();
    if present.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut reader = match Reader::new(kind, name, namespace, context) {
        Ok(reader) => reader,
        Err(message) => {
            return (
                Vec::new(),
                vec![format!(
                    "{kind}/{name} in {namespace}: {}: {message}",
                    present.join(", ")
                )],
            );
        }
    };
    if let Some(text) = annotations.get(FERRY) {
        reader.ferry(text);
    }
    reader.kftray(
        annotations.get(KFTRAY_ENABLED).map(String::as_str),
        annotations.get(KFTRAY_CONFIGS).map(String::as_str),
        service_ports,
    );
    // k9s starts the automatic ones without asking and ignores the others then; both say
    // which forwards the object is for, so both are read, the automatic ones first.
    for key in [K9S_AUTO, K9S] {
        if let Some(text) = annotations.get(key) {
            reader.k9s(key, text);
        }
    }
    (reader.declared, reader.problems)
}

/// The state of reading one object.
struct Reader<'a> {
    target: Target,
    namespace: &'a str,
    context: Option<&'a str>,
    /// The object as problems name it: `service/web in demo`.
    at: String,
    /// The names given so far, so that derived names are unique within the object.
    taken: BTreeSet<String>,
    /// The annotation each declared forward came from, by index into `declared`.
    keys: Vec<&'static str>,
    declared: Vec<Declared>,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    /// A reader for the object, or why no forward can point at it.
    fn new(
        kind: &str,
        name: &str,
        namespace: &'a str,
        context: Option<&'a str>,
    ) -> Result<Self, String> {
        let kind = kind.to_ascii_lowercase();
        if matches!(kind.as_str(), "daemonset" | "daemonsets" | "ds") {
            return Err(
                "Ferry forwards to services, deployments, statefulsets and pods, not daemonsets; forward to one of its pods instead".into(),
            );
        }
        let target: Target = format!("{kind}/{name}").parse()?;
        let reader = Reader {
            at: format!("{target} in {namespace}"),
            target,
            namespace,
            context,
            taken: BTreeSet::new(),
            keys: Vec::new(),
            declared: Vec::new(),
            problems: Vec::new(),
        };
        // The namespace and context are the object's, not an entry's: check them once.
        let probe = reader.forward("probe".into(), PortRef::Number(1), 0);
        let invalid = single_problems(&probe);
        match invalid.into_iter().next() {
            Some((field, message)) => Err(format!("{field}: {message}")),
            None => Ok(reader),
        }
    }

    fn problem(&mut self, path: &str, message: impl fmt::Display) {
        self.problems
            .push(format!("{}: {path}: {message}", self.at));
    }

    /// A forward to the object with the given name and ports, and every other field at its
    /// default.
    fn forward(&self, name: String, port: PortRef, local_port: u16) -> Forward {
        let mut f = Forward::new(name, self.target.clone(), port, local_port);
        f.context = self.context.map(str::to_string);
        f.namespace = Some(self.namespace.to_string());
        f
    }

    /// A free name from `wanted` (sanitized, then `-2`, `-3`… while taken).
    fn name_from(&mut self, wanted: &str) -> String {
        unique(&sanitize(wanted), &mut self.taken)
    }

    /// The name of a forward that names none: the object's name and the port.
    fn derived_name(&mut self, port: &PortRef) -> String {
        let wanted = format!("{}-{port}", self.target.name());
        self.name_from(&wanted)
    }

    /// Adds a declared forward read from the entry at `path` of the annotation `key`,
    /// unless another annotation of the object declares the same port already (the first
    /// one read stands) or it breaks a rule of the config (reported, field by field).
    fn add(
        &mut self,
        key: &'static str,
        path: &str,
        source: Origin,
        mut forward: Forward,
        description: Option<String>,
        mut notes: Vec<String>,
    ) {
        let repeated = self.declared.iter().zip(&self.keys).any(|(d, k)| {
            *k != key && d.forward.port == forward.port && d.forward.pod_port == forward.pod_port
        });
        if repeated {
            return;
        }
        let invalid = single_problems(&forward);
        if !invalid.is_empty() {
            for (field, message) in invalid {
                self.problem(&format!("{path}.{field}"), message);
            }
            return;
        }
        if forward.local_port != 0
            && let Some(other) = self
                .declared
                .iter()
                .find(|d| d.forward.local_port == forward.local_port)
        {
            notes.push(format!(
                "local port {} is suggested for {} too; this one picks a free port",
                forward.local_port, other.forward.name
            ));
            forward.local_port = 0;
        }
        self.keys.push(key);
        self.declared.push(Declared {
            forward,
            source,
            object: self.target.to_string(),
            description,
            notes,
        });
    }

    // === Ferry ===

    /// Reads Ferry's annotation.
    fn ferry(&mut self, text: &str) {
        let value: Value = match serde_norway::from_str(text) {
            Ok(value) => value,
            Err(e) => {
                self.problem(FERRY, format_args!("not a YAML or JSON list: {e}"));
                return;
            }
        };
        let items = match value {
            Value::Sequence(items) => items,
            Value::Null => {
                self.problem(
                    FERRY,
                    "empty; write a list of forwards, e.g. [{port: 80, local_port: 8080}]",
                );
                return;
            }
            _ => {
                self.problem(
                    FERRY,
                    "expected a list of forwards, e.g. [{port: 80, local_port: 8080}]",
                );
                return;
            }
        };
        // Given names are reserved before any is derived, so that a derived name never
        // takes one an entry further down asks for.
        let mut repeated = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(name) = item.get("name").and_then(Value::as_str)
                && !self.taken.insert(name.to_string())
            {
                repeated.insert(i, name.to_string());
            }
        }
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("{FERRY}[{i}]");
            let entry = Entry::read(item);
            if let Some(name) = repeated.get(&i) {
                self.problem(
                    &format!("{path}.name"),
                    format_args!("{name:?} names an entry above too"),
                );
            }
            let entry = match entry {
                Ok(entry) if !repeated.contains_key(&i) => entry,
                Ok(_) => continue,
                Err(errors) => {
                    for (field, message) in errors {
                        let at = match field {
                            Some(field) => format!("{path}.{field}"),
                            None => path.clone(),
                        };
                        self.problem(&at, message);
                    }
                    continue;
                }
            };
            let name = match entry.name {
                Some(name) => name,
                None => self.derived_name(&entry.port),
            };
            let local_port = entry.local_port.unwrap_or(match entry.port {
                PortRef::Number(n) if n >= 1024 => n,
                _ => 0,
            });
            let mut f = self.forward(name, entry.port, local_port);
            f.alias = entry.alias;
            f.pod_port = entry.pod_port;
            if let Some(health) = entry.health {
                f.health = health;
            }
            self.add(
                FERRY,
                &path,
                Origin::Ferry,
                f,
                entry.description,
                Vec::new(),
            );
        }
    }

    // === kftray ===

    /// Reads kftray's annotations as kftray's auto import does (hcavarsan/kftray,
    /// `crates/kftray-portforward/src/kube/service.rs`, `parse_configs`): only on services
    /// whose `kftray.app/enabled` is exactly `"true"`; each comma-separated entry of
    /// `kftray.app/configs` is split at every `-` into exactly alias, local port and target
    /// port. A target port by number is the pods' port (`pod_port`); by name it is looked
    /// up among the service's ports (a service port's name, which leads to the same pods'
    /// port). Entries kftray would skip silently are reported here.
    fn kftray(
        &mut self,
        enabled: Option<&str>,
        configs: Option<&str>,
        service_ports: Option<&[ServicePort]>,
    ) {
        if enabled.is_none() && configs.is_none() {
            return;
        }
        let key = if configs.is_some() {
            KFTRAY_CONFIGS
        } else {
            KFTRAY_ENABLED
        };
        if !matches!(self.target, Target::Service(_)) {
            self.problem(
                key,
                "kftray reads its annotations on services only; ignored",
            );
            return;
        }
        if enabled != Some("true") {
            let is = enabled.map_or_else(|| "missing".to_string(), |v| format!("{v:?}"));
            self.problem(
                key,
                format_args!(
                    "ignored, as kftray ignores it: kftray imports a service only when {KFTRAY_ENABLED} is \"true\" ({is} here)"
                ),
            );
            return;
        }
        let Some(configs) = configs else {
            self.kftray_every_port(service_ports);
            return;
        };
        for (i, entry) in configs.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let path = format!("{KFTRAY_CONFIGS}[{i}]");
            match parse_kftray(entry) {
                Ok((alias, local_port, port, pod_port)) => {
                    let mut notes = Vec::new();
                    let name = if alias.is_empty() {
                        self.derived_name(&port)
                    } else {
                        let name = self.name_from(alias);
                        if name != alias {
                            notes.push(format!(
                                "kftray's alias `{alias}` is the forward's name `{name}`"
                            ));
                        }
                        name
                    };
                    let mut f = self.forward(name, port, local_port);
                    f.pod_port = pod_port;
                    self.add(KFTRAY_CONFIGS, &path, Origin::Kftray, f, None, notes);
                }
                Err(message) => self.problem(&path, format_args!("`{entry}`: {message}")),
            }
        }
    }

    /// kftray's `kftray.app/enabled` alone: one forward per port of the service, to its
    /// target port, listening on that port number (hcavarsan/kftray,
    /// `create_default_configs` and `kube/operations.rs` `extract_ports_from_service`).
    fn kftray_every_port(&mut self, service_ports: Option<&[ServicePort]>) {
        let Some(ports) = service_ports else {
            self.problem(
                KFTRAY_ENABLED,
                format_args!(
                    "without {KFTRAY_CONFIGS}, kftray forwards every port of the service, which only its spec lists; read the whole service to see them"
                ),
            );
            return;
        };
        for (i, sp) in ports.iter().enumerate() {
            let path = format!("{KFTRAY_ENABLED} (spec.ports[{i}])");
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            if !protocol.eq_ignore_ascii_case("TCP") {
                self.problem(
                    &path,
                    format_args!("{} is {protocol}; Ferry forwards TCP only", sp.port),
                );
                continue;
            }
            let Some(service_port) = u16::try_from(sp.port).ok().filter(|p| *p > 0) else {
                self.problem(&path, format_args!("{} is not a port", sp.port));
                continue;
            };
            let mut notes = Vec::new();
            let (port, pod_port, local_port) = match &sp.target_port {
                Some(IntOrString::Int(n)) => match u16::try_from(*n).ok().filter(|n| *n > 0) {
                    Some(n) => (PortRef::Number(n), true, n),
                    None => {
                        self.problem(&path, format_args!("target port {n} is not a port"));
                        continue;
                    }
                },
                // The API server fills an unset target port with the port.
                None => (PortRef::Number(service_port), true, service_port),
                Some(IntOrString::String(target)) => {
                    notes.push(format!(
                        "kftray listens on the number of the pods' port `{target}`, which only the pods know; Ferry picks a free local port"
                    ));
                    let port = sp
                        .name
                        .as_deref()
                        .and_then(|n| n.parse::<PortRef>().ok())
                        .unwrap_or(PortRef::Number(service_port));
                    (port, false, 0)
                }
            };
            let name = self.derived_name(&port);
            let mut f = self.forward(name, port, local_port);
            f.pod_port = pod_port;
            self.add(KFTRAY_ENABLED, &path, Origin::Kftray, f, None, notes);
        }
    }

    // === k9s ===

    /// Reads one of k9s's annotations as k9s does (derailed/k9s, `internal/port/pfs.go`
    /// `ParsePFs` and `internal/port/pf.go` `ParsePF`): comma-separated entries
    /// `container::[local:]port` or `[local:]port`, the port by number or name, the local
    /// port defaulting to the container port's number.
    fn k9s(&mut self, key: &'static str, text: &str) {
        if matches!(self.target, Target::Service(_)) {
            self.problem(
                key,
                "k9s reads this annotation on pods (and pod templates), not on services; ignored",
            );
            return;
        }
        for (i, spec) in text.split(',').enumerate() {
            let spec = spec.trim();
            if spec.is_empty() {
                continue;
            }
            let path = format!("{key}[{i}]");
            let entry = match K9sEntry::parse(spec) {
                Ok(entry) => entry,
                Err(message) => {
                    self.problem(&path, format_args!("`{spec}`: {message}"));
                    continue;
                }
            };
            let mut notes = Vec::new();
            if let (PortRef::Name(port), Some(container)) = (&entry.port, entry.container) {
                notes.push(format!(
                    "k9s looks the port name `{port}` up in container `{container}`; Ferry looks it up among all the pod's containers"
                ));
            }
            let number = match &entry.port {
                PortRef::Number(n) => Some(*n),
                PortRef::Name(_) => entry.number,
            };
            let local_port = match (entry.local, number, &entry.port) {
                (Some(local), _, _) => local,
                (None, Some(n), _) => {
                    if n >= 1024 {
                        n
                    } else {
                        notes.push(format!(
                            "k9s would listen on local port {n}, which needs administrator rights on most systems; Ferry picks a free port"
                        ));
                        0
                    }
                }
                (None, None, port) => {
                    notes.push(format!(
                        "k9s listens on the number of the container port `{port}`, which only the pod's spec says; Ferry picks a free local port"
                    ));
                    0
                }
            };
            let name = self.derived_name(&entry.port);
            let f = self.forward(name, entry.port, local_port);
            self.add(key, &path, Origin::K9s, f, None, notes);
        }
    }
}

/// One entry of Ferry's annotation, read field by field.
struct Entry {
    name: Option<String>,
    port: PortRef,
    local_port: Option<u16>,
    alias: Option<String>,
    health: Option<HealthSpec>,
    pod_port: bool,
    description: Option<String>,
}

/// `(field, message)` pairs; the field is `None` when the problem is the entry's.
type FieldErrors = Vec<(Option<String>, String)>;

impl Entry {
    /// Reads an entry, reporting every field that is wrong, not just the first.
    fn read(item: Value) -> Result<Entry, FieldErrors> {
        let Value::Mapping(map) = item else {
            return Err(vec![(
                None,
                "expected a mapping with at least `port`, e.g. {port: 80}".into(),
            )]);
        };
        let mut errors = FieldErrors::new();
        let mut entry = Entry {
            name: None,
            port: PortRef::Number(1),
            local_port: None,
            alias: None,
            health: None,
            pod_port: false,
            description: None,
        };
        let mut port = None;
        let mut port_given = false;
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                errors.push((None, format!("field names are words; found {key:?}")));
                continue;
            };
            let mut fail = |message: String| errors.push((Some(key.to_string()), message));
            match key {
                "name" => match field::<String>(value) {
                    Ok(name) => match check_name(&name) {
                        Ok(()) => entry.name = Some(name),
                        Err(message) => fail(message),
                    },
                    Err(message) => fail(message),
                },
                "port" => {
                    port_given = true;
                    match port_of(&value) {
                        Ok(p) => port = Some(p),
                        Err(message) => fail(message),
                    }
                }
                "local_port" => match local_port_of(&value) {
                    Ok(p) => entry.local_port = Some(p),
                    Err(message) => fail(message),
                },
                "alias" => match field::<String>(value) {
                    Ok(alias) => entry.alias = Some(alias),
                    Err(message) => fail(message),
                },
                "health" => match field::<HealthSpec>(value) {
                    Ok(health) => entry.health = Some(health),
                    Err(message) => fail(message),
                },
                "pod_port" => match field::<bool>(value) {
                    Ok(pod_port) => entry.pod_port = pod_port,
                    Err(message) => fail(message),
                },
                "description" => match field::<String>(value) {
                    Ok(text) => entry.description = clean_description(&text),
                    Err(message) => fail(message),
                },
                other => errors.push((
                    None,
                    format!("unknown field `{other}`; the fields are {FIELDS}"),
                )),
            }
        }
        match port {
            Some(port) => entry.port = port,
            None if port_given => {}
            None => errors.push((
                Some("port".into()),
                "missing; write the port by number or name".into(),
            )),
        }
        if errors.is_empty() {
            Ok(entry)
        } else {
            Err(errors)
        }
    }
}

/// A field's value as `T`, or what is wrong with it.
fn field<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_norway::from_value(value).map_err(|e| e.to_string())
}

/// A remote port: a number (1-65535) or a port name.
fn port_of(value: &Value) -> Result<PortRef, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .map(PortRef::Number)
            .ok_or_else(|| format!("{n} is not a port")),
        Value::String(text) => text.parse(),
        other => Err(format!("expected a port number or name, found {other:?}")),
    }
}

/// A local port: 0 (any free port) to 65535.
fn local_port_of(value: &Value) -> Result<u16, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| format!("{n} is not a port (use 1-65535, or 0 for any free port)")),
        other => Err(format!("expected a port number, found {other:?}")),
    }
}

/// A description as shown to the user: control characters (which could drive a terminal)
/// become spaces, surrounding blanks go, and an empty one is none.
fn clean_description(text: &str) -> Option<String> {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Reads one kftray entry: `(alias, local port, port, pod_port)`.
fn parse_kftray(entry: &str) -> Result<(&str, u16, PortRef, bool), String> {
    let parts: Vec<&str> = entry.split('-').collect();
    let [alias, local, remote] = parts.as_slice() else {
        return Err(
            "not alias-localPort-targetPort (kftray splits at every '-', so an alias cannot contain one); kftray skips it".into(),
        );
    };
    let local_port: u16 = local
        .parse()
        .map_err(|_| format!("`{local}` is not a local port; kftray skips it"))?;
    let (port, pod_port) = match remote.parse::<u16>() {
        Ok(0) => return Err("0 is not a target port".into()),
        // A number is the pods' port, which kftray forwards to directly.
        Ok(n) => (PortRef::Number(n), true),
        Err(_) => (remote.parse::<PortRef>()?, false),
    };
    Ok((alias, local_port, port, pod_port))
}

/// One entry of a k9s annotation.
struct K9sEntry<'a> {
    container: Option<&'a str>,
    local: Option<u16>,
    port: PortRef,
    /// The port's number after a `/`, which k9s accepts after a named port.
    number: Option<u16>,
}

impl<'a> K9sEntry<'a> {
    /// Reads `container::[local:]port[/number]` or `[local:]port`, as k9s's regular
    /// expressions do.
    fn parse(spec: &'a str) -> Result<Self, String> {
        let (container, mut rest) = match spec.split_once("::") {
            Some((container, rest)) => {
                let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
                if container.is_empty() || !container.chars().all(word) {
                    return Err(format!("`{container}` is not a container name"));
                }
                (Some(container), rest)
            }
            None => (None, spec),
        };
        let mut number = None;
        if container.is_some()
            && let Some((head, n)) = rest.rsplit_once('/')
        {
            number = Some(
                n.parse::<u16>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`{n}` after '/' is not a port number"))?,
            );
            rest = head;
        }
        let (local, port) = match rest.split_once(':') {
            Some((local, port)) => (local, port),
            None => ("", rest),
        };
        let local = match local {
            "" => None,
            l => Some(
                l.parse::<u16>()
                    .map_err(|_| format!("`{l}` is not a local port"))?,
            ),
        };
        if port.is_empty() {
            return Err("no container port; write [container::][local:]port".into());
        }
        Ok(K9sEntry {
            container,
            local,
            port: port.parse()?,
            number,
        })
    }
}

/// The problems `forward` has on its own, as `(field, message)`, fields named as in the
/// config (`name`, `health.rise`).
fn single_problems(forward: &Forward) -> Vec<(String, String)> {
    let alone = Config {
        forwards: vec![forward.clone()],
        ..Config::default()
    };
    match alone.validate() {
        Ok(()) => Vec::new(),
        Err(e) => e
            .problems()
            .iter()
            .map(|p| {
                let field = p.path.strip_prefix("forwards[0].").unwrap_or(&p.path);
                (field.to_string(), p.message.clone())
            })
            .collect(),
    }
}

/// A local port a declared forward wanted and could not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMoved {
    pub wanted: u16,
    /// The saved (or earlier offered) forward that has it; `None`: something else on this
    /// machine listens there.
    pub holder: Option<String>,
    /// The port given instead: the next one up that is neither; `None` when there is none
    /// (the forward gets 0: the system picks one when it starts).
    pub given: Option<u16>,
}

/// Gives `forward` (one the user does not have yet) a local port no forward in `claimed`
/// has and that `free` says this machine has free: the one it wants, else the next one
/// up. Records the port it ends with in `claimed` under its name. `None` when it kept the
/// port it wanted (or wants none, 0).
pub fn claim_local_port(
    forward: &mut Forward,
    claimed: &mut BTreeMap<(std::net::IpAddr, u16), String>,
    free: impl Fn(std::net::IpAddr, u16) -> bool,
) -> Option<PortMoved> {
    let (bind, wanted) = (forward.bind, forward.local_port);
    if wanted == 0 {
        return None;
    }
    let open = |p: u16| !claimed.contains_key(&(bind, p)) && free(bind, p);
    let moved = (!open(wanted)).then(|| {
        let given = (wanted.saturating_add(1)..=u16::MAX).find(|p| open(*p));
        PortMoved {
            wanted,
            holder: claimed.get(&(bind, wanted)).cloned(),
            given,
        }
    });
    if let Some(m) = &moved {
        forward.local_port = m.given.unwrap_or(0);
    }
    if forward.local_port != 0 {
        claimed.insert((bind, forward.local_port), forward.name.clone());
    }
    moved
}

/// The local ports `config`'s forwards hold, by address, with the forward holding each.
pub fn claimed_ports(config: &Config) -> BTreeMap<(std::net::IpAddr, u16), String> {
    config
        .forwards
        .iter()
        .filter(|f| f.local_port != 0)
        .map(|f| ((f.bind, f.local_port), f.name.clone()))
        .collect()
}

// === writing ===

/// One entry of Ferry's annotation as written.
#[derive(Serialize)]
struct EntryOut<'a> {
    name: &'a str,
    port: &'a PortRef,
    local_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'a HealthSpec>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pod_port: bool,
}

/// The annotation's value for `forwards`, whatever objects they point at.
fn value_of(forwards: &[&Forward]) -> String {
    let entries: Vec<EntryOut<'_>> = forwards
        .iter()
        .map(|f| EntryOut {
            name: &f.name,
            port: &f.port,
            local_port: f.local_port,
            alias: f.alias.as_deref(),
            health: Some(&f.health).filter(|h| !h.is_default()),
            pod_port: f.pod_port,
        })
        .collect();
    // Serializing these types cannot fail (string keys, no floats); were it to, an empty
    // list declares nothing rather than something wrong.
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into())
}

/// The `kubectl annotate` command writing `value` on `f`'s object.
fn command(f: &Forward, value: &str) -> String {
    let mut words = vec!["kubectl".to_string(), "annotate".to_string()];
    if let Some(c) = &f.context {
        words.extend(["--context".into(), c.clone()]);
    }
    if let Some(n) = &f.namespace {
        words.extend(["-n".into(), n.clone()]);
    }
    words.push(f.target.to_string());
    words.push(format!("{FERRY}={value}"));
    words.push("--overwrite".into());
    shell_words::join(words)
}

/// A forward's object as errors name it: `service/web in demo (context prod)`.
fn object_label(f: &Forward) -> String {
    let mut label = f.target.to_string();
    if let Some(n) = &f.namespace {
        label.push_str(&format!(" in {n}"));
    }
    if let Some(c) = &f.context {
        label.push_str(&format!(" (context {c})"));
    }
    label
}

#[cfg(test)]
#[path = "declared_tests.rs"]
mod tests;
