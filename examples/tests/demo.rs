//! The demo's console output, checked: one trace per request, the expected nesting, services,
//! kinds and statuses. Durations and ids vary and are not compared.

use std::process::Command;

/// One span line of a drawn tree: depth, name, service, kind, status.
#[derive(Debug, PartialEq)]
struct Line {
    depth: usize,
    name: String,
    service: String,
    kind: String,
    status: String,
}

/// Splits the demo's output into traces, each a list of span lines.
fn traces(stdout: &str) -> Vec<Vec<Line>> {
    let mut traces: Vec<Vec<Line>> = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("trace ") {
            traces.push(Vec::new());
            continue;
        }
        let Some(current) = traces.last_mut() else {
            continue;
        };
        let Some(start) = line.find(|c: char| !matches!(c, ' ' | '│' | '├' | '└' | '─'))
        else {
            continue;
        };
        let prefix = line[..start].chars().count();
        let columns: Vec<&str> = line[start..]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        // name, service, kind, duration, status, details...
        assert!(columns.len() >= 5, "unexpected line: {line:?}");
        current.push(Line {
            depth: prefix / 3,
            name: columns[0].to_owned(),
            service: columns[1].to_owned(),
            kind: columns[2].to_owned(),
            status: columns[4].to_owned(),
        });
    }
    traces
}

fn line(depth: usize, name: &str, service: &str, kind: &str, status: &str) -> Line {
    Line {
        depth,
        name: name.into(),
        service: service.into(),
        kind: kind.into(),
        status: status.into(),
    }
}

/// The tree of a successful order: gateway → orders → (database, inventory, payments, queue).
fn success() -> Vec<Line> {
    vec![
        line(1, "GET /orders/{id}", "gateway", "server", "200"),
        line(2, "shop.Orders/Get", "gateway", "client", "OK"),
        line(3, "shop.Orders/Get", "orders", "server", "OK"),
        line(4, "SELECT shop.orders", "orders", "client", "-"),
        line(4, "shop.Inventory/Reserve", "orders", "client", "OK"),
        line(5, "shop.Inventory/Reserve", "inventory", "server", "OK"),
        line(4, "POST", "orders", "client", "200"),
        line(5, "POST /charge", "payments", "server", "200"),
        line(4, "orders publish", "orders", "producer", "-"),
        line(5, "orders process", "orders", "consumer", "-"),
    ]
}

#[test]
fn the_demo_draws_one_whole_tree_per_request() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_demo"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let traces = traces(&stdout);
    assert_eq!(traces.len(), 5, "{stdout}");

    assert_eq!(traces[0], success(), "{stdout}");
    assert_eq!(
        traces[1],
        [line(1, "GET", "gateway", "server", "404")],
        "{stdout}"
    );
    assert_eq!(
        traces[2],
        [
            line(1, "GET /orders/{id}", "gateway", "server", "502"),
            line(2, "shop.Orders/Get", "gateway", "client", "UNAVAILABLE"),
            line(3, "shop.Orders/Get", "orders", "server", "UNAVAILABLE"),
            line(4, "SELECT shop.orders", "orders", "client", "-"),
            line(4, "shop.Inventory/Reserve", "orders", "client", "INTERNAL"),
            line(
                5,
                "shop.Inventory/Reserve",
                "inventory",
                "server",
                "INTERNAL"
            ),
        ],
        "{stdout}"
    );
    assert_eq!(traces[3], success(), "{stdout}");
    assert_eq!(
        traces[4],
        [
            line(1, "GET /orders/{id}/events", "gateway", "server", "200"),
            line(2, "shop.Orders/Watch", "gateway", "client", "OK"),
            line(3, "shop.Orders/Watch", "orders", "server", "OK"),
        ],
        "{stdout}"
    );
    // The request lines come first, one per request.
    assert!(stdout.contains("GET /orders/42"));
    assert!(stdout.contains("502 Bad Gateway"));
}

#[test]
fn help_explains_the_demo() {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .arg("--bogus")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}
