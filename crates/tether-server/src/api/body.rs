//! Reading request bodies and writing responses in JSON or YAML.
//!
//! A body is read only after the caller is authenticated and its token found
//! to cover the scope of the URL with the role the body's route needs
//! ([`RequestBody::ROLE`]): whoever may not send a document cannot make the
//! manager read or parse one. It is then read as bytes (bounded by the
//! router's body limit) and parsed here, off the async workers, so every way a
//! body can be wrong (too large, not UTF-8, nested too deeply, malformed,
//! unknown field, wrong type) becomes an [`ApiError`] of our one shape instead
//! of axum's plain-text rejections, and no body can hold up other requests.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tether_store::Role;

use super::auth::Caller;
use super::error::ApiError;
use super::scope::ScopePath;
use super::yaml_depth;
use super::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// The format of a media type. Type and subtype are case-insensitive and
    /// parameters (`; charset=utf-8`) are allowed (RFC 9110, section 8.3.1).
    fn from_media(value: &str) -> Option<Format> {
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "*/*" | "application/*" | "" => Some(Format::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// The response format the client asked for with `Accept` (JSON by default).
    pub fn accepted(headers: &HeaderMap) -> Format {
        headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').find_map(Format::from_media))
            .unwrap_or(Format::Json)
    }
}

/// A document a route accepts, and the least role that may send it to the
/// scope of the URL. The handler still authorizes the request in full (and
/// may need more); this check only comes before the body is read.
pub trait RequestBody: DeserializeOwned + Send + 'static {
    const ROLE: Role;
}

/// A request body in JSON or YAML, by `Content-Type`.
pub struct Doc<T>(pub T);

impl<T: RequestBody> FromRequest<AppState> for Doc<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let path = ScopePath::from_request_parts(&mut parts, state).await?;
        caller.require(&path.scope, T::ROLE)?;
        let format = match parts.headers.get(CONTENT_TYPE) {
            None => Format::Json,
            Some(v) => v.to_str().ok().and_then(Format::from_media).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UNSUPPORTED_MEDIA_TYPE",
                    format!(
                        "Content-Type {v:?} is not supported; send application/json or application/yaml"
                    ),
                )
            })?,
        };
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "the request body is larger than the manager accepts (1 MiB)",
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {rej}"))
            }
        })?;
        // Parsing a large document takes milliseconds of CPU: not on the
        // workers that answer every other request.
        tokio::task::spawn_blocking(move || parse(&bytes, format))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "parsing a request body failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "the manager could not parse the request body; see its log",
                )
            })?
            .map(Doc)
    }
}

/// Parses a body, naming the line/column or field of the first problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8], format: Format) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match format {
        Format::Json => super::doc_path::json(text).map_err(|(e, field)| {
            let kind = if e.is_data() {
                "does not match the expected document"
            } else {
                "is not valid JSON"
            };
            with_path(
                ApiError::bad_request(format!("the JSON body {kind}: {e}")),
                field,
            )
        }),
        Format::Yaml => {
            // Before the parser, whose time grows with the depth (see yaml_depth).
            yaml_depth::check(text, yaml_depth::MAX_DEPTH).map_err(|at| {
                ApiError::bad_request(format!(
                    "the YAML body nests deeper than {} levels (line {}, column {}); no tether document nests that deep: send the document itself",
                    yaml_depth::MAX_DEPTH, at.line, at.column
                ))
            })?;
            super::doc_path::yaml(text).map_err(|(e, field)| {
                with_path(
                    ApiError::bad_request(format!("the YAML body is not a valid document: {e}")),
                    field,
                )
            })
        }
    }
}

/// The document path a body error concerns, when it concerns one.
fn with_path(e: ApiError, field: Option<String>) -> ApiError {
    match field {
        Some(f) => e.with_field(f),
        None => e,
    }
}

/// A response body in the format the client accepts.
pub struct Reply<T> {
    pub status: StatusCode,
    pub format: Format,
    pub value: T,
}

impl<T> Reply<T> {
    pub fn ok(format: Format, value: T) -> Self {
        Reply {
            status: StatusCode::OK,
            format,
            value,
        }
    }

    pub fn created(format: Format, value: T) -> Self {
        Reply {
            status: StatusCode::CREATED,
            format,
            value,
        }
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let (body, ctype) = match self.format {
            Format::Json => (
                serde_json::to_string(&self.value).map_err(|e| e.to_string()),
                "application/json",
            ),
            Format::Yaml => (
                serde_yaml::to_string(&self.value).map_err(|e| e.to_string()),
                "application/yaml",
            ),
        };
        match body {
            Ok(body) => (
                self.status,
                [(CONTENT_TYPE, HeaderValue::from_static(ctype))],
                body,
            )
                .into_response(),
            Err(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                format!("cannot encode the response: {e}"),
            )
            .into_response(),
        }
    }
}
