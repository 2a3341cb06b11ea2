//! What a delegate receives with a task. The stored payload never holds secret
//! values; they are resolved here, at hand-over, for the one delegate that runs
//! the task, and travel only inside its `task` message. Here too the result
//! is cleaned of them before it is stored.
//!
//! At hand-over the connector's use of each secret is checked again (its use
//! grants and host binding may have changed since it was saved), and so is the
//! delegate: it receives a secret only when registered at the secret's scope or
//! above, or in a scope the secret's grants cover (see
//! `tether_domain::secret_access`). The stored payload carries each secret's
//! scope and grants (never a value) so that dispatch and the "no eligible
//! delegate" explanation can tell beforehand which delegates qualify.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tether_domain::delegate_protocol::{TaskEvent, TaskOutcome};
use tether_domain::ValidationErrors;
use tether_domain::{Redactor, Scope, SecretAccess};
use tether_store::{ConnectorSecret, SecretMeta, Store, StoreError, TaskRecord};

/// Task kinds whose payload names a connector whose secrets must be resolved.
pub const CONNECTION_TEST: &str = "connectionTest";
/// A deploy through a connector (`api/deploys.rs`).
pub const DEPLOY: &str = "deploy";
/// A build through a connector (`api/builds.rs`); its `request.secretEnv`
/// names secrets of its own, resolved and checked like the connector's.
pub const BUILD: &str = "build";

/// The clean-up of a build whose delegate was lost (queued in its place by
/// the store, see `api/builds.rs`): `lostTask` names the build, `namespace`
/// where its objects are.
pub const BUILD_CLEANUP: &str = "buildCleanup";

/// True for task kinds whose payload names a connector.
fn names_connector(kind: &str) -> bool {
    kind == CONNECTION_TEST || kind == DEPLOY || kind == BUILD || kind == BUILD_CLEANUP
}

/// The connector a task of `kind` runs through, from its payload.
pub fn connector_named(kind: &str, payload: &Value) -> Option<String> {
    names_connector(kind)
        .then(|| payload["connector"].as_str().map(str::to_string))
        .flatten()
}

/// A secret a task will carry, as the stored payload records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Carried {
    /// As the connector writes it, e.g. `account.sa_token`.
    pub reference: String,
    /// The secret's own identifier.
    pub identifier: String,
    /// The secret's scope key.
    pub scope: String,
    /// Its use grants, as scope keys.
    #[serde(default)]
    pub usable_from: Vec<String>,
}

impl Carried {
    /// A secret named by `reference` outside a connector (a build's secret env).
    pub fn of_meta(reference: &str, m: &SecretMeta) -> Carried {
        Carried {
            reference: reference.to_string(),
            identifier: m.identifier.clone(),
            scope: m.scope.key(),
            usable_from: m.usable_from.iter().map(Scope::key).collect(),
        }
    }

    fn of(s: &ConnectorSecret) -> Carried {
        Carried {
            reference: s.reference.clone(),
            identifier: s.identifier.clone(),
            scope: s.access.scope.key(),
            usable_from: s.access.usable_from.iter().map(Scope::key).collect(),
        }
    }

    /// Its scope and grants (the host binding plays no part in who receives it).
    pub fn access(&self) -> Option<SecretAccess> {
        Some(SecretAccess {
            scope: Scope::from_key(&self.scope)?,
            usable_from: self
                .usable_from
                .iter()
                .filter_map(|k| Scope::from_key(k))
                .collect(),
            allowed_hosts: Vec::new(),
        })
    }

    /// True when a delegate registered at `scope` may receive it. An unreadable
    /// record (not written by this version) trusts only the account.
    pub fn deliverable_to(&self, scope: &Scope) -> bool {
        match self.access() {
            Some(a) => a.deliverable_to(scope),
            None => *scope == Scope::Account,
        }
    }
}

/// The secrets a stored payload says its task carries.
pub fn carried(payload: &Value) -> Vec<Carried> {
    payload
        .get("secretAccess")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Why a delegate at `delegate_scope` may not receive `c`, for messages.
pub fn not_deliverable(c: &Carried, delegate_scope: &Scope) -> String {
    let secret_scope = Scope::from_key(&c.scope).unwrap_or(Scope::Account);
    let access = c.access().unwrap_or(SecretAccess {
        scope: secret_scope.clone(),
        usable_from: Vec::new(),
        allowed_hosts: Vec::new(),
    });
    format!(
        "may not receive secret '{}' of {secret_scope}: a delegate receives a secret only when registered at the secret's scope or above, or in a scope its use grants cover (now: {}). Run the task on a delegate of {secret_scope}, or have an editor there grant it: `{}`",
        c.reference,
        if access.usable_from.is_empty() {
            "none".to_string()
        } else {
            c.usable_from.join(", ")
        },
        access.grant_command(&c.identifier, delegate_scope),
    )
}

/// The payload to send to a delegate registered at `delegate_scope`, or a
/// message saying why the task cannot run at all.
pub async fn for_delegate(
    store: &Store,
    task: &TaskRecord,
    delegate_scope: &Scope,
) -> Result<Value, String> {
    if !names_connector(&task.kind) {
        return Ok(task.payload.clone());
    }
    let (scope, record) = connector_of(store, task).await?;
    let mut secrets = connector_secrets(store, &scope, &record.connector, delegate_scope).await?;
    if task.kind == BUILD {
        for (env, meta) in build_secrets(store, &scope, &build_secret_env(&task.payload))
            .await
            .map_err(|e| e.to_string())?
        {
            let access = meta.access();
            if !access.deliverable_to(delegate_scope) {
                return Err(format!(
                    "the delegate (registered in {delegate_scope}) {} (secret env {env})",
                    not_deliverable(
                        &Carried::of_meta(&env_reference(&task.payload, &env), &meta),
                        delegate_scope
                    )
                ));
            }
            let value = store
                .read_secret_value(&meta.scope, &meta.identifier)
                .await
                .map_err(|e| format!("secretEnv.{env}: {e}"))?;
            secrets.insert(
                env_reference(&task.payload, &env),
                Value::String(value.expose().to_string()),
            );
        }
    }
    let mut payload = task.payload.clone();
    if let Some(p) = payload.as_object_mut() {
        p.remove("secretAccess");
    }
    payload["connectorDocument"] =
        serde_json::to_value(&record.connector).map_err(|e| e.to_string())?;
    payload["secrets"] = Value::Object(secrets);
    Ok(payload)
}

/// The secrets `connector` (of `scope`) may use, as the store resolves them
/// (use grants and host binding checked), without their values: what decides
/// which delegates may carry a task or a proxied request for it.
pub(crate) async fn connector_carries(
    store: &Store,
    scope: &Scope,
    connector: &tether_domain::Connector,
) -> Result<Vec<Carried>, StoreError> {
    Ok(store
        .connector_secrets(scope, connector)
        .await?
        .iter()
        .map(Carried::of)
        .collect())
}

/// The values of the secrets `connector` (of `scope`) references, by
/// reference, for the one delegate (registered at `delegate_scope`) that uses
/// them: a task, or a proxied stream. Refused when the connector may not use
/// one of them, or the delegate may not receive it.
pub(crate) async fn connector_secrets(
    store: &Store,
    scope: &Scope,
    connector: &tether_domain::Connector,
    delegate_scope: &Scope,
) -> Result<Map<String, Value>, String> {
    let resolved = store
        .connector_secrets(scope, connector)
        .await
        .map_err(|e| match e {
            StoreError::Validation(errs) | StoreError::SecretUseDenied(errs) => errs.to_string(),
            other => other.to_string(),
        })?;
    let mut secrets = Map::new();
    for s in &resolved {
        if !s.access.deliverable_to(delegate_scope) {
            return Err(format!(
                "the delegate (registered in {delegate_scope}) {}",
                not_deliverable(&Carried::of(s), delegate_scope)
            ));
        }
        let value = store
            .read_secret_value(&s.access.scope, &s.identifier)
            .await
            .map_err(|e| format!("{}: {e}", s.field))?;
        secrets.insert(
            s.reference.clone(),
            Value::String(value.expose().to_string()),
        );
    }
    Ok(secrets)
}

/// The task's connector, from the task's own scope (a payload naming another
/// scope is refused: it could only come from a forged task).
async fn connector_of(
    store: &Store,
    task: &TaskRecord,
) -> Result<(Scope, tether_store::ConnectorRecord), String> {
    let scope_key = task.payload["scope"].as_str().unwrap_or_default();
    let scope = Scope::from_key(scope_key)
        .ok_or_else(|| format!("task names an unknown scope '{scope_key}'"))?;
    if scope != task.scope {
        return Err(format!(
            "the task belongs to {} but names a connector of {scope}",
            task.scope
        ));
    }
    let identifier = task.payload["connector"].as_str().unwrap_or_default();
    let record = store
        .get_connector(&scope, identifier)
        .await
        .map_err(|e| e.to_string())?;
    Ok((scope, record))
}

/// Removes from a delegate's result every secret value the task's connector
/// resolves to now: the delegate already did (see `tether_delegate::tasks`),
/// and this re-check keeps a delegate of another version, or a hand-written
/// one, from getting a value into a stored report, history row or log.
pub async fn scrub_outcome(store: &Store, task_id: &str, outcome: TaskOutcome) -> TaskOutcome {
    let redactor = task_redactor(store, task_id).await;
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

/// The same for a task's live events, before they are stored and streamed.
pub async fn scrub_events(store: &Store, task_id: &str, events: &mut [TaskEvent]) {
    let redactor = task_redactor(store, task_id).await;
    if redactor.is_empty() {
        return;
    }
    for e in events {
        e.message = redactor.text(&e.message);
        e.kind = redactor.text(&e.kind);
        if let Some(d) = e.data.as_mut() {
            redactor.value(d);
        }
    }
}

/// Every secret value the task's connector resolves to now, whether or not
/// the connector may still use them: what matters is that none leaves in a
/// report or an event.
async fn task_redactor(store: &Store, task_id: &str) -> Redactor {
    let Ok(task) = store.get_task(task_id).await else {
        return Redactor::default();
    };
    if !names_connector(&task.kind) {
        return Redactor::default();
    }
    let Ok((scope, record)) = connector_of(store, &task).await else {
        return Redactor::default();
    };
    let mut values: Vec<(String, tether_store::SecretValue)> = Vec::new();
    let env_refs: Vec<String> = build_secret_env(&task.payload).into_values().collect();
    let refs = record
        .connector
        .secret_refs()
        .into_iter()
        .map(|r| r.reference.to_string())
        .chain(env_refs);
    for reference in refs {
        if let Ok(meta) = store.resolve_secret_ref(&scope, &reference).await {
            if let Ok(v) = store.read_secret_value(&meta.scope, &meta.identifier).await {
                values.push((reference.clone(), v));
            }
        }
    }
    Redactor::new(values.iter().map(|(r, v)| (r.as_str(), v.expose())))
}

/// The stored part of a connection-test task: the connector, the stage
/// timeout, and which secrets it carries (scope and grants, no value).
pub fn connection_test(
    scope: &Scope,
    identifier: &str,
    stage_timeout_ms: u64,
    secrets: &[ConnectorSecret],
) -> Value {
    let carried: Vec<Carried> = secrets.iter().map(Carried::of).collect();
    json!({
        "scope": scope.key(),
        "connector": identifier,
        "stageTimeoutMs": stage_timeout_ms,
        "secretAccess": carried,
    })
}

/// A build's `request.secretEnv`: env name -> secret reference.
pub fn build_secret_env(payload: &Value) -> std::collections::BTreeMap<String, String> {
    payload["request"]["secretEnv"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn env_reference(payload: &Value, env: &str) -> String {
    payload["request"]["secretEnv"][env]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The secrets of a build's secret env (at `scope`), each checked as a
/// connector's reference would be: the secret must be usable from `scope`
/// (its own scope, or a use grant covering it), and bound to no host (a value
/// in a build's environment can be sent anywhere). Missing ones are not
/// found; refused ones `SECRET_USE_DENIED` on `secretEnv.<NAME>`.
pub(crate) async fn build_secrets(
    store: &Store,
    scope: &Scope,
    secret_env: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(String, SecretMeta)>, StoreError> {
    let mut out = Vec::new();
    let mut denied = ValidationErrors::default();
    for (env, reference) in secret_env {
        let field = format!("secretEnv.{env}");
        let meta = match store.resolve_secret_ref(scope, reference).await {
            Ok(m) => m,
            Err(StoreError::Validation(errs)) => {
                let mut e = ValidationErrors::default();
                for x in errs.0 {
                    e.push(field.clone(), x.message);
                }
                return Err(StoreError::Validation(e));
            }
            Err(e) => return Err(e),
        };
        let access = meta.access();
        if !access.usable_by(scope) {
            denied.push(
                field.clone(),
                format!(
                    "secret '{reference}' of {} may be used by {}, not in {scope}; an editor of {} can grant it: `{}` (usableFrom in the API)",
                    access.scope,
                    access.grants_phrase(),
                    access.scope,
                    access.grant_command(&meta.identifier, scope),
                ),
            );
        } else if !access.allowed_hosts.is_empty() {
            denied.push(
                field.clone(),
                format!(
                    "secret '{reference}' may only be sent to {}; a build's environment could send it anywhere, so it cannot be a secret env: use a secret without allowedHosts",
                    access.allowed_hosts.join(", ")
                ),
            );
        } else {
            out.push((env.clone(), meta));
        }
    }
    if !denied.0.is_empty() {
        return Err(StoreError::SecretUseDenied(denied));
    }
    Ok(out)
}
