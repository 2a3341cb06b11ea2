//! Onboarding a cluster: a service account with exactly the permissions of one
//! profile, its token, and importing an existing kubeconfig context.
//!
//! - [`manifests`]: the objects (`rbac_manifest`) and their YAML (`to_yaml`);
//! - [`apply`]: putting them into a cluster with server-side apply;
//! - [`delete`]: removing everything labelled for an account;
//! - [`token`]: a usable token for an existing account;
//! - [`kubeconfig_import`]: one kubeconfig context as server, CA and a static
//!   credential, refusing what would make tether run commands or read files.

pub mod account;
mod api_error;
pub mod apply;
pub mod cloud_exec;
pub mod delegate_manifest;
pub mod delete;
pub mod kubeconfig_import;
pub mod manifests;
pub mod object_ref;
pub mod profile;
pub mod token;

pub use account::{InvalidName, ServiceAccountRef};
pub use apply::{apply, apply_object, ApplyError, ApplyOutcome, ApplyReport, FIELD_MANAGER};
pub use delete::{delete, DeleteReport};
pub use kubeconfig_import::{
    import_kubeconfig, import_kubeconfig_file, import_kubeconfig_yaml, FileAccess, ImportError,
    ImportedAuth, ImportedCluster,
};
pub use manifests::{rbac_manifest, to_yaml, ManifestError, ManifestObject, ManifestRequest};
pub use object_ref::{ObjectKind, ObjectRef};
pub use profile::{OnboardingProfile, UnknownProfile};
pub use token::{
    service_account_token, service_account_token_with_wait, TokenError, TokenOutcome, TokenSource,
};
