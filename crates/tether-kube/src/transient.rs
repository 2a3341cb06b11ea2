//! Retrying the API server's "try again" answers.
//!
//! An API server answers some requests that will succeed a moment later with
//! a failure that says so: `429 TooManyRequests` (priority and fairness),
//! `500 ServerTimeout` (for example "No API token found for service account
//! default, retry after the token is automatically created" when a Pod is
//! created in a namespace seconds old) and `503`/`504` while it starts or a
//! webhook is slow. Each carries `details.retryAfterSeconds`. client-go's
//! callers retry these; kube-rs leaves it to us, so every create and apply of
//! a deploy or a build goes through [`retrying`], bounded in attempts and time
//! so a server that keeps refusing is reported, not waited on forever.

use std::future::Future;
use std::time::Duration;

/// How long all retries of one request may wait in total.
const BUDGET: Duration = Duration::from_secs(30);
/// The longest single wait, whatever the server asks for.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// How long the server asked to wait before trying `e` again, if `e` is an
/// answer worth retrying.
pub fn retry_after(e: &kube::Error) -> Option<Duration> {
    let kube::Error::Api(s) = e else {
        return None;
    };
    let asked = s
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|s| *s > 0);
    let transient = match s.code {
        429 | 503 | 504 => true,
        500 => s.reason == "ServerTimeout" || asked.is_some(),
        _ => false,
    };
    transient.then(|| Duration::from_secs(u64::from(asked.unwrap_or(1))).min(MAX_WAIT))
}

/// Runs `request` until it succeeds, fails for good, or the retry budget is
/// spent; the last failure is returned as it came.
pub async fn retrying<T, F, Fut>(mut request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut waited = Duration::ZERO;
    loop {
        match request().await {
            Err(e) => match retry_after(&e) {
                Some(wait) if waited + wait <= BUDGET => {
                    tracing::debug!(error = %e, ?wait, "the API server asked to retry");
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                _ => return Err(e),
            },
            ok => return ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn status(code: u16, reason: &str, retry_after_seconds: u32) -> kube::Error {
        let mut s: Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "reason": reason, "message": "m",
            "details": {"retryAfterSeconds": retry_after_seconds}
        }))
        .expect("a Status");
        s.code = code;
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn only_try_again_answers_are_retried() {
        assert_eq!(
            retry_after(&status(500, "ServerTimeout", 1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after(&status(429, "TooManyRequests", 60)),
            Some(MAX_WAIT),
            "a long wait is capped"
        );
        assert_eq!(retry_after(&status(409, "AlreadyExists", 0)), None);
        assert_eq!(retry_after(&status(403, "Forbidden", 0)), None);
        assert_eq!(retry_after(&status(500, "InternalError", 0)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_timeout_is_retried_until_it_succeeds() {
        let calls = AtomicU32::new(0);
        let out = retrying(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(status(500, "ServerTimeout", 1))
            } else {
                Ok("created")
            }
        })
        .await;
        assert_eq!(out.expect("the third try"), "created");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_keeps_refusing_is_reported_within_the_budget() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let out: Result<(), _> = retrying(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(status(429, "TooManyRequests", 5))
        })
        .await;
        assert!(matches!(out, Err(kube::Error::Api(s)) if s.code == 429));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            7,
            "30 s of 5 s waits, then the last answer"
        );
        assert!(start.elapsed() <= BUDGET);
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_refusal_is_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retrying(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(status(403, "Forbidden", 0))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
