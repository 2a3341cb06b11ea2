//! The pages. Each is a server-rendered skeleton (headings, forms with their
//! labels, empty tables); `assets/*.js` fills it from the REST API with the
//! session and posts the forms there.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use tether_domain::Scope;
use tether_store::StoreError;

use crate::assets;
use crate::login::{to_login, viewer, Viewer};
use crate::UiState;

/// Which page, for the navigation and the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connectors,
    Wizard,
    Connector,
    Delegates,
    Secrets,
    Orgs,
    Projects,
    Setup,
}

impl Kind {
    fn script_name(self) -> &'static str {
        match self {
            Kind::Connectors => "connectors",
            Kind::Wizard => "wizard",
            Kind::Connector => "connector",
            Kind::Delegates => "delegates",
            Kind::Secrets => "secrets",
            Kind::Orgs => "orgs",
            Kind::Projects => "projects",
            Kind::Setup => "setup",
        }
    }
}

/// The "Setup" page of a scope and its name: "Project Setup" in a project.
fn setup_words(scope: &Scope) -> &'static str {
    match scope {
        Scope::Account => "Account Setup",
        Scope::Org(_) => "Org Setup",
        Scope::Project { .. } => "Project Setup",
    }
}

/// Where the topbar's "Projects" item leads: the orgs of the account, the
/// projects of an org, the setup of a project.
fn projects_nav(scope: &Scope) -> (&'static str, String) {
    match scope {
        Scope::Account => ("Orgs & projects", "/orgs".into()),
        Scope::Org(o) => ("Projects", format!("/orgs/{o}/projects")),
        Scope::Project { org, project } => (
            "Project Setup",
            format!("/orgs/{org}/projects/{project}/setup"),
        ),
    }
}

/// `""`, `/orgs/o` or `/orgs/o/projects/p`: the same for pages and the API.
pub(crate) fn scope_prefix(scope: &Scope) -> String {
    match scope {
        Scope::Account => String::new(),
        Scope::Org(o) => format!("/orgs/{o}"),
        Scope::Project { org, project } => format!("/orgs/{org}/projects/{project}"),
    }
}

fn scope_words(scope: &Scope) -> String {
    match scope {
        Scope::Account => "the account".into(),
        Scope::Org(o) => format!("org {o}"),
        Scope::Project { org, project } => format!("project {project} (org {org})"),
    }
}

/// The HTML document around every page.
fn document(title: &str, body_attrs: BodyAttrs<'_>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light";
                @if let Some(csrf) = body_attrs.csrf {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " · tether" }
                link rel="icon" type="image/svg+xml" href=(assets::url("favicon.svg"));
                link rel="stylesheet" href=(assets::url("app.css"));
                @if body_attrs.page.is_some() {
                    @for s in assets::SCRIPTS {
                        script src=(assets::url(s)) defer {}
                    }
                }
            }
            body data-page=[body_attrs.page]
                data-api-base=[body_attrs.api_base.as_deref()]
                data-ui-base=[body_attrs.ui_base.as_deref()]
                data-org=[body_attrs.org]
                data-project=[body_attrs.project]
                data-identifier=[body_attrs.identifier]
                data-token-org=[body_attrs.token_org]
                data-token-project=[body_attrs.token_project]
                data-role=[body_attrs.role] {
                a .skip-link href="#main" { "Skip to content" }
                (content)
            }
        }
    }
}

#[derive(Default)]
struct BodyAttrs<'a> {
    page: Option<&'a str>,
    csrf: Option<&'a str>,
    api_base: Option<String>,
    ui_base: Option<String>,
    org: Option<&'a str>,
    project: Option<&'a str>,
    identifier: Option<&'a str>,
    token_org: Option<&'a str>,
    token_project: Option<&'a str>,
    role: Option<&'a str>,
}

/// A page without the application chrome (sign-in).
pub(crate) fn bare_page(title: &str, content: Markup) -> Markup {
    document(title, BodyAttrs::default(), content)
}

fn header(viewer: &Viewer, scope: &Scope, kind: Kind) -> Markup {
    let prefix = scope_prefix(scope);
    let (projects_label, projects_href) = projects_nav(scope);
    let nav = [
        (
            Kind::Projects,
            "nav-projects",
            projects_label,
            projects_href,
        ),
        (
            Kind::Connectors,
            "nav-connectors",
            "Connectors",
            format!("{prefix}/connectors"),
        ),
        (
            Kind::Delegates,
            "nav-delegates",
            "Delegates",
            format!("{prefix}/delegates"),
        ),
        (
            Kind::Secrets,
            "nav-secrets",
            "Secrets",
            format!("{prefix}/secrets"),
        ),
    ];
    let current = |k: Kind| match kind {
        Kind::Wizard | Kind::Connector => k == Kind::Connectors,
        Kind::Orgs | Kind::Setup => k == Kind::Projects,
        other => other == k,
    };
    html! {
        header .topbar {
            div .topbar-inner {
                a .brand href="/" { img .brand-mark src=(assets::url("favicon.svg")) alt="" width="22" height="22"; " tether" }
                form #scope-switcher .scope-switcher aria-label="Scope" {
                    div .switch {
                        label for="scope-org" { "Org" }
                        select #scope-org {
                            @match scope.org() {
                                Some(o) => option value=(o) selected { (o) },
                                None => option value="" selected { "Account (all orgs)" },
                            }
                        }
                    }
                    div .switch {
                        label for="scope-project" { "Project" }
                        select #scope-project {
                            @match scope.project() {
                                Some(p) => option value=(p) selected { (p) },
                                None => option value="" selected { "— none —" },
                            }
                        }
                    }
                }
                nav .mainnav aria-label="Main" {
                    ul {
                        @for (k, id, label, href) in &nav {
                            li {
                                a id=(id) href=(href) aria-current=[current(*k).then_some("page")] { (label) }
                            }
                        }
                    }
                }
                div .who {
                    span .who-name title=(format!("API token {} ({}), {}", viewer.token.id, viewer.token.role.as_str(), viewer.token.scope)) {
                        span .visually-hidden { "Signed in as " } strong { (viewer.token.name) }
                        span .muted { " · " (viewer.token.role.as_str()) }
                    }
                    form method="post" action="/logout" .inline {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        button #logout .linklike type="submit" { "Sign out" }
                    }
                }
            }
        }
    }
}

fn breadcrumbs(scope: &Scope, trail: &[(&str, Option<String>)]) -> Markup {
    let prefix = scope_prefix(scope);
    html! {
        nav .breadcrumbs aria-label="Breadcrumb" {
            ol {
                li { a href="/connectors" { "Account" } }
                @if let Some(o) = scope.org() {
                    li { a href=(format!("/orgs/{o}/connectors")) { "Org " (o) } }
                }
                @if let Some(p) = scope.project() {
                    li { a href=(format!("{prefix}/connectors")) { "Project " (p) } }
                }
                @for (label, href) in trail {
                    li {
                        @match href {
                            Some(h) => a href=(h) { (label) },
                            None => span aria-current="page" { (label) },
                        }
                    }
                }
            }
        }
    }
}

fn app_page(
    viewer: &Viewer,
    scope: &Scope,
    kind: Kind,
    identifier: Option<&str>,
    title: &str,
    main: Markup,
) -> Markup {
    let prefix = scope_prefix(scope);
    let attrs = BodyAttrs {
        page: Some(kind.script_name()),
        csrf: Some(&viewer.csrf),
        api_base: Some(format!("/api/v1{prefix}")),
        ui_base: Some(prefix),
        org: scope.org(),
        project: scope.project(),
        identifier,
        token_org: viewer.token.scope.org(),
        token_project: viewer.token.scope.project(),
        role: Some(viewer.token.role.as_str()),
    };
    document(
        title,
        attrs,
        html! {
            (header(viewer, scope, kind))
            main #main .container tabindex="-1" {
                (main)
            }
            div #toast .toast role="status" aria-live="polite" {}
        },
    )
}

/// A message page (not found, forbidden) inside the chrome.
fn message_page(
    viewer: &Viewer,
    status: StatusCode,
    title: &str,
    message: &str,
    link: (&str, String),
) -> Response {
    let scope = viewer.token.scope.clone();
    let body = html! {
        section .panel .message-page {
            h1 { (title) }
            p { (message) }
            p { a .button href=(link.1) { (link.0) } }
        }
    };
    (
        status,
        document(
            title,
            BodyAttrs {
                csrf: Some(&viewer.csrf),
                ..Default::default()
            },
            html! {
                (header(viewer, &scope, Kind::Connectors))
                main #main .container tabindex="-1" { (body) }
            },
        ),
    )
        .into_response()
}

/// Signed in, a scope the token reaches and that exists: the viewer and scope.
async fn prepare(
    state: &UiState,
    headers: &HeaderMap,
    uri: &OriginalUri,
    params: &HashMap<String, String>,
) -> Result<(Viewer, Scope), Response> {
    let Some(viewer) = viewer(state, headers).await else {
        let pq = uri
            .0
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        return Err(to_login(&pq));
    };
    let own = format!("{}/connectors", scope_prefix(&viewer.token.scope));
    let scope = match Scope::from_parts(
        params.get("org").map(String::as_str),
        params.get("project").map(String::as_str),
    ) {
        Ok(s) => s,
        Err(e) => {
            return Err(message_page(
                &viewer,
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("This address does not name a scope: {e}."),
                ("Go to your connectors", own),
            ))
        }
    };
    if !viewer.token.scope.covers(&scope) {
        return Err(message_page(
            &viewer,
            StatusCode::FORBIDDEN,
            "Out of reach",
            &format!(
                "Your API token belongs to {} and cannot reach {}. Sign in with a token of that scope, or go back to yours.",
                scope_words(&viewer.token.scope),
                scope_words(&scope)
            ),
            ("Go to your connectors", own),
        ));
    }
    let exists = match &scope {
        Scope::Account => Ok(()),
        Scope::Org(o) => state.store.get_org(o).await.map(|_| ()),
        Scope::Project { org, project } => state.store.get_project(org, project).await.map(|_| ()),
    };
    match exists {
        Ok(()) => Ok((viewer, scope)),
        Err(StoreError::NotFound { .. }) => Err(message_page(
            &viewer,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!(
                "There is no {} (it may have been deleted).",
                scope_words(&scope)
            ),
            ("Go to your connectors", own),
        )),
        Err(e) => {
            tracing::error!(error = %e, "store failure while rendering a page");
            Err(message_page(
                &viewer,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The manager could not load this page",
                "See the manager's log, then reload.",
                ("Reload", uri.0.to_string()),
            ))
        }
    }
}

type Params = Path<HashMap<String, String>>;

pub(crate) async fn home(State(state): State<UiState>, headers: HeaderMap) -> Response {
    match viewer(&state, &headers).await {
        Some(v) => {
            Redirect::to(&format!("{}/connectors", scope_prefix(&v.token.scope))).into_response()
        }
        None => Redirect::to("/login").into_response(),
    }
}

pub(crate) async fn connectors(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    let (viewer, scope) = match prepare(&state, &headers, &uri, &params).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let prefix = scope_prefix(&scope);
    let main = html! {
        (breadcrumbs(&scope, &[("Connectors", None)]))
        div .page-head {
            div {
                h1 { "Connectors" }
                p .muted { "Kubernetes clusters of " (scope_words(&scope)) ", their credentials and the result of their last connection test." }
            }
            a #new-connector .button .primary href=(format!("{prefix}/connectors/new")) { "+ New connector" }
        }
        form #connector-filters .filters role="search" aria-label="Filter connectors" {
            div .field {
                label for="f-search" { "Search" }
                input #f-search type="search" name="search" placeholder="Name or id" autocomplete="off";
            }
            div .field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any status" }
                    @for s in ["SUCCESS", "FAILURE", "PARTIAL", "UNKNOWN", "PENDING"] {
                        option value=(s) { (s) }
                    }
                }
            }
        }
        p #list-error .form-error role="alert" hidden {}
        div .table-wrap {
            table #connectors-table .data {
                caption .visually-hidden { "Connectors" }
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Id" }
                        th scope="col" { "Credentials" }
                        th scope="col" { "Status" }
                        th scope="col" { "Last tested" }
                        th scope="col" { "Last connected" }
                    }
                }
                tbody #connectors-body {
                    tr { td colspan="6" .muted { "Loading…" } }
                }
            }
        }
        nav #pager .pager aria-label="Pages" {
            button #page-prev type="button" disabled { "← Previous" }
            span #page-info aria-live="polite" {}
            button #page-next type="button" disabled { "Next →" }
        }
    };
    app_page(&viewer, &scope, Kind::Connectors, None, "Connectors", main).into_response()
}

fn field_error(id: &str) -> Markup {
    html! { p id=(format!("{id}-error")) .field-error role="alert" hidden {} }
}

/// A secret reference field: pick an existing secret, or create one in place.
fn secret_picker(id: &str, field: &str, label: &str, required: bool, help: &str) -> Markup {
    html! {
        div .field .secret-field data-field=(field) data-required=(if required { "true" } else { "false" }) {
            label for=(id) {
                (label)
                @if !required { span .optional { " (optional)" } }
            }
            div .picker {
                select id=(id) .secret-picker aria-describedby=(format!("{id}-help {id}-error")) {
                    option value="" { @if required { "Select a secret…" } @else { "None" } }
                }
                button type="button" .secondary .create-secret aria-expanded="false" aria-controls=(format!("{id}-new")) {
                    "Create a new secret"
                }
            }
            p id=(format!("{id}-help")) .help { (help) }
            (field_error(id))
            div id=(format!("{id}-new")) .inline-secret hidden role="group" aria-label=(format!("New secret for {label}")) {
                div .field data-field="name" {
                    label for=(format!("{id}-new-name")) { "Secret name" }
                    input id=(format!("{id}-new-name")) .ns-name type="text" autocomplete="off";
                    p .help { "Id: " code .ns-id {} }
                    p .field-error role="alert" hidden {}
                }
                div .field data-field="value" {
                    label for=(format!("{id}-new-value")) { "Secret value" }
                    textarea id=(format!("{id}-new-value")) .ns-value rows="4" spellcheck="false" autocomplete="off" {}
                    p .help { "Stored encrypted. It is never shown again after you create it." }
                    p .field-error role="alert" hidden {}
                }
                p .form-error role="alert" hidden {}
                div .actions {
                    button type="button" .primary .ns-create { "Create secret" }
                    button type="button" .secondary .ns-cancel { "Cancel" }
                }
            }
        }
    }
}

fn text_field(
    id: &str,
    field: &str,
    label: &str,
    required: bool,
    help: &str,
    placeholder: &str,
) -> Markup {
    html! {
        div .field data-field=(field) {
            label for=(id) {
                (label)
                @if !required { span .optional { " (optional)" } }
            }
            input id=(id) type="text" autocomplete="off" spellcheck="false" placeholder=(placeholder)
                aria-describedby=(format!("{id}-help {id}-error"));
            p id=(format!("{id}-help")) .help { (help) }
            (field_error(id))
        }
    }
}

const AUTH: &str = "spec.credential.spec.auth.spec";

fn auth_fields() -> Markup {
    let ca = |p: &str| {
        secret_picker(
            &format!("{p}-ca"),
            &format!("{AUTH}.caCertRef"),
            "CA certificate",
            false,
            "PEM of the CA that signed the API server's certificate. Leave empty when a public CA signed it.",
        )
    };
    html! {
        div .auth-group data-auth="ServiceAccount" {
            (secret_picker("sa-token", &format!("{AUTH}.serviceAccountTokenRef"), "Service account token", true,
                "The bearer token of a Kubernetes service account (kubectl get secret … -o jsonpath='{.data.token}' | base64 -d)."))
            (ca("sa"))
        }
        div .auth-group data-auth="UsernamePassword" hidden {
            fieldset .field data-field=(format!("{AUTH}.username")) {
                legend { "Username" }
                div .radios .inline-radios {
                    label { input type="radio" name="up-username-kind" value="text" checked; " Plain text" }
                    label { input type="radio" name="up-username-kind" value="secret"; " From a secret" }
                }
                div .up-username-text {
                    label for="up-username" .visually-hidden { "Username" }
                    input #up-username type="text" autocomplete="off" aria-describedby="up-username-error";
                }
                (field_error("up-username"))
            }
            div .up-username-secret hidden {
                (secret_picker("up-username-ref", &format!("{AUTH}.usernameRef"), "Username secret", true, "A secret holding the username."))
            }
            (secret_picker("up-password", &format!("{AUTH}.passwordRef"), "Password", true, "A secret holding the password."))
            (ca("up"))
        }
        div .auth-group data-auth="ClientKeyCert" hidden {
            (secret_picker("ck-cert", &format!("{AUTH}.clientCertRef"), "Client certificate", true, "PEM of the client certificate."))
            (secret_picker("ck-key", &format!("{AUTH}.clientKeyRef"), "Client key", true, "PEM of the client's private key."))
            (secret_picker("ck-pass", &format!("{AUTH}.clientKeyPassphraseRef"), "Client key passphrase", false, "Only for an encrypted key."))
            (text_field("ck-algo", &format!("{AUTH}.clientKeyAlgo"), "Client key algorithm", false, "RSA or EC; read from the key when empty.", ""))
            (ca("ck"))
        }
        div .auth-group data-auth="OpenIdConnect" hidden {
            (text_field("oidc-issuer", &format!("{AUTH}.oidcIssuerUrl"), "Issuer URL", true, "The OpenID provider; tokens come from its token endpoint (password grant).", "https://issuer.example.com"))
            (secret_picker("oidc-client-id", &format!("{AUTH}.oidcClientIdRef"), "Client id", true, "A secret holding the OAuth2 client id."))
            (secret_picker("oidc-client-secret", &format!("{AUTH}.oidcSecretRef"), "Client secret", false, "For confidential clients."))
            fieldset .field data-field=(format!("{AUTH}.oidcUsername")) {
                legend { "Username" }
                div .radios .inline-radios {
                    label { input type="radio" name="oidc-username-kind" value="text" checked; " Plain text" }
                    label { input type="radio" name="oidc-username-kind" value="secret"; " From a secret" }
                }
                div .oidc-username-text {
                    label for="oidc-username" .visually-hidden { "Username" }
                    input #oidc-username type="text" autocomplete="off" aria-describedby="oidc-username-error";
                }
                (field_error("oidc-username"))
            }
            div .oidc-username-secret hidden {
                (secret_picker("oidc-username-ref", &format!("{AUTH}.oidcUsernameRef"), "Username secret", true, "A secret holding the username."))
            }
            (secret_picker("oidc-password", &format!("{AUTH}.oidcPasswordRef"), "Password", true, "A secret holding the user's password."))
            (text_field("oidc-scopes", &format!("{AUTH}.oidcScopes"), "Scopes", false, "Comma-separated, e.g. openid, email.", ""))
            (ca("oidc"))
        }
        div .auth-group data-auth="EKS" hidden {
            p .help { "tether makes the token aws-iam-authenticator accepts (a presigned STS GetCallerIdentity); no aws CLI on the delegate." }
            (text_field("eks-region", &format!("{AUTH}.region"), "Region", true, "The cluster's AWS region, as in its endpoint.", "eu-west-1"))
            (text_field("eks-cluster", &format!("{AUTH}.clusterName"), "Cluster name", true, "As aws eks list-clusters prints it.", ""))
            (secret_picker("eks-key-id", &format!("{AUTH}.accessKeyIdRef"), "Access key id", false,
                "With the secret access key. Leave both empty to use the delegate's own AWS identity (IRSA or EKS Pod Identity)."))
            (secret_picker("eks-secret-key", &format!("{AUTH}.secretAccessKeyRef"), "Secret access key", false, "With the access key id."))
            (secret_picker("eks-session", &format!("{AUTH}.sessionTokenRef"), "Session token", false, "Only for temporary keys."))
            (text_field("eks-role", &format!("{AUTH}.roleArn"), "Role to assume", false, "Assumed with the keys (or the delegate's identity) before the token is made.", "arn:aws:iam::123456789012:role/NAME"))
            (text_field("eks-external-id", &format!("{AUTH}.externalId"), "External id", false, "Sent with the role, when its trust policy asks for one.", ""))
            (text_field("eks-sts", &format!("{AUTH}.stsEndpoint"), "STS endpoint", false, "Only for a private STS endpoint; the regional one by default.", "https://"))
            (text_field("eks-api", &format!("{AUTH}.eksEndpoint"), "EKS API endpoint", false, "Only for a private EKS API endpoint; the test uses it to tell an unknown cluster name.", "https://"))
            (ca("eks"))
        }
        div .auth-group data-auth="GKE" hidden {
            p .help { "tether exchanges the key for an OAuth2 access token itself; no gke-gcloud-auth-plugin on the delegate." }
            (secret_picker("gke-key", &format!("{AUTH}.serviceAccountKeyRef"), "Service account key", false,
                "The JSON key file of a Google service account. Leave empty to use the delegate's own identity (the GKE metadata server)."))
            (ca("gke"))
        }
        div .auth-group data-auth="AKS" hidden {
            p .help { "tether asks Entra ID for a token for the AKS server application itself; no kubelogin on the delegate, and it works with local accounts disabled." }
            (text_field("aks-tenant", &format!("{AUTH}.tenantId"), "Tenant id", true, "The Entra ID (Azure AD) tenant of the cluster.", ""))
            (text_field("aks-client-id", &format!("{AUTH}.clientId"), "Client id", false, "The application (client) id of the service principal; or take it from a secret below.", ""))
            (secret_picker("aks-client-id-ref", &format!("{AUTH}.clientIdRef"), "Client id from a secret", false, "Instead of the plain client id."))
            (secret_picker("aks-secret", &format!("{AUTH}.clientSecretRef"), "Client secret", false,
                "Leave empty to use the delegate's own identity (AKS workload identity)."))
            (text_field("aks-authority", &format!("{AUTH}.authorityHost"), "Authority host", false, "Only for a sovereign cloud; https://login.microsoftonline.com by default.", "https://"))
            (ca("aks"))
        }
    }
}

/// "Install new delegate": the manifest to copy, then a live wait for the
/// delegate to connect. `p` prefixes the ids (one panel per page).
fn install_panel(p: &str) -> Markup {
    let id = |s: &str| format!("{p}-{s}");
    html! {
        div .install data-install=(p) {
            button type="button" id=(id("open")) .secondary .install-open aria-expanded="false" aria-controls=(id("panel")) {
                "Install new delegate"
            }
            div id=(id("panel")) .install-panel .panel hidden {
                h3 { "Install a new delegate" }
                p .muted {
                    "A delegate runs in (or next to) your cluster and dials out to this manager; it needs no inbound access. "
                    "Once the settings below are accepted, this creates a delegate token for this scope and shows the manifest that installs it."
                }
                div .grid-2 {
                    div .field data-field="name" {
                        label for=(id("name")) { "Delegate name" }
                        input id=(id("name")) .in-name type="text" autocomplete="off" spellcheck="false" aria-describedby=(id("name-help"));
                        p id=(id("name-help")) .help { "Lowercase letters, digits and '-'." }
                        p .field-error role="alert" hidden {}
                    }
                    div .field data-field="namespace" {
                        label for=(id("namespace")) { "Namespace" }
                        input id=(id("namespace")) .in-namespace type="text" value="tether-delegate" autocomplete="off" spellcheck="false";
                        p .field-error role="alert" hidden {}
                    }
                    div .field data-field="tags" {
                        label for=(id("tags")) { "Tags" }
                        input id=(id("tags")) .in-tags type="text" autocomplete="off" spellcheck="false" aria-describedby=(id("tags-help"));
                        p id=(id("tags-help")) .help { "Comma-separated. Connectors select delegates by these." }
                        p .field-error role="alert" hidden {}
                    }
                    div .field data-field="permissions" {
                        label for=(id("permissions")) { "Permissions in its cluster" }
                        select id=(id("permissions")) .in-permissions {
                            option value="namespace-admin" selected { "Admin of its namespace" }
                            option value="cluster-admin" { "cluster-admin (everything)" }
                            option value="cluster-viewer" { "Read-only, cluster-wide" }
                            option value="none" { "None (only connector credentials)" }
                        }
                        p .field-error role="alert" hidden {}
                    }
                    div .field .span-2 data-field="managerUrl" {
                        label for=(id("manager")) { "Manager URL the delegate dials" }
                        input id=(id("manager")) .in-manager type="url" autocomplete="off" spellcheck="false"
                            aria-describedby=(format!("{} {}", id("manager-help"), id("manager-warning")));
                        p id=(id("manager-help")) .help { "This manager's address as the delegate sees it, from inside its pod or host." }
                        div id=(id("manager-warning")) .in-manager-warning .callout .warn role="status" hidden {
                            p {
                                strong { "This is a loopback address. " }
                                "In a pod it means the pod itself, so a delegate installed with this manifest cannot reach the manager. "
                                "Enter the address the cluster reaches this manager at, e.g. "
                                code { "https://tether.example.com" } " or " code { "http://<this machine's IP>:<port>" }
                                " (the manager must listen on that interface: " code { "tether server --listen 0.0.0.0:8080" } "). "
                                "Only a delegate on this machine (docker with " code { "--network host" } ") can use it."
                            }
                        }
                        p .field-error role="alert" hidden {}
                    }
                }
                p .form-error role="alert" hidden {}
                div .actions {
                    button type="button" .primary .in-generate { "Create token and show manifest" }
                    button type="button" .secondary .in-close { "Close" }
                }
                div .in-result hidden {
                    p {
                        "Save this as " code .in-file {} " and apply it with "
                        code { "kubectl apply -f " span .in-file {} } ". The token in it is shown only now."
                    }
                    div .code-block {
                        button type="button" .secondary .small .in-copy { "Copy manifest" }
                        pre tabindex="0" aria-label="Delegate install manifest" { code .in-yaml {} }
                    }
                    details {
                        summary { "Or run it outside Kubernetes with docker" }
                        pre tabindex="0" { code .in-docker {} }
                    }
                    p .in-status .waiting role="status" aria-live="polite" {}
                }
            }
        }
    }
}

fn stepper() -> Markup {
    let steps = ["Overview", "Details", "Delegates", "Connection test"];
    html! {
        nav .stepper aria-label="Wizard steps" {
            ol {
                @for (i, s) in steps.iter().enumerate() {
                    li data-step-item=(i + 1) {
                        button type="button" data-goto=(i + 1) disabled[i > 0] {
                            span .step-num aria-hidden="true" { (i + 1) }
                            span .step-label { (s) }
                        }
                    }
                }
            }
        }
    }
}

fn wizard(viewer: &Viewer, scope: &Scope, identifier: Option<&str>) -> Markup {
    let prefix = scope_prefix(scope);
    let editing = identifier.is_some();
    let title = if editing {
        "Edit connector"
    } else {
        "New Kubernetes cluster connector"
    };
    let mut trail = vec![("Connectors", Some(format!("{prefix}/connectors")))];
    if let Some(id) = identifier {
        trail.push((id, Some(format!("{prefix}/connectors/{id}"))));
        trail.push(("Edit", None));
    } else {
        trail.push(("New Kubernetes cluster", None));
    }
    let main = html! {
        (breadcrumbs(scope, &trail))
        div .page-head {
            div {
                h1 #wizard-title { (title) }
                p .muted { "Connect a Kubernetes cluster to " (scope_words(scope)) ". Delegates run the connection test and every task against it." }
            }
        }
        div .wizard {
            (stepper())
            div .wizard-body {
                p #wizard-error .form-error role="alert" hidden {}
                form #step-1 .step .panel data-step="1" novalidate aria-labelledby="step-1-title" {
                    h2 #step-1-title { "Overview" }
                    div .field data-field="name" {
                        label for="c-name" { "Name" }
                        input #c-name type="text" autocomplete="off" spellcheck="false" required
                            aria-describedby="c-name-help c-name-error";
                        p #c-name-help .help { "Letters, digits, spaces and - _ . / (at most 128)." }
                        (field_error("c-name"))
                    }
                    div .field data-field="identifier" {
                        label for="c-identifier" { "Id" }
                        input #c-identifier type="text" autocomplete="off" spellcheck="false" required
                            readonly[editing]
                            aria-describedby="c-identifier-help c-identifier-error";
                        p #c-identifier-help .help {
                            @if editing { "The id of a connector cannot change." }
                            @else { "Follows the name until you edit it. Letters, digits, _ and $; cannot start with a digit." }
                        }
                        (field_error("c-identifier"))
                    }
                    div .field data-field="description" {
                        label for="c-description" { "Description" span .optional { " (optional)" } }
                        textarea #c-description rows="2" aria-describedby="c-description-error" {}
                        (field_error("c-description"))
                    }
                    div .field data-field="tags" {
                        label for="c-tags" { "Tags" span .optional { " (optional)" } }
                        input #c-tags type="text" autocomplete="off" spellcheck="false" placeholder="team:payments, prod"
                            aria-describedby="c-tags-help c-tags-error";
                        p #c-tags-help .help { "Comma-separated; key:value or just key." }
                        (field_error("c-tags"))
                    }
                    div .actions {
                        button type="submit" .primary { "Continue" }
                        a .button .secondary href=(format!("{prefix}/connectors")) { "Cancel" }
                    }
                }
                form #step-2 .step .panel data-step="2" novalidate hidden aria-labelledby="step-2-title" {
                    h2 #step-2-title { "Details" }
                    fieldset .field data-field="spec.credential" {
                        legend { "How should tether reach the cluster?" }
                        div .radios {
                            label .radio-card {
                                input type="radio" name="credential" value="ManualConfig" checked;
                                span {
                                    strong { "Specify master URL and credentials" }
                                    span .help { "The API server's URL (kubectl cluster-info) and a service account token or other credentials." }
                                }
                            }
                            label .radio-card {
                                input type="radio" name="credential" value="InheritFromDelegate";
                                span {
                                    strong { "Use the credentials of a specific delegate" }
                                    span .help { "The delegate running in the cluster uses its own service account. Select it by tag in the next step." }
                                }
                            }
                        }
                    }
                    div #manual-fields {
                        (text_field("c-master-url", "spec.credential.spec.masterUrl", "Master URL", true,
                            "e.g. https://203.0.113.10:6443 — the address delegates use to reach the API server.", "https://"))
                        div .field data-field="spec.credential.spec.auth" {
                            label for="c-auth-type" { "Authentication" }
                            select #c-auth-type aria-describedby="c-auth-type-error" {
                                option value="ServiceAccount" selected { "Service account token" }
                                option value="UsernamePassword" { "Username and password" }
                                option value="ClientKeyCert" { "Client key and certificate" }
                                option value="OpenIdConnect" { "OpenID Connect" }
                                option value="EKS" { "Amazon EKS (AWS IAM)" }
                                option value="GKE" { "Google GKE (service account)" }
                                option value="AKS" { "Azure AKS (Entra ID)" }
                            }
                            (field_error("c-auth-type"))
                        }
                        (auth_fields())
                    }
                    div #inherit-fields .callout hidden {
                        p { "The delegate's in-cluster service account (or its kubeconfig outside a cluster) is used. "
                            "Choose which delegates with tags in the next step: at least one tag is required." }
                    }
                    div .actions {
                        button type="button" .secondary .back { "Back" }
                        button type="submit" .primary { "Continue" }
                    }
                }
                form #step-3 .step .panel data-step="3" novalidate hidden aria-labelledby="step-3-title" {
                    h2 #step-3-title { "Delegates" }
                    fieldset .field data-field="spec.delegateSelectors" {
                        legend { "Which delegates may connect to this cluster?" }
                        div .radios {
                            label .radio-card {
                                input type="radio" name="delegates" value="any" checked;
                                span { strong { "Use any available delegate" }
                                    span .help { "Any connected delegate of this scope or above." } }
                            }
                            label .radio-card {
                                input type="radio" name="delegates" value="tags";
                                span { strong { "Only use delegates with all of the following tags" }
                                    span .help { "For private clusters: the delegates that can reach it." } }
                            }
                        }
                        div #selector-fields hidden {
                            div .tag-input {
                                label for="c-selector-input" { "Delegate tag" }
                                div .picker {
                                    input #c-selector-input type="text" list="known-tags" autocomplete="off" spellcheck="false"
                                        aria-describedby="c-selectors-help spec-delegateSelectors-error";
                                    datalist #known-tags {}
                                    button #c-selector-add type="button" .secondary { "Add tag" }
                                }
                                p #c-selectors-help .help { "Press Enter or Add. Suggestions are the tags of known delegates." }
                            }
                            ul #c-selectors .chips aria-label="Selected tags" {}
                        }
                        p #spec-delegateSelectors-error .field-error role="alert" hidden {}
                    }
                    section #delegate-matches .matches aria-live="polite" aria-labelledby="matches-title" {
                        h3 #matches-title { "Delegates that match right now" }
                        div #matches-body { p .muted { "Loading delegates…" } }
                    }
                    (install_panel("wz"))
                    div .actions {
                        button type="button" .secondary .back { "Back" }
                        button #save-continue type="submit" .primary { "Save and Continue" }
                    }
                }
                section #step-4 .step .panel data-step="4" hidden aria-labelledby="step-4-title" {
                    h2 #step-4-title { "Connection test" }
                    p .muted { "tether asks a delegate to reach the cluster with these credentials: URL, DNS, TCP, TLS, authentication, then the permissions tether needs." }
                    div #test-report .report {}
                    div .actions {
                        button type="button" .secondary .back { "Back" }
                        button #retest type="button" .secondary { "Test again" }
                        a #finish .button .primary href="#" { "Finish" }
                    }
                }
            }
        }
    };
    app_page(viewer, scope, Kind::Wizard, identifier, title, main)
}

pub(crate) async fn new_connector(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    match prepare(&state, &headers, &uri, &params).await {
        Ok((viewer, scope)) => wizard(&viewer, &scope, None).into_response(),
        Err(r) => r,
    }
}

pub(crate) async fn edit_connector(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    match prepare(&state, &headers, &uri, &params).await {
        Ok((viewer, scope)) => {
            let id = params
                .get("identifier")
                .map(String::as_str)
                .unwrap_or_default();
            if let Err(r) = connector_exists(&state, &viewer, &scope, id, &uri).await {
                return r;
            }
            wizard(&viewer, &scope, Some(id)).into_response()
        }
        Err(r) => r,
    }
}

/// A connector that is gone (deleted, or never there) gets a page that says
/// so, without the actions of a connector.
async fn connector_exists(
    state: &UiState,
    viewer: &Viewer,
    scope: &Scope,
    id: &str,
    uri: &OriginalUri,
) -> Result<(), Response> {
    let list = format!("{}/connectors", scope_prefix(scope));
    match state.store.get_connector(scope, id).await {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound { .. }) => Err(message_page(
            viewer,
            StatusCode::NOT_FOUND,
            "Connector not found",
            &format!(
                "There is no connector '{id}' in {}: it was deleted, or never existed. Its test history went with it.",
                scope_words(scope)
            ),
            ("Go to the connectors", list),
        )),
        Err(e) => {
            tracing::error!(error = %e, "store failure while rendering a page");
            Err(message_page(
                viewer,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The manager could not load this page",
                "See the manager's log, then reload.",
                ("Reload", uri.0.to_string()),
            ))
        }
    }
}

/// The connector page's Deploy tab: the form (for those who may deploy), the
/// live run, and the release history with a rollback per earlier revision.
fn deploy_panel(id: &str, may_deploy: bool) -> Markup {
    html! {
        @if may_deploy {
            form #dp-form .deploy-form novalidate {
                div .field data-field="manifests" {
                    label for="dp-yaml" { "Manifests" }
                    textarea #dp-yaml .code rows="14" spellcheck="false" aria-describedby="dp-yaml-help dp-yaml-error"
                        placeholder="apiVersion: apps/v1\nkind: Deployment\n…" {}
                    p #dp-yaml-help .help { "Paste YAML (several documents separated by " code { "---" } ") or add files; both are deployed together, the same as " code { (format!("tether deploy apply --connector {id} -f …")) } "." }
                    (field_error("dp-yaml"))
                }
                div .field {
                    label for="dp-files" { "Or upload files" }
                    input #dp-files type="file" multiple accept=".yaml,.yml,.json" aria-describedby="dp-files-list";
                    p #dp-files-list .help {}
                }
                div .grid-2 {
                    div .field data-field="namespace" {
                        label for="dp-namespace" { "Namespace" }
                        input #dp-namespace type="text" placeholder="default" aria-describedby="dp-namespace-help";
                        p #dp-namespace-help .help { "For objects that name none, and where the release is kept." }
                        (field_error("dp-namespace"))
                    }
                    div .field data-field="release" {
                        label for="dp-release" { "Release name" }
                        input #dp-release type="text" placeholder="the first object's name" aria-describedby="dp-release-help";
                        p #dp-release-help .help { "Each deploy is the next revision of this release." }
                        (field_error("dp-release"))
                    }
                }
                fieldset .field .plain .checks {
                    legend { "Options" }
                    label { input #dp-prune type="checkbox"; " Prune: delete what the previous revision had and this one has not" }
                    label { input #dp-dry-run type="checkbox"; " Dry run: pre-flight only, change nothing" }
                    label { input #dp-force type="checkbox"; " Force conflicts: take over fields another field manager owns" }
                }
                p #dp-form-error .form-error role="alert" hidden {}
                div .actions {
                    button #dp-submit type="submit" .primary { "Deploy" }
                }
            }
        } @else {
            p #dp-viewer .muted { "Your token's role is viewer: you see the releases. An editor of this scope deploys and rolls back." }
        }
        div #dp-run .report .deploy-run hidden {}
        h3 { "Releases" }
        div .table-wrap {
            table #dp-releases .data {
                caption .visually-hidden { "Releases deployed through this connector" }
                thead { tr {
                    th scope="col" { "Release" } th scope="col" { "Revision" } th scope="col" { "When" }
                    th scope="col" { "By" } th scope="col" { "Status" } th scope="col" { "Objects" } th scope="col" { "Summary" }
                    @if may_deploy { th scope="col" { span .visually-hidden { "Rollback" } } }
                } }
                tbody #dp-releases-body { tr { td colspan="8" .muted { "Loading…" } } }
            }
        }
        dialog #dp-rollback-dialog aria-labelledby="dp-rollback-title" {
            h2 #dp-rollback-title { "Roll back?" }
            p #dp-rollback-text {}
            div .actions {
                button #dp-rollback-confirm type="button" .primary { "Roll back" }
                button #dp-rollback-cancel type="button" .secondary { "Cancel" }
            }
        }
    }
}

pub(crate) async fn connector(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    let (viewer, scope) = match prepare(&state, &headers, &uri, &params).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = params
        .get("identifier")
        .map(String::as_str)
        .unwrap_or_default();
    if let Err(r) = connector_exists(&state, &viewer, &scope, id, &uri).await {
        return r;
    }
    let prefix = scope_prefix(&scope);
    let tabs = [
        ("overview", "Overview"),
        ("test", "Connection test"),
        ("history", "History"),
        ("builds", "Builds"),
        ("deploy", "Deploy"),
        ("kube", "Kubernetes API"),
        ("yaml", "YAML"),
    ];
    // The API decides (deploys need editor); this only spares viewers a form
    // whose every submission would be refused.
    let may_deploy = viewer.token.role.as_str() != "viewer";
    let kubeconfig = format!(
        "tether connector kubeconfig {id}{} --ttl 1h > kubeconfig",
        cli_scope(&scope)
    );
    let grant = format!(
        "tether token create --name ci --role viewer --kube-access{}",
        cli_scope(&scope)
    );
    let main = html! {
        (breadcrumbs(&scope, &[("Connectors", Some(format!("{prefix}/connectors"))), (id, None)]))
        div .page-head {
            div {
                h1 { span #d-name title=(id) { (id) } " " span #d-status .badge .badge-unknown { "…" } }
                p .muted .d-id { "Id " code { (id) } " · " span #d-cred {} }
            }
            div .actions {
                button #d-test type="button" .primary { "Test connection" }
                a #d-edit .button .secondary href=(format!("{prefix}/connectors/{id}/edit")) { "Edit" }
                button #d-delete type="button" .danger { "Delete" }
            }
        }
        p #d-error .form-error role="alert" hidden {}
        div .tabs {
            div role="tablist" aria-label="Connector" {
                @for (i, (key, label)) in tabs.iter().enumerate() {
                    button type="button" role="tab" id=(format!("tab-{key}")) aria-controls=(format!("panel-{key}"))
                        aria-selected=(if i == 0 { "true" } else { "false" }) tabindex=(if i == 0 { "0" } else { "-1" }) { (label) }
                }
            }
            section #panel-overview role="tabpanel" aria-labelledby="tab-overview" .panel {
                dl #d-summary .summary {}
            }
            section #panel-test role="tabpanel" aria-labelledby="tab-test" .panel hidden {
                div #d-report .report { p .muted { "Loading the latest result…" } }
            }
            section #panel-history role="tabpanel" aria-labelledby="tab-history" .panel hidden {
                div .table-wrap {
                    table #d-history .data {
                        caption .visually-hidden { "Connection test history" }
                        thead { tr {
                            th scope="col" { "When" } th scope="col" { "Status" } th scope="col" { "Duration" }
                            th scope="col" { "Trigger" } th scope="col" { "Delegate" } th scope="col" { "Summary" } th scope="col" { span .visually-hidden { "Details" } }
                        } }
                        tbody #d-history-body { tr { td colspan="7" .muted { "Loading…" } } }
                    }
                }
                div #d-history-report .report {}
            }
            section #panel-builds role="tabpanel" aria-labelledby="tab-builds" .panel hidden {
                div .table-wrap {
                    table #d-builds .data {
                        caption .visually-hidden { "Builds run through this connector" }
                        thead { tr {
                            th scope="col" { "Started" } th scope="col" { "Status" } th scope="col" { "Duration" }
                            th scope="col" { "Exit code" } th scope="col" { "Image" } th scope="col" { "Summary" } th scope="col" { span .visually-hidden { "Log" } }
                        } }
                        tbody #d-builds-body { tr { td colspan="7" .muted { "Loading…" } } }
                    }
                }
                pre #d-build-log .build-log hidden {}
            }
            section #panel-deploy role="tabpanel" aria-labelledby="tab-deploy" .panel hidden {
                (deploy_panel(id, may_deploy))
            }
            section #panel-kube role="tabpanel" aria-labelledby="tab-kube" .panel hidden {
                h2 { "Use this cluster from kubectl, helm or any Kubernetes client" }
                p { "Requests go to the manager, which passes them to the cluster through a delegate chosen by this connector's selectors; the caller never holds the cluster's credentials." }
                ol {
                    li {
                        "A tether API token with the " code { "kubeAccess" } " grant (a role alone never gives access to clusters). An admin of this scope creates one:"
                        div .code-block { pre #d-kube-grant { (grant) } button type="button" .secondary .small data-copy="d-kube-grant" { "Copy" } }
                    }
                    li {
                        "With that token, print a kubeconfig whose own token is limited to this connector and expires:"
                        div .code-block { pre #d-kube-cmd { (kubeconfig) } button type="button" .secondary .small data-copy="d-kube-cmd" { "Copy" } }
                        "then " code { "kubectl --kubeconfig kubeconfig get pods" } ". It works from a CI job too."
                    }
                }
                p #d-kube-mode .muted {}
                h3 { "Recent requests through this connector" }
                div .table-wrap {
                    table #d-audit .data {
                        caption .visually-hidden { "Audit log of this connector" }
                        thead { tr {
                            th scope="col" { "When" } th scope="col" { "Caller" } th scope="col" { "Verb" } th scope="col" { "Resource" }
                            th scope="col" { "Namespace / name" } th scope="col" { "Status" } th scope="col" { "Duration" } th scope="col" { "Bytes in / out" } th scope="col" { "Delegate" }
                        } }
                        tbody #d-audit-body { tr { td colspan="9" .muted { "Loading…" } } }
                    }
                }
            }
            section #panel-yaml role="tabpanel" aria-labelledby="tab-yaml" .panel hidden {
                div .field data-field="yaml" {
                    label for="d-yaml" { "Connector YAML" }
                    textarea #d-yaml .code rows="22" spellcheck="false" aria-describedby="d-yaml-help d-yaml-error" {}
                    p #d-yaml-help .help { "The same document `tether connector apply` takes. The id cannot change." }
                    (field_error("d-yaml"))
                }
                ul #d-yaml-errors .error-list {}
                div .actions {
                    button #d-yaml-save type="button" .primary { "Save YAML" }
                    button #d-yaml-reset type="button" .secondary { "Revert" }
                }
            }
        }
        dialog #d-delete-dialog aria-labelledby="d-delete-title" {
            h2 #d-delete-title { "Delete connector " code { (id) } "?" }
            p { "Pipelines that use it stop reaching the cluster. Its secrets stay." }
            p #d-delete-error .form-error role="alert" hidden {}
            div .actions {
                button #d-delete-confirm type="button" .danger { "Delete" }
                button #d-delete-cancel type="button" .secondary { "Cancel" }
            }
        }
    };
    app_page(&viewer, &scope, Kind::Connector, Some(id), id, main).into_response()
}

/// The CLI's scope flags for `scope` (` --org O --project P`).
fn cli_scope(scope: &Scope) -> String {
    match scope {
        Scope::Account => String::new(),
        Scope::Org(o) => format!(" --org {o}"),
        Scope::Project { org, project } => format!(" --org {org} --project {project}"),
    }
}

pub(crate) async fn delegates(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    let (viewer, scope) = match prepare(&state, &headers, &uri, &params).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let main = html! {
        (breadcrumbs(&scope, &[("Delegates", None)]))
        div .page-head {
            div {
                h1 { "Delegates" }
                p .muted { "Agents that dial out to this manager and run connection tests and tasks. Those of "
                    (scope_words(&scope)) " serve it and every scope below it." }
            }
        }
        p #dl-error .form-error role="alert" hidden {}
        div .table-wrap {
            table #delegates-table .data {
                caption .visually-hidden { "Delegates" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Tags" }
                    th scope="col" { "Version" } th scope="col" { "Host" } th scope="col" { "Last heartbeat" }
                    th scope="col" { "Running tasks" } th scope="col" { "Connected since" }
                } }
                tbody #delegates-body { tr { td colspan="8" .muted { "Loading…" } } }
            }
        }
        (install_panel("dp"))
        section .panel #tokens-section aria-labelledby="tokens-title" {
            h2 #tokens-title { "Delegate tokens" }
            p .muted { "A delegate registers with a token of this scope. Revoking a token disconnects its delegates at once." }
            form #token-form .inline-form novalidate {
                div .field data-field="name" {
                    label for="dt-name" { "New token name" }
                    input #dt-name type="text" autocomplete="off" aria-describedby="dt-name-error";
                    (field_error("dt-name"))
                }
                button type="submit" .primary { "Create token" }
            }
            div #dt-created .callout hidden role="status" {
                p { strong { "Token created. " } "Copy it now: it is not shown again." }
                div .code-block {
                    button type="button" .secondary .small #dt-copy { "Copy token" }
                    pre tabindex="0" { code #dt-value {} }
                }
            }
            p #dt-error .form-error role="alert" hidden {}
            div .table-wrap {
                table #tokens-table .data {
                    caption .visually-hidden { "Delegate tokens" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Created" }
                        th scope="col" { "Status" } th scope="col" { span .visually-hidden { "Actions" } }
                    } }
                    tbody #tokens-body { tr { td colspan="5" .muted { "Loading…" } } }
                }
            }
        }
    };
    app_page(&viewer, &scope, Kind::Delegates, None, "Delegates", main).into_response()
}

pub(crate) async fn secrets(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    let (viewer, scope) = match prepare(&state, &headers, &uri, &params).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let main = html! {
        (breadcrumbs(&scope, &[("Secrets", None)]))
        div .page-head {
            div {
                h1 { "Secrets" }
                p .muted { "Encrypted text (tokens, passwords, certificates) that connectors reference. Values go in and never come out." }
            }
        }
        div .two-col {
            section .panel aria-labelledby="ns-title" {
                h2 #ns-title { "New secret" }
                form #secret-form novalidate {
                    div .field data-field="name" {
                        label for="s-name" { "Name" }
                        input #s-name type="text" autocomplete="off" aria-describedby="s-name-error";
                        (field_error("s-name"))
                    }
                    div .field data-field="identifier" {
                        label for="s-identifier" { "Id" }
                        input #s-identifier type="text" autocomplete="off" spellcheck="false" aria-describedby="s-identifier-help s-identifier-error";
                        p #s-identifier-help .help { "Follows the name until you edit it." }
                        (field_error("s-identifier"))
                    }
                    div .field data-field="description" {
                        label for="s-description" { "Description" span .optional { " (optional)" } }
                        input #s-description type="text" autocomplete="off" aria-describedby="s-description-error";
                        (field_error("s-description"))
                    }
                    (secret_use_fields("s"))
                    div .field data-field="value" {
                        label for="s-value" { "Value" }
                        textarea #s-value rows="5" spellcheck="false" autocomplete="off" aria-describedby="s-value-help s-value-error" {}
                        p #s-value-help .help { "Stored encrypted; never displayed after creation." }
                        (field_error("s-value"))
                    }
                    p #s-error .form-error role="alert" hidden {}
                    div .actions { button type="submit" .primary { "Create secret" } }
                }
            }
            section .panel aria-labelledby="sl-title" {
                h2 #sl-title { "Secrets of " (scope_words(&scope)) }
                form #secret-filters .filters role="search" {
                    div .field {
                        label for="sf-search" { "Search" }
                        input #sf-search type="search" autocomplete="off" placeholder="Name or id";
                    }
                }
                p #sl-error .form-error role="alert" hidden {}
                div .table-wrap {
                    table #secrets-table .data {
                        caption .visually-hidden { "Secrets" }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Reference" } th scope="col" { "Description" }
                            th scope="col" { "Who may use it" }
                            th scope="col" { "Last modified" } th scope="col" { span .visually-hidden { "Actions" } }
                        } }
                        tbody #secrets-body { tr { td colspan="6" .muted { "Loading…" } } }
                    }
                }
                nav #s-pager .pager aria-label="Pages" {
                    button #s-prev type="button" disabled { "← Previous" }
                    span #s-page-info aria-live="polite" {}
                    button #s-next type="button" disabled { "Next →" }
                }
            }
        }
        dialog #s-access-dialog aria-labelledby="s-access-title" {
            h2 #s-access-title { "Who may use " code #s-access-id {} }
            p .muted { "Using a secret is a permission of its own: whoever controls a connector's URLs receives its value. The value itself stays as it is." }
            form #s-access-form novalidate {
                (secret_use_fields("sa"))
                p #sa-error .form-error role="alert" hidden {}
                div .actions {
                    button #sa-save type="submit" .primary { "Save" }
                    button #sa-cancel type="button" .secondary { "Cancel" }
                }
            }
        }
        dialog #s-delete-dialog aria-labelledby="s-delete-title" {
            h2 #s-delete-title { "Delete secret " code #s-delete-id {} "?" }
            p { "Connectors that reference it can no longer be tested or used." }
            p #s-delete-error .form-error role="alert" hidden {}
            div .actions {
                button #s-delete-confirm type="button" .danger { "Delete" }
                button #s-delete-cancel type="button" .secondary { "Cancel" }
            }
        }
    };
    app_page(&viewer, &scope, Kind::Secrets, None, "Secrets", main).into_response()
}

/// A secret's use grants (`usableFrom`) and host binding (`allowedHosts`),
/// with ids prefixed by `p`.
fn secret_use_fields(p: &str) -> Markup {
    let id = |s: &str| format!("{p}-{s}");
    html! {
        div .field data-field="usableFrom" {
            label for=(id("usable-from")) { "Usable from" span .optional { " (optional)" } }
            input id=(id("usable-from")) type="text" autocomplete="off" spellcheck="false"
                aria-describedby=(format!("{} {}", id("usable-from-help"), id("usable-from-error")));
            p id=(id("usable-from-help")) .help {
                "Scopes below this one whose connectors may use it too: " code { "org/ORG" }
                " (the org and its projects) or " code { "project/ORG/PROJECT" }
                ", separated by commas or spaces. Empty: only connectors of this scope."
            }
            (field_error(&id("usable-from")))
        }
        div .field data-field="allowedHosts" {
            label for=(id("allowed-hosts")) { "Allowed hosts" span .optional { " (optional)" } }
            input id=(id("allowed-hosts")) type="text" autocomplete="off" spellcheck="false"
                aria-describedby=(format!("{} {}", id("allowed-hosts-help"), id("allowed-hosts-error")));
            p id=(id("allowed-hosts-help")) .help {
                "The only hosts the value may be sent to (" code { "api.example.com" } ", "
                code { "10.0.0.1:6443" } ", " code { "*.example.com" }
                "), separated by commas or spaces: every URL a connector using it dials must match. Empty: any host."
            }
            (field_error(&id("allowed-hosts")))
        }
    }
}

/// Name, id (following the name) and description of a new org or project.
fn container_form(p: &str, what: &str, allowed: bool, why_not: &str) -> Markup {
    let id = |s: &str| format!("{p}-{s}");
    html! {
        form id=(id("form")) novalidate {
            @if !allowed {
                p .callout .warn { (why_not) }
            }
            fieldset .plain disabled[!allowed] {
                legend .visually-hidden { "New " (what) }
                div .field data-field="name" {
                    label for=(id("name")) { "Name" }
                    input id=(id("name")) type="text" autocomplete="off" aria-describedby=(id("name-error"));
                    (field_error(&id("name")))
                }
                div .field data-field="identifier" {
                    label for=(id("identifier")) { "Id" }
                    input id=(id("identifier")) type="text" autocomplete="off" spellcheck="false"
                        aria-describedby=(format!("{} {}", id("identifier-help"), id("identifier-error")));
                    p id=(id("identifier-help")) .help { "Follows the name until you edit it; it cannot change later. It names the " (what) " in URLs and in " code { "--" (what) } "." }
                    (field_error(&id("identifier")))
                }
                div .field data-field="description" {
                    label for=(id("description")) { "Description" span .optional { " (optional)" } }
                    input id=(id("description")) type="text" autocomplete="off" aria-describedby=(id("description-error"));
                    (field_error(&id("description")))
                }
                p id=(id("error")) .form-error role="alert" hidden {}
                div .actions { button type="submit" .primary { "Create " (what) } }
            }
        }
    }
}

/// `/orgs`: the account's orgs, and a form for a new one.
pub(crate) async fn orgs(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    let (viewer, scope) = match prepare(&state, &headers, &uri, &params).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let admin = viewer.token.role.as_str() == "admin";
    let main = html! {
        (breadcrumbs(&scope, &[("Orgs & projects", None)]))
        div .page-head {
            div {
                h1 { "Orgs and projects" }
                p .muted { "An org groups projects; connectors, secrets and delegates live in the account, an org or a project, and serve the scopes below them." }
            }
        }
        div .two-col {
            section .panel aria-labelledby="no-title" {
                h2 #no-title { "New org" }
                (container_form("org", "org", admin, "Creating an org needs an admin token of the account."))
            }
            section .panel aria-labelledby="ol-title" {
                h2 #ol-title { "Orgs" }
                p #ol-error .form-error role="alert" hidden {}
                div .table-wrap {
                    table #orgs-table .data {
                        caption .visually-hidden { "Orgs" }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Description" }
                            th scope="col" { "Created" }
                        } }
                        tbody #orgs-body { tr { td colspan="4" .muted { "Loading…" } } }
                    }
                }
            }
        }
    };
    app_page(&viewer, &scope, Kind::Orgs, None, "Orgs and projects", main).into_response()
}

/// `/orgs/{org}/projects`: an org's projects, and a form for a new one.
pub(crate) async fn projects(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    let (viewer, scope) = match prepare(&state, &headers, &uri, &params).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let admin = viewer.token.role.as_str() == "admin" && viewer.token.scope.project().is_none();
    let org = scope.org().unwrap_or_default();
    let main = html! {
        (breadcrumbs(&scope, &[("Projects", None)]))
        div .page-head {
            div {
                h1 { "Projects of org " (org) }
                p .muted { "Open a project's setup to add its connectors, secrets and delegates." }
            }
        }
        div .two-col {
            section .panel aria-labelledby="np-title" {
                h2 #np-title { "New project" }
                (container_form("project", "project", admin, "Creating a project needs an admin token of this org or of the account."))
            }
            section .panel aria-labelledby="pl-title" {
                h2 #pl-title { "Projects" }
                p #pl-error .form-error role="alert" hidden {}
                div .table-wrap {
                    table #projects-table .data {
                        caption .visually-hidden { "Projects" }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Description" }
                            th scope="col" { "Created" } th scope="col" { span .visually-hidden { "Links" } }
                        } }
                        tbody #projects-body { tr { td colspan="5" .muted { "Loading…" } } }
                    }
                }
            }
        }
    };
    app_page(&viewer, &scope, Kind::Projects, None, "Projects", main).into_response()
}

/// `.../setup`: where a scope's connectors, secrets and delegates are set up
/// ("Project Setup" in a project, as in the product document).
pub(crate) async fn setup(
    State(state): State<UiState>,
    headers: HeaderMap,
    uri: OriginalUri,
    Path(params): Params,
) -> Response {
    let (viewer, scope) = match prepare(&state, &headers, &uri, &params).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let prefix = scope_prefix(&scope);
    let title = setup_words(&scope);
    let mut tiles = vec![
        (
            "setup-connectors",
            "Connectors",
            format!("{prefix}/connectors"),
            "Kubernetes clusters, their credentials and their connection tests.",
        ),
        (
            "setup-delegates",
            "Delegates",
            format!("{prefix}/delegates"),
            "The agents that reach your clusters, and their tokens.",
        ),
        (
            "setup-secrets",
            "Secrets",
            format!("{prefix}/secrets"),
            "Tokens, passwords and certificates that connectors reference.",
        ),
    ];
    match &scope {
        Scope::Account => tiles.push((
            "setup-orgs",
            "Orgs & projects",
            "/orgs".into(),
            "Create orgs and their projects.",
        )),
        Scope::Org(o) => tiles.push((
            "setup-projects",
            "Projects",
            format!("/orgs/{o}/projects"),
            "Create the org's projects.",
        )),
        Scope::Project { .. } => {}
    }
    let main = html! {
        (breadcrumbs(&scope, &[(title, None)]))
        div .page-head {
            div {
                h1 { (title) }
                p .muted { "Set up " (scope_words(&scope)) "." }
            }
        }
        ul .tiles {
            @for (id, label, href, about) in &tiles {
                li { a .tile id=(id) href=(href) { strong { (label) } span .muted { (about) } } }
            }
        }
    };
    app_page(&viewer, &scope, Kind::Setup, None, title, main).into_response()
}
