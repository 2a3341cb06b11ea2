//! One bounded HTTP client for the clouds' endpoints, and reading their answers.

use std::time::Duration;

use super::CloudError;
use crate::connection_test::error_chain;

/// HTTPS only, except to loopback addresses (local test doubles and proxies);
/// no redirects (a token request must not be replayed elsewhere).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| error_chain(&e))
}

/// Refuses plain HTTP to anything but loopback.
pub(crate) fn check_url(service: &'static str, url: &str) -> Result<url::Url, CloudError> {
    let bad = |problem: String| CloudError::BadAnswer {
        service,
        url: url.to_string(),
        problem,
    };
    let u = url::Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(bad(
            "only https:// endpoints are used (plain http only on loopback)".to_string(),
        )),
    }
}

/// An answer: status, the server's clock, the body.
pub(crate) struct Answer {
    pub status: u16,
    pub server_time: Option<i64>,
    pub local_time: i64,
    pub body: String,
    pub error_type: Option<String>,
}

const MAX_BODY: usize = 256 * 1024;

pub(crate) async fn send(
    service: &'static str,
    url: &str,
    req: reqwest::RequestBuilder,
) -> Result<Answer, CloudError> {
    let resp = req.send().await.map_err(|e| CloudError::Unreachable {
        service,
        url: url.to_string(),
        error: error_chain(&e),
    })?;
    let status = resp.status().as_u16();
    let server_time = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(':').next().unwrap_or(s).to_string());
    let bytes = resp.bytes().await.map_err(|e| CloudError::Unreachable {
        service,
        url: url.to_string(),
        error: error_chain(&e),
    })?;
    let body = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
    Ok(Answer {
        status,
        server_time,
        local_time: super::unix(std::time::SystemTime::now()),
        body,
        error_type,
    })
}

/// `Tue, 01 Dec 2026 21:55:42 GMT` (RFC 7231's IMF-fixdate).
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s.trim(), fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Control characters out, at most `max` characters: for quoting an error
/// message a server sent.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:01:40 GMT"), Some(100));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
