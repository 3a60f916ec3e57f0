//! The one-command demo (`make demo` runs `rollgate-demo`) as a test, non-interactive: it
//! installs rollgate on a cluster of its own with the real node, runs every stage and exits 0,
//! printing each stage's success line; and it leaves no process behind, neither when it ends
//! nor when it is interrupted (SIGINT) halfway.
//!
//! Every process the demo starts inherits a marker in its environment, and lives under a
//! temporary directory of the test's own (`TMPDIR`): after the demo exits, no process may carry
//! the marker or name that directory.
//!
//! The demo runs the machine's one real node, so it claims the host itself (a lock file, see
//! `real_node::claim_host`), and may first wait for another run's node to stop: the clocks
//! start at the demo's first line after it has claimed the host. Both scenarios run from
//! `real_host`, in turn with the other real-node scenarios.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rollgate_testsupport::demo_app::{demo_app_binary, workspace_binary};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

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

    /// `rollgate-demo --non-interactive`, with the workspace's CLI and demo app (built once by
    /// this test process, so the demo runs no debug cargo build of its own; its images come
    /// from `scripts/images.sh`'s release build) and the marker.
    fn command(&self) -> anyhow::Result<Command> {
        let demo = workspace_binary("rollgate-demo", "rollgate-demo", "ROLLGATE_DEMO_BIN")?;
        let cli = workspace_binary("kubectl-rollgate", "kubectl-rollgate", "ROLLGATE_CLI_BIN")?;
        let mut command = Command::new(demo);
        command
            .arg("--non-interactive")
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
    (
        "[1/7] ✓",
        "controller and analysis pods Ready on the real node",
    ),
    ("[2/7] ✓", "ImagePolicy release-signing trusts that key"),
    ("[3/7] ✓", "waiting at the approval gate"),
    ("[4/7] ✓", "approved by dana of release-managers"),
    ("[5/7] ✓", "of the real requests back on stable v2"),
    ("[6/7] ✓", "unsigned v4 refused by verification"),
    (
        "[7/7] ✓",
        "every audit record verified against the signed checkpoints",
    ),
];

/// The line the demo prints once it holds the real node: from here on it is its own time.
const CLAIMED: &str = "making the audit log's signing key pair";

/// A running demo: its process, its stdout so far and its stderr (read to the end by a task).
struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    transcript: String,
    stderr: JoinHandle<String>,
}

impl Running {
    /// Starts the demo of `run`.
    fn start(run: &Run) -> anyhow::Result<Self> {
        let mut child = run.command()?.spawn()?;
        let stderr = child.stderr.take().context("the demo's stderr")?;
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text).await;
            text
        });
        let lines = BufReader::new(child.stdout.take().context("the demo's stdout")?).lines();
        Ok(Running {
            child,
            lines,
            transcript: String::new(),
            stderr,
        })
    }

    /// Reads stdout into the transcript until a line contains `wanted` (true) or the output
    /// ends (false); with no `wanted`, to the end. Fails after `timeout`.
    async fn read_until(
        &mut self,
        wanted: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<bool> {
        let reading = async {
            while let Some(line) = self.lines.next_line().await? {
                self.transcript.push_str(&line);
                self.transcript.push('\n');
                if wanted.is_some_and(|wanted| line.contains(wanted)) {
                    return anyhow::Ok(true);
                }
            }
            anyhow::Ok(false)
        };
        tokio::time::timeout(timeout, reading)
            .await
            .with_context(|| format!("no {wanted:?} line within {timeout:?}"))?
    }

    /// Waits until the demo holds the real node (waiting for another run's node to stop is
    /// not the demo's time), then until a line contains `wanted` (or, with none, the output
    /// ends) within `timeout`; kills the demo and fails with its transcript when it does not.
    async fn expect(&mut self, wanted: Option<&str>, timeout: Duration) {
        let mut outcome = self
            .read_until(Some(CLAIMED), Duration::from_secs(1800))
            .await;
        if matches!(outcome, Ok(true)) {
            outcome = self.read_until(wanted, timeout).await;
        }
        let reached = match outcome {
            Ok(found) => found || wanted.is_none(),
            Err(_) => false,
        };
        if !reached {
            let _ = self.child.kill().await;
            let stderr = (&mut self.stderr).await.unwrap_or_default();
            panic!(
                "the demo did not print {wanted:?} within {timeout:?} of claiming the host \
                 ({outcome:?}):\n{}\n--- stderr ---\n{stderr}",
                self.transcript
            );
        }
    }
}

/// The demo runs to the end. Run by `real_host`, in turn with the machine's other real-node
/// scenarios.
pub fn the_demo_runs_every_stage_and_leaves_no_process_behind() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(every_stage())
}

async fn every_stage() -> anyhow::Result<()> {
    let run = Run::new()?;
    let mut demo = Running::start(&run)?;
    let started = Instant::now();
    demo.expect(None, Duration::from_secs(2400)).await;
    let status = demo.child.wait().await?;
    let wall = started.elapsed();
    let stdout = demo.transcript;
    let transcript = format!("{stdout}\n--- stderr ---\n{}", demo.stderr.await?);
    assert!(
        status.success(),
        "the demo exited with {status}:\n{transcript}"
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
    eprintln!("the demo ran every stage in {wall:.1?} (including any wait for the host)");
    Ok(())
}

/// The demo is interrupted once it serves real requests. Run by `real_host`.
pub fn an_interrupted_demo_stops_everything_it_started() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(interrupted())
}

async fn interrupted() -> anyhow::Result<()> {
    let run = Run::new()?;
    let mut demo = Running::start(&run)?;
    // Interrupt once real requests go through the app's Service: by then every kind of
    // process runs (the cluster and its node, containerd's pods, Prometheus, the registry, the
    // load).
    demo.expect(
        Some("sending requests through Service"),
        Duration::from_secs(2400),
    )
    .await;
    let Running {
        mut child,
        mut lines,
        mut transcript,
        stderr,
    } = demo;
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
