//! `GET /metrics`: the manager's metrics in the Prometheus text format (0.0.4).
//!
//! - `tether_connector_connectivity{scope,connector,status}`: 1 for the status of
//!   each connector's last test, 0 for the other four (a state set, so
//!   `tether_connector_connectivity{status="FAILURE"} == 1` alerts on failures);
//! - `tether_connector_last_tested_timestamp_seconds` and
//!   `tether_connector_last_connected_timestamp_seconds{scope,connector}`;
//! - `tether_connectors{status}`: connectors per status;
//! - `tether_connection_test_duration_seconds{status,trigger}`: a histogram of
//!   how long tests run on this manager, from the request to the stored result
//!   (dispatch to a delegate and its run included);
//! - `tether_tasks{state}`: delegate tasks per state;
//! - `tether_delegates_connected`: delegates connected to this manager;
//! - `tether_connection_tests_in_flight`: background tests running or queued here.
//!
//! Connector, status and task figures come from the database, so every manager
//! sharing it reports the same; durations, delegates and in-flight tests are
//! this manager's own.
//!
//! No API token is needed, as Prometheus scrapers expect. The page carries
//! connector identifiers, scope identifiers and counts, never a URL, a
//! credential or a message from a test; an operator who considers identifiers
//! sensitive keeps `/metrics` off the public listener with the reverse proxy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tether_domain::connector::ConnectivityState;
use tether_store::{ConnectorConnectivity, TestTrigger};

use crate::api::error::ApiError;
use crate::api::AppState;

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the duration histogram's buckets, in seconds: a healthy test
/// takes about 0.1 s, a stage timeout 10 s, a test that waits for a delegate longer.
const BUCKETS: [f64; 12] = [
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

const STATES: [ConnectivityState; 5] = [
    ConnectivityState::Success,
    ConnectivityState::Partial,
    ConnectivityState::Failure,
    ConnectivityState::Pending,
    ConnectivityState::Unknown,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Connection test durations seen by this manager.
#[derive(Debug, Default)]
pub struct TestMetrics {
    by_label: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
}

impl TestMetrics {
    /// Records one finished test.
    pub fn observe(&self, status: ConnectivityState, trigger: TestTrigger, took: Duration) {
        let secs = took.as_secs_f64();
        let mut map = self.by_label.lock().unwrap();
        let h = map.entry((status.as_str(), trigger.as_str())).or_default();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i] += 1;
        }
        h.sum += secs;
        h.count += 1;
    }

    fn render(&self, out: &mut String) {
        let name = "tether_connection_test_duration_seconds";
        help(
            out,
            name,
            "histogram",
            "Time from the start of a connection test to its stored result on this manager, dispatch to a delegate included.",
        );
        for ((status, trigger), h) in self.by_label.lock().unwrap().iter() {
            let labels = format!("status=\"{status}\",trigger=\"{trigger}\"");
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
}

fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// One gauge per connector with a time in seconds, for those that have one.
fn timestamps(
    out: &mut String,
    name: &str,
    text: &str,
    connectors: &[ConnectorConnectivity],
    pick: impl Fn(&ConnectorConnectivity) -> Option<i64>,
) {
    help(out, name, "gauge", text);
    for c in connectors {
        if let Some(ms) = pick(c) {
            let _ = writeln!(
                out,
                "{name}{{scope=\"{}\",connector=\"{}\"}} {}",
                label(&c.scope.key()),
                label(&c.identifier),
                ms as f64 / 1000.0
            );
        }
    }
}

/// The whole page.
pub async fn render(state: &AppState) -> Result<String, ApiError> {
    let connectors = state.store.all_connector_connectivity().await?;
    let tasks = state.store.task_counts().await?;
    let mut out = String::with_capacity(256 + connectors.len() * 600);

    let name = "tether_connector_connectivity";
    help(
        &mut out,
        name,
        "gauge",
        "1 for the status of the connector's last connection test (SUCCESS, PARTIAL, FAILURE, PENDING, UNKNOWN), 0 for the others.",
    );
    for c in &connectors {
        let (scope, id) = (label(&c.scope.key()), label(&c.identifier));
        for s in STATES {
            let _ = writeln!(
                out,
                "{name}{{scope=\"{scope}\",connector=\"{id}\",status=\"{}\"}} {}",
                s.as_str(),
                u8::from(c.status.status == s)
            );
        }
    }
    timestamps(
        &mut out,
        "tether_connector_last_tested_timestamp_seconds",
        "When the connector was last tested (Unix time); absent before its first test.",
        &connectors,
        |c| c.status.tested_at,
    );
    timestamps(
        &mut out,
        "tether_connector_last_connected_timestamp_seconds",
        "When a test of the connector last succeeded (Unix time); absent if none has.",
        &connectors,
        |c| c.status.last_connected_at,
    );
    let name = "tether_connectors";
    help(
        &mut out,
        name,
        "gauge",
        "Connectors in every scope, by the status of their last connection test.",
    );
    for s in STATES {
        let n = connectors.iter().filter(|c| c.status.status == s).count();
        let _ = writeln!(out, "{name}{{status=\"{}\"}} {n}", s.as_str());
    }

    state.tests.metrics.render(&mut out);

    let name = "tether_tasks";
    help(
        &mut out,
        name,
        "gauge",
        "Delegate tasks in the database, by state.",
    );
    for (s, n) in tasks {
        let _ = writeln!(out, "{name}{{state=\"{}\"}} {n}", s.as_str());
    }
    let name = "tether_delegates_connected";
    help(
        &mut out,
        name,
        "gauge",
        "Delegates connected to this manager.",
    );
    let _ = writeln!(out, "{name} {}", state.broker.connected_here());
    let name = "tether_connection_tests_in_flight";
    help(
        &mut out,
        name,
        "gauge",
        "Background connection tests (after a change, or periodic) running or waiting for a slot on this manager.",
    );
    let _ = writeln!(out, "{name} {}", state.tests.in_flight());
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "getMetrics",
    summary = "Prometheus metrics",
    description = "The manager's metrics in the Prometheus text format 0.0.4, for scraping; no API token needed. \
`tether_connector_connectivity{scope,connector,status}` is 1 for the status of each connector's last test and 0 for the others; \
`tether_connector_last_tested_timestamp_seconds` and `tether_connector_last_connected_timestamp_seconds` say when; \
`tether_connectors{status}` counts connectors per status; \
`tether_connection_test_duration_seconds{status,trigger}` is a histogram of test durations on this manager; \
`tether_tasks{state}` counts delegate tasks; `tether_delegates_connected` and `tether_connection_tests_in_flight` are this manager's. \
The page names connectors and scopes but carries no URL, credential or test message.",
    responses(
        (status = 200, description = "The metrics.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 500, response = crate::api::openapi::Internal),
    ),
)]
pub async fn serve(State(state): State<AppState>) -> Response {
    match render(&state).await {
        Ok(text) => (
            [(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT))],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_with_sum_and_count() {
        let m = TestMetrics::default();
        m.observe(
            ConnectivityState::Success,
            TestTrigger::Api,
            Duration::from_millis(80),
        );
        m.observe(
            ConnectivityState::Success,
            TestTrigger::Api,
            Duration::from_secs(3),
        );
        m.observe(
            ConnectivityState::Failure,
            TestTrigger::Schedule,
            Duration::from_secs(500),
        );
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "# TYPE tether_connection_test_duration_seconds histogram",
            "tether_connection_test_duration_seconds_bucket{status=\"SUCCESS\",trigger=\"api\",le=\"0.05\"} 0",
            "tether_connection_test_duration_seconds_bucket{status=\"SUCCESS\",trigger=\"api\",le=\"0.1\"} 1",
            "tether_connection_test_duration_seconds_bucket{status=\"SUCCESS\",trigger=\"api\",le=\"5\"} 2",
            "tether_connection_test_duration_seconds_bucket{status=\"SUCCESS\",trigger=\"api\",le=\"+Inf\"} 2",
            "tether_connection_test_duration_seconds_count{status=\"SUCCESS\",trigger=\"api\"} 2",
            "tether_connection_test_duration_seconds_bucket{status=\"FAILURE\",trigger=\"schedule\",le=\"120\"} 0",
            "tether_connection_test_duration_seconds_bucket{status=\"FAILURE\",trigger=\"schedule\",le=\"+Inf\"} 1",
            "tether_connection_test_duration_seconds_sum{status=\"FAILURE\",trigger=\"schedule\"} 500",
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} not in\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("project/o/p"), "project/o/p");
    }
}
