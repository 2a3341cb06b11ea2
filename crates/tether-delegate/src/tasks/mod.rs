//! What the delegate does for each task kind. A task never panics its way out:
//! every failure becomes a `Failed` outcome with a message for the user.
//!
//! Every outcome leaves through [`run`], which removes the secret values the
//! task received (`payload.secrets`) from every string of it: whatever a
//! cluster or an identity provider echoed back, no value reaches a report.

mod build;
pub(crate) mod connection_test;
mod deploy;
pub mod events;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tether_domain::delegate_protocol::TaskOutcome;
use tether_domain::Redactor;

pub use events::Emitter;

/// What a task may know about the delegate running it.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub delegate_name: String,
    /// `--kubeconfig`, the identity `InheritFromDelegate` connectors use
    /// outside a cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Which attempt of the task this is (1 the first; set per task).
    pub attempt: u32,
    /// Fires when the manager cancels the task (set per task). Kinds that
    /// [`handles_cancel`] end themselves (a build still cleans up); others
    /// are dropped.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// True for task kinds that end themselves when cancelled.
pub fn handles_cancel(kind: &str) -> bool {
    kind == "build"
}

/// Task kinds this delegate understands.
pub const KINDS: &[&str] = &["echo", "connectionTest", "deploy", "build", "buildCleanup"];

pub async fn run(
    task_id: &str,
    kind: &str,
    payload: Value,
    ctx: &TaskContext,
    events: Emitter,
) -> TaskOutcome {
    let redactor = redactor_for(&payload);
    let events = events.redacting(redactor.clone());
    let outcome = run_kind(task_id, kind, payload, ctx, events).await;
    match outcome {
        TaskOutcome::Succeeded { mut output } => {
            redactor.value(&mut output);
            TaskOutcome::Succeeded { output }
        }
        TaskOutcome::Failed { message } => TaskOutcome::Failed {
            message: redactor.text(&message),
        },
    }
}

/// The values of `payload.secrets`, by reference.
fn redactor_for(payload: &Value) -> Redactor {
    let Some(secrets) = payload.get("secrets").and_then(Value::as_object) else {
        return Redactor::default();
    };
    Redactor::new(
        secrets
            .iter()
            .filter_map(|(reference, v)| v.as_str().map(|v| (reference.as_str(), v))),
    )
}

async fn run_kind(
    task_id: &str,
    kind: &str,
    payload: Value,
    ctx: &TaskContext,
    events: Emitter,
) -> TaskOutcome {
    match kind {
        "deploy" => deploy::run(task_id, payload, ctx, events).await,
        "build" => build::run(task_id, payload, ctx, events).await,
        "buildCleanup" => build::cleanup(payload, ctx, events).await,
        "echo" => echo(payload, ctx, &events).await,
        "connectionTest" => TaskOutcome::Succeeded {
            output: connection_test::run(payload, ctx, events).await,
        },
        other => TaskOutcome::Failed {
            message: format!(
                "this delegate does not know task kind '{other}' (it knows {}); upgrade it to the manager's version",
                KINDS.join(", ")
            ),
        },
    }
}

/// Answers with its input and who ran it. `holdMs` keeps it busy that long,
/// which is how tests and benchmarks stand in for a slow cluster call;
/// `events` (a list of strings) are emitted as task events first,
/// `eventIntervalMs` apart.
async fn echo(payload: Value, ctx: &TaskContext, events: &Emitter) -> TaskOutcome {
    let interval = payload["eventIntervalMs"]
        .as_u64()
        .map(Duration::from_millis);
    for e in payload["events"].as_array().into_iter().flatten() {
        if let Some(i) = interval {
            tokio::time::sleep(i).await;
        }
        events.emit("info", e.as_str().unwrap_or_default(), None);
    }
    if let Some(ms) = payload.get("holdMs").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    TaskOutcome::Succeeded {
        output: json!({ "echo": payload.get("message").cloned().unwrap_or(Value::Null), "delegate": ctx.delegate_name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_secret_value_leaves_in_an_outcome() {
        let ctx = TaskContext {
            delegate_name: "d".into(),
            kubeconfig: None,
            attempt: 1,
            cancel: Default::default(),
        };
        let payload = json!({
            "message": "echoing planted-value-1234 back",
            "events": ["event with planted-value-1234 in it"],
            "secrets": { "account.tok": "planted-value-1234" },
        });
        let outbox = std::sync::Arc::new(events::Outbox::default());
        let emitter = outbox.emitter("t", 1);
        let TaskOutcome::Succeeded { output } = run("t", "echo", payload, &ctx, emitter).await
        else {
            panic!("echo failed");
        };
        assert_eq!(output["echo"], "echoing <secret account.tok> back");
        // Live events leave the same way.
        let sent = serde_json::to_string(&outbox.take_unsent()).unwrap();
        assert!(
            sent.contains("event with <secret account.tok> in it"),
            "{sent}"
        );
        assert!(!sent.contains("planted-value-1234"), "{sent}");
    }
}
