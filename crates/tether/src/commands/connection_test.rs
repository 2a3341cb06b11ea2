//! Connection tests from the command line: `tether connector test` (run one now,
//! print the report, exit 0/2/1 for SUCCESS/PARTIAL/FAILURE), `tether connector
//! history`, and the `tether server` options for the tests the manager runs by
//! itself (after a change, and periodically).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use reqwest::Method;
use serde_json::Value;
use tether_server::connectivity::TestSettings;

use super::client::{api_error, scope_path, ApiClient, ScopeArgs};
use super::output::{print, time, OutputFormat};
use super::report;

/// `tether server` options of the background connection tests.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// How often every connector is re-tested (with up to 10% jitter); 0 or
    /// `off` turns the periodic re-test off.
    #[arg(long, env = "TETHER_RETEST_INTERVAL", default_value = "30m", value_parser = parse_interval)]
    retest_interval: Duration,
    /// Test a connector in the background when it is created or replaced (it
    /// shows PENDING meanwhile).
    #[arg(long, env = "TETHER_TEST_ON_CHANGE", default_value_t = true, action = clap::ArgAction::Set)]
    test_on_change: bool,
    /// Background tests running at once.
    #[arg(long, env = "TETHER_TEST_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    test_concurrency: u16,
    /// Per-stage limit of background tests.
    #[arg(long, env = "TETHER_TEST_STAGE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    test_stage_timeout: Duration,
    /// Results kept per connector (`tether connector history`).
    #[arg(long, env = "TETHER_TEST_HISTORY", default_value_t = tether_store::DEFAULT_HISTORY_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(tether_store::MAX_HISTORY_LIMIT)))]
    test_history: u32,
}

impl TestArgs {
    pub fn settings(&self) -> TestSettings {
        TestSettings {
            history_limit: self.test_history,
            retest_interval: (!self.retest_interval.is_zero()).then_some(self.retest_interval),
            concurrency: usize::from(self.test_concurrency),
            test_on_change: self.test_on_change,
            stage_timeout: self
                .test_stage_timeout
                .clamp(Duration::from_millis(100), Duration::from_secs(120)),
        }
    }
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    match s.trim() {
        "0" | "off" => Ok(Duration::ZERO),
        other => humantime::parse_duration(other).map_err(|e| {
            format!("{e}; give a duration such as 30m or 2h, or 0 to turn the re-test off")
        }),
    }
}

/// `tether connector test`.
#[derive(Debug, Args)]
pub struct TestCommand {
    identifier: String,
    #[command(flatten)]
    scope: ScopeArgs,
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
    /// Limit for each stage of the test (100ms to 120s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    stage_timeout: Duration,
}

pub async fn test(cmd: TestCommand) -> Result<ExitCode> {
    let stage = cmd.stage_timeout;
    if stage < Duration::from_millis(100) || stage > Duration::from_secs(120) {
        bail!(
            "--stage-timeout {} is outside 100ms..120s",
            humantime::format_duration(stage)
        );
    }
    let mut client = ApiClient::from_env()?;
    // The manager answers when the test is done: up to eight stage limits per
    // attempt, a few attempts when delegates go away, plus its own margin.
    client.set_timeout(stage * 8 * 3 + Duration::from_secs(60));
    let path = format!(
        "{}/connectors/{}/test",
        scope_path(&cmd.scope.scope()?),
        cmd.identifier
    );
    let live = matches!(cmd.output, OutputFormat::Table);
    let r = match stream_test(&client, &path, stage, live, cmd.output).await {
        Ok(StreamEnd::Report(r)) => r,
        // The manager stopped while the test ran: follow its task through the
        // restart (or to another manager), as a plain call would.
        Ok(StreamEnd::Restarting(task)) => {
            eprintln!("tether: the manager is restarting; following the test (task {task})");
            run_following_restarts(&client, &path, stage, Some(task)).await?
        }
        Ok(StreamEnd::NotStreamed) => run_following_restarts(&client, &path, stage, None).await?,
        Err((Some(task), e)) => {
            eprintln!(
                "tether: the test's event stream broke ({e:#}); following the test (task {task})"
            );
            run_following_restarts(&client, &path, stage, Some(task)).await?
        }
        Err((None, e)) => return Err(e),
    };
    if live {
        println!();
    }
    match cmd.output {
        OutputFormat::Table => print!(
            "{}",
            report::render(&r, &format!("connector {}", cmd.identifier))
        ),
        other => print(other, &r, &[], Vec::new)?,
    }
    Ok(report::exit_code(&r))
}

/// How a streamed test ended.
enum StreamEnd {
    Report(Value),
    /// The manager is stopping; the test goes on as this task.
    Restarting(String),
    /// The manager answered without a stream (an older one): ask plainly.
    NotStreamed,
}

/// Runs the test with `Accept: text/event-stream`, printing each stage as it
/// completes when `live`. An error carries the task id when the stream had
/// already named it, so the caller can follow the task.
async fn stream_test(
    client: &ApiClient,
    path: &str,
    stage: Duration,
    live: bool,
    output: OutputFormat,
) -> std::result::Result<StreamEnd, (Option<String>, anyhow::Error)> {
    let query = [("stageTimeoutMs", stage.as_millis().to_string())];
    let resp = client
        .event_stream(Method::POST, path, &query, None)
        .await
        .map_err(|e| (None, e))?;
    let streamed = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !streamed {
        return Ok(StreamEnd::NotStreamed);
    }
    let mut task: Option<String> = None;
    let mut last: Option<super::events::SseEvent> = None;
    let read = super::events::read(resp, |e| match e.event.as_str() {
        "started" => {
            task = e.json()["taskId"].as_str().map(str::to_string);
            true
        }
        "task" => {
            if live {
                println!("{}", super::events::line(&e.json(), output));
            }
            true
        }
        "result" | "error" => {
            last = Some(e);
            false
        }
        _ => true,
    })
    .await;
    if let Err(e) = read {
        return Err((task, e));
    }
    match last {
        Some(e) if e.event == "result" => Ok(StreamEnd::Report(e.json())),
        Some(e) => {
            let body = e.json();
            if body["code"] == "MANAGER_RESTARTING" {
                if let Some(t) = body["taskId"].as_str().map(str::to_string).or(task) {
                    return Ok(StreamEnd::Restarting(t));
                }
            }
            Err((
                None,
                anyhow::anyhow!(
                    "{} [{}]",
                    body["message"]
                        .as_str()
                        .unwrap_or("the connection test failed"),
                    body["code"].as_str().unwrap_or("ERROR")
                ),
            ))
        }
        None => Err((
            task,
            anyhow::anyhow!("the manager ended the test's event stream without a result"),
        )),
    }
}

/// How long the CLI keeps following a test through manager restarts.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(600);

/// Runs the test; when the manager answers that it is restarting, follows the
/// test's task (`?taskId=`) through the restart, or to another manager behind
/// the same URL, until its report comes.
async fn run_following_restarts(
    client: &ApiClient,
    path: &str,
    stage: Duration,
    task: Option<String>,
) -> Result<Value> {
    let mut query = vec![("stageTimeoutMs", stage.as_millis().to_string())];
    let mut following: Option<(String, std::time::Instant)> = None;
    if let Some(task) = task {
        query = vec![("taskId", task.clone())];
        following = Some((task, std::time::Instant::now()));
    }
    loop {
        let answer = client.send_any(Method::POST, path, None, &query).await;
        let retry = match &answer {
            Ok((status, bytes)) if status.is_success() => {
                return serde_json::from_slice(bytes)
                    .context("the manager answered with unexpected JSON");
            }
            Ok((status, bytes)) => {
                let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
                if body["code"] == "MANAGER_RESTARTING" {
                    if let Some(task) = body["taskId"].as_str() {
                        if following.as_ref().map(|(t, _)| t.as_str()) != Some(task) {
                            eprintln!("tether: the manager is restarting; following the test (task {task})");
                            following = Some((task.to_string(), std::time::Instant::now()));
                            query = vec![("taskId", task.to_string())];
                        }
                    }
                    true
                } else {
                    // While following: a load balancer without a healthy
                    // manager, or a manager not yet serving.
                    following.is_some() && matches!(status.as_u16(), 502..=504)
                }
            }
            // Nobody listening between the old manager and the new one.
            Err(_) => following.is_some(),
        };
        match (&following, retry) {
            (Some((_, since)), true) if since.elapsed() < FOLLOW_PATIENCE => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (Some((task, _)), true) => bail!(
                "the manager did not come back within {}; the test goes on as task {task}: see `tether task get {task}`",
                humantime::format_duration(FOLLOW_PATIENCE)
            ),
            _ => {
                return match answer {
                    Ok((status, bytes)) => Err(api_error(&Method::POST, path, status, &bytes)),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// `tether connector history`.
#[derive(Debug, Args)]
pub struct HistoryCommand {
    identifier: String,
    #[command(flatten)]
    scope: ScopeArgs,
    /// Show at most this many results (newest first).
    #[arg(long)]
    limit: Option<u32>,
    /// Print the whole report of each result, not one line each.
    #[arg(long)]
    reports: bool,
    #[arg(short, long, value_enum, default_value_t)]
    output: OutputFormat,
}

const HISTORY_HEADERS: &[&str] = &[
    "TESTED AT",
    "STATUS",
    "DURATION",
    "TRIGGER",
    "DELEGATE",
    "REASON",
    "SUMMARY",
];

fn history_row(e: &Value) -> Vec<String> {
    let report = &e["report"];
    let mut summary = report["errorSummary"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    if summary.chars().count() > 100 {
        summary = summary.chars().take(99).collect::<String>() + "…";
    }
    vec![
        time(e["testedAt"].as_i64()),
        e["status"].as_str().unwrap_or("UNKNOWN").into(),
        e["durationMs"]
            .as_u64()
            .map(report::millis)
            .unwrap_or_else(|| "-".into()),
        e["trigger"].as_str().unwrap_or("-").into(),
        e["delegateName"]
            .as_str()
            .or(e["delegateId"].as_str())
            .unwrap_or("-")
            .into(),
        report["errors"][0]["reason"].as_str().unwrap_or("-").into(),
        if summary.is_empty() {
            "-".into()
        } else {
            summary
        },
    ]
}

pub async fn history(cmd: HistoryCommand) -> Result<()> {
    let client = ApiClient::from_env()?;
    let path = format!(
        "{}/connectors/{}/test-history",
        scope_path(&cmd.scope.scope()?),
        cmd.identifier
    );
    let query: Vec<(&str, String)> = cmd
        .limit
        .map(|l| vec![("limit", l.to_string())])
        .unwrap_or_default();
    let h: Value = client.json(Method::GET, &path, None, &query).await?;
    let items = h["items"].as_array().cloned().unwrap_or_default();
    if matches!(cmd.output, OutputFormat::Table) {
        if items.is_empty() {
            println!(
                "connector {} has no test results yet; run `tether connector test {}`",
                cmd.identifier, cmd.identifier
            );
            return Ok(());
        }
        if cmd.reports {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                let mut r = e["report"].clone();
                for k in ["delegateId", "delegateName", "taskId"] {
                    if !e[k].is_null() {
                        r[k] = e[k].clone();
                    }
                }
                let title = format!(
                    "connector {} ({})",
                    cmd.identifier,
                    e["trigger"].as_str().unwrap_or("?")
                );
                print!("{}", report::render(&r, &title));
            }
            return Ok(());
        }
    }
    print(cmd.output, &h, HISTORY_HEADERS, || {
        items.iter().map(history_row).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_off() {
        assert_eq!(parse_interval("0"), Ok(Duration::ZERO));
        assert_eq!(parse_interval("off"), Ok(Duration::ZERO));
        assert_eq!(parse_interval("30m"), Ok(Duration::from_secs(1800)));
        assert!(parse_interval("soon").unwrap_err().contains("30m"));
    }

    #[test]
    fn history_rows_summarise_a_result() {
        let e = serde_json::json!({
            "testedAt": 0, "status": "FAILURE", "durationMs": 1234, "trigger": "schedule",
            "report": {"errorSummary": "401 Unauthorized\nmore", "errors": [{"reason": "UNAUTHORIZED"}]}
        });
        assert_eq!(
            history_row(&e),
            vec![
                "1970-01-01T00:00:00Z",
                "FAILURE",
                "1.2 s",
                "schedule",
                "-",
                "UNAUTHORIZED",
                "401 Unauthorized"
            ]
        );
    }
}
