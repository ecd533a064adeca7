//! Errors of the core.

use std::fmt;

/// A configuration value that cannot be used, named after the setting it came from.
///
/// The message names the variable (or builder option) and repeats the value, so that a
/// misconfigured deployment can be fixed from the log line alone:
///
/// ```text
/// invalid OTEL_TRACES_SAMPLER_ARG="1.5": a ratio must be a number from 0 to 1
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    variable: String,
    value: String,
    reason: String,
}

impl ConfigError {
    /// A configuration error for `variable` set to `value`.
    pub fn new(
        variable: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError {
            variable: variable.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The variable or option that holds the bad value (e.g. `OTEL_TRACES_EXPORTER`).
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// The value that was rejected.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: {}",
            self.variable, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}
