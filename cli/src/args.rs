//! The command line, kubectl-style: global `--kubeconfig`, `--context`, `-n/--namespace`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Query and drive rollgate Rollouts.
#[derive(Debug, Parser)]
#[command(name = "kubectl-rollgate", bin_name = "kubectl rollgate", version)]
pub struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Seconds `promote`, `abort`, `retry`, `pause` and `resume` wait for the controller to
    /// say what came of the action (0: do not wait; the action stays pending until handled).
    #[arg(long, global = true, default_value_t = 30)]
    pub wait: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// A table row.
    Table,
    /// The whole object as YAML.
    Yaml,
    /// The whole object as JSON.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the Rollouts of the namespace.
    List,
    /// Show one Rollout.
    Get {
        /// The Rollout.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show a Rollout's steps, weight, gate and analysis; `--watch` follows it live.
    Status {
        /// The Rollout.
        name: String,
        /// Follow the Rollout until it is Healthy, Aborted or Degraded.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Give up watching after this long (for example `10m`).
        #[arg(long, default_value = "30m")]
        timeout: String,
    },
    /// Approve the Rollout's current revision (its template hash and image digests).
    Approve {
        /// The Rollout.
        name: String,
        /// Why.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject the Rollout's current revision; the gate stops.
    Reject {
        /// The Rollout.
        name: String,
        /// Why (required).
        #[arg(long)]
        comment: String,
    },
    /// Continue past the current pause (or inconclusive analysis).
    Promote {
        /// The Rollout.
        name: String,
        /// Skip every remaining pause and analysis step (approval gates still apply).
        #[arg(long)]
        full: bool,
    },
    /// Send all traffic back to stable and scale the canary down.
    Abort {
        /// The Rollout.
        name: String,
        /// Why, for the audit record.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Restart an aborted Rollout from step 0.
    Retry {
        /// The Rollout.
        name: String,
    },
    /// Stop advancing steps until resumed.
    Pause {
        /// The Rollout.
        name: String,
    },
    /// Undo a pause.
    Resume {
        /// The Rollout.
        name: String,
    },
    /// Show the Rollout's revisions (ReplicaSets) and audit records.
    History {
        /// The Rollout.
        name: String,
    },
    /// Audit record commands.
    Audit {
        /// What to do with the audit records.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Validate Rollout manifests offline against the CRD's schema and rules.
    Lint {
        /// YAML files (one or more documents each).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a Rollout's audit log and name the first bad record: against the signed
    /// checkpoints published outside the cluster (with `--public-key` and `--store`), or
    /// only the hash chain (without them; not tamper-evident against cluster administrators).
    Verify {
        /// The Rollout (it may have been deleted: its records outlive it).
        name: String,
        /// The trusted verifier key of the audit log (a file, signed-note format).
        #[arg(long, requires = "store")]
        public_key: Option<PathBuf>,
        /// The external checkpoint store: `<registry host>/<repository prefix>`.
        #[arg(long, requires = "public_key")]
        store: Option<String>,
        /// Reach the store over plain HTTP.
        #[arg(long)]
        store_insecure: bool,
        /// Older signed checkpoints you kept (files): each must be consistent with the
        /// published one (catches a store rolled back or a log rewritten since).
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// Also verify this Rollout uid (for example one whose records were all deleted).
        #[arg(long)]
        uid: Vec<String>,
    },
    /// Print the newest signed checkpoint of each of the Rollout's logs, to keep for later
    /// consistency checks (`audit verify --checkpoint`).
    Checkpoint {
        /// The Rollout.
        name: String,
        /// The external checkpoint store: `<registry host>/<repository prefix>`.
        #[arg(long)]
        store: String,
        /// Reach the store over plain HTTP.
        #[arg(long)]
        store_insecure: bool,
        /// The Rollout uid (default: the live Rollout's).
        #[arg(long)]
        uid: Option<String>,
    },
    /// Make a signing key pair for the audit log: the signer key (for the controller) and
    /// the verifier key (for auditors), in signed-note format.
    Keygen {
        /// The key's name (appears in every signature line).
        #[arg(long, default_value = "rollgate-audit")]
        key_name: String,
        /// Where to write the signer key (created with mode 0600).
        #[arg(long)]
        private_key: PathBuf,
        /// Where to write the verifier key.
        #[arg(long)]
        public_key: PathBuf,
    },
}
