//! Reading cosign artifacts (signature and attestation manifests and their layers) from an OCI
//! registry, with `oci-client`, within limits.
//!
//! Registry content is untrusted until verified, so every read is bounded: the manifest's size,
//! the number of layers, and each blob's size (checked against the descriptor before the
//! download and while streaming, so an oversized blob is never held in memory whole). The
//! manifest is read whole by `oci-client` and then checked against its limit; the per-image
//! timeout of the verifier bounds how long that read may take. Every blob's SHA-256 is checked
//! against its descriptor.
//!
//! Failures come in two kinds, because a policy's `registryFailure` applies to only one of them:
//! [`FetchError::Unavailable`] (no connection, timeout, HTTP 5xx or 429, access refused) and
//! [`FetchError::Invalid`] (content over a limit, a digest mismatch, a manifest that does not
//! parse). An artifact that does not exist is not an error: it is `Ok(None)`.

use std::time::Duration;

use futures::StreamExt;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::reference::DigestReference;

/// Bounds on what is read from a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Largest signature or attestation manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Largest layer blob (a signed payload or a DSSE envelope) accepted, in bytes.
    pub max_blob_bytes: u64,
    /// Most layers (signatures or attestations) read from one manifest.
    pub max_layers: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_manifest_bytes: 512 * 1024,
            max_blob_bytes: 4 * 1024 * 1024,
            max_layers: 64,
        }
    }
}

/// A registry read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The registry could not be reached or did not answer properly (connection refused,
    /// timeout, HTTP 5xx or 429, access refused): the policy's `registryFailure` decides.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// The registry answered with content that is not acceptable: always a refusal.
    #[error("{0}")]
    Invalid(String),
}

/// One layer of a cosign artifact manifest, with its blob read and its digest checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLayer {
    /// The layer's media type.
    pub media_type: String,
    /// The layer's annotations (cosign keeps the signature in one).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The blob's bytes.
    pub blob: Vec<u8>,
}

/// Reads cosign artifacts from registries.
#[derive(Clone)]
pub struct RegistryClient {
    client: Client,
    limits: RegistryLimits,
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryConnection {
    /// Registries (`host:port`) reached over plain HTTP instead of HTTPS, such as a registry on
    /// loopback in tests.
    pub insecure_registries: Vec<String>,
    /// Timeout to establish a connection.
    pub connect_timeout: Option<Duration>,
    /// Timeout for each read from a connection.
    pub read_timeout: Option<Duration>,
}

impl RegistryClient {
    /// A client with the given connection settings and limits.
    pub fn new(connection: &RegistryConnection, limits: RegistryLimits) -> Self {
        // reqwest is built without a default TLS provider; use ring, as kube does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if connection.insecure_registries.is_empty() {
            oci_client::client::ClientProtocol::Https
        } else {
            oci_client::client::ClientProtocol::HttpsExcept(connection.insecure_registries.clone())
        };
        let config = oci_client::client::ClientConfig {
            protocol,
            connect_timeout: connection.connect_timeout,
            read_timeout: connection.read_timeout,
            platform_resolver: None,
            user_agent: concat!("rollgate-verify/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        RegistryClient {
            client: Client::new(config),
            limits,
        }
    }

    /// The limits this client enforces.
    pub fn limits(&self) -> RegistryLimits {
        self.limits
    }

    /// Reads the manifest tagged `tag` in the image's repository and each of its layers.
    /// `Ok(None)` when no such tag exists.
    pub async fn fetch_artifact(
        &self,
        image: &DigestReference,
        tag: &str,
    ) -> Result<Option<Vec<ArtifactLayer>>, FetchError> {
        let reference = Reference::with_tag(
            image.registry.clone(),
            image.repository.clone(),
            tag.to_owned(),
        );
        let auth = RegistryAuth::Anonymous;
        let accepted = [OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE];
        let body = match self
            .client
            .pull_manifest_raw(&reference, &auth, &accepted)
            .await
        {
            Ok((body, _digest)) => body,
            Err(error) => return classify(error, &format!("manifest {tag}")).map(|()| None),
        };
        if body.len() > self.limits.max_manifest_bytes {
            return Err(FetchError::Invalid(format!(
                "manifest {tag} is {} bytes, over the limit of {}",
                body.len(),
                self.limits.max_manifest_bytes
            )));
        }
        let manifest: OciImageManifest = serde_json::from_slice(&body).map_err(|error| {
            FetchError::Invalid(format!("manifest {tag} does not parse: {error}"))
        })?;
        if manifest.layers.len() > self.limits.max_layers {
            return Err(FetchError::Invalid(format!(
                "manifest {tag} has {} layers, over the limit of {}",
                manifest.layers.len(),
                self.limits.max_layers
            )));
        }
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for descriptor in &manifest.layers {
            let blob = self.fetch_blob(&reference, descriptor).await?;
            layers.push(ArtifactLayer {
                media_type: descriptor.media_type.clone(),
                annotations: descriptor
                    .annotations
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                blob,
            });
        }
        Ok(Some(layers))
    }

    async fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &oci_client::manifest::OciDescriptor,
    ) -> Result<Vec<u8>, FetchError> {
        let digest = &descriptor.digest;
        let limit = self.limits.max_blob_bytes;
        let declared = u64::try_from(descriptor.size)
            .map_err(|_| FetchError::Invalid(format!("layer {digest} declares a negative size")))?;
        if declared > limit {
            return Err(FetchError::Invalid(format!(
                "layer {digest} is {declared} bytes, over the limit of {limit}"
            )));
        }
        if !digest.starts_with("sha256:") {
            return Err(FetchError::Invalid(format!(
                "layer {digest} does not use a sha256 digest"
            )));
        }
        let mut stream = match self.client.pull_blob_stream(reference, descriptor).await {
            Ok(stream) => stream,
            Err(error) => {
                classify(error, &format!("layer {digest}"))?;
                return Err(FetchError::Invalid(format!(
                    "layer {digest} does not exist"
                )));
            }
        };
        if stream
            .content_length
            .is_some_and(|length| length > declared)
        {
            return Err(FetchError::Invalid(format!(
                "layer {digest} is longer than its descriptor's size {declared}"
            )));
        }
        let mut blob = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| classify_stream_error(&error, digest))?;
            if (blob.len() + chunk.len()) as u64 > declared {
                return Err(FetchError::Invalid(format!(
                    "layer {digest} is longer than its descriptor's size {declared}"
                )));
            }
            hasher.update(&chunk);
            blob.extend_from_slice(&chunk);
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if &actual != digest {
            return Err(FetchError::Invalid(format!(
                "layer {digest} does not match its content (sha256 {actual})"
            )));
        }
        Ok(blob)
    }
}

/// Sorts an `oci-client` error: not found is `Ok(())`, the rest an [`FetchError`].
fn classify(error: OciDistributionError, what: &str) -> Result<(), FetchError> {
    use OciDistributionError as E;
    match error {
        E::ImageManifestNotFoundError(_) => Ok(()),
        E::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().all(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                Ok(())
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::Unauthorized
                        | OciErrorCode::Denied
                        | OciErrorCode::Toomanyrequests
                )
            }) {
                Err(FetchError::Unavailable(format!("{what}: {envelope}")))
            } else {
                Err(FetchError::Invalid(format!("{what}: {envelope}")))
            }
        }
        E::ServerError { code: 404, .. } => Ok(()),
        E::ServerError { code, message, .. }
            if code >= 500 || code == 429 || code == 401 || code == 403 =>
        {
            Err(FetchError::Unavailable(format!(
                "{what}: HTTP {code} {}",
                message.chars().take(200).collect::<String>()
            )))
        }
        E::UnauthorizedError { url } => Err(FetchError::Unavailable(format!(
            "{what}: not authorized at {url}"
        ))),
        E::RequestError(error) => Err(FetchError::Unavailable(format!("{what}: {error}"))),
        E::IoError(error) => Err(FetchError::Unavailable(format!("{what}: {error}"))),
        E::AuthenticationFailure(error) => Err(FetchError::Unavailable(format!(
            "{what}: authentication failed: {error}"
        ))),
        other => Err(FetchError::Invalid(format!("{what}: {other}"))),
    }
}

/// A streaming read failed: a digest mismatch found by `oci-client` is invalid content,
/// anything else a broken connection.
fn classify_stream_error(error: &std::io::Error, digest: &str) -> FetchError {
    let digest_mismatch = error
        .get_ref()
        .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
    if digest_mismatch {
        FetchError::Invalid(format!(
            "layer {digest} does not match its content: {error}"
        ))
    } else {
        FetchError::Unavailable(format!("layer {digest}: {error}"))
    }
}
