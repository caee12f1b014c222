//! What a forward points at: a target object and a port on it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The object a forward reaches, written `KIND/NAME` (`pod/solo`, `service/echo`,
/// `deployment/web`, `statefulset/db`; the short forms `po`, `svc`, `deploy`, `sts` are
/// accepted too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Pod(String),
    Service(String),
    Deployment(String),
    StatefulSet(String),
}

impl Target {
    /// The object's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Pod(n)
            | Target::Service(n)
            | Target::Deployment(n)
            | Target::StatefulSet(n) => n,
        }
    }

    /// The canonical kind word: `pod`, `service`, `deployment` or `statefulset`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Pod(_) => "pod",
            Target::Service(_) => "service",
            Target::Deployment(_) => "deployment",
            Target::StatefulSet(_) => "statefulset",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind(), self.name())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((kind, name)) = s.split_once('/') else {
            return Err(format!(
                "`{s}` is not a target; write KIND/NAME with KIND one of pod, service, deployment, statefulset"
            ));
        };
        let valid_name = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !name.starts_with(['-', '.'])
            && !name.ends_with(['-', '.']);
        if !valid_name {
            return Err(format!(
                "`{name}` is not a valid object name (lower-case letters, digits, '-' and '.')"
            ));
        }
        let name = name.to_string();
        match kind.to_ascii_lowercase().as_str() {
            "pod" | "pods" | "po" => Ok(Target::Pod(name)),
            "service" | "services" | "svc" => Ok(Target::Service(name)),
            "deployment" | "deployments" | "deploy" => Ok(Target::Deployment(name)),
            "statefulset" | "statefulsets" | "sts" => Ok(Target::StatefulSet(name)),
            other => Err(format!(
                "`{other}` is not a target kind; use pod, service, deployment or statefulset"
            )),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A remote port, by number or by name (a container port's name, or a service port's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

impl FromStr for PortRef {
    type Err = String;

    /// A port number (1-65535) or a port name (1-15 lower-case letters, digits and '-',
    /// with at least one letter), as Kubernetes names container and service ports.
    fn from_str(t: &str) -> Result<Self, Self::Err> {
        if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
            return t
                .parse::<u64>()
                .ok()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .map(PortRef::Number)
                .ok_or_else(|| format!("{t} is not a port"));
        }
        if is_port_name(t) {
            Ok(PortRef::Name(t.to_string()))
        } else {
            Err(format!(
                "`{t}` is not a port number or port name (names: at most 15 lower-case letters, digits and '-')"
            ))
        }
    }
}

/// Whether `t` is a valid Kubernetes port name.
pub(crate) fn is_port_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 15
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && t.bytes().any(|b| b.is_ascii_lowercase())
        && !t.starts_with('-')
        && !t.ends_with('-')
}

impl Serialize for PortRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PortRef::Number(n) => s.serialize_u16(*n),
            PortRef::Name(n) => s.serialize_str(n),
        }
    }
}

impl<'de> Deserialize<'de> for PortRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => u16::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .map(PortRef::Number)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a port"))),
            Raw::Text(t) => match t.parse::<u64>() {
                Ok(n) => u16::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(PortRef::Number)
                    .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a port"))),
                Err(_) => {
                    let ok = !t.is_empty()
                        && t.len() <= 15
                        && t.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && t.bytes().any(|b| b.is_ascii_lowercase());
                    if ok {
                        Ok(PortRef::Name(t))
                    } else {
                        Err(serde::de::Error::custom(format!(
                            "`{t}` is not a port number or port name"
                        )))
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_long_and_short_kinds() {
        assert_eq!("svc/echo".parse(), Ok(Target::Service("echo".into())));
        assert_eq!(
            "deployment/web".parse(),
            Ok(Target::Deployment("web".into()))
        );
        assert_eq!(
            "sts/db".parse::<Target>().map(|t| t.to_string()),
            Ok("statefulset/db".into())
        );
        assert!("echo".parse::<Target>().is_err());
        assert!("job/x".parse::<Target>().is_err());
        assert!("pod/Bad_Name".parse::<Target>().is_err());
    }
}
