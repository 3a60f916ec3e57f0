//! End-to-end tests on real components: the local Kubernetes cluster, Prometheus and the OCI
//! registry. One binary, so one cluster serves the whole run; each test gets its own namespace.

mod audit_crash;
mod audit_log;
mod chart;
mod cluster;
mod controller_operations;
mod crd_validation;
mod demo;
mod examples;
mod fixtures;
mod identity;
mod images;
mod real_host;
mod real_install;
mod real_node;
mod rollout_analysis;
mod rollout_approval;
mod rollout_betting;
mod rollout_canary;
mod rollout_routing;
mod rollout_scenarios;
mod rollout_sequential;
mod rollout_verification;
mod rollouts;
mod sharding;
mod trust_approvals;
mod trust_boundary;
mod trust_containment;
mod trust_routing;
mod trust_verification;
