//! Kubernetes Events, published one way: every Event the controller sends goes through
//! [`publish`], which keeps the note within the API's limit and logs a failure instead of
//! failing the work that sent it (an Event is a notice; the status and the audit trail are the
//! record).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

/// The most a note may hold (the API server refuses longer ones).
const NOTE_LIMIT: usize = 1024;

/// What the controller was doing when it sent an Event (its `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Reconciling a Rollout.
    Reconcile,
    /// Verifying a revision's images.
    Verify,
    /// Counting approvals.
    Approve,
    /// Keeping the audit log.
    Audit,
    /// Starting up.
    StartUp,
}

impl Activity {
    fn as_str(self) -> &'static str {
        match self {
            Activity::Reconcile => "Reconcile",
            Activity::Verify => "Verify",
            Activity::Approve => "Approve",
            Activity::Audit => "Audit",
            Activity::StartUp => "StartUp",
        }
    }
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// A Warning (something went wrong or was refused) or not.
    pub warning: bool,
    /// The CamelCase reason.
    pub reason: String,
    /// What happened, for people.
    pub note: String,
    /// What the controller was doing.
    pub activity: Activity,
}

impl Notice {
    /// A Warning.
    pub fn warning(activity: Activity, reason: &str, note: impl Into<String>) -> Self {
        Notice {
            warning: true,
            reason: reason.to_owned(),
            note: note.into(),
            activity,
        }
    }

    /// The Event it becomes.
    fn event(self) -> Event {
        Event {
            type_: if self.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: self.reason,
            note: Some(truncate(&self.note, NOTE_LIMIT)),
            action: self.activity.as_str().to_owned(),
            secondary: None,
        }
    }
}

/// Publishes `notice` about `regarding`; a failure is logged, not returned.
pub async fn publish(recorder: &Recorder, regarding: &ObjectReference, notice: Notice) {
    let reason = notice.reason.clone();
    if let Err(error) = recorder.publish(&notice.event(), regarding).await {
        tracing::warn!(%error, %reason, "could not publish an event");
    }
}

/// `text` cut to at most `limit` bytes, on a character boundary, marked with an ellipsis.
fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_note_is_cut_on_a_character_boundary_within_the_limit() {
        let note = "é".repeat(600);
        let cut = truncate(&note, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", NOTE_LIMIT), "short");
    }

    #[test]
    fn a_notice_becomes_an_event_of_its_severity_and_activity() {
        let event = Notice::warning(Activity::Audit, "ForeignAuditRecord", "x").event();
        assert_eq!(event.type_, EventType::Warning);
        assert_eq!(event.action, "Audit");
        assert_eq!(event.note.as_deref(), Some("x"));
    }
}
