//! What a delegate and the manager say to each other over the WebSocket at
//! `/api/v1/delegates/connect`. One JSON object per text frame, tagged by `type`.
//!
//! The delegate authenticates the upgrade request with its delegate token
//! (`Authorization: Bearer tdt_...`), then sends `register`; the manager answers
//! `registered` and from then on pushes `task`s. Heartbeats carry the ids of the
//! tasks the delegate is running, which renews their leases: a task whose lease
//! lapses (delegate gone, frames stopped) is offered to another delegate.

use serde::{Deserialize, Serialize};

/// Bump when a message changes incompatibly; the manager refuses other versions
/// with a message that says which to run.
pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DelegateMessage {
    Register(Registration),
    #[serde(rename_all = "camelCase")]
    Heartbeat {
        /// Tasks the delegate is running now.
        running: Vec<String>,
    },
    /// The delegate is shutting down: send it no more tasks. Running ones still
    /// report their results.
    Draining,
    #[serde(rename_all = "camelCase")]
    TaskResult {
        task_id: String,
        attempt: u32,
        outcome: TaskOutcome,
    },
    /// Progress of a running task, in order. Each event has a sequence number
    /// within its attempt, so events re-sent after a reconnect are stored once;
    /// the manager answers `taskEventsAck`. Managers that predate it ignore it.
    #[serde(rename_all = "camelCase")]
    TaskEvents {
        task_id: String,
        attempt: u32,
        events: Vec<TaskEvent>,
    },
}

/// One thing that happened while a task ran: a connection-test stage passed,
/// an object was applied, a rollout progressed, a pod event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    /// 1, 2, 3, ... within one attempt of one task.
    pub seq: u64,
    /// When the delegate saw it (milliseconds since the epoch).
    pub at_ms: i64,
    /// What sort of event: `stage`, `applied`, `progress`, `pod`, `warning`,
    /// `info`, `truncated`, ...
    pub kind: String,
    /// One readable line.
    pub message: String,
    /// Details for programs (a stage report, an object reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    pub protocol: u32,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub version: String,
    pub hostname: String,
    /// True when the delegate runs in a pod (it has a service-account token).
    pub in_cluster: bool,
    /// Tasks it runs at once.
    pub capacity: u32,
}

/// Bounds of a registration: a delegate token must not buy unbounded rows.
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_LEN: usize = 128;
pub const MAX_HOSTNAME_LEN: usize = 253;
pub const MAX_VERSION_LEN: usize = 64;

impl Registration {
    /// Every rule of a registration, each error naming its field (`name`,
    /// `hostname`, `version`, `tags[i]`). The manager refuses a registration
    /// that breaks one; the delegate checks before it dials.
    pub fn validate(&self) -> Result<(), crate::ValidationErrors> {
        let mut errs = crate::ValidationErrors::default();
        if let Err(e) = crate::validate_name(&self.name) {
            errs.push("name", format!("{e} (the delegate's --name)"));
        }
        fn text(
            errs: &mut crate::ValidationErrors,
            field: String,
            value: &str,
            max: usize,
            what: &str,
        ) {
            let len = value.chars().count();
            if len > max {
                errs.push(
                    field,
                    format!("{what} is {len} characters long; at most {max} are allowed"),
                );
            } else if value.chars().any(char::is_control) {
                errs.push(field, format!("{what} contains a control character"));
            }
        }
        text(
            &mut errs,
            "hostname".into(),
            &self.hostname,
            MAX_HOSTNAME_LEN,
            "the hostname",
        );
        text(
            &mut errs,
            "version".into(),
            &self.version,
            MAX_VERSION_LEN,
            "the version",
        );
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                errs.push(format!("tags[{i}]"), "a tag must not be blank");
            } else {
                text(&mut errs, format!("tags[{i}]"), tag, MAX_TAG_LEN, "a tag");
            }
        }
        if self.tags.len() > MAX_TAGS {
            errs.push(
                "tags",
                format!(
                    "{} tags; a delegate may carry at most {MAX_TAGS}",
                    self.tags.len()
                ),
            );
        }
        errs.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ManagerMessage {
    #[serde(rename_all = "camelCase")]
    Registered {
        delegate_id: String,
        heartbeat_interval_ms: u64,
    },
    Task(TaskAssignment),
    #[serde(rename_all = "camelCase")]
    ResultAck {
        task_id: String,
    },
    /// The manager stored a task's events up to `seq` (of `attempt`): the
    /// delegate may forget them. Delegates that predate it ignore it.
    #[serde(rename_all = "camelCase")]
    TaskEventsAck {
        task_id: String,
        attempt: u32,
        seq: u64,
    },
    /// Cancel a running task (`POST /api/v1/tasks/{id}/cancel`). The
    /// delegate ends it (a build deletes its objects first) and reports its
    /// result as usual. Delegates that predate it ignore it.
    #[serde(rename_all = "camelCase")]
    CancelTask {
        task_id: String,
    },
    /// The manager is closing this connection and says why (token revoked,
    /// replaced by a newer connection of the same delegate, shutting down).
    #[serde(rename_all = "camelCase")]
    Closing {
        reason: String,
        reconnect: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAssignment {
    pub task_id: String,
    pub attempt: u32,
    pub kind: String,
    /// The task's input, with the secret values it needs resolved for this
    /// delegate only.
    pub payload: serde_json::Value,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum TaskOutcome {
    Succeeded { output: serde_json::Value },
    Failed { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration() -> Registration {
        Registration {
            protocol: PROTOCOL_VERSION,
            name: "runner-1".into(),
            tags: vec!["eu".into()],
            version: "0.1.0".into(),
            hostname: "host".into(),
            in_cluster: false,
            capacity: 4,
        }
    }

    #[test]
    fn registrations_are_bounded() {
        assert!(registration().validate().is_ok());
        let fields = |r: Registration| -> Vec<String> {
            r.validate()
                .unwrap_err()
                .0
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        let mut r = registration();
        r.hostname = "h".repeat(900_000);
        assert_eq!(fields(r), ["hostname"]);
        let mut r = registration();
        r.version = "1\n2".into();
        r.name = "x".repeat(200);
        assert_eq!(fields(r), ["name", "version"]);
        let mut r = registration();
        r.tags = (0..65).map(|i| i.to_string()).collect();
        r.tags[3] = " ".into();
        r.tags[4] = "t".repeat(129);
        assert_eq!(fields(r), ["tags[3]", "tags[4]", "tags"]);
    }

    #[test]
    fn messages_are_tagged_camel_case_json() {
        let m = DelegateMessage::Heartbeat {
            running: vec!["t1".into()],
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"heartbeat","running":["t1"]}"#
        );
        let r = DelegateMessage::TaskResult {
            task_id: "t".into(),
            attempt: 2,
            outcome: TaskOutcome::Failed {
                message: "x".into(),
            },
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"type":"taskResult","taskId":"t","attempt":2,"outcome":{"status":"failed","message":"x"}}"#
        );
        assert_eq!(serde_json::from_str::<DelegateMessage>(&text).unwrap(), r);
    }

    #[test]
    fn task_events_round_trip_and_omit_empty_data() {
        let m = DelegateMessage::TaskEvents {
            task_id: "t".into(),
            attempt: 1,
            events: vec![TaskEvent {
                seq: 1,
                at_ms: 5,
                kind: "stage".into(),
                message: "dns passed".into(),
                data: None,
            }],
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"type":"taskEvents","taskId":"t","attempt":1,"events":[{"seq":1,"atMs":5,"kind":"stage","message":"dns passed"}]}"#
        );
        assert_eq!(serde_json::from_str::<DelegateMessage>(&text).unwrap(), m);
    }
}
