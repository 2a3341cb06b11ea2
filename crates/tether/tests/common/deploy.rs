//! A manager, one delegate tagged `deploy` and a connector `cluster` to the
//! test cluster with a given service-account token: what deploy tests and
//! the deploy benchmark start from.

use std::process::{Command, Output, Stdio};

use anyhow::{ensure, Result};
use tether_testenv::{KubeEnv, TetherServer};

use super::{bin, cli};

pub struct Setup {
    pub server: TetherServer,
    pub delegate: std::process::Child,
    pub dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.delegate.kill();
        let _ = self.delegate.wait();
    }
}

impl Setup {
    pub fn run(&self, args: &[&str]) -> Output {
        cli(&self.server, &self.server.admin_token, args, None)
    }

    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args);
        ensure!(
            out.status.success(),
            "tether {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    pub fn deploy(&self, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["deploy", "apply", "--connector", "cluster"];
        args.extend(extra);
        let out = self.run(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// `tether delegate run` named `name`, tagged `deploy`, with a delegate
/// token (its scope is the delegate's), stderr to `log`.
pub fn spawn_delegate(
    server: &TetherServer,
    name: &str,
    token: &str,
    log: &std::path::Path,
) -> Result<std::process::Child> {
    Ok(Command::new(bin())
        .args([
            "delegate",
            "run",
            "--manager",
            &server.url,
            "--name",
            name,
            "--tags",
            "deploy",
        ])
        .env("TETHER_DELEGATE_TOKEN", token)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log)?))
        .spawn()?)
}

pub fn start(env: &KubeEnv, token: &str) -> Result<Setup> {
    let server = TetherServer::start(bin(), &["--retest-interval", "0", "--test-on-change=false"])?;
    let dir = tempfile::tempdir()?;
    let dtoken = {
        let out = cli(
            &server,
            &server.admin_token,
            &["delegate", "token", "create", "--name", "d"],
            None,
        );
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)?.trim().to_string()
    };
    let delegate = spawn_delegate(&server, "d", &dtoken, &dir.path().join("delegate.log"))?;
    let s = Setup {
        server,
        delegate,
        dir,
    };
    super::cluster_connector(&s.server, env, token, "deploy", &[])?;
    super::wait_delegate_connected(&s.server, None)?;
    Ok(s)
}
