//! `ferry discover`: the forwards a cluster's objects declare in annotations, marked with
//! what the user has already, and `--import` to add the rest; `ferry share`: the
//! `kubectl annotate` line that declares a forward for the team.

use ferry_core::cluster::ClientPool;
use ferry_core::cluster::discover::{Discovery, Scope, discover as list_declared};
use ferry_core::config::declared::{self, Declared};
use ferry_core::config::import::Imported;

use super::*;

// What `ferry discover` was asked (its help is the variant's in main.rs).
#[derive(Debug, clap::Args)]
pub(crate) struct DiscoverArgs {
    #[command(flatten)]
    pub target: ConfigArg,
    /// The kubeconfig context to ask; default: the current one.
    #[arg(long)]
    pub context: Option<String>,
    /// The namespace to look in; default: the context's.
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Look in every namespace you may list.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// Add the declared forwards you do not have yet (names made unique, taken local
    /// ports moved).
    #[arg(long)]
    pub import: bool,
    /// With --import, also put them in this profile (created when missing).
    #[arg(long, requires = "import", add = ArgValueCandidates::new(profile_names))]
    pub profile: Option<String>,
}

pub(crate) async fn discover(args: DiscoverArgs) -> ExitCode {
    let Some(scope) = Scope::asked(args.namespace.as_deref(), args.all_namespaces) else {
        eprintln!("ferry: -n and -A ask for different namespaces: give one");
        return ExitCode::from(2);
    };
    let path = args
        .target
        .config
        .clone()
        .unwrap_or_else(default_config_path);
    let pool = ClientPool::new(kubeconfig_for(&path));
    let found = match list_declared(&pool, args.context.as_deref(), &scope).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("ferry: discover: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match read_config(&path) {
        Ok(c) => c,
        Err(EditError::Usage(e) | EditError::Failed(e)) => {
            eprintln!("ferry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let have: Vec<Option<String>> = found
        .declared
        .iter()
        .map(|d| declared::already_have(&config, d))
        .collect();

    if !args.import {
        print_discovery(&found, &have, &scope, args.target.json);
        return ExitCode::SUCCESS;
    }
    let new: Vec<&Declared> = found
        .declared
        .iter()
        .zip(&have)
        .filter(|(_, h)| h.is_none())
        .map(|(d, _)| d)
        .collect();
    let mut imported = Imported {
        forwards: new.iter().map(|d| d.forward.clone()).collect(),
        notes: new
            .iter()
            .flat_map(|d| d.notes.iter().map(|n| format!("{}: {n}", d.forward.name)))
            .collect(),
        renamed: Vec::new(),
    };
    let result = modify(&path, |config| {
        move_taken_ports(config, &mut imported);
        let (next, done) = config
            .merged_with(std::mem::take(&mut imported), args.profile.as_deref())
            .map_err(|e| EditError::Usage(format!("nothing was added:\n{e}")))?;
        *config = next;
        let names: Vec<&str> = done.forwards.iter().map(|f| f.name.as_str()).collect();
        let said = if names.is_empty() {
            format!(
                "nothing to add: you have every forward {} declares",
                found.context
            )
        } else {
            format!("added {} to {}", names.join(", "), path.display())
        };
        imported = done;
        Ok(said)
    });
    edited(result.map(|said| report(args.target.json, &said, Some(&imported))))
}

/// A declared forward whose local port a saved forward (or another new one) uses, or that
/// something on this machine holds, gets the next free port above it, with a note.
fn move_taken_ports(config: &Config, imported: &mut Imported) {
    let mut claimed = declared::claimed_ports(config);
    for f in &mut imported.forwards {
        if let Some(moved) = declared::claim_local_port(f, &mut claimed, ferry_core::ports::is_free)
        {
            imported.notes.push(format!(
                "{}: local port {} is taken; {}",
                f.name,
                moved.wanted,
                match moved.given {
                    Some(port) => format!("moved to {port}"),
                    None => "the system picks one when it starts".to_string(),
                }
            ));
        }
    }
}

fn print_discovery(found: &Discovery, have: &[Option<String>], scope: &Scope, json: bool) {
    if json {
        let forwards: Vec<serde_json::Value> = found
            .declared
            .iter()
            .zip(have)
            .map(|(d, h)| {
                serde_json::json!({
                    "name": d.forward.name,
                    "object": d.object,
                    "namespace": d.forward.namespace,
                    "source": d.source.to_string(),
                    "description": d.description,
                    "have": h,
                    "forward": d.forward,
                    "notes": d.notes,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "context": found.context,
                "declared": forwards,
                "problems": found.problems,
            })
        );
        return;
    }
    let place = match scope {
        Scope::All => "any namespace".to_string(),
        Scope::Namespace(ns) => format!("namespace {ns}"),
        Scope::ContextNamespace => "its namespace".to_string(),
    };
    if found.declared.is_empty() {
        println!(
            "Nothing in {place} of {} declares forwards (annotation {}; see `ferry share`).",
            found.context,
            declared::FERRY
        );
    } else {
        println!("Declared in {place} of {}:", found.context);
        println!(
            "  {:<20} {:<28} {:<22} {:<8} YOU",
            "NAME", "TARGET", "LOCAL", "BY"
        );
        for (d, h) in found.declared.iter().zip(have) {
            let f = &d.forward;
            let target = format!(
                "{}:{}{}",
                f.target,
                f.port,
                if f.pod_port { " (pods')" } else { "" }
            );
            let you = match h {
                Some(name) => format!("have it: {name}"),
                None => "new".to_string(),
            };
            println!(
                "  {:<20} {:<28} {:<22} {:<8} {you}",
                f.name,
                target,
                format!("{}:{}", f.bind, f.local_port),
                d.source.to_string(),
            );
            if let Some(text) = &d.description {
                println!("      {text}");
            }
            for n in &d.notes {
                println!("      note: {n}");
            }
        }
        let new = have.iter().filter(|h| h.is_none()).count();
        if new > 0 {
            println!("`ferry discover --import` adds the {new} new one(s).");
        }
    }
    for p in &found.problems {
        println!("problem: {p}");
    }
}

/// `ferry share NAME`: the `kubectl annotate` line that declares the forward on its target.
pub(crate) fn share(target: ConfigArg, name: &str) -> Result<(), EditError> {
    let path = target.config.unwrap_or_else(default_config_path);
    let config = read_config(&path)?;
    let Some(forward) = config.forwards.iter().find(|f| f.name == name) else {
        return Err(EditError::Usage(format!(
            "share: there is no forward named \"{name}\" in {}",
            path.display()
        )));
    };
    // Forwards to the same object are declared together (the annotation is one value).
    let together: Vec<&ferry_core::config::Forward> = config
        .forwards
        .iter()
        .filter(|f| {
            f.target == forward.target
                && f.namespace == forward.namespace
                && f.context == forward.context
        })
        .collect();
    let shared: Vec<&ferry_core::config::Forward> = if together.len() > 1 {
        together
    } else {
        vec![forward]
    };
    let command = declared::annotate_command_for(&shared)
        .map_err(|e| EditError::Failed(format!("share: {e}")))?;
    if target.json {
        println!(
            "{}",
            serde_json::json!({
                "command": command,
                "annotation": declared::FERRY,
                "value": declared::annotation_for(&shared).map_err(|e| EditError::Failed(e.to_string()))?,
                "forwards": shared.iter().map(|f| &f.name).collect::<Vec<_>>(),
            })
        );
    } else {
        if shared.len() > 1 {
            let names: Vec<&str> = shared.iter().map(|f| f.name.as_str()).collect();
            eprintln!(
                "ferry: {} go to the same object, so they are declared together: {}",
                names.len(),
                names.join(", ")
            );
        }
        println!("{command}");
    }
    Ok(())
}
