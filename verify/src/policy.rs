//! Which ImagePolicies an image must pass: every policy that governs the Rollout's namespace
//! and covers the image, plus the one the Rollout names (see the module docs of
//! [`rollgate_crds::image_policy`] for the rule). An image no policy governs is refused; a
//! named policy only adds a check.
//!
//! Globs (the `globset` crate) match the normalised name (`registry/repository`, see
//! [`crate::reference`]): `*` and `?` stay inside one path segment, `**` crosses segments,
//! `[abc]` and `{a,b}` work as in shells.

use std::collections::BTreeMap;

use rollgate_crds::ImagePolicy;

use crate::globs::policy_name;
use crate::memo::Memo;

/// Where the Rollout whose images are verified lives.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceScope<'a> {
    /// The namespace's name.
    pub name: &'a str,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// The policies image `normalized_name` must pass, governing ones first (by name), then the
/// named one if it is not among them. An error (fail closed) when the named policy does not
/// exist, a policy's selector or globs do not compile, or no policy governs the image.
pub fn applicable_policies<'a>(
    named: Option<&str>,
    policies: &'a [ImagePolicy],
    namespace: NamespaceScope<'_>,
    normalized_name: &str,
    memo: &Memo,
) -> Result<Vec<&'a ImagePolicy>, String> {
    let mut applicable = Vec::new();
    for policy in policies {
        if policy.governs_namespace(namespace.labels)?
            && memo.policy_covers(policy, normalized_name)?
        {
            applicable.push(policy);
        }
    }
    applicable.sort_by_key(|policy| policy_name(policy));
    if applicable.is_empty() {
        return Err(format!(
            "no ImagePolicy governs image {normalized_name} in namespace {}: none selects the \
             namespace and matches the image (a Rollout's spec.verification.imagePolicy only adds \
             a check)",
            namespace.name
        ));
    }
    if let Some(name) = named {
        let policy = policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| {
                format!("ImagePolicy {name} named by spec.verification.imagePolicy does not exist")
            })?;
        if !applicable.iter().any(|p| policy_name(p) == name) {
            applicable.push(policy);
        }
    }
    Ok(applicable)
}

/// The refusal for an image no glob of the policy covers.
pub fn not_covered_reason(policy: &ImagePolicy, normalized_name: &str) -> String {
    format!(
        "image {normalized_name} is not covered by ImagePolicy {}: it matches none of its images globs ({})",
        policy_name(policy),
        policy.spec.images.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::globs::policy_covers;

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

    fn names(result: Result<Vec<&ImagePolicy>, String>) -> Vec<&str> {
        result
            .expect("policies")
            .into_iter()
            .map(policy_name)
            .collect()
    }

    #[test]
    fn every_governing_policy_applies_and_a_named_one_only_adds() {
        let mut shop = policy("shop", &["registry.example.com/**"]);
        shop.spec.namespace_selector = Some(
            serde_json::from_value(serde_json::json!({"matchLabels": {"team": "shop"}})).unwrap(),
        );
        let mut everywhere = policy("base", &["**"]);
        everywhere.spec.namespace_selector = Some(Default::default());
        let weak = policy("weak", &["**"]);
        let policies = [weak, shop, everywhere];
        let memo = Memo::new(16);
        let labels = BTreeMap::from([("team".to_owned(), "shop".to_owned())]);
        let scope = NamespaceScope {
            name: "shop",
            labels: &labels,
        };
        let image = "registry.example.com/shop/app";
        assert_eq!(
            names(applicable_policies(None, &policies, scope, image, &memo)),
            ["base", "shop"]
        );
        assert_eq!(
            names(applicable_policies(
                Some("weak"),
                &policies,
                scope,
                image,
                &memo
            )),
            ["base", "shop", "weak"]
        );
        assert_eq!(
            names(applicable_policies(
                Some("shop"),
                &policies,
                scope,
                image,
                &memo
            )),
            ["base", "shop"]
        );
        let other = BTreeMap::new();
        let elsewhere = NamespaceScope {
            name: "blog",
            labels: &other,
        };
        assert_eq!(
            names(applicable_policies(
                None, &policies, elsewhere, image, &memo
            )),
            ["base"]
        );
        let missing = applicable_policies(Some("nope"), &policies, scope, image, &memo);
        assert!(missing.unwrap_err().contains("ImagePolicy nope"));
        let ungoverned = applicable_policies(Some("weak"), &policies[..1], scope, image, &memo);
        assert!(
            ungoverned
                .unwrap_err()
                .starts_with("no ImagePolicy governs image registry.example.com/shop/app")
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
