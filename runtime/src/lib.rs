//! Process plumbing shared by rollgate's long-running binaries (the controller and the analysis
//! service, and the demo app's stop signal), so each starts, reports and stops the same way:
//!
//! - [`settings`]: the admin address and log format every binary takes.
//! - [`logging`]: text or JSON log lines, the level from `RUST_LOG`.
//! - [`admin`]: the `/live`, `/ready` and `/metrics` server beside the API port.
//! - [`tls`]: one rustls crypto provider for the process.
//! - [`grpc`]: the tonic server builder with TLS, health and reflection.
//! - [`shutdown`]: SIGTERM or Ctrl-C, shared by every part so in-flight work finishes.
//! - [`api_requests`]: Kubernetes API requests named and counted by a layer on the kube client.

pub mod admin;
pub mod api_requests;
pub mod grpc;
pub mod logging;
pub mod settings;
pub mod shutdown;
pub mod tls;

pub use shutdown::{Shutdown, shutdown_signal};
