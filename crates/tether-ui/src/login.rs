//! Signing in with an API token, signing out, and who the browser is.

use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use tether_store::TokenRecord;

use crate::session::{cookie, random_token, same_secret, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::UiState;

/// The signed-in browser: its API token's record (never the value) and the
/// session's CSRF token.
pub(crate) struct Viewer {
    pub token: TokenRecord,
    pub csrf: String,
}

/// The viewer of a request, or `None` when it has no live session. A session
/// whose token was revoked (or deleted) ends here.
pub(crate) async fn viewer(state: &UiState, headers: &HeaderMap) -> Option<Viewer> {
    let session = state.sessions.from_headers(headers)?;
    match state.store.get_token(&session.token_id).await {
        Ok(token) if token.revoked_at.is_none() => Some(Viewer {
            token,
            csrf: session.csrf,
        }),
        Ok(_) => {
            state.sessions.remove_token(&session.token_id);
            None
        }
        Err(e) => {
            // Unknown id (deleted) or the store is unreachable: either way the
            // browser signs in again; the log says which.
            tracing::warn!(error = %e, "session's token could not be read");
            None
        }
    }
}

/// Only paths of this site: `/x`, not `//host` or `/\host`, and nothing with
/// a control character or a space: browsers drop tabs and line breaks from a
/// URL (`/\t/host` becomes `//host`), and a line break cannot go into the
/// `Location` header at all.
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n
        }
        _ => "/",
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a page sends a browser that is not signed in.
pub(crate) fn to_login(path_and_query: &str) -> Response {
    Redirect::to(&format!("/login?next={}", percent_encode(path_and_query))).into_response()
}

/// `Secure` when the browser reached us over HTTPS (through a proxy that says so).
fn secure(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if https {
        "; Secure"
    } else {
        ""
    }
}

fn set_cookie(res: &mut Response, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().append(SET_COOKIE, v);
    }
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

fn login_form(csrf: &str, next: &str, error: Option<&str>) -> Markup {
    let content = html! {
        main #main .login tabindex="-1" {
            div .login-card {
                div .brand-large { img .brand-mark src=(crate::assets::url("favicon.svg")) alt="" width="30" height="30"; " tether" }
                h1 { "Sign in" }
                p .muted {
                    "Paste an API token. The first admin token is in "
                    code { "<data-dir>/admin-token" }
                    "; create others with "
                    code { "tether token create" } "."
                }
                form method="post" action="/login" novalidate {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    div .field data-field="token" {
                        label for="login-token" { "API token" }
                        input #login-token type="password" name="token" autocomplete="off"
                            spellcheck="false" required autofocus
                            aria-describedby="login-token-error"
                            aria-invalid=(if error.is_some() { "true" } else { "false" });
                        p #login-token-error .field-error role="alert" hidden[error.is_none()] {
                            @if let Some(e) = error { (e) }
                        }
                    }
                    button #login-submit .primary type="submit" { "Sign in" }
                }
                p .muted .small {
                    "The token stays on the server: the browser gets a session cookie that ends after 30 minutes without use, 12 hours at most, or when you sign out."
                }
            }
        }
    };
    crate::pages::bare_page("Sign in", content)
}

fn login_response(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let csrf = random_token();
    let mut res = (status, login_form(&csrf, next, error)).into_response();
    set_cookie(
        &mut res,
        format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict"),
    );
    res
}

pub(crate) async fn page(
    State(state): State<UiState>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if viewer(&state, &headers).await.is_some() {
        return Redirect::to(next).into_response();
    }
    login_response(StatusCode::OK, next, None)
}

/// The login form's fields. No `Debug`: it holds the token.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

pub(crate) async fn submit(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    let cookie_csrf = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if cookie_csrf.is_empty() || !same_secret(cookie_csrf, &form.csrf) {
        return login_response(
            StatusCode::FORBIDDEN,
            &next,
            Some("The sign-in form expired or your browser did not send its cookie. Allow cookies for this site and sign in again."),
        );
    }
    let token = form.token.trim();
    if token.is_empty() {
        return login_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &next,
            Some("Enter an API token (it starts with tth_)."),
        );
    }
    let record = match state.store.authenticate(token).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return login_response(
                StatusCode::UNAUTHORIZED,
                &next,
                Some("This API token is unknown or revoked. Check that you copied all of it, or create a new one with `tether token create`."),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "store failure during login");
            return login_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &next,
                Some("The manager could not check the token; see its log and try again."),
            );
        }
    };
    let (value, _) = state.sessions.create(&record.id);
    tracing::info!(token = %record.id, "UI session started");
    // 303: the browser follows with a GET.
    let mut res = Redirect::to(&next).into_response();
    set_cookie(
        &mut res,
        format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}",
            secure(&headers)
        ),
    );
    set_cookie(
        &mut res,
        format!("{LOGIN_CSRF_COOKIE}=; Path=/login; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    csrf: String,
}

pub(crate) async fn logout(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Some(value) = cookie(&headers, SESSION_COOKIE) {
        match state.sessions.get(value) {
            Some(s) if same_secret(&s.csrf, &form.csrf) => {
                state.sessions.remove(value);
                tracing::info!(token = %s.token_id, "UI session ended");
            }
            Some(_) => {
                return (
                    StatusCode::FORBIDDEN,
                    "sign-out refused: the form's CSRF token does not match this session; reload the page and sign out again",
                )
                    .into_response()
            }
            None => {}
        }
    }
    let mut res = Redirect::to("/login").into_response();
    set_cookie(
        &mut res,
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/orgs/a/connectors?x=1")),
            "/orgs/a/connectors?x=1"
        );
        for bad in [
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/a\r\nSet-Cookie: x=y",
            "/ /evil.example",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn login_redirect_encodes_the_path() {
        let res = to_login("/connectors?search=a b&status=SUCCESS");
        let loc = res.headers()["location"].to_str().unwrap();
        assert_eq!(
            loc,
            "/login?next=/connectors%3Fsearch%3Da%20b%26status%3DSUCCESS"
        );
    }
}
