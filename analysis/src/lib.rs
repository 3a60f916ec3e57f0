//! The rollgate analysis service: the AnalysisService gRPC server, the Prometheus client,
//! condition evaluation and the statistics (judges).
//!
//! This crate is the place for that work (issue #4); the foundation provides its gRPC API in
//! `rollgate-proto`.
