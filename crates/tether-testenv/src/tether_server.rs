//! Running the real `tether server` binary on loopback for integration tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// A `tether server` process with its own data directory. Killed on drop.
pub struct TetherServer {
    pub url: String,
    pub admin_token: String,
    pub data_dir: PathBuf,
    /// Everything the server wrote to stderr (its log).
    pub log_file: PathBuf,
    /// `--database-url` when the server runs on PostgreSQL.
    pub database_url: Option<String>,
    child: Child,
    _tmp: Option<tempfile::TempDir>,
}

impl TetherServer {
    /// Starts `bin server` with a fresh data directory and `extra` arguments, and
    /// waits for the line that says where it listens.
    pub fn start(bin: &Path, extra: &[&str]) -> Result<TetherServer> {
        let tmp = tempfile::tempdir()?;
        let data_dir = tmp.path().join("data");
        let mut s = Self::start_in(bin, &data_dir, extra)?;
        s._tmp = Some(tmp);
        Ok(s)
    }

    /// Starts (or restarts) a server on an existing data directory.
    pub fn start_in(bin: &Path, data_dir: &Path, extra: &[&str]) -> Result<TetherServer> {
        std::fs::create_dir_all(data_dir)?;
        let log_file = data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)?;
        // Loopback unless the test chose an address (e.g. the node's host side,
        // for delegates running in pods).
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = Command::new(bin)
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(listen)
            .args(extra)
            .env("TETHER_LOG", "debug,sqlx=warn,hyper=info,h2=info")
            .env_remove("TETHER_KEK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut url = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if let Some(rest) = line.strip_prefix("tether server listening on ") {
                url = Some(rest.trim().to_string());
                break;
            }
        }
        let Some(url) = url else {
            let status = child.wait()?;
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            bail!("tether server exited ({status}) before listening:\n{log}");
        };
        let admin_token = std::fs::read_to_string(data_dir.join("admin-token"))
            .context("reading the admin token")?
            .trim()
            .to_string();
        let database_url = extra
            .windows(2)
            .find(|w| w[0] == "--database-url")
            .map(|w| w[1].to_string());
        Ok(TetherServer {
            database_url,
            url,
            admin_token,
            data_dir: data_dir.to_path_buf(),
            log_file,
            child,
            _tmp: None,
        })
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Stops the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A `tether` client command pointed at this server with `token`.
    pub fn cli(&self, bin: &Path, token: &str) -> Command {
        let mut c = Command::new(bin);
        c.env("TETHER_URL", &self.url)
            .env("TETHER_TOKEN", token)
            .env("TETHER_CONFIG", self.data_dir.join("no-client-config.yaml"));
        c
    }
}

impl Drop for TetherServer {
    fn drop(&mut self) {
        self.kill();
    }
}
