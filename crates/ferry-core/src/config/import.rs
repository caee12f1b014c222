//! Importing forwards kept elsewhere. Today: `kubectl port-forward` lines, as people keep
//! them in scripts and notes.
//!
//! An import is all or nothing: a line that cannot be read is an error naming the line, and
//! nothing is imported. What cannot be carried over is reported per entry, never dropped
//! silently. Imported names that clash (among themselves or with the config they join)
//! are renamed predictably (`-2`, `-3`, …) and the renames are reported.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::model::{Config, Forward};
use super::target::{PortRef, Target};

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Imported {
    /// The forwards, in input order.
    pub forwards: Vec<Forward>,
    /// Per-entry remarks: what was not carried over, what was assumed.
    pub notes: Vec<String>,
    /// `(wanted, given)` for every renamed forward.
    pub renamed: Vec<(String, String)>,
}

/// Why an import failed. Nothing is imported when it does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        message: message.into(),
    }
}

/// Reads `kubectl port-forward` lines: `kubectl port-forward [-n NS] [--context C]
/// [--address A] TYPE/NAME [LOCAL:]REMOTE…`, one command per line (a trailing `\`
/// continues it). Blank lines, `#` comments, a leading `$ ` prompt and a trailing `&` are
/// ignored.
pub fn kubectl_lines(text: &str) -> Result<Imported, ImportError> {
    let mut out = Imported::default();
    let mut taken = BTreeSet::new();
    let mut pending = String::new();
    let mut start_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.split(" #").next().unwrap_or(raw).trim();
        if pending.is_empty() {
            start_line = number;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let command = std::mem::take(&mut pending);
        let command = command.trim();
        if command.is_empty() || command.starts_with('#') {
            continue;
        }
        parse_command(command, start_line, &mut out, &mut taken)?;
    }
    if !pending.trim().is_empty() {
        parse_command(pending.trim(), start_line, &mut out, &mut taken)?;
    }
    Ok(out)
}

fn parse_command(
    command: &str,
    line: usize,
    out: &mut Imported,
    taken: &mut BTreeSet<String>,
) -> Result<(), ImportError> {
    let command = command
        .trim_start_matches("$ ")
        .trim_end_matches('&')
        .trim();
    let mut words = command.split_whitespace().peekable();
    let Some(first) = words.next() else {
        return Ok(());
    };
    let program = first.rsplit('/').next().unwrap_or(first);
    if !program.starts_with("kubectl") {
        return Err(err(
            line,
            format!("expected a `kubectl port-forward` command, found `{first}`"),
        ));
    }
    let mut namespace = None;
    let mut context = None;
    let mut address: Option<String> = None;
    let mut positional = Vec::new();
    let mut saw_verb = false;
    while let Some(word) = words.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (word, None),
        };
        let mut value = |name: &str| -> Result<String, ImportError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => words
                    .next()
                    .map(str::to_string)
                    .ok_or_else(|| err(line, format!("{name} needs a value"))),
            }
        };
        match flag {
            "port-forward" if !saw_verb => saw_verb = true,
            "-n" | "--namespace" => namespace = Some(value(flag)?),
            "--context" => context = Some(value(flag)?),
            "--address" => address = Some(value(flag)?),
            "--pod-running-timeout" | "--kubeconfig" | "--cluster" | "--user" => {
                let v = value(flag)?;
                if flag != "--pod-running-timeout" {
                    out.notes.push(format!(
                        "line {line}: {flag} {v} is not carried over; Ferry uses the kubeconfig's contexts"
                    ));
                }
            }
            f if f.starts_with('-') => {
                return Err(err(
                    line,
                    format!("unknown kubectl port-forward flag `{f}`"),
                ));
            }
            other if saw_verb => positional.push(other.to_string()),
            other => {
                return Err(err(
                    line,
                    format!("expected `port-forward`, found `{other}`"),
                ));
            }
        }
    }
    if !saw_verb {
        return Err(err(line, "not a `kubectl port-forward` command"));
    }
    let mut positional = positional.into_iter();
    let target_word = positional
        .next()
        .ok_or_else(|| err(line, "missing the target (TYPE/NAME)"))?;
    let target: Target = if target_word.contains('/') {
        target_word.parse().map_err(|e: String| err(line, e))?
    } else {
        format!("pod/{target_word}")
            .parse()
            .map_err(|e: String| err(line, e))?
    };
    let ports: Vec<String> = positional.collect();
    if ports.is_empty() {
        return Err(err(line, "missing the ports ([LOCAL:]REMOTE)"));
    }
    let bind = match address.as_deref() {
        None => None,
        Some(list) => {
            let first = list.split(',').next().unwrap_or("").trim();
            if list.contains(',') {
                out.notes.push(format!(
                    "line {line}: --address {list}: Ferry listens on one address per forward; using {first}"
                ));
            }
            match first {
                "localhost" => None,
                a => Some(a.parse::<IpAddr>().map_err(|_| {
                    err(
                        line,
                        format!("--address `{a}` is not an IP address or localhost"),
                    )
                })?),
            }
        }
    };
    for spec in &ports {
        let (local, remote) = match spec.split_once(':') {
            Some((l, r)) => (l, r),
            None => (spec.as_str(), spec.as_str()),
        };
        let local_port: u16 = if local.is_empty() {
            0
        } else {
            local.parse().map_err(|_| {
                err(
                    line,
                    format!("`{local}` in `{spec}` is not a local port number"),
                )
            })?
        };
        let port = match remote.parse::<u16>() {
            Ok(0) | Err(_) if remote.chars().all(|c| c.is_ascii_digit()) => {
                return Err(err(line, format!("`{remote}` in `{spec}` is not a port")));
            }
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(remote.to_string()),
        };
        let wanted = sanitize(if ports.len() > 1 {
            format!("{}-{remote}", target.name())
        } else {
            target.name().to_string()
        });
        let name = unique(&wanted, taken);
        if name != wanted {
            out.renamed.push((wanted, name.clone()));
        }
        let mut f = Forward::new(name, target.clone(), port, local_port);
        f.namespace = namespace.clone();
        f.context = context.clone();
        if let Some(ip) = bind {
            f.bind = ip;
        }
        out.forwards.push(f);
    }
    Ok(())
}

/// A forward name from an object name: lower-case, '-' for anything else, a letter first.
fn sanitize(text: String) -> String {
    let mut s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let mut s = s.trim_matches('-').to_string();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s = format!("f-{s}");
    }
    s.truncate(55);
    s.trim_end_matches('-').to_string()
}

/// `wanted`, or `wanted-2`, `wanted-3`… whichever is free; records it as taken.
fn unique(wanted: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name = wanted.to_string();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{wanted}-{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

impl Config {
    /// Adds imported forwards, renaming those whose names are taken (reported in
    /// `renamed`), and, when `profile` is given, adds them to that profile (created if
    /// needed). The result is validated before it is returned; on error nothing changes.
    pub fn merged_with(
        &self,
        mut imported: Imported,
        profile: Option<&str>,
    ) -> Result<(Config, Imported), super::ConfigError> {
        let mut next = self.clone();
        let mut taken: BTreeSet<String> = next.forwards.iter().map(|f| f.name.clone()).collect();
        for f in &mut imported.forwards {
            let wanted = f.name.clone();
            let name = unique(&wanted, &mut taken);
            if name != wanted {
                imported.renamed.push((wanted, name.clone()));
                f.name = name;
            }
            next.forwards.push(f.clone());
        }
        if let Some(profile) = profile {
            let names: Vec<String> = imported.forwards.iter().map(|f| f.name.clone()).collect();
            match next.profiles.iter_mut().find(|p| p.name == profile) {
                Some(p) => p.forwards.extend(names),
                None => next.profiles.push(super::model::Profile {
                    name: profile.to_string(),
                    forwards: names,
                }),
            }
        }
        next.validate()?;
        Ok((next, imported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_lines_become_forwards() {
        let text = "\
# dev tunnels
kubectl port-forward -n demo svc/echo 18080:80 &
$ kubectl --context=ferry-fake port-forward deploy/web 8080:http 9090
kubectl port-forward --namespace demo \\
    pod/db-0 :5432   # any local port
/usr/local/bin/kubectl port-forward --address 0.0.0.0 sts/db 15432:5432
";
        let got = kubectl_lines(text).expect("parses");
        let names: Vec<&str> = got.forwards.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["echo", "web-http", "web-9090", "db-0", "db"]);
        let echo = &got.forwards[0];
        assert_eq!(echo.target, Target::Service("echo".into()));
        assert_eq!((echo.local_port, &echo.port), (18080, &PortRef::Number(80)));
        assert_eq!(echo.namespace.as_deref(), Some("demo"));
        let web = &got.forwards[1];
        assert_eq!(web.context.as_deref(), Some("ferry-fake"));
        assert_eq!(web.port, PortRef::Name("http".into()));
        assert_eq!(
            (got.forwards[2].local_port, &got.forwards[2].port),
            (9090, &PortRef::Number(9090))
        );
        assert_eq!(got.forwards[3].local_port, 0);
        assert_eq!(got.forwards[4].bind.to_string(), "0.0.0.0");
    }

    #[test]
    fn bad_lines_name_the_line_and_import_nothing() {
        for (text, expect) in [
            (
                "kubectl port-forward svc/echo 80\nkubectl port-forward svc/x 99999:80\n",
                "line 2",
            ),
            (
                "kubectl port-forward --frobnicate svc/echo 80\n",
                "unknown kubectl port-forward flag `--frobnicate`",
            ),
            ("kubectl get pods\n", "expected `port-forward`"),
            (
                "helm install x\n",
                "expected a `kubectl port-forward` command",
            ),
            ("kubectl port-forward job/x 80\n", "not a target kind"),
            ("kubectl port-forward svc/echo\n", "missing the ports"),
            ("kubectl port-forward -n\n", "-n needs a value"),
        ] {
            let e = kubectl_lines(text).expect_err(text);
            assert!(e.to_string().contains(expect), "{text:?}: {e}");
        }
    }

    #[test]
    fn clashing_names_are_renamed_predictably() {
        let got = kubectl_lines(
            "kubectl port-forward svc/echo 1:80\nkubectl port-forward pod/echo 2:80\n",
        )
        .expect("parses");
        assert_eq!(got.forwards[1].name, "echo-2");
        assert_eq!(
            got.renamed,
            vec![("echo".to_string(), "echo-2".to_string())]
        );
        let existing = Config::from_yaml(
            "version: 1\nforwards:\n  - {name: echo, target: svc/echo, port: 80, local_port: 1}\n",
        )
        .expect("config");
        let more = kubectl_lines("kubectl port-forward svc/echo 3:80\n").expect("parses");
        let (merged, report) = existing
            .merged_with(more, Some("imported"))
            .expect("merges");
        assert_eq!(merged.forwards[1].name, "echo-2");
        assert_eq!(
            report.renamed,
            vec![("echo".to_string(), "echo-2".to_string())]
        );
        assert_eq!(merged.profiles[0].forwards, ["echo-2"]);
        // A port clash with the existing config is a validation error: nothing merges.
        let clash = kubectl_lines("kubectl port-forward svc/other 1:80\n").expect("parses");
        let e = existing
            .merged_with(clash, None)
            .expect_err("port 1 is taken");
        assert!(e.to_string().contains("local_port"), "{e}");
    }
}
