//! Which Services and HTTPRoutes a Rollout may write: only those that opted in to it.
//!
//! The controller can edit every Service and HTTPRoute in the cluster; a Rollout's author may
//! not. Without a check, naming someone else's Service as `activeService` (or their route as
//! `httpRoute`) would make the controller repoint it for the author: a confused deputy. So the
//! controller changes a Service's selector or an HTTPRoute's weights only when the object says
//! it belongs to this Rollout, in one of two ways, both set by whoever may edit the object:
//!
//! - the annotation [`MANAGED_BY_ANNOTATION`] (`rollgate.io/managed-by-rollout`) names the
//!   Rollout (its name; the object is always in the Rollout's namespace), or
//! - an owner reference names the Rollout (kind `Rollout`, group `rollgate.io`, its uid).
//!
//! Anything else (no annotation, another Rollout's name, an owner reference to another object)
//! is refused: the controller writes nothing and the Rollout goes Degraded with the reason
//! ([`OptIn::refusal`]). One annotation names one Rollout; two Rollouts never share a Service
//! or route.

use kube::core::ObjectMeta;

use crate::Rollout;
use crate::names::{API_GROUP, MANAGED_BY_ANNOTATION};

/// Whether an object opted in to a Rollout, and if not, why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptIn {
    /// The annotation names the Rollout.
    Annotated,
    /// An owner reference names the Rollout.
    Owned,
    /// The object carries no opt-in for any Rollout.
    Missing,
    /// The annotation names another Rollout.
    OtherRollout(String),
}

impl OptIn {
    /// Whether the controller may write the object for the Rollout.
    pub fn allows(&self) -> bool {
        matches!(self, OptIn::Annotated | OptIn::Owned)
    }

    /// Why the controller refuses to write `kind` `name` for the Rollout `rollout`, or `None`
    /// when it may.
    pub fn refusal(&self, kind: &str, name: &str, rollout: &str) -> Option<String> {
        let fix = format!(
            "whoever may edit it must annotate it {MANAGED_BY_ANNOTATION}={rollout} to let this Rollout manage it"
        );
        match self {
            OptIn::Annotated | OptIn::Owned => None,
            OptIn::Missing => Some(format!(
                "the {kind} {name} has not opted in to Rollout {rollout}: {fix}"
            )),
            OptIn::OtherRollout(other) => Some(format!(
                "the {kind} {name} is managed by Rollout {other} ({MANAGED_BY_ANNOTATION}={other}), not by Rollout {rollout}"
            )),
        }
    }
}

/// Whether the object with `meta` opted in to `rollout` (see the module docs).
pub fn opt_in(meta: &ObjectMeta, rollout: &Rollout) -> OptIn {
    let name = rollout.metadata.name.as_deref().unwrap_or_default();
    let uid = rollout.metadata.uid.as_deref();
    let owned = meta.owner_references.iter().flatten().any(|owner| {
        owner.kind == "Rollout"
            && owner.api_version.split('/').next() == Some(API_GROUP)
            && Some(owner.uid.as_str()) == uid
    });
    if owned {
        return OptIn::Owned;
    }
    match meta
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(MANAGED_BY_ANNOTATION))
    {
        Some(value) if value == name => OptIn::Annotated,
        Some(value) => OptIn::OtherRollout(value.clone()),
        None => OptIn::Missing,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;
    use crate::RolloutSpec;

    fn rollout() -> Rollout {
        let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
            "selector": {}, "template": {}, "strategy": {"canary": {}}
        }))
        .expect("spec");
        let mut rollout = Rollout::new("web", spec);
        rollout.metadata.uid = Some("uid-web".into());
        rollout
    }

    fn annotated(value: &str) -> ObjectMeta {
        ObjectMeta {
            annotations: Some([(MANAGED_BY_ANNOTATION.to_owned(), value.to_owned())].into()),
            ..ObjectMeta::default()
        }
    }

    fn owned_by(api_version: &str, kind: &str, uid: &str) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: "web".into(),
                uid: uid.into(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn the_annotation_naming_the_rollout_opts_in() {
        assert_eq!(opt_in(&annotated("web"), &rollout()), OptIn::Annotated);
        assert!(OptIn::Annotated.allows());
        assert_eq!(OptIn::Annotated.refusal("Service", "web", "web"), None);
    }

    #[test]
    fn an_owner_reference_to_the_rollout_opts_in() {
        let meta = owned_by("rollgate.io/v1alpha1", "Rollout", "uid-web");
        assert_eq!(opt_in(&meta, &rollout()), OptIn::Owned);
    }

    #[test]
    fn nothing_another_rollout_or_another_owner_does_not() {
        assert_eq!(opt_in(&ObjectMeta::default(), &rollout()), OptIn::Missing);
        assert_eq!(
            opt_in(&annotated("api"), &rollout()),
            OptIn::OtherRollout("api".into())
        );
        for meta in [
            owned_by("rollgate.io/v1alpha1", "Rollout", "uid-api"),
            owned_by("apps/v1", "Deployment", "uid-web"),
            owned_by("example.com/v1", "Rollout", "uid-web"),
        ] {
            assert_eq!(opt_in(&meta, &rollout()), OptIn::Missing);
        }
        let refusal = OptIn::Missing
            .refusal("Service", "payments", "web")
            .expect("refused");
        assert_eq!(
            refusal,
            "the Service payments has not opted in to Rollout web: whoever may edit it must \
             annotate it rollgate.io/managed-by-rollout=web to let this Rollout manage it"
        );
        assert!(!OptIn::OtherRollout("api".into()).allows());
    }
}
