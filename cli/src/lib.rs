//! `kubectl-rollgate`, the kubectl plugin to query and drive rollouts.
//!
//! This crate is the place for that work (issue #6); it builds on the API types in
//! `rollgate-crds`.
