//! What a decision did, typed: the kind of each transition and who made it happen. Decide makes
//! them; the Events, the audit trail and the metrics use them as they are, so nothing downstream
//! parses a reason string back or works the actor out again from the status.

use rollgate_crds::audit::CONTROLLER_ACTOR;

/// The kinds of transition a decision makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionKind {
    /// The template changed: a new revision starts its rollout.
    RevisionDetected,
    /// A canary step completed and the next one starts.
    StepCompleted,
    /// A pause or an inconclusive analysis was passed, or a blue-green switch made.
    Promoted,
    /// A person paused the rollout.
    Paused,
    /// A person resumed it.
    Resumed,
    /// The rollout was aborted: traffic goes back to stable.
    Aborted,
    /// An aborted rollout starts again from step 0.
    Retried,
    /// A user action was not carried out (the message says why).
    ActionIgnored,
    /// An image of the revision was refused.
    VerificationFailed,
    /// The spec cannot be applied as written.
    SpecRefused,
    /// The revision is stable (or active, for blue-green).
    Completed,
}

impl TransitionKind {
    /// The Event reason, CamelCase as Kubernetes Events have it.
    pub fn reason(self) -> &'static str {
        match self {
            TransitionKind::RevisionDetected => "RevisionDetected",
            TransitionKind::StepCompleted => "StepCompleted",
            TransitionKind::Promoted => "Promoted",
            TransitionKind::Paused => "Paused",
            TransitionKind::Resumed => "Resumed",
            TransitionKind::Aborted => "Aborted",
            TransitionKind::Retried => "Retried",
            TransitionKind::ActionIgnored => "ActionIgnored",
            TransitionKind::VerificationFailed => "VerificationFailed",
            TransitionKind::SpecRefused => "SpecRefused",
            TransitionKind::Completed => "Completed",
        }
    }

    /// Whether its Event is a Warning: something went wrong or was refused.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            TransitionKind::Aborted
                | TransitionKind::VerificationFailed
                | TransitionKind::SpecRefused
        )
    }
}

/// Who made a transition happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The controller, on its own account (a step's time, an analysis, a deadline).
    Controller,
    /// A person: the user of a user action, an approver, or a revision's requester.
    Person(String),
}

impl Actor {
    /// The name recorded in the audit trail ([`CONTROLLER_ACTOR`] for the controller).
    pub fn name(&self) -> &str {
        match self {
            Actor::Controller => CONTROLLER_ACTOR,
            Actor::Person(name) => name,
        }
    }
}

/// One transition of a decision, worth an Event and an audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// What happened.
    pub kind: TransitionKind,
    /// Who made it happen.
    pub actor: Actor,
    /// What happened, for people.
    pub message: String,
    /// The reason the person gave, when a user action of theirs made it happen.
    pub reason_given: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_is_recorded_under_its_audit_name() {
        assert_eq!(Actor::Controller.name(), CONTROLLER_ACTOR);
        assert_eq!(Actor::Person("alice".into()).name(), "alice");
    }

    #[test]
    fn aborts_and_refusals_are_warnings_and_progress_is_not() {
        assert!(TransitionKind::Aborted.is_warning());
        assert!(TransitionKind::SpecRefused.is_warning());
        assert!(!TransitionKind::StepCompleted.is_warning());
        assert!(!TransitionKind::Completed.is_warning());
    }
}
