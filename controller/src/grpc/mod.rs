//! The RolloutService gRPC server (`rollgate.v1.RolloutService`), with the standard gRPC health
//! service and server reflection, TLS when a certificate and key are configured.
//!
//! It runs on every replica, leader or not: reads come from one shared watch of Rollouts kept
//! in memory ([`hub`]), writes go to the API server, which is fine from any replica.
//!
//! # Authentication and authorisation
//!
//! Every call carries `authorization: Bearer <token>` (any token the API server accepts, for
//! example a ServiceAccount token). The server authenticates it with a `TokenReview` and
//! authorises each call with a `SubjectAccessReview` *as the caller* (user, uid, groups and
//! extra from the review), see [`auth`]:
//!
//! | call | needs |
//! | --- | --- |
//! | ListRollouts, GetRollout | `list` / `get` `rollouts.rollgate.io` |
//! | WatchRollouts | `watch` `rollouts.rollgate.io` |
//! | Approve, Reject | `create` `approvals.rollgate.io` |
//! | Promote, Abort, Retry | `patch` `rollouts.rollgate.io/status` (and the write is made as the caller) |
//! | ListAuditRecords, VerifyAuditChain | `get` `rollouts` and `list` `auditrecords.rollgate.io` |
//!
//! in the rollout's namespace (ListRollouts and WatchRollouts without a namespace: every
//! namespace the caller may list or watch). Successful reviews are cached for a few seconds
//! (`--grpc-auth-cache-seconds`), keyed by a SHA-256 of the token, so the API server stays out
//! of the hot path; a revoked binding takes effect within that time, for open WatchRollouts
//! streams too (they re-check on the same clock and end with `PERMISSION_DENIED`). A refused
//! token is remembered for `--grpc-auth-negative-cache-seconds`, so a flood of junk tokens is
//! not a flood of TokenReviews; denials are not cached. Every cache is bounded.
//!
//! # Limits
//!
//! A caller (by user name) holds at most `--grpc-max-streams-per-caller` open WatchRollouts
//! streams and the server at most `--grpc-max-streams`; one more is `RESOURCE_EXHAUSTED`
//! naming the limit ([`limits`]).
//!
//! # Status codes
//!
//! `UNAUTHENTICATED` (no, malformed or refused token), `PERMISSION_DENIED` (the review says no,
//! or the API server refuses the write), `NOT_FOUND` (no such rollout), `INVALID_ARGUMENT`
//! naming the field (an empty name, a bad label selector or resource version, a rejection
//! without a comment), `RESOURCE_EXHAUSTED` (a stream limit), `FAILED_PRECONDITION` (Approve/Reject when the rollout does not wait at
//! the gate of that revision or the revision is not the current one, Promote when Healthy,
//! Abort when already aborted or Healthy, Retry when not aborted), `OUT_OF_RANGE` (a watch
//! resumed from a version older than the server's history, for example from before a restart:
//! the client must re-list, see [`hub`]), `UNAVAILABLE` (the API server
//! cannot be reached, or the cache has not synced yet).
//!
//! # Writes
//!
//! Promote, Abort and Retry write `status.userAction` with the same patch as
//! `kubectl rollgate` ([`rollgate_crds::rollout::intents`]), with `by` the authenticated user
//! name, by server-side apply under the field manager [`crate::write::FieldManager::Api`], while *impersonating*
//! the caller (user, uid, groups and extra): the admission policy `rollgate-user-actions` checks that
//! `by` is the caller. Approve and Reject create the same `Approval` as
//! `kubectl rollgate approve` ([`rollgate_crds::approval::approval_request`]), also as the
//! caller, so the admission policy on Approvals checks the caller's own identity.
//!
//! # RBAC the controller's ServiceAccount needs for this server (Helm chart)
//!
//! - `create` on `tokenreviews.authentication.k8s.io` and
//!   `subjectaccessreviews.authorization.k8s.io`;
//! - `get`, `list`, `watch` on `rollouts`, `list` on `auditrecords`, `patch` on
//!   `rollouts/status` (`rollgate.io`), which the controller has anyway;
//! - `impersonate` on `users`, `groups`, `uids` and `serviceaccounts` (the API server checks
//!   the impersonation of a ServiceAccount user name as `serviceaccounts` in its namespace),
//!   and on `userextras/<key>` for the extra keys callers carry (`userextras/*`: a
//!   ServiceAccount token's `authentication.kubernetes.io/pod-name`, `.../credential-id`, an
//!   OIDC user's claims), so a policy that looks at `request.userInfo.extra` sees the caller's.

pub mod audit;
pub mod auth;
pub mod convert;
pub mod errors;
pub mod hub;
pub mod intents;
pub mod limits;
pub mod metrics;
pub mod selector;
pub mod server;
pub mod service;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use server::serve;
pub use service::Rollouts;

/// Settings of the gRPC server: a flag and an environment variable each.
#[derive(Debug, Clone, clap::Args)]
pub struct GrpcSettings {
    /// Address of the RolloutService gRPC server (with health and reflection).
    #[arg(long, env = "ROLLGATE_GRPC_ADDR", default_value = "0.0.0.0:9090")]
    pub grpc_addr: SocketAddr,
    /// PEM certificate chain of the gRPC server; with `--grpc-tls-key`, the server speaks TLS.
    #[arg(long, env = "ROLLGATE_GRPC_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key of the gRPC server.
    #[arg(long, env = "ROLLGATE_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,
    /// Seconds a successful TokenReview or SubjectAccessReview is reused (0: never).
    #[arg(long, env = "ROLLGATE_GRPC_AUTH_CACHE_SECONDS", default_value_t = 10)]
    pub grpc_auth_cache_seconds: u64,
    /// Seconds a refused token is remembered, so repeating it costs no TokenReview (0: never).
    #[arg(
        long,
        env = "ROLLGATE_GRPC_AUTH_NEGATIVE_CACHE_SECONDS",
        default_value_t = 3
    )]
    pub grpc_auth_negative_cache_seconds: u64,
    /// Changes buffered per WatchRollouts stream before a slow stream is resynchronised.
    #[arg(long, env = "ROLLGATE_GRPC_WATCH_BUFFER", default_value_t = 1024)]
    pub grpc_watch_buffer: usize,
    /// Open WatchRollouts streams one caller (user name) may hold (0: no limit).
    #[arg(
        long,
        env = "ROLLGATE_GRPC_MAX_STREAMS_PER_CALLER",
        default_value_t = 16
    )]
    pub grpc_max_streams_per_caller: usize,
    /// Open WatchRollouts streams the server holds at most (0: no limit).
    #[arg(long, env = "ROLLGATE_GRPC_MAX_STREAMS", default_value_t = 1024)]
    pub grpc_max_streams: usize,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
            grpc_tls_cert: None,
            grpc_tls_key: None,
            grpc_auth_cache_seconds: 10,
            grpc_auth_negative_cache_seconds: 3,
            grpc_watch_buffer: 1024,
            grpc_max_streams_per_caller: 16,
            grpc_max_streams: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        grpc: GrpcSettings,
    }

    #[test]
    fn the_settings_have_defaults_and_tls_needs_both_files() {
        let defaults = Flags::try_parse_from(["test"]).unwrap().grpc;
        assert_eq!(defaults.grpc_addr, GrpcSettings::default().grpc_addr);
        assert_eq!(defaults.grpc_auth_cache_seconds, 10);
        assert!(defaults.grpc_tls_cert.is_none());
        let tls = Flags::try_parse_from([
            "test",
            "--grpc-addr=127.0.0.1:9443",
            "--grpc-tls-cert=/tls/tls.crt",
            "--grpc-tls-key=/tls/tls.key",
        ])
        .unwrap()
        .grpc;
        assert_eq!(tls.grpc_addr.port(), 9443);
        assert_eq!(tls.grpc_tls_key.unwrap(), PathBuf::from("/tls/tls.key"));
        assert!(Flags::try_parse_from(["test", "--grpc-tls-cert=/tls/tls.crt"]).is_err());
    }
}
