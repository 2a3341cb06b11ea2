//! Delegates end to end with real processes: the `tether server` binary, real
//! `tether delegate run` children, PostgreSQL for two managers, and the test
//! Kubernetes cluster for the install manifest and the delegate in a pod.

mod common;

#[path = "delegates/support.rs"]
mod support;

#[path = "delegates/faults.rs"]
mod faults;
#[path = "delegates/identity.rs"]
mod identity;
#[path = "delegates/in_cluster.rs"]
mod in_cluster;
#[path = "delegates/manifest.rs"]
mod manifest;
#[path = "delegates/registration.rs"]
mod registration;
#[path = "delegates/scale_out.rs"]
mod scale_out;
#[path = "delegates/scope.rs"]
mod scope;
#[path = "delegates/task_events.rs"]
mod task_events;
