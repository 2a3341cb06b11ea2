//! Connection tests the manager starts by itself: one right after a connector is
//! created or replaced (the connector shows `PENDING` meanwhile), and a periodic
//! re-test of every connector.
//!
//! Both go through [`crate::api::connection_tests::test_connector`], as the API's
//! own `POST …/test` does, so every result lands in the connector's status, its
//! history and the metrics the same way.
//!
//! Bounds, so that one unreachable cluster never holds anything else up:
//! - every stage of a test has its own timeout (`stage_timeout`), so a test ends;
//! - at most `concurrency` background tests wait on delegates at once (a
//!   semaphore); the periodic sweep takes a permit before it starts each test, so
//!   a sweep over thousands of connectors never floods the delegates, and a
//!   test-on-change queues fairly behind at most that many;
//! - a connector is tested by one background test at a time.
//!
//! When a connector is due: `interval` after its last test (or its creation, if
//! it was never tested), plus a jitter of up to a tenth of the interval derived
//! from the connector and that time, so connectors created together drift apart
//! instead of being re-tested in lockstep forever. A connector left `PENDING`
//! (the manager stopped mid-test, or the test was started by another manager that
//! went away) is due once [`TestSettings::stale_pending`] has passed. Managers
//! sharing a PostgreSQL database read the same `testedAt`, so each connector is
//! re-tested about once per interval whichever manager does it; two managers
//! that sweep at the same instant may both test one connector, which only adds
//! a history entry.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_domain::connector::ConnectivityState;
use tether_domain::{ConnectivityStatus, Scope};
use tether_kube::connection_test::DEFAULT_STAGE_TIMEOUT;
use tether_store::{ConnectorConnectivity, TestTrigger, DEFAULT_HISTORY_LIMIT};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::api::connection_tests::test_connector;
use crate::api::AppState;
use crate::metrics::TestMetrics;

/// How the manager runs and keeps connection tests.
#[derive(Debug, Clone)]
pub struct TestSettings {
    /// Results kept per connector (the newest; older ones are dropped).
    pub history_limit: u32,
    /// How often every connector is re-tested; `None` turns the re-test off.
    pub retest_interval: Option<Duration>,
    /// Background tests running at once.
    pub concurrency: usize,
    /// Test a connector in the background when it is created or replaced.
    pub test_on_change: bool,
    /// Per-stage limit of background tests.
    pub stage_timeout: Duration,
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            history_limit: DEFAULT_HISTORY_LIMIT,
            retest_interval: Some(Duration::from_secs(30 * 60)),
            concurrency: 4,
            test_on_change: true,
            stage_timeout: DEFAULT_STAGE_TIMEOUT,
        }
    }
}

impl TestSettings {
    /// How long a `PENDING` connector may wait for its result before a sweep
    /// tests it again: longer than any test can take.
    pub fn stale_pending(&self) -> Duration {
        self.stage_timeout * 8 * 3 + Duration::from_secs(60)
    }

    /// How often the re-test loop looks for due connectors.
    fn sweep_every(&self, interval: Duration) -> Duration {
        (interval / 10).clamp(Duration::from_millis(200), Duration::from_secs(60))
    }
}

/// The manager's background testing: settings, the concurrency bound, the
/// connectors being tested now, and the test metrics.
pub struct ConnectionTests {
    pub settings: TestSettings,
    permits: Arc<Semaphore>,
    /// The connectors a background test runs for, by `scope key \n
    /// identifier`: the claim's number, and whether the connector changed
    /// while it ran (so it must be tested once more).
    in_flight: Mutex<HashMap<String, (u64, bool)>>,
    next_claim: AtomicU64,
    pub metrics: TestMetrics,
}

impl ConnectionTests {
    pub fn new(settings: TestSettings) -> Arc<ConnectionTests> {
        Arc::new(ConnectionTests {
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            settings,
            in_flight: Mutex::new(HashMap::new()),
            next_claim: AtomicU64::new(0),
            metrics: TestMetrics::default(),
        })
    }

    /// Background tests running or waiting for a permit.
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().unwrap().len()
    }

    /// Claims the connector for a background test; `None` when one already
    /// runs. The claim ends when the guard is dropped.
    fn claim(self: &Arc<Self>, scope: &Scope, identifier: &str) -> Option<Claim> {
        let key = format!("{}\n{identifier}", scope.key());
        let mut map = self.in_flight.lock().unwrap();
        if map.contains_key(&key) {
            return None;
        }
        let id = self.next_claim.fetch_add(1, Ordering::Relaxed);
        map.insert(key.clone(), (id, false));
        Some(Claim {
            tests: self.clone(),
            key,
            id,
        })
    }

    /// The connector changed while a background test runs for it: that test's
    /// claim runs one more test when it is done. False when none runs.
    fn test_again(&self, scope: &Scope, identifier: &str) -> bool {
        let key = format!("{}\n{identifier}", scope.key());
        match self.in_flight.lock().unwrap().get_mut(&key) {
            Some(entry) => {
                entry.1 = true;
                true
            }
            None => false,
        }
    }
}

/// One connector claimed by a background test.
struct Claim {
    tests: Arc<ConnectionTests>,
    key: String,
    id: u64,
}

impl Claim {
    /// After a test: true (and the flag cleared) when the connector changed
    /// meanwhile and must be tested again under this claim.
    fn again(&self) -> bool {
        let mut map = self.tests.in_flight.lock().unwrap();
        match map.get_mut(&self.key) {
            Some((id, again)) if *id == self.id && *again => {
                *again = false;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut map = self.tests.in_flight.lock().unwrap();
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

/// After a connector was created or replaced: marks it `PENDING` and tests it
/// in the background (when a background test already runs for it, that one
/// runs once more when done, since it may have read the old document).
/// Returns the status to show in the response; `None` when test-on-change is
/// off.
pub async fn test_after_change(
    state: &AppState,
    scope: &Scope,
    identifier: &str,
    previous: &ConnectivityStatus,
) -> Option<ConnectivityStatus> {
    let tests = &state.tests;
    if !tests.settings.test_on_change {
        return None;
    }
    // Claimed before PENDING is written, so no sweep starts a second test.
    let claim = loop {
        if let Some(c) = tests.claim(scope, identifier) {
            break Some(c);
        }
        if tests.test_again(scope, identifier) {
            break None;
        }
        // That test ended in between: claim afresh.
    };
    let pending = ConnectivityStatus {
        status: ConnectivityState::Pending,
        error_summary: None,
        errors: Vec::new(),
        // When it was last tested, and by which delegate, until the new result.
        tested_at: previous.tested_at,
        last_connected_at: None,
        delegate_id: previous.delegate_id.clone(),
    };
    let shown = match state
        .store
        .set_connectivity(scope, identifier, pending)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            // Deleted in between, or the database is unwell: no test then.
            tracing::warn!(%scope, connector = identifier, error = %e, "cannot mark the connector PENDING; not testing it");
            return None;
        }
    };
    if let Some(claim) = claim {
        let state = state.clone();
        let scope = scope.clone();
        let identifier = identifier.to_string();
        tokio::spawn(async move {
            let permit = state.tests.permits.clone().acquire_owned().await;
            run_one(
                &state,
                &scope,
                &identifier,
                TestTrigger::Change,
                permit.ok(),
                claim,
            )
            .await;
        });
    }
    Some(shown)
}

/// One background test, and another for each change made while it ran; logs
/// instead of failing (nobody waits for it).
async fn run_one(
    state: &AppState,
    scope: &Scope,
    identifier: &str,
    mut trigger: TestTrigger,
    _permit: Option<OwnedSemaphorePermit>,
    claim: Claim,
) {
    loop {
        test_once(state, scope, identifier, trigger).await;
        if !claim.again() {
            return;
        }
        trigger = TestTrigger::Change;
    }
}

async fn test_once(state: &AppState, scope: &Scope, identifier: &str, trigger: TestTrigger) {
    let timeout = state.tests.settings.stage_timeout;
    match test_connector(state, scope, identifier, timeout, trigger).await {
        Ok(r) => {
            tracing::debug!(%scope, connector = identifier, trigger = trigger.as_str(), status = r.report.status.as_str(), "background connection test done")
        }
        // The connector was deleted meanwhile: nothing to report on.
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
            tracing::debug!(%scope, connector = identifier, "connector deleted before its background test ended")
        }
        Err(e) => {
            tracing::warn!(%scope, connector = identifier, trigger = trigger.as_str(), error = %e.body.message, "background connection test could not be recorded")
        }
    }
}

/// When a connector is due for its periodic re-test, in ms since the epoch.
pub fn due_at(c: &ConnectorConnectivity, settings: &TestSettings, interval: Duration) -> i64 {
    if c.status.status == ConnectivityState::Pending {
        return c.last_modified_at + settings.stale_pending().as_millis() as i64;
    }
    let base = c.status.tested_at.unwrap_or(c.created_at);
    let interval_ms = interval.as_millis() as i64;
    base + interval_ms + jitter_ms(c, base, interval_ms)
}

/// A stable offset in `[0, interval / 10)` for one connector and one base time.
fn jitter_ms(c: &ConnectorConnectivity, base: i64, interval_ms: i64) -> i64 {
    let spread = interval_ms / 10;
    if spread <= 0 {
        return 0;
    }
    let mut h = DefaultHasher::new();
    (c.scope.key(), &c.identifier, base).hash(&mut h);
    (h.finish() % spread as u64) as i64
}

/// Runs the periodic re-test until `shutdown` turns true. Does nothing when
/// the re-test is off.
pub fn spawn_retest_loop(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let Some(interval) = state.tests.settings.retest_interval else {
        tracing::info!("periodic connection re-test is off");
        return;
    };
    let every = state.tests.settings.sweep_every(interval);
    tracing::info!(interval = ?interval, concurrency = state.tests.settings.concurrency, "periodic connection re-test on");
    tokio::spawn(async move {
        loop {
            let started = Instant::now();
            tokio::select! {
                _ = sweep(&state, interval) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let rest = every.saturating_sub(started.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(rest) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    });
}

/// Starts a test for every due connector, most overdue first, each once a
/// permit is free. Returns when the last one has started.
async fn sweep(state: &AppState, interval: Duration) {
    let all = match state.store.all_connector_connectivity().await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(error = %e, "periodic re-test: cannot list the connectors; retrying at the next sweep");
            return;
        }
    };
    let now = crate::delegates::now_ms();
    let settings = &state.tests.settings;
    let mut due: Vec<(i64, ConnectorConnectivity)> = all
        .into_iter()
        .map(|c| (due_at(&c, settings, interval), c))
        .filter(|(at, _)| *at <= now)
        .collect();
    due.sort_by_key(|(at, _)| *at);
    for (_, c) in due {
        let Ok(permit) = state.tests.permits.clone().acquire_owned().await else {
            return;
        };
        // Tested by a test-on-change, or still by the last sweep: skip.
        let Some(claim) = state.tests.claim(&c.scope, &c.identifier) else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            run_one(
                &state,
                &c.scope,
                &c.identifier,
                TestTrigger::Schedule,
                Some(permit),
                claim,
            )
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: &str, status: ConnectivityState, tested_at: Option<i64>) -> ConnectorConnectivity {
        ConnectorConnectivity {
            scope: Scope::Account,
            identifier: id.into(),
            status: ConnectivityStatus {
                status,
                tested_at,
                ..Default::default()
            },
            created_at: 1_000,
            last_modified_at: 2_000,
        }
    }

    #[test]
    fn due_after_the_interval_plus_a_bounded_stable_jitter() {
        let s = TestSettings::default();
        let interval = Duration::from_secs(1800);
        let ms = 1_800_000;
        let c = conn("a", ConnectivityState::Success, Some(10_000));
        let at = due_at(&c, &s, interval);
        assert!(at >= 10_000 + ms && at < 10_000 + ms + ms / 10, "{at}");
        assert_eq!(at, due_at(&c, &s, interval), "stable");
        // Never tested: counted from creation.
        let n = conn("a", ConnectivityState::Unknown, None);
        let at = due_at(&n, &s, interval);
        assert!(at >= 1_000 + ms && at < 1_000 + ms + ms / 10, "{at}");
        // PENDING: due once the result is surely lost.
        let p = conn("a", ConnectivityState::Pending, Some(10_000));
        assert_eq!(
            due_at(&p, &s, interval),
            2_000 + s.stale_pending().as_millis() as i64
        );
    }

    #[test]
    fn jitter_spreads_connectors_tested_together() {
        let s = TestSettings::default();
        let interval = Duration::from_secs(1800);
        let times: std::collections::HashSet<i64> = (0..50)
            .map(|i| {
                due_at(
                    &conn(&format!("c{i}"), ConnectivityState::Failure, Some(5_000)),
                    &s,
                    interval,
                )
            })
            .collect();
        assert!(times.len() > 40, "{} distinct due times of 50", times.len());
    }

    #[test]
    fn one_claim_per_connector() {
        let t = ConnectionTests::new(TestSettings::default());
        let a = t.claim(&Scope::Account, "a").expect("first claim");
        assert!(t.claim(&Scope::Account, "a").is_none());
        assert!(t.claim(&Scope::Org("o".into()), "a").is_some());
        assert_eq!(t.in_flight(), 1);
        drop(a);
        assert_eq!(t.in_flight(), 0);
        assert!(t.claim(&Scope::Account, "a").is_some());
    }

    #[test]
    fn a_change_during_a_test_asks_for_one_more() {
        let t = ConnectionTests::new(TestSettings::default());
        assert!(!t.test_again(&Scope::Account, "a"), "nothing runs");
        let a = t.claim(&Scope::Account, "a").unwrap();
        assert!(!a.again());
        assert!(t.test_again(&Scope::Account, "a"));
        assert!(t.test_again(&Scope::Account, "a"), "twice is once");
        assert!(a.again());
        assert!(!a.again(), "cleared");
        drop(a);
        assert_eq!(t.in_flight(), 0);
    }
}
