//! Turning one kubeconfig context into data tether can store: the server, its CA,
//! and one static credential (token, client certificate and key, or basic auth).
//!
//! Some kubeconfigs get credentials by running a program (`exec`) or through an
//! `auth-provider`; tether never runs anything a kubeconfig names, so those are
//! refused with the advice to use `tether cluster add` instead. File paths
//! (`certificate-authority`, `client-certificate`, `client-key`, `tokenFile`) are
//! read only when the caller says the import runs on the operator's own machine
//! ([`FileAccess`]), and a `tokenFile` only when the operator said so too: a
//! token goes to the kubeconfig's server, and a kubeconfig from elsewhere could
//! name any one-line secret of the machine (tether's own key file or admin
//! token among them).

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use kube::config::{AuthInfo, Kubeconfig, KubeconfigError};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};

use crate::client::{ClusterAccess, Credentials};

/// Which files a kubeconfig may make the import read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAccess {
    /// `certificate-authority`, `client-certificate`, `client-key` (their
    /// content must be PEM of that kind; none of it is sent anywhere).
    pub paths: bool,
    /// `tokenFile`, whose content is sent to the server as a bearer token.
    pub token_file: bool,
}

impl FileAccess {
    /// Embedded data only.
    pub const NONE: FileAccess = FileAccess {
        paths: false,
        token_file: false,
    };
    /// Every file the kubeconfig names (the delegate's own kubeconfig).
    pub const ALL: FileAccess = FileAccess {
        paths: true,
        token_file: true,
    };
}

/// What one kubeconfig context says about a cluster.
#[derive(Debug, Clone)]
pub struct ImportedCluster {
    /// The API server URL.
    pub server: String,
    /// The CA to trust, PEM; `None` means the system roots.
    pub ca_pem: Option<String>,
    pub auth: ImportedAuth,
    pub context: String,
    pub cluster_name: String,
    pub user_name: String,
}

impl ImportedCluster {
    /// Client settings for this cluster (default timeouts).
    pub fn access(&self) -> ClusterAccess {
        let access = ClusterAccess::new(&self.server, self.auth.credentials());
        match &self.ca_pem {
            Some(ca) => access.with_ca(ca),
            None => access,
        }
    }
}

/// The one credential of the context's user. `Debug` never shows a secret.
#[derive(Clone)]
pub enum ImportedAuth {
    Token(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
    ClientCert {
        cert_pem: String,
        key_pem: SecretString,
    },
}

impl ImportedAuth {
    pub fn credentials(&self) -> Credentials {
        match self {
            ImportedAuth::Token(t) => Credentials::Token(t.clone()),
            ImportedAuth::Basic { username, password } => Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            ImportedAuth::ClientCert { cert_pem, key_pem } => Credentials::ClientCert {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
        }
    }
}

impl fmt::Debug for ImportedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportedAuth::Token(_) => f.write_str("Token(<redacted>)"),
            ImportedAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &format_args!("<redacted>"))
                .finish(),
            ImportedAuth::ClientCert { cert_pem, .. } => f
                .debug_struct("ClientCert")
                .field("cert_pem", cert_pem)
                .field("key_pem", &format_args!("<redacted>"))
                .finish(),
        }
    }
}

const CLUSTER_ADD_HINT: &str =
    "use `tether cluster add --kubeconfig PATH --context CONTEXT`, which uses \
     your kubeconfig once, on your machine, to create a service account and a token for tether";

/// Why a kubeconfig context cannot be imported. Never quotes a credential.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the kubeconfig {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the kubeconfig is not valid YAML for a kubeconfig{}; the parser's message is withheld \
         because it may quote credentials: check it with `kubectl config view --kubeconfig PATH`",
        .location.as_deref().map(|l| format!(" ({l})")).unwrap_or_default()
    )]
    Parse { location: Option<String> },
    #[error("the kubeconfig is not usable: {0}")]
    Invalid(String),
    #[error("the kubeconfig has no current-context: name a context ({})", list(.available))]
    NoCurrentContext { available: Vec<String> },
    #[error("context '{name}' is not in the kubeconfig ({})", list(.available))]
    ContextNotFound {
        name: String,
        available: Vec<String>,
    },
    #[error(
        "context '{context}' refers to cluster '{cluster}', which the kubeconfig does not define"
    )]
    ClusterNotFound { context: String, cluster: String },
    #[error("context '{context}' refers to user '{user}', which the kubeconfig does not define")]
    UserNotFound { context: String, user: String },
    #[error("context '{context}' names no user, so there are no credentials to import: {CLUSTER_ADD_HINT}")]
    NoUser { context: String },
    #[error("cluster '{cluster}' has no server URL")]
    NoServer { cluster: String },
    #[error(
        "cluster '{cluster}' sets insecure-skip-tls-verify, and tether always verifies the API \
         server's certificate: put the cluster's CA into the kubeconfig as \
         certificate-authority-data (on Kubernetes 1.20+ every namespace has it in the \
         kube-root-ca.crt ConfigMap) and import again"
    )]
    InsecureSkipTlsVerify { cluster: String },
    #[error(
        "user '{user}' gets its credentials by running `{command}` (an exec plugin, typical of \
         EKS, GKE and AKS with Entra ID); tether never runs commands from a kubeconfig, neither \
         now nor later on its server: {CLUSTER_ADD_HINT}"
    )]
    ExecRefused { user: String, command: String },
    #[error(
        "user '{user}' gets its credentials by running `{plugin}`; tether never runs commands \
         from a kubeconfig, but it makes {auth_type} tokens itself, refreshed before they \
         expire: create a connector for {server} with this auth (store the secrets it names \
         first, and the cluster's CA as caCertRef), then `tether connector apply -f FILE`:\n{auth_yaml}"
    )]
    CloudExecRecognised {
        user: String,
        plugin: &'static str,
        auth_type: &'static str,
        server: String,
        /// The connector's `auth:` block with the fields the plugin's arguments
        /// gave and placeholders for the secrets.
        auth_yaml: String,
    },
    #[error(
        "user '{user}' gets its credentials from the '{provider}' auth-provider, which refreshes \
         them by itself; tether stores only static credentials and never runs a kubeconfig's \
         auth plugins: {CLUSTER_ADD_HINT}"
    )]
    AuthProviderRefused { user: String, provider: String },
    #[error(
        "user '{user}' impersonates another identity (as/as-groups/as-uid), so tether would \
         connect as someone else than the context does: remove the impersonation from a copy of \
         the kubeconfig, or {CLUSTER_ADD_HINT}"
    )]
    ImpersonationRefused { user: String },
    #[error(
        "{owner} reads {field} from the file {path}, and file paths are read only when importing \
         on your own machine: embed the file's content instead (`kubectl config view --raw \
         --flatten --minify --context CONTEXT > flat.kubeconfig`) and import that"
    )]
    FilePathRefused {
        owner: String,
        field: &'static str,
        path: String,
    },
    #[error(
        "{owner} reads its token from the file {path}, and the token would be sent to the \
         kubeconfig's server: tether reads a tokenFile only when told to, since a kubeconfig from \
         elsewhere could name any secret file of this machine. If {path} holds that cluster's \
         token, run again with --allow-token-file (or embed the token in the kubeconfig)"
    )]
    TokenFileRefused { owner: String, path: String },
    #[error("cannot read {field} of {owner} from {path}: {source}")]
    ReadFile {
        owner: String,
        field: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{field} of {owner} is not valid base64: re-encode it with `base64 -w0 < FILE`")]
    BadBase64 { owner: String, field: &'static str },
    #[error("{field} of {owner} is not a PEM {expected} (a block starting with -----BEGIN ...)")]
    NotPem {
        owner: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error(
        "user '{user}' has no credentials tether can use: it needs a token (or tokenFile), a \
         client certificate and key, or a username and password; otherwise {CLUSTER_ADD_HINT}"
    )]
    NoCredentials { user: String },
    #[error(
        "user '{user}' has {}; a tether connector holds exactly one credential: keep one in a copy \
         of the kubeconfig and import that",
        .found.join(" and ")
    )]
    AmbiguousCredentials {
        user: String,
        found: Vec<&'static str>,
    },
    #[error("user '{user}' has {present} but no {missing}; both are needed")]
    Incomplete {
        user: String,
        present: &'static str,
        missing: &'static str,
    },
}

fn list(available: &[String]) -> String {
    if available.is_empty() {
        "it defines no contexts at all".to_string()
    } else {
        format!("available contexts: {}", available.join(", "))
    }
}

/// Reads a kubeconfig file (relative file paths inside it are resolved against its
/// directory) and imports `context` (default: its current-context).
pub fn import_kubeconfig_file(
    path: &Path,
    context: Option<&str>,
    files: FileAccess,
) -> Result<ImportedCluster, ImportError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(parse_error)?;
    import_kubeconfig(&kubeconfig, context, files)
}

/// Imports `context` (default: the current-context) of kubeconfig text.
pub fn import_kubeconfig_yaml(
    yaml: &str,
    context: Option<&str>,
    files: FileAccess,
) -> Result<ImportedCluster, ImportError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(parse_error)?;
    import_kubeconfig(&kubeconfig, context, files)
}

fn parse_error(e: KubeconfigError) -> ImportError {
    match e {
        KubeconfigError::ReadConfig(source, path) => ImportError::Read {
            path: path.display().to_string(),
            source,
        },
        KubeconfigError::Parse(e) => ImportError::Parse {
            location: e
                .location()
                .map(|l| format!("line {}, column {}", l.line(), l.column())),
        },
        // The remaining variants (mismatched kinds or versions between merged
        // documents, ...) carry no file content.
        other => ImportError::Invalid(other.to_string()),
    }
}

/// Imports `context` (default: the current-context) of `kubeconfig`. With
/// `allow_file_paths` false, a context whose CA, certificate, key or token lives in
/// a file is refused; pass true only when running on the operator's machine.
pub fn import_kubeconfig(
    kubeconfig: &Kubeconfig,
    context: Option<&str>,
    access: FileAccess,
) -> Result<ImportedCluster, ImportError> {
    let available =
        || -> Vec<String> { kubeconfig.contexts.iter().map(|c| c.name.clone()).collect() };
    let context_name = match context.or(kubeconfig.current_context.as_deref()) {
        Some(name) if !name.is_empty() => name,
        _ => {
            return Err(ImportError::NoCurrentContext {
                available: available(),
            })
        }
    };
    let ctx = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| ImportError::ContextNotFound {
            name: context_name.to_string(),
            available: available(),
        })?;

    let cluster_name = ctx.cluster.clone();
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| ImportError::ClusterNotFound {
            context: context_name.to_string(),
            cluster: cluster_name.clone(),
        })?;
    let user_name =
        ctx.user
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ImportError::NoUser {
                context: context_name.to_string(),
            })?;
    let user = kubeconfig
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .map(|u| u.auth_info.clone().unwrap_or_default())
        .ok_or_else(|| ImportError::UserNotFound {
            context: context_name.to_string(),
            user: user_name.clone(),
        })?;

    let server = cluster
        .server
        .clone()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ImportError::NoServer {
            cluster: cluster_name.clone(),
        })?;
    if cluster.insecure_skip_tls_verify == Some(true) {
        return Err(ImportError::InsecureSkipTlsVerify {
            cluster: cluster_name,
        });
    }
    let files = Files { access };
    let cluster_owner = format!("cluster '{cluster_name}'");
    let ca_pem = files
        .data_or_file(
            cluster.certificate_authority_data.as_deref(),
            cluster.certificate_authority.as_deref(),
            &cluster_owner,
            "certificate-authority",
        )?
        .map(|ca| pem_certificate(ca, &cluster_owner, "certificate-authority"))
        .transpose()?;

    let auth = import_auth(&user, &user_name, &files).map_err(|e| match e {
        ImportError::CloudExecRecognised {
            user,
            plugin,
            auth_type,
            auth_yaml,
            ..
        } => ImportError::CloudExecRecognised {
            user,
            plugin,
            auth_type,
            server: server.clone(),
            auth_yaml,
        },
        other => other,
    })?;
    Ok(ImportedCluster {
        server,
        ca_pem,
        auth,
        context: context_name.to_string(),
        cluster_name,
        user_name,
    })
}

fn import_auth(user: &AuthInfo, name: &str, files: &Files) -> Result<ImportedAuth, ImportError> {
    if let Some(exec) = &user.exec {
        let command = exec.command.clone().unwrap_or_default();
        let args = exec.args.clone().unwrap_or_default();
        if let Some(s) = super::cloud_exec::recognise(&command, &args) {
            return Err(ImportError::CloudExecRecognised {
                user: name.to_string(),
                plugin: s.plugin,
                auth_type: s.auth_type,
                server: String::new(),
                auth_yaml: s.auth_yaml(),
            });
        }
        return Err(ImportError::ExecRefused {
            user: name.to_string(),
            command: std::iter::once(command)
                .chain(args)
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    if let Some(provider) = &user.auth_provider {
        return Err(ImportError::AuthProviderRefused {
            user: name.to_string(),
            provider: provider.name.clone(),
        });
    }
    if user.impersonate.is_some()
        || user.impersonate_uid.is_some()
        || user
            .impersonate_groups
            .as_ref()
            .is_some_and(|g| !g.is_empty())
    {
        return Err(ImportError::ImpersonationRefused {
            user: name.to_string(),
        });
    }

    let has_token = user.token.is_some() || user.token_file.is_some();
    let has_cert = user.client_certificate.is_some() || user.client_certificate_data.is_some();
    let has_key = user.client_key.is_some() || user.client_key_data.is_some();
    let has_basic = user.username.is_some() || user.password.is_some();
    let found: Vec<&'static str> = [
        (has_token, "a token"),
        (has_cert || has_key, "a client certificate"),
        (has_basic, "a username and password"),
    ]
    .into_iter()
    .filter_map(|(present, what)| present.then_some(what))
    .collect();
    if found.len() > 1 {
        return Err(ImportError::AmbiguousCredentials {
            user: name.to_string(),
            found,
        });
    }
    let owner = format!("user '{name}'");

    if has_token {
        // `token` wins over `tokenFile`, as in kubectl.
        let token = match &user.token {
            Some(t) => t.expose_secret().to_string(),
            None => files.read(
                user.token_file.as_deref().unwrap_or_default(),
                &owner,
                "tokenFile",
            )?,
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(ImportError::NoCredentials {
                user: name.to_string(),
            });
        }
        return Ok(ImportedAuth::Token(SecretString::from(token.to_string())));
    }

    if has_cert || has_key {
        let key_data = user.client_key_data.as_ref().map(|k| k.expose_secret());
        let cert = files.data_or_file(
            user.client_certificate_data.as_deref(),
            user.client_certificate.as_deref(),
            &owner,
            "client-certificate",
        )?;
        let key = files.data_or_file(key_data, user.client_key.as_deref(), &owner, "client-key")?;
        let (cert, key) = match (cert, key) {
            (Some(c), Some(k)) => (c, k),
            (Some(_), None) => {
                return Err(ImportError::Incomplete {
                    user: name.to_string(),
                    present: "a client certificate",
                    missing: "client key",
                })
            }
            (None, _) => {
                return Err(ImportError::Incomplete {
                    user: name.to_string(),
                    present: "a client key",
                    missing: "client certificate",
                })
            }
        };
        let cert_pem = pem_certificate(cert, &owner, "client-certificate")?;
        let key_pem = pem_text(key, &owner, "client-key")?;
        if PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).is_err() {
            return Err(ImportError::NotPem {
                owner,
                field: "client-key",
                expected: "private key",
            });
        }
        return Ok(ImportedAuth::ClientCert {
            cert_pem,
            key_pem: SecretString::from(key_pem),
        });
    }

    if has_basic {
        return match (&user.username, &user.password) {
            (Some(username), Some(password)) => Ok(ImportedAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            (Some(_), None) => Err(ImportError::Incomplete {
                user: name.to_string(),
                present: "a username",
                missing: "password",
            }),
            _ => Err(ImportError::Incomplete {
                user: name.to_string(),
                present: "a password",
                missing: "username",
            }),
        };
    }
    Err(ImportError::NoCredentials {
        user: name.to_string(),
    })
}

/// Which file paths may be read, and reading them.
struct Files {
    access: FileAccess,
}

impl Files {
    /// The decoded `*-data` field when present, else the named file's content.
    fn data_or_file(
        &self,
        data: Option<&str>,
        path: Option<&str>,
        owner: &str,
        field: &'static str,
    ) -> Result<Option<Vec<u8>>, ImportError> {
        if let Some(data) = data.filter(|d| !d.trim().is_empty()) {
            return decode_data(data, owner, field).map(Some);
        }
        match path.filter(|p| !p.is_empty()) {
            Some(path) => self.read(path, owner, field).map(|s| Some(s.into_bytes())),
            None => Ok(None),
        }
    }

    fn read(&self, path: &str, owner: &str, field: &'static str) -> Result<String, ImportError> {
        if !self.access.paths {
            return Err(ImportError::FilePathRefused {
                owner: owner.to_string(),
                field,
                path: path.to_string(),
            });
        }
        if field == "tokenFile" && !self.access.token_file {
            return Err(ImportError::TokenFileRefused {
                owner: owner.to_string(),
                path: path.to_string(),
            });
        }
        let failed = |source: std::io::Error| ImportError::ReadFile {
            owner: owner.to_string(),
            field,
            path: path.to_string(),
            source,
        };
        let text = read_bounded(Path::new(path)).map_err(failed)?;
        // A token is one line of printable text: what is not (a password
        // database, a process environment, a key file of several lines) was
        // not meant as one, and its content never goes further.
        if field == "tokenFile" {
            let t = text.trim();
            if t.lines().count() > 1 || t.chars().any(|c| c.is_control()) {
                return Err(failed(std::io::Error::other(
                    "the file is not a token (one line of printable text); point tokenFile at the file that holds only the token",
                )));
            }
        }
        Ok(text)
    }
}

/// The most a credential file may hold: certificates chains and keys are a
/// few KiB, tokens less.
const MAX_CREDENTIAL_FILE: u64 = 256 * 1024;

/// A regular file's text, at most [`MAX_CREDENTIAL_FILE`] bytes: devices,
/// FIFOs and `/proc` entries (whose size says nothing) are refused before
/// anything is read, so `/dev/zero` cannot exhaust memory.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || path.starts_with("/proc") || path.starts_with("/sys") {
        return Err(std::io::Error::other(
            "not a regular file; credentials are read only from regular files",
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CREDENTIAL_FILE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CREDENTIAL_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {} KiB, which no certificate, key or token is",
            MAX_CREDENTIAL_FILE / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// `*-data` fields are base64 of the PEM; raw PEM is accepted too.
fn decode_data(data: &str, owner: &str, field: &'static str) -> Result<Vec<u8>, ImportError> {
    let trimmed = data.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(format!("{trimmed}\n").into_bytes());
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| ImportError::BadBase64 {
            owner: owner.to_string(),
            field: data_field(field),
        })
}

fn data_field(field: &'static str) -> &'static str {
    match field {
        "certificate-authority" => "certificate-authority-data",
        "client-certificate" => "client-certificate-data",
        "client-key" => "client-key-data",
        other => other,
    }
}

fn pem_text(bytes: Vec<u8>, owner: &str, field: &'static str) -> Result<String, ImportError> {
    String::from_utf8(bytes).map_err(|_| ImportError::NotPem {
        owner: owner.to_string(),
        field,
        expected: if field == "client-key" {
            "private key"
        } else {
            "certificate"
        },
    })
}

fn pem_certificate(
    bytes: Vec<u8>,
    owner: &str,
    field: &'static str,
) -> Result<String, ImportError> {
    let text = pem_text(bytes, owner, field)?;
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .filter(Result::is_ok)
        .count();
    if certs == 0 {
        return Err(ImportError::NotPem {
            owner: owner.to_string(),
            field,
            expected: "certificate",
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
