//! The data types of a config: [`Config`], [`Forward`], [`Pick`] and [`Profile`], with their
//! serde mapping and compiled-in defaults.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr};

use serde::de::value::{I64Deserializer, StrDeserializer, U64Deserializer};
use serde::{Deserialize, Deserializer, Serialize};

use super::health::HealthSpec;
use super::inspect::Inspect;
use super::target::{PortRef, Target};

/// The only config format version this build reads and writes.
pub const CONFIG_VERSION: u32 = 1;

/// The whole configuration: the forwards to keep alive and named groups of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The format version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// The forwards, in config order. Their names are unique.
    #[serde(default)]
    pub forwards: Vec<Forward>,
    /// Named groups of forwards, in config order. Their names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<Profile>,
}

impl Default for Config {
    /// An empty config of the current version.
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            forwards: Vec::new(),
            profiles: Vec::new(),
        }
    }
}

/// One port-forward: a local listening socket relayed to a port of a cluster object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The forward's unique name, which is also its stable id (a DNS-label-like word).
    pub name: String,
    /// The kubeconfig context to use; `None` means the kubeconfig's current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The namespace of the target; `None` means the context's namespace, else `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object to forward to.
    #[serde(deserialize_with = "deserialize_scalar")]
    #[ts(type = "string")]
    pub target: Target,
    /// The remote port on the target, by number or by name. On a service it is the
    /// service's port (as `kubectl port-forward svc/…` means it), unless `pod_port` says
    /// it is the pods'.
    #[serde(deserialize_with = "deserialize_scalar")]
    #[ts(type = "number | string")]
    pub port: PortRef,
    /// For a service: `port` is the port number the service's pods listen on, not a
    /// service port, as kftray and kportal mean it (their imports set this when the
    /// cluster could not be asked which service port leads there). Connections go to
    /// that port of the service's ready endpoints. Other targets' ports always are the
    /// pods', so there it changes nothing. Defaults to `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_port: bool,
    /// The local port to listen on; 0 lets the system pick a free one.
    #[serde(deserialize_with = "deserialize_local_port")]
    pub local_port: u16,
    /// The local address to listen on; defaults to `127.0.0.1`.
    #[serde(default = "default_bind", skip_serializing_if = "is_default_bind")]
    pub bind: IpAddr,
    /// How to choose a pod when the target has several; defaults to [`Pick::Sticky`].
    #[serde(default, skip_serializing_if = "is_default_pick")]
    pub pick: Pick,
    /// A name published as `<alias>.local` over mDNS while the forward runs (opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// How the forward is checked; defaults to a `tunnel` check every 5 s.
    #[serde(default, skip_serializing_if = "HealthSpec::is_default")]
    pub health: HealthSpec,
    /// Record the forward's HTTP/1.x exchanges as they pass (see [`Inspect`]); off when
    /// absent.
    #[serde(
        default,
        deserialize_with = "super::inspect::deserialize_inspect",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(
        optional,
        type = "\"http\" | { body_kib?: number, redact?: Array<string> }"
    )]
    pub inspect: Option<Inspect>,
    /// Whether the forward runs; defaults to `true`.
    #[serde(
        default = "default_enabled",
        skip_serializing_if = "is_default_enabled"
    )]
    pub enabled: bool,
}

impl Forward {
    /// A forward with the given required fields and every other field at its default.
    pub fn new(name: impl Into<String>, target: Target, port: PortRef, local_port: u16) -> Self {
        Forward {
            name: name.into(),
            context: None,
            namespace: None,
            target,
            port,
            pod_port: false,
            local_port,
            bind: default_bind(),
            pick: Pick::default(),
            alias: None,
            health: HealthSpec::default(),
            inspect: None,
            enabled: default_enabled(),
        }
    }

    /// What the forward points at, as statuses show it: `service/echo:80`, or
    /// `service/echo:9000 (pods' port)` with `pod_port`.
    pub fn target_label(&self) -> String {
        let pods = if self.pod_port && matches!(self.target, Target::Service(_)) {
            " (pods' port)"
        } else {
            ""
        };
        format!("{}:{}{pods}", self.target, self.port)
    }

    /// A hash of every field whose change requires restarting the forward, which is every
    /// field except `enabled`, `health` (a health change restarts only the checker) and
    /// `alias` (an alias change only re-announces the name) and `inspect` (applied to new
    /// connections). Two forwards with equal specs have equal hashes; the hash is
    /// stable within one process (it is meant for comparing configs, not for storing).
    pub fn spec_hash(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        // Destructuring without `..` makes adding a field a compile error here, so that the
        // new field cannot be forgotten by the reload diff.
        let Forward {
            name,
            context,
            namespace,
            target,
            port,
            pod_port,
            local_port,
            bind,
            pick,
            alias: _,
            health: _,
            // Turned on or off on the running forward (new connections).
            inspect: _,
            enabled: _,
        } = self;
        name.hash(&mut hasher);
        context.hash(&mut hasher);
        namespace.hash(&mut hasher);
        target.hash(&mut hasher);
        port.hash(&mut hasher);
        pod_port.hash(&mut hasher);
        local_port.hash(&mut hasher);
        bind.hash(&mut hasher);
        pick.hash(&mut hasher);
        hasher.finish()
    }

    /// Whether the two forwards agree on every field except `enabled`, `health`, `alias`
    /// and `inspect`, that is whether one can replace the other without restarting its
    /// listener.
    pub fn spec_eq(&self, other: &Forward) -> bool {
        Forward {
            enabled: other.enabled,
            health: other.health.clone(),
            alias: other.alias.clone(),
            inspect: other.inspect.clone(),
            ..self.clone()
        } == *other
    }
}

/// How a forward chooses among the pods behind a service, deployment or statefulset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// Keep using one ready pod for as long as it stays ready.
    #[default]
    Sticky,
    /// Rotate through the ready pods, one connection after another.
    RoundRobin,
    /// Pick a ready pod at random for each connection.
    Random,
}

impl fmt::Display for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pick::Sticky => "sticky",
            Pick::RoundRobin => "round-robin",
            Pick::Random => "random",
        })
    }
}

/// A named group of forwards, started and stopped together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's unique name (same rules as forward names).
    pub name: String,
    /// The names of the forwards in the profile, in the order given.
    #[serde(default)]
    pub forwards: Vec<String>,
}

/// The default listen address: IPv4 loopback.
fn default_bind() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Whether `bind` is the default, so that it can be left out when serializing.
fn is_default_bind(bind: &IpAddr) -> bool {
    *bind == default_bind()
}

/// Whether `pick` is the default, so that it can be left out when serializing.
fn is_default_pick(pick: &Pick) -> bool {
    *pick == Pick::default()
}

/// Forwards are enabled unless the config says otherwise.
fn default_enabled() -> bool {
    true
}

/// Whether `enabled` is the default, so that it can be left out when serializing.
fn is_default_enabled(enabled: &bool) -> bool {
    *enabled
}

/// Reads a local port as any integer and range-checks it here, so that an out-of-range value
/// is reported as "not a port" instead of the less helpful "expected u16".
fn deserialize_local_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    struct LocalPort;

    impl serde::de::Visitor<'_> for LocalPort {
        type Value = u16;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number (1-65535, or 0 for any free port)")
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u16, E> {
            u16::try_from(n).map_err(|_| {
                E::custom(format!(
                    "{n} is not a port (use 1-65535, or 0 for any free port)"
                ))
            })
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<u16, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::custom(format!(
                    "{n} is not a port (use 1-65535, or 0 for any free port)"
                ))),
            }
        }
    }

    d.deserialize_any(LocalPort)
}

/// Deserializes a scalar `T` (a string or an integer) by handing the scalar to `T`'s own
/// `Deserialize` from inside a visitor. The result is the same as `T::deserialize`, but the
/// YAML parser then attributes `T`'s errors to the scalar itself (`forwards[0].target`, with
/// its line and column) instead of to the enclosing forward, as it does for errors raised
/// after the scalar has been read.
fn deserialize_scalar<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Scalar<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Scalar<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a number")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            T::deserialize(StrDeserializer::<E>::new(v))
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            T::deserialize(U64Deserializer::<E>::new(v))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            T::deserialize(I64Deserializer::<E>::new(v))
        }
    }

    d.deserialize_any(Scalar(PhantomData))
}
