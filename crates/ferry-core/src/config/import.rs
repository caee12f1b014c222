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

impl Imported {
    /// Names `current` (kubectl's current context now) as the context of every forward
    /// that names none, so that a later `kubectl config use-context` cannot move it to
    /// another cluster; each pinned forward gets a note. Without a current context the
    /// forwards are left as they are.
    pub fn pin_context(&mut self, current: Option<&str>) {
        let Some(current) = current else { return };
        for f in self.forwards.iter_mut().filter(|f| f.context.is_none()) {
            f.context = Some(current.to_string());
            self.notes.push(format!(
                "{}: no context given; saved with `{current}`, the current context now, so that switching kubectl's context does not move it",
                f.name
            ));
        }
    }
}

impl Config {
    /// Names `current` as the context of every forward that names none (see
    /// [`Imported::pin_context`]); returns the names of the forwards changed.
    pub fn pin_contexts(&mut self, current: &str) -> Vec<String> {
        self.forwards
            .iter_mut()
            .filter(|f| f.context.is_none())
            .map(|f| {
                f.context = Some(current.to_string());
                f.name.clone()
            })
            .collect()
    }
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

/// Reads one `kubectl port-forward` command, or its short form without the leading
/// `kubectl port-forward` (`svc/echo 18080:80 -n demo`), as `ferry add` and the app's
/// quick add take it.
pub fn kubectl_line(line: &str) -> Result<Imported, ImportError> {
    let line = line.trim();
    if line.split_whitespace().next() == Some("kubectl") {
        kubectl_lines(line)
    } else {
        kubectl_lines(&format!("kubectl port-forward {line}"))
    }
}

/// The `kubectl port-forward` command that forwards what `f` does, quoted for a shell
/// (`kubectl port-forward --context c -n demo svc/echo 18080:80`); [`kubectl_line`] reads
/// it back. `pod` names the pod to write instead of the target (for a service forward to
/// its pods' port, which kubectl reaches only through one pod). A local port of 0 is
/// written as `:80` (kubectl picks a free one).
pub fn kubectl_command(f: &Forward, pod: Option<&str>) -> String {
    let mut words = vec!["kubectl".to_string(), "port-forward".to_string()];
    if let Some(c) = &f.context {
        words.extend(["--context".into(), c.clone()]);
    }
    if let Some(n) = &f.namespace {
        words.extend(["-n".into(), n.clone()]);
    }
    if f.bind != IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) {
        words.extend(["--address".into(), f.bind.to_string()]);
    }
    let short = match f.target.kind() {
        "service" => "svc",
        "deployment" => "deploy",
        "statefulset" => "sts",
        _ => "pod",
    };
    match pod {
        Some(pod) => words.push(format!("pod/{pod}")),
        None => words.push(format!("{short}/{}", f.target.name())),
    }
    let local = if f.local_port == 0 {
        String::new()
    } else {
        f.local_port.to_string()
    };
    words.push(format!("{local}:{}", f.port));
    shell_words::join(words)
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
        let line = raw.trim();
        if pending.is_empty() {
            // A comment ends at the end of its line, whatever it ends with.
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            start_line = number;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let command = std::mem::take(&mut pending);
        parse_command(command.trim(), start_line, &mut out, &mut taken)?;
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
    // Words as the shell splits them (quotes, escapes); a word starting with `#` starts
    // a comment.
    let mut split = shell_words::split(command)
        .map_err(|e| err(line, format!("cannot split the command into words: {e}")))?;
    if let Some(cut) = split.iter().position(|w| w.starts_with('#')) {
        split.truncate(cut);
    }
    if split.first().is_some_and(|w| w == "$") {
        split.remove(0);
    }
    if let Some(last) = split.last_mut() {
        if last == "&" {
            split.pop();
        } else if let Some(stripped) = last.strip_suffix('&') {
            *last = stripped.to_string();
        }
    }
    if let Some(var) = split.iter().find(|w| w.contains('$') || w.contains('`')) {
        return Err(err(
            line,
            format!("`{var}` uses a shell variable or command; write its value"),
        ));
    }
    let mut words = split.iter().map(String::as_str).peekable();
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
        let port: PortRef = remote
            .parse()
            .map_err(|m: String| err(line, format!("in `{spec}`: {m}")))?;
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

/// A forward name from an object name or free text: lower-case, '-' for anything else, a
/// letter first, short enough for a `-N` suffix.
pub(super) fn sanitize(text: impl AsRef<str>) -> String {
    let text = text.as_ref();
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
pub fn unique(wanted: &str, taken: &mut BTreeSet<String>) -> String {
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
        let mut aliases: BTreeSet<String> = next
            .forwards
            .iter()
            .filter_map(|f| f.alias.clone())
            .collect();
        for f in &mut imported.forwards {
            let wanted = f.name.clone();
            let name = unique(&wanted, &mut taken);
            if name != wanted {
                imported.renamed.push((wanted, name.clone()));
                f.name = name;
            }
            // Aliases must be unique too: a clashing one is renamed like names are.
            if let Some(alias) = f.alias.clone() {
                let given = unique(&alias, &mut aliases);
                if given != alias {
                    imported.notes.push(format!(
                        "{}: alias {alias} is taken; published as {given}.local instead",
                        f.name
                    ));
                    f.alias = Some(given);
                }
            }
            next.forwards.push(f.clone());
        }
        if let Some(profile) = profile {
            let names: Vec<String> = imported.forwards.iter().map(|f| f.name.clone()).collect();
            next.add_to_profile(profile, &names);
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
        let quoted = kubectl_lines(
            "# old: kubectl port-forward svc/gone 1:1 \\\nkubectl --context \"prod-eu\" port-forward -n 'demo' svc/api 8080:80\t# api\n",
        )
        .expect("quotes and tab comments");
        assert_eq!(quoted.forwards.len(), 1);
        assert_eq!(quoted.forwards[0].context.as_deref(), Some("prod-eu"));
        assert_eq!(quoted.forwards[0].namespace.as_deref(), Some("demo"));
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
            (
                "kubectl --context $CTX port-forward svc/a 80\n",
                "shell variable",
            ),
            ("kubectl port-forward \"svc/a 80\n", "cannot split"),
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

// === kftray ===

/// One entry of kftray's JSON export (the fields Ferry reads; others are ignored).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, Default)]
struct KftrayEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    #[serde(default)]
    namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    local_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workload_type: Option<String>,
    #[serde(default)]
    protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    local_address: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    auto_loopback_address: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain_enabled: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kubeconfig: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_logs_enabled: Option<serde_json::Value>,
}

fn truthy(v: &Option<serde_json::Value>) -> bool {
    matches!(v, Some(serde_json::Value::Bool(true)))
        || matches!(v, Some(serde_json::Value::String(s)) if s == "true")
}

/// The line on which the `index`-th top-level array element starts.
fn line_of_element(text: &str, index: usize) -> usize {
    let (mut depth, mut in_str, mut esc, mut seen, mut line) = (0i32, false, false, 0usize, 1usize);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => {
                if depth == 1 && c == '{' {
                    if seen == index {
                        return line;
                    }
                    seen += 1;
                }
                depth += 1;
            }
            ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    line
}

/// Reads kftray's JSON export (an array of configs, or a single one).
pub fn kftray_json(text: &str) -> Result<Imported, ImportError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(e.line(), format!("not valid JSON: {e}")))?;
    let entries = match value {
        serde_json::Value::Array(items) => items,
        obj @ serde_json::Value::Object(_) => vec![obj],
        // (A single object starts on line 1, which `line_of_element` does not look for.)
        _ => return Err(err(1, "expected a JSON array of kftray configs")),
    };
    let mut out = Imported::default();
    let mut taken = BTreeSet::new();
    let single = !text.trim_start().starts_with('[');
    for (i, raw) in entries.into_iter().enumerate() {
        let line = if single { 1 } else { line_of_element(text, i) };
        let e: KftrayEntry =
            serde_json::from_value(raw).map_err(|e| err(line, format!("entry {}: {e}", i + 1)))?;
        let label = e
            .alias
            .clone()
            .or_else(|| e.service.clone())
            .unwrap_or_else(|| format!("entry {}", i + 1));
        let at = format!("line {line} ({label})");
        let kind = e.workload_type.as_deref().unwrap_or("service");
        if e.protocol.eq_ignore_ascii_case("udp") {
            out.notes.push(format!(
                "{at}: UDP forwards cannot be carried over; skipped"
            ));
            continue;
        }
        let target = match kind {
            "service" => {
                let Some(svc) = e.service.clone().filter(|s| !s.is_empty()) else {
                    return Err(err(
                        line,
                        format!("entry {}: a service config needs `service`", i + 1),
                    ));
                };
                format!("service/{svc}")
                    .parse::<Target>()
                    .map_err(|m| err(line, m))?
            }
            "pod" => {
                out.notes.push(format!(
                    "{at}: pods chosen by label selector (`{}`) cannot be carried over; add a forward to their deployment or statefulset instead; skipped",
                    e.target.as_deref().unwrap_or("")
                ));
                continue;
            }
            "proxy" => {
                out.notes.push(format!(
                    "{at}: proxy forwards (to {}) cannot be carried over; skipped",
                    e.remote_address.as_deref().unwrap_or("a remote address")
                ));
                continue;
            }
            other => {
                return Err(err(
                    line,
                    format!("entry {}: unknown workload_type `{other}`", i + 1),
                ));
            }
        };
        let Some(remote) = e.remote_port.filter(|p| *p > 0) else {
            return Err(err(
                line,
                format!("entry {}: `remote_port` is missing", i + 1),
            ));
        };
        let wanted = sanitize(label.clone());
        let name = unique(&wanted, &mut taken);
        if name != wanted {
            out.renamed.push((wanted, name.clone()));
        }
        let mut f = Forward::new(
            name,
            target,
            PortRef::Number(remote),
            e.local_port.unwrap_or(0),
        );
        // kftray's remote_port is the pods' port; `cluster::settle_pod_ports` turns it
        // into the service port that leads there when the cluster can be asked.
        f.pod_port = true;
        f.namespace = Some(e.namespace.clone()).filter(|n| !n.is_empty());
        f.context = e
            .context
            .clone()
            .filter(|c| !c.is_empty() && c != "current-context");
        if let Some(addr) = e.local_address.as_deref().filter(|a| !a.is_empty()) {
            match addr.parse::<IpAddr>() {
                Ok(ip) => f.bind = ip,
                Err(_) => {
                    return Err(err(
                        line,
                        format!(
                            "entry {}: local_address `{addr}` is not an IP address",
                            i + 1
                        ),
                    ));
                }
            }
        }
        if truthy(&e.domain_enabled) {
            f.alias = e.alias.clone().map(sanitize);
        }
        if truthy(&e.http_logs_enabled) {
            out.notes
                .push(format!("{at}: HTTP logging is not carried over"));
        }
        if e.auto_loopback_address {
            out.notes.push(format!(
                "{at}: auto_loopback_address is not carried over; set `bind` to a 127.x address"
            ));
        }
        if let Some(k) = e
            .kubeconfig
            .as_deref()
            .filter(|k| !k.is_empty() && *k != "default")
        {
            out.notes.push(format!(
                "{at}: kubeconfig {k} is not carried over; Ferry reads KUBECONFIG or ~/.kube/config"
            ));
        }
        out.forwards.push(f);
    }
    Ok(out)
}

/// Writes forwards as kftray's JSON. Only services map to kftray; the others are listed in
/// the returned notes. kftray's `remote_port` is the pods' port: a forward with
/// `pod_port` is written as it is, a numbered service port is written as it is and noted.
pub fn kftray_export(config: &Config) -> (String, Vec<String>) {
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for f in &config.forwards {
        let Target::Service(svc) = &f.target else {
            notes.push(format!(
                "{}: {} has no kftray equivalent; not exported",
                f.name, f.target
            ));
            continue;
        };
        let PortRef::Number(port) = &f.port else {
            notes.push(format!(
                "{}: kftray needs a port number, not the name `{}`; not exported",
                f.name, f.port
            ));
            continue;
        };
        if !f.pod_port {
            notes.push(format!(
                "{}: exported remote_port {port} is the service's port; kftray expects the pods' port",
                f.name
            ));
        }
        entries.push(KftrayEntry {
            service: Some(svc.clone()),
            namespace: f.namespace.clone().unwrap_or_else(|| "default".into()),
            local_port: Some(f.local_port),
            remote_port: Some(*port),
            context: f.context.clone(),
            workload_type: Some("service".into()),
            protocol: "tcp".into(),
            local_address: Some(f.bind.to_string()),
            alias: Some(f.alias.clone().unwrap_or_else(|| f.name.clone())),
            domain_enabled: Some(serde_json::Value::Bool(f.alias.is_some())),
            ..KftrayEntry::default()
        });
    }
    let text = serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into());
    (text, notes)
}

// === kportal ===

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KportalFile {
    #[serde(default)]
    contexts: Vec<KportalContext>,
    #[serde(default, rename = "healthCheck")]
    health_check: Option<KportalHealth>,
    #[serde(default)]
    reliability: Option<serde_norway::Value>,
    #[serde(default)]
    mdns: Option<KportalMdns>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KportalContext {
    name: String,
    #[serde(default)]
    namespaces: Vec<KportalNamespace>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KportalNamespace {
    name: String,
    #[serde(default)]
    forwards: Vec<KportalForward>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KportalForward {
    resource: String,
    #[serde(default)]
    selector: String,
    #[serde(default)]
    protocol: String,
    port: u16,
    #[serde(rename = "localPort")]
    local_port: u16,
    #[serde(default)]
    alias: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KportalHealth {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, rename = "maxConnectionAge")]
    max_connection_age: Option<String>,
    #[serde(default, rename = "maxIdleTime")]
    max_idle_time: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KportalMdns {
    #[serde(default)]
    enabled: bool,
}

/// The first line mentioning `needle` (1 when none does).
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

/// Whether `text` looks like a kportal file (a top-level `contexts:` key).
pub fn looks_like_kportal(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("contexts:"))
}

/// The formats forwards are imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Ferry's own config, YAML or JSON (an export, or a config file).
    Ferry,
    /// `kubectl port-forward` lines.
    Kubectl,
    /// kftray's JSON export.
    Kftray,
    /// kportal's `.kportal.yaml`.
    Kportal,
}

/// The format of `text`, from its file name when that says (`*.kportal.yaml`, a kftray
/// `.json` that is no Ferry config), else from its first characters: a JSON object with
/// `forwards` or YAML with `version:`/`forwards:` is Ferry's, other JSON is kftray's, a
/// top-level `contexts:` is kportal's, anything else is read as kubectl lines. The one
/// guess the CLI and the app share.
pub fn detect(text: &str, file_name: Option<&str>) -> Format {
    let t = text.trim_start();
    let ferry_json = t.starts_with('{') && t.contains("\"forwards\"");
    let ferry_yaml =
        t.starts_with("version:") || t.contains("\nforwards:") || t.starts_with("forwards:");
    if file_name.is_some_and(|n| n.contains("kportal")) || looks_like_kportal(text) {
        Format::Kportal
    } else if ferry_json {
        Format::Ferry
    } else if t.starts_with('[') || t.starts_with('{') {
        Format::Kftray
    } else if ferry_yaml {
        Format::Ferry
    } else {
        Format::Kubectl
    }
}

/// Reads `text` as `format`. An unreadable entry fails the whole import, naming it.
pub fn read(text: &str, format: Format) -> Result<Imported, ImportError> {
    match format {
        Format::Kubectl => kubectl_lines(text),
        Format::Kftray => kftray_json(text),
        Format::Kportal => kportal_yaml(text),
        Format::Ferry => {
            let config = Config::from_yaml(text).map_err(|e| match e {
                super::ConfigError::Parse { message, line, .. } => {
                    err(line.unwrap_or(1), format!("not a Ferry config: {message}"))
                }
                super::ConfigError::Invalid(problems) => {
                    let line = problems.iter().find_map(|p| p.line).unwrap_or(1);
                    err(line, super::ConfigError::Invalid(problems).to_string())
                }
                other => err(1, other.to_string()),
            })?;
            Ok(Imported {
                forwards: config.forwards,
                ..Imported::default()
            })
        }
    }
}

/// Reads kportal's `.kportal.yaml`: contexts → namespaces → forwards, with its
/// `healthCheck` mapped to every forward's health spec and `mdns.enabled` to aliases.
pub fn kportal_yaml(text: &str) -> Result<Imported, ImportError> {
    let file: KportalFile = serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1);
        err(line, format!("not a valid kportal file: {e}"))
    })?;
    let mut out = Imported::default();
    let mut taken = BTreeSet::new();
    let source = text;
    let duration =
        |field: &str, v: &Option<String>| -> Result<Option<std::time::Duration>, ImportError> {
            match v.as_deref() {
                None | Some("") => Ok(None),
                Some(text) => humantime::parse_duration(text).map(Some).map_err(|e| {
                    err(
                        line_of(source, &format!("{field}:")),
                        format!("healthCheck.{field}: `{text}` is not a duration ({e})"),
                    )
                }),
            }
        };
    let mut health = super::HealthSpec::default();
    if let Some(h) = &file.health_check {
        if let Some(d) = duration("interval", &h.interval)? {
            health.interval = d;
        }
        if let Some(d) = duration("timeout", &h.timeout)? {
            health.timeout = d;
        }
        health.max_age = duration("maxConnectionAge", &h.max_connection_age)?;
        health.max_idle = duration("maxIdleTime", &h.max_idle_time)?;
        match h.method.as_deref() {
            None | Some("") | Some("data-transfer") => health.kind = super::ProbeKind::Tunnel,
            Some("tcp-dial") => health.kind = super::ProbeKind::Tcp,
            Some(other) => out.notes.push(format!(
                "healthCheck.method `{other}` has no Ferry equivalent; using the tunnel check"
            )),
        }
    }
    if file.reliability.is_some() {
        out.notes.push(
            "reliability settings are not carried over: Ferry reconnects with its own backoff and watchdog".into(),
        );
    }
    let mdns = file.mdns.as_ref().is_some_and(|m| m.enabled);
    for ctx in &file.contexts {
        for ns in &ctx.namespaces {
            for (k, fw) in ns.forwards.iter().enumerate() {
                let at = format!("{}/{}/forwards[{k}] ({})", ctx.name, ns.name, fw.resource);
                if fw.protocol.eq_ignore_ascii_case("udp") {
                    out.notes.push(format!(
                        "{at}: UDP forwards cannot be carried over; skipped"
                    ));
                    continue;
                }
                if !fw.selector.is_empty() || !fw.resource.contains('/') {
                    out.notes.push(format!(
                        "{at}: pods chosen by label selector (`{}`) cannot be carried over; add a forward to their deployment or statefulset; skipped",
                        fw.selector
                    ));
                    continue;
                }
                let target: Target = fw
                    .resource
                    .parse()
                    .map_err(|m: String| err(line_of(text, &fw.resource), format!("{at}: {m}")))?;
                if matches!(target, Target::Pod(_)) {
                    out.notes.push(format!(
                        "{at}: kportal matches pods by name prefix, Ferry by exact name; if {} is a prefix, point the forward at its deployment or statefulset",
                        fw.resource
                    ));
                }
                if fw.port == 0 {
                    return Err(err(
                        line_of(text, &fw.resource),
                        format!("{at}: port 0 is not a port"),
                    ));
                }
                let wanted = sanitize(
                    fw.alias
                        .clone()
                        .unwrap_or_else(|| target.name().to_string()),
                );
                let name = unique(&wanted, &mut taken);
                if name != wanted {
                    out.renamed.push((wanted, name.clone()));
                }
                let mut f = Forward::new(
                    name,
                    target.clone(),
                    PortRef::Number(fw.port),
                    fw.local_port,
                );
                f.context = Some(ctx.name.clone());
                f.namespace = Some(ns.name.clone());
                f.health = health.clone();
                // kportal forwards a service's `port` straight to a pod: the pods' port,
                // settled like kftray's (`cluster::settle_pod_ports`).
                f.pod_port = matches!(target, Target::Service(_));
                if mdns {
                    f.alias = Some(sanitize(
                        fw.alias
                            .clone()
                            .unwrap_or_else(|| target.name().to_string()),
                    ));
                }
                out.forwards.push(f);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod foreign_tests {
    use super::*;

    const KFTRAY: &str = r#"[
  {
    "service": "argocd-server",
    "namespace": "argocd",
    "local_port": 8888,
    "remote_port": 8080,
    "context": "prod",
    "workload_type": "service",
    "protocol": "tcp",
    "alias": "argocd",
    "domain_enabled": true,
    "http_logs_enabled": "true"
  },
  {"namespace": "x", "workload_type": "proxy", "protocol": "tcp", "remote_address": "db.internal", "remote_port": 5432, "local_port": 5432, "alias": "rds"},
  {"service": "dns", "namespace": "kube-system", "workload_type": "service", "protocol": "udp", "remote_port": 53, "local_port": 5353},
  {"namespace": "web", "workload_type": "pod", "protocol": "tcp", "target": "app=nginx", "remote_port": 80, "local_port": 8080}
]"#;

    #[test]
    fn kftray_entries_map_or_say_why_not() {
        let got = kftray_json(KFTRAY).expect("parses");
        assert_eq!(got.forwards.len(), 1);
        let f = &got.forwards[0];
        assert_eq!(
            (f.name.as_str(), f.alias.as_deref()),
            ("argocd", Some("argocd"))
        );
        assert_eq!(f.target, Target::Service("argocd-server".into()));
        assert_eq!((f.local_port, &f.port), (8888, &PortRef::Number(8080)));
        assert_eq!(
            (f.context.as_deref(), f.namespace.as_deref()),
            (Some("prod"), Some("argocd"))
        );
        let notes = got.notes.join("\n");
        assert!(f.pod_port, "kftray's remote_port is the pods' port");
        for expect in [
            "HTTP logging",
            "proxy forwards",
            "UDP",
            "label selector (`app=nginx`)",
        ] {
            assert!(notes.contains(expect), "missing `{expect}` in:\n{notes}");
        }
        assert!(notes.contains("line 14 (rds)"), "{notes}");
    }

    #[test]
    fn kftray_errors_name_the_line() {
        let e =
            kftray_json("[\n  {\"service\": \"a\", \"remote_port\": 1,}\n]").expect_err("bad JSON");
        assert_eq!(e.line, 2, "{e}");
        let e = kftray_json("[\n  {\"service\": \"a\", \"remote_port\": 1},\n  {\"workload_type\": \"service\", \"remote_port\": 2}\n]")
            .expect_err("no service");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("needs `service`"), "{e}");
    }

    #[test]
    fn kftray_export_imports_back() {
        let cfg = Config::from_yaml(
            "version: 1\nforwards:\n  - {name: echo, namespace: demo, target: service/echo, port: 80, local_port: 18080, alias: echo}\n  - {name: db, target: statefulset/db, port: pg, local_port: 5432}\n",
        )
        .expect("config");
        let (text, notes) = kftray_export(&cfg);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("db: statefulset/db has no kftray equivalent")),
            "{notes:?}"
        );
        let back = kftray_json(&text).expect("re-imports");
        assert_eq!(back.forwards.len(), 1);
        let (a, b) = (&cfg.forwards[0], &back.forwards[0]);
        assert_eq!(
            (
                &a.name,
                &a.target,
                &a.port,
                a.local_port,
                &a.namespace,
                &a.alias
            ),
            (
                &b.name,
                &b.target,
                &b.port,
                b.local_port,
                &b.namespace,
                &b.alias
            )
        );
    }

    const KPORTAL: &str = "\
contexts:
  - name: ferry-fake
    namespaces:
      - name: demo
        forwards:
          - resource: service/echo
            protocol: tcp
            port: 80
            localPort: 18080
            alias: echo
          - resource: pod
            selector: app=web
            port: 8080
            localPort: 18081
          - resource: statefulset/db
            protocol: tcp
            port: 5432
            localPort: 15432
healthCheck:
  interval: 3s
  timeout: 2s
  method: tcp-dial
  maxConnectionAge: 25m
reliability:
  retryOnStale: true
mdns:
  enabled: true
";

    #[test]
    fn kportal_files_map_health_and_mdns() {
        let got = kportal_yaml(KPORTAL).expect("parses");
        let names: Vec<&str> = got.forwards.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["echo", "db"]);
        let echo = &got.forwards[0];
        assert_eq!(
            (echo.context.as_deref(), echo.namespace.as_deref()),
            (Some("ferry-fake"), Some("demo"))
        );
        assert_eq!(echo.health.kind, super::super::ProbeKind::Tcp);
        assert_eq!(echo.health.interval, std::time::Duration::from_secs(3));
        assert_eq!(
            echo.health.max_age,
            Some(std::time::Duration::from_secs(25 * 60))
        );
        assert_eq!(echo.alias.as_deref(), Some("echo"));
        assert_eq!(
            got.forwards[1].alias.as_deref(),
            Some("db"),
            "mdns on: names from the resource"
        );
        let notes = got.notes.join("\n");
        assert!(
            notes.contains("reliability") && notes.contains("label selector (`app=web`)"),
            "{notes}"
        );
        let e =
            kportal_yaml("contexts:\n  - name: x\n    colour: red\n").expect_err("unknown field");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn one_guess_of_the_format_for_every_caller() {
        let ferry_yaml = "version: 1\nforwards:\n  - name: echo\n    target: svc/echo\n    port: 80\n    local_port: 18080\n";
        let ferry_json = "{\"version\": 1, \"forwards\": []}";
        let kftray = "[{\"service\": \"echo\", \"remote_port\": 80}]";
        let kportal = "contexts:\n  - name: x\n";
        let kubectl = "kubectl port-forward svc/echo 18080:80 -n demo\n";
        for (text, name, want) in [
            (ferry_yaml, None, Format::Ferry),
            (ferry_yaml, Some("ferry.yaml"), Format::Ferry),
            (ferry_json, Some("export.json"), Format::Ferry),
            (kftray, None, Format::Kftray),
            (kftray, Some("configs.json"), Format::Kftray),
            (kportal, None, Format::Kportal),
            ("", Some(".kportal.yaml"), Format::Kportal),
            (kubectl, None, Format::Kubectl),
            (kubectl, Some("forwards.sh"), Format::Kubectl),
        ] {
            assert_eq!(detect(text, name), want, "{text:?} named {name:?}");
        }
        let got = read(ferry_yaml, Format::Ferry).expect("Ferry's YAML");
        assert_eq!(got.forwards[0].name, "echo");
        let e = read("version: 1\nforwards: 7\n", Format::Ferry).expect_err("not a list");
        assert!(e.to_string().contains("forwards"), "{e}");
    }

    #[test]
    fn a_kubectl_command_reads_back_as_the_same_forward() {
        let text = "kubectl port-forward --context 'my ctx' -n demo --address 0.0.0.0 svc/echo 18080:http\nkubectl port-forward deploy/web :8080\n";
        for f in kubectl_lines(text).expect("lines").forwards {
            let line = kubectl_command(&f, None);
            let back = kubectl_line(&line).expect(&line).forwards.remove(0);
            assert_eq!(
                (
                    &back.target,
                    &back.port,
                    back.local_port,
                    &back.context,
                    &back.namespace,
                    back.bind
                ),
                (
                    &f.target,
                    &f.port,
                    f.local_port,
                    &f.context,
                    &f.namespace,
                    f.bind
                ),
                "{line}"
            );
        }
        let f = &kubectl_lines("kubectl port-forward svc/echo 18080:80")
            .expect("line")
            .forwards[0];
        assert_eq!(
            kubectl_command(f, Some("echo-1")),
            "kubectl port-forward pod/echo-1 18080:80"
        );
    }
}
