//! The real `kubectl-rollgate` binary (the cli crate, built in this workspace), run as a user
//! would run it, with its output shown: one-shot commands, and `status --watch` running in the
//! background with its output streamed line by line.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rollgate_testsupport::demo_app::workspace_binary;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// The plugin, bound to one namespace.
pub struct Plugin {
    binary: PathBuf,
    namespace: String,
}

/// A kubeconfig and the user it authenticates as, for showing who runs a command.
pub struct User<'a> {
    /// The kubeconfig file.
    pub kubeconfig: &'a Path,
    /// The user name, as the API server sees it.
    pub name: &'a str,
}

impl Plugin {
    /// The workspace's `kubectl-rollgate` (`ROLLGATE_CLI_BIN` overrides the path), for
    /// `namespace`.
    pub fn find(namespace: &str) -> Result<Self> {
        let binary = workspace_binary("kubectl-rollgate", "kubectl-rollgate", "ROLLGATE_CLI_BIN")?;
        Ok(Plugin {
            binary,
            namespace: namespace.to_owned(),
        })
    }

    fn command(&self, user: &User<'_>, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(user.kubeconfig)
            .args(["-n", &self.namespace])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `kubectl rollgate <args>` as `user`, printing the command line and its output.
    pub async fn run(&self, user: &User<'_>, args: &[&str]) -> Result<Output> {
        println!(
            "  $ kubectl rollgate {}    # as {}",
            shell_words(args),
            user.name
        );
        let output =
            tokio::time::timeout(Duration::from_secs(60), self.command(user, args).output())
                .await
                .with_context(|| {
                    format!("kubectl rollgate {} did not finish in 60s", args.join(" "))
                })?
                .with_context(|| format!("run {}", self.binary.display()))?;
        show(&output);
        Ok(output)
    }

    /// Runs `kubectl rollgate <args>` that needs no cluster (`audit keygen`), printing the
    /// command line and its output; fails unless it exits 0.
    pub async fn run_plain(&self, args: &[&str]) -> Result<Output> {
        println!("  $ kubectl rollgate {}", shell_words(args));
        let output = Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("run {}", self.binary.display()))?;
        show(&output);
        if !output.status.success() {
            bail!(
                "kubectl rollgate {} exited with {}",
                args.join(" "),
                output.status
            );
        }
        Ok(output)
    }

    /// Runs `kubectl rollgate <args>` and fails unless it exits 0.
    pub async fn run_ok(&self, user: &User<'_>, args: &[&str]) -> Result<Output> {
        let output = self.run(user, args).await?;
        if !output.status.success() {
            bail!(
                "kubectl rollgate {} exited with {}",
                args.join(" "),
                output.status
            );
        }
        Ok(output)
    }

    /// Starts `kubectl rollgate status <rollout> --watch` in the background; each line it
    /// prints is shown at once, prefixed with `│`.
    pub fn watch(&self, user: &User<'_>, rollout: &str) -> Result<Watch> {
        let args = ["status", rollout, "--watch", "--timeout", "5m"];
        println!(
            "  $ kubectl rollgate {} &    # as {}, live in the background",
            args.join(" "),
            user.name
        );
        let mut child = self
            .command(user, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {}", self.binary.display()))?;
        let stdout = child.stdout.take().context("the watch's stdout")?;
        let stderr = child.stderr.take().context("the watch's stderr")?;
        Ok(Watch {
            child,
            forwarders: vec![forward(stdout), forward(stderr)],
        })
    }
}

/// A running `status --watch`; dropping it kills the process.
pub struct Watch {
    child: Child,
    forwarders: Vec<JoinHandle<()>>,
}

impl Watch {
    /// Waits for the watch to see the Rollout settle and exit, and for its last lines; returns
    /// whether it exited 0 (the Rollout is Healthy).
    pub async fn finish(mut self) -> Result<bool> {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context(
                "kubectl rollgate status --watch did not exit within 30s of the Rollout settling",
            )??;
        for forwarder in self.forwarders.drain(..) {
            let _ = forwarder.await;
        }
        Ok(status.success())
    }
}

fn forward(stream: impl AsyncRead + Unpin + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            println!("      │ {line}");
        }
    })
}

/// The arguments as a shell would need them typed.
fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|arg| {
            if arg.contains(' ') {
                format!("{arg:?}")
            } else {
                (*arg).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints a command's output, stdout then stderr, indented.
fn show(output: &Output) {
    let text = [&output.stdout[..], &output.stderr[..]].concat();
    for line in String::from_utf8_lossy(&text).lines() {
        println!("      {line}");
    }
}
