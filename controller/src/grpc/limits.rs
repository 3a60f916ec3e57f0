//! Limits on open WatchRollouts streams: per caller (by user name) and in total. A call over
//! either limit is refused with `RESOURCE_EXHAUSTED` naming the limit; each admitted stream
//! holds a [`StreamPermit`] that gives its place back when the stream ends (however it ends:
//! the client goes away, the server cuts it, or it is dropped).
//!
//! The decision ([`admit`]) is a pure function of the counts and the limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::Status;

use super::metrics::{GrpcMetrics, LimitLabels};

/// The limits; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Streams one caller may hold open.
    pub per_caller: usize,
    /// Streams the server holds open.
    pub total: usize,
}

/// Which limit refused a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The caller holds as many streams as it may.
    Caller,
    /// The server holds as many streams as it may.
    Total,
}

/// Whether one more stream fits, given the caller's and the server's open streams.
pub fn admit(limits: Limits, caller_open: usize, total_open: usize) -> Result<(), Exceeded> {
    if limits.per_caller > 0 && caller_open >= limits.per_caller {
        return Err(Exceeded::Caller);
    }
    if limits.total > 0 && total_open >= limits.total {
        return Err(Exceeded::Total);
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    by_caller: HashMap<String, usize>,
    total: usize,
}

/// The open streams, counted.
pub struct StreamLimiter {
    limits: Limits,
    counts: Mutex<Counts>,
    metrics: Arc<GrpcMetrics>,
}

impl StreamLimiter {
    /// A limiter enforcing `limits`, reporting to `metrics`.
    pub fn new(limits: Limits, metrics: Arc<GrpcMetrics>) -> Arc<Self> {
        Arc::new(StreamLimiter {
            limits,
            counts: Mutex::new(Counts::default()),
            metrics,
        })
    }

    /// A place for one more stream of `username`, or `RESOURCE_EXHAUSTED` naming the limit.
    pub fn acquire(self: &Arc<Self>, username: &str) -> Result<StreamPermit, Status> {
        let mut counts = self.lock();
        let caller_open = counts.by_caller.get(username).copied().unwrap_or(0);
        if let Err(exceeded) = admit(self.limits, caller_open, counts.total) {
            let (label, message) = match exceeded {
                Exceeded::Caller => (
                    "caller",
                    format!(
                        "{username} already has {caller_open} open WatchRollouts streams, the most one caller may hold (--grpc-max-streams-per-caller); close one first"
                    ),
                ),
                Exceeded::Total => (
                    "total",
                    format!(
                        "the server already holds {} open WatchRollouts streams, its limit (--grpc-max-streams); retry later",
                        counts.total
                    ),
                ),
            };
            let labels = LimitLabels {
                limit: label.to_owned(),
            };
            self.metrics.refused_streams.get_or_create(&labels).inc();
            return Err(Status::resource_exhausted(message));
        }
        *counts.by_caller.entry(username.to_owned()).or_default() += 1;
        counts.total += 1;
        self.metrics.open_streams.inc();
        Ok(StreamPermit {
            limiter: self.clone(),
            username: username.to_owned(),
        })
    }

    fn release(&self, username: &str) {
        let mut counts = self.lock();
        if let Some(open) = counts.by_caller.get_mut(username) {
            *open -= 1;
            if *open == 0 {
                counts.by_caller.remove(username);
            }
        }
        counts.total = counts.total.saturating_sub(1);
        self.metrics.open_streams.dec();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One stream's place; released when dropped.
pub struct StreamPermit {
    limiter: Arc<StreamLimiter>,
    username: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.limiter.release(&self.username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_refuses_at_its_count_and_zero_means_none() {
        let limits = Limits {
            per_caller: 2,
            total: 3,
        };
        assert_eq!(admit(limits, 1, 1), Ok(()));
        assert_eq!(admit(limits, 2, 2), Err(Exceeded::Caller));
        assert_eq!(admit(limits, 0, 3), Err(Exceeded::Total));
        let unlimited = Limits {
            per_caller: 0,
            total: 0,
        };
        assert_eq!(admit(unlimited, 1_000, 1_000_000), Ok(()));
    }

    #[test]
    fn a_dropped_permit_gives_its_place_back() {
        let metrics = Arc::new(GrpcMetrics::default());
        let limiter = StreamLimiter::new(
            Limits {
                per_caller: 1,
                total: 2,
            },
            metrics.clone(),
        );
        let first = limiter.acquire("alice").unwrap();
        let refused = limiter.acquire("alice").err().unwrap();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("alice"), "{}", refused.message());
        let _bob = limiter.acquire("bob").unwrap();
        let total = limiter.acquire("carol").err().unwrap();
        assert!(
            total.message().contains("--grpc-max-streams"),
            "{}",
            total.message()
        );
        assert_eq!(metrics.open_streams.get(), 2);
        drop(first);
        assert!(limiter.acquire("alice").is_ok());
    }
}
