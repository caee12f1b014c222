//! Imported forwards that name a service's pods' port (kftray's `remote_port`, kportal's
//! `port` on a service) made into forwards that work: the cluster is asked which service
//! port leads to that pods' port, and the forward uses it; when it cannot be asked, the
//! forward keeps `pod_port`, which the resolver understands.

use std::collections::HashMap;
use std::time::Duration;

use super::{ClientPool, ResolveError, service_port_to};
use crate::config::import::Imported;
use crate::config::{PortRef, Target};

/// How long one context may take to answer before its forwards keep `pod_port`.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(5);

/// Rewrites every imported service forward with `pod_port` to the service port that
/// leads to that pods' port, when the cluster says which; adds a note per forward saying
/// what was done. Never fails: a context that cannot be reached (within `within`) leaves
/// its forwards with `pod_port`, which forwards to the same pods' port once the cluster is
/// there.
pub async fn settle_pod_ports(pool: &ClientPool, imported: &mut Imported, within: Duration) {
    // A context that failed once is not asked again (one timeout per context, not per
    // forward).
    let mut unreachable: HashMap<Option<String>, String> = HashMap::new();
    for f in &mut imported.forwards {
        let (Target::Service(service), PortRef::Number(pod_port), true) =
            (&f.target, &f.port, f.pod_port)
        else {
            continue;
        };
        let (service, pod_port) = (service.clone(), *pod_port);
        let kept = |why: &str| {
            format!(
                "{}: port {pod_port} is the pods' port (as the tool it came from means it); {why}, so it was imported with `pod_port: true`: Ferry forwards to port {pod_port} of the service's pods",
                f.name
            )
        };
        if let Some(why) = unreachable.get(&f.context) {
            imported.notes.push(kept(why));
            continue;
        }
        let asked = tokio::time::timeout(within, async {
            let cc = pool
                .client(f.context.as_deref())
                .await
                .map_err(|e| (e.to_string(), true))?;
            let namespace = f.namespace.clone().unwrap_or(cc.namespace.clone());
            service_port_to(&cc.client, &namespace, &service, pod_port)
                .await
                .map(|port| (port, namespace))
                // Only trouble reaching the API server concerns the whole context.
                .map_err(|e| {
                    let whole_context = matches!(
                        e,
                        ResolveError::Api { .. } | ResolveError::Unauthorized { .. }
                    );
                    (e.to_string(), whole_context)
                })
        })
        .await;
        match asked {
            Ok(Ok((Some(port), namespace))) => {
                imported.notes.push(format!(
                    "{}: port {pod_port} is the pods' port (as the tool it came from means it); service {namespace}/{service} leads there from its port {port}: imported as port {port}",
                    f.name
                ));
                f.port = PortRef::Number(port);
                f.pod_port = false;
            }
            Ok(Ok((None, namespace))) => imported.notes.push(kept(&format!(
                "no port of service {namespace}/{service} leads there"
            ))),
            Ok(Err((e, false))) => imported.notes.push(kept(&e)),
            Ok(Err((e, true))) => {
                let why =
                    format!("the cluster could not be asked which service port leads there ({e})");
                imported.notes.push(kept(&why));
                unreachable.insert(f.context.clone(), why);
            }
            Err(_) => {
                let why = format!(
                    "the cluster did not answer within {} which service port leads there",
                    humantime::format_duration(within)
                );
                imported.notes.push(kept(&why));
                unreachable.insert(f.context.clone(), why);
            }
        }
    }
}
