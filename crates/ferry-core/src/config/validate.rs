//! The rules a parsed config must follow beyond its shape, checked all at once so that every
//! problem is reported together.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::error::{ConfigError, Problem};
use super::model::{CONFIG_VERSION, Config, Forward};

impl Config {
    /// Checks every rule of the format and reports all problems found, not just the first:
    ///
    /// - `version` is [`CONFIG_VERSION`];
    /// - forward names and profile names are valid (see [`check_name`]) and unique, forwards
    ///   and profiles each among themselves;
    /// - `context`, when present, is non-empty and has no surrounding blanks or control
    ///   characters, and `namespace`, when present, is a DNS label;
    /// - no two forwards, enabled or not, listen on the same non-zero local port at
    ///   overlapping addresses (`0.0.0.0` and `::` overlap every address of their family);
    /// - every forward a profile lists exists, and is listed only once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Every problem of the config, in config order; empty when the config is valid.
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.version != CONFIG_VERSION {
            problems.push(version_problem(u64::from(self.version)));
        }
        check_forwards(&self.forwards, &mut problems);
        check_profiles(self, &mut problems);
        problems
    }
}

/// The problem for an unsupported format version.
pub(crate) fn version_problem(version: u64) -> Problem {
    Problem::new(
        "version",
        format!("{version} is not supported; supported versions: {CONFIG_VERSION}"),
    )
}

/// Checks that `name` is a valid forward or profile name: 1 to 63 characters among lower-case
/// ASCII letters, digits and `-`, starting with a letter and not ending with `-` (a DNS label
/// that starts with a letter). The error says what is wrong.
pub fn check_name(name: &str) -> Result<(), String> {
    let rules = "use lower-case letters, digits and '-', starting with a letter";
    if name.is_empty() {
        return Err("a name must not be empty".to_string());
    }
    if name.len() > 63 {
        return Err(format!(
            "{name:?} is too long ({} characters, at most 63)",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{name:?} is not a valid name: {bad:?} is not allowed ({rules})"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "{name:?} is not a valid name: it must start with a letter ({rules})"
        ));
    }
    if name.ends_with('-') {
        return Err(format!(
            "{name:?} is not a valid name: it must not end with '-' ({rules})"
        ));
    }
    Ok(())
}

/// Checks an mDNS alias: a DNS label (the name before `.local`) starting with a letter.
fn check_alias(alias: &str) -> Result<(), String> {
    if is_dns_label(alias) && alias.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!(
            "{alias:?} is not a valid alias (a DNS label: lower-case letters, digits and '-', starting with a letter; `.local` is added)"
        ))
    }
}

/// 1 to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit.
fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// Checks that `namespace` is a DNS label: 1 to 63 lower-case letters, digits and `-`,
/// starting and ending with a letter or digit.
fn check_namespace(namespace: &str) -> Result<(), String> {
    if is_dns_label(namespace) {
        Ok(())
    } else {
        Err(format!(
            "{namespace:?} is not a valid namespace (a DNS label: at most 63 lower-case \
             letters, digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

/// Checks a kubeconfig context name. Kubeconfig allows almost any text, so only what is
/// surely a mistake is refused: an empty name, surrounding blanks and control characters.
fn check_context(context: &str) -> Result<(), String> {
    if context.is_empty() {
        Err("a context must not be empty; leave it out to use the current context".to_string())
    } else if context.trim() != context {
        Err(format!(
            "{context:?} starts or ends with blanks, which no context name does"
        ))
    } else if context.chars().any(char::is_control) {
        Err(format!("{context:?} contains control characters"))
    } else {
        Ok(())
    }
}

/// Whether two listen addresses overlap: they are equal, or they are of the same family and
/// one of them is the unspecified address (`0.0.0.0` or `::`), which covers its whole family.
fn addresses_overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

/// Checks the forwards' names, contexts, namespaces and local ports.
fn check_forwards(forwards: &[Forward], problems: &mut Vec<Problem>) {
    let mut first_with_name: HashMap<&str, usize> = HashMap::new();
    for (i, forward) in forwards.iter().enumerate() {
        let at = |field: &str| format!("forwards[{i}].{field}");

        if let Err(message) = check_name(&forward.name) {
            problems.push(Problem::new(at("name"), message));
        }
        if let Some(&first) = first_with_name.get(forward.name.as_str()) {
            problems.push(Problem::conflict(
                at("name"),
                format!("{:?} is used by forwards[{first}] too", forward.name),
            ));
        } else {
            first_with_name.insert(&forward.name, i);
        }

        if let Some(Err(message)) = forward.context.as_deref().map(check_context) {
            problems.push(Problem::new(at("context"), message));
        }
        if let Some(Err(message)) = forward.namespace.as_deref().map(check_namespace) {
            problems.push(Problem::new(at("namespace"), message));
        }

        problems.extend(forward.health.problems(i));

        if let crate::config::PortRef::Name(name) = &forward.port
            && !super::target::is_port_name(name)
        {
            problems.push(Problem::new(
                at("port"),
                format!(
                    "`{name}` is not a port name (at most 15 lower-case letters, digits and '-')"
                ),
            ));
        }

        if forward.pod_port && matches!(forward.port, crate::config::PortRef::Name(_)) {
            problems.push(Problem::new(
                at("port"),
                "with `pod_port`, the port is the number the pods listen on; a name needs `pod_port: false` (a service port's name)",
            ));
        }

        if let Some(inspect) = &forward.inspect {
            if inspect.body_kib > super::inspect::MAX_BODY_KIB {
                problems.push(Problem::new(
                    at("inspect.body_kib"),
                    format!(
                        "{} KiB is more than an inspector keeps of a body (at most {} KiB)",
                        inspect.body_kib,
                        super::inspect::MAX_BODY_KIB
                    ),
                ));
            }
            for (j, name) in inspect.redact.iter().enumerate() {
                if !super::inspect::is_header_name(name) {
                    problems.push(Problem::new(
                        at(&format!("inspect.redact[{j}]")),
                        format!("{name:?} is not a header name"),
                    ));
                }
            }
        }
        if let Some(alias) = &forward.alias {
            if let Err(message) = check_alias(alias) {
                problems.push(Problem::new(at("alias"), message));
            } else if let Some((j, earlier)) = forwards[..i]
                .iter()
                .enumerate()
                .find(|(_, f)| f.alias.as_deref() == Some(alias.as_str()))
            {
                problems.push(Problem::conflict(
                    at("alias"),
                    format!(
                        "{alias:?} is also the alias of forwards[{j}] ({:?}); each alias names one forward",
                        earlier.name
                    ),
                ));
            }
        }

        // Port 0 asks the system for a free port, so any number of forwards may use it.
        if forward.local_port != 0 {
            let clash = forwards[..i].iter().enumerate().find(|(_, earlier)| {
                earlier.local_port == forward.local_port
                    && addresses_overlap(earlier.bind, forward.bind)
            });
            if let Some((j, earlier)) = clash {
                let mine = SocketAddr::new(forward.bind, forward.local_port);
                let theirs = SocketAddr::new(earlier.bind, earlier.local_port);
                let message = if mine == theirs {
                    format!("{mine} is also used by forwards[{j}] ({:?})", earlier.name)
                } else {
                    format!(
                        "{mine} overlaps {theirs}, used by forwards[{j}] ({:?})",
                        earlier.name
                    )
                };
                problems.push(Problem::conflict(at("local_port"), message));
            }
        }
    }
}

/// Checks the profiles' names and the forwards they list.
fn check_profiles(config: &Config, problems: &mut Vec<Problem>) {
    let mut first_with_name: HashMap<&str, usize> = HashMap::new();
    for (i, profile) in config.profiles.iter().enumerate() {
        if let Err(message) = check_name(&profile.name) {
            problems.push(Problem::new(format!("profiles[{i}].name"), message));
        }
        if let Some(&first) = first_with_name.get(profile.name.as_str()) {
            problems.push(Problem::conflict(
                format!("profiles[{i}].name"),
                format!("{:?} is used by profiles[{first}] too", profile.name),
            ));
        } else {
            first_with_name.insert(&profile.name, i);
        }

        let mut first_listed: HashMap<&str, usize> = HashMap::new();
        for (k, name) in profile.forwards.iter().enumerate() {
            let path = format!("profiles[{i}].forwards[{k}]");
            if !config.forwards.iter().any(|f| f.name == *name) {
                problems.push(Problem::not_found(
                    path,
                    format!("no forward is named {name:?}"),
                ));
            } else if let Some(&first) = first_listed.get(name.as_str()) {
                problems.push(Problem::conflict(
                    path,
                    format!("{name:?} is already listed at profiles[{i}].forwards[{first}]"),
                ));
            }
            first_listed.entry(name).or_insert(k);
        }
    }
}
