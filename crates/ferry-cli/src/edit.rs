//! Editing a config file or the store: `ls`, `add`, `rm`, `enable`, `disable`, `import`,
//! `export`, `profile`.

use super::*;

/// Reads forwards kept by another tool, guessing the format when none is given.
pub(crate) fn import_file(
    path: &Path,
    format: Option<ImportFormat>,
) -> Result<ferry_core::config::import::Imported, String> {
    use ferry_core::config::import;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str());
    let format = match format {
        None => import::detect(&text, name),
        Some(ImportFormat::Kubectl) => import::Format::Kubectl,
        Some(ImportFormat::Kftray) => import::Format::Kftray,
        Some(ImportFormat::Kportal) => import::Format::Kportal,
        Some(ImportFormat::Ferry) => import::Format::Ferry,
    };
    import::read(&text, format)
        .map_err(|e| format!("{}: {e}; nothing was imported", path.display()))
}

/// kubectl's current context (from the kubeconfig as kubectl finds it), if there is one.
pub(crate) fn current_context() -> Option<String> {
    ferry_core::cluster::ClientPool::new(ferry_core::cluster::KubeconfigSource::from_env())
        .contexts()
        .ok()
        .and_then(|(_, current)| current)
}

/// Asks the cluster (the kubeconfig as kubectl finds it) which service ports lead to the
/// pods' ports that kftray and kportal entries name; see `cluster::settle_pod_ports`.
pub(crate) fn settle_pod_ports(imported: &mut ferry_core::config::import::Imported) {
    use ferry_core::cluster::{ClientPool, KubeconfigSource, SETTLE_WITHIN};
    if !imported.forwards.iter().any(|f| f.pod_port) {
        return;
    }
    let pool = ClientPool::new(KubeconfigSource::from_env());
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(ferry_core::cluster::settle_pod_ports(
            &pool,
            imported,
            SETTLE_WITHIN,
        )),
        Err(e) => imported.notes.push(format!(
            "the cluster was not asked which service ports the pods' ports belong to ({e}); those forwards keep `pod_port: true`"
        )),
    }
}

// === config editing: ls, add, rm, enable, disable, import, export ===

pub(crate) enum EditError {
    /// Bad input: exit 2, nothing written.
    Usage(String),
    /// Could not read or write: exit 1.
    Failed(String),
}

/// The store the app keeps its forwards in, which the CLI edits by default.
pub(crate) fn default_config_path() -> PathBuf {
    Store::default_path()
}

/// Whether `path` is a store (the app's JSON file with `config` and `settings`) rather than
/// a plain config file: the default store, or a JSON file with a top-level `config`.
pub(crate) fn is_store(path: &Path) -> bool {
    if resolve_link(path) == resolve_link(&Store::default_path()) {
        return true;
    }
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    is_json
        && std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("config").is_some())
}

/// The extra kubeconfig files the app's settings list (`settings.kubeconfig_paths`).
pub(crate) fn store_kubeconfig_paths(path: &Path) -> Vec<PathBuf> {
    Store::new(path)
        .load()
        .ok()
        .and_then(|doc| {
            doc.settings
                .get("kubeconfig_paths")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str())
                        .map(PathBuf::from)
                        .collect()
                })
        })
        .unwrap_or_default()
}

/// The kubeconfig files for the forwards of the config at `path`: those kubectl reads
/// (KUBECONFIG, else ~/.kube/config), then, for the app's store, the extra files its
/// settings list.
pub(crate) fn kubeconfig_for(path: &Path) -> ferry_core::cluster::KubeconfigSource {
    use ferry_core::cluster::KubeconfigSource;
    let source = KubeconfigSource::from_env();
    let extra = if is_store(path) {
        store_kubeconfig_paths(path)
    } else {
        Vec::new()
    };
    if extra.is_empty() {
        return source;
    }
    let mut paths = source.paths().to_vec();
    paths.extend(extra);
    KubeconfigSource::from_paths(paths)
}

/// An edit's error inside [`Store::modify`].
pub(crate) struct StoreEdit(EditError);

impl From<StoreError> for StoreEdit {
    fn from(e: StoreError) -> Self {
        StoreEdit(store_error(e))
    }
}

pub(crate) fn store_error(e: StoreError) -> EditError {
    match e {
        StoreError::Invalid(e) => EditError::Usage(format!(
            "the change would make the config invalid, so nothing was written:\n{e}"
        )),
        StoreError::Corrupt { .. } => EditError::Usage(format!(
            "{e}; nothing was written (the app keeps such a file as a backup when it starts)"
        )),
        other => EditError::Failed(other.to_string()),
    }
}

/// Reads the config, or an empty one when the file does not exist yet.
pub(crate) fn read_config(path: &Path) -> Result<Config, EditError> {
    Ok(read_config_text(path)?.0)
}

/// The config and its text (empty for a file that does not exist yet, and for a store),
/// read once.
pub(crate) fn read_config_text(path: &Path) -> Result<(Config, String), EditError> {
    if is_store(path) {
        let doc = Store::new(path).load().map_err(store_error)?;
        return Ok((doc.config, String::new()));
    }
    if !path.exists() {
        return Ok((Config::default(), String::new()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| EditError::Failed(format!("{}: {e}", path.display())))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = if is_json {
        Config::from_json(&text)
    } else {
        Config::from_yaml(&text)
    };
    let config = parsed.map_err(|e| EditError::Usage(format!("{}: {e}", path.display())))?;
    Ok((config, text))
}

/// Writes the config atomically (see [`write_atomic`]), keeping the file's permissions.
pub(crate) fn write_config(path: &Path, config: &Config) -> Result<(), EditError> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let text = if is_json {
        config.to_json()
    } else {
        config.to_yaml()
    }
    .map_err(|e| EditError::Failed(e.to_string()))?;
    write_atomic(path, text.as_bytes())
        .map_err(|e| EditError::Failed(format!("writing {}: {e}", path.display())))
}

/// Read, change, validate, write — under the file's lock, which the app takes too, so
/// concurrent writers take turns. `change` says what it did.
pub(crate) fn modify(
    path: &Path,
    change: impl FnOnce(&mut Config) -> Result<String, EditError>,
) -> Result<String, EditError> {
    let path = &resolve_link(path);
    if is_store(path) {
        return Store::new(path)
            .modify(|doc| change(&mut doc.config).map_err(StoreEdit))
            .map(|(said, _)| said)
            .map_err(|StoreEdit(e)| e);
    }
    let _lock = FileLock::take(path).map_err(|e| EditError::Failed(e.to_string()))?;
    let (mut config, text) = read_config_text(path)?;
    if text
        .lines()
        .any(|l| l.trim_start().starts_with('#') || l.contains(" #"))
    {
        eprintln!(
            "ferry: note: {} has comments; rewriting it keeps every setting but not the comments",
            path.display()
        );
    }
    let said = change(&mut config)?;
    config.validate().map_err(|e| {
        EditError::Usage(format!(
            "the change would make the config invalid, so nothing was written:\n{e}"
        ))
    })?;
    write_config(path, &config)?;
    Ok(said)
}

pub(crate) fn print_forwards(config: &Config, json: bool) {
    if json {
        let list: Vec<serde_json::Value> = config
            .forwards
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "context": f.context, "namespace": f.namespace,
                    "target": f.target.to_string(), "port": f.port.to_string(),
                    "local_port": f.local_port, "bind": f.bind.to_string(),
                    "alias": f.alias, "enabled": f.enabled,
                    "profiles": config.profiles.iter().filter(|p| p.forwards.contains(&f.name)).map(|p| p.name.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    println!(
        "{:<20} {:<8} {:<28} {:<22} CONTEXT/NAMESPACE",
        "NAME", "ENABLED", "TARGET", "LOCAL"
    );
    for f in &config.forwards {
        println!(
            "{:<20} {:<8} {:<28} {:<22} {}/{}",
            f.name,
            if f.enabled { "yes" } else { "no" },
            format!("{}:{}", f.target, f.port),
            format!("{}:{}", f.bind, f.local_port),
            f.context.as_deref().unwrap_or("(current)"),
            f.namespace.as_deref().unwrap_or("(default)"),
        );
    }
}

pub(crate) fn report(
    json: bool,
    message: &str,
    imported: Option<&ferry_core::config::import::Imported>,
) {
    if json {
        let value = match imported {
            Some(i) => serde_json::json!({
                "message": message,
                "forwards": i.forwards.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                "renamed": i.renamed.iter().map(|(a, b)| serde_json::json!({"from": a, "to": b})).collect::<Vec<_>>(),
                "notes": i.notes,
            }),
            None => serde_json::json!({"message": message}),
        };
        println!("{value}");
    } else {
        println!("{message}");
        if let Some(i) = imported {
            for (from, to) in &i.renamed {
                println!("  renamed {from} → {to} (the name was taken)");
            }
            for note in &i.notes {
                println!("  note: {note}");
            }
        }
    }
}

pub(crate) fn edit(command: Command) -> Result<(), EditError> {
    match command {
        Command::Up { .. }
        | Command::Status { .. }
        | Command::Completions { .. }
        | Command::Mcp { .. }
        | Command::Discover(_)
        | Command::Inspect(_)
        | Command::Manpage { .. } => Ok(()),
        Command::Ls { target } => {
            let path = target.config.unwrap_or_else(default_config_path);
            print_forwards(&read_config(&path)?, target.json);
            Ok(())
        }
        Command::Export { target, format } => {
            let path = target.config.unwrap_or_else(default_config_path);
            let config = read_config(&path)?;
            let text = match format {
                ExportFormat::Ferry => if target.json {
                    config.to_json()
                } else {
                    config.to_yaml()
                }
                .map_err(|e| EditError::Failed(e.to_string()))?,
                ExportFormat::Kftray => {
                    let (text, notes) = ferry_core::config::import::kftray_export(&config);
                    for n in notes {
                        eprintln!("ferry: {n}");
                    }
                    format!("{text}\n")
                }
            };
            print!("{text}");
            Ok(())
        }
        Command::Add {
            mut target,
            mut name,
            mut profile,
            line,
        } => {
            // Ferry's own options may come after the kubectl-style line, where the
            // argument parser hands them over as part of it: take them out.
            let mut words = Vec::new();
            let mut rest = line.into_iter();
            while let Some(w) = rest.next() {
                let (flag, inline) = match w.split_once('=') {
                    Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                    _ => (w.clone(), None),
                };
                let mut value = || inline.clone().or_else(|| rest.next());
                match flag.as_str() {
                    "--name" => name = value(),
                    "--profile" => profile = value(),
                    "-c" | "--config" => target.config = value().map(PathBuf::from),
                    "--json" => target.json = true,
                    _ => words.push(w),
                }
            }
            let path = target.config.clone().unwrap_or_else(default_config_path);
            let (said, done) = add_line(&path, &words.join(" "), name, profile.as_deref())?;
            report(target.json, &said, Some(&done));
            Ok(())
        }
        Command::Rm { target, name } => {
            let path = target.config.unwrap_or_else(default_config_path);
            let said = modify(&path, |config| {
                config
                    .remove_forward(&name)
                    .map_err(|e| EditError::Usage(format!("{e} in {}", path.display())))?;
                Ok(format!("removed {name}"))
            })?;
            report(target.json, &said, None);
            Ok(())
        }
        Command::Profile { target, action } => profile(target, action),
        Command::Share { target, name } => crate::discover::share(target, &name),
        Command::Doctor { .. } => Ok(()),
        Command::Enable { target, name } => set_enabled(target, &name, true),
        Command::Disable { target, name } => set_enabled(target, &name, false),
        Command::Import {
            target,
            file,
            profile,
            dry_run,
            format,
        } => {
            let path = target.config.unwrap_or_else(default_config_path);
            let mut imported = import_file(&file, format).map_err(EditError::Usage)?;
            settle_pod_ports(&mut imported);
            imported.pin_context(current_context().as_deref());
            if dry_run {
                let (_, done) = read_config(&path)?
                    .merged_with(imported, profile.as_deref())
                    .map_err(|e| EditError::Usage(format!("nothing would be imported:\n{e}")))?;
                report(
                    target.json,
                    &format!(
                        "would import {} forwards (dry run; nothing written)",
                        done.forwards.len()
                    ),
                    Some(&done),
                );
                return Ok(());
            }
            let mut report_of = None;
            let said = modify(&path, |config| {
                let (next, done) = config
                    .merged_with(imported, profile.as_deref())
                    .map_err(|e| EditError::Usage(format!("nothing was imported:\n{e}")))?;
                *config = next;
                let n = done.forwards.len();
                report_of = Some(done);
                Ok(format!("imported {n} forwards into {}", path.display()))
            })?;
            report(target.json, &said, report_of.as_ref());
            Ok(())
        }
    }
}

/// Adds the forwards of a kubectl-style line (`svc/echo 18080:80 -n demo`) to the config at
/// `path`, named `name` when the line gives one port, pinned to kubectl's current context
/// when it names none, and added to `profile`. Says what it did, and what was renamed or
/// moved.
pub(crate) fn add_line(
    path: &Path,
    line: &str,
    name: Option<String>,
    profile: Option<&str>,
) -> Result<(String, ferry_core::config::import::Imported), EditError> {
    let mut imported =
        ferry_core::config::import::kubectl_line(line).map_err(|e| EditError::Usage(e.message))?;
    if let Some(name) = name {
        if imported.forwards.len() != 1 {
            return Err(EditError::Usage(
                "--name: the line gives several ports; leave --name out to name them from the target".into(),
            ));
        }
        imported.forwards[0].name = name;
    }
    imported.pin_context(current_context().as_deref());
    let mut report_of = None;
    let said = modify(path, |config| {
        let (next, done) = config
            .merged_with(imported, profile)
            .map_err(|e| EditError::Usage(format!("nothing was added:\n{e}")))?;
        *config = next;
        let names: Vec<String> = done.forwards.iter().map(|f| f.name.clone()).collect();
        report_of = Some(done);
        Ok(format!("added {} to {}", names.join(", "), path.display()))
    })?;
    let done = report_of.ok_or_else(|| EditError::Failed("the store was not changed".into()))?;
    Ok((said, done))
}

pub(crate) fn profile(target: ConfigArg, action: ProfileAction) -> Result<(), EditError> {
    let path = target.config.unwrap_or_else(default_config_path);
    match action {
        ProfileAction::Ls => {
            let config = read_config(&path)?;
            if target.json {
                let list: Vec<serde_json::Value> = config
                    .profiles
                    .iter()
                    .map(|p| serde_json::json!({"name": p.name, "forwards": p.forwards}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for p in &config.profiles {
                    println!("{}: {}", p.name, p.forwards.join(", "));
                }
            }
            Ok(())
        }
        ProfileAction::Add { name, forwards } => {
            let said = modify(&path, |config| {
                config.add_to_profile(&name, &forwards);
                Ok(format!("profile {name}: {}", forwards.join(", ")))
            })?;
            report(target.json, &said, None);
            Ok(())
        }
        ProfileAction::Rm { name } => {
            let said = modify(&path, |config| {
                config
                    .remove_profile(&name)
                    .map_err(|e| EditError::Usage(e.to_string()))?;
                Ok(format!("removed profile {name}"))
            })?;
            report(target.json, &said, None);
            Ok(())
        }
    }
}

pub(crate) fn set_enabled(target: ConfigArg, name: &str, enabled: bool) -> Result<(), EditError> {
    let path = target.config.unwrap_or_else(default_config_path);
    let said = modify(&path, |config| {
        config
            .set_enabled(name, enabled)
            .map_err(|e| EditError::Usage(format!("{e} in {}", path.display())))?;
        Ok(format!(
            "{} {name}",
            if enabled { "enabled" } else { "disabled" }
        ))
    })?;
    report(target.json, &said, None);
    Ok(())
}
