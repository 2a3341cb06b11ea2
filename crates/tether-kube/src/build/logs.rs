//! The build container's log, line by line, none lost and none twice.
//!
//! Lines are read with their timestamps (`timestamps=true`). A read that
//! starts again (the follow ended early, or the final read after the
//! container ended) asks from the last second seen (`sinceTime` has second
//! precision) and skips what was already emitted: lines before the last
//! timestamp, and as many lines at that timestamp as were emitted.

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::LogParams;
use kube::Api;

use super::objects::BUILD_CONTAINER;

/// Where the log has been read up to.
#[derive(Debug, Default)]
pub struct LogCursor {
    last: Option<Timestamp>,
    /// Lines emitted with timestamp `last`.
    seen_at_last: usize,
    /// Lines emitted in all.
    pub lines: u64,
}

impl LogCursor {
    /// The text of `raw` (`<RFC 3339 timestamp> <text>`) if it was not emitted
    /// yet; `at_last` counts the lines of this read at the last timestamp.
    fn accept(&mut self, raw: &str, at_last: &mut usize) -> Option<String> {
        let parsed = raw
            .split_once(' ')
            .and_then(|(ts, text)| Some((ts.parse::<Timestamp>().ok()?, text)))
            .or_else(|| Some((raw.parse::<Timestamp>().ok()?, "")));
        let Some((ts, text)) = parsed else {
            self.lines += 1;
            return Some(raw.to_string());
        };
        match self.last {
            Some(last) if ts < last => return None,
            Some(last) if ts == last => {
                *at_last += 1;
                if *at_last <= self.seen_at_last {
                    return None;
                }
                self.seen_at_last += 1;
            }
            _ => {
                self.last = Some(ts);
                self.seen_at_last = 1;
                *at_last = 1;
            }
        }
        self.lines += 1;
        Some(text.to_string())
    }

    /// Reads the build container's log (`follow`: until the stream ends),
    /// handing each new line to `emit`.
    pub async fn read(
        &mut self,
        api: &Api<Pod>,
        pod: &str,
        follow: bool,
        emit: &(impl Fn(String) + Sync),
    ) -> Result<(), kube::Error> {
        let params = LogParams {
            container: Some(BUILD_CONTAINER.to_string()),
            follow,
            timestamps: true,
            since_time: self
                .last
                .map(|t| Timestamp::from_second(t.as_second()).unwrap_or(t)),
            ..Default::default()
        };
        let mut reader = Box::pin(api.log_stream(pod, &params).await?);
        let mut at_last = 0usize;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .await
                .map_err(kube::Error::ReadEvents)?;
            if n == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&buf);
            let line = text.trim_end_matches(['\n', '\r']);
            if let Some(l) = self.accept(line, &mut at_last) {
                emit(l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_read_emits_only_what_is_new() {
        let mut c = LogCursor::default();
        let first = [
            "2026-12-02T01:00:00.1Z a",
            "2026-12-02T01:00:01.5Z b",
            "2026-12-02T01:00:01.5Z b",
        ];
        let mut n = 0;
        let got: Vec<_> = first.iter().filter_map(|l| c.accept(l, &mut n)).collect();
        assert_eq!(got, ["a", "b", "b"]);
        // Read again from the second 01:00:01: one more `b` at the same instant, then `c`.
        let second = [
            "2026-12-02T01:00:01.2Z x",
            "2026-12-02T01:00:01.5Z b",
            "2026-12-02T01:00:01.5Z b",
            "2026-12-02T01:00:01.5Z b",
            "2026-12-02T01:00:02Z c",
            "2026-12-02T01:00:02Z",
        ];
        let mut n = 0;
        let got: Vec<_> = second.iter().filter_map(|l| c.accept(l, &mut n)).collect();
        assert_eq!(got, ["b", "c", ""]);
        assert_eq!(c.lines, 6);
    }
}
