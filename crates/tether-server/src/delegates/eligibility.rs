//! Which delegates may run a task, and, for those that may not, why. Pure, so
//! the rules are tested without a network.

use serde::Serialize;
use tether_domain::Scope;
use tether_store::DelegateRecord;

use super::payload::{not_deliverable, Carried};

/// Why a delegate cannot run the task, tagged by `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Ineligible {
    /// Registered in a scope that does not cover the task's.
    #[serde(rename_all = "camelCase")]
    Scope {
        /// The delegate's scope, e.g. `org 'payments'`.
        delegate_scope: String,
    },
    /// Lacks some of the selector tags.
    #[serde(rename_all = "camelCase")]
    MissingTags { missing: Vec<String> },
    /// May not receive a secret the task carries: registered below the
    /// secret's scope, in a scope its use grants do not cover.
    #[serde(rename_all = "camelCase")]
    SecretNotGranted {
        /// The reference, e.g. `account.sa_token`.
        secret: String,
        /// What is missing and how to grant it.
        message: String,
    },
    /// Not connected to any manager (or its heartbeats stopped).
    #[serde(rename_all = "camelCase")]
    Disconnected {
        /// Milliseconds since the Unix epoch; null when it never sent one.
        last_heartbeat: Option<i64>,
    },
    /// Shutting down.
    Draining,
}

impl Ineligible {
    pub fn describe(&self) -> String {
        match self {
            Ineligible::Scope { delegate_scope } => format!(
                "registered in {delegate_scope}, which does not cover this scope (a delegate serves its own scope and those below it)"
            ),
            Ineligible::MissingTags { missing } => {
                format!("lacks the selector tag(s) {}", missing.join(", "))
            }
            Ineligible::SecretNotGranted { message, .. } => message.clone(),
            Ineligible::Disconnected { .. } => "disconnected (no heartbeat)".into(),
            Ineligible::Draining => "shutting down".into(),
        }
    }
}

/// One delegate as the selection saw it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Considered {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// Tasks it is running now.
    pub running_tasks: u32,
    /// Tasks it runs at once.
    pub capacity: u32,
    /// Why it cannot run the task; absent when it could.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ineligible: Option<Ineligible>,
}

/// What a delegate must offer to run a task: to serve its scope, carry the
/// selector tags, and be allowed to receive the secrets it carries.
#[derive(Debug, Clone, Copy)]
pub struct Needs<'a> {
    pub scope: &'a Scope,
    pub selectors: &'a [String],
    pub secrets: &'a [Carried],
}

impl Needs<'_> {
    /// The first reason a delegate of `delegate_scope` with `tags` cannot run
    /// the task, ignoring its connection; `None` if it can.
    pub fn unmet(&self, delegate_scope: &Scope, tags: &[String]) -> Option<Ineligible> {
        if !delegate_scope.covers(self.scope) {
            return Some(Ineligible::Scope {
                delegate_scope: delegate_scope.to_string(),
            });
        }
        let missing: Vec<String> = self
            .selectors
            .iter()
            .filter(|s| !tags.iter().any(|t| t == *s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Some(Ineligible::MissingTags { missing });
        }
        self.secrets
            .iter()
            .find(|c| !c.deliverable_to(delegate_scope))
            .map(|c| Ineligible::SecretNotGranted {
                secret: c.reference.clone(),
                message: not_deliverable(c, delegate_scope),
            })
    }
}

/// Why `d` cannot run a task with `needs`, or `None` if it can. Capacity is
/// not a reason: a busy delegate takes the task when a slot frees.
pub fn assess(
    d: &DelegateRecord,
    needs: Needs<'_>,
    now: i64,
    heartbeat_timeout_ms: i64,
) -> Option<Ineligible> {
    if let Some(r) = needs.unmet(&d.scope, &d.tags) {
        return Some(r);
    }
    if !d.connected(now, heartbeat_timeout_ms) {
        return Some(Ineligible::Disconnected {
            last_heartbeat: d.last_heartbeat,
        });
    }
    if d.draining {
        return Some(Ineligible::Draining);
    }
    None
}

pub fn consider(
    delegates: &[DelegateRecord],
    needs: Needs<'_>,
    now: i64,
    heartbeat_timeout_ms: i64,
) -> Vec<Considered> {
    delegates
        .iter()
        .map(|d| Considered {
            id: d.id.clone(),
            name: d.name.clone(),
            tags: d.tags.clone(),
            running_tasks: d.running_tasks,
            capacity: d.capacity,
            ineligible: assess(d, needs, now, heartbeat_timeout_ms),
        })
        .collect()
}

/// The sentence an API caller reads when nothing can run its task.
pub fn explain(scope: &Scope, selectors: &[String], considered: &[Considered]) -> String {
    let wanted = if selectors.is_empty() {
        "any available delegate".to_string()
    } else {
        format!("a delegate with all of the tags [{}]", selectors.join(", "))
    };
    if considered.is_empty() {
        return format!(
            "no delegate can run this task: it needs {wanted} serving {}, and none is registered there. Install one with `tether delegate manifest` (or `tether delegate run`) using a delegate token of this scope or above",
            scope_words(scope)
        );
    }
    let reasons: Vec<String> = considered
        .iter()
        .filter_map(|c| {
            c.ineligible
                .as_ref()
                .map(|r| format!("'{}': {}", c.name, r.describe()))
        })
        .collect();
    format!(
        "no delegate can run this task: it needs {wanted} serving {}. Considered: {}",
        scope_words(scope),
        reasons.join("; ")
    )
}

fn scope_words(scope: &Scope) -> String {
    match scope {
        Scope::Account => "the account".into(),
        s => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delegate(name: &str, scope: Scope, tags: &[&str], connected: bool) -> DelegateRecord {
        DelegateRecord {
            id: format!("id-{name}"),
            scope,
            name: name.into(),
            token_id: "t".into(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            version: "0".into(),
            hostname: "h".into(),
            in_cluster: false,
            capacity: 2,
            draining: false,
            manager_id: connected.then(|| "m".into()),
            connection_id: connected.then(|| "c".into()),
            connected_at: Some(1_000),
            last_heartbeat: Some(1_000),
            created_at: 0,
            running_tasks: 0,
        }
    }

    #[test]
    fn scope_tags_and_connection_decide() {
        let p = Scope::Project {
            org: "o".into(),
            project: "a".into(),
        };
        let other = Scope::Project {
            org: "o".into(),
            project: "b".into(),
        };
        let sel = vec!["eu".to_string(), "prod".to_string()];
        let now = 2_000;
        assert_eq!(
            assess(
                &delegate("acc", Scope::Account, &["eu", "prod"], true),
                Needs {
                    scope: &p,
                    selectors: &sel,
                    secrets: &[],
                },
                now,
                5_000
            ),
            None
        );
        assert!(matches!(
            assess(
                &delegate("b", other, &["eu", "prod"], true),
                Needs {
                    scope: &p,
                    selectors: &sel,
                    secrets: &[],
                },
                now,
                5_000
            ),
            Some(Ineligible::Scope { .. })
        ));
        assert_eq!(
            assess(
                &delegate("x", p.clone(), &["eu"], true),
                Needs {
                    scope: &p,
                    selectors: &sel,
                    secrets: &[],
                },
                now,
                5_000
            ),
            Some(Ineligible::MissingTags {
                missing: vec!["prod".into()]
            })
        );
        assert!(matches!(
            assess(
                &delegate("y", p.clone(), &["eu", "prod"], false),
                Needs {
                    scope: &p,
                    selectors: &sel,
                    secrets: &[],
                },
                now,
                5_000
            ),
            Some(Ineligible::Disconnected { .. })
        ));
        // Heartbeat too old counts as disconnected.
        assert!(matches!(
            assess(
                &delegate("z", p.clone(), &["eu", "prod"], true),
                Needs {
                    scope: &p,
                    selectors: &sel,
                    secrets: &[],
                },
                10_000,
                5_000
            ),
            Some(Ineligible::Disconnected { .. })
        ));
    }

    #[test]
    fn explanation_names_each_delegate_and_reason() {
        let p = Scope::Org("o".into());
        let ds = vec![delegate("lonely", p.clone(), &[], true)];
        let gpu = vec!["gpu".to_string()];
        let c = consider(
            &ds,
            Needs {
                scope: &p,
                selectors: &gpu,
                secrets: &[],
            },
            1_000,
            5_000,
        );
        let text = explain(&p, &["gpu".into()], &c);
        assert!(
            text.contains("'lonely': lacks the selector tag(s) gpu"),
            "{text}"
        );
        let none = explain(&p, &[], &[]);
        assert!(none.contains("tether delegate manifest"), "{none}");
    }

    #[test]
    fn a_secret_reaches_only_delegates_its_grants_allow() {
        let p = Scope::Project {
            org: "o".into(),
            project: "a".into(),
        };
        let secret = |grants: &[&str]| {
            vec![Carried {
                reference: "account.tok".into(),
                identifier: "tok".into(),
                scope: "account".into(),
                usable_from: grants.iter().map(|s| s.to_string()).collect(),
            }]
        };
        let check = |d: &DelegateRecord, secrets: &[Carried]| {
            let needs = Needs {
                scope: &p,
                selectors: &[],
                secrets,
            };
            assess(d, needs, 1_000, 5_000)
        };
        let project_delegate = delegate("mine", p.clone(), &[], true);
        match check(&project_delegate, &secret(&[])) {
            Some(Ineligible::SecretNotGranted { secret, message }) => {
                assert_eq!(secret, "account.tok");
                assert!(
                    message.contains("tether secret update tok --usable-from project/o/a"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The account's own delegate may receive it.
        let acc = delegate("acc", Scope::Account, &[], true);
        assert_eq!(check(&acc, &secret(&[])), None);
        // A grant to the org covers the project's delegate; a grant to the
        // project does not cover the org's delegate.
        assert_eq!(check(&project_delegate, &secret(&["org/o"])), None);
        let org_delegate = delegate("org", Scope::Org("o".into()), &[], true);
        assert!(matches!(
            check(&org_delegate, &secret(&["project/o/a"])),
            Some(Ineligible::SecretNotGranted { .. })
        ));
    }
}
