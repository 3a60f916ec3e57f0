//! rollgate's images, as `make images` builds them (`scripts/images.sh`), pushed to a real
//! registry (Debian's docker-registry):
//!
//! - Reproducible: the script run twice into two output directories and two repositories of
//!   the registry gives the same digest for every image. The second run reuses the release
//!   binaries of the first (cargo has nothing to rebuild), so it compares the image assembly:
//!   staging, the tar layer, crane's config and manifest. The pause image is also built a third
//!   time from scratch in a fresh cargo target directory (its crate is tiny), which compares
//!   the compiled binary as well: the remapped paths and the static link leave nothing of the
//!   build directory in it.
//! - The config: user 65532:65532, the OCI source/revision/version labels (revision = HEAD),
//!   the binary as entrypoint, linux/amd64; the layer holds exactly the binary, the CA bundle
//!   and the passwd/group/nsswitch files: no shell or anything else to run.
//! - `cosign verify` accepts the signature of each image of the signed run with the run's
//!   public key and refuses the unsigned images of the other run (so the check can fail); the
//!   SPDX SBOM and the SLSA v1 provenance attestations verify and name the image's digest.
//! - The pause tarball names `rollgate.local/rollgate-pause:<version>`.
//!
//! The first run builds the four release binaries (minutes on a cold cache); the others take
//! seconds each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use rollgate_testsupport::cosign::cosign;
use rollgate_testsupport::crane::crane;
use rollgate_testsupport::registry::Registry;
use rollgate_testsupport::tools::{cluster_binary, workspace_root};
use serde_json::Value;

/// The images the script builds.
const IMAGES: [&str; 4] = [
    "rollgate-controller",
    "rollgate-analysis",
    "rollgate-demo-app",
    "rollgate-pause",
];

/// Runs `program` with `args` in the workspace; its standard output, or an error with both.
fn run(program: &Path, args: &[&str], env: &[(&str, &Path)]) -> Result<String> {
    let mut command = Command::new(program);
    command.args(args).current_dir(workspace_root());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .output()
        .with_context(|| format!("run {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "{} {args:?} failed ({}):\n{stdout}\n{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

/// Runs scripts/images.sh with `args`.
fn images_script(args: &[&str], env: &[(&str, &Path)]) -> Result<String> {
    run(
        Path::new("bash"),
        &[&["scripts/images.sh"], args].concat(),
        env,
    )
}

/// The `name -> repository@digest` lines of a run's digests.txt.
fn digests(out: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(out.join("digests.txt"))?;
    text.lines()
        .map(|line| {
            let (name, reference) = line.split_once(' ').context("a digests.txt line")?;
            Ok((name.to_owned(), reference.to_owned()))
        })
        .collect()
}

/// The digest part of a `repository@digest` reference.
fn digest_of(reference: &str) -> &str {
    reference.split_once('@').map_or("", |(_, digest)| digest)
}

/// cosign's flags for a plain-HTTP loopback registry without a transparency log.
const COSIGN_OFFLINE: [&str; 3] = [
    "--insecure-ignore-tlog=true",
    "--allow-insecure-registry",
    "--allow-http-registry",
];

/// The in-toto statements `cosign verify-attestation` prints for `reference` and `kind`.
fn attestations(public_key: &Path, kind: &str, reference: &str) -> Result<Vec<Value>> {
    let key = public_key.to_string_lossy();
    let mut args = vec!["verify-attestation", "--key", &key, "--type", kind];
    args.extend(COSIGN_OFFLINE);
    args.push(reference);
    let output = run(&cosign()?, &args, &[])?;
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let envelope: Value = serde_json::from_str(line)?;
            let payload = envelope["payload"].as_str().context("a DSSE payload")?;
            let statement = base64::engine::general_purpose::STANDARD.decode(payload)?;
            Ok(serde_json::from_slice(&statement)?)
        })
        .collect()
}

/// Checks one image's config and files in the registry.
fn check_config_and_files(name: &str, reference: &str, revision: &str) -> Result<()> {
    let crane = crane()?;
    let config: Value =
        serde_json::from_str(&run(&crane, &["config", "--insecure", reference], &[])?)?;
    ensure!(
        config["os"] == "linux" && config["architecture"] == "amd64",
        "{config}"
    );
    let inner = &config["config"];
    ensure!(
        inner["User"] == "65532:65532",
        "{name} runs as {}",
        inner["User"]
    );
    ensure!(
        inner["Entrypoint"][0] == format!("/usr/bin/{name}"),
        "{inner}"
    );
    let labels = &inner["Labels"];
    ensure!(
        labels["org.opencontainers.image.revision"] == revision,
        "{labels}"
    );
    ensure!(labels["org.opencontainers.image.source"] == "https://github.com/rollgate/rollgate");
    ensure!(labels["org.opencontainers.image.version"] == env!("CARGO_PKG_VERSION"));

    let dir = tempfile::tempdir()?;
    let exported = dir.path().join("fs.tar");
    let exported_path = exported.to_string_lossy();
    run(
        &crane,
        &["export", "--insecure", reference, &exported_path],
        &[],
    )?;
    let listing = run(Path::new("tar"), &["-tf", &exported_path], &[])?;
    let files: BTreeSet<&str> = listing
        .lines()
        .map(|line| line.trim_end_matches('/'))
        .collect();
    let binary = format!("usr/bin/{name}");
    let expected: BTreeSet<&str> = [
        "etc",
        "etc/group",
        "etc/nsswitch.conf",
        "etc/passwd",
        "etc/ssl",
        "etc/ssl/certs",
        "etc/ssl/certs/ca-certificates.crt",
        "usr",
        "usr/bin",
        &binary,
    ]
    .into_iter()
    .collect();
    ensure!(files == expected, "{name} holds {files:?}");
    Ok(())
}

#[test]
fn images_are_reproducible_non_root_labelled_signed_and_attested() -> Result<()> {
    // The tools the script needs, built here when missing (as `make images` has setup.sh do).
    cluster_binary()?;
    crane()?;
    cosign()?;
    let registry = Registry::start()?;
    let host = registry.host();
    let revision = run(Path::new("git"), &["rev-parse", "HEAD"], &[])?
        .trim()
        .to_owned();

    let signed = tempfile::Builder::new()
        .prefix("rollgate-images-")
        .tempdir()?;
    let unsigned = tempfile::Builder::new()
        .prefix("rollgate-images-")
        .tempdir()?;
    let signed_out = signed.path().to_string_lossy().into_owned();
    let unsigned_out = unsigned.path().to_string_lossy().into_owned();
    let printed = images_script(
        &[
            "--registry",
            &format!("{host}/signed"),
            "--out",
            &signed_out,
        ],
        &[],
    )?;
    images_script(
        &[
            "--registry",
            &format!("{host}/unsigned"),
            "--out",
            &unsigned_out,
            "--no-sign",
        ],
        &[],
    )?;
    let first = digests(signed.path())?;
    let second = digests(unsigned.path())?;
    let names: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut expected_names = IMAGES.to_vec();
    expected_names.sort_unstable();
    assert_eq!(names, expected_names);
    for (name, reference) in &first {
        assert!(printed.contains(reference.as_str()), "printed {reference}");
        assert!(digest_of(reference).starts_with("sha256:"), "{reference}");
        assert_eq!(
            digest_of(reference),
            digest_of(&second[name]),
            "{name}: the same commit gives the same digest"
        );
    }

    // The pause binary compiled from scratch in another target directory: the same image.
    let fresh_target = tempfile::Builder::new()
        .prefix("rollgate-images-target-")
        .tempdir()?;
    let fresh = tempfile::Builder::new()
        .prefix("rollgate-images-")
        .tempdir()?;
    let fresh_out = fresh.path().to_string_lossy().into_owned();
    images_script(
        &[
            "--registry",
            &format!("{host}/fresh"),
            "--out",
            &fresh_out,
            "--images",
            "pause",
            "--no-sign",
        ],
        &[("CARGO_TARGET_DIR", fresh_target.path())],
    )?;
    assert_eq!(
        digest_of(&digests(fresh.path())?["rollgate-pause"]),
        digest_of(&first["rollgate-pause"]),
        "the pause image from a fresh build"
    );

    let public_key = signed.path().join("cosign.pub");
    let key = public_key.to_string_lossy().into_owned();
    for (name, reference) in &first {
        check_config_and_files(name, reference, &revision)?;
        let mut verify = vec!["verify", "--key", &key];
        verify.extend(COSIGN_OFFLINE);
        run(
            &cosign()?,
            &[verify.as_slice(), &[reference.as_str()]].concat(),
            &[],
        )?;
        let unsigned_reference = &second[name];
        assert!(
            run(
                &cosign()?,
                &[verify.as_slice(), &[unsigned_reference.as_str()]].concat(),
                &[]
            )
            .is_err(),
            "cosign accepts the unsigned {unsigned_reference}"
        );
        let digest = digest_of(reference).trim_start_matches("sha256:");
        for (kind, predicate_type) in [
            ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
            ("spdxjson", "https://spdx.dev/Document"),
        ] {
            let statements = attestations(&public_key, kind, reference)?;
            assert_eq!(statements.len(), 1, "{name} {kind}: {statements:?}");
            let statement = &statements[0];
            assert_eq!(statement["predicateType"], predicate_type, "{statement}");
            assert_eq!(statement["subject"][0]["digest"]["sha256"], digest);
            if kind == "slsaprovenance1" {
                let parameters = &statement["predicate"]["buildDefinition"]["externalParameters"];
                assert_eq!(parameters["revision"], revision.as_str());
                assert_eq!(parameters["image"], name.as_str());
            } else {
                let packages = statement["predicate"]["packages"].to_string();
                assert!(packages.contains(name.as_str()), "the SBOM of {name}");
            }
        }
    }

    let manifest = run(
        Path::new("tar"),
        &[
            "-xOf",
            &format!("{signed_out}/rollgate-pause.tar"),
            "manifest.json",
        ],
        &[],
    )?;
    let manifest: Value = serde_json::from_str(&manifest)?;
    assert_eq!(
        manifest[0]["RepoTags"][0],
        format!(
            "rollgate.local/rollgate-pause:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let values = std::fs::read_to_string(signed.path().join("values-images.yaml"))?;
    assert!(
        values.contains(digest_of(&first["rollgate-controller"])),
        "{values}"
    );
    Ok(())
}
