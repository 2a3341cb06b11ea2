//! Live events of running tasks, from the task to the session that sends them.
//!
//! A task holds an [`Emitter`]; what it emits waits in the [`Outbox`] until the
//! session sends it (`taskEvents`), then until the manager acknowledges it
//! (`taskEventsAck`), so a reconnect re-sends what may not have arrived and the
//! manager stores it once (by sequence number). Bounded: progress events with
//! the same key replace one not yet sent (a rollout reports its latest state,
//! not every step), and a task emits at most [`MAX_EVENTS_PER_TASK`]; past
//! that one `truncated` event says so and the rest are dropped.
//!
//! Log lines (kind `log`, a build's output) have a budget of their own, in
//! bytes ([`MAX_LOG_BYTES_PER_TASK`], GitLab's default job log limit), so a
//! chatty build neither starves the task's other events nor loses its end to
//! the event count: consecutive lines not yet sent travel as one event of up to
//! [`LOG_CHUNK`] bytes (lines joined by `\n`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tether_domain::delegate_protocol::{DelegateMessage, TaskEvent};
use tether_domain::Redactor;
use tokio::sync::Notify;

/// Events one attempt of a task may send in all.
pub const MAX_EVENTS_PER_TASK: u64 = 2000;
/// Longest message sent; longer ones are cut.
const MAX_MESSAGE: usize = 2048;
/// The kind of a log line.
pub const LOG: &str = "log";
/// Log bytes one attempt may send; past them one `truncated` event says so.
pub const MAX_LOG_BYTES_PER_TASK: usize = 4 << 20;
/// The most log bytes one event carries (the manager stores up to 4096 a message).
pub const LOG_CHUNK: usize = 4000;
/// What a log line costs of the budget at least, so that a trickle of empty
/// lines, each sent alone, is bounded in events too.
const MIN_LOG_COST: usize = 64;

#[derive(Default)]
struct TaskLog {
    attempt: u32,
    next_seq: u64,
    /// Not sent yet, with the coalescing key of each.
    unsent: Vec<(Option<String>, TaskEvent)>,
    /// Sent, not acknowledged.
    unacked: Vec<TaskEvent>,
    /// Events other than log lines, counted against MAX_EVENTS_PER_TASK.
    counted: u64,
    truncated: bool,
    log_bytes: usize,
    log_truncated: bool,
}

/// The events of every task this delegate runs, waiting to be sent or acknowledged.
#[derive(Default)]
pub struct Outbox {
    tasks: Mutex<HashMap<String, TaskLog>>,
    /// Fires when something new is waiting to be sent.
    pub wake: Notify,
}

impl Outbox {
    /// An emitter for one attempt of a task (a new attempt starts afresh).
    pub fn emitter(self: &Arc<Self>, task_id: &str, attempt: u32) -> Emitter {
        let mut tasks = self.tasks.lock().unwrap();
        let log = tasks.entry(task_id.to_string()).or_default();
        if log.attempt != attempt {
            *log = TaskLog {
                attempt,
                ..Default::default()
            };
        }
        Emitter {
            outbox: Some(self.clone()),
            task_id: task_id.to_string(),
            redactor: Arc::default(),
        }
    }

    fn push(
        &self,
        task_id: &str,
        key: Option<&str>,
        kind: &str,
        message: &str,
        data: Option<Value>,
    ) {
        let mut message = message.to_string();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let at_ms = now_ms();
        {
            let mut tasks = self.tasks.lock().unwrap();
            let Some(log) = tasks.get_mut(task_id) else {
                return; // finished and forgotten
            };
            if let Some(k) = key {
                if let Some((_, e)) = log
                    .unsent
                    .iter_mut()
                    .find(|(ek, _)| ek.as_deref() == Some(k))
                {
                    e.kind = kind.to_string();
                    e.message = message;
                    e.data = data;
                    e.at_ms = at_ms;
                    return; // coalesced: nothing new to wake for
                }
            }
            let (kind, message, data) = if kind == LOG && key.is_none() {
                if log.log_truncated {
                    return;
                }
                let cost = (message.len() + 1).max(MIN_LOG_COST);
                if log.log_bytes + cost > MAX_LOG_BYTES_PER_TASK {
                    log.log_truncated = true;
                    (
                        "truncated".to_string(),
                        format!("the log is longer than {} MiB: the rest of it is not recorded; the task goes on and its result is", MAX_LOG_BYTES_PER_TASK >> 20),
                        None,
                    )
                } else {
                    log.log_bytes += cost;
                    if let Some((None, last)) = log.unsent.last_mut() {
                        if last.kind == LOG
                            && last.data.is_none()
                            && data.is_none()
                            && last.message.len() + 1 + message.len() <= LOG_CHUNK
                        {
                            last.message.push('\n');
                            last.message.push_str(&message);
                            return; // joined to an event already waiting
                        }
                    }
                    (kind.to_string(), message, data)
                }
            } else {
                if log.truncated {
                    return;
                }
                log.counted += 1;
                if log.counted >= MAX_EVENTS_PER_TASK {
                    log.truncated = true;
                    (
                        "truncated".to_string(),
                        format!("more than {MAX_EVENTS_PER_TASK} events: the rest of this task's events are not recorded; its result is"),
                        None,
                    )
                } else {
                    (kind.to_string(), message, data)
                }
            };
            log.next_seq += 1;
            let event = TaskEvent {
                seq: log.next_seq,
                at_ms,
                kind,
                message,
                data,
            };
            log.unsent.push((key.map(str::to_string), event));
        }
        self.wake.notify_one();
    }

    /// Moves what waits to be sent to "sent, not acknowledged" and returns it,
    /// one message per task.
    pub fn take_unsent(&self) -> Vec<DelegateMessage> {
        let mut tasks = self.tasks.lock().unwrap();
        let mut out = Vec::new();
        for (id, log) in tasks.iter_mut() {
            if log.unsent.is_empty() {
                continue;
            }
            let events: Vec<TaskEvent> = log.unsent.drain(..).map(|(_, e)| e).collect();
            log.unacked.extend(events.iter().cloned());
            out.push(DelegateMessage::TaskEvents {
                task_id: id.clone(),
                attempt: log.attempt,
                events,
            });
        }
        out
    }

    /// Everything not acknowledged, to send again on a new connection.
    pub fn resend_all(&self) -> Vec<DelegateMessage> {
        let mut out: Vec<DelegateMessage> = {
            let tasks = self.tasks.lock().unwrap();
            tasks
                .iter()
                .filter(|(_, l)| !l.unacked.is_empty())
                .map(|(id, l)| DelegateMessage::TaskEvents {
                    task_id: id.clone(),
                    attempt: l.attempt,
                    events: l.unacked.clone(),
                })
                .collect()
        };
        out.extend(self.take_unsent());
        out
    }

    /// The manager stored events up to `seq`.
    pub fn ack(&self, task_id: &str, attempt: u32, seq: u64) {
        if let Some(log) = self.tasks.lock().unwrap().get_mut(task_id) {
            if log.attempt == attempt {
                log.unacked.retain(|e| e.seq > seq);
            }
        }
    }

    /// The task's result was acknowledged: its events are of no more use here.
    pub fn finish(&self, task_id: &str) {
        self.tasks.lock().unwrap().remove(task_id);
    }
}

/// What a task reports its progress with. Cheap to clone; a no-op emitter
/// ([`Emitter::none`]) serves callers that want no events.
///
/// Events leave the delegate like outcomes do: with every secret value the
/// task received replaced ([`Emitter::redacting`], set by `tasks::run`).
#[derive(Clone)]
pub struct Emitter {
    outbox: Option<Arc<Outbox>>,
    task_id: String,
    redactor: Arc<Redactor>,
}

impl Emitter {
    pub fn none() -> Emitter {
        Emitter {
            outbox: None,
            task_id: String::new(),
            redactor: Arc::default(),
        }
    }

    /// The same emitter, removing these secret values from what it emits.
    pub fn redacting(mut self, redactor: Redactor) -> Emitter {
        self.redactor = Arc::new(redactor);
        self
    }

    /// One event.
    pub fn emit(&self, kind: &str, message: &str, data: Option<Value>) {
        if let Some(o) = &self.outbox {
            let (message, data) = self.scrub(message, data);
            o.push(&self.task_id, None, kind, &message, data);
        }
    }

    /// A state that replaces the previous one of the same `key` if that one
    /// has not been sent yet (rollout progress of one object).
    pub fn progress(&self, key: &str, kind: &str, message: &str, data: Option<Value>) {
        if let Some(o) = &self.outbox {
            let (message, data) = self.scrub(message, data);
            o.push(&self.task_id, Some(key), kind, &message, data);
        }
    }

    fn scrub(&self, message: &str, mut data: Option<Value>) -> (String, Option<Value>) {
        if let Some(d) = data.as_mut() {
            self.redactor.value(d);
        }
        (self.redactor.text(message), data)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(m: &DelegateMessage) -> Vec<(u64, String)> {
        match m {
            DelegateMessage::TaskEvents { events, .. } => {
                events.iter().map(|e| (e.seq, e.message.clone())).collect()
            }
            _ => panic!("not events"),
        }
    }

    #[test]
    fn progress_coalesces_until_sent_and_acks_forget() {
        let o = Arc::new(Outbox::default());
        let e = o.emitter("t", 1);
        e.emit("info", "start", None);
        e.progress("deploy/web", "progress", "0/3 updated", None);
        e.progress("deploy/web", "progress", "1/3 updated", None);
        let sent = o.take_unsent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            events(&sent[0]),
            [(1, "start".to_string()), (2, "1/3 updated".to_string())]
        );
        // Sent: a new progress event is a new event.
        e.progress("deploy/web", "progress", "2/3 updated", None);
        assert_eq!(
            events(&o.take_unsent()[0]),
            [(3, "2/3 updated".to_string())]
        );
        // Unacknowledged events go again on a new connection, once acked not.
        assert_eq!(events(&o.resend_all()[0]).len(), 3);
        o.ack("t", 1, 2);
        assert_eq!(events(&o.resend_all()[0]), [(3, "2/3 updated".to_string())]);
        o.finish("t");
        e.emit("info", "after the end", None);
        assert!(o.resend_all().is_empty());
    }

    #[test]
    fn a_task_emits_a_bounded_number_of_events() {
        let o = Arc::new(Outbox::default());
        let e = o.emitter("t", 1);
        for i in 0..MAX_EVENTS_PER_TASK + 50 {
            e.emit("info", &format!("event {i}"), None);
        }
        let sent = o.take_unsent();
        let ev = events(&sent[0]);
        assert_eq!(ev.len() as u64, MAX_EVENTS_PER_TASK);
        assert!(
            ev.last().unwrap().1.contains("not recorded"),
            "{:?}",
            ev.last()
        );
    }

    #[test]
    fn log_lines_travel_joined_and_have_a_byte_budget_of_their_own() {
        let o = Arc::new(Outbox::default());
        let e = o.emitter("t", 1);
        // More lines than the event count allows: none is lost.
        let n = MAX_EVENTS_PER_TASK as usize * 3;
        for i in 0..n {
            e.emit(LOG, &format!("line-{i}"), None);
        }
        e.emit("info", "after the log", None);
        let ev = events(&o.take_unsent()[0]);
        let lines: Vec<String> = ev
            .iter()
            .filter(|(_, m)| m.starts_with("line-"))
            .flat_map(|(_, m)| m.split('\n').map(str::to_string).collect::<Vec<_>>())
            .collect();
        assert_eq!(
            lines,
            (0..n).map(|i| format!("line-{i}")).collect::<Vec<_>>()
        );
        assert!(ev.iter().all(|(_, m)| m.len() <= LOG_CHUNK));
        assert!(ev.len() < n / 100, "{} events for {n} lines", ev.len());
        assert_eq!(ev.last().unwrap().1, "after the log");

        // Past the byte budget: one truncated event, and the task's other
        // events still go.
        let line = "x".repeat(1000);
        for _ in 0..(MAX_LOG_BYTES_PER_TASK / 1000 + 10) {
            e.emit(LOG, &line, None);
        }
        e.emit("result", "exit code 0", None);
        let ev = events(&o.take_unsent()[0]);
        let truncated: Vec<_> = ev
            .iter()
            .filter(|(_, m)| m.contains("not recorded"))
            .collect();
        assert_eq!(truncated.len(), 1, "{truncated:?}");
        assert_eq!(ev.last().unwrap().1, "exit code 0");
        let sent: usize = ev
            .iter()
            .filter(|(_, m)| m.starts_with('x'))
            .map(|(_, m)| m.len())
            .sum();
        assert!(sent <= MAX_LOG_BYTES_PER_TASK, "{sent}");
    }

    #[test]
    fn a_new_attempt_starts_its_numbering_afresh() {
        let o = Arc::new(Outbox::default());
        o.emitter("t", 1).emit("info", "a", None);
        o.take_unsent();
        o.emitter("t", 2).emit("info", "b", None);
        let all = o.resend_all();
        assert_eq!(all.len(), 1);
        assert_eq!(events(&all[0]), [(1, "b".to_string())]);
    }
}
