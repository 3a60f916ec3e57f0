//! Every setting an operator tunes: a flag, with an environment variable of the same meaning.

use rollgate_runtime::settings::ProcessSettings;

use crate::verification::VerificationMode;

/// Every setting an operator tunes: a flag, with an environment variable of the same meaning.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "rollgate-controller",
    about = "The rollgate Rollout controller"
)]
pub struct Settings {
    /// The admin address and the log format.
    #[command(flatten)]
    pub process: ProcessSettings,
    /// Elect a leader on a Lease, so that only one replica writes.
    #[arg(long, env = "ROLLGATE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Split the Rollouts into this many shards held as Leases, spread over every replica
    /// (each replica writes only for the shards it holds); 0: one leader does all the work.
    #[arg(long, env = "ROLLGATE_SHARDS", default_value_t = 0)]
    pub shards: u32,
    /// Name of the leader Lease (sharded: the prefix of the member and shard Leases).
    #[arg(
        long,
        env = "ROLLGATE_LEASE_NAME",
        default_value = "rollgate-controller"
    )]
    pub lease_name: String,
    /// Namespace of the leader Lease.
    #[arg(long, env = "ROLLGATE_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a leader's Lease stays valid without renewal (failover takes at most this long).
    #[arg(long, env = "ROLLGATE_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Name of this instance, in the Lease and in Events.
    #[arg(long, env = "ROLLGATE_INSTANCE", default_value = "rollgate-controller")]
    pub instance: String,
    /// Rollouts reconciled at once.
    #[arg(long, env = "ROLLGATE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// The AnalysisService (the analysis service's gRPC endpoint), for example
    /// `http://rollgate-analysis:50051`. Without it, every analysis measurement is an error, so
    /// analyses never pass.
    #[arg(long, env = "ROLLGATE_ANALYSIS_ADDR")]
    pub analysis_addr: Option<String>,
    /// How the controller authenticates to the AnalysisService.
    #[command(flatten)]
    pub analysis_client: crate::analysis::client::AnalysisClientSettings,
    /// Verify image signatures and attestations against ImagePolicies (`enforce`), or keep
    /// only the digest-pinning rule (`off`, for clusters whose admission already verifies).
    #[arg(
        long,
        env = "ROLLGATE_IMAGE_VERIFICATION",
        value_enum,
        default_value = "enforce"
    )]
    pub image_verification: VerificationMode,
    /// Registries (`host:port`) reached over plain HTTP instead of HTTPS, comma-separated.
    #[arg(long, env = "ROLLGATE_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// Seconds allowed to verify one image, every registry read included.
    #[arg(long, env = "ROLLGATE_VERIFY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub verify_timeout_seconds: u64,
    /// The RolloutService gRPC server.
    #[command(flatten)]
    pub grpc: crate::grpc::GrpcSettings,
    /// The audit log's signing key and external checkpoint store.
    #[command(flatten)]
    pub audit: crate::audit::settings::AuditSettings,
}
