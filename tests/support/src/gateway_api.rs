//! The Gateway API CRDs (GatewayClass, Gateway, HTTPRoute), generated from the `gateway-api`
//! crate's types — the same types the controller reads routes with — so the tests' cluster
//! serves exactly the shape rollgate expects.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gateway_api::{gatewayclasses::GatewayClass, gateways::Gateway, httproutes::HttpRoute};
use kube_gateway::CustomResourceExt;

/// The annotation a CRD in a `*.k8s.io` group needs.
const API_APPROVED: &str = "api-approved.kubernetes.io";
/// The approval the upstream Gateway API CRDs name.
const UPSTREAM_APPROVAL: &str = "https://github.com/kubernetes-sigs/gateway-api/pull/3328";

/// Writes the Gateway API CRDs as JSON files into `dir` and returns their paths.
pub fn write_crds(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut crds = [GatewayClass::crd(), Gateway::crd(), HttpRoute::crd()];
    crds.iter_mut()
        .map(|crd| {
            // `*.k8s.io` groups are protected: the API server wants the approval that the
            // upstream Gateway API CRDs carry.
            crd.metadata
                .annotations
                .get_or_insert_default()
                .insert(API_APPROVED.to_owned(), UPSTREAM_APPROVAL.to_owned());
            let name = crd.metadata.name.as_deref().unwrap_or("gateway-api");
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(crd)?)
                .with_context(|| format!("write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}
