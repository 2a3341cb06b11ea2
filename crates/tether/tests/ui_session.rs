//! The web UI's sessions over plain HTTP, through the real binary: login with an
//! API token, the cookie's attributes, CSRF on every mutation, logout, revoked
//! tokens, and the headers and assets of the pages.

mod common;

use anyhow::{ensure, Context, Result};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tether_testenv::TetherServer;

use common::bin;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// `name=value` of the Set-Cookie header for `name`, and the whole header.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap_or_default().to_string();
            (pair, v.to_string())
        })
}

/// The `csrf` hidden field / meta of a page.
fn csrf_in(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let rest = &html[start..];
    Some(rest[..rest.find('"')?].to_string())
}

struct Login {
    cookie: String,
    set_cookie: String,
    location: String,
}

async fn login(
    server: &TetherServer,
    token: &str,
    next: &str,
) -> Result<(StatusCode, Option<Login>, String)> {
    let c = client();
    let page = c
        .get(format!("{}/login?next={next}", server.url))
        .send()
        .await?;
    let (login_cookie, _) =
        set_cookie(page.headers(), "tether_login_csrf").context("login csrf cookie")?;
    let html = page.text().await?;
    let csrf = csrf_in(&html, r#"name="csrf" value=""#).context("csrf field")?;
    let res = c
        .post(format!("{}/login", server.url))
        .header(COOKIE, login_cookie)
        .form(&[("token", token), ("csrf", &csrf), ("next", next)])
        .send()
        .await?;
    let status = res.status();
    let login = set_cookie(res.headers(), "tether_session").map(|(cookie, set)| Login {
        cookie,
        set_cookie: set,
        location: res
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    });
    Ok((status, login, res.text().await?))
}

#[tokio::test]
async fn sessions_cookies_and_csrf() -> Result<()> {
    let server = TetherServer::start(bin(), &[])?;
    let c = client();
    let url = |p: &str| format!("{}{p}", server.url);

    // Signed out: pages send the browser to the login page, keeping where it was going.
    let res = c
        .get(url("/orgs/x/connectors?status=FAILURE"))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::SEE_OTHER, "{}", res.status());
    ensure!(
        res.headers()[LOCATION] == "/login?next=/orgs/x/connectors%3Fstatus%3DFAILURE",
        "{:?}",
        res.headers()[LOCATION]
    );

    // A login form posted without its cookie is refused (login CSRF).
    let res = c
        .post(url("/login"))
        .form(&[("token", server.admin_token.as_str()), ("csrf", "forged")])
        .send()
        .await?;
    ensure!(res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    ensure!(set_cookie(res.headers(), "tether_session").is_none());

    // A wrong token: no session, the reason on the page.
    let (status, session, page) = login(&server, "tth_wrong", "/").await?;
    ensure!(
        status == StatusCode::UNAUTHORIZED && session.is_none(),
        "{status}"
    );
    ensure!(page.contains("unknown or revoked"), "{page}");

    // The right token: a random session id in an HttpOnly, SameSite=Strict cookie.
    let (status, session, _) = login(&server, &server.admin_token, "//evil.example/x").await?;
    ensure!(status == StatusCode::SEE_OTHER, "{status}");
    let s = session.context("a session cookie")?;
    ensure!(
        s.location == "/",
        "an off-site next is not followed: {}",
        s.location
    );
    ensure!(
        s.set_cookie.contains("HttpOnly") && s.set_cookie.contains("SameSite=Strict"),
        "{}",
        s.set_cookie
    );
    ensure!(s.set_cookie.contains("Path=/"), "{}", s.set_cookie);
    let id_part = s.cookie.split_once('=').unwrap().1;
    ensure!(!s.cookie.contains(&server.admin_token) && !server.admin_token.contains(id_part));
    ensure!(id_part.len() >= 43, "256 random bits");

    // The page: CSP, no caching, and the CSRF token for the scripts.
    let res = c
        .get(url("/connectors"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{}", res.status());
    let csp = res.headers()["content-security-policy"]
        .to_str()?
        .to_string();
    ensure!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    ensure!(res.headers()["cache-control"] == "no-store");
    let html = res.text().await?;
    let csrf = csrf_in(&html, r#"<meta name="csrf-token" content=""#).context("csrf meta")?;
    ensure!(
        !html.contains(&server.admin_token),
        "the token is never in a page"
    );
    // Every asset the page links is in the binary and cacheable for good.
    let asset = html
        .split('"')
        .find(|p| p.starts_with("/ui/assets/core.js?v="))
        .context("core.js link")?
        .to_string();
    let res = c.get(url(&asset)).send().await?;
    ensure!(res.status() == StatusCode::OK);
    ensure!(res.headers()["cache-control"]
        .to_str()?
        .contains("immutable"));
    ensure!(res.text().await?.contains("Tether"));

    // The API accepts the session for reads...
    let res = c
        .get(url("/api/v1/whoami"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{}", res.status());
    let me: Value = res.json().await?;
    ensure!(me["role"] == "admin", "{me}");
    // ...and for mutations only with the CSRF token.
    let org = json!({"name": "Payments", "identifier": "payments"});
    let res = c
        .post(url("/api/v1/orgs"))
        .header(COOKIE, &s.cookie)
        .json(&org)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    let body: Value = res.json().await?;
    ensure!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("CSRF"),
        "{body}"
    );
    let res = c
        .post(url("/api/v1/orgs"))
        .header(COOKIE, &s.cookie)
        .header("X-CSRF-Token", "not-the-token")
        .json(&org)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    let res = c
        .post(url("/api/v1/orgs"))
        .header(COOKIE, &s.cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&org)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    // The manifest endpoint wants the session and its CSRF token too.
    let manifest =
        json!({"name": "eu-1", "managerUrl": server.url, "token": "tdt_x", "tags": ["eu"]});
    let res = c
        .post(url("/ui/delegate-manifest"))
        .header(COOKIE, &s.cookie)
        .json(&manifest)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    let res = c
        .post(url("/ui/delegate-manifest"))
        .header(COOKIE, &s.cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&manifest)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{}", res.status());
    let m: Value = res.json().await?;
    ensure!(
        m["yaml"]
            .as_str()
            .unwrap_or_default()
            .contains("kind: Deployment"),
        "{m}"
    );
    let res = c
        .post(url("/ui/delegate-manifest"))
        .header(COOKIE, &s.cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "EU_1", "managerUrl": server.url, "token": "tdt_x"}))
        .send()
        .await?;
    ensure!(
        res.status() == StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        res.status()
    );
    let e: Value = res.json().await?;
    ensure!(e["field"] == "name", "{e}");
    // Without a token the request is only checked (the UI does that before it
    // creates the delegate token).
    let res = c
        .post(url("/ui/delegate-manifest"))
        .header(COOKIE, &s.cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"name": "eu-1", "managerUrl": server.url}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::NO_CONTENT, "{}", res.status());

    // Sign-out needs the CSRF token, then ends the session.
    let res = c
        .post(url("/logout"))
        .header(COOKIE, &s.cookie)
        .form(&[("csrf", "x")])
        .send()
        .await?;
    ensure!(res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    let res = c
        .post(url("/logout"))
        .header(COOKIE, &s.cookie)
        .form(&[("csrf", &csrf)])
        .send()
        .await?;
    ensure!(res.status() == StatusCode::SEE_OTHER, "{}", res.status());
    let (_, cleared) = set_cookie(res.headers(), "tether_session").context("cleared cookie")?;
    ensure!(cleared.contains("Max-Age=0"), "{cleared}");
    let res = c
        .get(url("/api/v1/whoami"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::UNAUTHORIZED, "{}", res.status());

    // Revoking the token ends its sessions at once.
    let created: Value = c
        .post(url("/api/v1/tokens"))
        .bearer_auth(&server.admin_token)
        .json(&json!({"name": "browser", "role": "viewer"}))
        .send()
        .await?
        .json()
        .await?;
    let value = created["value"].as_str().context("token value")?;
    let (_, session, _) = login(&server, value, "/").await?;
    let s = session.context("viewer session")?;
    let res = c
        .get(url("/api/v1/whoami"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{}", res.status());
    let res = c
        .delete(url(&format!(
            "/api/v1/tokens/{}",
            created["token"]["id"].as_str().unwrap_or_default()
        )))
        .bearer_auth(&server.admin_token)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::NO_CONTENT, "{}", res.status());
    let res = c
        .get(url("/api/v1/whoami"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::UNAUTHORIZED, "{}", res.status());
    let res = c
        .get(url("/connectors"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::SEE_OTHER, "{}", res.status());

    // A token out of reach of a page's scope gets an explanation, not the page.
    let created: Value = c
        .post(url("/api/v1/orgs/payments/tokens"))
        .bearer_auth(&server.admin_token)
        .json(&json!({"name": "org", "role": "editor"}))
        .send()
        .await?
        .json()
        .await?;
    let (_, session, _) =
        login(&server, created["value"].as_str().unwrap_or_default(), "/").await?;
    let s = session.context("org session")?;
    ensure!(s.location == "/", "{}", s.location);
    let res = c.get(url("/")).header(COOKIE, &s.cookie).send().await?;
    ensure!(
        res.headers()[LOCATION] == "/orgs/payments/connectors",
        "home is the token's scope"
    );
    let res = c
        .get(url("/connectors"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    ensure!(res.text().await?.contains("cannot reach the account"));
    let res = c
        .get(url("/orgs/nope/connectors"))
        .header(COOKIE, &s.cookie)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    Ok(())
}

/// Issue 10 item 5: 10,000 logins by one token used to evict every other UI
/// session (one global bound). Sessions are bounded per token now: after more
/// logins with one token than the manager keeps sessions at all, another
/// token's session still works, and only that token's oldest sessions went.
#[tokio::test]
async fn many_logins_with_one_token_push_out_only_that_tokens_sessions() -> Result<()> {
    use futures_util::{stream, StreamExt as _};
    let server = TetherServer::start(bin(), &[])?;
    let url = |p: &str| format!("{}{p}", server.url);
    let (_, other, _) = login(&server, &server.admin_token, "/").await?;
    let other = other.context("the admin's session")?;
    let res = client()
        .post(url("/api/v1/tokens"))
        .bearer_auth(&server.admin_token)
        .json(&json!({"name": "flood", "role": "viewer"}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let flood = res.json::<Value>().await?["value"]
        .as_str()
        .context("token value")?
        .to_string();

    // One login page's CSRF pair serves every post, as a script would use it.
    let c = client();
    let page = c.get(url("/login?next=/")).send().await?;
    let (login_cookie, _) =
        set_cookie(page.headers(), "tether_login_csrf").context("login csrf cookie")?;
    let csrf = csrf_in(&page.text().await?, r#"name="csrf" value=""#).context("csrf field")?;
    let logins = 10_001;
    let cookies: Vec<Result<String>> = stream::iter(0..logins)
        .map(|_| {
            let (c, login_cookie, csrf, flood) = (&c, &login_cookie, &csrf, &flood);
            async move {
                let res = c
                    .post(url("/login"))
                    .header(COOKIE, login_cookie)
                    .form(&[("token", flood.as_str()), ("csrf", csrf), ("next", "/")])
                    .send()
                    .await?;
                ensure!(res.status() == StatusCode::SEE_OTHER, "{}", res.status());
                Ok(set_cookie(res.headers(), "tether_session")
                    .context("a session cookie")?
                    .0)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let cookies: Vec<String> = cookies.into_iter().collect::<Result<_>>()?;
    let signed_in = |cookie: String| {
        let c = client();
        async move {
            let res = c
                .get(url("/connectors"))
                .header(COOKIE, cookie)
                .send()
                .await?;
            Ok::<_, anyhow::Error>(res.status() == StatusCode::OK)
        }
    };
    ensure!(
        signed_in(other.cookie.clone()).await?,
        "the admin's session was evicted by another token's logins"
    );
    ensure!(
        signed_in(cookies[logins - 1].clone()).await?,
        "the newest session works"
    );
    ensure!(
        !signed_in(cookies[0].clone()).await?,
        "the flooding token's oldest session is gone"
    );
    Ok(())
}
