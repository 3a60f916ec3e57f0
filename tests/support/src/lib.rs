//! Test support for rollgate's end-to-end tests: real components, started once per test run.
//!
//! - [`cluster`]: the local Kubernetes control plane (`tests/cluster`, a Go multi-call binary),
//!   built when missing or stale, started once per test process and shared by its tests, with
//!   rollgate's CRDs installed.
//! - [`namespace`]: a namespace of its own for each test, deleted when the test ends.
//! - [`prometheus`] and [`registry`]: Prometheus (built from its Go module) and the CNCF distribution registry
//!   (`docker-registry`), each on a free loopback port, each a handle that stops its process when
//!   dropped.
//! - [`demo_app`] and [`analysis`]: the workspace's demo workload (one process per revision,
//!   with a load generator) and analysis service, built from the workspace on first use.
//! - [`real_node`]: a cluster of its own with one real node (kubelet, kube-proxy, containerd,
//!   runc), and [`host_snapshot`] to check that stopping it leaves the host as it was;
//!   [`real_install`]: rollgate's images built, pushed and signed, and the chart installed by
//!   Helm on that node as real pods.
//! - [`identity`] and [`grpcurl`]: ServiceAccounts with tokens and RBAC grants for tests of the
//!   gRPC API, and grpcurl built from its Go module (`tests/tools/grpcurl`).
//!
//! Every long-lived process is started through the cluster binary's `supervise` command (or
//! `up --exit-with-parent`), which stops it when the test process exits, however the run ends:
//! no process outlives the tests.

pub mod analysis;
pub mod approvals;
pub mod cluster;
pub mod controller;
pub mod cosign;
pub mod crane;
pub mod demo_app;
pub mod demo_workload;
pub mod gateway_api;
pub mod grpcurl;
pub mod helm;
pub mod host_snapshot;
pub mod identity;
pub mod manifests;
pub mod namespace;
pub mod oci_push;
pub mod process;
pub mod prometheus;
pub mod real_install;
pub mod real_node;
pub mod registry;
pub mod signing;
pub mod tools;

pub use analysis::{AnalysisServer, Callers};
pub use cluster::{Cluster, shared_cluster};
pub use controller::{ControllerOptions, ControllerProcess, shared_controller};
pub use demo_app::{DemoApp, LoadGenerator};
pub use namespace::TestNamespace;
pub use prometheus::Prometheus;
pub use registry::Registry;
