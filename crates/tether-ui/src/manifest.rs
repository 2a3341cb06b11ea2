//! `POST /ui/delegate-manifest`: the install manifest of `tether delegate
//! manifest`, for "Install new delegate". The browser first creates a delegate
//! token through the API (which decides whether it may), then asks for the
//! manifest that carries it. Nothing is stored and nothing is logged here.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tether_kube::onboarding::delegate_manifest::{self as manifest, ManifestRequest, Permissions};

use crate::session::{same_secret, CSRF_HEADER};
use crate::UiState;

/// No `Debug`: it holds the delegate token.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Request {
    name: String,
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "default_permissions")]
    permissions: String,
    manager_url: String,
    token: String,
    image: Option<String>,
    capacity: Option<u32>,
}

fn default_namespace() -> String {
    "tether-delegate".into()
}

fn default_permissions() -> String {
    "namespace-admin".into()
}

#[derive(Serialize)]
struct Reply {
    yaml: String,
    docker: String,
    #[serde(rename = "fileName")]
    file_name: String,
}

fn error(status: StatusCode, code: &str, message: String, field: Option<&str>) -> Response {
    let mut body = json!({ "code": code, "message": message });
    if let Some(f) = field {
        body["field"] = json!(f);
        body["errors"] = json!([{ "field": f, "message": message }]);
    }
    (status, Json(body)).into_response()
}

/// A Kubernetes DNS label of at most `max` characters.
fn dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The Deployment is named `tether-delegate-<name>`: 63 characters at most.
const NAME_MAX: usize = 63 - "tether-delegate-".len();

pub(crate) async fn render(
    State(state): State<UiState>,
    headers: HeaderMap,
    body: Result<Json<Request>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(session) = state.sessions.from_headers(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "your session ended; sign in again".into(),
            None,
        );
    };
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !same_secret(sent, &session.csrf) {
        return error(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            crate::CSRF_MESSAGE.into(),
            None,
        );
    }
    let r = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                e.body_text(),
                None,
            )
        }
    };
    if !dns_label(&r.name, NAME_MAX) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            format!("the delegate name '{}' must be lowercase letters, digits and '-', start and end with a letter or digit, at most {NAME_MAX} characters (it names Kubernetes objects)", r.name),
            Some("name"),
        );
    }
    if !dns_label(&r.namespace, 63) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            format!(
                "'{}' is not a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)",
                r.namespace
            ),
            Some("namespace"),
        );
    }
    let permissions = match r.permissions.parse::<Permissions>() {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
                e,
                Some("permissions"),
            )
        }
    };
    if !(r.manager_url.starts_with("http://") || r.manager_url.starts_with("https://")) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            format!("the manager URL '{}' must start with http:// or https:// (it is the address delegates dial)", r.manager_url),
            Some("managerUrl"),
        );
    }
    if let Some((i, _)) = r
        .tags
        .iter()
        .enumerate()
        .find(|(_, t)| t.trim().is_empty() || t.contains(','))
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            "a tag must not be blank or contain ','".into(),
            Some(&format!("tags[{i}]")),
        );
    }
    let req = ManifestRequest {
        name: r.name,
        namespace: r.namespace,
        tags: r.tags,
        permissions,
        manager_url: r.manager_url.trim_end_matches('/').to_string(),
        token: r.token,
        image: r
            .image
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| manifest::DEFAULT_IMAGE.to_string()),
        capacity: r.capacity.unwrap_or(4).clamp(1, 1000),
    };
    let reply = Reply {
        yaml: manifest::to_yaml(&manifest::objects(&req)),
        docker: manifest::docker_run(&req),
        file_name: format!("tether-delegate-{}.yaml", req.name),
    };
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(reply),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        assert!(dns_label("eu-west-1", NAME_MAX));
        for bad in [
            "",
            "-a",
            "a-",
            "Upper",
            "a_b",
            "a.b",
            &"a".repeat(NAME_MAX + 1),
        ] {
            assert!(!dns_label(bad, NAME_MAX), "{bad}");
        }
    }
}
