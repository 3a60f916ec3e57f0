//! The connection: a client from the user's kubeconfig (honouring `--kubeconfig`, `--context`
//! and `-n`, like kubectl) and the user's own identity, as the API server sees it.

use anyhow::{Context, Result};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use rollgate_crds::Rollout;

use crate::args::Cli;

/// A client and the namespace to work in.
pub struct Connection {
    /// The API client.
    pub client: Client,
    /// The namespace.
    pub namespace: String,
}

impl Connection {
    /// The Rollouts of the namespace.
    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// Who the API server says the user is.
pub struct Identity {
    /// `request.userInfo.username`.
    pub username: String,
    /// `request.userInfo.groups`.
    pub groups: Vec<String>,
}

/// Connects with the kubeconfig the flags name.
pub async fn connect(cli: &Cli) -> Result<Connection> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let kubeconfig = match &cli.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .with_context(|| format!("read kubeconfig {}", path.display()))?,
        None => Kubeconfig::read().context("read kubeconfig")?,
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .context("load kubeconfig")?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).context("create the API client")?;
    Ok(Connection { client, namespace })
}

/// The user's identity, from a SelfSubjectReview (works with every kind of authentication).
pub async fn whoami(client: &Client) -> Result<Identity> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .context("ask the API server who you are (SelfSubjectReview)")?;
    let user = review
        .status
        .and_then(|status| status.user_info)
        .context("the SelfSubjectReview returned no user")?;
    Ok(Identity {
        username: user
            .username
            .context("the SelfSubjectReview returned no user name")?,
        groups: user.groups.unwrap_or_default(),
    })
}
