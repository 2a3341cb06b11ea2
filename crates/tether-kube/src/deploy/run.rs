//! One deploy from start to end: pre-flight, release, apply, prune, steady
//! state, and the report.

use std::time::Instant;

use kube::Client;

use super::release::{self, Release, ReleaseObject};
use super::steady_state;
use super::{apply, manifests, preflight};
use super::{DeployOutcome, DeployReport, DeployRequest, ManifestSource, Problem, Progress};

fn refused(
    started: Instant,
    summary: String,
    problems: Vec<Problem>,
    progress: &Progress,
) -> DeployReport {
    for p in &problems {
        progress.emit("problem", format!("{}: {}", p.reason, p.message));
    }
    let mut r = DeployReport::refused(summary, problems);
    r.duration_ms = started.elapsed().as_millis() as u64;
    r
}

/// The manifests to deploy: the request's, or those of the release rolled back to.
async fn sources(
    client: &Client,
    req: &DeployRequest,
    name: Option<&str>,
) -> Result<Vec<ManifestSource>, Problem> {
    let Some(to) = req.rollback_to else {
        return Ok(req.manifests.clone());
    };
    let Some(name) = name else {
        return Err(Problem::general().with(
            "NO_RELEASE_NAME",
            "a rollback needs the release name",
            "pass the release name",
        ));
    };
    let ns = req.default_namespace();
    let all = release::list(client, ns, name).await.map_err(|e| {
        Problem::general().with(
            "RELEASES_UNREADABLE",
            format!("cannot read the releases of {name} in {ns}: {e}"),
            "check the connector's permissions on secrets in that namespace",
        )
    })?;
    let target = if to == 0 {
        all.iter().rev().nth(1)
    } else {
        all.iter().find(|r| r.revision == to)
    };
    match target {
        Some(r) => Ok(r.manifests.clone()),
        None => Err(Problem::general().with(
            "NO_SUCH_RELEASE",
            format!(
                "release {name} in {ns} has no revision {} (it has {})",
                if to == 0 {
                    "before the latest".to_string()
                } else {
                    to.to_string()
                },
                all.iter()
                    .map(|r| r.revision.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "see `tether deploy history`",
        )),
    }
}

/// Runs the deploy.
pub async fn run(client: &Client, req: &DeployRequest, progress: &Progress) -> DeployReport {
    let started = Instant::now();
    let since = k8s_openapi::jiff::Timestamp::now();
    if let Some(name) = &req.release {
        if let Err(m) = release::validate_name(name) {
            return refused(
                started,
                m.clone(),
                vec![Problem::general().with(
                    "INVALID_RELEASE_NAME",
                    m,
                    "choose another --release",
                )],
                progress,
            );
        }
    }
    let sources = match sources(client, req, req.release.as_deref()).await {
        Ok(s) => s,
        Err(p) => return refused(started, p.message.clone(), vec![p], progress),
    };
    // 1. Parse.
    let parsed = match manifests::parse(&sources) {
        Ok(m) if m.is_empty() => {
            return refused(
                started,
                "the manifests hold no object".into(),
                vec![Problem::general().with(
                    "NO_OBJECTS",
                    "the files hold no Kubernetes object",
                    "pass the files or directories of your manifests with -f",
                )],
                progress,
            )
        }
        Ok(m) => m,
        Err(problems) => {
            return refused(
                started,
                format!(
                    "{} problem(s) in the manifests; nothing was changed",
                    problems.len()
                ),
                problems,
                progress,
            )
        }
    };
    let name = req
        .release
        .clone()
        .unwrap_or_else(|| parsed[0].name.clone());
    if let Err(m) = release::validate_name(&name) {
        return refused(
            started,
            m.clone(),
            vec![Problem::general().with("INVALID_RELEASE_NAME", m, "pass --release NAME")],
            progress,
        );
    }
    let release_ns = req.default_namespace().to_string();
    progress.emit(
        "preflight",
        format!(
            "pre-flight: {} object(s) from {} file(s), release {name} in namespace {release_ns}",
            parsed.len(),
            sources.len()
        ),
    );
    // 2. Kinds, permissions, dry run: every problem at once.
    let objects = match preflight::resolve(client, req, &parsed).await {
        Ok(o) => o,
        Err(problems) => {
            return refused(
                started,
                format!(
                    "{} problem(s) found by pre-flight; nothing was changed",
                    problems.len()
                ),
                problems,
                progress,
            )
        }
    };
    let needed = preflight::required_permissions(&objects, req.prune, &release_ns);
    let mut problems = preflight::check_permissions(client, &needed).await;
    progress.emit(
        "preflight",
        format!("checked {} permission(s)", needed.len()),
    );
    problems.extend(preflight::dry_run(client, &objects, req.force_conflicts).await);
    if !problems.is_empty() {
        return refused(
            started,
            format!(
                "{} problem(s) found by pre-flight; nothing was changed",
                problems.len()
            ),
            problems,
            progress,
        );
    }
    progress.emit(
        "preflight",
        format!("server-side dry run of {} object(s) passed", objects.len()),
    );
    let objects = apply::ordered(objects);
    if req.dry_run {
        let mut r = DeployReport::refused(
            "pre-flight passed; nothing was changed (--dry-run)",
            Vec::new(),
        );
        r.outcome = DeployOutcome::DryRun;
        r.objects = objects
            .iter()
            .map(|o| apply::result(o, "unchanged", None))
            .collect();
        r.duration_ms = started.elapsed().as_millis() as u64;
        return r;
    }
    // 3. The release record, before any change.
    let current: Vec<ReleaseObject> = objects.iter().map(ReleaseObject::of).collect();
    let (mut rel, before) = match release::begin(
        client,
        &release_ns,
        &name,
        &req.task_id,
        &sources,
        current.clone(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            let p = Problem::general().with(
                "RELEASE_NOT_RECORDED",
                format!("cannot record release {name} in namespace {release_ns}: {e}"),
                "check that the namespace exists and the connector may create secrets there",
            );
            return refused(started, p.message.clone(), vec![p], progress);
        }
    };
    progress.emit(
        "release",
        format!(
            "release {name} revision {} ({})",
            rel.revision,
            release::secret_name(&name, rel.revision)
        ),
    );
    let previous = before
        .iter()
        .rev()
        .find(|r| r.status == "deployed")
        .or(before.last())
        .cloned();
    // 4. Apply.
    let mut report = DeployReport {
        outcome: DeployOutcome::Failed,
        summary: String::new(),
        problems: Vec::new(),
        objects: Vec::new(),
        release: None,
        duration_ms: 0,
    };
    let applied = apply::apply_all(client, &objects, req.force_conflicts, progress).await;
    let mut pruned = Vec::new();
    let outcome = match applied {
        Err((done, p)) => {
            report.objects = done;
            Err(p)
        }
        Ok(done) => {
            report.objects = done;
            // 5. Prune what the previous release had and this one has not.
            let pruning = match (&previous, req.prune) {
                (Some(prev), true) => release::prune(client, prev, &current, progress)
                    .await
                    .map(|p| pruned = p),
                _ => Ok(()),
            };
            match pruning {
                Err(p) => Err(p),
                // 6. Steady state.
                Ok(()) => {
                    steady_state::wait(client, &objects, req.timeout(), since, progress).await
                }
            }
        }
    };
    match outcome {
        Ok(()) => {
            report.outcome = DeployOutcome::Deployed;
            for o in &mut report.objects {
                o.status = "steady".into();
            }
            rel.status = "deployed".into();
            report.summary = format!(
                "release {name} revision {} deployed: {} object(s) applied and steady",
                rel.revision,
                report.objects.len()
            );
        }
        Err(p) => {
            progress.emit("problem", format!("{}: {}", p.reason, p.message));
            rel.status = "failed".into();
            report.summary = format!(
                "release {name} revision {} failed: {}",
                rel.revision, p.message
            );
            report.problems.push(p);
        }
    }
    rel.finished_at = Some(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    rel.summary = Some(report.summary.clone());
    finish_release(client, &mut rel, previous.as_ref(), progress).await;
    report.release = Some(rel.summary(previous.as_ref().map(|p| p.revision), pruned));
    report.duration_ms = started.elapsed().as_millis() as u64;
    progress.emit("done", report.summary.clone());
    report
}

async fn finish_release(
    client: &Client,
    rel: &mut Release,
    previous: Option<&Release>,
    progress: &Progress,
) {
    if let Err(e) = release::save(client, rel).await {
        progress.emit(
            "warning",
            format!(
                "cannot update the release record {}: {e}",
                release::secret_name(&rel.name, rel.revision)
            ),
        );
    }
    if rel.status == "deployed" {
        if let Some(prev) = previous.filter(|p| p.status == "deployed") {
            let mut prev = prev.clone();
            prev.status = "superseded".into();
            if let Err(e) = release::save(client, &prev).await {
                progress.emit(
                    "warning",
                    format!("cannot mark revision {} superseded: {e}", prev.revision),
                );
            }
        }
    }
}
