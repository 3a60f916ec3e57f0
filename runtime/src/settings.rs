//! The settings every long-running binary has, flattened into each binary's own (`clap`'s
//! `#[command(flatten)]`): where the admin server listens and how log lines look.

use std::net::SocketAddr;

use crate::logging::LogFormat;

/// The admin address and the log format.
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessSettings {
    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "ROLLGATE_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,
    /// Log format: `text` or `json`.
    #[arg(long, env = "ROLLGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}
