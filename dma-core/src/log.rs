//! Messages the kernel would print with `dev_warn` / `pr_err`: where they go.
//!
//! Each [`System`](crate::System) has a sink; the default writes to standard error.
//! Tests install a capturing sink to assert the exact message a misuse produces.

use std::fmt;
use std::sync::{Arc, RwLock};

/// How serious a message is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    /// Something worked but looks wrong.
    Info,
    /// An operation failed or was refused (the kernel's `dev_warn` / `WARN`).
    Warn,
    /// Misuse that would corrupt memory on hardware (the kernel's `dev_err`).
    Error,
}

/// A function that receives every message: level and text (`"<device>: <what happened>"`).
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// Where a system's messages go.
pub(crate) struct Log {
    sink: RwLock<Option<Sink>>,
}

impl Log {
    pub(crate) fn new() -> Log {
        Log { sink: RwLock::new(None) }
    }

    pub(crate) fn set(&self, sink: Option<Sink>) {
        *self.sink.write().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    pub(crate) fn emit(&self, level: Level, who: &str, args: fmt::Arguments<'_>) {
        let text = format!("{who}: {args}");
        let sink = self.sink.read().unwrap_or_else(|e| e.into_inner()).clone();
        match sink {
            Some(f) => f(level, &text),
            None => eprintln!("dma: {text}"),
        }
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Log")
    }
}
