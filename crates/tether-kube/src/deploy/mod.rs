//! Deploying manifests through a connector: what the delegate's `deploy` task
//! does.
//!
//! - `manifests`: multi-document YAML into objects, with file, document and line.
//! - `preflight`: before any change, every problem at once: kinds the cluster
//!   serves (discovery), SelfSubjectAccessReview of each verb per object
//!   namespace (with the RBAC rule that fixes a missing one), a server-side
//!   dry run of every object (conflicts named with field and owner).
//! - `apply`: server-side apply (field manager `tether`), Namespaces and CRDs
//!   first (waiting for CRDs to be Established), then a stable order.
//! - `steady_state`: watches what was applied until it is ready, ending early
//!   with a diagnosis on the failures that will not heal by waiting.
//! - `release`: release N of a name, stored in the cluster as a Secret in the
//!   release namespace; prune of what the previous release had.
//! - `rbac`: the minimal Role/ClusterRole to deploy a set of manifests.
//!
//! Progress goes to a [`Progress`] as it happens (the delegate streams it as
//! task events).

pub mod apply;
pub mod manifests;
pub mod preflight;
pub mod rbac;
pub mod release;
mod run;
pub mod steady_state;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use manifests::{Manifest, ManifestSource};
pub use run::run;

/// What to deploy and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRequest {
    pub manifests: Vec<ManifestSource>,
    /// For namespaced objects that name none (default `default`); also where
    /// the release is stored.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The release name (default: the name of the first object).
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub prune: bool,
    /// How long applying and reaching steady state may take (milliseconds).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub force_conflicts: bool,
    /// The task this deploy runs as: a delegate that resumes it (another
    /// attempt) continues the same release instead of starting a new one.
    #[serde(default)]
    pub task_id: String,
    /// Deploy the manifests of this earlier release again (a rollback), as
    /// a new release; `manifests` is ignored. 0: the one before the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u32>,
}

fn default_timeout_ms() -> u64 {
    600_000
}

impl DeployRequest {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1000))
    }

    pub fn default_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// One thing wrong, where it is, and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `Deployment prod/web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// A code: `MISSING_PERMISSION`, `UNKNOWN_KIND`, `DRY_RUN_FAILED`, ...
    pub reason: String,
    pub message: String,
    pub fix: String,
    /// For a missing permission: the RBAC rule that grants it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Problem {
    pub fn at(source: &str, document: usize, line: usize) -> Problem {
        Problem {
            source: Some(source.to_string()),
            document: Some(document),
            line: Some(line),
            object: None,
            reason: String::new(),
            message: String::new(),
            fix: String::new(),
            rule: None,
        }
    }

    pub fn of(m: &Manifest) -> Problem {
        let mut p = Problem::at(&m.source, m.document, m.line);
        p.object = Some(m.label());
        p
    }

    pub fn general() -> Problem {
        Problem {
            source: None,
            document: None,
            line: None,
            object: None,
            reason: String::new(),
            message: String::new(),
            fix: String::new(),
            rule: None,
        }
    }

    pub fn with(
        mut self,
        reason: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        self.reason = reason.to_string();
        self.message = message.into();
        self.fix = fix.into();
        self
    }
}

/// How a deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeployOutcome {
    /// Applied and steady.
    Deployed,
    /// Pre-flight passed; nothing was changed (`--dry-run`).
    DryRun,
    /// Refused by pre-flight: nothing was changed.
    Refused,
    /// Applied (partly or wholly) and not steady, or applying failed.
    Failed,
}

/// An object as deployed, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `applied`, `steady`, `failed`, `pruned`, `unchanged`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    pub outcome: DeployOutcome,
    /// One line for people.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<release::ReleaseSummary>,
    pub duration_ms: u64,
}

impl DeployReport {
    pub fn refused(summary: impl Into<String>, problems: Vec<Problem>) -> DeployReport {
        DeployReport {
            outcome: DeployOutcome::Refused,
            summary: summary.into(),
            problems,
            objects: Vec::new(),
            release: None,
            duration_ms: 0,
        }
    }
}

/// One progress event.
#[derive(Debug, Clone)]
pub struct ProgressEvent {
    /// Events with a key replace an unsent one with the same key.
    pub key: Option<String>,
    pub kind: &'static str,
    pub message: String,
    pub data: Option<Value>,
}

/// Where progress goes (the delegate's task events); a no-op by default.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(ProgressEvent) + Send + Sync>>);

impl Progress {
    pub fn new(f: impl Fn(ProgressEvent) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    pub fn emit(&self, kind: &'static str, message: impl Into<String>) {
        self.send(None, kind, message.into(), None);
    }

    pub fn emit_data(&self, kind: &'static str, message: impl Into<String>, data: Value) {
        self.send(None, kind, message.into(), Some(data));
    }

    /// The latest state of `key` (coalesced with an unsent earlier one).
    pub fn state(&self, key: &str, kind: &'static str, message: impl Into<String>) {
        self.send(Some(key.to_string()), kind, message.into(), None);
    }

    fn send(&self, key: Option<String>, kind: &'static str, message: String, data: Option<Value>) {
        if let Some(f) = &self.0 {
            f(ProgressEvent {
                key,
                kind,
                message,
                data,
            });
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}
