//! What a WatchRollouts client does when its stream ends: the rule every Rust client of the
//! RolloutService follows (as a Kubernetes reflector does on `410 Gone`).
//!
//! - `OUT_OF_RANGE`: the server cannot replay the changes since the client's resource version
//!   (it restarted, or its history moved on): forget the version and *re-list*, that is watch
//!   again without one and take its initial state as the whole truth (a Rollout not in it was
//!   deleted meanwhile);
//! - `UNAVAILABLE`, or the stream ending without an error: resume from the last version;
//! - anything else (`PERMISSION_DENIED`, `UNAUTHENTICATED`, `RESOURCE_EXHAUSTED`, ...): stop and
//!   report it; retrying the same call cannot help.

use tonic::{Code, Status};

/// What to do after a stream ended.
#[derive(Debug, Clone)]
pub enum Next {
    /// Watch again from this resource version.
    Resume(String),
    /// Watch again without a resource version; the new initial state replaces the old.
    Relist,
    /// Give up with this status.
    Stop(Status),
}

/// The next step after a stream that had reached `version` (empty: none yet) ended with
/// `ended` (`None`: it ended cleanly).
pub fn after_stream_end(version: &str, ended: Option<Status>) -> Next {
    let resume = || {
        if version.is_empty() {
            Next::Relist
        } else {
            Next::Resume(version.to_owned())
        }
    };
    match ended {
        None => resume(),
        Some(status) => match status.code() {
            Code::OutOfRange => Next::Relist,
            Code::Unavailable => resume(),
            _ => Next::Stop(status),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_relists_and_a_dropped_stream_resumes() {
        let too_old = Status::out_of_range("re-list");
        assert!(matches!(
            after_stream_end("42", Some(too_old)),
            Next::Relist
        ));
        let unavailable = after_stream_end("42", Some(Status::unavailable("restarting")));
        assert!(matches!(unavailable, Next::Resume(v) if v == "42"));
        assert!(matches!(after_stream_end("42", None), Next::Resume(v) if v == "42"));
        assert!(matches!(after_stream_end("", None), Next::Relist));
        let denied = after_stream_end("42", Some(Status::permission_denied("no")));
        assert!(matches!(denied, Next::Stop(status) if status.code() == Code::PermissionDenied));
    }
}
