//! A real `tether server` process for the benchmarks, its REST API, and what
//! /proc says about a process (RSS, CPU time).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// A `tether server` on loopback, logging at its default level to a file.
pub struct Manager {
    pub url: String,
    pub port: u16,
    pub admin_token: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// The CA a delegate must trust when the manager serves https.
    pub ca_file: Option<PathBuf>,
    child: Child,
}

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tether"))
}

impl Manager {
    /// Starts `tether server` on `data_dir` (created when missing), on `port`
    /// (0: a free one), with `extra` arguments; returns once it listens.
    pub fn start(data_dir: &Path, port: u16, extra: &[&str]) -> Result<Manager> {
        std::fs::create_dir_all(data_dir)?;
        let log_file = data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)?;
        let mut command = Command::new(bin());
        // The manager logs at its default level unless TETHER_BENCH_MANAGER_LOG says.
        match std::env::var("TETHER_BENCH_MANAGER_LOG") {
            Ok(filter) => command.env("TETHER_LOG", filter),
            Err(_) => command.env_remove("TETHER_LOG"),
        };
        let mut child = command
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env_remove("TETHER_KEK")
            .env_remove("TETHER_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting tether server")?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let mut url = None;
        for line in lines.by_ref() {
            if let Some(rest) = line?.strip_prefix("tether server listening on ") {
                url = Some(rest.trim().to_string());
                break;
            }
        }
        let Some(url) = url else {
            let status = child.wait()?;
            bail!(
                "tether server exited ({status}) before listening:\n{}",
                std::fs::read_to_string(&log_file).unwrap_or_default()
            );
        };
        // Keep reading stdout so a later line never meets a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("no port in the listening URL")?;
        let admin_token = std::fs::read_to_string(data_dir.join("admin-token"))
            .context("reading the admin token")?
            .trim()
            .to_string();
        Ok(Manager {
            url,
            port,
            admin_token,
            data_dir: data_dir.to_path_buf(),
            log_file,
            ca_file: None,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a graceful stop, as a rolling restart does) and waits for the
    /// process to exit; returns how long that took.
    pub fn terminate(mut self) -> Result<Duration> {
        let t = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        self.child.wait()?;
        Ok(t.elapsed())
    }

    pub fn api(&self) -> Api {
        let mut http = reqwest::Client::builder().pool_max_idle_per_host(32);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).expect("the manager's CA file");
            http =
                http.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM CA"));
        }
        Api {
            http: http.build().expect("http client"),
            base: self.url.clone(),
            token: self.admin_token.clone(),
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The manager's REST API as its admin.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// POST that must answer 2xx; the response body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let (status, v) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        ensure!(
            (200..300).contains(&status),
            "POST {path} answered {status}: {v}"
        );
        Ok(v)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let (status, v) = self.call(reqwest::Method::GET, path, None).await?;
        ensure!(status == 200, "GET {path} answered {status}: {v}");
        Ok(v)
    }

    /// A new account-level delegate token; its value.
    pub async fn delegate_token(&self, name: &str) -> Result<String> {
        let v = self
            .post(
                "/api/v1/delegate-tokens",
                &serde_json::json!({ "name": name }),
            )
            .await?;
        v["value"]
            .as_str()
            .map(str::to_string)
            .context("no token value in the answer")
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// User plus system CPU time a process has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')').context("bad /proc stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Percentiles of a sample (sorted here), in the sample's unit.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}
