//! Tests of the configuration model: parsing, defaults, validation, round trips and diffs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// A valid config using every field, in block-style YAML.
const FULL: &str = "\
version: 1
forwards:
  - name: echo
    context: ferry-fake
    namespace: demo
    target: service/echo
    port: 80
    local_port: 18080
    bind: 127.0.0.1
    pick: sticky
    enabled: true
  - name: web
    target: deploy/web
    port: http
    local_port: 0
    bind: '::1'
    pick: round-robin
    enabled: false
  - name: db
    target: sts/db
    port: 5432
    local_port: 15432
    pick: random
profiles:
  - name: dev
    forwards: [echo, web]
  - name: data
    forwards:
      - db
";

/// Parses `yaml`, expects it to fail, and checks that the error's Display contains every
/// one of `expected`. Returns the error for further checks.
#[track_caller]
fn check_err(yaml: &str, expected: &[&str]) -> ConfigError {
    let error = match Config::from_yaml(yaml) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(error) => error,
    };
    let text = error.to_string();
    for want in expected {
        assert!(
            text.contains(want),
            "error should contain {want:?}, but is:\n{text}"
        );
    }
    error
}

/// Builds a config of one YAML document from the given forward items (already indented as
/// items of `forwards:`).
fn with_forwards(items: &str) -> String {
    format!("version: 1\nforwards:\n{items}")
}

#[test]
fn parses_every_field() {
    let config = Config::from_yaml(FULL).expect("valid config");
    assert_eq!(config.version, 1);
    assert_eq!(config.forwards.len(), 3);
    let echo = &config.forwards[0];
    assert_eq!(echo.name, "echo");
    assert_eq!(echo.context.as_deref(), Some("ferry-fake"));
    assert_eq!(echo.namespace.as_deref(), Some("demo"));
    assert_eq!(echo.target, Target::Service("echo".into()));
    assert_eq!(echo.port, PortRef::Number(80));
    assert_eq!(echo.local_port, 18080);
    assert_eq!(echo.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(echo.pick, Pick::Sticky);
    assert!(echo.enabled);
    let web = &config.forwards[1];
    assert_eq!(web.port, PortRef::Name("http".into()));
    assert_eq!(web.bind, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(web.pick, Pick::RoundRobin);
    assert!(!web.enabled);
    assert_eq!(config.forwards[2].pick, Pick::Random);
    assert_eq!(
        config.profiles,
        vec![
            Profile {
                name: "dev".into(),
                forwards: vec!["echo".into(), "web".into()],
            },
            Profile {
                name: "data".into(),
                forwards: vec!["db".into()],
            },
        ]
    );
}

#[test]
fn a_minimal_forward_gets_every_default() {
    let forward: Forward =
        serde_norway::from_str("name: a\ntarget: pod/a\nport: 8080\nlocal_port: 9000\n")
            .expect("minimal forward");
    assert_eq!(forward.name, "a");
    assert_eq!(forward.context, None);
    assert_eq!(forward.namespace, None);
    assert_eq!(forward.target, Target::Pod("a".into()));
    assert_eq!(forward.port, PortRef::Number(8080));
    assert_eq!(forward.local_port, 9000);
    assert_eq!(forward.bind, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
    assert_eq!(forward.pick, Pick::Sticky);
    assert!(forward.enabled);
    assert_eq!(
        forward,
        Forward::new("a", Target::Pod("a".into()), PortRef::Number(8080), 9000)
    );

    // The same holds through JSON, and for a config without forwards or profiles.
    let forward: Forward = serde_json::from_str(
        r#"{"name": "a", "target": "pod/a", "port": 8080, "local_port": 9000}"#,
    )
    .expect("minimal JSON forward");
    assert_eq!(
        forward,
        Forward::new("a", Target::Pod("a".into()), PortRef::Number(8080), 9000)
    );
    assert_eq!(
        Config::from_yaml("version: 1\n").expect("empty config"),
        Config::default()
    );
}

#[test]
fn parse_errors_name_the_field_and_the_line() {
    let forward = "  - name: a\n    target: pod/a\n    port: 80\n";
    // Each case: the YAML, and what its error must mention.
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "version: 1\nforwards: []\nextra: 1\n".into(),
            vec!["unknown field `extra`", "line 3"],
        ),
        (
            with_forwards(&format!("{forward}    local_port: 1\n    colour: red\n")),
            vec!["forwards[0]", "unknown field `colour`", "line 7"],
        ),
        (
            "version: 1\nprofiles:\n  - name: p\n    forward: [a]\n".into(),
            vec!["profiles[0]", "unknown field `forward`", "line 4"],
        ),
        (
            with_forwards(&format!("{forward}    local_port: 70000\n")),
            vec!["forwards[0].local_port", "70000 is not a port", "line 6"],
        ),
        (
            with_forwards(&format!("{forward}    local_port: -1\n")),
            vec!["forwards[0].local_port", "-1 is not a port", "line 6"],
        ),
        (
            with_forwards(&format!("{forward}    local_port: lots\n")),
            vec!["forwards[0].local_port", "line 6"],
        ),
        (
            with_forwards("  - name: a\n    target: job/a\n    port: 80\n    local_port: 1\n"),
            vec!["forwards[0].target", "`job` is not a target kind", "line 4"],
        ),
        (
            with_forwards("  - name: a\n    target: a\n    port: 80\n    local_port: 1\n"),
            vec!["forwards[0].target", "KIND/NAME"],
        ),
        (
            with_forwards("  - name: a\n    target: pod/a\n    port: Http_1\n    local_port: 1\n"),
            vec![
                "forwards[0].port",
                "`Http_1` is not a port number or port name",
                "line 5",
            ],
        ),
        (
            with_forwards(&format!(
                "{forward}    local_port: 1\n    bind: localhost\n"
            )),
            vec!["forwards[0].bind", "invalid IP address", "line 7"],
        ),
        (
            with_forwards(&format!("{forward}    local_port: 1\n    pick: nearest\n")),
            vec![
                "forwards[0].pick",
                "unknown variant `nearest`",
                "round-robin",
            ],
        ),
        (
            with_forwards(&format!(
                "{forward}    local_port: 1\n    enabled: sometimes\n"
            )),
            vec!["forwards[0].enabled", "line 7"],
        ),
        (
            with_forwards("  - name: a\n    port: 80\n    local_port: 1\n"),
            vec!["missing field `target`"],
        ),
        ("forwards: []\n".into(), vec!["missing field `version`"]),
        (
            "version: 1\nforwards:\n  - name: a\n    target: a: b\n".into(),
            vec!["cannot parse config", "line 4"],
        ),
    ];
    for (yaml, expected) in &cases {
        let error = check_err(yaml, expected);
        assert!(
            matches!(error, ConfigError::Parse { line: Some(_), .. }),
            "{error:?}"
        );
    }
}

#[test]
fn parse_errors_keep_the_location_apart() {
    let error = check_err("version: 1\nforwards: []\nextra: 1\n", &[]);
    let ConfigError::Parse {
        message,
        line,
        column,
    } = error
    else {
        panic!("expected a parse error, got {error:?}");
    };
    assert_eq!(line, Some(3));
    assert_eq!(column, Some(1));
    assert!(!message.contains("line 3"), "{message}");
}

#[test]
fn validation_errors_name_the_path() {
    let ok = |name: &str, port: u16| {
        format!("  - name: {name}\n    target: pod/x\n    port: 80\n    local_port: {port}\n")
    };
    // Each case: the YAML, and what its error must mention.
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "version: 2\nforwards:\n  - name: a\n    new-field: x\n".into(),
            vec![
                "version: 2 is not supported; supported versions: 1",
                "(line 1)",
            ],
        ),
        (
            with_forwards(&ok("Echo", 1)),
            vec![
                "forwards[0].name: \"Echo\" is not a valid name",
                "'E'",
                "(line 3)",
            ],
        ),
        (
            with_forwards(&ok("1st", 1)),
            vec!["forwards[0].name", "must start with a letter"],
        ),
        (
            with_forwards(&ok("a-", 1)),
            vec!["forwards[0].name", "must not end with '-'"],
        ),
        (
            with_forwards(&ok("\"\"", 1)),
            vec!["forwards[0].name: a name must not be empty"],
        ),
        (
            with_forwards(&ok(&"a".repeat(64), 1)),
            vec!["forwards[0].name", "too long (64 characters, at most 63)"],
        ),
        (
            with_forwards(&format!("{}{}", ok("echo", 1), ok("echo", 2))),
            vec!["forwards[1].name: \"echo\" is used by forwards[0] too (line 7)"],
        ),
        (
            with_forwards(&format!("{}    context: ''\n", ok("a", 1))),
            vec![
                "forwards[0].context: a context must not be empty",
                "(line 7)",
            ],
        ),
        (
            with_forwards(&format!("{}    namespace: Demo_1\n", ok("a", 1))),
            vec![
                "forwards[0].namespace: \"Demo_1\" is not a valid namespace",
                "(line 7)",
            ],
        ),
        (
            with_forwards(&format!("{}{}", ok("a", 18080), ok("b", 18080))),
            vec![
                "forwards[1].local_port: 127.0.0.1:18080 is also used by forwards[0] (\"a\") (line 10)",
            ],
        ),
        (
            with_forwards(&format!(
                "{}{}    bind: 0.0.0.0\n",
                ok("a", 18080),
                ok("b", 18080)
            )),
            vec![
                "forwards[1].local_port: 0.0.0.0:18080 overlaps 127.0.0.1:18080, used by forwards[0] (\"a\")",
            ],
        ),
        (
            with_forwards(&format!(
                "{}    bind: '::'\n{}    bind: '::1'\n",
                ok("a", 443),
                ok("b", 443)
            )),
            vec![
                "forwards[1].local_port: [::1]:443 overlaps [::]:443, used by forwards[0] (\"a\")",
            ],
        ),
        (
            with_forwards(&format!(
                "{}    enabled: false\n{}    enabled: false\n",
                ok("a", 18080),
                ok("b", 18080)
            )),
            vec!["forwards[1].local_port: 127.0.0.1:18080 is also used by forwards[0]"],
        ),
        (
            format!(
                "{}profiles:\n  - name: dev\n    forwards: [a, nope]\n",
                with_forwards(&ok("a", 1))
            ),
            vec!["profiles[0].forwards[1]: no forward is named \"nope\" (line 9)"],
        ),
        (
            format!(
                "{}profiles:\n  - name: dev\n    forwards: [a, a]\n",
                with_forwards(&ok("a", 1))
            ),
            vec!["profiles[0].forwards[1]: \"a\" is already listed at profiles[0].forwards[0]"],
        ),
        (
            "version: 1\nprofiles:\n  - name: dev\n  - name: dev\n  - name: Prod\n".into(),
            vec![
                "profiles[1].name: \"dev\" is used by profiles[0] too (line 4)",
                "profiles[2].name: \"Prod\" is not a valid name",
            ],
        ),
    ];
    for (yaml, expected) in &cases {
        let error = check_err(yaml, expected);
        assert!(matches!(error, ConfigError::Invalid(_)), "{error:?}");
    }
}

#[test]
fn ports_that_do_not_clash_are_fine() {
    let forward = |name: &str, bind: &str, port: u16| {
        format!(
            "  - name: {name}\n    target: pod/{name}\n    port: 80\n    local_port: {port}\n    bind: '{bind}'\n"
        )
    };
    let cases = [
        // Different loopback addresses are different sockets.
        [forward("a", "127.0.0.2", 80), forward("b", "127.0.0.3", 80)],
        // Port 0 picks a free port each time.
        [forward("a", "127.0.0.1", 0), forward("b", "127.0.0.1", 0)],
        // The unspecified address covers only its own family.
        [forward("a", "0.0.0.0", 80), forward("b", "::1", 80)],
        [forward("a", "::", 80), forward("b", "127.0.0.1", 80)],
        // Different ports never clash.
        [forward("a", "0.0.0.0", 80), forward("b", "0.0.0.0", 81)],
    ];
    for [a, b] in cases {
        let yaml = with_forwards(&format!("{a}{b}"));
        if let Err(error) = Config::from_yaml(&yaml) {
            panic!("expected a valid config:\n{yaml}\nbut got: {error}");
        }
    }
}

#[test]
fn several_problems_are_reported_together() {
    let yaml = "\
version: 1
forwards:
  - name: echo
    target: svc/echo
    port: 80
    local_port: 18080
  - name: echo
    namespace: -bad
    target: svc/echo
    port: 80
    local_port: 18080
profiles:
  - name: dev
    forwards: [missing]
";
    let error = check_err(
        yaml,
        &[
            "invalid config (4 problems):",
            "\n  forwards[1].name: \"echo\" is used by forwards[0] too (line 7)",
            "\n  forwards[1].namespace: \"-bad\" is not a valid namespace",
            "\n  forwards[1].local_port: 127.0.0.1:18080 is also used by forwards[0] (\"echo\") (line 11)",
            "\n  profiles[0].forwards[0]: no forward is named \"missing\" (line 14)",
        ],
    );
    let paths: Vec<&str> = error.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "forwards[1].name",
            "forwards[1].namespace",
            "forwards[1].local_port",
            "profiles[0].forwards[0]",
        ]
    );
    assert_eq!(error.problems()[1].line, Some(8));
}

#[test]
fn validate_checks_configs_built_in_code() {
    let mut forward = Forward::new("a", Target::Pod("a".into()), PortRef::Number(1), 1);
    forward.context = Some(" spaced ".into());
    let config = Config {
        version: 7,
        forwards: vec![forward],
        profiles: Vec::new(),
    };
    let Err(error) = config.validate() else {
        panic!("expected problems");
    };
    assert_eq!(
        error.problems(),
        [
            Problem::new("version", "7 is not supported; supported versions: 1"),
            Problem::new(
                "forwards[0].context",
                "\" spaced \" starts or ends with blanks, which no context name does"
            ),
        ]
    );
    // A problem built in code has no line, and its Display has no line either.
    assert_eq!(
        error.problems()[0].to_string(),
        "version: 7 is not supported; supported versions: 1"
    );
}

#[test]
fn json_is_parsed_and_validated_too() {
    let json = r#"{
  "version": 1,
  "forwards": [
    {"name": "a", "target": "pod/a", "port": 80, "local_port": 1, "colour": "red"}
  ]
}"#;
    let Err(error) = Config::from_json(json) else {
        panic!("expected an error");
    };
    assert!(
        matches!(&error, ConfigError::Parse { message, line: Some(4), .. } if message.contains("unknown field `colour`")),
        "{error:?}"
    );

    let json = r#"{"version": 1, "forwards": [
      {"name": "a", "target": "pod/a", "port": 80, "local_port": 70000}]}"#;
    let Err(error) = Config::from_json(json) else {
        panic!("expected an error");
    };
    assert!(error.to_string().contains("70000 is not a port"), "{error}");
    assert!(error.to_string().contains("line 2"), "{error}");

    let json = r#"{"version": 3, "something": "else"}"#;
    let Err(error) = Config::from_json(json) else {
        panic!("expected an error");
    };
    assert_eq!(
        error.to_string(),
        "invalid config (1 problem):\n  version: 3 is not supported; supported versions: 1"
    );
}

#[test]
fn yaml_round_trips() {
    let config = Config::from_yaml(FULL).expect("valid config");
    let yaml = config.to_yaml().expect("serializes");
    assert_eq!(Config::from_yaml(&yaml).expect("reparses"), config);
    // Defaulted and unset fields are left out.
    let db = yaml.split("name: db").nth(1).expect("db is written");
    assert!(!db.contains("bind:") && !db.contains("enabled:"), "{yaml}");
    assert!(
        !db.contains("context:") && !db.contains("namespace:"),
        "{yaml}"
    );
    assert!(yaml.contains("pick: round-robin"), "{yaml}");
    assert!(yaml.contains("enabled: false"), "{yaml}");
}

#[test]
fn json_round_trips() {
    let config = Config::from_yaml(FULL).expect("valid config");
    let json = config.to_json().expect("serializes");
    assert!(json.contains("\n  \"forwards\": ["), "pretty JSON: {json}");
    assert!(json.contains("\"bind\": \"::1\""), "{json}");
    assert_eq!(Config::from_json(&json).expect("reparses"), config);
    // JSON is YAML too, so the YAML reader accepts the JSON output as well.
    assert_eq!(Config::from_yaml(&json).expect("JSON is YAML"), config);
}

#[test]
fn from_file_chooses_the_format_by_extension() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::from_yaml(FULL).expect("valid config");

    let json_path = dir.path().join("ferry.JSON");
    std::fs::write(&json_path, config.to_json().expect("json")).expect("write");
    assert_eq!(Config::from_file(&json_path).expect("loads"), config);

    let yaml_path = dir.path().join("ferry.conf");
    std::fs::write(&yaml_path, FULL).expect("write");
    assert_eq!(Config::from_file(&yaml_path).expect("loads"), config);

    // YAML that is not JSON fails in a `.json` file.
    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, FULL).expect("write");
    assert!(matches!(
        Config::from_file(&wrong),
        Err(ConfigError::Parse { line: Some(1), .. })
    ));

    let missing = dir.path().join("missing.yaml");
    let Err(error) = Config::from_file(&missing) else {
        panic!("expected an error");
    };
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("missing.yaml"), "{error}");
}

#[test]
fn spec_hash_ignores_only_enabled() {
    let base = Forward::new("a", Target::Pod("a".into()), PortRef::Number(80), 8080);
    let mut disabled = base.clone();
    disabled.enabled = false;
    assert_eq!(base.spec_hash(), disabled.spec_hash());
    assert!(base.spec_eq(&disabled));

    // Each change touches one field of the spec.
    let changes: [fn(&mut Forward); 8] = [
        |f| f.name = "b".into(),
        |f| f.context = Some("c".into()),
        |f| f.namespace = Some("n".into()),
        |f| f.target = Target::Service("a".into()),
        |f| f.port = PortRef::Name("http".into()),
        |f| f.local_port = 8081,
        |f| f.bind = IpAddr::V6(Ipv6Addr::LOCALHOST),
        |f| f.pick = Pick::Random,
    ];
    for change in changes {
        let mut other = base.clone();
        change(&mut other);
        assert_ne!(base.spec_hash(), other.spec_hash(), "{other:?}");
        assert!(!base.spec_eq(&other), "{other:?}");
    }
}

#[test]
fn diff_sorts_forwards_by_what_changed() {
    let old = Config::from_yaml(FULL).expect("valid config");
    let mut new = old.clone();
    // `echo` is only disabled, `web` moves port, `db` is removed, `api` and `aaa` are added.
    new.forwards[0].enabled = false;
    new.forwards[1].local_port = 18081;
    new.forwards.remove(2);
    new.forwards.push(Forward::new(
        "api",
        Target::Service("api".into()),
        PortRef::Number(443),
        0,
    ));
    new.forwards.push(Forward::new(
        "aaa",
        Target::Pod("aaa".into()),
        PortRef::Number(1),
        0,
    ));
    new.profiles.clear();

    let diff = Config::diff(&old, &new);
    assert_eq!(
        diff,
        ConfigDiff {
            added: vec!["aaa".into(), "api".into()],
            removed: vec!["db".into()],
            changed: vec!["web".into()],
            unchanged: vec![],
            enabled_changed: vec!["echo".into()],
        }
    );
    assert!(!diff.is_empty());

    // A spec change together with an `enabled` change counts as a change.
    let mut both = old.clone();
    both.forwards[2].enabled = false;
    both.forwards[2].pick = Pick::Sticky;
    let diff = Config::diff(&old, &both);
    assert_eq!(diff.changed, ["db"]);
    assert!(diff.enabled_changed.is_empty());
    assert_eq!(diff.unchanged, ["echo", "web"]);
}

#[test]
fn diff_of_equal_configs_is_empty() {
    let config = Config::from_yaml(FULL).expect("valid config");
    let diff = Config::diff(&config, &config.clone());
    assert!(diff.is_empty());
    assert_eq!(diff.unchanged, ["db", "echo", "web"]);
    assert_eq!(
        Config::diff(&config, &config),
        Config::diff(&config, &config)
    );
}

#[test]
fn forwards_of_a_profile_follow_its_order() {
    let config = Config::from_yaml(FULL).expect("valid config");
    let names = |profile: &str| -> Vec<String> {
        config
            .forwards_of_profile(profile)
            .expect("profile exists")
            .into_iter()
            .map(|f| f.name.clone())
            .collect()
    };
    assert_eq!(names("dev"), ["echo", "web"]);
    assert_eq!(names("data"), ["db"]);

    let Err(error) = config.forwards_of_profile("prod") else {
        panic!("expected an error");
    };
    assert_eq!(
        error.to_string(),
        "no profile is named \"prod\"; available profiles: \"dev\", \"data\""
    );
    let Err(error) = Config::default().forwards_of_profile("dev") else {
        panic!("expected an error");
    };
    assert!(error.to_string().contains("defines no profiles"), "{error}");
}

#[test]
fn aliases_are_dns_labels_and_unique() {
    let bad = Config::from_yaml(
        "version: 1\nforwards:\n  - {name: a, target: pod/a, port: 1, local_port: 0, alias: Web}\n",
    )
    .expect_err("upper case");
    assert!(bad.to_string().contains("forwards[0].alias"), "{bad}");
    let twice = Config::from_yaml(
        "version: 1\nforwards:\n  - {name: a, target: pod/a, port: 1, local_port: 0, alias: db}\n  - {name: b, target: pod/b, port: 1, local_port: 0, alias: db}\n",
    )
    .expect_err("shared alias");
    let text = twice.to_string();
    assert!(
        text.contains("forwards[1].alias") && text.contains("forwards[0] (\"a\")"),
        "{text}"
    );
    let ok = Config::from_yaml(
        "version: 1\nforwards:\n  - {name: a, target: pod/a, port: 1, local_port: 0, alias: db-a}\n",
    )
    .expect("valid alias");
    assert_eq!(ok.forwards[0].alias.as_deref(), Some("db-a"));
}
