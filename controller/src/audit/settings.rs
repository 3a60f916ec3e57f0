//! The audit log's command-line settings: the signing key and the external checkpoint store.
//!
//! The key is a file holding a signed-note signer key (`PRIVATE+KEY+<name>+<id>+<base64>`,
//! made by `kubectl rollgate audit keygen`): a file on the controller's host or a volume that
//! the cluster's administrators cannot read (see `docs/audit.md` for where to keep it). The
//! store is `<registry host>/<repository prefix>`; its credentials (basic auth) come from the
//! environment, never from the cluster's API.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use oci_client::secrets::RegistryAuth;
use rollgate_crds::audit::checkpoint::LogSigner;
use rollgate_crds::audit::store::{CheckpointStore, StoreLocation};

/// Settings of the audit log.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuditSettings {
    /// File with the signing key of the audit log's checkpoints (signed-note signer key).
    /// Without it, records are written without signatures or checkpoints (not tamper-evident).
    #[arg(long, env = "ROLLGATE_AUDIT_SIGNING_KEY_FILE")]
    pub audit_signing_key_file: Option<PathBuf>,

    /// Where signed checkpoints are published: `<registry host>/<repository prefix>`.
    #[arg(long, env = "ROLLGATE_AUDIT_STORE")]
    pub audit_store: Option<String>,

    /// Reach the checkpoint store over plain HTTP (loopback test registries only).
    #[arg(long, env = "ROLLGATE_AUDIT_STORE_INSECURE", default_value_t = false, action = clap::ArgAction::Set)]
    pub audit_store_insecure: bool,

    /// User name for the checkpoint store (basic auth), with `ROLLGATE_AUDIT_STORE_PASSWORD`.
    #[arg(long, env = "ROLLGATE_AUDIT_STORE_USERNAME")]
    pub audit_store_username: Option<String>,
}

impl AuditSettings {
    /// The signer, when a key file is given.
    pub fn signer(&self) -> Result<Option<LogSigner>> {
        let Some(path) = &self.audit_signing_key_file else {
            return Ok(None);
        };
        let key = std::fs::read_to_string(path)
            .with_context(|| format!("read the audit signing key {}", path.display()))?;
        Ok(Some(LogSigner::new(&key).with_context(|| {
            format!("the audit signing key {}", path.display())
        })?))
    }

    /// The checkpoint store, when one is given.
    pub fn store(&self) -> Result<Option<CheckpointStore>> {
        let Some(location) = &self.audit_store else {
            return Ok(None);
        };
        let location = StoreLocation::parse(location, self.audit_store_insecure)?;
        let auth = match &self.audit_store_username {
            Some(user) => RegistryAuth::Basic(
                user.clone(),
                std::env::var("ROLLGATE_AUDIT_STORE_PASSWORD").unwrap_or_default(),
            ),
            None => RegistryAuth::Anonymous,
        };
        Ok(Some(CheckpointStore::new(location, auth)))
    }
}
