//! An ImagePolicy's image globs: compiled into one set (a glob that does not compile is an
//! error naming it), and matched against a normalised image name.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rollgate_crds::ImagePolicy;

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

/// The policy's name, or an empty string for an object without one.
pub fn policy_name(policy: &ImagePolicy) -> &str {
    policy.metadata.name.as_deref().unwrap_or_default()
}
