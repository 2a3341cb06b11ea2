//! The `build` task: the connector's credentials into a client (as for a
//! deploy), the build's secret env values (resolved by the manager for this
//! delegate only, in `payload.secrets` by reference, so they are redacted
//! from every event and the outcome like the connector's), then
//! `tether_kube::build::run` with its log lines and progress streamed as task
//! events. The output is the build report.
//!
//! A build is not run twice, which could repeat its side effects: when its
//! delegate is lost the manager fails it (`DELEGATE_LOST`) and queues a
//! `buildCleanup` task in its place ([`cleanup`]), which deletes what the lost
//! attempt left in the cluster, found by the build's label. The delegate holds
//! no connectors, so it cannot sweep leftovers by itself at startup: the
//! manager knows which builds were lost and hands out their clean-up, to any
//! eligible delegate, the same one restarted included. A later attempt of a
//! build itself (a build queued by a manager of an older version, which hands
//! a lost build on) only cleans up the same way.

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
        format!("attempt {attempt}: the delegate of the earlier attempt was lost"),
    );
    let cleanup = delete_leftovers(client, req.namespace(), &req.task_id, progress).await;
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

/// Deletes the objects build `build_id` left in `namespace`, with progress.
async fn delete_leftovers(
    client: &kube::Client,
    namespace: &str,
    build_id: &str,
    progress: &Progress,
) -> Cleanup {
    let selector = build::selector(build_id);
    progress.emit(
        "cleanup",
        format!("deleting the objects of build {build_id} in {namespace} ({selector})"),
    );
    let cleanup = build::cleanup(
        client,
        namespace,
        &selector,
        std::time::Duration::from_secs(60),
    )
    .await;
    progress.emit(
        "cleanup",
        format!("deleted {} object(s)", cleanup.deleted.len()),
    );
    cleanup
}

/// The `buildCleanup` task: what a lost build (`payload.lostTask`) left in
/// `payload.namespace` deleted. Its output says what went; it fails when
/// something could not be deleted, naming the command that does it.
pub async fn cleanup(payload: Value, ctx: &TaskContext, events: Emitter) -> TaskOutcome {
    let (Some(build_id), Some(namespace)) =
        (payload["lostTask"].as_str(), payload["namespace"].as_str())
    else {
        return TaskOutcome::Failed {
            message:
                "the clean-up names no build or namespace; run a delegate of the manager's version"
                    .into(),
        };
    };
    let client = match super::deploy::access(&payload, ctx).and_then(|a| {
        a.client().map_err(|e| {
            format!("cannot build a client for the connector: {e}; run `tether connector test` for a diagnosis")
        })
    }) {
        Ok(c) => c,
        Err(message) => return TaskOutcome::Failed { message },
    };
    let progress = Progress::new(move |e| match &e.key {
        Some(k) => events.progress(k, e.kind, &e.message, e.data),
        None => events.emit(e.kind, &e.message, e.data),
    });
    let cleanup = delete_leftovers(&client, namespace, build_id, &progress).await;
    if !cleanup.complete {
        return TaskOutcome::Failed {
            message: format!(
                "the objects of build {build_id} were not all deleted: {}",
                cleanup.errors.join("; ")
            ),
        };
    }
    TaskOutcome::Succeeded {
        output: serde_json::json!({ "build": build_id, "namespace": namespace, "cleanup": cleanup }),
    }
}
