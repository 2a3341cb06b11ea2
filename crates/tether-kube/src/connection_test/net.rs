//! The first three stages: the URL is an HTTPS URL, its host resolves, and
//! something accepts a TCP connection on its port.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::diagnosis::{self, Failure};

/// A checked master URL.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The URL as given, without any user-info part.
    pub url: String,
    pub host: url::Host<String>,
    /// `host` as text (IPv6 without brackets).
    pub host_str: String,
    pub port: u16,
    /// `host:port` for messages (IPv6 in brackets).
    pub display: String,
}

/// Removes `user:password@` from a URL before it goes anywhere near a report.
pub(crate) fn redact_userinfo(raw: &str) -> String {
    let raw = raw.trim();
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, raw),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// The `url` stage.
pub(crate) fn check_url(raw: &str) -> Result<(Endpoint, String), Failure> {
    let shown = redact_userinfo(raw);
    if raw.trim().is_empty() {
        return Err(diagnosis::invalid_url(&shown, "it is empty"));
    }
    if !raw.contains("://") {
        return Err(diagnosis::invalid_url(
            &shown,
            &format!(
                "it has no scheme; did you mean https://{}?",
                shown.trim_end_matches('/')
            ),
        ));
    }
    let url =
        url::Url::parse(raw.trim()).map_err(|e| diagnosis::invalid_url(&shown, &e.to_string()))?;
    let Some(host) = url.host().map(|h| h.to_owned()) else {
        return Err(diagnosis::invalid_url(&shown, "it has no host"));
    };
    let host_str = match &host {
        url::Host::Ipv6(ip) => ip.to_string(),
        other => other.to_string(),
    };
    let port_part = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let bracketed = match &host {
        url::Host::Ipv6(ip) => format!("[{ip}]"),
        other => other.to_string(),
    };
    let https_url = format!(
        "https://{bracketed}{port_part}{}",
        url.path().trim_end_matches('/')
    );
    match url.scheme() {
        "https" => {}
        "http" => return Err(diagnosis::http_scheme(&shown, &https_url)),
        other => {
            return Err(diagnosis::invalid_url(
                &shown,
                &format!("the scheme is '{other}'; the Kubernetes API is reached over https://"),
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(diagnosis::invalid_url(
            &shown,
            "it carries a user name or password (user:password@host); put credentials in the connector's auth, never in the URL",
        ));
    }
    let port = url.port().unwrap_or(443);
    let display = format!("{bracketed}:{port}");
    let mut detail = format!("https, host {host_str}, port {port}");
    if url.port().is_none() {
        detail.push_str(" (default)");
    }
    if url.path() != "/" && !url.path().is_empty() {
        detail.push_str(&format!(", path prefix {}", url.path()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(diagnosis::invalid_url(
            &shown,
            "it has a query or fragment, which an API server URL never has",
        ));
    }
    Ok((
        Endpoint {
            url: shown,
            host,
            host_str,
            port,
            display,
        },
        detail,
    ))
}

/// The `dns` stage.
pub(crate) async fn resolve(ep: &Endpoint) -> Result<(Vec<SocketAddr>, String), Failure> {
    match &ep.host {
        url::Host::Ipv4(ip) => Ok((
            vec![SocketAddr::new(IpAddr::V4(*ip), ep.port)],
            format!("{ip} is an IP address: no lookup needed"),
        )),
        url::Host::Ipv6(ip) => Ok((
            vec![SocketAddr::new(IpAddr::V6(*ip), ep.port)],
            format!("{ip} is an IP address: no lookup needed"),
        )),
        url::Host::Domain(name) => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), ep.port))
                .await
                .map_err(|e| diagnosis::dns_failed(name, &e.to_string()))?
                .collect();
            if addrs.is_empty() {
                return Err(diagnosis::dns_failed(
                    name,
                    "the lookup returned no address",
                ));
            }
            let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            Ok((addrs, format!("{name} resolves to {}", list.join(", "))))
        }
    }
}

/// The `tcp` stage: the first address that accepts. The caller bounds the time.
pub(crate) async fn connect(
    ep: &Endpoint,
    addrs: &[SocketAddr],
) -> Result<(TcpStream, String), Failure> {
    let mut last: Option<std::io::Error> = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, format!("connected to {addr}")));
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::other("no address to connect to"));
    Err(match e.kind() {
        std::io::ErrorKind::ConnectionRefused => diagnosis::connection_refused(&ep.display),
        _ => diagnosis::connection_failed(&ep.display, &e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_explained() {
        let (ep, detail) = check_url("https://127.0.0.1:6443").unwrap();
        assert_eq!(ep.port, 6443);
        assert_eq!(ep.display, "127.0.0.1:6443");
        assert!(detail.contains("port 6443"));
        let (ep, _) = check_url("https://[::1]/").unwrap();
        assert_eq!(ep.display, "[::1]:443");
        assert_eq!(ep.host_str, "::1");

        let f = check_url("http://k8s.example.com:6443").unwrap_err();
        assert_eq!(f.reason, diagnosis::Reason::PlainHttp);
        assert!(
            f.hints[0].contains("https://k8s.example.com:6443"),
            "{:?}",
            f.hints
        );

        let f = check_url("k8s.example.com:6443").unwrap_err();
        assert!(
            f.message
                .contains("did you mean https://k8s.example.com:6443"),
            "{}",
            f.message
        );

        let f = check_url("https://admin:hunter2@k8s.example.com").unwrap_err();
        assert!(!f.message.contains("hunter2"), "{}", f.message);
        assert!(
            f.message.contains("https://k8s.example.com"),
            "{}",
            f.message
        );
    }

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(redact_userinfo("https://a:b@h:1/p"), "https://h:1/p");
        assert_eq!(redact_userinfo("h:1"), "h:1");
        assert_eq!(redact_userinfo("https://h/p@x"), "https://h/p@x");
    }
}
