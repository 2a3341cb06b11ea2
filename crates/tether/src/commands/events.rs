//! Task events at the command line: reading a Server-Sent Events stream from
//! the manager, and printing each task event as a line (`-o json`: one JSON
//! object per line). `tether task events ID` follows a task; `tether connector
//! test` and `tether deploy` print their tasks' events the same way.

use std::time::Duration;

use anyhow::{bail, Result};
use reqwest::Method;
use serde_json::Value;

use super::client::ApiClient;
use super::output::OutputFormat;

/// One event of the stream.
#[derive(Debug, Default, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    /// `message` when the server named none.
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::String(self.data.clone()))
    }
}

/// Splits a byte stream into events.
#[derive(Default)]
pub struct SseParser {
    buf: String,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(nl) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data {
                    let mut e = std::mem::take(&mut self.current);
                    if e.event.is_empty() {
                        e.event = "message".into();
                    }
                    out.push(e);
                } else {
                    self.current = SseEvent::default();
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue; // keep-alive comment
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.current.id = Some(value.to_string()),
                "event" => self.current.event = value.to_string(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

/// Reads `resp` to its end, handing each event to `on_event`; stops early
/// when it returns false.
pub async fn read(
    mut resp: reqwest::Response,
    mut on_event: impl FnMut(SseEvent) -> bool,
) -> Result<()> {
    let mut parser = SseParser::default();
    while let Some(chunk) = resp.chunk().await? {
        for e in parser.feed(&chunk) {
            if !on_event(e) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One task event as the CLI prints it.
pub fn line(e: &Value, format: OutputFormat) -> String {
    match format {
        OutputFormat::Table => {
            let at = e["atMs"]
                .as_i64()
                .and_then(|ms| {
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
                })
                .map(|t| {
                    format!(
                        "{:02}:{:02}:{:02}.{:03}",
                        t.hour(),
                        t.minute(),
                        t.second(),
                        t.millisecond()
                    )
                })
                .unwrap_or_default();
            format!(
                "{at} {:<9} {}",
                e["kind"].as_str().unwrap_or("-"),
                e["message"].as_str().unwrap_or_default()
            )
        }
        _ => e.to_string(),
    }
}

/// Follows `GET /api/v1/tasks/{id}/events` until the task is finished,
/// printing every event; reconnects after a lost connection (a manager
/// restart) and continues after the last event seen. Returns the `end` data.
pub async fn follow_task(
    client: &ApiClient,
    task_id: &str,
    format: OutputFormat,
    mut on_event: impl FnMut(&Value),
) -> Result<Value> {
    follow_task_events(client, task_id, |v| {
        println!("{}", line(v, format));
        on_event(v);
    })
    .await
}

/// [`follow_task`] handing each event to `on_event` only, which prints it
/// as it likes (`tether build run` prints log lines as they are).
pub async fn follow_task_events(
    client: &ApiClient,
    task_id: &str,
    mut on_event: impl FnMut(&Value),
) -> Result<Value> {
    let path = format!("/api/v1/tasks/{task_id}/events");
    let mut last: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let mut end = None;
        let outcome = match client
            .event_stream(Method::GET, &path, &[], last.as_deref())
            .await
        {
            Ok(resp) => {
                read(resp, |e| match e.event.as_str() {
                    "task" => {
                        failures = 0;
                        last = e.id.clone().or(last.take());
                        on_event(&e.json());
                        true
                    }
                    "end" => {
                        end = Some(e.json());
                        false
                    }
                    _ => true,
                })
                .await
            }
            Err(e) if e.to_string().contains("[404 ") => return Err(e),
            Err(e) => Err(e),
        };
        if let Some(end) = end {
            return Ok(end);
        }
        failures += 1;
        if failures > 60 {
            match outcome {
                Err(e) => bail!("lost the task's event stream and could not reconnect: {e}"),
                Ok(()) => bail!("the task's event stream kept ending before the task did"),
            }
        }
        // The manager restarts or another one takes over: try again shortly.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.feed(b": keep-alive\n\nid: 1.1\nevent: ta").is_empty());
        let got = p.feed(b"sk\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id.as_deref(), Some("1.1"));
        assert_eq!(got[0].event, "task");
        assert_eq!(got[0].json()["a"], 1);
        assert_eq!(got[1].event, "message");
        assert_eq!(got[1].data, "x\ny");
    }
}
