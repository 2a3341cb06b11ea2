//! What the delegate does for each task kind. A task never panics its way out:
//! every failure becomes a `Failed` outcome with a message for the user.
//!
//! Every outcome leaves through [`run`], which removes the secret values the
//! task received (`payload.secrets`) from every string of it: whatever a
//! cluster or an identity provider echoed back, no value reaches a report.

mod connection_test;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tether_domain::delegate_protocol::TaskOutcome;
use tether_domain::Redactor;

/// What a task may know about the delegate running it.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub delegate_name: String,
    /// `--kubeconfig`, the identity `InheritFromDelegate` connectors use
    /// outside a cluster.
    pub kubeconfig: Option<PathBuf>,
}

/// Task kinds this delegate understands.
pub const KINDS: &[&str] = &["echo", "connectionTest"];

pub async fn run(kind: &str, payload: Value, ctx: &TaskContext) -> TaskOutcome {
    let redactor = redactor_for(&payload);
    let outcome = run_kind(kind, payload, ctx).await;
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

async fn run_kind(kind: &str, payload: Value, ctx: &TaskContext) -> TaskOutcome {
    match kind {
        "echo" => echo(payload, ctx).await,
        "connectionTest" => TaskOutcome::Succeeded {
            output: connection_test::run(payload, ctx).await,
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
/// which is how tests and benchmarks stand in for a slow cluster call.
async fn echo(payload: Value, ctx: &TaskContext) -> TaskOutcome {
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
        };
        let payload = json!({
            "message": "echoing planted-value-1234 back",
            "secrets": { "account.tok": "planted-value-1234" },
        });
        let TaskOutcome::Succeeded { output } = run("echo", payload, &ctx).await else {
            panic!("echo failed");
        };
        assert_eq!(output["echo"], "echoing <secret account.tok> back");
    }
}
