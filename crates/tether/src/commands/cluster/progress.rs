//! Step-by-step progress (`[2/8] connecting to ... done`) and, when a step fails,
//! an error that says which step, what had already been done, and what to run.

use std::io::Write as _;

use anyhow::anyhow;

pub struct Progress {
    total: usize,
    step: usize,
    current: Option<String>,
    done: Vec<String>,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            total,
            step: 0,
            current: None,
            done: Vec::new(),
        }
    }

    /// Starts the next step: prints `[n/total] what ... ` and waits for its end.
    pub fn start(&mut self, what: impl Into<String>) {
        let what = what.into();
        self.step += 1;
        print!("[{}/{}] {what} ... ", self.step, self.total);
        let _ = std::io::stdout().flush();
        self.current = Some(what);
    }

    /// Ends the current step with its result (`done`, `created`, ...).
    pub fn finish(&mut self, result: impl AsRef<str>) {
        println!("{}", result.as_ref());
        self.current = None;
    }

    /// Notes something that now exists (or changed) because of this command, for
    /// the failure message.
    pub fn record(&mut self, what: impl Into<String>) {
        self.done.push(what.into());
    }

    /// Whether anything was recorded as done.
    pub fn changed_anything(&self) -> bool {
        !self.done.is_empty()
    }

    /// The error to return when a step failed: which one, why, what was done
    /// before it, and the `next` steps (how to retry or clean up).
    pub fn failure(&mut self, err: anyhow::Error, next: &str) -> anyhow::Error {
        if self.current.is_some() {
            println!("failed");
        }
        let step = match self.current.take() {
            Some(what) => format!("step {}/{} ({what}) failed", self.step, self.total),
            None => format!("failed after step {}/{}", self.step, self.total),
        };
        let done = if self.done.is_empty() {
            "Nothing had been changed yet.".to_string()
        } else {
            format!("Already done: {}.", self.done.join("; "))
        };
        anyhow!("{step}: {err:#}\n{done}\n{next}")
    }
}
