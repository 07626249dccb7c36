//! Fault injection and the request log: failing the next requests with a
//! status (500, 429 with Retry-After, 503…), delaying every answer, and
//! recording what clients asked for so tests can check it (a relist after a
//! 410, a watch resumed from the right resourceVersion).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::error::ApiError;

/// How many requests the log keeps (the oldest go first).
const LOG_CAPACITY: usize = 20_000;

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`…
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    /// The request's Content-Type (the patch type of a PATCH), or empty.
    pub content_type: String,
    /// The answer's status code (0 while a watch is still streaming is not
    /// recorded: a watch is logged with 200 when it starts).
    pub status: u16,
}

#[derive(Debug, Default)]
struct Inner {
    /// Remaining failures: (count, status, only requests whose path
    /// contains this).
    fail: VecDeque<(u32, u16, Option<String>)>,
    delay: Duration,
    log: VecDeque<RecordedRequest>,
}

/// The faults to inject and the request log, shared by the handlers.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<Inner>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail the next `n` requests with `status` (429 and 503 carry
    /// `Retry-After: 1`).
    pub fn fail_next(&self, n: u32, status: u16) {
        if n > 0 {
            self.lock().fail.push_back((n, status, None));
        }
    }

    /// Fail the next `n` requests whose path contains `path_part`.
    pub fn fail_next_matching(&self, n: u32, status: u16, path_part: &str) {
        if n > 0 {
            self.lock()
                .fail
                .push_back((n, status, Some(path_part.to_string())));
        }
    }

    /// Delay every answer by `delay` (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// The delay to apply now.
    pub fn delay(&self) -> Duration {
        self.lock().delay
    }

    /// Forget pending failures and the delay.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.fail.clear();
        inner.delay = Duration::ZERO;
    }

    /// The error to answer a request for `path` with, if one is due.
    pub fn take_failure(&self, path: &str) -> Option<ApiError> {
        let mut inner = self.lock();
        let at = inner
            .fail
            .iter()
            .position(|(_, _, part)| part.as_deref().is_none_or(|p| path.contains(p)))?;
        let (left, status, _) = &mut inner.fail[at];
        let status = *status;
        *left -= 1;
        if *left == 0 {
            inner.fail.remove(at);
        }
        Some(injected(status))
    }

    /// Record a request.
    pub fn record(&self, method: &str, uri: &str, content_type: &str, status: u16) {
        let mut inner = self.lock();
        if inner.log.len() == LOG_CAPACITY {
            inner.log.pop_front();
        }
        inner.log.push_back(RecordedRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            content_type: content_type.to_string(),
            status,
        });
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.iter().cloned().collect()
    }
}

/// The Status a real server sends for `status`.
fn injected(status: u16) -> ApiError {
    let (reason, message) = match status {
        429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
        500 => ("InternalError", "an error on the server (injected by the test API server) has prevented the request from succeeding"),
        503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
        504 => ("Timeout", "the server was unable to return a response in the time allotted"),
        _ => ("Unknown", "injected failure"),
    };
    let mut e = ApiError::new(status, reason, message);
    if matches!(status, 429 | 503) {
        e.retry_after = Some(1);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_down_and_match_paths() {
        let f = Faults::default();
        f.fail_next_matching(1, 500, "/pods");
        f.fail_next(2, 429);
        let e = f.take_failure("/api/v1/pods").expect("pods fails");
        assert_eq!(e.code, 500);
        let e = f.take_failure("/api/v1/nodes").expect("429");
        assert_eq!((e.code, e.retry_after), (429, Some(1)));
        assert_eq!(f.take_failure("/api/v1/pods").map(|e| e.code), Some(429));
        assert!(f.take_failure("/api/v1/pods").is_none());
    }
}
