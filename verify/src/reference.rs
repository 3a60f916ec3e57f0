//! Image references pinned by digest: the only kind rollgate runs.
//!
//! A reference is `name@sha256:<64 lowercase hex>`. The name may carry a registry host (a first
//! path component with a `.` or `:`, or `localhost`) and, for compatibility with what
//! Kubernetes accepts, a tag before the digest, which is ignored: the digest alone says what
//! runs. Names without a registry are Docker Hub names, normalised as the Docker CLI does
//! (`nginx` is `docker.io/library/nginx`); policy globs match the normalised name.

use std::fmt;

/// The refusal for anything that is not `name@sha256:<64 lowercase hex>`, word for word as
/// Binary Authorization says it.
pub const TAG_OR_MALFORMED_DIGEST: &str =
    "Expected digest with sha256 scheme, but got tag or malformed digest";

/// The registry of names that carry none.
pub const DOCKER_HUB: &str = "docker.io";

/// An image reference is not pinned by a well-formed sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{TAG_OR_MALFORMED_DIGEST}")]
pub struct ReferenceError;

/// An image reference pinned by a sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DigestReference {
    /// The name as written, without tag or digest (used in messages).
    pub written_name: String,
    /// The registry host, with port if any (`docker.io` when the name has none).
    pub registry: String,
    /// The repository path inside the registry (`library/nginx`, `team/app`).
    pub repository: String,
    /// The digest, `sha256:<64 lowercase hex>`.
    pub digest: String,
}

impl DigestReference {
    /// Parses `name@sha256:<64 lowercase hex>`; anything else is a [`ReferenceError`].
    pub fn parse(image: &str) -> Result<Self, ReferenceError> {
        let (name, digest) = image.rsplit_once('@').ok_or(ReferenceError)?;
        let hex = digest.strip_prefix("sha256:").ok_or(ReferenceError)?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ReferenceError);
        }
        let name = strip_tag(name)?;
        let (registry, repository) = split_registry(name)?;
        Ok(DigestReference {
            written_name: name.to_owned(),
            registry,
            repository,
            digest: digest.to_owned(),
        })
    }

    /// The normalised name, `registry/repository`, that policy globs match.
    pub fn normalized_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The 64 hex digits of the digest.
    pub fn digest_hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    /// The tag under which cosign stores an artifact of this image, for example
    /// `sha256-<hex>.sig` for `suffix` `sig`.
    pub fn artifact_tag(&self, suffix: &str) -> String {
        format!("sha256-{}.{suffix}", self.digest_hex())
    }
}

impl fmt::Display for DigestReference {
    /// `<name as written>@<digest>`, the form refusal messages use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.written_name, self.digest)
    }
}

/// Removes a `:tag` from the last path component, checking the tag's grammar.
fn strip_tag(name: &str) -> Result<&str, ReferenceError> {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        None => Ok(name),
        Some(colon) => {
            let tag = &name[last_slash + colon + 1..];
            let valid_tag = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if valid_tag {
                Ok(&name[..last_slash + colon])
            } else {
                Err(ReferenceError)
            }
        }
    }
}

/// Splits a name into registry and repository, applying Docker Hub's defaults.
fn split_registry(name: &str) -> Result<(String, String), ReferenceError> {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_owned())
        }
        _ if name.contains('/') => (DOCKER_HUB, name.to_owned()),
        _ => (DOCKER_HUB, format!("library/{name}")),
    };
    let valid_registry = !registry.is_empty()
        && registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid_registry || !path.split('/').all(valid_path_component) {
        return Err(ReferenceError);
    }
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB
    } else {
        registry
    };
    Ok((registry.to_owned(), path))
}

/// A repository path component: lowercase letters and digits, separated by `.`, `_`, `__` or
/// dashes, not starting or ending with a separator.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let separator = |b: &u8| matches!(b, b'.' | b'_' | b'-');
    !bytes.is_empty()
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || separator(b))
        && !component.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_digest_reference_parses_and_normalises() {
        let r = DigestReference::parse(&format!("127.0.0.1:5000/team/app@sha256:{HEX}"))
            .expect("valid");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.digest_hex(), HEX);
        assert_eq!(r.artifact_tag("sig"), format!("sha256-{HEX}.sig"));
        assert_eq!(
            r.to_string(),
            format!("127.0.0.1:5000/team/app@sha256:{HEX}")
        );

        let hub = DigestReference::parse(&format!("nginx@sha256:{HEX}")).expect("valid");
        assert_eq!(hub.normalized_name(), "docker.io/library/nginx");
        assert_eq!(hub.to_string(), format!("nginx@sha256:{HEX}"));
    }

    #[test]
    fn a_tag_next_to_the_digest_is_ignored() {
        let r = DigestReference::parse(&format!("registry.example.com/app:v1@sha256:{HEX}"))
            .expect("valid");
        assert_eq!(r.written_name, "registry.example.com/app");
        assert_eq!(r.repository, "app");
    }

    #[test]
    fn tags_and_malformed_digests_are_refused_with_the_exact_message() {
        let upper = HEX.to_uppercase();
        let short = &HEX[..63];
        for image in [
            "nginx".to_owned(),
            "nginx:1.27".to_owned(),
            "registry.example.com/app:latest".to_owned(),
            format!("nginx@sha512:{HEX}"),
            format!("nginx@sha256:{upper}"),
            format!("nginx@sha256:{short}"),
            format!("nginx@sha256:{HEX}0"),
            format!("nginx@{HEX}"),
            format!("@sha256:{HEX}"),
            format!("Nginx@sha256:{HEX}"),
            format!("nginx:@sha256:{HEX}"),
            format!("a//b@sha256:{HEX}"),
        ] {
            let error = DigestReference::parse(&image).expect_err(&image);
            assert_eq!(error.to_string(), TAG_OR_MALFORMED_DIGEST, "{image}");
        }
    }
}
