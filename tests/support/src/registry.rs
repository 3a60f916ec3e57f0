//! A real OCI registry (Debian's `docker-registry`, the CNCF distribution registry) on a free
//! loopback port (or on an address of the caller's choice, such as the real node's, which pods
//! can reach), plain HTTP, filesystem storage in a temporary directory.

use std::process::Child;
use std::time::Duration;

use anyhow::Result;

use crate::process::{free_port, spawn_supervised, stop, wait_http_ok};

/// A running registry; dropping it stops the process.
pub struct Registry {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the registry on a free loopback port and waits until `/v2/` answers.
    pub fn start() -> Result<Self> {
        Self::start_on(&format!("127.0.0.1:{}", free_port()?))
    }

    /// Starts the registry listening on `address` (`ip:port`) and waits until `/v2/` answers.
    pub fn start_on(address: &str) -> Result<Self> {
        let binary =
            std::env::var("ROLLGATE_REGISTRY").unwrap_or_else(|_| "docker-registry".into());
        let dir = tempfile::Builder::new()
            .prefix("rollgate-registry-")
            .tempdir()?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
                dir.path().join("storage").display()
            ),
        )?;
        let log = dir.path().join("registry.log");
        let args = vec!["serve".to_owned(), config.display().to_string()];
        let mut child = spawn_supervised(&binary, &args, &log)?;
        let v2 = format!("http://{address}/v2/");
        if let Err(error) = wait_http_ok(&v2, &mut child, Duration::from_secs(30), &log) {
            stop(&mut child);
            return Err(error.context("the registry did not become ready"));
        }
        Ok(Registry {
            child,
            address: address.to_owned(),
            _dir: dir,
        })
    }

    /// The registry's `host:port`, as used in image references.
    pub fn host(&self) -> String {
        self.address.clone()
    }

    /// The base URL, `http://<host:port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
