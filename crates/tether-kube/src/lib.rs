//! tether's conversation with Kubernetes API servers.
//!
//! `client` turns credentials (a token, basic auth, a client certificate) and an
//! optional private CA into a [`kube::Client`] with bounded timeouts, so one
//! unreachable cluster never holds anything else up.
#![forbid(unsafe_code)]

pub mod access;
pub mod build;
pub mod client;
pub mod client_cert;
pub mod cloud_auth;
pub mod connection_test;
pub mod deploy;
pub mod onboarding;
pub mod transient;

pub use client::{header_unsafe_at, ClientError, ClusterAccess, Credentials};
