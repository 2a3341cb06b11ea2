//! Benchmarks 1 and 2 of the delegates issue: N simulated delegates (default
//! 10,000) against one real manager: its RSS and CPU at steady heartbeat, then
//! a restart of the manager and the time until every delegate is back.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use tether_delegate::backoff::Backoff;

use crate::manager::{cpu_time, memory_kib, mib, percentile, sorted, Manager};
use crate::sim::{Fleet, SimConfig};

pub struct FleetParams {
    pub delegates: usize,
    pub heartbeat: Duration,
    /// How long CPU is sampled at steady heartbeat.
    pub window: Duration,
    pub tokens: usize,
}

pub async fn run(p: FleetParams) -> Result<()> {
    println!(
        "\n## Fleet: {} simulated delegates, heartbeat {:?}, one manager (SQLite)",
        p.delegates, p.heartbeat
    );
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    // TETHER_BENCH_KEEP=1 keeps the data directory and the managers' log.
    let _tmp = if std::env::var_os("TETHER_BENCH_KEEP").is_some() {
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    let hb = format!("{}ms", p.heartbeat.as_millis());
    let manager = Manager::start(&data, 0, &["--delegate-heartbeat", &hb])?;
    let port = manager.port;
    let api = manager.api();
    let (rss0, _) = memory_kib(manager.pid())?;
    println!(
        "manager pid {} started, RSS {:.1} MiB, log {}",
        manager.pid(),
        mib(rss0),
        manager.log_file.display()
    );

    let mut tokens = Vec::new();
    for i in 0..p.tokens {
        tokens.push(api.delegate_token(&format!("bench-{i}")).await?);
    }
    let cfg = SimConfig {
        manager: format!("127.0.0.1:{port}").parse()?,
        sources: (1..=8).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect(),
        capacity: 4,
        answer_tasks: true,
        backoff: Backoff::default(),
    };
    let mut fleet = Fleet::new();
    let stats = fleet.stats.clone();

    // Fill in batches, so the figure below is the steady state and not the
    // cost of 10,000 simultaneous first registrations.
    let t_fill = Instant::now();
    let cpu_fill = cpu_time(manager.pid())?;
    let batch: usize = crate::env_or("TETHER_BENCH_BATCH", 500);
    while fleet.len() < p.delegates {
        let upto = (fleet.len() + batch).min(p.delegates);
        while fleet.len() < upto {
            let i = fleet.len();
            fleet.spawn(
                &cfg,
                format!("sim-{i:05}"),
                tokens[i % tokens.len()].clone(),
            );
        }
        wait_until(Duration::from_secs(120), || {
            stats.connected.load(Ordering::SeqCst) >= upto
        })
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "only {} of {upto} delegates registered within 120 s; errors: {:?}",
                stats.connected.load(Ordering::SeqCst),
                stats.errors.lock().unwrap()
            )
        })?;
    }
    let fill = t_fill.elapsed();
    let failed_fill = stats.failed_attempts.load(Ordering::SeqCst);
    let cpu_fill = cpu_time(manager.pid())? - cpu_fill;
    println!(
        "all {} registered in {:.1} s (batches of {batch}; {} failed attempts); manager CPU {:.1} s, {:.2} ms per registration",
        p.delegates,
        fill.as_secs_f64(),
        failed_fill,
        cpu_fill.as_secs_f64(),
        cpu_fill.as_secs_f64() * 1e3 / p.delegates as f64
    );

    // Two heartbeat intervals so every delegate beats on its own phase.
    tokio::time::sleep(p.heartbeat * 2).await;
    let steady = steady_state(&manager, &stats, p.window).await?;
    println!("{steady}");
    let api_check = connected_per_api(&manager).await;
    println!("API: {api_check}");

    // ---------------------------------------------------------------- restart
    println!(
        "\n## Restart with {} connected (SIGTERM, then start again on the same data and port)",
        p.delegates
    );
    let failed_before = stats.failed_attempts.load(Ordering::SeqCst);
    let refused_before = stats.refused.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let stop_took = manager.terminate()?;
    // Every connection to the old process is gone now: count who comes back.
    stats.new_epoch();
    let t_start = Instant::now();
    let manager = Manager::start(&data, port, &["--delegate-heartbeat", &hb])?;
    let start_took = t_start.elapsed();
    let listening = Instant::now();
    let all_back = wait_until(Duration::from_secs(300), || {
        stats.back_in_epoch() >= p.delegates
    })
    .await;
    let done = Instant::now();
    let back = stats.back_in_epoch();
    let failed = stats.failed_attempts.load(Ordering::SeqCst) - failed_before;
    let refused = stats.refused.load(Ordering::SeqCst) - refused_before;
    let times: Vec<f64> = stats
        .epoch_registrations
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.duration_since(t0).as_secs_f64())
        .collect();
    let times = sorted(times);
    println!(
        "old manager stopped in {:.2} s; new one listening {:.2} s later",
        stop_took.as_secs_f64(),
        start_took.as_secs_f64()
    );
    match all_back {
        Ok(()) => println!(
            "all {} registered again {:.1} s after SIGTERM ({:.1} s after the new manager listened)",
            p.delegates,
            done.duration_since(t0).as_secs_f64(),
            done.duration_since(listening).as_secs_f64()
        ),
        Err(_) => println!(
            "NOT all back: {back} of {} within 300 s of the new manager listening",
            p.delegates
        ),
    }
    println!(
        "time back after SIGTERM: p50 {:.1} s, p90 {:.1} s, p99 {:.1} s, max {:.1} s",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );
    println!(
        "failed connection attempts during the restart: {failed} ({:.2} per delegate); refused for good (a real agent would exit): {refused}",
        failed as f64 / p.delegates as f64
    );
    println!("errors by kind so far: {:?}", stats.errors.lock().unwrap());

    tokio::time::sleep(p.heartbeat * 2).await;
    let steady = steady_state(&manager, &stats, p.window / 2).await?;
    println!("after the restart: {steady}");
    println!("API: {}", connected_per_api(&manager).await);
    let lost = stats.lost.load(Ordering::SeqCst);
    fleet.stop().await;
    println!("sessions lost over the whole run (the restart drops each once): {lost}");
    drop(manager);
    Ok(())
}

/// Manager CPU over `window` and its RSS at the end, with the simulator's own
/// CPU for context (both share the machine's 2 cores).
async fn steady_state(
    manager: &Manager,
    stats: &crate::sim::Stats,
    window: Duration,
) -> Result<String> {
    let pid = manager.pid();
    let me = std::process::id();
    let lost0 = stats.lost.load(Ordering::SeqCst);
    let (c0, s0, t0) = (cpu_time(pid)?, cpu_time(me)?, Instant::now());
    tokio::time::sleep(window).await;
    let (c1, s1, el) = (cpu_time(pid)?, cpu_time(me)?, t0.elapsed());
    let (rss, hwm) = memory_kib(pid)?;
    let lost = stats.lost.load(Ordering::SeqCst) - lost0;
    ensure!(lost == 0, "{lost} sessions were lost at steady state");
    let connected = stats.connected.load(Ordering::SeqCst);
    Ok(format!(
        "steady state, {connected} connected, {:.0} s window: manager RSS {:.1} MiB (peak {:.1} MiB), manager CPU {:.1}% of one core ({:.2} s), simulator CPU {:.1}%",
        el.as_secs_f64(),
        mib(rss),
        mib(hwm),
        100.0 * (c1 - c0).as_secs_f64() / el.as_secs_f64(),
        (c1 - c0).as_secs_f64(),
        100.0 * (s1 - s0).as_secs_f64() / el.as_secs_f64(),
    ))
}

/// What the API says: connected delegates, and how long the list took.
async fn connected_per_api(manager: &Manager) -> String {
    let t = Instant::now();
    match manager.api().get("/api/v1/delegates").await {
        Ok(v) => {
            let all = v.as_array().map(Vec::len).unwrap_or(0);
            let connected = v
                .as_array()
                .map(|a| a.iter().filter(|d| d["connected"] == true).count())
                .unwrap_or(0);
            format!(
                "{connected} of {all} delegates connected (GET /api/v1/delegates took {:.0} ms)",
                t.elapsed().as_secs_f64() * 1e3
            )
        }
        Err(e) => format!("listing delegates failed: {e:#}"),
    }
}

/// Polls `done` every 50 ms until it holds or `limit` passes. (A counter the
/// simulated delegates bump has no event to await.)
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
