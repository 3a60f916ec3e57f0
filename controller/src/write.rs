//! Writes, made one way: server-side apply of the fields rollgate owns, forced, under one of
//! rollgate's field managers. [`partial`] builds the body (type, name, the owned fields and
//! nothing else, so another manager's fields are left alone); [`apply`] sends it to the object
//! or to its status subresource.
//!
//! Each field manager owns a disjoint set of fields: the controller's reconciles own the spec
//! of what they create and the status they decide; the audit log owns `status.auditHead`; the
//! gRPC API writes `status.userAction` as the caller. Forcing is safe because of that split: a
//! conflict could only be with a person's edit of a field rollgate owns, which it overrides.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Who writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldManager {
    /// The reconcilers (`rollgate-controller`).
    Controller,
    /// The audit log's head (`rollgate-audit`).
    Audit,
    /// A user action written over the gRPC API as the caller (`rollgate-api`).
    Api,
}

impl FieldManager {
    /// The name the API server records in `managedFields`.
    pub fn name(self) -> &'static str {
        match self {
            FieldManager::Controller => "rollgate-controller",
            FieldManager::Audit => "rollgate-audit",
            FieldManager::Api => "rollgate-api",
        }
    }

    /// Server-side apply as this manager, forced.
    pub fn apply_params(self) -> PatchParams {
        PatchParams::apply(self.name()).force()
    }
}

/// The body of a server-side apply of a `K`: its type, `metadata` (at least the name), and
/// the top-level `fields` (for example `spec` or `status`) as given.
pub fn partial<K: Resource<DynamicType = ()>>(
    metadata: Value,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Value {
    let mut body = Map::new();
    body.insert("apiVersion".into(), K::api_version(&()).into());
    body.insert("kind".into(), K::kind(&()).into());
    body.insert("metadata".into(), metadata);
    body.extend(
        fields
            .into_iter()
            .map(|(field, value)| (field.to_owned(), value)),
    );
    Value::Object(body)
}

/// Which part of an object a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself (metadata, spec).
    Object,
    /// Its status subresource.
    Status,
}

/// Applies `body` to `part` of the object `name` as `manager`.
pub async fn apply<K>(
    api: &Api<K>,
    manager: FieldManager,
    part: Part,
    name: &str,
    body: &(impl Serialize + Debug),
) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + Debug,
{
    let (params, patch) = (manager.apply_params(), Patch::Apply(body));
    match part {
        Part::Object => api.patch(name, &params, &patch).await,
        Part::Status => api.patch_status(name, &params, &patch).await,
    }
}

#[cfg(test)]
mod tests {
    use rollgate_crds::Rollout;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_partial_body_names_the_type_and_holds_only_the_given_fields() {
        let body = partial::<Rollout>(
            json!({"name": "web"}),
            [("status", json!({"phase": "Healthy"}))],
        );
        assert_eq!(
            body,
            json!({
                "apiVersion": "rollgate.io/v1alpha1",
                "kind": "Rollout",
                "metadata": {"name": "web"},
                "status": {"phase": "Healthy"}
            })
        );
    }

    #[test]
    fn each_manager_has_its_own_name() {
        let names = [
            FieldManager::Controller,
            FieldManager::Audit,
            FieldManager::Api,
        ]
        .map(FieldManager::name);
        assert_eq!(
            names,
            ["rollgate-controller", "rollgate-audit", "rollgate-api"]
        );
    }
}
