//! The manifests in `examples/` and the YAML objects in `docs/` are valid against the real API
//! server, with rollgate's CRDs (schema and CEL rules), the Gateway API CRDs and the admission
//! policies the cluster has installed:
//!
//! - every file in `examples/` is applied with `kubectl apply --server-side --validate=strict`
//!   (an unknown field fails too) to a namespace of its own, every object it holds is then
//!   stored, and every rollgate object reads back into the controller's Rust types; the
//!   cluster-scoped objects (ImagePolicies) are deleted afterwards;
//! - every ` ```yaml ` block of `docs/*.md` that holds a whole object (it starts with
//!   `apiVersion:`) passes `kubectl create --dry-run=server --validate=strict`, as a user named
//!   `alice` in the groups its Approval example names (AnalysisRuns and AuditRecords, which
//!   only the controller creates, as the controller's identity); `docs/resources.md` has an
//!   example of every rollgate kind.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use rollgate_crds::names::REQUESTED_BY_ANNOTATION;
use rollgate_crds::requester::requester;
use rollgate_crds::{AnalysisTemplate, ImagePolicy, Rollout};
use rollgate_testsupport::tools::{kubectl, workspace_root};
use rollgate_testsupport::{Cluster, TestNamespace, shared_cluster};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The user the documentation's objects are created as, with the groups its Approval example
/// lists (`system:masters` lets the impersonated user create everything).
const DOCS_USER: [&str; 4] = [
    "--as=alice",
    "--as-group=release-managers",
    "--as-group=system:masters",
    "--as-group=system:authenticated",
];

/// Whether the object is of a kind the `rollgate-controller-owned` policy lets only the
/// controller create.
fn written_by_the_controller(object: &str) -> bool {
    object
        .lines()
        .any(|line| matches!(line.trim_end(), "kind: AnalysisRun" | "kind: AuditRecord"))
}

/// Runs the cluster's kubectl with `args`, writing `input` to its stdin; fails with kubectl's
/// output unless it succeeds.
async fn kubectl_with(cluster: &Cluster, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut child = tokio::process::Command::new(kubectl()?)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run kubectl")?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "kubectl {} failed ({}):\n{}{stdout}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// The objects of kubectl's `-o json` output (one object, or a List of them).
fn objects(json: &str) -> Result<Vec<Value>> {
    let value: Value = serde_json::from_str(json).context("kubectl printed no JSON")?;
    Ok(match value["items"].as_array() {
        Some(items) if value["kind"] == "List" => items.clone(),
        _ => vec![value],
    })
}

/// `kind/name` of an object, for messages.
fn describe(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"]
            .as_str()
            .or(object["metadata"]["generateName"].as_str())
            .unwrap_or("?")
    )
}

/// The YAML files of `examples/`, sorted.
fn example_files() -> Result<Vec<PathBuf>> {
    let dir = workspace_root().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("read {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| {
        path.extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml")
    });
    files.sort();
    Ok(files)
}

/// Deletes the cluster-scoped `objects` (as the dry run printed them).
async fn delete_cluster_scoped(client: &kube::Client, objects: &[Value]) -> Result<()> {
    for object in objects {
        let (group, version) = match object["apiVersion"].as_str().unwrap_or("").split_once('/') {
            Some((group, version)) => (group.to_owned(), version.to_owned()),
            None => (
                String::new(),
                object["apiVersion"].as_str().unwrap_or("").to_owned(),
            ),
        };
        let kind = object["kind"].as_str().unwrap_or("");
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let (resource, _) = pinned_kind(client, &GroupVersionKind::gvk(&group, &version, kind))
            .await
            .with_context(|| format!("discover {kind}"))?;
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        api.delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("delete {kind}/{name}"))?;
    }
    Ok(())
}

/// Applies each example in `namespace`, collecting the cluster-scoped objects it creates into
/// `cluster_scoped` (before applying them, so a failure still cleans up).
async fn apply_examples(
    cluster: &Cluster,
    client: &kube::Client,
    namespace: &str,
    cluster_scoped: &mut Vec<Value>,
) -> Result<()> {
    let files = example_files()?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
        .collect();
    for expected in [
        "canary-gateway-api.yaml",
        "blue-green-approvals.yaml",
        "analysis-error-rate.yaml",
        "analysis-latency.yaml",
        "image-policy.yaml",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "examples/{expected} is missing: {names:?}"
        );
    }
    let mut stored = Vec::new();
    for file in &files {
        let path = file.to_str().context("example path is not UTF-8")?;
        let apply = [
            "apply",
            "--server-side",
            "--validate=strict",
            "-n",
            namespace,
            "-f",
            path,
        ];
        let mut dry_run = apply.to_vec();
        dry_run.extend(["--dry-run=server", "-o", "json"]);
        let planned = objects(&kubectl_with(cluster, &dry_run, None).await?)?;
        assert!(!planned.is_empty(), "{path} holds no object");
        cluster_scoped.extend(
            planned
                .iter()
                .filter(|object| object["metadata"]["namespace"].is_null())
                .cloned(),
        );
        kubectl_with(cluster, &apply, None).await?;
        let listed = kubectl_with(
            cluster,
            &["get", "-n", namespace, "-f", path, "-o", "json"],
            None,
        )
        .await
        .with_context(|| format!("the objects of {path} are not all stored"))?;
        let listed = objects(&listed)?;
        assert_eq!(
            listed.len(),
            planned.len(),
            "{path}: {} objects planned, {} stored",
            planned.len(),
            listed.len()
        );
        stored.extend(listed.iter().map(describe));
        eprintln!(
            "{}: applied {}",
            display(file),
            listed.iter().map(describe).collect::<Vec<_>>().join(", ")
        );
    }

    // The controller reads what was stored.
    let rollouts = Api::<Rollout>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await?;
    let mut rollout_names: Vec<String> = rollouts
        .items
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    rollout_names.sort();
    assert_eq!(rollout_names, ["checkout", "ledger"]);
    // The manifests carry no requested-by annotation: the admission policy stamps it.
    for rollout in &rollouts.items {
        assert!(
            requester(rollout).is_some(),
            "rollout {:?} has no {REQUESTED_BY_ANNOTATION} annotation: is the stamping admission policy installed?",
            rollout.metadata.name
        );
    }
    let named = |name: &str| {
        rollouts
            .items
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .with_context(|| format!("rollout {name}"))
    };
    let checkout = named("checkout")?;
    let canary = checkout
        .spec
        .strategy
        .canary
        .as_ref()
        .context("checkout is a canary")?;
    assert_eq!(
        canary
            .traffic_routing
            .as_ref()
            .and_then(|r| r.gateway_api.as_ref())
            .map(|g| g.http_route.as_str()),
        Some("checkout")
    );
    let ledger = named("ledger")?;
    let blue_green = ledger
        .spec
        .strategy
        .blue_green
        .as_ref()
        .context("ledger is blue-green")?;
    assert_eq!(blue_green.auto_promotion, Some(false));
    assert_eq!(
        ledger
            .spec
            .approval
            .as_ref()
            .map(|a| a.required_approvals()),
        Some(2)
    );

    // Every template a Rollout names exists, and every metric sets exactly one judgement.
    let templates = Api::<AnalysisTemplate>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await?;
    let template_names: Vec<String> = templates
        .items
        .iter()
        .filter_map(|t| t.metadata.name.clone())
        .collect();
    for rollout in &rollouts.items {
        for name in referenced_templates(rollout) {
            assert!(
                template_names.contains(&name),
                "rollout {:?} names AnalysisTemplate {name}, which no example defines ({template_names:?})",
                rollout.metadata.name
            );
        }
    }
    let judges: Vec<&str> = templates
        .items
        .iter()
        .flat_map(|t| t.spec.metrics.iter())
        .map(|m| {
            if m.compare.is_some() {
                "compare"
            } else if m.sequential.is_some() {
                "sequential"
            } else {
                "condition"
            }
        })
        .collect();
    for judge in ["compare", "sequential", "condition"] {
        assert!(
            judges.contains(&judge),
            "no example metric uses the {judge} judgement"
        );
    }

    // Every ImagePolicy a Rollout names exists.
    let policies: Vec<ImagePolicy> = Api::<ImagePolicy>::all(client.clone())
        .list(&Default::default())
        .await?
        .items;
    for rollout in &rollouts.items {
        if let Some(verification) = &rollout.spec.verification {
            assert!(
                policies.iter().any(|p| p.metadata.name.as_deref() == Some(verification.image_policy.as_str())),
                "rollout {:?} names ImagePolicy {}, which no example defines",
                rollout.metadata.name,
                verification.image_policy
            );
        }
    }
    eprintln!("stored: {}", stored.join(", "));
    Ok(())
}

/// The AnalysisTemplates (namespaced) a Rollout names anywhere in its strategy.
fn referenced_templates(rollout: &Rollout) -> Vec<String> {
    let strategy = &rollout.spec.strategy;
    let mut steps = Vec::new();
    if let Some(canary) = &strategy.canary {
        steps.extend(canary.analysis.iter());
        steps.extend(
            canary
                .steps
                .iter()
                .filter_map(|step| step.analysis.as_ref()),
        );
    }
    if let Some(blue_green) = &strategy.blue_green {
        steps.extend(blue_green.pre_promotion_analysis.iter());
        steps.extend(blue_green.post_promotion_analysis.iter());
    }
    steps
        .iter()
        .flat_map(|step| step.templates.iter())
        .filter(|template| template.cluster_scope != Some(true))
        .map(|template| template.template_name.clone())
        .collect()
}

fn display(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[tokio::test]
async fn every_example_applies_to_the_cluster() -> Result<()> {
    let cluster = shared_cluster();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "examples").await?;
    let mut cluster_scoped = Vec::new();
    let applied = apply_examples(cluster, &client, namespace.name(), &mut cluster_scoped).await;
    let cleaned = delete_cluster_scoped(&client, &cluster_scoped).await;
    applied?;
    cleaned?;
    assert!(
        cluster_scoped
            .iter()
            .any(|object| object["kind"] == "ImagePolicy"),
        "the ImagePolicy example should be cluster-scoped: {cluster_scoped:?}"
    );
    Ok(())
}

/// A ` ```yaml ` block of a Markdown file: where it starts, and its text.
struct YamlBlock {
    file: String,
    line: usize,
    text: String,
}

/// The ` ```yaml ` blocks of `markdown` that hold whole objects (the first line that is not a
/// comment starts with `apiVersion:`).
fn object_blocks(file: &str, markdown: &str) -> Vec<YamlBlock> {
    let mut blocks = Vec::new();
    let mut current: Option<YamlBlock> = None;
    for (index, line) in markdown.lines().enumerate() {
        match current.as_mut() {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some(YamlBlock {
                    file: file.to_owned(),
                    line: index + 1,
                    text: String::new(),
                });
            }
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                let block = current.take().expect("an open block");
                let first = block
                    .text
                    .lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty() && !line.starts_with('#') && *line != "---");
                if first.is_some_and(|line| line.starts_with("apiVersion:")) {
                    blocks.push(block);
                }
            }
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
        }
    }
    blocks
}

#[tokio::test]
async fn the_objects_in_the_docs_are_valid() -> Result<()> {
    let cluster = shared_cluster();
    let client = cluster.client().await?;
    let namespace = TestNamespace::create(cluster, &client, "docs-yaml").await?;
    let docs = workspace_root().join("docs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&docs)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|extension| extension == "md"));
    files.sort();
    let mut failures = Vec::new();
    let mut resources_kinds = Vec::new();
    let mut checked = 0;
    for path in &files {
        let markdown = std::fs::read_to_string(path)?;
        let file = display(path);
        for block in object_blocks(&file, &markdown) {
            let mut args = vec![
                "create",
                "--dry-run=server",
                "--validate=strict",
                "-o",
                "json",
            ];
            // The kinds only the controller writes are created as the controller's identity
            // (the admin kubeconfig's user, which the ownership policies name here).
            if !written_by_the_controller(&block.text) {
                args.extend(DOCS_USER);
            }
            args.extend(["-n", namespace.name(), "-f", "-"]);
            match kubectl_with(cluster, &args, Some(&block.text)).await {
                Ok(output) => {
                    let created = objects(&output)?;
                    checked += created.len();
                    if block.file.ends_with("resources.md") {
                        resources_kinds.extend(
                            created
                                .iter()
                                .filter_map(|o| o["kind"].as_str().map(str::to_owned)),
                        );
                    }
                }
                Err(error) => failures.push(format!("{}:{}: {error:#}", block.file, block.line)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "invalid YAML objects in the docs:\n{}",
        failures.join("\n\n")
    );
    // Every rollgate kind; `docs/resources.md` must show each.
    for kind in rollgate_crds::KINDS {
        assert!(
            resources_kinds.iter().any(|k| k == kind),
            "docs/resources.md has no valid {kind} example (it has {resources_kinds:?})"
        );
    }
    eprintln!(
        "{checked} objects from {} docs files passed a server-side dry run",
        files.len()
    );
    Ok(())
}

#[test]
fn only_whole_objects_are_taken_from_markdown() {
    let markdown = "text\n```yaml\napiVersion: v1\nkind: X\n```\n```yaml\nstatus:\n  phase: A\n```\n```sh\nkubectl get x\n```\n```yaml\n# a comment\n---\napiVersion: v1\n```\n";
    let blocks = object_blocks("x.md", markdown);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].line, 2);
    assert_eq!(blocks[0].text, "apiVersion: v1\nkind: X\n");
    assert_eq!(blocks[1].line, 13);
}
