use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::config::ProbeKind;

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Reads `pairs` as the annotations of `kind/name` in `demo` on context `prod`.
fn read(kind: &str, name: &str, pairs: &[(&str, &str)]) -> (Vec<Declared>, Vec<String>) {
    from_annotations(kind, name, "demo", Some("prod"), &annotations(pairs))
}

/// `(name, port, local_port, pod_port)` of each declared forward.
fn summary(declared: &[Declared]) -> Vec<(String, String, u16, bool)> {
    declared
        .iter()
        .map(|d| {
            (
                d.forward.name.clone(),
                d.forward.port.to_string(),
                d.forward.local_port,
                d.forward.pod_port,
            )
        })
        .collect()
}

fn row(name: &str, port: &str, local: u16, pod_port: bool) -> (String, String, u16, bool) {
    (name.to_string(), port.to_string(), local, pod_port)
}

fn assert_mentions(problems: &[String], expect: &[&str]) {
    let text = problems.join("\n");
    for e in expect {
        assert!(text.contains(e), "missing `{e}` in:\n{text}");
    }
}

const FERRY_YAML: &str = "
- name: shop
  port: http
  local_port: 8080
  alias: shop
  description: \"The shop's front end\\u001b[31m\"
  health: {kind: http, interval: 10s, http: {path: /ready}}
- port: 9090
- port: 80
- port: 5432
  pod_port: true
  local_port: 0
";

const FERRY_JSON: &str = r#"[{"name":"shop","port":"http","local_port":8080,"alias":"shop","description":"The shop's front end\u001b[31m","health":{"kind":"http","interval":"10s","http":{"path":"/ready"}}},{"port":9090},{"port":80},{"port":5432,"pod_port":true,"local_port":0}]"#;

#[test]
fn ferrys_annotation_reads_the_same_in_yaml_and_json() {
    let (yaml, problems) = read("service", "web", &[(FERRY, FERRY_YAML)]);
    assert!(problems.is_empty(), "{problems:?}");
    let (json, problems) = read("svc", "web", &[(FERRY, FERRY_JSON)]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(yaml, json);
    assert_eq!(
        summary(&yaml),
        [
            row("shop", "http", 8080, false),
            // A numeric port from 1024 up is also the suggested local port; below, 0 picks.
            row("web-9090", "9090", 9090, false),
            row("web-80", "80", 0, false),
            row("web-5432", "5432", 0, true),
        ]
    );
    let shop = &yaml[0];
    assert_eq!(shop.source, Origin::Ferry);
    assert_eq!(shop.object, "service/web");
    assert_eq!(
        shop.description.as_deref(),
        Some("The shop's front end [31m")
    );
    assert_eq!(shop.forward.alias.as_deref(), Some("shop"));
    assert_eq!(shop.forward.health.kind, ProbeKind::Http);
    assert_eq!(shop.forward.health.interval, Duration::from_secs(10));
    assert_eq!(shop.forward.health.http.path, "/ready");
    for d in &yaml {
        assert_eq!(d.forward.context.as_deref(), Some("prod"));
        assert_eq!(d.forward.namespace.as_deref(), Some("demo"));
        assert_eq!(d.forward.target, Target::Service("web".into()));
        assert!(d.forward.enabled);
        assert!(d.notes.is_empty(), "{:?}", d.notes);
    }
    // On a workload, the port is a container port.
    let (on_deploy, problems) = read("Deployment", "api", &[(FERRY, "[{port: grpc}]")]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        on_deploy[0].forward.target,
        Target::Deployment("api".into())
    );
    assert_eq!(on_deploy[0].object, "deployment/api");
    assert_eq!(summary(&on_deploy), [row("api-grpc", "grpc", 0, false)]);
}

#[test]
fn errors_name_the_object_the_annotation_and_the_field_and_spare_the_rest() {
    let text = "
- {name: ok, port: 8080}
- {port: 8081, colour: red}
- {port: 99999, local_port: -1}
- {name: Bad_Name, port: 8082}
- {local_port: 9000}
- {port: 8083, health: {intervl: 5s}}
- {port: 8084, alias: Not.An.Alias}
- {name: ok, port: 8085}
- {port: http, pod_port: true}
- just text
- {port: 8086}
";
    let (declared, problems) = read("service", "web", &[(FERRY, text)]);
    assert_eq!(
        summary(&declared),
        [
            row("ok", "8080", 8080, false),
            row("web-8086", "8086", 8086, false)
        ]
    );
    assert_mentions(
        &problems,
        &[
            "service/web in demo: ferry.dev/forwards[1]: unknown field `colour`; the fields are name, port",
            "ferry.dev/forwards[2].port: 99999 is not a port",
            "ferry.dev/forwards[2].local_port: -1 is not a port",
            "ferry.dev/forwards[3].name: \"Bad_Name\" is not a valid name",
            "ferry.dev/forwards[4].port: missing",
            "ferry.dev/forwards[5].health: unknown field `intervl`",
            "ferry.dev/forwards[6].alias: \"Not.An.Alias\" is not a valid alias",
            "ferry.dev/forwards[7].name: \"ok\" names an entry above too",
            "ferry.dev/forwards[8].port: with `pod_port`",
            "ferry.dev/forwards[9]: expected a mapping",
        ],
    );
    assert_eq!(problems.len(), 10, "{problems:#?}");
    let entries: Vec<usize> = problems
        .iter()
        .filter_map(|p| p.split_once("forwards[")?.1.split_once(']')?.0.parse().ok())
        .collect();
    assert!(entries.is_sorted(), "in entry order: {problems:#?}");
}

#[test]
fn a_bad_annotation_does_not_hide_the_others() {
    let (declared, problems) = read(
        "service",
        "web",
        &[
            (FERRY, "[{port: 8080"),
            (KFTRAY_ENABLED, "true"),
            (KFTRAY_CONFIGS, "web-3000-8080"),
        ],
    );
    assert_eq!(summary(&declared), [row("web", "8080", 3000, true)]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_mentions(
        &problems,
        &["service/web in demo: ferry.dev/forwards: not a YAML or JSON list"],
    );
    for value in ["", "{port: 80}", "42"] {
        let (declared, problems) = read("pod", "solo", &[(FERRY, value)]);
        assert!(declared.is_empty());
        assert_mentions(&problems, &["pod/solo in demo: ferry.dev/forwards: e"]);
    }
}

#[test]
fn objects_ferry_cannot_point_at_are_reported_once() {
    let (declared, problems) = read("daemonset", "agent", &[(FERRY, "[{port: 9100}]")]);
    assert!(declared.is_empty());
    assert_eq!(
        problems,
        [
            "daemonset/agent in demo: ferry.dev/forwards: Ferry forwards to services, deployments, statefulsets and pods, not daemonsets; forward to one of its pods instead"
        ]
    );
    let (_, problems) = read("job", "x", &[(K9S, "80")]);
    assert_mentions(
        &problems,
        &["job/x in demo: k9scli.io/port-forwards: `job` is not a target kind"],
    );
    let (_, problems) = from_annotations(
        "service",
        "web",
        "Not_A_Namespace",
        None,
        &annotations(&[(FERRY, "[{port: 80}]")]),
    );
    assert_mentions(
        &problems,
        &["namespace: \"Not_A_Namespace\" is not a valid namespace"],
    );
    // Objects without any of the annotations give nothing, not even a problem.
    let (declared, problems) = read("daemonset", "agent", &[("other.io/x", "1")]);
    assert!(declared.is_empty() && problems.is_empty());
}

#[test]
fn kftray_configs_map_as_kftray_reads_them() {
    let (declared, problems) = read(
        "service",
        "grafana",
        &[
            (KFTRAY_ENABLED, "true"),
            (
                KFTRAY_CONFIGS,
                "grafana-13080-3000, api-3001-http,Admin_UI-3002-9090,my-web-3003-80,x-port-80,api-3004-8443,,-3005-7000",
            ),
        ],
    );
    assert_eq!(
        summary(&declared),
        [
            // A number is the pods' port, which kftray forwards to directly.
            row("grafana", "3000", 13080, true),
            // A name is one of the service's ports, which leads to the same pods' port.
            row("api", "http", 3001, false),
            row("admin-ui", "9090", 3002, true),
            // Aliases are names, so a repeated one is made unique.
            row("api-2", "8443", 3004, true),
            row("grafana-7000", "7000", 3005, true),
        ]
    );
    assert!(declared.iter().all(|d| d.source == Origin::Kftray));
    assert_eq!(
        declared[2].notes,
        ["kftray's alias `Admin_UI` is the forward's name `admin-ui`"]
    );
    assert_mentions(
        &problems,
        &[
            "service/grafana in demo: kftray.app/configs[3]: `my-web-3003-80`: not alias-localPort-targetPort (kftray splits at every '-'",
            "kftray.app/configs[4]: `x-port-80`: `port` is not a local port",
        ],
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn kftray_annotations_count_only_where_kftray_reads_them() {
    for enabled in [None, Some("True"), Some("false")] {
        let mut pairs = vec![(KFTRAY_CONFIGS, "web-3000-8080")];
        if let Some(v) = enabled {
            pairs.push((KFTRAY_ENABLED, v));
        }
        let (declared, problems) = read("service", "web", &pairs);
        assert!(declared.is_empty(), "{enabled:?}");
        assert_mentions(
            &problems,
            &[
                "kftray.app/configs: ignored, as kftray ignores it: kftray imports a service only when kftray.app/enabled is \"true\"",
            ],
        );
    }
    let (declared, problems) = read(
        "deployment",
        "web",
        &[(KFTRAY_ENABLED, "true"), (KFTRAY_CONFIGS, "web-3000-8080")],
    );
    assert!(declared.is_empty());
    assert_mentions(
        &problems,
        &[
            "deployment/web in demo: kftray.app/configs: kftray reads its annotations on services only",
        ],
    );
    // Alone, `enabled` means every port of the service, which its annotations do not list.
    let (declared, problems) = read("service", "web", &[(KFTRAY_ENABLED, "true")]);
    assert!(declared.is_empty());
    assert_mentions(
        &problems,
        &["kftray.app/enabled: without kftray.app/configs"],
    );
}

fn service_port(name: Option<&str>, port: i32, target: Option<IntOrString>) -> ServicePort {
    ServicePort {
        name: name.map(str::to_string),
        port,
        target_port: target,
        ..ServicePort::default()
    }
}

#[test]
fn kftray_enabled_alone_forwards_every_tcp_port_of_the_service() {
    let service = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            annotations: Some(annotations(&[(KFTRAY_ENABLED, "true")])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![
                service_port(Some("http"), 80, Some(IntOrString::Int(8080))),
                service_port(
                    Some("metrics"),
                    9100,
                    Some(IntOrString::String("prom".into())),
                ),
                service_port(None, 5432, None),
                ServicePort {
                    protocol: Some("UDP".into()),
                    ..service_port(Some("dns"), 53, Some(IntOrString::Int(53)))
                },
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let (declared, problems) = from_service(&service, Some("prod"));
    assert_eq!(
        summary(&declared),
        [
            row("web-8080", "8080", 8080, true),
            row("web-metrics", "metrics", 0, false),
            row("web-5432", "5432", 5432, true),
        ]
    );
    assert_eq!(declared[0].forward.namespace.as_deref(), Some("shop"));
    assert_mentions(&declared[1].notes, &["`prom`, which only the pods know"]);
    assert_eq!(
        problems,
        [
            "service/web in shop: kftray.app/enabled (spec.ports[3]): 53 is UDP; Ferry forwards TCP only"
        ]
    );
    // With Ferry's own annotation too, a port both declare is offered once, as Ferry's.
    let mut both = service.clone();
    both.metadata.annotations = Some(annotations(&[
        (KFTRAY_ENABLED, "true"),
        (
            FERRY,
            "[{name: web, port: 8080, pod_port: true, local_port: 18080}]",
        ),
    ]));
    let (declared, _) = from_service(&both, Some("prod"));
    assert_eq!(
        summary(&declared),
        [
            row("web", "8080", 18080, true),
            row("web-metrics", "metrics", 0, false),
            row("web-5432", "5432", 5432, true),
        ]
    );
    assert_eq!(declared[0].source, Origin::Ferry);
}

#[test]
fn k9s_annotations_map_as_k9s_reads_them() {
    let (declared, problems) = read(
        "pod",
        "fred",
        &[
            (K9S_AUTO, "zorg::5556, bozo::9090:p1"),
            (
                K9S,
                "bozo::p1,bozo::8081/8081,zorg::5556,c1::http/8080,8443:https,80,bad name::80,c::,c::x:80",
            ),
        ],
    );
    assert_eq!(
        summary(&declared),
        [
            row("fred-5556", "5556", 5556, false),
            row("fred-p1", "p1", 9090, false),
            // `bozo::p1` repeats the automatic one and `zorg::5556` too: offered once.
            row("fred-8081", "8081", 8081, false),
            row("fred-http", "http", 8080, false),
            row("fred-https", "https", 8443, false),
            row("fred-80", "80", 0, false),
        ]
    );
    assert!(declared.iter().all(|d| d.source == Origin::K9s));
    assert_eq!(declared[0].object, "pod/fred");
    assert_mentions(
        &declared[1].notes,
        &[
            "k9s looks the port name `p1` up in container `bozo`; Ferry looks it up among all the pod's containers",
        ],
    );
    assert_mentions(&declared[5].notes, &["k9s would listen on local port 80"]);
    assert_mentions(
        &problems,
        &[
            "pod/fred in demo: k9scli.io/port-forwards[6]: `bad name::80`: `bad name` is not a container name",
            "k9scli.io/port-forwards[7]: `c::`: no container port",
            "k9scli.io/port-forwards[8]: `c::x:80`: `x` is not a local port",
        ],
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
    // Without a local port or a number, a named port's local port is picked.
    let (declared, _) = read("statefulset", "db", &[(K9S, "pg::postgres")]);
    assert_eq!(
        summary(&declared),
        [row("db-postgres", "postgres", 0, false)]
    );
    assert_mentions(&declared[0].notes, &["which only the pod's spec says"]);
    // k9s does not read services' annotations.
    let (declared, problems) = read("service", "web", &[(K9S_AUTO, "web::80")]);
    assert!(declared.is_empty());
    assert_mentions(
        &problems,
        &["service/web in demo: k9scli.io/auto-port-forwards: k9s reads this annotation on pods"],
    );
}

#[test]
fn derived_names_are_valid_and_unique_within_an_object() {
    let long = format!("{}.example", "a".repeat(240));
    let (declared, problems) = read(
        "service",
        &long,
        &[(
            FERRY,
            "[{port: 8080}, {port: 8080, local_port: 1}, {name: x, port: 1}]",
        )],
    );
    assert!(problems.is_empty(), "{problems:?}");
    let (numeric, _) = read("pod", "0-db", &[(FERRY, "[{port: 5432}, {port: 5432}]")]);
    let (taken, _) = read(
        "pod",
        "web",
        &[(FERRY, "[{port: 80}, {name: web-80, port: 81}]")],
    );
    for d in declared.iter().chain(&numeric).chain(&taken) {
        assert_eq!(check_name(&d.forward.name), Ok(()), "{}", d.forward.name);
    }
    assert_eq!(
        declared[0].forward.name,
        declared[0].forward.name.to_ascii_lowercase()
    );
    assert_ne!(declared[0].forward.name, declared[1].forward.name);
    assert_eq!(
        [
            numeric[0].forward.name.as_str(),
            numeric[1].forward.name.as_str()
        ],
        ["f-0-db-5432", "f-0-db-5432-2"]
    );
    // A given name is reserved before any name is derived.
    assert_eq!(
        [
            taken[0].forward.name.as_str(),
            taken[1].forward.name.as_str()
        ],
        ["web-80-2", "web-80"]
    );
    // Two entries suggesting one local port: the second picks a free one, and says so.
    let (clash, _) = read(
        "pod",
        "web",
        &[(FERRY, "[{port: 8080}, {port: 9090, local_port: 8080}]")],
    );
    assert_eq!(clash[1].forward.local_port, 0);
    assert_mentions(
        &clash[1].notes,
        &["local port 8080 is suggested for web-8080 too"],
    );
}

/// The value of the `ferry.dev/forwards=` word of `command`, split as a shell would.
fn value_in(command: &str) -> String {
    let words = shell_words::split(command).expect("the command splits into words");
    assert_eq!(&words[..2], ["kubectl", "annotate"]);
    assert_eq!(words.last().map(String::as_str), Some("--overwrite"));
    words
        .iter()
        .find_map(|w| w.strip_prefix("ferry.dev/forwards="))
        .expect("the annotation word")
        .to_string()
}

#[test]
fn annotate_command_reads_back_as_the_same_forward() {
    let config = Config::from_yaml(
        "version: 1
forwards:
  - {name: shop, context: \"my ctx\", namespace: demo, target: service/web, port: http, local_port: 8080, alias: shop, health: {kind: http, http: {path: \"/it's\"}}}
  - {name: pods, context: \"my ctx\", namespace: demo, target: service/web, port: 9000, pod_port: true, local_port: 0}
  - {name: db, namespace: data, target: statefulset/db, port: 5432, local_port: 15432, bind: 0.0.0.0, pick: random}
",
    )
    .expect("config");
    for f in &config.forwards {
        let command = annotate_command(f);
        let value = value_in(&command);
        assert_eq!(Some(value.clone()), annotation_for(&[f]).ok());
        let words = shell_words::split(&command).expect("splits");
        assert!(words.contains(&f.target.to_string()), "{command}");
        let (back, problems) = from_annotations(
            f.target.kind(),
            f.target.name(),
            f.namespace.as_deref().unwrap_or("default"),
            f.context.as_deref(),
            &annotations(&[(FERRY, &value)]),
        );
        assert!(problems.is_empty(), "{command}: {problems:?}");
        let b = &back[0].forward;
        assert_eq!(
            (
                &b.name,
                &b.port,
                b.local_port,
                &b.alias,
                &b.health,
                b.pod_port
            ),
            (
                &f.name,
                &f.port,
                f.local_port,
                &f.alias,
                &f.health,
                f.pod_port
            ),
            "{command}"
        );
        assert_eq!(
            (&b.context, &b.namespace, &b.target),
            (&f.context, &f.namespace, &f.target)
        );
    }
    assert_eq!(
        annotate_command(&config.forwards[2]),
        r#"kubectl annotate -n data statefulset/db 'ferry.dev/forwards=[{"name":"db","port":5432,"local_port":15432}]' --overwrite"#
    );
    // Both forwards on service/web go into one annotation.
    let web: Vec<&Forward> = config.forwards[..2].iter().collect();
    let command = annotate_command_for(&web).expect("one object");
    assert!(
        command.starts_with("kubectl annotate --context 'my ctx' -n demo service/web "),
        "{command}"
    );
    let (back, problems) = from_annotations(
        "service",
        "web",
        "demo",
        Some("my ctx"),
        &annotations(&[(FERRY, &value_in(&command))]),
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        summary(&back),
        [
            row("shop", "http", 8080, false),
            row("pods", "9000", 0, true)
        ]
    );
}

#[test]
fn one_annotation_holds_one_objects_forwards() {
    let config = Config::from_yaml(
        "version: 1
forwards:
  - {name: a, namespace: demo, target: service/web, port: 80, local_port: 1}
  - {name: b, namespace: other, target: service/web, port: 80, local_port: 2}
",
    )
    .expect("config");
    let all: Vec<&Forward> = config.forwards.iter().collect();
    assert_eq!(annotation_for(&[]), Err(AnnotationError::Empty));
    let e = annotation_for(&all).expect_err("two namespaces");
    assert_eq!(
        e.to_string(),
        "a points at service/web in demo but b at service/web in other; an annotation holds the forwards of one object"
    );
    assert!(annotate_command_for(&all).is_err());
}

#[test]
fn already_have_matches_what_a_forward_does_not_its_name() {
    let config = Config::from_yaml(
        "version: 1
forwards:
  - {name: mine, context: prod, namespace: demo, target: service/web, port: 8080, pod_port: true, local_port: 18080}
  - {name: other-ns, context: prod, namespace: shop, target: service/web, port: 80, local_port: 0}
  - {name: no-context, namespace: demo, target: service/web, port: 80, local_port: 0}
",
    )
    .expect("config");
    let (declared, problems) = read(
        "service",
        "web",
        &[
            (KFTRAY_ENABLED, "true"),
            (KFTRAY_CONFIGS, "web-3000-8080,web-3001-80"),
            (FERRY, "[{name: shop, port: 8080}]"),
        ],
    );
    assert!(problems.is_empty(), "{problems:?}");
    let have: Vec<Option<String>> = declared.iter().map(|d| already_have(&config, d)).collect();
    assert_eq!(
        summary(&declared),
        [
            row("shop", "8080", 8080, false),
            row("web", "8080", 3000, true),
            row("web-2", "80", 3001, true),
        ]
    );
    // The service's port 8080 is not its pods' port 8080; a name does not matter.
    assert_eq!(have, [None, Some("mine".to_string()), None]);
}
