//! The `build` task: the connector's credentials into a client (as for a
//! deploy), the build's secret env values (resolved by the manager for this
//! delegate only, in `payload.secrets` by reference, so they are redacted
//! from every event and the outcome like the connector's), then
//! `tether_kube::build::run` with its log lines and progress streamed as task
//! events. The output is the build report.
//!
//! A later attempt (the delegate that ran the build was lost) does not run the
//! build again, which could repeat its side effects: it deletes what the lost
//! attempt left in the cluster, found by the build's label, and reports that.

use std::collections::BTreeMap;

use serde_json::Value;
use tether_domain::delegate_protocol::TaskOutcome;
use tether_kube::build::{self, BuildOutcome, BuildReport, BuildRequest, Cleanup};
use tether_kube::deploy::{Problem, Progress};

use super::{Emitter, TaskContext};

pub async fn run(task_id: &str, payload: Value, ctx: &TaskContext, events: Emitter) -> TaskOutcome {
    let mut req: BuildRequest = match serde_json::from_value(payload["request"].clone()) {
        Ok(r) => r,
        Err(e) => {
            return TaskOutcome::Failed {
                message: format!(
                "the build request cannot be read ({e}); run a delegate of the manager's version"
            ),
            }
        }
    };
    req.task_id = task_id.to_string();
    req.delegate = ctx.delegate_name.clone();
    let mut values = BTreeMap::new();
    for (env, reference) in &req.secret_env {
        match payload["secrets"][reference].as_str() {
            Some(v) => {
                values.insert(env.clone(), v.to_string());
            }
            None => {
                return TaskOutcome::Failed {
                    message: format!("the manager sent no value for secret env {env} ({reference}); run a delegate of the manager's version"),
                }
            }
        }
    }
    let access = match super::deploy::access(&payload, ctx) {
        Ok(a) => a,
        Err(message) => return TaskOutcome::Failed { message },
    };
    let client = match access.client() {
        Ok(c) => c,
        Err(e) => {
            return TaskOutcome::Failed {
                message: format!("cannot build a client for the connector: {e}; run `tether connector test` for a diagnosis"),
            }
        }
    };
    let progress = Progress::new(move |e| match &e.key {
        Some(k) => events.progress(k, e.kind, &e.message, e.data),
        None => events.emit(e.kind, &e.message, e.data),
    });
    let report = if ctx.attempt > 1 {
        lost_attempt(&client, &req, ctx.attempt, &progress).await
    } else {
        build::run(&client, &req, &values, &progress, &ctx.cancel).await
    };
    TaskOutcome::Succeeded {
        output: serde_json::to_value(report).unwrap_or(Value::Null),
    }
}

/// Attempt `attempt` of a build whose earlier attempt's delegate was lost:
/// its objects deleted, the build reported as not finished.
async fn lost_attempt(
    client: &kube::Client,
    req: &BuildRequest,
    attempt: u32,
    progress: &Progress,
) -> BuildReport {
    let started = std::time::Instant::now();
    progress.emit(
        "cleanup",
        format!(
            "attempt {attempt}: the delegate of the earlier attempt was lost; deleting its objects ({})",
            req.selector()
        ),
    );
    let cleanup: Cleanup = build::cleanup(
        client,
        req.namespace(),
        &req.selector(),
        std::time::Duration::from_secs(60),
    )
    .await;
    progress.emit(
        "cleanup",
        format!("deleted {} object(s)", cleanup.deleted.len()),
    );
    BuildReport {
        outcome: BuildOutcome::Error,
        summary: "the delegate running the build was lost; its objects were deleted and the build was not run again".into(),
        exit_code: None,
        problems: vec![Problem::general().with(
            "DELEGATE_LOST",
            "the delegate running the build stopped before the build ended",
            "run the build again (see the delegate's logs for why it stopped)",
        )],
        namespace: req.namespace().to_string(),
        pod: req.name(),
        image: req.image.clone(),
        log_lines: 0,
        cleanup,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
