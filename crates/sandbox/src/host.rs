//! The host imports of the flavor world (`flavorbox:registry/host`): the log
//! sink and the `repository-exists` lookup, with their per-call state. The
//! logic here is version-neutral: each WIT version's module in `world`
//! implements its generated `Host` trait by delegating to [`HostState`].
//!
//! Linked through a projection of the call's store data to [`HostState`]
//! alone: these functions see the log lines, the lookup and the deadline,
//! nothing of WASI or of the other capabilities.

use std::sync::Arc;
use std::time::Duration;

use super::limits::{Deadline, Limits};
use super::text::{clean_truncated, truncate};
use crate::flavor::{LogLevel, LogLine};

/// How many `repository-exists` lookups one call may make.
pub const MAX_LOOKUPS_PER_CALL: usize = 16;

/// Why a `repository-exists` lookup failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The lookup hit the call's deadline: the call times out.
    TimedOut,
    /// Any other failure; the (coarse) reason is handed to the guest.
    Failed(String),
}

/// Answers the `repository-exists` import for one component's registry.
pub trait RepositoryLookup: Send + Sync {
    /// Whether `repository` exists; must return within `timeout`.
    fn repository_exists(&self, repository: &str, timeout: Duration) -> Result<bool, LookupError>;
}

/// Raised by a host import that ran into the call's deadline.
#[derive(Debug)]
pub struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the call's deadline passed during a host call")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// The state of the host imports for one call.
pub struct HostState {
    /// The call's log lines.
    pub logs: LogSink,
    /// The lookup, when granted for this call.
    lookup: Option<Arc<dyn RepositoryLookup>>,
    lookups: usize,
    deadline: Deadline,
    /// A lookup ran into the deadline.
    pub deadline_hit: bool,
}

impl HostState {
    /// State for one call; `lookup` only when the grant allows it.
    pub fn new(
        logs: LogSink,
        lookup: Option<Arc<dyn RepositoryLookup>>,
        deadline: Deadline,
    ) -> Self {
        HostState {
            logs,
            lookup,
            lookups: 0,
            deadline,
            deadline_hit: false,
        }
    }

    /// The call's deadline.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// `log`: keeps the line in the call's bounded log.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push(level, message);
    }

    /// `repository-exists`: the lookup, when granted, bounded per call and
    /// by the call's deadline. `Err` (a trap) ends the call at the deadline.
    pub fn repository_exists(
        &mut self,
        repository: &str,
    ) -> wasmtime::Result<Result<bool, String>> {
        let Some(lookup) = self.lookup.clone() else {
            return Ok(Err(
                "capability `repository-exists` is not granted: the flavor must ask for it in its metadata, and the operator must allow it"
                    .into(),
            ));
        };
        if self.lookups >= MAX_LOOKUPS_PER_CALL {
            return Ok(Err(format!(
                "at most {MAX_LOOKUPS_PER_CALL} repository lookups per call"
            )));
        }
        self.lookups += 1;
        // The one path grammar, before the name goes anywhere near a lookup.
        if let Err(e) = flavorbox_grammar::RepositoryPath::parse(repository) {
            return Ok(Err(truncate(&e.to_string(), 300)));
        }
        if self.deadline.passed() {
            self.deadline_hit = true;
            return Err(wasmtime::Error::new(DeadlineExceeded));
        }
        match lookup.repository_exists(repository, self.deadline.remaining()) {
            Ok(exists) => Ok(Ok(exists)),
            Err(LookupError::TimedOut) => {
                self.deadline_hit = true;
                Err(wasmtime::Error::new(DeadlineExceeded))
            }
            Err(LookupError::Failed(reason)) => Ok(Err(truncate(&reason, 1000))),
        }
    }
}

/// Bounded log lines of one call, also forwarded to `tracing`.
pub struct LogSink {
    lines: Vec<LogLine>,
    dropped: usize,
    max_lines: usize,
    max_line_bytes: usize,
    flavor: String,
    tenant: String,
}

impl LogSink {
    /// A sink for one call of `flavor` made for `tenant`.
    pub fn new(limits: &Limits, flavor: &str, tenant: &str) -> Self {
        LogSink {
            lines: Vec::new(),
            dropped: 0,
            max_lines: limits.max_log_lines,
            max_line_bytes: limits.max_log_line_bytes,
            flavor: flavor.to_string(),
            tenant: tenant.to_string(),
        }
    }

    /// Keeps a line, truncated then escaped; counts it as dropped past the cap.
    pub fn push(&mut self, level: LogLevel, message: &str) {
        if self.lines.len() >= self.max_lines {
            self.dropped += 1;
            return;
        }
        let message = clean_truncated(message, self.max_line_bytes);
        tracing::info!(target: "flavorbox::guest", flavor = %self.flavor, tenant = %self.tenant, level = level.as_str(), "{message}");
        self.lines.push(LogLine { level, message });
    }

    /// Keeps captured stdio as lines.
    pub fn capture(&mut self, level: LogLevel, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.push(level, line);
        }
    }

    /// The lines, with a last one saying how many were dropped.
    pub fn finish(mut self) -> Vec<LogLine> {
        if self.dropped > 0 {
            let dropped = self.dropped;
            self.max_lines += 1;
            self.push(
                LogLevel::Warn,
                &format!(
                    "{dropped} more log lines dropped (limit {})",
                    self.max_lines - 1
                ),
            );
        }
        self.lines
    }
}
