//! What a delegate receives with a task. The stored payload never holds secret
//! values; they are resolved here, at hand-over, for the one delegate that runs
//! the task, and travel only inside its `task` message.

use serde_json::{json, Map, Value};
use tether_domain::Scope;
use tether_store::{Store, TaskRecord};

/// Task kinds whose payload names a connector whose secrets must be resolved.
pub const CONNECTION_TEST: &str = "connectionTest";

/// The payload to send, or a message saying why the task cannot run at all.
pub async fn for_delegate(store: &Store, task: &TaskRecord) -> Result<Value, String> {
    if task.kind != CONNECTION_TEST {
        return Ok(task.payload.clone());
    }
    let scope_key = task.payload["scope"].as_str().unwrap_or_default();
    let scope = Scope::from_key(scope_key)
        .ok_or_else(|| format!("task names an unknown scope '{scope_key}'"))?;
    let identifier = task.payload["connector"].as_str().unwrap_or_default();
    let record = store
        .get_connector(&scope, identifier)
        .await
        .map_err(|e| e.to_string())?;
    let secrets = connector_secrets(store, &scope, &record.connector).await?;
    let mut payload = task.payload.clone();
    payload["connectorDocument"] =
        serde_json::to_value(&record.connector).map_err(|e| e.to_string())?;
    payload["secrets"] = Value::Object(secrets);
    Ok(payload)
}

/// The values of the secrets `connector` (of `scope`) references, by reference,
/// for the one delegate that uses them (a task, or a proxied stream).
pub(crate) async fn connector_secrets(
    store: &Store,
    scope: &Scope,
    connector: &tether_domain::Connector,
) -> Result<Map<String, Value>, String> {
    let mut secrets = Map::new();
    for r in connector.secret_refs() {
        let meta = store
            .resolve_secret_ref(scope, r.reference)
            .await
            .map_err(|e| format!("{}: {e}", r.field))?;
        let value = store
            .read_secret_value(&meta.scope, &meta.identifier)
            .await
            .map_err(|e| format!("{}: {e}", r.field))?;
        secrets.insert(
            r.reference.to_string(),
            Value::String(value.expose().to_string()),
        );
    }
    Ok(secrets)
}

/// The stored part of a connection-test task.
pub fn connection_test(scope: &Scope, identifier: &str, stage_timeout_ms: u64) -> Value {
    json!({ "scope": scope.key(), "connector": identifier, "stageTimeoutMs": stage_timeout_ms })
}
