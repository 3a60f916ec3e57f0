//! The rollgate analysis service: the AnalysisService gRPC server, the Prometheus client,
//! condition evaluation and the statistics (judges).
//!
//! - [`templating`]: `{{args.<name>}}` and `{{revision.canary|stable}}` in queries.
//! - [`prometheus`]: instant and range queries with a timeout (`prometheus-http-query`).
//! - [`condition`]: CEL success/failure conditions over `result`, with Argo's semantics.
//! - [`judge`]: the statistics behind `Compare` (Mann-Whitney, Kayenta scoring, mixture SPRT).
//! - [`sequential`]: `Compare` with a stateless mixture SPRT over Prometheus counters.
//! - [`service`], `Evaluate` and `Compare`: the gRPC service; bad requests are
//!   `InvalidArgument`, Prometheus failures are an `ERROR` verdict, never a pass.
//! - [`metrics`], [`run`]: the metrics, the settings, and serving (the admin server, TLS,
//!   health, reflection and shutdown come from `rollgate-runtime`).

pub mod allowlist;
pub mod callers;
mod comparison;
pub mod condition;
mod evaluate;
pub mod judge;
pub mod metrics;
pub mod prometheus;
pub mod run;
pub mod sequential;
pub mod service;
pub mod templating;

pub use service::Analysis;
