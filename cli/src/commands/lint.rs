//! `lint <file>...`: offline validation; exit 1 when any document has a finding.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use kubectl_rollgate::lint::lint_text;

pub fn run(files: &[PathBuf]) -> Result<ExitCode> {
    let mut failed = false;
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
        let reports = lint_text(&text).with_context(|| file.display().to_string())?;
        for report in reports {
            let what = report.name.as_deref().map_or_else(
                || format!("document {}", report.index),
                |n| format!("rollout {n}"),
            );
            if let Some(kind) = &report.skipped {
                println!(
                    "{}: document {}: skipped ({kind})",
                    file.display(),
                    report.index
                );
            } else if report.findings.is_empty() {
                println!("{}: {what}: OK", file.display());
            } else {
                failed = true;
                for finding in &report.findings {
                    println!("{}: {what}: {finding}", file.display());
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
