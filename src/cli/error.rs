//! The tool's one error: a message for the person at the terminal, and whether the command
//! line or the command failed.

use std::fmt;

use crate::store::StoreError;

/// Why a command stopped.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The command line asks for something that cannot be done as given (exit 2).
    Usage(String),
    /// The command was understood but failed (exit 1).
    Failed(String),
    /// Stdout was closed by its reader (`hookdock events list | head`): stop quietly.
    Closed,
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        CliError::Failed(message.into())
    }

    /// A store error while doing `what`.
    pub(crate) fn store(what: &str, e: &StoreError) -> Self {
        CliError::Failed(format!("{what}: {e}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
            CliError::Closed => f.write_str("output closed"),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::Closed
        } else {
            CliError::Failed(format!("cannot write the output: {e}"))
        }
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        if e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe) {
            CliError::Closed
        } else {
            CliError::Failed(format!("cannot write the JSON output: {e}"))
        }
    }
}

/// A result of the tool.
pub(crate) type CliResult<T = ()> = Result<T, CliError>;
