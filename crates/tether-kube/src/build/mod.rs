//! Builds through a connector: one CI step as a pod (the delegate's `build`
//! task). The design, one job per file:
//!
//! - `objects`: the request into the objects of one build: a Secret holding
//!   the secret env values (the pod refers to its keys with `secretKeyRef`, so
//!   no value is in the Pod object), an optional workspace
//!   PersistentVolumeClaim mounted at `/workspace`, and the Pod: the `build`
//!   container, and each `--service` as an extra container of the same pod
//!   (reachable from the build on `localhost:PORT`; the simplest honest
//!   sidecar: no Service, no DNS, gone with the pod). `restartPolicy: Never`,
//!   `activeDeadlineSeconds` from the timeout (the cluster stops the build even
//!   if tether is gone), no service-account token. Every object carries
//!   `tether.dev/build=<task>` and `tether.dev/delegate=<delegate>`.
//! - `preflight`: the `builds` profile's verbs by SelfSubjectAccessReview in
//!   the namespace (the deploy's check, with its rule hints) before anything
//!   is created.
//! - `logs`: the build container's log followed line by line with
//!   timestamps; after the container ends the log is read again from the last
//!   timestamp seen, so the last lines are never lost.
//! - `watch`: the pod watched (a kube watcher, not polled) until the build
//!   container starts, ends (its exit code), or cannot run (the deploy's pod
//!   diagnosis: image pull, unschedulable, config errors; and an unbound
//!   workspace claim).
//! - `cleanup`: every object labelled with the build deleted, and their
//!   deletion awaited by watching; bounded by its own timeout, run in every
//!   outcome (also when the task is cancelled or its future dropped).
//! - `run`: the whole build and its report.

mod cleanup;
mod logs;
pub mod objects;
pub mod preflight;
mod run;
mod watch;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use cleanup::{cleanup, Cleanup};
pub use run::run;

/// The label that names a build's objects: its task id.
pub const BUILD_LABEL: &str = "tether.dev/build";
/// The label that names the delegate that created them.
pub const DELEGATE_LABEL: &str = "tether.dev/delegate";

/// A sidecar service of a build: a container in the build's pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    pub image: String,
    /// Where the build reaches it: `localhost:PORT`.
    pub port: u16,
    /// Its command (default: the image's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

impl ServiceSpec {
    /// `IMAGE:PORT` or `IMAGE:PORT=COMMAND ARG...` as the CLI takes it.
    pub fn parse(raw: &str) -> Result<ServiceSpec, String> {
        let (spec, command) = match raw.split_once('=') {
            Some((s, c)) => (s, c.split_whitespace().map(str::to_string).collect()),
            None => (raw, Vec::new()),
        };
        let (image, port) = spec.rsplit_once(':').ok_or_else(|| {
            format!("service '{raw}' names no port: write IMAGE:PORT (e.g. postgres:16:5432)")
        })?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("service '{raw}': '{port}' is not a port (1-65535)"))?;
        if image.is_empty() {
            return Err(format!("service '{raw}' names no image"));
        }
        Ok(ServiceSpec {
            image: image.to_string(),
            port,
            command,
        })
    }
}

/// What to build and how. Secret values are not in it: they are given to
/// [`run`] apart, by env name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildRequest {
    pub image: String,
    /// The command and its arguments (default: the image's).
    #[serde(default)]
    pub command: Vec<String>,
    /// Default `default`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Plain environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables from tether secrets: name -> secret reference.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    /// A workspace volume of this size (`1Gi`) at `/workspace`.
    #[serde(default)]
    pub workspace: Option<String>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// How long the build may take, from its pod's creation (milliseconds).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The task this build runs as (names and labels its objects).
    #[serde(default)]
    pub task_id: String,
    /// The delegate running it (a label on its objects).
    #[serde(default)]
    pub delegate: String,
}

fn default_timeout_ms() -> u64 {
    1_800_000
}

impl BuildRequest {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1000))
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }

    /// The name of the build's objects.
    pub fn name(&self) -> String {
        format!("tether-build-{}", label_value(&self.task_id))
    }

    /// `tether.dev/build=<task>`.
    pub fn selector(&self) -> String {
        selector(&self.task_id)
    }
}

/// The label selector of the objects of build `task_id`.
pub fn selector(task_id: &str) -> String {
    format!("{BUILD_LABEL}={}", label_value(task_id))
}

/// A label value made of `s`: lowercase letters, digits, `-`, `_`, `.`,
/// at most 63 characters, starting and ending with a letter or digit.
pub fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    while v.ends_with(['-', '.']) {
        v.pop();
    }
    let v = v.trim_start_matches(['-', '.']).to_string();
    if v.is_empty() {
        "x".into()
    } else {
        v
    }
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BuildOutcome {
    /// The command ran and exited 0.
    Succeeded,
    /// The command ran and exited with another code.
    Failed,
    /// It did not run: refused by pre-flight, denied by admission, the image
    /// cannot be pulled, the pod cannot be scheduled...
    Error,
    /// The timeout passed.
    TimedOut,
    /// Cancelled.
    Cancelled,
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub outcome: BuildOutcome,
    pub summary: String,
    /// The build container's exit code, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<crate::deploy::Problem>,
    pub namespace: String,
    pub pod: String,
    pub image: String,
    /// Log lines streamed.
    pub log_lines: u64,
    /// How the build's objects were cleaned up.
    pub cleanup: Cleanup,
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_parse_with_port_and_command() {
        let s = ServiceSpec::parse("tether-test/busybox:1:8080=httpd -f -p 8080").unwrap();
        assert_eq!(s.image, "tether-test/busybox:1");
        assert_eq!(s.port, 8080);
        assert_eq!(s.command, ["httpd", "-f", "-p", "8080"]);
        assert_eq!(
            ServiceSpec::parse("registry:5000/pg:16:5432")
                .unwrap()
                .image,
            "registry:5000/pg:16"
        );
        assert!(ServiceSpec::parse("postgres").is_err());
        assert!(ServiceSpec::parse("postgres:0").is_err());
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("01HX_Ab"), "01hx-ab");
        assert_eq!(label_value("--"), "x");
        assert!(label_value(&"a".repeat(100)).len() <= 63);
    }
}
