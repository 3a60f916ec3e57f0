//! `kubectl-rollgate`, the kubectl plugin to query and drive rollouts.
//!
//! The binary (`src/main.rs`) talks to the API server with the user's kubeconfig; this library
//! holds the parts that need no cluster, each unit-tested: the offline manifest [`lint`], the
//! text [`render`]ing of tables and the status view, and the [`user_action`] requests written to
//! a Rollout's status.

pub mod lint;
pub mod render;
pub mod user_action;

/// The field manager of every write the plugin makes.
pub const FIELD_MANAGER: &str = "kubectl-rollgate";
