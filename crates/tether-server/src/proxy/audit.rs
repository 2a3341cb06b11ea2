//! What an audit entry says about a request: the Kubernetes verb, namespace,
//! resource and name read from the path (never the body, never a header), and
//! the entry written when the request or session ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::Method;
use tether_store::{AuditEntry, Store};

/// The parts of a Kubernetes API path an audit entry keeps.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Classified {
    pub verb: String,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub name: Option<String>,
    /// `exec`, `attach` or `portforward`.
    pub session: Option<String>,
    /// A session's target from its query: the container (exec, attach), the
    /// program (exec: the first `command` word only, never an argument,
    /// which can carry a secret), the ports (port-forward, when the request
    /// names them).
    pub container: Option<String>,
    pub program: Option<String>,
    pub ports: Option<String>,
}

/// Reads `/api/v1/namespaces/NS/pods/NAME/exec`,
/// `/apis/GROUP/VERSION/RESOURCE`, `/api/v1/watch/...` and the rest.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> Classified {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let mut rest = rest;
    let mut watch = query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1" || kv == "watch")
    });
    if rest.first() == Some(&"watch") {
        watch = true;
        rest = &rest[1..];
    }
    let mut c = Classified::default();
    if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        c.namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    if let Some(r) = rest.first() {
        c.resource = Some(r.to_string());
    }
    if let Some(n) = rest.get(1) {
        c.name = Some(n.to_string());
    }
    if let Some(sub) = rest.get(2) {
        if matches!(*sub, "exec" | "attach" | "portforward") {
            c.session = Some(sub.to_string());
        }
        c.resource = Some(format!("{}/{sub}", rest[0]));
    }
    if let (Some(kind), Some(q)) = (c.session.as_deref(), query) {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let first = |key: &str| {
            pairs
                .iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        if kind != "portforward" {
            c.container = first("container");
        }
        if kind == "exec" {
            c.program = first("command");
        }
        if kind == "portforward" {
            let ports: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| k == "ports")
                .flat_map(|(_, v)| v.split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if !ports.is_empty() {
                c.ports = Some(ports.join(","));
            }
        }
    }
    let named = c.name.is_some();
    c.verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if named || c.resource.is_none() => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    }
    .to_string();
    c
}

/// Bytes each way, counted while the request runs.
#[derive(Default)]
pub struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// Writes the entry when dropped: when the response body ends (or the client
/// goes away), or the session closes.
pub struct AuditGuard {
    store: Option<Store>,
    entry: Option<AuditEntry>,
    started: Instant,
    pub counters: Arc<Counters>,
    error: Mutex<Option<String>>,
}

impl AuditGuard {
    pub fn new(store: Store, entry: AuditEntry) -> Self {
        AuditGuard {
            store: Some(store),
            entry: Some(entry),
            started: Instant::now(),
            counters: Arc::new(Counters::default()),
            error: Mutex::new(None),
        }
    }

    /// A guard that records nothing.
    pub fn none() -> Self {
        AuditGuard {
            store: None,
            entry: None,
            started: Instant::now(),
            counters: Arc::new(Counters::default()),
            error: Mutex::new(None),
        }
    }

    /// Records nothing after all (another manager records this request).
    pub fn discard(&mut self) {
        self.entry = None;
    }

    pub fn set_status(&mut self, status: u16) {
        if let Some(e) = &mut self.entry {
            e.status = status;
        }
    }

    pub fn set_delegate(&mut self, id: &str) {
        if let Some(e) = &mut self.entry {
            e.delegate_id = Some(id.to_string());
        }
    }

    /// A port-forward whose request named no ports.
    pub fn wants_ports(&self) -> bool {
        self.entry
            .as_ref()
            .is_some_and(|e| e.session.as_deref() == Some("portforward") && e.ports.is_none())
    }

    pub fn set_ports(&mut self, ports: String) {
        if let Some(e) = &mut self.entry {
            e.ports = Some(ports);
        }
    }

    /// Why the stream ended early; the first reason stays.
    pub fn fail(&self, why: impl Into<String>) {
        let mut e = self.error.lock().unwrap();
        if e.is_none() {
            *e = Some(why.into());
        }
    }
}

impl Drop for AuditGuard {
    fn drop(&mut self) {
        let (Some(mut e), Some(store)) = (self.entry.take(), self.store.take()) else {
            return;
        };
        e.duration_ms = self.started.elapsed().as_millis() as i64;
        e.ended_at = e.started_at + e.duration_ms;
        e.bytes_in = self.counters.bytes_in.load(Ordering::Relaxed) as i64;
        e.bytes_out = self.counters.bytes_out.load(Ordering::Relaxed) as i64;
        e.error = self.error.lock().unwrap().take();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(err) = store.record_audit(&e).await {
                    tracing::warn!(error = %err, "cannot record an audit entry");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(
        m: Method,
        p: &str,
        q: Option<&str>,
    ) -> (String, Option<String>, Option<String>, Option<String>) {
        let c = classify(&m, p, q);
        (c.verb, c.namespace, c.resource, c.name)
    }

    #[test]
    fn reads_verbs_and_objects_from_paths() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/web/pods", None),
            ("list".into(), s("web"), s("pods"), None)
        );
        assert_eq!(
            c(
                Method::GET,
                "/api/v1/namespaces/web/pods",
                Some("watch=true&resourceVersion=1")
            ),
            ("watch".into(), s("web"), s("pods"), None)
        );
        assert_eq!(
            c(
                Method::DELETE,
                "/apis/apps/v1/namespaces/web/deployments/api",
                None
            ),
            ("delete".into(), s("web"), s("deployments"), s("api"))
        );
        assert_eq!(
            c(Method::PATCH, "/api/v1/namespaces/web", None),
            ("patch".into(), None, s("namespaces"), s("web"))
        );
        assert_eq!(
            c(Method::GET, "/version", None),
            ("get".into(), None, None, None)
        );
        let exec = classify(
            &Method::POST,
            "/api/v1/namespaces/web/pods/p/exec",
            Some("command=sh"),
        );
        assert_eq!(exec.session.as_deref(), Some("exec"));
        assert_eq!(exec.resource.as_deref(), Some("pods/exec"));
        assert_eq!(exec.name.as_deref(), Some("p"));
    }

    #[test]
    fn sessions_keep_their_target_but_no_command_argument() {
        let exec = classify(
            &Method::POST,
            "/api/v1/namespaces/web/pods/p/exec",
            Some("command=sh&command=-c&command=echo%20hunter2&container=app&stdin=true"),
        );
        assert_eq!(exec.container.as_deref(), Some("app"));
        assert_eq!(exec.program.as_deref(), Some("sh"));
        let all = format!("{exec:?}");
        assert!(!all.contains("hunter2") && !all.contains("-c"), "{all}");
        let attach = classify(
            &Method::POST,
            "/api/v1/namespaces/web/pods/p/attach",
            Some("container=side&stdin=true&command=x"),
        );
        assert_eq!(attach.container.as_deref(), Some("side"));
        assert_eq!(attach.program, None);
        let pf = classify(
            &Method::GET,
            "/api/v1/namespaces/web/pods/p/portforward",
            Some("ports=8080&ports=9000,9001"),
        );
        assert_eq!(pf.ports.as_deref(), Some("8080,9000,9001"));
        let plain = classify(
            &Method::GET,
            "/api/v1/namespaces/web/pods",
            Some("container=x&command=y&ports=1"),
        );
        assert_eq!(
            (plain.container, plain.program, plain.ports),
            (None, None, None)
        );
    }
}
