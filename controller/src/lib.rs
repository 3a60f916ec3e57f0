//! The rollgate controller: the Rollout reconciler, image verification, approval gates, the
//! verifiable audit log and the RolloutService gRPC server.
//!
//! [`decide`] is the pure heart: given a Rollout, its ReplicaSets and the results the gates
//! report, what the world should look like next, and what happened ([`decide::Transition`],
//! typed, with its actor). It does no I/O and is unit-tested step by step. [`reconcile`] runs
//! it as a pipeline: fetch everything once, decide, apply ([`apply`], through the one write
//! helper [`write`]), report ([`events`], [`audit`], [`metrics`]). [`settings`] and [`run`]
//! wire the process; the process plumbing (admin server, TLS, gRPC server, shutdown, API
//! request counting) is `rollgate-runtime`'s.

pub mod acting_as;
pub mod analysis;
pub mod apply;
pub mod approvals;
pub mod audit;
pub mod caches;
pub mod contain;
pub mod context;
pub mod controllers;
pub mod decide;
pub mod error;
pub mod events;
pub mod freshness;
pub mod gates;
pub mod grpc;
pub mod invalid;
pub mod metrics;
pub mod reconcile;
pub mod replicaset;
pub mod route;
pub mod run;
pub mod settings;
pub mod shards;
pub mod trust;
pub mod verification;
pub mod watches;
pub mod write;
