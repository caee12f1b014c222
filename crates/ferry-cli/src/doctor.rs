//! `ferry doctor`: what on this machine and in the kubeconfig stands in the way.

use super::*;

/// One line of `ferry doctor`.
pub(crate) struct Check {
    ok: bool,
    /// Works, but not as well as it could.
    warn: bool,
    what: String,
    detail: String,
}

pub(crate) async fn doctor(target: ConfigArg) -> ExitCode {
    use ferry_core::cluster::{ClientPool, KubeconfigSource};
    let mut checks = Vec::new();
    let source = KubeconfigSource::from_env();
    let found: Vec<String> = source
        .paths()
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    checks.push(Check {
        warn: false,
        ok: !found.is_empty(),
        what: "kubeconfig".into(),
        detail: if found.is_empty() {
            format!(
                "no file at {}; set KUBECONFIG or create ~/.kube/config (or try `ferry up --demo`)",
                source
                    .paths()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("read {}", found.join(", "))
        },
    });
    let pool = ClientPool::new(source);
    let contexts = match pool.contexts() {
        Ok((contexts, _)) => contexts,
        Err(e) => {
            if !found.is_empty() {
                checks.push(Check {
                    warn: false,
                    ok: false,
                    what: "kubeconfig".into(),
                    detail: format!("cannot be read: {e}; fix the file or KUBECONFIG"),
                });
            }
            Vec::new()
        }
    };
    {
        for ctx in contexts {
            let check = match pool.client(Some(&ctx)).await {
                Err(e) => Check {
                    warn: false,
                    ok: false,
                    what: format!("context {ctx}"),
                    detail: e.to_string(),
                },
                Ok(cc) => {
                    let reach =
                        tokio::time::timeout(Duration::from_secs(5), cc.client.apiserver_version())
                            .await;
                    let plugin = cc
                        .plugin
                        .map(|p| format!("; credential plugin {p}"))
                        .unwrap_or_default();
                    match reach {
                        Ok(Ok(v)) => Check {
                            warn: false,
                            ok: true,
                            what: format!("context {ctx}"),
                            detail: format!(
                                "reachable, Kubernetes {}.{}{plugin}",
                                v.major, v.minor
                            ),
                        },
                        Ok(Err(e)) => Check {
                            warn: false,
                            ok: false,
                            what: format!("context {ctx}"),
                            detail: format!(
                                "not reachable: {e}; check the server address, the network or VPN, and the credentials{plugin}"
                            ),
                        },
                        Err(_) => Check {
                            warn: false,
                            ok: false,
                            what: format!("context {ctx}"),
                            detail: "no answer within 5s; check the network or VPN".into(),
                        },
                    }
                }
            };
            checks.push(check);
        }
    }
    let path = target.config.clone().unwrap_or_else(default_config_path);
    match read_config(&path) {
        Err(EditError::Usage(e)) | Err(EditError::Failed(e)) => checks.push(Check {
            warn: false,
            ok: false,
            what: "config".into(),
            detail: e,
        }),
        Ok(config) => {
            checks.push(Check {
                warn: false,
                ok: true,
                what: "config".into(),
                detail: format!("{} forwards in {}", config.forwards.len(), path.display()),
            });
            for f in config
                .forwards
                .iter()
                .filter(|f| f.enabled && f.local_port != 0)
            {
                let addr = std::net::SocketAddr::new(f.bind, f.local_port);
                let free = std::net::TcpListener::bind(addr);
                checks.push(Check {
                    warn: false,
                    ok: free.is_ok(),
                    what: format!("port {addr} ({})", f.name),
                    detail: match free {
                        Ok(_) => "free".into(),
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match ferry_core::ports::holder(f.local_port) {
                            Some(holder) => format!("{addr} is already in use by {holder}; stop it or pick another local_port"),
                            None => format!("{addr} is already in use; stop what uses it (ss -ltnp 'sport = :{}') or pick another local_port", f.local_port),
                        },
                        Err(e) => format!("cannot bind {addr}: {e}"),
                    },
                });
            }
            checks.extend(permissions(&pool, &config).await);
            if config.forwards.iter().any(|f| f.alias.is_some()) {
                let resolves = ferry_core::mdns::local_names_resolve();
                checks.push(Check {
                    warn: false,
                    ok: resolves != Some(false),
                    what: "local names (.local)".into(),
                    detail: match resolves {
                        Some(false) => "this machine does not resolve .local names; install nss-mdns (Debian/Ubuntu: sudo apt install libnss-mdns)".into(),
                        _ => "resolvable on this machine".into(),
                    },
                });
            }
        }
    }
    let failed = checks.iter().any(|c| !c.ok);
    if target.json {
        let list: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| serde_json::json!({"ok": c.ok, "warn": c.warn, "check": c.what, "detail": c.detail}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for c in &checks {
            println!(
                "{}  {}: {}",
                match (c.ok, c.warn) {
                    (false, _) => "FAIL",
                    (true, true) => "warn",
                    (true, false) => "ok  ",
                },
                c.what,
                c.detail
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Whether the user may do what each enabled forward needs, asked once per context,
/// namespace and kind of target; and, once per context and namespace, what would make
/// forwards better (following pod changes at once, suggesting services).
async fn permissions(
    pool: &ferry_core::cluster::ClientPool,
    config: &ferry_core::config::Config,
) -> Vec<Check> {
    use ferry_core::cluster::access::{self, Answer};
    use std::collections::BTreeMap;
    // (context as written, namespace as written, kind) → the forwards.
    type Key = (Option<String>, Option<String>, &'static str);
    let mut groups: BTreeMap<Key, Vec<&ferry_core::config::Forward>> = BTreeMap::new();
    for f in config.forwards.iter().filter(|f| f.enabled) {
        groups
            .entry((f.context.clone(), f.namespace.clone(), f.target.kind()))
            .or_default()
            .push(f);
    }
    let mut checks = Vec::new();
    let mut helpful_asked = std::collections::BTreeSet::new();
    for ((context, namespace, kind), forwards) in groups {
        // Contexts that cannot be reached were reported above.
        let Ok(cc) = pool.client(context.as_deref()).await else {
            continue;
        };
        let namespace = namespace.unwrap_or_else(|| cc.namespace.clone());
        let names = forwards
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let what = format!("permissions {}/{namespace} ({names})", cc.context);
        let answer = cc
            .access
            .check(&cc.client, &namespace, &access::needed(&forwards[0].target))
            .await;
        checks.push(match answer {
            Answer::Allowed => Check {
                ok: true,
                warn: false,
                what,
                detail: format!(
                    "may forward to {kind}s (create pods/portforward and what resolving needs)"
                ),
            },
            Answer::Denied { .. } => Check {
                ok: false,
                warn: false,
                what,
                detail: answer.sentence().unwrap_or_default(),
            },
            Answer::Unknown(why) => Check {
                ok: true,
                warn: true,
                what,
                detail: format!("{why}; a missing permission will show when the forward starts"),
            },
        });
        if helpful_asked.insert((cc.context.clone(), namespace.clone())) {
            let missing = match cc
                .access
                .check(&cc.client, &namespace, &access::helpful())
                .await
            {
                Answer::Denied { user, missing, .. } => Some((user, missing)),
                _ => None,
            };
            if let Some((user, missing)) = missing {
                let who = user
                    .map(|u| format!("user `{u}`"))
                    .unwrap_or_else(|| "this user".into());
                let mut costs = Vec::new();
                if missing.iter().any(|p| p.resource != "services") {
                    costs.push("forwards notice pod changes only when they re-resolve (every 30 s), not at once");
                }
                if missing.iter().any(|p| p.resource == "services") {
                    costs.push("the app cannot suggest services to forward");
                }
                checks.push(Check {
                    ok: true,
                    warn: true,
                    what: format!("permissions {}/{namespace}", cc.context),
                    detail: format!(
                        "{who} cannot {} in namespace `{namespace}`: {}",
                        missing
                            .iter()
                            .map(|p| p.describe())
                            .collect::<Vec<_>>()
                            .join(", "),
                        costs.join("; ")
                    ),
                });
            }
        }
    }
    checks
}
