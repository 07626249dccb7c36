//! An error with its causes on one line, for logs and for the `String`
//! errors of [`crate::lifecycle::PortLifecycle`] (what anyhow's `{:#}`
//! prints, without anyhow in a library).

use std::error::Error;
use std::fmt;

/// Displays an error and each of its sources, joined by ": ".
#[derive(Clone, Copy, Debug)]
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_printed_in_order() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(Report(&error).to_string(), "outer: inner");
    }
}
