//! The tether domain model: what a connector, a secret, a scope and an identifier
//! are, and the rules they obey. Everything here is pure (no I/O, no clock), so the
//! store, the server and the delegate can all rely on the same validation.
#![forbid(unsafe_code)]

pub mod cloud_auth;
pub mod connector;
pub mod delegate_protocol;
pub mod identifier;
pub mod oidc_scopes;
pub mod permissions;
pub mod proxy;
pub mod proxy_failure;
pub mod redact;
pub mod scope;
pub mod secret_access;
pub mod secret_ref;
pub mod validation;

pub use connector::{
    Auth, ConnectivityStatus, Connector, ConnectorDocument, Credential, K8sClusterSpec,
    ManualConfig,
};
pub use identifier::{derive_identifier, validate_identifier, validate_name};
pub use oidc_scopes::OidcScopes;
pub use permissions::{ConnectionTestSettings, PermissionProfile, PermissionRule};
pub use redact::Redactor;
pub use scope::Scope;
pub use secret_access::SecretAccess;
pub use secret_ref::SecretRef;
pub use validation::{FieldError, ValidationErrors};
