//! The store outside the cluster where the controller publishes each Rollout's signed
//! checkpoints: an OCI registry.
//!
//! # Layout
//!
//! The tree of a Rollout uid lives in the repository `<prefix>/<namespace>/<rollout>` of the
//! registry. Each publication is an OCI artifact (an image manifest with an empty config of
//! media type [`CONFIG_MEDIA_TYPE`] and one layer of media type [`LAYER_MEDIA_TYPE`], a
//! [`PublishedTree`] in JSON): the signed checkpoint and every leaf hash of the tree, so a
//! verifier can name the first record that differs. It is tagged `<uid>` (the newest) and
//! `<uid>.<size>` (one tag per tree size, the history an auditor can check consistency over).
//! The registry's own credentials, not the cluster's, decide who can write there.

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciImageManifest;
pub use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::checkpoint::PublishedTree;

/// Media type of the artifact's config (an empty JSON object).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.rollgate.audit.config.v1+json";
/// Media type of the layer holding a [`PublishedTree`].
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.rollgate.audit.tree.v1+json";

/// Where checkpoints are published: `<registry host>/<repository prefix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// Registry `host[:port]`.
    pub registry: String,
    /// Repository prefix, without a trailing `/`.
    pub prefix: String,
    /// Whether the registry is reached over plain HTTP.
    pub insecure: bool,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The location does not parse.
    #[error("bad audit store location {0:?}: expected <registry host>/<repository prefix>")]
    Location(String),
    /// The registry refused or failed.
    #[error("audit store: {0}")]
    Registry(#[from] OciDistributionError),
    /// The artifact is not a published tree.
    #[error("audit store: malformed publication: {0}")]
    Malformed(String),
}

impl StoreLocation {
    /// Parses `host[:port]/prefix` (an `oci://` in front is allowed).
    pub fn parse(location: &str, insecure: bool) -> Result<StoreLocation, StoreError> {
        let trimmed = location
            .trim()
            .trim_start_matches("oci://")
            .trim_end_matches('/');
        let (registry, prefix) = trimmed
            .split_once('/')
            .filter(|(host, prefix)| !host.is_empty() && !prefix.is_empty())
            .ok_or_else(|| StoreError::Location(location.to_owned()))?;
        Ok(StoreLocation {
            registry: registry.to_owned(),
            prefix: prefix.to_owned(),
            insecure,
        })
    }

    fn reference(&self, namespace: &str, rollout: &str, tag: String) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            format!("{}/{namespace}/{rollout}", self.prefix),
            tag,
        )
    }
}

/// A client of the checkpoint store.
pub struct CheckpointStore {
    location: StoreLocation,
    client: Client,
    auth: RegistryAuth,
}

impl CheckpointStore {
    /// A client of `location`, anonymous or with `auth`.
    pub fn new(location: StoreLocation, auth: RegistryAuth) -> CheckpointStore {
        // reqwest is built without a default TLS provider; use ring, as kube does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if location.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(10)),
            platform_resolver: None,
            use_monolithic_push: true,
            user_agent: concat!("rollgate-audit/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        CheckpointStore {
            location,
            client: Client::new(config),
            auth,
        }
    }

    /// The location.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// Publishes `tree` (of `size` leaves) for the Rollout `rollout` (uid `uid`) in `namespace`:
    /// under the tag `<uid>.<size>` and then as the newest, `<uid>`.
    pub async fn publish(
        &self,
        (namespace, rollout, uid): (&str, &str, &str),
        size: u64,
        tree: &PublishedTree,
    ) -> Result<(), StoreError> {
        let body =
            serde_json::to_vec(tree).map_err(|error| StoreError::Malformed(error.to_string()))?;
        let layers = [ImageLayer::new(body, LAYER_MEDIA_TYPE.to_owned(), None)];
        let config = Config::new(b"{}".to_vec(), CONFIG_MEDIA_TYPE.to_owned(), None);
        let manifest = OciImageManifest::build(&layers, &config, None);
        let versioned = self
            .location
            .reference(namespace, rollout, format!("{uid}.{size}"));
        self.client
            .push(
                &versioned,
                &layers,
                config.clone(),
                &self.auth,
                Some(manifest.clone()),
            )
            .await?;
        let newest = self.location.reference(namespace, rollout, uid.to_owned());
        self.client.push_manifest(&newest, &manifest.into()).await?;
        Ok(())
    }

    /// The newest publication for the Rollout uid, or `None` when nothing was published.
    pub async fn fetch(
        &self,
        (namespace, rollout, uid): (&str, &str, &str),
    ) -> Result<Option<PublishedTree>, StoreError> {
        self.fetch_tag(namespace, rollout, uid.to_owned()).await
    }

    /// The publication of tree size `size`, or `None`.
    pub async fn fetch_size(
        &self,
        (namespace, rollout, uid): (&str, &str, &str),
        size: u64,
    ) -> Result<Option<PublishedTree>, StoreError> {
        self.fetch_tag(namespace, rollout, format!("{uid}.{size}"))
            .await
    }

    async fn fetch_tag(
        &self,
        namespace: &str,
        rollout: &str,
        tag: String,
    ) -> Result<Option<PublishedTree>, StoreError> {
        let reference = self.location.reference(namespace, rollout, tag);
        let image = match self
            .client
            .pull(&reference, &self.auth, vec![LAYER_MEDIA_TYPE])
            .await
        {
            Ok(image) => image,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let layer = image
            .layers
            .first()
            .ok_or_else(|| StoreError::Malformed("no layer".to_owned()))?;
        serde_json::from_slice(&layer.data)
            .map(Some)
            .map_err(|error| StoreError::Malformed(error.to_string()))
    }
}

fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        _ => false,
    }
}
