//! Test support shared by every crate's integration tests.
//!
//! [`KubeEnv`] is a real Kubernetes cluster (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and one [`Node`] running pods)
//! started by `scripts/kube-testenv`. One cluster
//! serves a whole test run: when the test command started one it exports
//! `TETHER_TEST_KUBE_DIR`, and every test process attaches to it; otherwise the
//! first test in a process starts one for that process. Tests isolate themselves
//! with a namespace each ([`KubeEnv::namespace`]).
#![forbid(unsafe_code)]

mod accounts;
pub mod cloud;
mod https;
mod kube_env;
mod postgres;
mod tether_server;

pub use accounts::{bind_cluster_role, service_account_token};
pub use cloud::CloudWorld;
pub use https::{Handler, HttpRequest, HttpsServer, TestCa};
pub use kube_env::{repo_root, KubeEnv, Node, OwnedKube};
pub use postgres::TestDatabase;
pub use tether_server::TetherServer;

/// A short random suffix for names that must not collide between parallel tests.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    let n: u32 = rand::thread_rng().gen();
    format!("{prefix}-{n:08x}")
}
