//! The user actions (`promote`, `abort`, `retry`, `pause`, `resume`) as the server-side apply
//! patch of a Rollout's `status.userAction`.
//!
//! The builder lives in [`rollgate_crds::rollout::intents`], shared with the controller's gRPC
//! RolloutService so both write the same object. The plugin applies the patch with the field
//! manager [`crate::FIELD_MANAGER`] and `force`, so it takes over `status.userAction` whoever
//! wrote it last.

pub use rollgate_crds::rollout::intents::{ActionTarget, action_id, user_action_patch};
