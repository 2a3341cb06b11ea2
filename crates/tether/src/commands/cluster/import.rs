//! `tether connector import-kubeconfig`: one kubeconfig context as tether secrets
//! (token, client certificate and key, or password; the CA) and a connector.
//!
//! Only static credentials are imported. A context whose user runs an `exec`
//! plugin or an `auth-provider` is refused with the library's explanation (its
//! credentials expire and are refreshed by a program tether never runs); `tether
//! cluster add` is the way for those clusters. Files the kubeconfig names are
//! read, because this runs on the operator's own machine, once, at import time;
//! a `tokenFile` only with `--allow-token-file`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use secrecy::ExposeSecret;
use tether_domain::connector::{
    ClientKeyCertAuth, ConnectorType, ServiceAccountAuth, UsernamePasswordAuth,
};
use tether_domain::{Auth, Connector, Credential, K8sClusterSpec, ManualConfig};
use tether_kube::onboarding::{import_kubeconfig_file, FileAccess, ImportedAuth};

use super::super::client::{ApiClient, ScopeArgs};
use super::manager::{Manager, Upsert};
use super::{connector_identifier, secret_identifier, TAG_CLUSTER_ADD, TAG_IMPORTED};

const CREATED_BY: &str = "import-kubeconfig";

/// The secrets an import may store, by suffix: `<connector>_<suffix>`.
const SECRET_SUFFIXES: &[&str] = &["token", "client_cert", "client_key", "password", "ca"];

#[derive(Debug, Args)]
pub struct ImportKubeconfigArgs {
    /// The kubeconfig file.
    pub path: PathBuf,
    /// The context to import (default: the current-context).
    #[arg(long)]
    pub context: Option<String>,
    /// Display name of the connector.
    #[arg(long)]
    pub name: String,
    /// Connector identifier (default: derived from the name). The secrets are
    /// `<identifier>_token`, `_client_cert`, `_client_key`, `_password`, `_ca`.
    #[arg(long)]
    pub identifier: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Delegates that may use the connector (comma-separated tags; default: any).
    #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
    pub delegate_selectors: Vec<String>,
    /// Read the user's `tokenFile` (its token is stored and sent to the
    /// kubeconfig's server); without it a tokenFile is refused, naming the file.
    #[arg(long)]
    pub allow_token_file: bool,
}

pub async fn import_kubeconfig(args: ImportKubeconfigArgs) -> Result<()> {
    let id = connector_identifier(&args.name, args.identifier.as_deref())?;
    let secret = |what: &str| secret_identifier(&id, what);
    // Operator's machine, import time: files named in the kubeconfig may be
    // read; a tokenFile only when the operator said so.
    let files = FileAccess {
        paths: true,
        token_file: args.allow_token_file,
    };
    let imported = import_kubeconfig_file(&args.path, args.context.as_deref(), files)
        .map_err(|e| anyhow!("cannot import {}: {e}", args.path.display()))?;
    let manager = Manager::new(ApiClient::from_env()?, args.scope.scope()?);

    let existing = manager.connector(&id).await?;
    if let Some(c) = &existing {
        if c.tags.contains_key(TAG_CLUSTER_ADD) || !c.tags.contains_key(TAG_IMPORTED) {
            bail!(
                "connector '{id}' already exists in {} and was not imported from a kubeconfig, so it \
                 is left alone: choose another --name or --identifier",
                manager.scope()
            );
        }
    }

    // (secret identifier, what it holds, value)
    let mut values: Vec<(String, &str, String)> = Vec::new();
    let (auth_kind, auth) = match &imported.auth {
        ImportedAuth::Token(t) => {
            let token_id = secret("token")?;
            values.push((token_id.clone(), "token", t.expose_secret().to_string()));
            (
                "token",
                Auth::ServiceAccount(ServiceAccountAuth {
                    service_account_token_ref: token_id,
                    ca_cert_ref: None,
                }),
            )
        }
        ImportedAuth::ClientCert { cert_pem, key_pem } => {
            let (cert_id, key_id) = (secret("client_cert")?, secret("client_key")?);
            values.push((cert_id.clone(), "client certificate", cert_pem.clone()));
            values.push((
                key_id.clone(),
                "client key",
                key_pem.expose_secret().to_string(),
            ));
            (
                "client certificate",
                Auth::ClientKeyCert(ClientKeyCertAuth {
                    client_cert_ref: cert_id,
                    client_key_ref: key_id,
                    ca_cert_ref: None,
                    client_key_passphrase_ref: None,
                    client_key_algo: None,
                }),
            )
        }
        ImportedAuth::Basic { username, password } => {
            let password_id = secret("password")?;
            values.push((
                password_id.clone(),
                "password",
                password.expose_secret().to_string(),
            ));
            (
                "username and password",
                Auth::UsernamePassword(UsernamePasswordAuth {
                    username: Some(username.clone()),
                    username_ref: None,
                    password_ref: password_id,
                    ca_cert_ref: None,
                }),
            )
        }
    };
    let ca_id = match &imported.ca_pem {
        Some(pem) => {
            let ca_id = secret("ca")?;
            values.push((ca_id.clone(), "CA", pem.clone()));
            Some(ca_id)
        }
        None => None,
    };
    let auth = with_ca(auth, ca_id);

    let mut stored = Vec::new();
    for (secret_id, what, value) in &values {
        let description = format!(
            "{what} of context '{}' (user '{}') for connector {id}, imported from a kubeconfig",
            imported.context, imported.user_name
        );
        let up = manager
            .upsert_secret(secret_id, &id, CREATED_BY, &description, value)
            .await?;
        stored.push(format!("{secret_id} {}", up.as_str()));
    }

    let mut tags: BTreeMap<String, String> = existing
        .as_ref()
        .map(|c| c.tags.clone())
        .unwrap_or_default();
    tags.insert(TAG_IMPORTED.into(), imported.context.clone());
    let scope = manager.scope();
    let connector = Connector {
        name: args.name.clone(),
        identifier: Some(id.clone()),
        description: existing
            .as_ref()
            .and_then(|c| c.description.clone())
            .or_else(|| {
                Some(format!(
                    "Imported from kubeconfig context '{}' (user '{}')",
                    imported.context, imported.user_name
                ))
            }),
        org_identifier: scope.org().map(str::to_string),
        project_identifier: scope.project().map(str::to_string),
        tags,
        connector_type: ConnectorType::K8sCluster,
        spec: K8sClusterSpec {
            proxy: None,
            delegate_selectors: args
                .delegate_selectors
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            credential: Credential::ManualConfig(ManualConfig {
                master_url: imported.server.clone(),
                auth,
            }),
            connection_test: existing
                .as_ref()
                .and_then(|c| c.spec.connection_test.clone()),
        },
    };
    let up = manager.put_connector(&connector).await?;

    // A re-import with another kind of credential leaves secrets no longer used.
    let mut retired = Vec::new();
    for suffix in SECRET_SUFFIXES {
        let secret_id = secret(suffix)?;
        if values.iter().any(|(s, _, _)| *s == secret_id) {
            continue;
        }
        if manager.delete_secret_of(&secret_id, &id).await? {
            retired.push(secret_id);
        }
    }

    println!(
        "imported context '{}' (cluster '{}', user '{}', {auth_kind}) of {}",
        imported.context,
        imported.cluster_name,
        imported.user_name,
        args.path.display()
    );
    for s in &stored {
        println!("secret/{s}");
    }
    for s in &retired {
        println!("secret/{s} deleted (no longer used)");
    }
    println!(
        "connector/{id} {}",
        match up {
            Upsert::Created => "created",
            Upsert::Updated => "updated",
        }
    );
    Ok(())
}

fn with_ca(auth: Auth, ca: Option<String>) -> Auth {
    match auth {
        Auth::ServiceAccount(a) => Auth::ServiceAccount(ServiceAccountAuth {
            ca_cert_ref: ca,
            ..a
        }),
        Auth::ClientKeyCert(a) => Auth::ClientKeyCert(ClientKeyCertAuth {
            ca_cert_ref: ca,
            ..a
        }),
        Auth::UsernamePassword(a) => Auth::UsernamePassword(UsernamePasswordAuth {
            ca_cert_ref: ca,
            ..a
        }),
        other => other,
    }
}
