//! The dashboards and alerts on a real Prometheus (Debian's `prometheus`): it scrapes a running
//! service under a generated stream with invalid events; every Grafana query returns data; every
//! alert expression evaluates, returns data once its thresholds are taken out (the values it
//! compares exist whether or not it fires), and every metric it watches has a series;
//! `promtool check metrics` has no complaint about the live scrape.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use leadscore::gen::{generate, GenConfig};
use serde_json::Value;
use support::*;

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs a PromQL query; the result vector (or an error naming the query).
fn query(prom: &str, q: &str) -> Vec<Value> {
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={}", percent_encode(q)))
        .unwrap_or_else(|| panic!("Prometheus did not answer {q}"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("success")),
        "{q}: {body}"
    );
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// `leadscore_*` metric names in an expression (histogram series by their base name).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in expr.match_indices("leadscore_") {
        let name: String = expr[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push(name);
    }
    out
}

/// An alert expression without its thresholds (`> 0.05`, `== 0`): the values it compares, which
/// must exist whether or not the alert fires.
fn without_thresholds(expr: &str) -> String {
    let mut out = expr.to_string();
    for op in [" > ", " == ", " < "] {
        while let Some(i) = out.find(op) {
            let rest = &out[i + op.len()..];
            let number = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .count();
            assert!(number > 0, "a threshold is a number: {expr}");
            out = format!("{}{}", &out[..i], &rest[number..]);
        }
    }
    out
}

#[test]
fn every_dashboard_query_and_alert_evaluates_on_a_real_prometheus() {
    let prometheus = std::env::var("LEADSCORE_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let n = Names::new("prom");
    create_topics(&n, 4);
    let outcomes = format!("{}-outcomes", n.input);
    rt().block_on(leadscore::kafka::ensure_topics(
        &brokers(),
        &Default::default(),
        &[(outcomes.clone(), 4)],
        &[],
    ))
    .unwrap();
    let mut svc = Service::start(
        &n,
        &[
            ("LEADSCORE_STATISTICS_INTERVAL", "1s"),
            ("LEADSCORE_OUTCOMES_TOPIC", outcomes.as_str()),
        ],
    );
    svc.wait_ready(Duration::from_secs(60));
    let records = generate(&GenConfig {
        leads: 400,
        invalid_fraction: 0.05,
        ..GenConfig::default()
    })
    .records;
    let producer = produce_in_background(&n.input, &records, 400.0);

    let dir = std::env::temp_dir().join(unique("prometheus"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nrule_files: [{}, {}]\n\
             scrape_configs:\n  - job_name: leadscore\n    static_configs: [{{ targets: ['{}'] }}]\n",
            repo("deploy/prometheus/alerts.yml").display(),
            repo("deploy/prometheus/recording.yml").display(),
            svc.http
        ),
    )
    .unwrap();
    let mut prom = Command::new(&prometheus)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {prometheus} ({e}): install Debian's `prometheus` (scripts/test.sh does)"));
    let addr = format!("127.0.0.1:{port}");
    // Enough scrapes for rates and quantiles over the stream.
    wait_until(
        Duration::from_secs(120),
        || {
            http_get(&addr, "/-/ready").is_some_and(|r| r.0 == 200)
                && query(&addr, "count_over_time(up{job=\"leadscore\"}[1m])")
                    .first()
                    .and_then(|v| v["value"][1].as_str()?.parse::<f64>().ok())
                    .is_some_and(|c| c >= 15.0)
        },
        || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default(),
    );
    // Sales answers the alerts: one accepted, the others rejected (charged to their top signal).
    producer.join().unwrap();
    wait_all_committed(
        &n.group,
        &n.input,
        &high_watermarks(&n.input),
        Duration::from_secs(120),
        &[&svc],
    );
    let alerted: std::collections::BTreeSet<String> = outputs(&n.output)
        .iter()
        .map(|a| a["lead_id"].as_str().unwrap().to_string())
        .collect();
    assert!(alerted.len() >= 2, "{alerted:?}");
    let at = leadscore::time::format_rfc3339(leadscore::time::now_micros() - 60_000_000);
    produce(
        &outcomes,
        alerted.iter().enumerate().map(|(i, lead)| {
            let outcome = if i == 0 { "accepted" } else { "rejected" };
            let v = format!(r#"{{"lead_id":"{lead}","ts":"{at}","outcome":"{outcome}"}}"#);
            (lead.clone(), v.into_bytes())
        }),
    );
    wait_until(
        Duration::from_secs(60),
        || !query(&addr, "leadscore:rejections_by_signal:1d").is_empty(),
        || svc.log_text(),
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/grafana/leadscore.json")).unwrap(),
    )
    .unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let q = target["expr"].as_str().unwrap();
            assert!(
                !query(&addr, q).is_empty(),
                "panel {:?}: no data for {q}",
                panel["title"]
            );
            queries += 1;
        }
    }
    let alerts = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    let exprs: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .collect();
    assert_eq!(exprs.len(), 8);
    for expr in &exprs {
        query(&addr, expr);
        let values = without_thresholds(expr);
        assert!(
            !query(&addr, &values).is_empty(),
            "alert without its thresholds, no data: {values}"
        );
        for name in metric_names(expr) {
            assert!(
                !query(&addr, &format!("count({{__name__=\"{name}\"}})")).is_empty(),
                "{expr}: no series of {name}"
            );
        }
    }
    // Prometheus loaded the rules and evaluates them.
    let (_, rules) = http_get(&addr, "/api/v1/rules").unwrap();
    assert_eq!(rules.matches("\"health\":\"ok\"").count(), 10, "{rules}");

    let (_, scrape) = svc.get("/metrics").unwrap();
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{queries} dashboard queries and {} alert expressions evaluated",
        exprs.len()
    );
    let _ = prom.kill();
    let _ = prom.wait();
}
