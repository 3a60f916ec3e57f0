//! Which ImagePolicy applies to an image.
//!
//! A Rollout has one policy: the one it names in `spec.verification.imagePolicy`, or the
//! cluster default ([`rollgate_crds::image_policy::default_policy`]). Each image of the
//! revision must then be covered by that policy's `images` globs; an image no glob matches is
//! refused rather than let through unchecked.
//!
//! Globs (the `globset` crate) match the normalised name (`registry/repository`, see
//! [`crate::reference`]): `*` and `?` stay inside one path segment, `**` crosses segments,
//! `[abc]` and `{a,b}` work as in shells.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rollgate_crds::ImagePolicy;
use rollgate_crds::image_policy::default_policy;

/// The policy that applies to a Rollout's images: the named one, or the cluster default.
pub fn select_policy<'a>(
    requested: Option<&str>,
    policies: &'a [ImagePolicy],
) -> Result<&'a ImagePolicy, String> {
    match requested {
        Some(name) => policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| {
                format!("ImagePolicy {name} named by spec.verification.imagePolicy does not exist")
            }),
        None => default_policy(policies).map_err(|error| error.to_string()),
    }
}

/// Whether one of the policy's globs matches the normalised image name. A glob that does not
/// compile is an error naming it.
pub fn policy_covers(policy: &ImagePolicy, normalized_name: &str) -> Result<bool, String> {
    Ok(compile_globs(policy)?.is_match(normalized_name))
}

/// Compiles the policy's `images` globs into one set. A glob that does not compile is an error
/// naming it.
pub fn compile_globs(policy: &ImagePolicy) -> Result<GlobSet, String> {
    let mut builder = GlobSetBuilder::new();
    for (index, glob) in policy.spec.images.iter().enumerate() {
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|error| {
                format!(
                    "ImagePolicy {} has an invalid glob in images[{index}] {glob:?}: {error}",
                    policy_name(policy)
                )
            })?;
        builder.add(compiled);
    }
    builder
        .build()
        .map_err(|error| format!("ImagePolicy {}: {error}", policy_name(policy)))
}

/// The refusal for an image no glob of the policy covers.
pub fn not_covered_reason(policy: &ImagePolicy, normalized_name: &str) -> String {
    format!(
        "image {normalized_name} is not covered by ImagePolicy {}: it matches none of its images globs ({})",
        policy_name(policy),
        policy.spec.images.join(", ")
    )
}

/// The policy's name, or an empty string for an object without one.
pub fn policy_name(policy: &ImagePolicy) -> &str {
    policy.metadata.name.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, images: &[&str]) -> ImagePolicy {
        ImagePolicy::new(
            name,
            serde_json::from_value(serde_json::json!({
                "images": images,
                "authorities": [{"name": "a", "keys": [{"pem": "-----BEGIN PUBLIC KEY-----"}]}],
            }))
            .expect("spec"),
        )
    }

    #[test]
    fn the_named_policy_wins_and_a_missing_one_is_refused() {
        let policies = [policy("default", &["**"]), policy("team", &["**"])];
        assert_eq!(
            policy_name(select_policy(Some("team"), &policies).unwrap()),
            "team"
        );
        assert_eq!(
            policy_name(select_policy(None, &policies).unwrap()),
            "default"
        );
        let error = select_policy(Some("nope"), &policies).unwrap_err();
        assert!(error.contains("ImagePolicy nope"), "{error}");
        assert!(
            select_policy(None, &policies[1..])
                .unwrap_err()
                .contains("no default ImagePolicy")
        );
    }

    #[test]
    fn single_star_stays_in_one_segment_and_double_star_crosses() {
        let p = policy("p", &["registry.example.com/team/*", "127.0.0.1:*/**"]);
        assert!(policy_covers(&p, "registry.example.com/team/app").unwrap());
        assert!(!policy_covers(&p, "registry.example.com/team/app/sub").unwrap());
        assert!(!policy_covers(&p, "registry.example.com/other/app").unwrap());
        assert!(policy_covers(&p, "127.0.0.1:5000/a/b/c").unwrap());
        assert!(!policy_covers(&p, "docker.io/library/nginx").unwrap());
    }

    #[test]
    fn an_invalid_glob_is_named() {
        let p = policy("broken", &["ok/*", "bad/[z-a"]);
        let error = policy_covers(&p, "ok/x").unwrap_err();
        assert!(error.contains("images[1]"), "{error}");
        assert!(error.contains("broken"), "{error}");
    }
}
