//! One build from start to end: pre-flight, objects, pod watch, log, exit
//! code, and the clean-up, which runs in every outcome: success, failure,
//! timeout, cancel, and (through [`CleanupGuard`]) when the build's future is
//! dropped before it ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::cleanup::{cleanup, Cleanup};
use super::logs::LogCursor;
use super::watch::{self, PodState};
use super::{objects, preflight, BuildOutcome, BuildReport, BuildRequest};
use crate::deploy::{Problem, Progress};
use crate::transient::retrying;

/// How long the clean-up may take.
pub const CLEANUP_LIMIT: Duration = Duration::from_secs(60);
/// Follows of the log in a row that end at once before it waits for the end.
const FOLLOW_RESTARTS: usize = 5;

/// Deletes the build's objects when dropped armed: the task's future was
/// dropped (the delegate's task timeout) before its own clean-up ran.
struct CleanupGuard {
    client: Client,
    namespace: String,
    selector: String,
    armed: bool,
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, ns, sel) = (
            self.client.clone(),
            self.namespace.clone(),
            self.selector.clone(),
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let c = cleanup(&client, &ns, &sel, CLEANUP_LIMIT).await;
                tracing::info!(selector = %sel, complete = c.complete, "build objects cleaned up after the build was dropped");
            });
        }
    }
}

/// How the body of a build ended.
struct Ended {
    outcome: BuildOutcome,
    summary: String,
    exit_code: Option<i32>,
    problems: Vec<Problem>,
    log_lines: u64,
}

impl Ended {
    fn problem(p: Problem) -> Ended {
        Ended {
            outcome: BuildOutcome::Error,
            summary: p.message.clone(),
            exit_code: None,
            problems: vec![p],
            log_lines: 0,
        }
    }
}

/// Why the cluster refused to create an object of the build.
fn create_problem(kind: &str, ns: &str, e: &kube::Error) -> Problem {
    match e {
        kube::Error::Api(s) if s.code == 403 || s.code == 422 || s.code == 400 => {
            let fix = if s.message.contains("quota") {
                "raise the namespace's ResourceQuota, or wait for other pods to finish"
            } else if s.message.contains("PodSecurity") || s.message.contains("violates") {
                "run the build in a namespace whose policy admits it, or use an image that runs as non-root without privileges"
            } else if s.code == 403 {
                "an admission policy of the cluster refused it: read its message, or ask the cluster's administrators"
            } else {
                "fix what the message names (--image, --env names, --workspace size) and run the build again"
            };
            Problem::general().with(
                if s.code == 403 {
                    "ADMISSION_DENIED"
                } else {
                    "INVALID_BUILD"
                },
                format!(
                    "the cluster refused the build's {kind} ({}): {}",
                    s.reason, s.message
                ),
                fix,
            )
        }
        kube::Error::Api(s) if s.code == 404 && s.message.starts_with("namespaces ") => {
            super::preflight::namespace_not_found(ns)
        }
        other => Problem::general().with(
            "CREATE_FAILED",
            format!("cannot create the build's {kind}: {other}"),
            "check the connector with `tether connector test`, then run the build again",
        ),
    }
}

async fn create(
    client: &Client,
    req: &BuildRequest,
    o: &objects::BuildObjects,
) -> Result<(), Problem> {
    let ns = req.namespace();
    let pp = PostParams::default();
    if let Some(s) = &o.secret {
        let api = Api::<Secret>::namespaced(client.clone(), ns);
        retrying(|| api.create(&pp, s))
            .await
            .map_err(|e| create_problem("Secret", ns, &e))?;
    }
    if let Some(c) = &o.workspace {
        let api = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns);
        retrying(|| api.create(&pp, c))
            .await
            .map_err(|e| create_problem("PersistentVolumeClaim", ns, &e))?;
    }
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    retrying(|| api.create(&pp, &o.pod))
        .await
        .map_err(|e| create_problem("Pod", ns, &e))?;
    Ok(())
}

fn ended(state: PodState, req: &BuildRequest) -> Ended {
    match state {
        PodState::Ended { exit_code, reason } => Ended {
            outcome: if exit_code == 0 {
                BuildOutcome::Succeeded
            } else {
                BuildOutcome::Failed
            },
            summary: if exit_code == 0 {
                "the build succeeded".into()
            } else {
                format!(
                    "the build failed: exit code {exit_code}{}",
                    if reason.is_empty() || reason == "Error" {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    }
                )
            },
            exit_code: Some(exit_code),
            problems: Vec::new(),
            log_lines: 0,
        },
        PodState::DeadlineExceeded => timed_out(req),
        PodState::CannotRun(p) => Ended::problem(p),
        PodState::Started => Ended::problem(Problem::general().with(
            "UNEXPECTED",
            "the build pod's watch ended while it ran",
            "run the build again",
        )),
    }
}

fn timed_out(req: &BuildRequest) -> Ended {
    Ended {
        outcome: BuildOutcome::TimedOut,
        summary: format!(
            "the build did not finish within its timeout of {:?}",
            req.timeout()
        ),
        exit_code: None,
        problems: vec![Problem::general().with(
            "TIMED_OUT",
            format!("the build ran longer than {:?}", req.timeout()),
            "make the build faster or pass a longer --timeout",
        )],
        log_lines: 0,
    }
}

/// Creates the build's objects and follows it to its end.
async fn body(
    client: &Client,
    req: &BuildRequest,
    o: &objects::BuildObjects,
    progress: &Progress,
) -> Ended {
    if let Err(p) = create(client, req, o).await {
        return Ended::problem(p);
    }
    let (ns, name) = (req.namespace(), req.name());
    progress.emit(
        "build",
        format!("pod {ns}/{name} created (image {})", req.image),
    );
    let ws = req.workspace.is_some();
    match watch::until(client, ns, &name, ws, false, progress).await {
        PodState::Started | PodState::Ended { .. } => {}
        other => return ended(other, req),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut cursor = LogCursor::default();
    let emit = |line: String| progress.emit("log", line);
    // The connector's client bounds each read, so a quiet build ends the
    // follow now and then: follow again while the container runs.
    let mut quick_failures = 0;
    while quick_failures < FOLLOW_RESTARTS {
        let began = Instant::now();
        if let Err(e) = cursor.read(&pods, &name, true, &emit).await {
            tracing::debug!(error = %e, pod = %name, "log follow ended with an error");
        }
        if began.elapsed() < Duration::from_secs(1) {
            quick_failures += 1;
        } else {
            quick_failures = 0;
        }
        // The follow ends when the container does, or when its connection
        // drops: follow again in that case.
        let running = pods.get_opt(&name).await.ok().flatten().is_some_and(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
                .any(|c| {
                    c.name == objects::BUILD_CONTAINER
                        && c.state.as_ref().is_some_and(|s| s.running.is_some())
                })
        });
        if !running {
            break;
        }
    }
    let end = watch::until(client, ns, &name, ws, true, progress).await;
    // Everything the container wrote before it ended, also what the follow
    // had not delivered yet.
    if let Err(e) = cursor.read(&pods, &name, false, &emit).await {
        progress.emit(
            "warning",
            format!("cannot read the end of the build's log: {e}"),
        );
    }
    let mut e = ended(end, req);
    e.log_lines = cursor.lines;
    e
}

/// Runs the build. `secret_values`: the value of each `req.secret_env` by
/// env name. `cancel` ends it early (the clean-up still runs).
pub async fn run(
    client: &Client,
    req: &BuildRequest,
    secret_values: &BTreeMap<String, String>,
    progress: &Progress,
    cancel: &CancellationToken,
) -> BuildReport {
    let started = Instant::now();
    let mut report = BuildReport {
        outcome: BuildOutcome::Error,
        summary: String::new(),
        exit_code: None,
        problems: Vec::new(),
        namespace: req.namespace().to_string(),
        pod: req.name(),
        image: req.image.clone(),
        log_lines: 0,
        cleanup: Cleanup {
            complete: true,
            ..Default::default()
        },
        duration_ms: 0,
    };
    let refuse = |mut r: BuildReport, problems: Vec<Problem>| {
        for p in &problems {
            progress.emit("problem", format!("{}: {}", p.reason, p.message));
        }
        r.summary = format!(
            "{} problem(s) found by pre-flight; nothing was created",
            problems.len()
        );
        r.problems = problems;
        r.duration_ms = started.elapsed().as_millis() as u64;
        r
    };
    let objects = match objects::build(req, secret_values) {
        Ok(o) => o,
        Err(m) => {
            return refuse(
                report,
                vec![Problem::general().with("INVALID_BUILD", m, "fix the build's arguments")],
            )
        }
    };
    progress.emit(
        "preflight",
        format!(
            "pre-flight: permissions of the builds profile in namespace {}",
            req.namespace()
        ),
    );
    let problems = preflight::check(client, req).await;
    if !problems.is_empty() {
        return refuse(report, problems);
    }
    let mut guard = CleanupGuard {
        client: client.clone(),
        namespace: req.namespace().to_string(),
        selector: req.selector(),
        armed: true,
    };
    // The cluster's deadline counts from the pod's start; ours a little later.
    let limit = req.timeout() + Duration::from_secs(30);
    let end = tokio::select! {
        e = body(client, req, &objects, progress) => e,
        _ = cancel.cancelled() => Ended {
            outcome: BuildOutcome::Cancelled,
            summary: "the build was cancelled".into(),
            exit_code: None,
            problems: Vec::new(),
            log_lines: 0,
        },
        _ = tokio::time::sleep(limit) => timed_out(req),
    };
    progress.emit(
        "cleanup",
        format!("deleting the build's objects ({})", req.selector()),
    );
    report.cleanup = cleanup(client, req.namespace(), &req.selector(), CLEANUP_LIMIT).await;
    guard.armed = false;
    progress.emit(
        "cleanup",
        if report.cleanup.complete {
            format!("deleted {} object(s)", report.cleanup.deleted.len())
        } else {
            format!("clean-up incomplete: {}", report.cleanup.errors.join("; "))
        },
    );
    for p in &end.problems {
        progress.emit("problem", format!("{}: {}", p.reason, p.message));
    }
    report.outcome = end.outcome;
    report.summary = end.summary;
    report.exit_code = end.exit_code;
    report.problems = end.problems;
    report.log_lines = end.log_lines;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}
