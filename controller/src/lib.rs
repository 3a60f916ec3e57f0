//! The rollgate controller: the Rollout reconciler (fetch, decide, apply), image verification,
//! approval gates, the audit chain and the RolloutService gRPC server.
//!
//! This crate is the place for that work (issues #3, #5 and #6). The foundation provides only
//! what it stands on: the API types in `rollgate-crds` and the gRPC API in `rollgate-proto`.
