//! Running the stages in order, timing and bounding each, and turning the outcome
//! into a [`ConnectionReport`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use tether_domain::connector::{ConnectivityError, ConnectivityState};

use super::api::{self, AuthInput, AuthSource, Knowledge};
use super::diagnosis::{self, Failure, Reason};
use super::{authz, cloud, conn, net, tls};
use super::{
    ConnectionReport, ResolvedAuth, StageName, StageReport, StageStatus, TestInput, TestTarget,
};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct Runner {
    stages: Vec<StageReport>,
    timeout: Duration,
    observer: super::StageObserver,
}

impl Runner {
    /// Runs one stage under the stage timeout and records it.
    async fn stage<T, F>(&mut self, name: StageName, endpoint: &str, fut: F) -> Result<T, Failure>
    where
        F: Future<Output = Result<(T, String), Failure>>,
    {
        let start = Instant::now();
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(diagnosis::timeout(name, endpoint, self.timeout)),
        };
        let duration_ms = ms(start.elapsed());
        let (status, detail) = match &result {
            Ok((_, detail)) => (StageStatus::Passed, detail.clone()),
            Err(f) => (StageStatus::Failed, f.message.clone()),
        };
        self.stages.push(StageReport {
            name,
            status,
            duration_ms,
            detail: (!detail.is_empty()).then_some(detail),
        });
        // Authorization is announced once its partial outcome is known.
        if name != StageName::Authorization || result.is_err() {
            self.announce();
        }
        result.map(|(v, _)| v)
    }

    /// Tells the observer about the last stage.
    fn announce(&self) {
        if let Some(last) = self.stages.last() {
            self.observer.notify(last);
        }
    }
}

/// Everything the report shows besides the stages.
#[derive(Default)]
struct Outcome {
    knowledge: Knowledge,
    authz: Option<authz::AuthzOutcome>,
}

async fn stages(input: &TestInput, runner: &mut Runner, out: &mut Outcome) -> Result<(), Failure> {
    let (raw_url, ca_pem, source, delegate_ca) = match &input.target {
        TestTarget::Manual {
            master_url,
            ca_pem,
            auth,
        } => (
            master_url.as_str(),
            ca_pem.as_deref(),
            AuthSource::Resolved(auth),
            None,
        ),
        TestTarget::Inherited {
            access,
            identity_label,
        } => (
            access.url.as_str(),
            access.ca_pem.as_deref(),
            AuthSource::Delegate {
                credentials: &access.credentials,
                label: identity_label,
            },
            Some(identity_label.as_str()),
        ),
    };
    let shown = net::redact_userinfo(raw_url);
    let now = now_ms() / 1000;

    let ep = runner
        .stage(StageName::Url, &shown, async { net::check_url(raw_url) })
        .await?;
    let addrs = runner
        .stage(StageName::Dns, &ep.display, net::resolve(&ep))
        .await?;
    let stream = runner
        .stage(StageName::Tcp, &ep.display, net::connect(&ep, &addrs))
        .await?;
    let https_url = ep.url.clone();
    let identity = api::tls_identity(&source);
    let (tls_outcome, tls_stream) = runner
        .stage(StageName::Tls, &ep.display, async {
            let (o, stream) = tls::probe(
                stream,
                &ep.host,
                &ep.display,
                &https_url,
                ca_pem,
                delegate_ca,
                identity,
                now,
            )
            .await?;
            let detail = o.detail.clone();
            Ok(((o, stream), detail))
        })
        .await?;
    out.knowledge.warnings.extend(tls_outcome.warnings.clone());

    // Cloud auth types: the token first, in a stage of its own.
    let cloud_prepared = match &source {
        AuthSource::Resolved(ResolvedAuth::Cloud(c)) => Some(
            runner
                .stage(
                    StageName::Token,
                    &ep.display,
                    cloud::token_stage(c, &ep.host_str, input.stage_timeout),
                )
                .await?,
        ),
        _ => None,
    };
    let source = match &cloud_prepared {
        Some(p) => AuthSource::Cloud(p),
        None => source,
    };

    // Every API call from here on goes over the TLS stage's connection.
    let connection = conn::Connection::open(tls_stream)
        .await
        .map_err(|e| diagnosis::request_failed(&ep.display, "starting HTTP/1.1", &e.to_string()))?;
    let auth_input = AuthInput {
        connection,
        endpoint: &ep,
        ca_pem,
        source,
        server_cert_issuer: Some(tls_outcome.cert.issuer.clone()),
        server_cert_sans: tls_outcome.cert.sans.clone(),
        timeout: input.stage_timeout,
        now,
    };
    let knowledge = &mut out.knowledge;
    let auth = runner
        .stage(StageName::Authentication, &ep.display, async {
            let o = api::authenticate(auth_input, knowledge).await?;
            let detail = o.detail.clone();
            Ok((o, detail))
        })
        .await?;

    let identity = out.knowledge.identity.clone();
    let outcome = runner
        .stage(StageName::Authorization, &ep.display, async {
            let o = authz::check(
                &auth.client,
                &input.settings,
                identity.as_ref(),
                &ep.display,
            )
            .await?;
            let detail = o.detail.clone();
            Ok((o, detail))
        })
        .await?;
    if outcome.partial.is_some() {
        if let Some(last) = runner.stages.last_mut() {
            last.status = StageStatus::Failed;
        }
    }
    runner.announce();
    out.authz = Some(outcome);
    Ok(())
}

fn error_of(f: &Failure) -> ConnectivityError {
    ConnectivityError {
        reason: f.reason.as_str().to_string(),
        message: f.message.clone(),
        code: f.code,
    }
}

/// The test, start to finish.
pub(crate) async fn run(input: TestInput) -> ConnectionReport {
    let started = Instant::now();
    let tested_at = now_ms();
    let mut runner = Runner {
        stages: Vec::new(),
        timeout: input.stage_timeout,
        observer: input.on_stage.clone(),
    };
    let mut out = Outcome::default();
    let result = AssertUnwindSafe(stages(&input, &mut runner, &mut out))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(
                Reason::Internal,
                "the connection test failed unexpectedly (internal error); the cluster's state is unknown",
            ))
        });

    // Stages never reached are skipped.
    let all: &[StageName] = match &input.target {
        TestTarget::Manual {
            auth: ResolvedAuth::Cloud(_),
            ..
        } => &StageName::CLOUD,
        _ => &StageName::ALL,
    };
    for &name in all {
        if !runner.stages.iter().any(|s| s.name == name) {
            runner.stages.push(StageReport {
                name,
                status: StageStatus::Skipped,
                duration_ms: 0,
                detail: None,
            });
        }
    }

    let mut report = ConnectionReport {
        status: ConnectivityState::Success,
        error_summary: None,
        errors: Vec::new(),
        hints: Vec::new(),
        stages: runner.stages,
        server_version: out.knowledge.server_version,
        identity: out.knowledge.identity,
        permissions: Vec::new(),
        missing: Vec::new(),
        tested_at,
        duration_ms: 0,
    };
    match result {
        Err(f) => {
            let stage = report
                .stages
                .iter()
                .find(|s| s.status == StageStatus::Failed)
                .map(|s| s.name.as_str())
                .unwrap_or("test");
            report.status = ConnectivityState::Failure;
            report.error_summary = Some(format!("{stage}: {}", f.message));
            report.errors.push(error_of(&f));
            report.hints = f.hints;
        }
        Ok(()) => {
            if let Some(authz) = out.authz {
                if let Some(f) = &authz.partial {
                    report.status = ConnectivityState::Partial;
                    report.error_summary = Some(f.message.clone());
                    report.errors.push(error_of(f));
                    report.hints = f.hints.clone();
                }
                report.permissions = authz.permissions;
                report.missing = authz.missing;
            }
        }
    }
    report.hints.extend(out.knowledge.warnings);
    report.duration_ms = ms(started.elapsed());
    report
}
