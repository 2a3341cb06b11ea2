//! What `cluster` and `import-kubeconfig` ask of the manager: connectors and
//! secrets of one scope, created or updated in place, and the connection test.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tether_domain::{Connector, Scope};

use super::super::client::{api_error, scope_path, ApiClient, ApiErrorBody, Body};
use super::{SECRET_TAG_CONNECTOR, SECRET_TAG_CREATED_BY};

/// Whether a create-or-update created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
}

impl Upsert {
    pub fn as_str(self) -> &'static str {
        match self {
            Upsert::Created => "created",
            Upsert::Updated => "updated",
        }
    }
}

/// The manager, at one scope.
pub struct Manager {
    api: ApiClient,
    scope: Scope,
    base: String,
}

impl Manager {
    pub fn new(api: ApiClient, scope: Scope) -> Self {
        let base = scope_path(&scope);
        Manager { api, scope, base }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// `--org O --project P` for messages that suggest a command, or "".
    pub fn scope_flags(&self) -> String {
        match &self.scope {
            Scope::Account => String::new(),
            Scope::Org(o) => format!(" --org {o}"),
            Scope::Project { org, project } => format!(" --org {org} --project {project}"),
        }
    }

    /// Fails, saying why, unless the scope exists and may be read with this token.
    pub async fn check_scope(&self) -> Result<()> {
        let path = format!("{}/connectors", self.base);
        self.api
            .send(Method::GET, &path, None, &[("limit", "1".to_string())])
            .await
            .with_context(|| format!("cannot use {}", self.scope))?;
        Ok(())
    }

    /// GET that answers `None` for a 404.
    async fn get_opt(&self, path: &str) -> Result<Option<Value>> {
        let (status, bytes) = self.api.send_any(Method::GET, path, None, &[]).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(api_error(&Method::GET, path, status, &bytes));
        }
        Ok(Some(
            serde_json::from_slice(&bytes).context("the manager answered with unexpected JSON")?,
        ))
    }

    /// DELETE that answers `false` for a 404.
    async fn delete(&self, path: &str) -> Result<bool> {
        let (status, bytes) = self.api.send_any(Method::DELETE, path, None, &[]).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !status.is_success() {
            return Err(api_error(&Method::DELETE, path, status, &bytes));
        }
        Ok(true)
    }

    /// The connector with this identifier, if there is one.
    pub async fn connector(&self, identifier: &str) -> Result<Option<Connector>> {
        let path = format!("{}/connectors/{identifier}", self.base);
        match self.get_opt(&path).await? {
            None => Ok(None),
            Some(r) => Ok(Some(
                serde_json::from_value(r["connector"].clone())
                    .context("the manager answered with an unexpected connector document")?,
            )),
        }
    }

    /// The connector named `name_or_id`: by identifier, else by exact name.
    pub async fn find_connector(&self, name_or_id: &str) -> Result<Option<Connector>> {
        if tether_domain::validate_identifier(name_or_id).is_ok() {
            if let Some(c) = self.connector(name_or_id).await? {
                return Ok(Some(c));
            }
        }
        let path = format!("{}/connectors", self.base);
        let query = [
            ("search", name_or_id.to_string()),
            ("limit", "1000".to_string()),
        ];
        let page: Value = self.api.json(Method::GET, &path, None, &query).await?;
        let mut found: Vec<Connector> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["connector"]["name"].as_str() == Some(name_or_id))
            .map(|r| serde_json::from_value(r["connector"].clone()))
            .collect::<Result<_, _>>()
            .context("the manager answered with an unexpected connector document")?;
        match found.len() {
            0 | 1 => Ok(found.pop()),
            _ => {
                let ids: Vec<&str> = found
                    .iter()
                    .filter_map(|c| c.identifier.as_deref())
                    .collect();
                bail!(
                    "{} connectors in {} are named '{name_or_id}' ({}): name one by its identifier",
                    found.len(),
                    self.scope,
                    ids.join(", ")
                )
            }
        }
    }

    /// PUT: creates or replaces the connector.
    pub async fn put_connector(&self, connector: &Connector) -> Result<Upsert> {
        let id = connector
            .identifier
            .as_deref()
            .ok_or_else(|| anyhow!("a connector to store needs an identifier"))?;
        let path = format!("{}/connectors/{id}", self.base);
        let body = json!({ "connector": connector });
        let (status, _) = self
            .api
            .send(Method::PUT, &path, Some(Body::Json(body)), &[])
            .await?;
        Ok(if status == StatusCode::CREATED {
            Upsert::Created
        } else {
            Upsert::Updated
        })
    }

    pub async fn delete_connector(&self, identifier: &str) -> Result<bool> {
        self.delete(&format!("{}/connectors/{identifier}", self.base))
            .await
    }

    /// The tags of a secret, if it exists.
    pub async fn secret_tags(&self, identifier: &str) -> Result<Option<BTreeMap<String, String>>> {
        let path = format!("{}/secrets/{identifier}", self.base);
        Ok(self.get_opt(&path).await?.map(|s| {
            s["tags"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        }))
    }

    /// Creates the secret `identifier` for `connector`, or updates its value when
    /// it exists and belongs to that connector. A secret of the same identifier
    /// that belongs to something else is never overwritten.
    pub async fn upsert_secret(
        &self,
        identifier: &str,
        connector: &str,
        created_by: &str,
        description: &str,
        value: &str,
    ) -> Result<Upsert> {
        let tags: BTreeMap<&str, &str> = [
            (SECRET_TAG_CONNECTOR, connector),
            (SECRET_TAG_CREATED_BY, created_by),
        ]
        .into();
        let mut body = json!({
            "identifier": identifier,
            "name": identifier,
            "description": description,
            "tags": tags,
            "value": value,
        });
        match self.secret_tags(identifier).await? {
            None => {
                let path = format!("{}/secrets", self.base);
                self.api
                    .send(Method::POST, &path, Some(Body::Json(body)), &[])
                    .await?;
                Ok(Upsert::Created)
            }
            Some(existing) => {
                if existing.get(SECRET_TAG_CONNECTOR).map(String::as_str) != Some(connector) {
                    bail!(
                        "secret '{identifier}' already exists in {} and was not stored for connector \
                         '{connector}' (its tag {SECRET_TAG_CONNECTOR} says {}); tether does not \
                         overwrite it: choose another --identifier, or delete that secret if it is \
                         no longer used",
                        self.scope,
                        existing
                            .get(SECRET_TAG_CONNECTOR)
                            .map(|c| format!("'{c}'"))
                            .unwrap_or_else(|| "nothing".into())
                    );
                }
                let path = format!("{}/secrets/{identifier}", self.base);
                // Keep tags others added; ours win.
                let mut merged = existing;
                merged.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                body["tags"] = json!(merged);
                self.api
                    .send(Method::PUT, &path, Some(Body::Json(body)), &[])
                    .await?;
                Ok(Upsert::Updated)
            }
        }
    }

    /// Deletes the secret when it was stored for `connector`; `Ok(false)` when it
    /// does not exist or belongs to something else.
    pub async fn delete_secret_of(&self, identifier: &str, connector: &str) -> Result<bool> {
        match self.secret_tags(identifier).await? {
            Some(tags) if tags.get(SECRET_TAG_CONNECTOR).map(String::as_str) == Some(connector) => {
                self.delete(&format!("{}/secrets/{identifier}", self.base))
                    .await
            }
            _ => Ok(false),
        }
    }

    /// `POST …/connectors/{id}/test`: the report, or `None` when this manager has
    /// no such endpoint (an older manager).
    pub async fn test_connector(&self, identifier: &str) -> Result<Option<Value>> {
        let path = format!("{}/connectors/{identifier}/test", self.base);
        let (status, bytes) = self.api.send_any(Method::POST, &path, None, &[]).await?;
        if status == StatusCode::NOT_FOUND {
            if let Ok(e) = serde_json::from_slice::<ApiErrorBody>(&bytes) {
                if e.code == "NOT_FOUND" && e.message.starts_with("no such endpoint") {
                    return Ok(None);
                }
            }
        }
        if !status.is_success() {
            return Err(api_error(&Method::POST, &path, status, &bytes));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .context("the manager answered the connection test with unexpected JSON")?;
        // The report itself, or wrapped in an envelope.
        Ok(Some(match value.get("report") {
            Some(r) if value.get("status").is_none_or(|s| !s.is_string()) => r.clone(),
            _ => value,
        }))
    }
}
