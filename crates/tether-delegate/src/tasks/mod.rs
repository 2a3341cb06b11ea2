//! What the delegate does for each task kind. A task never panics its way out:
//! every failure becomes a `Failed` outcome with a message for the user.

pub(crate) mod connection_test;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tether_domain::delegate_protocol::TaskOutcome;

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
