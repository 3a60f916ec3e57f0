//! The `ClusterAnalysisTemplate` resource: an AnalysisTemplate that every namespace can use.
//!
//! It shares [`AnalysisTemplateSpec`] with the namespaced kind. kube-derive makes one kind per
//! spec type, so this kind's root type, its `Resource` impl and its CRD are written by hand: the
//! CRD is the AnalysisTemplate CRD with the names and the scope changed, so the two schemas can
//! never drift apart.

use std::borrow::Cow;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use kube::core::{ApiResource, ClusterResourceScope, Resource};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

use super::template::{AnalysisTemplate, AnalysisTemplateSpec};

const KIND: &str = "ClusterAnalysisTemplate";
const PLURAL: &str = "clusteranalysistemplates";
const SINGULAR: &str = "clusteranalysistemplate";
const SHORT_NAMES: &[&str] = &["rgcat"];

/// A ClusterAnalysisTemplate is an AnalysisTemplate that Rollouts of every namespace can use
/// (`clusterScope: true` in the Rollout's template reference).
#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct ClusterAnalysisTemplate {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The template: the same fields as an AnalysisTemplate's.
    pub spec: AnalysisTemplateSpec,
}

impl ClusterAnalysisTemplate {
    /// A ClusterAnalysisTemplate called `name`.
    pub fn new(name: &str, spec: AnalysisTemplateSpec) -> Self {
        ClusterAnalysisTemplate {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
        }
    }
}

impl Serialize for ClusterAnalysisTemplate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object = serializer.serialize_struct(KIND, 4)?;
        object.serialize_field("apiVersion", &Self::api_version(&()))?;
        object.serialize_field("kind", KIND)?;
        object.serialize_field("metadata", &self.metadata)?;
        object.serialize_field("spec", &self.spec)?;
        object.end()
    }
}

impl Resource for ClusterAnalysisTemplate {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        crate::API_GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        crate::API_VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl CustomResourceExt for ClusterAnalysisTemplate {
    fn crd() -> CustomResourceDefinition {
        let mut crd = AnalysisTemplate::crd();
        crd.metadata.name = Some(Self::crd_name().to_owned());
        crd.spec.scope = "Cluster".to_owned();
        let names = &mut crd.spec.names;
        names.kind = KIND.to_owned();
        names.list_kind = Some(format!("{KIND}List"));
        names.plural = PLURAL.to_owned();
        names.singular = Some(SINGULAR.to_owned());
        names.short_names = Some(SHORT_NAMES.iter().map(|s| (*s).to_owned()).collect());
        for version in &mut crd.spec.versions {
            if let Some(root) = version
                .schema
                .as_mut()
                .and_then(|schema| schema.open_api_v3_schema.as_mut())
            {
                root.description = Some(
                    "A ClusterAnalysisTemplate is an AnalysisTemplate that Rollouts of every namespace can use."
                        .to_owned(),
                );
            }
        }
        crd
    }

    fn crd_name() -> &'static str {
        "clusteranalysistemplates.rollgate.io"
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        SHORT_NAMES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_is_the_template_crd_with_cluster_names() {
        let crd = ClusterAnalysisTemplate::crd();
        let template = AnalysisTemplate::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.kind, "ClusterAnalysisTemplate");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("clusteranalysistemplates.rollgate.io")
        );
        let spec_of = |crd: &CustomResourceDefinition| {
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| s.properties.as_ref())
                .and_then(|p| p.get("spec"))
                .cloned()
        };
        assert!(spec_of(&crd).is_some());
        assert_eq!(spec_of(&crd), spec_of(&template));
    }

    #[test]
    fn serializes_with_api_version_and_kind_and_reads_back() {
        let template = ClusterAnalysisTemplate::new("error-rate", AnalysisTemplateSpec::default());
        let value = serde_json::to_value(&template).unwrap();
        assert_eq!(value["apiVersion"], "rollgate.io/v1alpha1");
        assert_eq!(value["kind"], "ClusterAnalysisTemplate");
        let back: ClusterAnalysisTemplate = serde_json::from_value(value).unwrap();
        assert_eq!(back, template);
    }
}
