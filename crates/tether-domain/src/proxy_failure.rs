//! How the proxy answers its own failures (no eligible delegate, a revoked
//! token, a connector whose credentials it cannot use) so that kubectl prints
//! the message.
//!
//! Every kubectl command starts with discovery (`/api`, `/apis`, ...), and
//! client-go's discovery client decodes no `Status` body: a JSON failure there
//! reaches the user as "an error on the server ("unknown")". It shows the
//! server's words only when the body is plain text and the code is 403 or a
//! 5xx other than 503, which has a fixed text ("the server is currently
//! unable to handle the request"). So a failure of a discovery request is
//! answered as text, with 502 for 503; every other request gets the
//! Kubernetes `Status` JSON that client libraries decode.

/// A failure as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureAnswer {
    pub code: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Is `path` (the Kubernetes API path, without tether's prefix) a discovery
/// document: `/api`, `/api/v1`, `/apis`, `/apis/GROUP`, `/apis/GROUP/VERSION`,
/// `/version`?
pub fn is_discovery(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    matches!(
        segs.as_slice(),
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] | ["version"]
    )
}

/// The answer for a failure of a request to `path`.
pub fn answer(code: u16, reason: &str, message: &str, path: &str) -> FailureAnswer {
    if is_discovery(path) && (code == 403 || code >= 500) {
        return FailureAnswer {
            code: if code == 503 { 502 } else { code },
            content_type: "text/plain; charset=utf-8",
            body: message.to_string(),
        };
    }
    FailureAnswer {
        code,
        content_type: "application/json",
        body: serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents() {
        for p in [
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/version",
            "/apis/apps/v1/",
        ] {
            assert!(is_discovery(p), "{p}");
        }
        for p in [
            "/api/v1/pods",
            "/apis/apps/v1/deployments",
            "/api/v1/namespaces/x/pods",
            "/",
            "/healthz",
        ] {
            assert!(!is_discovery(p), "{p}");
        }
    }

    #[test]
    fn discovery_failures_are_text_that_kubectl_prints() {
        let a = answer(503, "ServiceUnavailable", "no delegate", "/api");
        assert_eq!((a.code, a.body.as_str()), (502, "no delegate"));
        assert!(a.content_type.starts_with("text/plain"));
        let a = answer(403, "Forbidden", "no grant", "/apis");
        assert_eq!(a.code, 403);
        assert!(a.content_type.starts_with("text/plain"));
        // 401 and 400 have fixed texts in kubectl either way: Status JSON.
        assert_eq!(
            answer(401, "Unauthorized", "x", "/api").content_type,
            "application/json"
        );
        let a = answer(503, "ServiceUnavailable", "no delegate", "/api/v1/pods");
        assert_eq!((a.code, a.content_type), (503, "application/json"));
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["message"].as_str()),
            (Some("Status"), Some("no delegate"))
        );
    }
}
