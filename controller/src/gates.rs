//! The digest-pinning gate and a template's images.
//!
//! Image references must be pinned by digest (`name@sha256:<64 hex>`); anything else is refused
//! before anything is created, with Binary Authorization's wording. Signature verification
//! ([`crate::verification`]), analysis results ([`crate::analysis`]) and the approval gate
//! ([`crate::approvals`]) are reached by the reconciler's fetch stage; its decide stage builds
//! the gate inputs from all of them.

use rollgate_crds::Rollout;
use rollgate_crds::rollout::ContainerImage;

/// The refusal for an image that is not pinned by a sha256 digest.
pub const NOT_PINNED: &str = "Expected digest with sha256 scheme, but got tag or malformed digest";

/// Whether `image` is `name@sha256:<64 lowercase hex>` with a non-empty name.
pub fn pinned_by_digest(image: &str) -> bool {
    let Some((name, digest)) = image.rsplit_once("@sha256:") else {
        return false;
    };
    !name.is_empty()
        && digest.len() == 64
        && digest
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The images of a pod template, init containers first.
pub fn template_images(rollout: &Rollout) -> Vec<ContainerImage> {
    let Some(spec) = rollout.spec.template.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|container| ContainerImage {
            container: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
        })
        .collect()
}

/// The digest-pinning rule over a template's images: the refusal naming every image that is
/// not pinned, if any is not.
pub fn pinning(images: &[ContainerImage]) -> Result<(), String> {
    let refused: Vec<String> = images
        .iter()
        .filter(|image| !pinned_by_digest(&image.image))
        .map(|image| {
            format!(
                "container {} image {:?}: {NOT_PINNED}",
                image.container, image.image
            )
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_are_pinned() {
        let hex = "0f6b5c2d9a1e3f4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b";
        assert!(pinned_by_digest(&format!(
            "registry.example/web@sha256:{hex}"
        )));
        assert!(pinned_by_digest(&format!(
            "127.0.0.1:5000/team/web@sha256:{hex}"
        )));
        assert!(!pinned_by_digest("registry.example/web:1.2"));
        assert!(!pinned_by_digest("registry.example/web"));
        assert!(!pinned_by_digest(&format!("@sha256:{hex}")));
        assert!(!pinned_by_digest(&format!("web@sha256:{}", &hex[1..])));
        assert!(!pinned_by_digest(&format!(
            "web@sha256:{}",
            hex.to_uppercase()
        )));
        assert!(!pinned_by_digest(&format!("web@sha512:{hex}{hex}")));
    }
}
