//! The delegate route: a delegate written by hand (a WebSocket client speaking
//! the protocol, as a project or org admin could run one with a delegate
//! token of their scope) receives no secret its scope is not granted, and
//! whatever it answers, no value reaches a stored report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tether_domain::delegate_protocol::{
    DelegateMessage, ManagerMessage, Registration, TaskOutcome, PROTOCOL_VERSION,
};
use tether_testenv::TetherServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::grants::{doc, project_token, secret, update_secret, PROJECT};
use crate::common::bin;
use crate::support::Api;

/// A delegate that registers, heartbeats, records every frame the manager
/// sends, and answers each task with a report that quotes every secret value
/// it received (as a delegate of another version, or a malicious one, could).
struct HandWritten {
    frames: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HandWritten {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HandWritten {
    async fn connect(server: &TetherServer, token: &str, name: &str) -> HandWritten {
        let url = format!(
            "{}/api/v1/delegates/connect",
            server.url.replacen("http://", "ws://", 1)
        );
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket handshake");
        let (mut sink, mut stream) = ws.split();
        let register = DelegateMessage::Register(Registration {
            protocol: PROTOCOL_VERSION,
            name: name.to_string(),
            tags: vec![],
            version: "hand-written".into(),
            hostname: "attacker".into(),
            in_cluster: false,
            capacity: 4,
        });
        sink.send(Message::text(serde_json::to_string(&register).unwrap()))
            .await
            .unwrap();
        let frames: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = frames.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut running: Vec<String> = Vec::new();
            loop {
                tokio::select! {
                    frame = stream.next() => {
                        let Some(Ok(Message::Text(text))) = frame else { return };
                        seen.lock().unwrap().push(text.to_string());
                        if let Ok(ManagerMessage::Task(a)) = serde_json::from_str(&text) {
                            running.push(a.task_id.clone());
                            let result = DelegateMessage::TaskResult {
                                task_id: a.task_id.clone(),
                                attempt: a.attempt,
                                outcome: TaskOutcome::Succeeded { output: leaking_report(&a.payload) },
                            };
                            let _ = sink.send(Message::text(serde_json::to_string(&result).unwrap())).await;
                        }
                    }
                    _ = tick.tick() => {
                        let beat = DelegateMessage::Heartbeat { running: running.clone() };
                        if sink.send(Message::text(serde_json::to_string(&beat).unwrap())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        HandWritten { frames, task }
    }

    fn frames(&self) -> Vec<String> {
        self.frames.lock().unwrap().clone()
    }

    fn tasks_received(&self) -> usize {
        self.frames()
            .iter()
            .filter(|f| f.contains("\"type\":\"task\""))
            .count()
    }
}

/// A FAILURE report whose every text field quotes the secret values received.
fn leaking_report(payload: &Value) -> Value {
    let values: Vec<String> = payload["secrets"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let all = values.join(" / ");
    json!({
        "status": "FAILURE",
        "errorSummary": format!("leaked: {all}"),
        "errors": [{"reason": "UNAUTHORIZED", "message": format!("token {all}"), "code": 401}],
        "hints": [format!("the token is {all}")],
        "stages": [{"name": "authentication", "status": "failed", "durationMs": 1, "detail": all}],
        "identity": {"user": all, "source": "tokenClaims", "confirmedByServer": false},
        "permissions": [],
        "missing": [],
        "testedAt": 1,
        "durationMs": 1,
    })
}

const VALUE: &str = "planted-account-token-5e5e5e";

#[tokio::test]
async fn a_hand_written_delegate_gets_no_secret_its_scope_is_not_granted() {
    let server = TetherServer::start(
        bin(),
        &[
            "--test-on-change=false",
            "--retest-interval",
            "0",
            "--delegate-heartbeat",
            "1s",
        ],
    )
    .unwrap();
    let admin = Api::new(&server);
    let editor = Api::at(&server.url, &project_token(&server, "editor").await);
    let project_admin = Api::at(&server.url, &project_token(&server, "admin").await);
    secret(
        &server,
        false,
        "acc_tok",
        VALUE,
        &["--usable-from", "project/default/web"],
    );
    let (s, v) = editor
        .post(
            &format!("{PROJECT}/connectors"),
            doc(
                "c",
                "https://10.0.0.1:6443",
                "ServiceAccount",
                json!({"serviceAccountTokenRef": "account.acc_tok"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v:#}");
    let test = || async {
        let (s, v) = editor
            .post(&format!("{PROJECT}/connectors/c/test"), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v:#}");
        v
    };

    // An org delegate (the org's admin could run one): not granted, not eligible.
    let (_, org_token) = admin
        .delegate_token("/api/v1/orgs/default", "org-token")
        .await;
    let org_hw = HandWritten::connect(&server, &org_token, "org-hw").await;
    admin.connected("/api/v1/orgs/default", "org-hw", 0).await;
    let r = test().await;
    assert_eq!(r["errors"][0]["reason"], "NO_ELIGIBLE_DELEGATE", "{r:#}");
    let why = r["errorSummary"].as_str().unwrap();
    assert!(
        why.contains("'org-hw'") && why.contains("may not receive secret 'account.acc_tok'"),
        "{why}"
    );
    assert!(
        why.contains("--usable-from project/default/web --usable-from org/default"),
        "the explanation says how to grant it: {why}"
    );

    // The project's own admin registers a delegate in the project.
    let (_, project_token_value) = project_admin.delegate_token(PROJECT, "mine").await;
    let project_hw = HandWritten::connect(&server, &project_token_value, "project-hw").await;
    admin.connected(PROJECT, "project-hw", 0).await;

    // Grant revoked: the test is refused before anything is sent.
    update_secret(&server, false, "acc_tok", &["--no-usable-from"]);
    let r = test().await;
    assert_eq!(r["errors"][0]["reason"], "SECRET_USE_DENIED", "{r:#}");
    assert!(r["taskId"].is_null(), "{r:#}");
    assert_eq!(project_hw.tasks_received(), 0);

    // Granted again: the project delegate runs it (it may: its scope is
    // granted), and answers with a report quoting the value everywhere.
    update_secret(
        &server,
        false,
        "acc_tok",
        &["--usable-from", "project/default/web"],
    );
    let r = test().await;
    let task_id = r["taskId"].as_str().expect("a task ran").to_string();
    assert_eq!(project_hw.tasks_received(), 1, "{r:#}");
    assert!(
        project_hw.frames().iter().any(|f| f.contains(VALUE)),
        "the granted delegate received the value"
    );
    let stored = [
        ("report", r.clone()),
        (
            "connector",
            editor.get(&format!("{PROJECT}/connectors/c")).await.1,
        ),
        (
            "history",
            editor
                .get(&format!("{PROJECT}/connectors/c/test-history"))
                .await
                .1,
        ),
        ("task", admin.task(&task_id).await),
    ];
    for (what, v) in &stored {
        let text = v.to_string();
        assert!(!text.contains(VALUE), "{what} holds the value: {v:#}");
    }
    assert!(
        r["hints"][0]
            .as_str()
            .unwrap()
            .contains("<secret account.acc_tok>"),
        "{r:#}"
    );
    assert_eq!(r["identity"]["user"], "<secret account.acc_tok>", "{r:#}");

    // The org delegate never saw it, nor a task.
    assert_eq!(org_hw.tasks_received(), 0);
    assert!(org_hw.frames().iter().all(|f| !f.contains(VALUE)));
    assert!(
        !server.log().contains(VALUE),
        "the server log holds the value"
    );
}
