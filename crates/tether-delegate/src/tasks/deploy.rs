//! The `deploy` task: the connector's credentials (resolved by the manager
//! for this delegate only, as for a connection test) into a client, then
//! `tether_kube::deploy::run` with its progress streamed as task events. The
//! output is the deploy report; its `outcome` says deployed, refused or failed.

use serde_json::Value;
use tether_domain::delegate_protocol::TaskOutcome;
use tether_kube::deploy::{self, DeployRequest, Progress};
use tether_kube::ClusterAccess;

use super::{Emitter, TaskContext};

pub async fn run(task_id: &str, payload: Value, ctx: &TaskContext, events: Emitter) -> TaskOutcome {
    let mut req: DeployRequest = match serde_json::from_value(payload["request"].clone()) {
        Ok(r) => r,
        Err(e) => {
            return TaskOutcome::Failed {
                message: format!(
                "the deploy request cannot be read ({e}); run a delegate of the manager's version"
            ),
            }
        }
    };
    req.task_id = task_id.to_string();
    let access = match access(&payload, ctx) {
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
    let report = deploy::run(&client, &req, &progress).await;
    TaskOutcome::Succeeded {
        output: serde_json::to_value(report).unwrap_or(Value::Null),
    }
}

/// The connector's cluster and credentials, as the connection test reads them.
pub(super) fn access(payload: &Value, ctx: &TaskContext) -> Result<ClusterAccess, String> {
    let input = super::connection_test::input(payload, ctx).map_err(|r| {
        r.error_summary
            .clone()
            .unwrap_or_else(|| "the connector cannot be used".into())
    })?;
    super::connection_test::cluster_access(input.target, "deploying")
}
