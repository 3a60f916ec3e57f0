//! The controller's AnalysisService client: every call carries the controller's own Kubernetes
//! token (`authorization: Bearer <token>`, read from `--analysis-token-file`, by default the
//! Pod's projected ServiceAccount token), which the analysis service checks with a TokenReview
//! against its allowed callers.
//!
//! The file is read again for every call (the kubelet rotates projected tokens); without a
//! readable token the call goes out without one, the service answers `UNAUTHENTICATED`, and the
//! measurement is an Error saying so.

use std::path::PathBuf;

use rollgate_proto::v1::analysis_service_client::AnalysisServiceClient;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The default token: the Pod's ServiceAccount token.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The client's settings: a flag and an environment variable each.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalysisClientSettings {
    /// File holding the token the controller sends to the AnalysisService.
    #[arg(long, env = "ROLLGATE_ANALYSIS_TOKEN_FILE", default_value = SERVICE_ACCOUNT_TOKEN)]
    pub analysis_token_file: PathBuf,
}

/// The AnalysisService client, with the controller's token on every call.
pub type AnalysisClient = AnalysisServiceClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` from a file to each call.
#[derive(Debug, Clone)]
pub struct BearerToken {
    file: PathBuf,
}

impl BearerToken {
    /// Sends the token in `file`.
    pub fn from_file(file: PathBuf) -> Self {
        BearerToken { file }
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = std::fs::read_to_string(&self.file).ok();
        let value = token
            .as_deref()
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .and_then(|token| format!("Bearer {token}").parse().ok());
        match value {
            Some(value) => {
                request.metadata_mut().insert("authorization", value);
            }
            None => tracing::warn!(
                file = %self.file.display(),
                "no token for the AnalysisService; the call goes out unauthenticated"
            ),
        }
        Ok(request)
    }
}

/// A client of the AnalysisService at `channel` sending the token in `settings`.
pub fn analysis_client(channel: Channel, settings: &AnalysisClientSettings) -> AnalysisClient {
    let token = BearerToken::from_file(settings.analysis_token_file.clone());
    AnalysisServiceClient::with_interceptor(channel, token)
}
