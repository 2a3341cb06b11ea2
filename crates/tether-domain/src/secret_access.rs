//! Using a secret is a permission of its own: who may use it (its use grants)
//! and where its value may be sent (its host binding).
//!
//! - A connector may reference a secret of its own scope or above (see
//!   [`crate::secret_ref`]); *using* one from another scope also needs a grant:
//!   the secret's `usableFrom` names scopes (`org/o1` covers the org and its
//!   projects, `project/o1/p` one project, `account` everything). Without
//!   grants only connectors of the secret's own scope use it.
//! - A delegate receives the value only when it is registered at the secret's
//!   scope or above, or in a scope a grant covers: whoever administers that
//!   scope could register a hand-written delegate, so a grant is trust in that
//!   scope's admins with the value.
//! - `allowedHosts` binds the secret to hosts: a connector using it must dial
//!   only those (`masterUrl`, and `oidcIssuerUrl` for OpenIdConnect, whose ID
//!   token then goes to the API server), so an editor cannot point it at a
//!   listener of their own.
//!
//! Pure: the store and the broker call the same checks.

use crate::connector::{Auth, Connector, Credential};
use crate::scope::Scope;
use crate::validation::ValidationErrors;

/// At most this many grants and hosts per secret.
pub const MAX_GRANTS: usize = 100;
pub const MAX_HOSTS: usize = 100;

/// A secret's scope with its use grants and host binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAccess {
    /// Where the secret lives.
    pub scope: Scope,
    /// Scopes whose connectors may use it, besides its own.
    pub usable_from: Vec<Scope>,
    /// Hosts its value may be sent to; empty means any.
    pub allowed_hosts: Vec<String>,
}

impl SecretAccess {
    /// True when connectors of `scope` may use the secret.
    pub fn usable_by(&self, scope: &Scope) -> bool {
        &self.scope == scope || self.usable_from.iter().any(|g| g.covers(scope))
    }

    /// True when a delegate registered at `scope` may receive the value.
    pub fn deliverable_to(&self, scope: &Scope) -> bool {
        scope.covers(&self.scope) || self.usable_from.iter().any(|g| g.covers(scope))
    }

    /// True when the value may be sent to `url` (always, without a binding).
    pub fn host_allowed(&self, url: &str) -> bool {
        if self.allowed_hosts.is_empty() {
            return true;
        }
        let Some(target) = Target::of(url) else {
            return false;
        };
        self.allowed_hosts
            .iter()
            .filter_map(|h| HostPattern::parse(h).ok())
            .any(|p| p.matches(&target))
    }

    /// `org/o1, project/o1/p` or `its own scope only`, for messages.
    pub fn grants_phrase(&self) -> String {
        if self.usable_from.is_empty() {
            format!("connectors of its own scope ({}) only", self.scope)
        } else {
            let keys: Vec<String> = self.usable_from.iter().map(Scope::key).collect();
            format!("connectors of {} and of {}", self.scope, keys.join(", "))
        }
    }

    /// The CLI command that adds `grant` to the secret's grants (the flag
    /// replaces the list, so the command repeats the existing ones).
    pub fn grant_command(&self, identifier: &str, grant: &Scope) -> String {
        let mut cmd = format!(
            "tether secret update {identifier}{}",
            scope_flags(&self.scope)
        );
        for g in self.usable_from.iter().chain(std::iter::once(grant)) {
            cmd.push_str(&format!(" --usable-from {}", g.key()));
        }
        cmd
    }
}

/// ` --org o --project p` for a scope, as the CLI takes it.
pub fn scope_flags(scope: &Scope) -> String {
    match scope {
        Scope::Account => String::new(),
        Scope::Org(o) => format!(" --org {o}"),
        Scope::Project { org, project } => format!(" --org {org} --project {project}"),
    }
}

/// A use grant as the API and the CLI write it: a scope key (`account`,
/// `org/<o>`, `project/<o>/<p>`). It must lie within the secret's scope: a
/// secret cannot be offered to scopes that could not reference it.
pub fn parse_grant(secret_scope: &Scope, raw: &str) -> Result<Scope, String> {
    let g = Scope::from_key(raw.trim()).ok_or_else(|| {
        format!("'{raw}' is not a scope: write 'account', 'org/<org>' or 'project/<org>/<project>'")
    })?;
    if !secret_scope.covers(&g) {
        return Err(format!(
            "a secret of {secret_scope} can only be referenced from {secret_scope} and below, so it cannot be granted to {g}"
        ));
    }
    Ok(g)
}

/// Checks a list of grants, each error on `usableFrom[i]`.
pub fn parse_grants(
    secret_scope: &Scope,
    raw: &[String],
    errs: &mut ValidationErrors,
) -> Vec<Scope> {
    if raw.len() > MAX_GRANTS {
        errs.push(
            "usableFrom",
            format!("at most {MAX_GRANTS} grants; grant an org instead of its projects one by one"),
        );
    }
    let mut out: Vec<Scope> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match parse_grant(secret_scope, r) {
            Ok(g) if !out.contains(&g) => out.push(g),
            Ok(_) => {}
            Err(e) => errs.push(format!("usableFrom[{i}]"), e),
        }
    }
    out.sort();
    out
}

/// Checks a list of allowed hosts, each error on `allowedHosts[i]`; returns
/// them normalised (lowercase, no scheme).
pub fn parse_hosts(raw: &[String], errs: &mut ValidationErrors) -> Vec<String> {
    if raw.len() > MAX_HOSTS {
        errs.push("allowedHosts", format!("at most {MAX_HOSTS} hosts"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match HostPattern::parse(r) {
            Ok(p) => {
                let s = p.to_string();
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Err(e) => errs.push(format!("allowedHosts[{i}]"), e),
        }
    }
    out
}

/// A URL the connector dials, with its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialled<'a> {
    pub field: &'static str,
    pub url: &'a str,
}

/// Every URL the connector's credentials are sent to.
pub fn dialled_urls(connector: &Connector) -> Vec<Dialled<'_>> {
    let Credential::ManualConfig(m) = &connector.spec.credential else {
        return Vec::new();
    };
    let mut out = vec![Dialled {
        field: "spec.credential.spec.masterUrl",
        url: &m.master_url,
    }];
    match &m.auth {
        Auth::OpenIdConnect(o) => out.push(Dialled {
            field: "spec.credential.spec.auth.spec.oidcIssuerUrl",
            url: &o.oidc_issuer_url,
        }),
        // The client id and secret are posted to the authority in clear.
        // (EKS keys never leave the delegate: SigV4 signs the host it is for,
        // and the token goes to masterUrl. A GKE key signs an assertion for
        // the key's own token_uri.)
        Auth::Aks(a) => out.push(Dialled {
            field: "spec.credential.spec.auth.spec.authorityHost",
            url: a.authority(),
        }),
        _ => {}
    }
    out
}

/// Why a connector may not use a secret it references; `field` is the document
/// path at fault (the reference, or the URL a host-bound secret may not go to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseDenied {
    pub field: String,
    pub message: String,
}

/// Checks that a connector at `connector_scope` may use the secret behind
/// `reference` (at field `ref_field`) and send it to every URL it dials.
/// `identifier` is the secret's own identifier, for the fix command.
pub fn check_use(
    connector_scope: &Scope,
    connector: &Connector,
    ref_field: &str,
    reference: &str,
    identifier: &str,
    access: &SecretAccess,
) -> Vec<UseDenied> {
    let mut out = Vec::new();
    if !access.usable_by(connector_scope) {
        out.push(UseDenied {
            field: ref_field.to_string(),
            message: format!(
                "secret '{reference}' of {} may be used by {}, not by connectors of {connector_scope}; an editor of {} can grant it: `{}` (usableFrom in the API)",
                access.scope,
                access.grants_phrase(),
                access.scope,
                access.grant_command(identifier, connector_scope),
            ),
        });
    }
    for d in dialled_urls(connector) {
        if !access.host_allowed(d.url) {
            out.push(UseDenied {
                field: d.field.to_string(),
                message: format!(
                    "secret '{reference}' ({ref_field}) may only be sent to {}, and {} is not one of them; point {} at an allowed host, or have an editor of {} add the host: `tether secret update {identifier}{} --allowed-host HOST` (allowedHosts in the API)",
                    access.allowed_hosts.join(", "),
                    Target::of(d.url).map(|t| t.to_string()).unwrap_or_else(|| format!("'{}'", d.url)),
                    d.field.rsplit('.').next().unwrap_or(d.field),
                    access.scope,
                    scope_flags(&access.scope),
                ),
            });
        }
    }
    out
}

/// The host and port a URL dials.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: Option<u16>,
}

impl Target {
    fn of(url: &str) -> Option<Target> {
        let u = url::Url::parse(url.trim()).ok()?;
        let host = u.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        Some(Target {
            host,
            port: u.port_or_known_default(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// An `allowedHosts` entry: `host`, `host:port`, `*.domain[:port]`, or a URL
/// `https://host[:port]` (only its host and port count). Without a port, any
/// port of the host matches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    /// Lowercase; IPv6 in brackets; `*.` prefix for a wildcard.
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    fn parse(raw: &str) -> Result<HostPattern, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("an allowed host must not be blank".into());
        }
        if s.len() > 300 {
            return Err("an allowed host is at most 300 characters".into());
        }
        let bad = |why: &str| {
            format!("'{raw}' is not an allowed host ({why}); write a host name or IP, optionally with :port, e.g. 10.0.0.1:6443, api.example.com or *.example.com")
        };
        let (wildcard, rest) = match s.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let as_url = if rest.contains("://") {
            rest.to_string()
        } else {
            format!("https://{rest}")
        };
        let u = url::Url::parse(&as_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(bad("only https:// or http:// URLs"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(bad("it must not carry a user or password"));
        }
        if u.path() != "/" && !u.path().is_empty() || u.query().is_some() || u.fragment().is_some()
        {
            return Err(bad("a host has no path, query or fragment"));
        }
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if host.contains('*') {
            return Err(bad(
                "'*' may only stand for the leading labels, as in *.example.com",
            ));
        }
        let explicit_port = u.port();
        let port = if rest.contains("://") {
            u.port_or_known_default()
        } else {
            explicit_port
        };
        Ok(HostPattern {
            host: if wildcard { format!("*.{host}") } else { host },
            port,
        })
    }

    fn matches(&self, t: &Target) -> bool {
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => t.host.ends_with(&format!(".{domain}")),
            None => self.host == t.host,
        };
        host_ok && self.port.is_none_or(|p| Some(p) == t.port)
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(o: &str, p: &str) -> Scope {
        Scope::Project {
            org: o.into(),
            project: p.into(),
        }
    }

    fn access(scope: Scope, grants: &[Scope], hosts: &[&str]) -> SecretAccess {
        SecretAccess {
            scope,
            usable_from: grants.to_vec(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn without_grants_only_the_own_scope_uses_it() {
        let a = access(Scope::Account, &[], &[]);
        assert!(a.usable_by(&Scope::Account));
        assert!(!a.usable_by(&Scope::Org("o".into())));
        assert!(!a.usable_by(&project("o", "p")));
        // Delegates above or at its scope receive it; below do not.
        assert!(a.deliverable_to(&Scope::Account));
        assert!(!a.deliverable_to(&project("o", "p")));
        let o = access(Scope::Org("o".into()), &[], &[]);
        assert!(o.deliverable_to(&Scope::Account));
        assert!(o.deliverable_to(&Scope::Org("o".into())));
        assert!(!o.deliverable_to(&project("o", "p")));
    }

    #[test]
    fn a_grant_covers_its_scope_and_below() {
        let a = access(Scope::Account, &[Scope::Org("o".into())], &[]);
        assert!(a.usable_by(&Scope::Org("o".into())));
        assert!(a.usable_by(&project("o", "p")));
        assert!(!a.usable_by(&Scope::Org("other".into())));
        assert!(!a.usable_by(&project("other", "p")));
        assert!(a.deliverable_to(&project("o", "p")));
        assert!(!a.deliverable_to(&project("other", "p")));
        let one = access(Scope::Account, &[project("o", "p")], &[]);
        assert!(one.usable_by(&project("o", "p")));
        assert!(!one.usable_by(&project("o", "q")));
        assert!(!one.usable_by(&Scope::Org("o".into())));
    }

    #[test]
    fn grants_must_lie_within_the_secret_scope() {
        let org = Scope::Org("o".into());
        assert_eq!(parse_grant(&org, "project/o/p").unwrap(), project("o", "p"));
        assert!(parse_grant(&org, "project/x/p").is_err());
        assert!(parse_grant(&org, "account").is_err());
        assert!(parse_grant(&Scope::Account, "o1").is_err());
        let mut errs = ValidationErrors::default();
        let gs = parse_grants(
            &Scope::Account,
            &["org/o".into(), "org/o".into(), "nonsense".into()],
            &mut errs,
        );
        assert_eq!(gs, vec![Scope::Org("o".into())]);
        assert_eq!(errs.first().unwrap().field, "usableFrom[2]");
    }

    #[test]
    fn host_patterns() {
        let a = access(
            Scope::Account,
            &[],
            &[
                "10.0.0.1:6443",
                "API.example.com",
                "*.corp.example",
                "https://idp.example",
            ],
        );
        assert!(a.host_allowed("https://10.0.0.1:6443"));
        assert!(!a.host_allowed("https://10.0.0.1:6444"));
        assert!(a.host_allowed("https://api.example.com:1234/x"));
        assert!(a.host_allowed("https://a.b.corp.example"));
        assert!(!a.host_allowed("https://corp.example"));
        assert!(!a.host_allowed("https://evilcorp.example"));
        // A URL entry means its default port.
        assert!(a.host_allowed("https://idp.example/realms/x"));
        assert!(!a.host_allowed("https://idp.example:8443/realms/x"));
        assert!(!a.host_allowed("https://127.0.0.1:6443"));
        assert!(!a.host_allowed("not a url"));
        assert!(access(Scope::Account, &[], &[]).host_allowed("https://anything"));
        let v6 = access(Scope::Account, &[], &["[::1]:6443"]);
        assert!(v6.host_allowed("https://[::1]:6443"));
        let mut errs = ValidationErrors::default();
        let hs = parse_hosts(
            &[
                "Example.com".into(),
                "https://u:p@h".into(),
                "h/path".into(),
                "a*.b".into(),
                " ".into(),
            ],
            &mut errs,
        );
        assert_eq!(hs, vec!["example.com".to_string()]);
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "allowedHosts[1]",
                "allowedHosts[2]",
                "allowedHosts[3]",
                "allowedHosts[4]"
            ]
        );
    }

    #[test]
    fn denials_name_the_field_the_grant_and_the_fix() {
        let doc: crate::ConnectorDocument = serde_yaml::from_str(
            r#"
connector:
  name: c
  identifier: c
  orgIdentifier: o
  projectIdentifier: p
  type: K8sCluster
  spec:
    credential:
      type: ManualConfig
      spec:
        masterUrl: https://attacker.example:6443
        auth:
          type: OpenIdConnect
          spec:
            oidcIssuerUrl: https://idp.example
            oidcClientIdRef: account.cid
            oidcPasswordRef: account.pw
            oidcUsername: alice
"#,
        )
        .unwrap();
        let c = doc.connector;
        let a = access(Scope::Account, &[project("o", "q")], &["idp.example"]);
        let d = check_use(
            &project("o", "p"),
            &c,
            "spec.credential.spec.auth.spec.oidcPasswordRef",
            "account.pw",
            "pw",
            &a,
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].field, "spec.credential.spec.auth.spec.oidcPasswordRef");
        assert!(
            d[0].message.contains(
                "tether secret update pw --usable-from project/o/q --usable-from project/o/p"
            ),
            "{}",
            d[0].message
        );
        assert_eq!(d[1].field, "spec.credential.spec.masterUrl");
        assert!(
            d[1].message.contains("attacker.example:6443"),
            "{}",
            d[1].message
        );
        // Granted, and both URLs allowed: nothing to say.
        let ok = access(
            Scope::Account,
            &[Scope::Org("o".into())],
            &["idp.example", "attacker.example"],
        );
        assert!(check_use(&project("o", "p"), &c, "f", "account.pw", "pw", &ok).is_empty());
    }

    fn aks(authority: Option<&str>) -> Connector {
        let authority = authority
            .map(|a| format!("\n            authorityHost: {a}"))
            .unwrap_or_default();
        let doc: crate::ConnectorDocument = serde_yaml::from_str(&format!(
            r#"
connector:
  name: c
  identifier: c
  type: K8sCluster
  spec:
    credential:
      type: ManualConfig
      spec:
        masterUrl: https://prod-dns-1a2b.hcp.westeurope.azmk8s.io
        auth:
          type: AKS
          spec:
            tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47
            clientId: 0d6a3c3e-4a5b-4c6d-8e9f-a0b1c2d3e4f5
            clientSecretRef: sp{authority}
"#
        ))
        .unwrap();
        doc.connector
    }

    #[test]
    fn an_aks_client_secret_is_bound_to_the_authority_it_is_posted_to() {
        let field = "spec.credential.spec.auth.spec.clientSecretRef";
        let bound = access(
            Scope::Account,
            &[],
            &["*.hcp.westeurope.azmk8s.io", "login.microsoftonline.com"],
        );
        // Entra ID's own authority (the default, or named): allowed.
        assert!(check_use(&Scope::Account, &aks(None), field, "sp", "sp", &bound).is_empty());
        let named = aks(Some("https://login.microsoftonline.com"));
        assert!(check_use(&Scope::Account, &named, field, "sp", "sp", &bound).is_empty());
        // An editor's own listener as the authority would receive the secret.
        let evil = aks(Some("https://listener.attacker.example"));
        let d = check_use(&Scope::Account, &evil, field, "sp", "sp", &bound);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].field, "spec.credential.spec.auth.spec.authorityHost");
        assert!(
            d[0].message.contains("listener.attacker.example"),
            "{}",
            d[0].message
        );
        // Bound to the API server alone: the default authority is named too.
        let master_only = access(Scope::Account, &[], &["*.hcp.westeurope.azmk8s.io"]);
        let d = check_use(&Scope::Account, &aks(None), field, "sp", "sp", &master_only);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].message.contains("login.microsoftonline.com"),
            "{}",
            d[0].message
        );
    }
}
