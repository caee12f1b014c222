//! Finding kubeconfig `exec` credential plugins the way the user's terminal would.
//!
//! A desktop app started from a menu, the dock or at login does not get the user's shell
//! `PATH`, so `aws`, `gke-gcloud-auth-plugin` or `kubelogin` are "not found" although they
//! work in a terminal. Ferry looks for a plugin given by bare name in this order: the
//! process's `PATH`, the login shell's `PATH` (read once, with a timeout, cached), then
//! well-known install locations. The plugin is then run once with a timeout before the
//! client is built, so that a plugin that waits for an interactive login fails with a
//! message instead of hanging Ferry.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube::config::ExecConfig;
use tokio::sync::OnceCell;
use tracing::{debug, info};

/// How plugins are found and run.
#[derive(Debug, Clone)]
#[must_use]
pub struct ExecOptions {
    /// The login shell to ask for `PATH` (`$SHELL` by default; none on Windows).
    pub login_shell: Option<PathBuf>,
    /// How long reading the login shell's `PATH` may take.
    pub shell_timeout: Duration,
    /// How long a plugin may take to print its credential.
    pub plugin_timeout: Duration,
    /// Places plugins are commonly installed, searched last.
    pub well_known: Vec<PathBuf>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut well_known: Vec<PathBuf> = [
            "/usr/local/bin",
            "/opt/homebrew/bin",
            "/opt/local/bin",
            "/usr/local/google-cloud-sdk/bin",
            "/snap/bin",
            "/usr/bin",
            "/bin",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        if let Some(home) = home {
            for rel in [
                ".local/bin",
                "bin",
                "go/bin",
                ".krew/bin",
                "google-cloud-sdk/bin",
                ".asdf/shims",
                ".nix-profile/bin",
                ".rd/bin",
            ] {
                well_known.push(home.join(rel));
            }
        }
        Self {
            login_shell: if cfg!(windows) {
                None
            } else {
                std::env::var_os("SHELL").map(PathBuf::from)
            },
            shell_timeout: Duration::from_secs(3),
            plugin_timeout: Duration::from_secs(20),
            well_known,
        }
    }
}

/// Where a plugin was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    /// `PATH`, `the login shell's PATH` or `a well-known location`.
    pub via: &'static str,
}

/// Finds and pre-flights exec plugins. The login shell is asked once per resolver.
#[derive(Debug)]
pub struct ExecResolver {
    options: ExecOptions,
    login_path: OnceCell<Vec<PathBuf>>,
}

impl ExecResolver {
    pub fn new(options: ExecOptions) -> Self {
        Self {
            options,
            login_path: OnceCell::new(),
        }
    }

    pub fn options(&self) -> &ExecOptions {
        &self.options
    }

    /// The login shell's `PATH` entries; empty when there is no shell or it did not answer
    /// in time (never blocks longer than `shell_timeout`). Only an answer is cached: a
    /// shell that failed is asked again next time.
    async fn login_path(&self) -> &[PathBuf] {
        let read = self
            .login_path
            .get_or_try_init(|| async {
                let Some(shell) = &self.options.login_shell else {
                    return Ok(Vec::new());
                };
                let mut cmd = tokio::process::Command::new(shell);
                cmd.args(["-l", "-c", "printf '%s' \"$PATH\""])
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true);
                match tokio::time::timeout(self.options.shell_timeout, cmd.output()).await {
                    Ok(Ok(out)) if out.status.success() => {
                        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                        let dirs: Vec<PathBuf> = std::env::split_paths(&text).collect();
                        debug!(shell = %shell.display(), dirs = dirs.len(), "read the login shell's PATH");
                        Ok(dirs)
                    }
                    Ok(_) | Err(_) => {
                        info!(shell = %shell.display(), "the login shell did not report a PATH in time");
                        Err(())
                    }
                }
            })
            .await;
        match read {
            Ok(dirs) => dirs.as_slice(),
            Err(()) => &[],
        }
    }

    /// Finds `command`. A command with a directory part is taken as it is.
    pub async fn find(&self, command: &str) -> Result<Found, Vec<String>> {
        let as_path = Path::new(command);
        if as_path.components().count() > 1 || as_path.is_absolute() {
            return if is_executable(as_path) {
                Ok(Found {
                    path: as_path.to_path_buf(),
                    via: "the kubeconfig's path",
                })
            } else {
                Err(vec![command.to_string()])
            };
        }
        let process_path: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let mut searched = Vec::new();
        for (via, dirs) in [
            ("PATH", process_path.as_slice()),
            ("the login shell's PATH", self.login_path().await),
            ("a well-known location", self.options.well_known.as_slice()),
        ] {
            for dir in dirs {
                let candidate = dir.join(command);
                if is_executable(&candidate) {
                    return Ok(Found {
                        path: candidate,
                        via,
                    });
                }
                let shown = dir.display().to_string();
                if !searched.contains(&shown) {
                    searched.push(shown);
                }
            }
        }
        Err(searched)
    }

    /// Runs the plugin once, bounded by `plugin_timeout`, and checks that it prints a
    /// credential. The error is one sentence saying what to do.
    pub async fn preflight(
        &self,
        exec: &ExecConfig,
        path: &Path,
        context: &str,
    ) -> Result<(), String> {
        let mut cmd = tokio::process::Command::new(path);
        if let Some(args) = &exec.args {
            cmd.args(args);
        }
        for env in exec.env.iter().flatten() {
            if let (Some(name), Some(value)) = (env.get("name"), env.get("value")) {
                cmd.env(name, value);
            }
        }
        let info = serde_json::json!({
            "apiVersion": exec.api_version.clone().unwrap_or_else(|| "client.authentication.k8s.io/v1".into()),
            "kind": "ExecCredential",
            "spec": {"interactive": false},
        });
        cmd.env("KUBERNETES_EXEC_INFO", info.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let shown = path.display();
        let out = match tokio::time::timeout(self.options.plugin_timeout, cmd.output()).await {
            Err(_) => {
                return Err(format!(
                    "the credential plugin {shown} did not answer within {}; it may be waiting for an interactive login: run `kubectl --context {context} get namespaces` in a terminal once, then Ferry retries on its own",
                    humantime::format_duration(self.options.plugin_timeout)
                ));
            }
            Ok(Err(e)) => {
                return Err(format!(
                    "the credential plugin {shown} could not start: {e}"
                ));
            }
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return Err(format!(
                "the credential plugin {shown} failed ({}){}; run `kubectl --context {context} get namespaces` in a terminal to see why",
                out.status,
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            ));
        }
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out.stdout);
        match parsed {
            Ok(v) if v["kind"] == "ExecCredential" => Ok(()),
            _ => Err(format!(
                "the credential plugin {shown} did not print an ExecCredential; check the user entry's exec settings"
            )),
        }
    }
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("write script");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        path
    }

    #[tokio::test]
    async fn plugins_are_found_on_the_login_shells_path_and_well_known_places() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hidden = dir.path().join("hidden");
        let known = dir.path().join("known");
        std::fs::create_dir_all(&hidden).expect("mkdir");
        std::fs::create_dir_all(&known).expect("mkdir");
        script(&hidden, "ferry-plugin-a", "#!/bin/sh\n");
        script(&known, "ferry-plugin-b", "#!/bin/sh\n");
        let shell = script(
            dir.path(),
            "login-shell",
            &format!(
                "#!/bin/sh\nprintf '%s' '/nonexistent:{}'\n",
                hidden.display()
            ),
        );
        let resolver = ExecResolver::new(ExecOptions {
            login_shell: Some(shell),
            well_known: vec![known.clone()],
            ..ExecOptions::default()
        });
        let a = resolver
            .find("ferry-plugin-a")
            .await
            .expect("found via the login shell");
        assert_eq!(
            (a.path, a.via),
            (hidden.join("ferry-plugin-a"), "the login shell's PATH")
        );
        let b = resolver
            .find("ferry-plugin-b")
            .await
            .expect("found in a well-known place");
        assert_eq!(b.via, "a well-known location");
        let sh = resolver.find("sh").await.expect("sh is on PATH");
        assert_eq!(sh.via, "PATH");
        let searched = resolver
            .find("ferry-no-such-plugin")
            .await
            .expect_err("missing");
        assert!(
            searched.contains(&hidden.display().to_string()),
            "{searched:?}"
        );
        assert!(
            searched.contains(&known.display().to_string()),
            "{searched:?}"
        );
    }

    #[tokio::test]
    async fn a_hanging_login_shell_does_not_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shell = script(dir.path(), "slow-shell", "#!/bin/sh\nsleep 30\n");
        let resolver = ExecResolver::new(ExecOptions {
            login_shell: Some(shell),
            shell_timeout: Duration::from_millis(300),
            well_known: Vec::new(),
            ..ExecOptions::default()
        });
        let started = tokio::time::Instant::now();
        assert!(resolver.find("ferry-no-such-plugin").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
