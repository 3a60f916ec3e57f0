//! The one-command demo (`make demo` runs `rollgate-demo`) as a test, non-interactive: it runs
//! every stage on a cluster of its own and exits 0, printing each stage's success line; and it
//! leaves no process behind, neither when it ends nor when it is interrupted (SIGINT) halfway.
//!
//! Every process the demo starts inherits a marker in its environment, and lives under a
//! temporary directory of the test's own (`TMPDIR`): after the demo exits, no process may carry
//! the marker or name that directory.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rollgate_testsupport::analysis::analysis_binary;
use rollgate_testsupport::controller::controller_binary;
use rollgate_testsupport::demo_app::{demo_app_binary, workspace_binary};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// The environment variable that marks the demo's processes.
const MARKER: &str = "ROLLGATE_DEMO_TEST_RUN";

/// One run of the demo: its marker and temporary directory.
struct Run {
    marker: String,
    tmp: tempfile::TempDir,
}

impl Run {
    fn new() -> anyhow::Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        Ok(Run {
            marker: format!("{}-{nanos}", std::process::id()),
            tmp: tempfile::Builder::new()
                .prefix("rollgate-demo-test-")
                .tempdir()?,
        })
    }

    /// `rollgate-demo --non-interactive`, with the workspace's binaries (built once by this
    /// test process, so the demo runs no cargo of its own) and the marker.
    fn command(&self) -> anyhow::Result<Command> {
        let demo = workspace_binary("rollgate-demo", "rollgate-demo", "ROLLGATE_DEMO_BIN")?;
        let cli = workspace_binary("kubectl-rollgate", "kubectl-rollgate", "ROLLGATE_CLI_BIN")?;
        let mut command = Command::new(demo);
        command
            .arg("--non-interactive")
            .env("ROLLGATE_CONTROLLER_BIN", controller_binary()?)
            .env("ROLLGATE_ANALYSIS_BIN", analysis_binary()?)
            .env("ROLLGATE_DEMO_APP_BIN", demo_app_binary()?)
            .env("ROLLGATE_CLI_BIN", cli)
            .env(MARKER, &self.marker)
            .env("TMPDIR", self.tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(command)
    }

    /// The processes the demo started that still run: those with the marker in their
    /// environment or the temporary directory on their command line.
    fn survivors(&self) -> Vec<String> {
        let marker = format!("{MARKER}={}", self.marker);
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter_map(|entry| {
                let dir = entry.path();
                let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
                let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                let marked = environ
                    .split(|byte| *byte == 0)
                    .any(|variable| variable == marker.as_bytes());
                (marked || cmdline.contains(&tmp))
                    .then(|| format!("{} {}", entry.file_name().to_string_lossy(), cmdline.trim()))
            })
            .collect()
    }

    /// Waits (a supervised process gets a moment to stop after its supervisor) until nothing
    /// the demo started runs; fails naming the survivors, after killing them.
    async fn assert_nothing_left(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut survivors = self.survivors();
        while !survivors.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            survivors = self.survivors();
        }
        if !survivors.is_empty() {
            for survivor in &survivors {
                if let Some(pid) = survivor.split_whitespace().next() {
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", pid])
                        .status();
                }
            }
            panic!(
                "processes of the demo outlived it by 20s:\n{}",
                survivors.join("\n")
            );
        }
    }
}

/// The success line every stage prints, and a phrase of each that says what it showed.
const STAGE_LINES: [(&str, &str); 7] = [
    ("[1/7] ✓", "controller (verification enforced) are up"),
    ("[2/7] ✓", "ImagePolicy release-signing trusts that key"),
    ("[3/7] ✓", "waiting at the approval gate"),
    ("[4/7] ✓", "approved by dana of release-managers"),
    ("[5/7] ✓", "v3 aborted automatically by analysis"),
    ("[6/7] ✓", "unsigned v4 refused by verification"),
    ("[7/7] ✓", "history shown"),
];

#[tokio::test]
async fn the_demo_runs_every_stage_and_leaves_no_process_behind() -> anyhow::Result<()> {
    let run = Run::new()?;
    let started = Instant::now();
    let child = run.command()?.spawn()?;
    let output = tokio::time::timeout(Duration::from_secs(480), child.wait_with_output())
        .await
        .context("the demo did not finish within 8 minutes")??;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let transcript = format!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        output.status.success(),
        "the demo exited with {}:\n{transcript}",
        output.status
    );
    for (line, phrase) in STAGE_LINES {
        let found = stdout
            .lines()
            .find(|printed| printed.starts_with(line))
            .unwrap_or_else(|| panic!("no {line:?} line:\n{transcript}"));
        assert!(found.contains(phrase), "{found:?} lacks {phrase:?}");
    }
    assert!(stdout.contains("Demo complete in"), "{transcript}");
    // The live view is the real CLI's `status --watch`, which ends with the phase it saw.
    assert!(
        stdout.contains("│ rollout checkout is Healthy"),
        "{transcript}"
    );
    assert!(
        stdout.contains("│ rollout checkout is Aborted"),
        "{transcript}"
    );
    run.assert_nothing_left().await;
    eprintln!("the demo ran every stage in {wall:.1?}");
    Ok(())
}

#[tokio::test]
async fn an_interrupted_demo_stops_everything_it_started() -> anyhow::Result<()> {
    let run = Run::new()?;
    let mut child = run.command()?.spawn()?;
    let stderr = child.stderr.take().context("the demo's stderr")?;
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text).await;
        text
    });
    let stdout = child.stdout.take().context("the demo's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut transcript = String::new();
    // Interrupt once the canary's demo apps serve load: by then every kind of process runs.
    let reached = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await? {
            transcript.push_str(&line);
            transcript.push('\n');
            if line.contains("demo app for revision") {
                return anyhow::Ok(true);
            }
        }
        anyhow::Ok(false)
    })
    .await;
    if !matches!(reached, Ok(Ok(true))) {
        let _ = child.kill().await;
        panic!(
            "the demo never started a demo app:\n{transcript}\n--- stderr ---\n{}",
            stderr.await?
        );
    }
    let pid = child.id().context("the demo has no pid")?;
    let interrupted = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            transcript.push_str(&line);
            transcript.push('\n');
        }
        anyhow::Ok(child.wait().await?)
    })
    .await
    .context("the demo did not stop within 60s of SIGINT")??;
    let stopped = interrupted.elapsed();
    let stderr = stderr.await?;
    assert_eq!(
        status.code(),
        Some(130),
        "{transcript}\n--- stderr ---\n{stderr}"
    );
    assert!(transcript.contains("Interrupted"), "{transcript}");
    run.assert_nothing_left().await;
    eprintln!("the interrupted demo stopped in {stopped:.1?}");
    Ok(())
}
