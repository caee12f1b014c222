//! Forwards a team shares through the cluster (issue 20), as the app offers them: what
//! the objects of a namespace declare in annotations (read by
//! `ferry_core::cluster::discover`), each marked with the saved forward that already does
//! it, and the others made ready to add through the usual `save_forward`.
//!
//! A declared forward the user does not have is offered as it would be saved: a name a
//! saved forward has gets a suffix (`echo-2`), and a local port a saved forward (or an
//! earlier offer, or another program on this machine) holds is moved to the next free one
//! above it, each with a note. The shell does this, as `ferry discover --import` does, so
//! the window adds the forward it shows without changing it.
//!
//! [`watch`] keeps the count behind the window's badge: the forwards that the namespaces
//! the user already forwards from declare and the user does not have. It asks the cluster
//! at start, when a namespace appears in the config, and again for each namespace after
//! [`RECHECK_EVERY`]; any other change of the config is counted against what it already
//! knows, without a request.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ferry_core::cluster::ClientPool;
use ferry_core::cluster::discover::{Discovery, Scope, discover};
use ferry_core::config::declared::{self, Declared, Origin};
use ferry_core::config::{Config, Forward, import};
use serde::Serialize;
use tokio::time::Instant;

use crate::app::AppCore;

/// How long what a namespace declares is trusted before the badge's watch asks again.
/// Declarations change when a team edits its manifests, which is rare; a request every few
/// minutes per namespace is nothing to an API server.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5 * 60);

/// How long the config must be still before the watch looks at it: an import or a profile
/// switch changes it several times in a row.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The most namespaces the watch asks about in one round (each costs four lists); the
/// others wait for the next round.
pub const MAX_NAMESPACES: usize = 8;

/// Which tool's annotation declared a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
pub enum DeclaredSource {
    /// Ferry's own `ferry.dev/forwards`.
    #[serde(rename = "Ferry")]
    Ferry,
    /// kftray's `kftray.app/configs` (or `kftray.app/enabled`).
    #[serde(rename = "kftray")]
    Kftray,
    /// k9s's `k9scli.io/auto-port-forwards` or `k9scli.io/port-forwards`.
    #[serde(rename = "k9s")]
    K9s,
}

impl From<Origin> for DeclaredSource {
    fn from(o: Origin) -> Self {
        match o {
            Origin::Ferry => DeclaredSource::Ferry,
            Origin::Kftray => DeclaredSource::Kftray,
            Origin::K9s => DeclaredSource::K9s,
        }
    }
}

/// One forward a cluster object declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct DeclaredForward {
    /// The name the declaration gives it.
    pub name: String,
    /// The object it is declared on, `KIND/NAME` (`service/web`).
    pub object: String,
    pub namespace: String,
    pub source: DeclaredSource,
    /// What it is for, in the words of whoever declared it.
    pub description: Option<String>,
    /// What did not carry over in reading it, and what was changed to offer it (a name or a
    /// local port taken).
    pub notes: Vec<String>,
    /// The saved forward that already does this (same context, namespace, target and
    /// port), if any.
    pub have: Option<String>,
    /// The forward to save as it is: when the user does not have it, with a name and a
    /// local port no saved forward has.
    pub forward: Forward,
}

/// What `discover_forwards` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct DiscoverReport {
    /// The context asked (the current one when none was named).
    pub context: String,
    /// By namespace, then object.
    pub declared: Vec<DeclaredForward>,
    /// Annotations that could not be read and kinds that could not be listed, as sentences.
    pub problems: Vec<String>,
}

/// Forwards a namespace the user forwards from declares that the user does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct DeclaredNew {
    pub context: String,
    pub namespace: String,
    pub count: u32,
}

/// Where to look, from the command's arguments: one namespace, every one, or the
/// context's own.
pub fn scope(
    namespace: Option<&str>,
    all_namespaces: bool,
) -> Result<Scope, crate::error::AppError> {
    let namespace = namespace.map(str::trim).filter(|n| !n.is_empty());
    Scope::asked(namespace, all_namespaces).ok_or_else(|| {
        crate::error::AppError::invalid(
            "namespace",
            "a namespace and all namespaces were both asked for: give one",
        )
    })
}

/// `found` against `config`: each declared forward with the saved one that does it, and
/// those the user does not have given a name and a local port no saved forward (nor an
/// earlier one of these) has; `free` says whether this machine has a port free.
pub fn report(
    config: &Config,
    found: Discovery,
    free: impl Fn(IpAddr, u16) -> bool,
) -> DiscoverReport {
    let mut names: BTreeSet<String> = config.forwards.iter().map(|f| f.name.clone()).collect();
    let mut ports = declared::claimed_ports(config);
    let declared = found
        .declared
        .into_iter()
        .map(|d| {
            let have = declared::already_have(config, &d);
            let Declared {
                mut forward,
                source,
                object,
                description,
                mut notes,
            } = d;
            let name = forward.name.clone();
            if have.is_none() {
                forward.name = import::unique(&name, &mut names);
                if forward.name != name {
                    notes.push(format!(
                        "a saved forward is named {name}; offered as {}",
                        forward.name
                    ));
                }
                if let Some(moved) = declared::claim_local_port(&mut forward, &mut ports, &free) {
                    let holder = match moved.holder {
                        Some(other) => format!("taken by {other}"),
                        None => "in use on this machine".to_string(),
                    };
                    let wanted = moved.wanted;
                    notes.push(match moved.given {
                        Some(p) => format!("local port {wanted} is {holder}; offered with {p}"),
                        None => format!(
                            "local port {wanted} is {holder}; the system picks one when it starts"
                        ),
                    });
                }
            }
            DeclaredForward {
                name,
                object,
                namespace: forward.namespace.clone().unwrap_or_default(),
                source: source.into(),
                description,
                notes,
                have,
                forward,
            }
        })
        .collect();
    DiscoverReport {
        context: found.context,
        declared,
        problems: found.problems,
    }
}

// === the badge's watch ===

/// What one namespace declared when last asked.
struct Known {
    at: Instant,
    declared: Vec<Declared>,
}

/// Keeps [`AppCore`]'s count of new declared forwards (`AppState::declared`) until the core
/// shuts down or is gone: holds the core weakly, and the client pool (not the core) across
/// each request. One request at a time, per namespace, at most every [`RECHECK_EVERY`].
pub(crate) async fn watch(core: Weak<AppCore>) {
    let Some(mut changes) = core.upgrade().map(|c| c.changes()) else {
        return;
    };
    let mut known: HashMap<(String, String), Known> = HashMap::new();
    loop {
        let Some((config, pool)) = core.upgrade().map(|c| (c.config(), c.client_pool())) else {
            return;
        };
        let wanted = namespaces_of(&config, &pool).await;
        let now = Instant::now();
        let stale: Vec<&(String, String)> = wanted
            .iter()
            .filter(|key| known.get(*key).is_none_or(|k| now >= k.at + RECHECK_EVERY))
            .take(MAX_NAMESPACES)
            .collect();
        for key in stale {
            let (context, namespace) = key;
            let declared = match discover(
                &pool,
                Some(context),
                &Scope::Namespace(namespace.clone()),
            )
            .await
            {
                Ok(found) => found.declared,
                Err(e) => {
                    tracing::debug!(context, namespace, error = %e, "what the namespace declares is not known");
                    Vec::new()
                }
            };
            known.insert(
                key.clone(),
                Known {
                    at: Instant::now(),
                    declared,
                },
            );
        }
        drop(pool);
        // Counted against the config now: it may have changed during the requests.
        let Some(current) = core.upgrade() else {
            return;
        };
        let config = current.config();
        let counts = count_new(&config, &wanted, &known);
        current.set_declared_new(counts);
        drop(current);

        let next = wanted
            .iter()
            .filter_map(|key| known.get(key).map(|k| k.at + RECHECK_EVERY))
            .min();
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(SETTLE).await;
                changes.borrow_and_update();
            }
            () = sleep_until(next) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The (context, namespace) pairs the saved forwards use, in the order they are saved; a
/// forward without a namespace uses its context's.
async fn namespaces_of(config: &Config, pool: &Arc<ClientPool>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for f in &config.forwards {
        let Some(context) = &f.context else { continue };
        let namespace = match &f.namespace {
            Some(ns) => ns.clone(),
            None => match pool.client(Some(context)).await {
                Ok(cc) => cc.namespace.clone(),
                Err(_) => continue,
            },
        };
        let key = (context.clone(), namespace);
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// Per namespace in `wanted`, the declared forwards `config` does not have (namespaces
/// with none left out).
fn count_new(
    config: &Config,
    wanted: &[(String, String)],
    known: &HashMap<(String, String), Known>,
) -> Vec<DeclaredNew> {
    wanted
        .iter()
        .filter_map(|key| {
            let k = known.get(key)?;
            let count = k
                .declared
                .iter()
                .filter(|d| declared::already_have(config, d).is_none())
                .count();
            (count > 0).then(|| DeclaredNew {
                context: key.0.clone(),
                namespace: key.1.clone(),
                count: u32::try_from(count).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::config::{PortRef, Target};

    fn fwd(name: &str, target: &str, port: u16, local: u16) -> Forward {
        let mut f = Forward::new(
            name,
            target.parse::<Target>().unwrap(),
            PortRef::Number(port),
            local,
        );
        f.context = Some("c".into());
        f.namespace = Some("demo".into());
        f
    }

    fn declared(f: Forward) -> Declared {
        Declared {
            object: f.target.to_string(),
            forward: f,
            source: Origin::Ferry,
            description: None,
            notes: Vec::new(),
        }
    }

    fn found(list: Vec<Forward>) -> Discovery {
        Discovery {
            context: "c".into(),
            declared: list.into_iter().map(declared).collect(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn had_forwards_are_named_and_new_ones_get_free_names_and_ports() {
        let config = Config {
            forwards: vec![
                fwd("web", "service/web", 80, 18081),
                fwd("echo", "service/echo", 80, 18080),
            ],
            ..Config::default()
        };
        let r = report(
            &config,
            found(vec![
                // Had, whatever its name and port.
                fwd("site", "service/web", 80, 9999),
                // New, but its name and port are taken.
                fwd("echo", "service/echo", 9000, 18080),
                // New, its port taken by the offer before it.
                fwd("other", "service/other", 1, 18081),
                // New, its port held by another program.
                fwd("held", "service/held", 1, 30000),
            ]),
            |_, p| p != 30000,
        );
        let got: Vec<(&str, &str, u16, Option<&str>)> = r
            .declared
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.forward.name.as_str(),
                    d.forward.local_port,
                    d.have.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("site", "site", 9999, Some("web")),
                ("echo", "echo-2", 18082, None),
                ("other", "other", 18083, None),
                ("held", "held", 30001, None),
            ]
        );
        assert_eq!(
            r.declared[1].notes,
            vec![
                "a saved forward is named echo; offered as echo-2".to_string(),
                "local port 18080 is taken by echo; offered with 18082".to_string(),
            ]
        );
        assert_eq!(
            r.declared[3].notes,
            vec!["local port 30000 is in use on this machine; offered with 30001".to_string()]
        );
        assert!(r.declared[0].notes.is_empty());
    }

    #[test]
    fn the_scope_is_one_namespace_all_or_the_contexts() {
        assert_eq!(
            scope(Some("demo"), false).unwrap(),
            Scope::Namespace("demo".into())
        );
        assert_eq!(scope(Some(" "), false).unwrap(), Scope::ContextNamespace);
        assert_eq!(scope(None, true).unwrap(), Scope::All);
        assert_eq!(
            scope(Some("demo"), true).unwrap_err().field.as_deref(),
            Some("namespace")
        );
    }

    #[test]
    fn counts_leave_out_what_the_config_has() {
        let mut config = Config {
            forwards: vec![fwd("web", "service/web", 80, 18081)],
            ..Config::default()
        };
        let key = ("c".to_string(), "demo".to_string());
        let mut known = HashMap::new();
        known.insert(
            key.clone(),
            Known {
                at: Instant::now(),
                declared: vec![
                    declared(fwd("web", "service/web", 80, 1)),
                    declared(fwd("echo", "service/echo", 80, 2)),
                ],
            },
        );
        let wanted = vec![key];
        assert_eq!(
            count_new(&config, &wanted, &known),
            vec![DeclaredNew {
                context: "c".into(),
                namespace: "demo".into(),
                count: 1
            }]
        );
        config.forwards.push(fwd("e", "service/echo", 80, 0));
        assert_eq!(count_new(&config, &wanted, &known), Vec::new());
    }
}
