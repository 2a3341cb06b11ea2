//! kill -9 safety: a child process writes connectors (creates, updates that swap
//! their secret references, deletes) in a loop and is killed with SIGKILL at a
//! random moment; the database must then hold only complete connectors, each
//! with exactly the reference rows its document names, and every write the
//! child reported as done.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;
use sqlx::Row;
use tether_domain::{Connector, Scope};
use tether_store::{ConnectorQuery, Kek, Store, StoreConfig};

use crate::common::*;

both_backends!(kill_9_leaves_no_half_written_connector);

const DIR_ENV: &str = "TETHER_CRASH_CHILD_DIR";
const URL_ENV: &str = "TETHER_CRASH_CHILD_URL";
const KEK_ENV: &str = "TETHER_CRASH_CHILD_KEK";
const ROUND_ENV: &str = "TETHER_CRASH_CHILD_ROUND";
const CHILD_TEST: &str = "crash::crash_child_writer";
const SETS: [[&str; 4]; 2] = [
    ["cert", "key", "ca", "pass"],
    ["cert2", "key2", "ca2", "pass2"],
];

fn ckc(scope: &Scope, id: &str, set: usize) -> Connector {
    let [cert, key, ca, pass] = SETS[set];
    connector(
        scope,
        id,
        Some(id),
        manual(
            "ClientKeyCert",
            json!({"clientCertRef": cert, "clientKeyRef": key, "caCertRef": ca, "clientKeyPassphraseRef": pass}),
        ),
    )
}

/// Connector ids the child's loop deletes by iteration `upto` (inclusive).
fn deleted_by(round: usize, upto: usize) -> BTreeSet<String> {
    (0..=upto)
        .filter(|i| i % 5 == 4)
        .map(|i| format!("r{round}_c{}", i - 2))
        .collect()
}

/// The child: only does something when started by the test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of kill_9_leaves_no_half_written_connector"]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let store = Store::open(StoreConfig {
        database_url: std::env::var(URL_ENV).ok(),
        data_dir: dir.into(),
        key: Kek::parse(&std::env::var(KEK_ENV).unwrap(), "test key").unwrap(),
    })
    .await
    .unwrap();
    let round: usize = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let p = project();
    // Bounded, in case the parent dies without killing us.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..100_000usize {
        if Instant::now() > deadline {
            break;
        }
        store
            .create_connector(ckc(&p, &format!("r{round}_c{i}"), i % 2))
            .await
            .unwrap();
        if i >= 1 {
            let prev = format!("r{round}_c{}", i - 1);
            if !deleted_by(round, i).contains(&prev) {
                store
                    .update_connector(&p, &prev, ckc(&p, &prev, i % 2))
                    .await
                    .unwrap();
            }
        }
        if i % 5 == 4 {
            store
                .delete_connector(&p, &format!("r{round}_c{}", i - 2))
                .await
                .unwrap();
        }
        println!("wrote {i}");
    }
}

async fn kill_9_leaves_no_half_written_connector(env: TestEnv) {
    let s = &env.store;
    setup_scopes(s).await;
    for set in SETS {
        for id in set {
            secret(s, &project(), id, &format!("{id} value")).await;
        }
    }
    let exe = std::env::current_exe().unwrap();
    for round in 0..3usize {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--ignored",
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, env.data_dir.path())
        .env(KEK_ENV, env.kek.export().expose())
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        match &env.database_url {
            Some(u) => cmd.env(URL_ENV, u),
            None => cmd.env_remove(URL_ENV),
        };
        let threshold = rand::thread_rng().gen_range(8..25usize);
        let pause = Duration::from_micros(rand::thread_rng().gen_range(0..20_000));
        let (status, last_seen) = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            let mut last = None;
            for line in out.lines() {
                let line = line.unwrap();
                if let Some(n) = line.strip_prefix("wrote ") {
                    let n: usize = n.parse().unwrap();
                    last = Some(n);
                    if n >= threshold {
                        // Land the kill at an arbitrary point of a later write.
                        std::thread::sleep(pause);
                        child.kill().unwrap(); // SIGKILL
                        break;
                    }
                }
            }
            (child.wait().unwrap(), last)
        })
        .await
        .unwrap();
        let last_seen = last_seen.expect("the child wrote before it was killed");
        assert_eq!(
            status.signal(),
            Some(9),
            "the child was killed, not finished: {status:?}"
        );
        assert!(last_seen >= threshold);

        // A fresh handle opens the database as a restarted server would.
        let reopened = env.reopen(env.kek.clone()).await.unwrap();
        let p = project();
        let listed = reopened
            .list_connectors(
                &p,
                ConnectorQuery {
                    limit: Some(1000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.total as usize, listed.items.len());
        // The child may have finished more iterations than it managed to report
        // before the kill landed, so its real progress comes from the database:
        // the newest connector it created. Every earlier one is there unless the
        // loop deleted it, and every deletion before that iteration is durable.
        let prefix = format!("r{round}_c");
        let newest = listed
            .items
            .iter()
            .filter_map(|r| r.identifier().strip_prefix(&prefix)?.parse::<usize>().ok())
            .max()
            .unwrap();
        assert!(
            newest >= last_seen,
            "reported write {last_seen} is durable (newest {newest})"
        );
        let maybe_deleted = deleted_by(round, newest);
        let surely_deleted = deleted_by(round, newest.saturating_sub(1));
        for i in 0..=newest {
            let id = format!("{prefix}{i}");
            let found = reopened.get_connector(&p, &id).await;
            if surely_deleted.contains(&id) {
                assert!(found.is_err(), "{id} was deleted");
            } else if !maybe_deleted.contains(&id) {
                found.unwrap_or_else(|e| panic!("{id}: {e}"));
            }
        }
        reopened.close().await;
        check_every_connector_is_complete(&env).await;
    }
}

async fn check_every_connector_is_complete(env: &TestEnv) {
    let raw = env.raw().await;
    let rows = sqlx::query("SELECT id, identifier, body FROM connectors")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        let id: i64 = r.try_get("id").unwrap();
        let identifier: String = r.try_get("identifier").unwrap();
        let body: String = r.try_get("body").unwrap();
        let c: Connector = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("connector {identifier} does not parse: {e}"));
        assert_eq!(c.identifier.as_deref(), Some(identifier.as_str()));
        let want: BTreeSet<(String, String)> = c
            .secret_refs()
            .iter()
            .map(|f| (f.field.to_string(), f.reference.to_string()))
            .collect();
        let have: BTreeSet<(String, String)> = sqlx::query(
            "SELECT r.field, r.reference FROM connector_secret_refs r JOIN secrets s ON s.id = r.secret_id WHERE r.connector_id = $1",
        )
        .bind(id)
        .fetch_all(&raw)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get("field").unwrap(), r.try_get("reference").unwrap()))
        .collect();
        assert_eq!(
            have, want,
            "reference rows of {identifier} match its document"
        );
    }
    let orphans: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM connector_secret_refs WHERE connector_id NOT IN (SELECT id FROM connectors)",
    )
    .fetch_one(&raw)
    .await
    .unwrap()
    .try_get("n")
    .unwrap();
    assert_eq!(orphans, 0);
    if env.database_url.is_none() {
        let check: String = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&raw)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(check, "ok");
    }
    raw.close().await;
}
