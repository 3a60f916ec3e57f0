//! Pushing blobs and manifests to the test registry over the OCI distribution API (plain HTTP
//! on loopback), and the small test images the verifier tests sign: a config blob, one layer,
//! and an OCI image manifest, all made in Rust.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Uploads a blob (monolithic: POST then PUT) and returns its digest.
pub fn push_blob(host: &str, repository: &str, bytes: &[u8]) -> Result<String> {
    let digest = sha256_digest(bytes);
    let agent = agent();
    let start = format!("http://{host}/v2/{repository}/blobs/uploads/");
    let response = agent
        .post(&start)
        .send_empty()
        .context("start blob upload")?;
    if response.status().as_u16() != 202 {
        bail!("POST {start}: HTTP {}", response.status());
    }
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("upload without Location")?
        .to_owned();
    let location = if location.starts_with('/') {
        format!("http://{host}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{separator}digest={digest}");
    let response = agent
        .put(&url)
        .header("Content-Type", "application/octet-stream")
        .send(bytes)
        .context("finish blob upload")?;
    if response.status().as_u16() != 201 {
        bail!("PUT blob {digest}: HTTP {}", response.status());
    }
    Ok(digest)
}

/// Puts a manifest under a tag (or its digest) and returns the manifest's digest.
pub fn push_manifest(
    host: &str,
    repository: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<String> {
    let url = format!("http://{host}/v2/{repository}/manifests/{reference}");
    let mut response = agent()
        .put(&url)
        .header("Content-Type", media_type)
        .send(bytes)
        .context("put manifest")?;
    if response.status().as_u16() != 201 {
        let body = response.body_mut().read_to_string().unwrap_or_default();
        bail!("PUT {url}: HTTP {}: {body}", response.status());
    }
    Ok(sha256_digest(bytes))
}

/// Gets a manifest's bytes by tag or digest.
pub fn get_manifest(host: &str, repository: &str, reference: &str) -> Result<Vec<u8>> {
    let url = format!("http://{host}/v2/{repository}/manifests/{reference}");
    let mut response = agent()
        .get(&url)
        .header("Accept", OCI_MANIFEST)
        .call()
        .context("get manifest")?;
    if response.status().as_u16() != 200 {
        bail!("GET {url}: HTTP {}", response.status());
    }
    Ok(response.body_mut().read_to_vec()?)
}

/// A layer of a manifest to build: media type, blob, annotations.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    /// The layer's media type.
    pub media_type: String,
    /// The blob's bytes.
    pub blob: Vec<u8>,
    /// The layer descriptor's annotations.
    pub annotations: serde_json::Map<String, serde_json::Value>,
}

/// Pushes the config and layer blobs and an OCI manifest naming them under `reference`;
/// returns the manifest's digest.
pub fn push_artifact(
    host: &str,
    repository: &str,
    reference: &str,
    config: &[u8],
    layers: &[LayerSpec],
) -> Result<String> {
    let config_digest = push_blob(host, repository, config)?;
    let mut descriptors = Vec::new();
    for layer in layers {
        let digest = push_blob(host, repository, &layer.blob)?;
        let mut descriptor = serde_json::json!({
            "mediaType": layer.media_type,
            "size": layer.blob.len(),
            "digest": digest,
        });
        if !layer.annotations.is_empty() {
            descriptor["annotations"] = serde_json::Value::Object(layer.annotations.clone());
        }
        descriptors.push(descriptor);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": config_digest},
        "layers": descriptors,
    }))?;
    push_manifest(host, repository, reference, OCI_MANIFEST, &manifest)
}

/// A small image in the test registry, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImage {
    /// The registry's `host:port`.
    pub host: String,
    /// The repository, for example `team/app`.
    pub repository: String,
    /// The manifest digest.
    pub digest: String,
}

impl TestImage {
    /// Pushes an image whose only layer holds `content` (distinct content, distinct digest),
    /// tagged `latest`.
    pub fn push(host: &str, repository: &str, content: &str) -> Result<Self> {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }))?;
        let layer = LayerSpec {
            media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
            blob: content.as_bytes().to_vec(),
            annotations: serde_json::Map::new(),
        };
        let digest = push_artifact(host, repository, "latest", &config, &[layer])?;
        Ok(TestImage {
            host: host.to_owned(),
            repository: repository.to_owned(),
            digest,
        })
    }

    /// The name, `host/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    /// The reference pinned by digest, `host/repository@sha256:…`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name(), self.digest)
    }

    /// The tag cosign stores an artifact of this image under, `sha256-<hex>.<suffix>`.
    pub fn artifact_tag(&self, suffix: &str) -> String {
        format!(
            "sha256-{}.{suffix}",
            self.digest.trim_start_matches("sha256:")
        )
    }
}

/// Gets a blob's bytes by digest.
pub fn get_blob(host: &str, repository: &str, digest: &str) -> Result<Vec<u8>> {
    let url = format!("http://{host}/v2/{repository}/blobs/{digest}");
    let mut response = agent().get(&url).call().context("get blob")?;
    if response.status().as_u16() != 200 {
        bail!("GET {url}: HTTP {}", response.status());
    }
    Ok(response.body_mut().read_to_vec()?)
}
