//! `ferry mcp`: Ferry for the assistants next to a developer's editor, as a Model Context
//! Protocol server on stdin/stdout.
//!
//! It follows the CLI's rules: edits go to the config (the store by default) under its
//! lock, validated as `ferry add` validates, and whichever process runs that config (the
//! app or `ferry up`) applies them as it applies any change of the file; what runs right
//! now comes from that process's control endpoint. Nothing it answers holds credentials:
//! forwards name their kubeconfig context, never its users or tokens.
//!
//! Tools: `list_forwards`, `enable_forward`, `disable_forward`, `add_forward`,
//! `remove_forward`, `test_forward`, `discover_forwards`. Resource: `ferry://status`.

use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ListResourcesResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{
    ErrorData, RoleServer, ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router,
};
use serde_json::{Value, json};

use super::*;

/// The live status resource.
const STATUS_URI: &str = "ferry://status";
/// How long an edit waits for the running process to apply it before answering.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// Serves MCP on stdio until the client hangs up.
pub(crate) async fn mcp(config: Option<PathBuf>) -> ExitCode {
    let path = config.unwrap_or_else(default_config_path);
    let server = FerryMcp::new(path);
    let running = match server.serve(rmcp::transport::stdio()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry: mcp: {e}");
            return ExitCode::FAILURE;
        }
    };
    match running.waiting().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: mcp: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone)]
struct FerryMcp {
    /// The config it reads and edits.
    path: PathBuf,
    tool_router: ToolRouter<FerryMcp>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct NameArgs {
    /// The forward's name, as `list_forwards` gives it.
    name: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// What `kubectl port-forward` takes: `TYPE/NAME [LOCAL:]REMOTE… [-n NAMESPACE]
    /// [--context CONTEXT]`, e.g. `svc/web 8080:80 -n shop`. Without `--context` the
    /// forward is saved with kubectl's current context.
    line: String,
    /// The forward's name; by default made from the target. Only for a line with one port.
    #[serde(default)]
    name: Option<String>,
    /// Also put the new forwards in this profile (created when missing).
    #[serde(default)]
    profile: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct DiscoverArgs {
    /// The kubeconfig context to ask; default: kubectl's current one.
    #[serde(default)]
    context: Option<String>,
    /// The namespace to look in; default: the context's.
    #[serde(default)]
    namespace: Option<String>,
    /// Look in every namespace the user may list (instead of one).
    #[serde(default)]
    all_namespaces: bool,
}

/// What an edit found to say: success text, or the error the user should see.
type Said = Result<String, String>;

fn text(result: Said) -> CallToolResult {
    match result {
        Ok(t) => CallToolResult::success(vec![ContentBlock::text(t)]),
        Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
    }
}

fn edit_error(e: EditError) -> String {
    match e {
        EditError::Usage(m) | EditError::Failed(m) => m,
    }
}

impl FerryMcp {
    fn new(path: PathBuf) -> FerryMcp {
        FerryMcp {
            path,
            tool_router: Self::tool_router(),
        }
    }

    /// Who runs the config and what its forwards do, if anything runs it.
    async fn running(&self) -> Option<(Runner, Snapshot)> {
        #[cfg(any(unix, windows))]
        {
            let name = ferry_core::control::source_name(Some(&self.path));
            let endpoint = ferry_core::control::endpoint_path(&name);
            let client = ferry_core::control::ControlClient::connect(&endpoint)
                .await
                .ok()??;
            client.status().await.ok()
        }
        #[cfg(not(any(unix, windows)))]
        {
            None
        }
    }

    /// The config's forwards with what runs them right now: the status JSON of the tools
    /// and the resource.
    async fn status(&self) -> Result<Value, String> {
        let path = self.path.clone();
        let config = tokio::task::spawn_blocking(move || read_config(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(edit_error)?;
        let running = self.running().await;
        let forwards: Vec<Value> = config
            .forwards
            .iter()
            .map(|f| {
                let live = running.as_ref().and_then(|(_, s)| s.get(&f.name));
                let mut entry = json!({
                    "name": f.name,
                    "enabled": f.enabled,
                    "target": format!("{}:{}", f.target, f.port),
                    "namespace": f.namespace,
                    "context": f.context,
                    "local": format!("{}:{}", f.bind, f.local_port),
                    "profiles": config
                        .profiles
                        .iter()
                        .filter(|p| p.forwards.contains(&f.name))
                        .map(|p| p.name.clone())
                        .collect::<Vec<_>>(),
                });
                if let Some(s) = live {
                    entry["state"] = json!(s.state);
                    entry["health"] = json!(s.health);
                    entry["pod"] = json!(s.pod);
                    entry["url"] = json!(s.url);
                    entry["local"] = json!(s.local);
                    entry["error"] = json!(s.error);
                    entry["detail"] = json!(s.detail);
                    entry["latency_ms"] = json!(s.latency_ms);
                    entry["connections"] = json!(s.connections);
                } else {
                    entry["state"] = json!("not running");
                }
                entry
            })
            .collect();
        Ok(json!({
            "config": self.path.display().to_string(),
            "runner": running.as_ref().map(|(r, _)| r),
            "note": if running.is_none() {
                Some("nothing runs this config now: the app or `ferry up` runs its enabled forwards")
            } else {
                None
            },
            "forwards": forwards,
        }))
    }

    /// Runs a store edit off the async threads (it takes the file's lock).
    async fn edit(
        &self,
        change: impl FnOnce(&Path) -> Result<String, EditError> + Send + 'static,
    ) -> Said {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || change(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(edit_error)
    }

    /// Waits until the running process shows `name` as `settled` says, and describes what
    /// it shows then (or that nothing runs the config).
    async fn after_edit(
        &self,
        name: &str,
        settled: impl Fn(Option<&ForwardStatus>) -> bool,
    ) -> String {
        let deadline = Instant::now() + APPLY_WAIT;
        loop {
            let Some((runner, snapshot)) = self.running().await else {
                return "Nothing runs this config now; the app or `ferry up` applies it when started.".into();
            };
            let status = snapshot.get(name);
            if settled(status) || Instant::now() >= deadline {
                return match status {
                    Some(s) => format!("{runner} now shows {name}: {}", describe(s)),
                    None => format!("{runner} no longer runs {name}."),
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn set_enabled(&self, name: String, enabled: bool) -> CallToolResult {
        let wanted = name.clone();
        let said = self
            .edit(move |path| {
                modify(path, |config| {
                    config
                        .set_enabled(&wanted, enabled)
                        .map_err(|e| EditError::Usage(format!("name: {e}")))?;
                    Ok(format!(
                        "{} {wanted}.",
                        if enabled { "Enabled" } else { "Disabled" }
                    ))
                })
            })
            .await;
        let Ok(said) = said else { return text(said) };
        let now = self
            .after_edit(&name, |s| {
                s.is_some_and(|s| {
                    let off = s.state == ForwardState::Disabled;
                    off != enabled && s.state != ForwardState::Starting
                })
            })
            .await;
        text(Ok(format!("{said} {now}")))
    }
}

#[tool_router]
impl FerryMcp {
    #[tool(
        description = "List Ferry's saved port-forwards with what runs them now: state (active, starting, degraded, reconnecting, error, disabled, or 'not running' when neither the app nor `ferry up` runs the config), health, local address and URL, target, namespace, context, profiles."
    )]
    async fn list_forwards(&self) -> CallToolResult {
        text(
            self.status()
                .await
                .and_then(|v| serde_json::to_string_pretty(&v).map_err(|e| e.to_string())),
        )
    }

    #[tool(
        description = "Enable a saved forward: the app or `ferry up`, when running, starts it. Answers with its state after."
    )]
    async fn enable_forward(
        &self,
        Parameters(NameArgs { name }): Parameters<NameArgs>,
    ) -> CallToolResult {
        self.set_enabled(name, true).await
    }

    #[tool(
        description = "Disable a saved forward: the app or `ferry up`, when running, stops it and frees its local port."
    )]
    async fn disable_forward(
        &self,
        Parameters(NameArgs { name }): Parameters<NameArgs>,
    ) -> CallToolResult {
        self.set_enabled(name, false).await
    }

    #[tool(
        description = "Save new port-forwards from a `kubectl port-forward`-style line (e.g. `svc/web 8080:80 -n shop --context kind`), validated as `ferry add` validates: names made unique, a clash with a saved forward's local port is an error naming it. They are enabled, so a running app or `ferry up` starts them."
    )]
    async fn add_forward(&self, Parameters(args): Parameters<AddArgs>) -> CallToolResult {
        let AddArgs {
            line,
            name,
            profile,
        } = args;
        if line.trim().is_empty() {
            return text(Err(
                "line: give the target and ports, e.g. `svc/web 8080:80 -n shop`".into(),
            ));
        }
        let path = self.path.clone();
        let done =
            tokio::task::spawn_blocking(move || add_line(&path, &line, name, profile.as_deref()))
                .await;
        let (said, imported) = match done {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return text(Err(edit_error(e))),
            Err(e) => return text(Err(e.to_string())),
        };
        let mut out = vec![format!("{said}.")];
        out.extend(imported.notes.iter().map(|n| format!("Note: {n}")));
        for f in &imported.forwards {
            out.push(
                self.after_edit(&f.name, |s| {
                    s.is_some_and(|s| s.state != ForwardState::Starting)
                })
                .await,
            );
        }
        text(Ok(out.join("\n")))
    }

    #[tool(
        description = "Remove a saved forward (and its mentions in profiles); a running app or `ferry up` stops it."
    )]
    async fn remove_forward(
        &self,
        Parameters(NameArgs { name }): Parameters<NameArgs>,
    ) -> CallToolResult {
        let wanted = name.clone();
        let said = self
            .edit(move |path| {
                modify(path, |config| {
                    config
                        .remove_forward(&wanted)
                        .map_err(|e| EditError::Usage(format!("name: {e}")))?;
                    Ok(format!("Removed {wanted}."))
                })
            })
            .await;
        let Ok(said) = said else { return text(said) };
        let now = self.after_edit(&name, |s| s.is_none()).await;
        text(Ok(format!("{said} {now}")))
    }

    #[tool(
        description = "List the forwards the cluster's objects declare for their users (annotations on services, deployments, statefulsets and pods: Ferry's ferry.dev/forwards, kftray's and k9s's), with whether this config has each already and the add_forward line that adds it."
    )]
    async fn discover_forwards(
        &self,
        Parameters(args): Parameters<DiscoverArgs>,
    ) -> CallToolResult {
        text(self.discovered(args).await)
    }

    #[tool(
        description = "Test a running forward: connect to its local address as a client would, and report whether it answered, how long it took, and its health checks' latest finding."
    )]
    async fn test_forward(
        &self,
        Parameters(NameArgs { name }): Parameters<NameArgs>,
    ) -> CallToolResult {
        let Some((runner, snapshot)) = self.running().await else {
            return text(Err(format!(
                "name: nothing runs {name} now: start the app or `ferry up`, then test again"
            )));
        };
        let Some(status) = snapshot.get(&name) else {
            return text(Err(format!("name: {runner} runs no forward called {name}")));
        };
        let Some(local) = status.local else {
            return text(Err(format!(
                "{name} is {} and listens nowhere{}",
                status.state.as_str(),
                status
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )));
        };
        let started = Instant::now();
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(local),
        )
        .await;
        let answer = match connected {
            Ok(Ok(_)) => json!({
                "reachable": true,
                "connect_ms": started.elapsed().as_secs_f64() * 1000.0,
            }),
            Ok(Err(e)) => json!({"reachable": false, "error": e.to_string()}),
            Err(_) => json!({"reachable": false, "error": "no answer within 5 s"}),
        };
        let mut result = json!({
            "name": name,
            "local": local,
            "url": status.url,
            "state": status.state,
            "health": status.health,
            "detail": status.detail,
            "latency_ms": status.latency_ms,
            "pod": status.pod,
        });
        if let (Some(r), Some(a)) = (result.as_object_mut(), answer.as_object()) {
            r.extend(a.clone());
        }
        text(serde_json::to_string_pretty(&result).map_err(|e| e.to_string()))
    }
}

impl FerryMcp {
    /// The forwards the cluster declares, as JSON for the assistant.
    async fn discovered(&self, args: DiscoverArgs) -> Said {
        use ferry_core::cluster::discover::{Scope, discover};
        let scope = Scope::asked(args.namespace.as_deref(), args.all_namespaces)
            .ok_or("namespace: give a namespace or all_namespaces, not both")?;
        let pool = ferry_core::cluster::ClientPool::new(kubeconfig_for(&self.path));
        let found = discover(&pool, args.context.as_deref(), &scope)
            .await
            .map_err(|e| format!("context: {e}"))?;
        let path = self.path.clone();
        let config = tokio::task::spawn_blocking(move || read_config(&path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(edit_error)?;
        let declared: Vec<Value> = found
            .declared
            .iter()
            .map(|d| {
                let f = &d.forward;
                let have = ferry_core::config::declared::already_have(&config, d);
                // The add_forward line for it (kubectl's syntax has no pods'-port mark).
                let add_line = (!f.pod_port).then(|| {
                    format!(
                        "{} {}:{} -n {} --context {}",
                        f.target,
                        f.local_port,
                        f.port,
                        f.namespace.as_deref().unwrap_or("default"),
                        f.context.as_deref().unwrap_or(&found.context),
                    )
                });
                json!({
                    "name": f.name,
                    "object": d.object,
                    "namespace": f.namespace,
                    "declared_by": d.source.to_string(),
                    "description": d.description,
                    "target": format!("{}:{}", f.target, f.port),
                    "local_port": f.local_port,
                    "you_have_it_as": have,
                    "add_line": add_line,
                    "notes": d.notes,
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({
            "context": found.context,
            "declared": declared,
            "problems": found.problems,
            "hint": "add the ones you want with add_forward (its line), or `ferry discover --import` adds every new one",
        }))
        .map_err(|e| e.to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for FerryMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("ferry", env!("CARGO_PKG_VERSION")).with_title("Ferry"),
        )
        .with_instructions(
            "Ferry keeps Kubernetes port-forwards alive. List the saved forwards and their state with list_forwards; enable, disable, add or remove them; test_forward checks one that runs. The app or `ferry up` runs the forwards; this server edits what they run.",
        )
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(STATUS_URI, "status")
                .with_title("Ferry's forwards now")
                .with_description("Every saved forward with its live state and health (JSON)")
                .with_mime_type("application/json"),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != STATUS_URI {
            return Err(ErrorData::invalid_params(
                format!("uri: no resource {}; Ferry has {STATUS_URI}", request.uri),
                None,
            ));
        }
        let status = self
            .status()
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let body = serde_json::to_string_pretty(&status)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(
            ReadResourceResult::new(vec![ResourceContents::TextResourceContents {
                uri: STATUS_URI.into(),
                mime_type: Some("application/json".into()),
                text: body,
                meta: None,
            }])
            .into(),
        )
    }
}
