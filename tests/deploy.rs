//! The operator-facing files in `deploy/`, `Dockerfile` and `docker-compose.yml`, checked
//! with the real tools where there is one (promtool, kubernetes-validate) and against
//! the processor itself (metrics it exports, settings it accepts, ports it serves).
//! `scripts/install-deps` installs the tools; a missing one fails these tests.

#[path = "common/promql.rs"]
mod promql;

use personalizer::config::Config;
use personalizer::telemetry::metrics::CATALOG;
use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs a tool in `dir`, failing the test with its output unless it succeeds.
fn tool(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}); scripts/install-deps installs it")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "`{program} {}` failed:\n{text}",
        args.join(" ")
    );
    text
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    let mut current = value;
    for key in path {
        current = match key.parse::<usize>() {
            Ok(i) => &current[i],
            Err(_) => &current[*key],
        };
    }
    assert!(!current.is_null(), "{path:?} is missing");
    current
}

fn alerts() -> Vec<Value> {
    let rules = yaml("deploy/prometheus/alerts.yml");
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_a_firing_and_a_quiet_case() {
    let dir = root().join("deploy/prometheus");
    let checked = tool(&dir, "promtool", &["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = tool(&dir, "promtool", &["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    tool(&dir, "promtool", &["check", "config", "prometheus.yml"]);

    let names: BTreeSet<String> = alerts()
        .iter()
        .map(|r| str_at(r, &["alert"]).to_string())
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    let tests = yaml("deploy/prometheus/alerts.test.yml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().unwrap() {
        for check in case["alert_rule_test"].as_sequence().unwrap() {
            let name = str_at(check, &["alertname"]).to_string();
            if check["exp_alerts"].as_sequence().unwrap().is_empty() {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    assert_eq!(fires, names, "every alert has a case where it fires");
    assert_eq!(quiet, names, "every alert has a case where it stays quiet");
}

#[test]
fn every_alert_has_a_runbook_entry_in_the_readme() {
    let readme = read("README.md");
    for rule in alerts() {
        let name = str_at(&rule, &["alert"]);
        let runbook = str_at(&rule, &["annotations", "runbook"]);
        assert_eq!(runbook, format!("README.md#{}", name.to_lowercase()));
        assert!(
            readme.contains(&format!("#### {name}")),
            "README has no `#### {name}` entry saying what to do"
        );
        for key in ["summary", "description"] {
            at(&rule, &["annotations", key]);
        }
        at(&rule, &["labels", "severity"]);
    }
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/personalizer.json")).unwrap()
}

#[test]
fn metric_names_are_found_and_everything_else_is_not() {
    let expr = r#"histogram_quantile(0.99, sum by (le, topic) (rate(personalizer_event_to_decision_seconds_bucket{instance=~"$instance", le!="1"}[$__rate_interval])))
        / on (topic) group_left (x) clamp_min(personalizer_events_total offset 5m, 1e-9) > bool 0.01 and up == 0"#;
    assert_eq!(
        promql::metric_names(expr),
        vec![
            "personalizer_event_to_decision_seconds_bucket",
            "personalizer_events_total",
            "up"
        ]
    );
}

#[test]
fn the_dashboard_and_the_alerts_name_only_metrics_the_processor_exports() {
    let exported: BTreeSet<String> = promql::exported_names().into_iter().collect();
    let queries = promql::dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut used = BTreeSet::new();
    for (title, expr) in &queries {
        let names = promql::metric_names(expr);
        assert!(!names.is_empty(), "panel {title}: no metric in `{expr}`");
        for name in names {
            assert!(
                exported.contains(&name),
                "panel {title}: `{name}` is not exported by the processor"
            );
            used.insert(name);
        }
    }
    for rule in alerts() {
        for name in promql::metric_names(str_at(&rule, &["expr"])) {
            // `up` is Prometheus' own record of each scrape.
            assert!(
                name == "up" || exported.contains(&name),
                "alert {}: `{name}` is not exported",
                str_at(&rule, &["alert"])
            );
        }
    }
    // The dashboard shows every metric the processor has.
    for spec in CATALOG {
        assert!(
            used.iter().any(|u| u.starts_with(spec.name)),
            "no panel shows {}",
            spec.name
        );
    }
}

#[test]
fn the_dashboard_covers_what_operators_watch_and_uses_the_provisioned_datasource() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "personalizer");
    let rows: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in ["Throughput", "Latency", "Lag", "Tasks", "State and RocksDB"] {
        assert!(rows.contains(&wanted), "no `{wanted}` row in {rows:?}");
    }
    let titles: Vec<String> = promql::dashboard_queries()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    for wanted in ["Decisions by type", "Dead letters", "Event to decision"] {
        assert!(titles.iter().any(|t| t == wanted), "no `{wanted}` panel");
    }
    let datasources = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let uid = str_at(&datasources, &["datasources", "0", "uid"]);
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], uid, "{}", panel["title"]);
        }
    }
    // Grafana in docker-compose reaches Prometheus by its service name.
    let url = str_at(&datasources, &["datasources", "0", "url"]);
    assert_eq!(url, "http://prometheus:9090");
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

/// `./host:container[:mode]` volume entries of a service, as (host, container).
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .filter(|v| v.starts_with("./"))
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn docker_compose_references_files_ports_and_images_that_exist() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    for wanted in [
        "kafka",
        "topics",
        "personalizer",
        "shoppers",
        "prometheus",
        "grafana",
        "schema-registry",
    ] {
        assert!(names.contains(wanted), "no `{wanted}` service");
    }
    let mut host_ports = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let image = str_at(service, &["image"]);
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{name}: image `{image}` has no tag"));
        assert!(tag != "latest", "{name}: pin the image, not `latest`");
        if let Some(build) = service.get("build") {
            let context = root().join(str_at(build, &["context"]));
            let dockerfile = context.join(str_at(build, &["dockerfile"]));
            assert!(
                dockerfile.is_file(),
                "{name}: {} missing",
                dockerfile.display()
            );
        }
        for (host, _) in bind_mounts(service) {
            assert!(root().join(&host).exists(), "{name}: {host} does not exist");
        }
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            let (host, _) = port.split_once(':').unwrap();
            assert!(
                host_ports.insert(host.to_string()),
                "port {host} used twice"
            );
        }
        for dependency in service["depends_on"]
            .as_mapping()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .or_else(|| service["depends_on"].as_sequence().cloned())
            .into_iter()
            .flatten()
        {
            let dependency = dependency.as_str().unwrap();
            assert!(
                names.contains(dependency),
                "{name} depends on unknown {dependency}"
            );
        }
    }
    let kafka = &services["kafka"];
    assert!(str_at(kafka, &["image"]).starts_with("apache/kafka:"));
    assert!(str_at(kafka, &["environment", "KAFKA_PROCESS_ROLES"]).contains("controller"));

    // The processor's settings, as the compose file mounts them, are valid, point at
    // the compose broker, and serve HTTP on the port that is published and scraped.
    let processor = &services["personalizer"];
    let (config_host, config_container) = bind_mounts(processor)
        .into_iter()
        .find(|(_, c)| c.ends_with(".toml"))
        .expect("the processor mounts its configuration");
    let command: Vec<&str> = processor["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command, ["run", "--config", config_container.as_str()]);
    let config =
        Config::load_with_env(Some(&root().join(&config_host)), std::iter::empty()).unwrap();
    let advertised = str_at(kafka, &["environment", "KAFKA_ADVERTISED_LISTENERS"]);
    assert!(
        advertised.contains(&config.kafka.bootstrap_servers),
        "{} is not a listener of {advertised}",
        config.kafka.bootstrap_servers
    );
    // One topic is Avro, read through the compose registry at its service name and the
    // container port it listens on.
    assert!(config.kafka.formats.any_input_avro());
    let registry = &services["schema-registry"];
    assert!(str_at(registry, &["image"]).starts_with("apicurio/apicurio-registry:3.3.3"));
    let registry_port = registry["ports"].as_sequence().unwrap()[0]
        .as_str()
        .unwrap()
        .split_once(':')
        .unwrap()
        .1
        .to_string();
    assert_eq!(
        config.schema_registry.url.as_deref(),
        Some(format!("http://schema-registry:{registry_port}/apis/ccompat/v7").as_str())
    );
    let http_port = config.http.listen.rsplit_once(':').unwrap().1.to_string();
    let published = processor["ports"].as_sequence().unwrap()[0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(published.split_once(':').unwrap().1, http_port);
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let target = str_at(
        &prometheus,
        &["scrape_configs", "0", "static_configs", "0", "targets", "0"],
    );
    assert_eq!(target, format!("personalizer:{http_port}"));
    assert_eq!(
        str_at(&prometheus, &["scrape_configs", "0", "job_name"]),
        "personalizer",
        "the alert rules select job=\"personalizer\""
    );
    // Prometheus gets both its configuration and the rules it names.
    let mounted: Vec<String> = bind_mounts(&services["prometheus"])
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert!(mounted.contains(&"/etc/prometheus/prometheus.yml".to_string()));
    for rule_file in prometheus["rule_files"].as_sequence().unwrap() {
        let path = format!("/etc/prometheus/{}", rule_file.as_str().unwrap());
        assert!(mounted.contains(&path), "{path} is not mounted");
    }
    // Grafana finds its provisioning and the dashboards where the provider looks.
    let provider = yaml("deploy/grafana/provisioning/dashboards/personalizer.yml");
    let dashboards_path = str_at(&provider, &["providers", "0", "options", "path"]);
    let grafana_mounts = bind_mounts(&services["grafana"]);
    assert!(grafana_mounts
        .iter()
        .any(|(h, c)| c == dashboards_path && root().join(h).join("personalizer.json").is_file()));
    assert!(grafana_mounts
        .iter()
        .any(|(_, c)| c == "/etc/grafana/provisioning"));
}

#[test]
fn the_dockerfile_is_multi_stage_pinned_and_copies_what_exists() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    for stage in &stages {
        let image = stage.split_whitespace().nth(1).unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t);
        assert!(tag.is_some_and(|t| t != "latest"), "pin the image: {stage}");
    }
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(root().join(source).exists(), "COPY source {source} missing");
        }
    }
    let config = Config::default();
    let port = config.http.listen.rsplit_once(':').unwrap().1;
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));
    assert!(
        dockerfile.contains("--locked"),
        "the image builds from Cargo.lock"
    );
}

fn kubernetes_files() -> Vec<PathBuf> {
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| root().join("deploy/kubernetes").join(r.as_str().unwrap()))
        .collect()
}

#[test]
fn kubernetes_manifests_validate_against_the_kubernetes_schemas() {
    let files = kubernetes_files();
    assert_eq!(files.len(), 4);
    let args: Vec<String> = ["-m", "kubernetes_validate", "--strict"]
        .into_iter()
        .map(String::from)
        .chain(files.iter().map(|f| f.display().to_string()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = tool(root(), "python3", &args);
    assert_eq!(output.matches("passed").count(), files.len(), "{output}");

    // The validator does reject a wrong manifest (a typo in a field name).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        read("deploy/kubernetes/pdb.yaml").replace("maxUnavailable", "maxUnavailble"),
    )
    .unwrap();
    let status = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--quiet"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!status.status.success(), "a misspelt field must fail");
}

fn manifest(kind: &str) -> Value {
    for file in kubernetes_files() {
        let value: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        if value["kind"] == kind {
            return value;
        }
    }
    panic!("no {kind} manifest");
}

fn mebibytes(quantity: &str) -> u64 {
    if let Some(n) = quantity.strip_suffix("Gi") {
        n.parse::<u64>().unwrap() * 1024
    } else {
        quantity.strip_suffix("Mi").unwrap().parse().unwrap()
    }
}

#[test]
fn kubernetes_manifests_agree_with_the_processor_settings() {
    let configmap = manifest("ConfigMap");
    let toml_text = str_at(&configmap, &["data", "personalizer.toml"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("personalizer.toml");
    std::fs::write(&path, toml_text).unwrap();
    let config = Config::load_with_env(Some(&path), std::iter::empty())
        .unwrap_or_else(|e| panic!("the ConfigMap's configuration: {e}"));

    let set = manifest("StatefulSet");
    let pod = at(&set, &["spec", "template"]);
    let container = at(pod, &["spec", "containers", "0"]);
    let port = config.http.listen.rsplit_once(':').unwrap().1;
    assert_eq!(
        at(container, &["ports", "0", "containerPort"]).as_u64(),
        Some(port.parse().unwrap())
    );
    let annotations = at(pod, &["metadata", "annotations"]);
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some(port));
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    assert_eq!(
        str_at(container, &["livenessProbe", "httpGet", "path"]),
        "/healthz"
    );
    assert_eq!(
        str_at(container, &["readinessProbe", "httpGet", "path"]),
        "/readyz"
    );

    // Memory request covers the RocksDB budgets plus 512 MiB for the rest.
    let requested = mebibytes(str_at(container, &["resources", "requests", "memory"]));
    let limit = mebibytes(str_at(container, &["resources", "limits", "memory"]));
    let budgets = (config.state.block_cache_bytes + config.state.write_buffer_bytes) >> 20;
    assert!(
        requested >= budgets + 512,
        "{requested} MiB < {budgets} + 512"
    );
    assert!(limit >= requested);

    // State lives on the pod's own volume, where the configuration says.
    let claim = str_at(
        &set,
        &["spec", "volumeClaimTemplates", "0", "metadata", "name"],
    );
    let mounts = at(container, &["volumeMounts"]).as_sequence().unwrap();
    let state_mount = mounts
        .iter()
        .find(|m| m["name"] == claim)
        .expect("the state volume is mounted");
    assert_eq!(
        Path::new(str_at(state_mount, &["mountPath"])),
        config.state.dir.as_deref().unwrap()
    );
    let args: Vec<&str> = at(container, &["args"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_mount = mounts.iter().find(|m| m["name"] == "config").unwrap();
    assert_eq!(
        args,
        [
            "run",
            "--config",
            &format!("{}/personalizer.toml", str_at(config_mount, &["mountPath"]))
        ]
    );
    // Each pod names its own transactional producer.
    let env = at(container, &["env"]).as_sequence().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "PERSONALIZER_KAFKA__INSTANCE_ID"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"));
    // Other pods reach each pod's read API at its name under the headless service.
    let service = manifest("Service");
    assert_eq!(at(&service, &["spec", "clusterIP"]).as_str(), Some("None"));
    let advertised = format!(
        "http://$(POD_NAME).{}:{}",
        str_at(&set, &["spec", "serviceName"]),
        at(container, &["ports", "0", "containerPort"])
            .as_u64()
            .unwrap()
    );
    assert!(env
        .iter()
        .any(|e| e["name"] == "PERSONALIZER_HTTP__ADVERTISED_URL"
            && e["value"] == advertised.as_str()));
    assert!(env
        .iter()
        .any(|e| e["name"] == "POD_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"));
    // Long enough for the open transaction to commit (30 s at most) and a flush.
    let grace = at(pod, &["spec", "terminationGracePeriodSeconds"])
        .as_u64()
        .unwrap();
    assert!(grace >= 45, "{grace}");

    let labels = at(pod, &["metadata", "labels"]);
    let service = manifest("Service");
    assert_eq!(str_at(&service, &["spec", "clusterIP"]), "None");
    assert_eq!(
        str_at(&set, &["spec", "serviceName"]),
        str_at(&service, &["metadata", "name"])
    );
    assert_eq!(at(&service, &["spec", "selector"]), labels);
    assert_eq!(
        str_at(&service, &["spec", "ports", "0", "targetPort"]),
        str_at(container, &["ports", "0", "name"])
    );
    let pdb = manifest("PodDisruptionBudget");
    assert_eq!(at(&pdb, &["spec", "selector", "matchLabels"]), labels);
    assert_eq!(at(&set, &["spec", "selector", "matchLabels"]), labels);
}

#[test]
fn the_readme_documents_every_metric_and_setting() {
    let readme = read("README.md");
    for spec in CATALOG {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}`", spec.name)))
            .unwrap_or_else(|| panic!("README's metrics table has no row for {}", spec.name));
        assert!(row.contains(spec.kind.name()), "{row}");
        for label in spec.labels {
            assert!(row.contains(label), "{row} misses label {label}");
        }
    }
    for setting in ["`http.listen`", "`log.format`", "`log.filter`"] {
        assert!(
            readme.contains(setting),
            "README does not document {setting}"
        );
    }
}
