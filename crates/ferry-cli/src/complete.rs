//! Shell completions and the manual page, both generated from the command's definition.
//!
//! Completions are dynamic: the script `ferry completions SHELL` prints asks `ferry` itself
//! for candidates at every Tab (through `FERRY_COMPLETE`), so forward and profile names come
//! from the store as it is at that moment, and the script never goes stale on an upgrade of
//! the arguments.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{EnvCompleter, Shells};

use crate::{Cli, default_config_path, read_config};

/// The variable that turns a run of `ferry` into a completion request.
pub(crate) const COMPLETE_VAR: &str = "FERRY_COMPLETE";

/// Answers a completion request and exits, when the shell made one; else returns.
pub(crate) fn answer_completion_request() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .complete();
}

/// The names the shells are known by, for the usage error.
pub(crate) fn shell_names() -> Vec<&'static str> {
    Shells::builtins().names().collect()
}

/// Prints the script that `shell` sources to complete `ferry`'s arguments.
pub(crate) fn print_completions(shell: &str) -> Result<(), String> {
    let shells = Shells::builtins();
    let completer: &dyn EnvCompleter = shells.completer(shell).ok_or_else(|| {
        format!(
            "completions: unknown shell `{shell}`; choose one of {}",
            shell_names().join(", ")
        )
    })?;
    let mut out = Vec::new();
    completer
        .write_registration(COMPLETE_VAR, "ferry", "ferry", &this_program(), &mut out)
        .map_err(|e| format!("completions: {e}"))?;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| format!("completions: {e}"))
}

/// How the completion script calls back: `ferry` when this program was found on PATH, else
/// its absolute path (a build run from its directory).
fn this_program() -> String {
    let arg0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("ferry"));
    let path = Path::new(&arg0);
    if path.components().count() <= 1 {
        return path.to_string_lossy().into_owned();
    }
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Candidates for a forward's name: the store's forwards, described by their targets.
pub(crate) fn forward_names() -> Vec<CompletionCandidate> {
    let Ok(config) = read_config(&default_config_path()) else {
        return Vec::new();
    };
    config
        .forwards
        .iter()
        .map(|f| CompletionCandidate::new(&f.name).help(Some(f.target.to_string().into())))
        .collect()
}

/// Candidates for a profile's name: the store's profiles.
pub(crate) fn profile_names() -> Vec<CompletionCandidate> {
    let Ok(config) = read_config(&default_config_path()) else {
        return Vec::new();
    };
    config
        .profiles
        .iter()
        .map(|p| CompletionCandidate::new(&p.name))
        .collect()
}

/// The manual pages (roff): `ferry`'s on stdout, or with `dir`, a page for `ferry` and one
/// for each subcommand (`ferry-up.1`, …) written there.
pub(crate) fn manpages(dir: Option<&Path>) -> Result<(), String> {
    let command = Cli::command();
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .and_then(|()| std::io::stdout().write_all(&out))
                .map_err(|e| format!("manpage: {e}"))
        }
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .map_err(|e| format!("manpage: {}: {e}", dir.display())),
    }
}
