//! Small helpers for the processes the fixtures run: free ports, supervised children, and
//! waiting for an HTTP endpoint.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools;

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `program args…` under the cluster binary's `supervise` command, with output appended
/// to `log`. The server stops when the returned child is killed or the test process exits.
pub fn spawn_supervised(program: &str, args: &[String], log: &Path) -> Result<Child> {
    spawn_supervised_with_env(program, args, &[], log)
}

/// [`spawn_supervised`] with `env` added to the process' environment.
pub fn spawn_supervised_with_env(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    log: &Path,
) -> Result<Child> {
    let supervisor = tools::cluster_binary()?;
    let log_file =
        std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    Command::new(supervisor)
        .arg("supervise")
        .arg("--")
        .arg(program)
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("start {program}"))
}

/// Polls `url` until it answers 200, the child exits, or `timeout` passes.
pub fn wait_http_ok(url: &str, child: &mut Child, timeout: Duration, log: &Path) -> Result<()> {
    let started = Instant::now();
    let agent = http_agent();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "exited with {status} before {url} answered; log:\n{}",
                tail(log)
            );
        }
        if agent
            .get(url)
            .call()
            .is_ok_and(|response| response.status() == 200)
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!(
                "{url} did not answer 200 within {timeout:?}; log:\n{}",
                tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A blocking HTTP client for loopback endpoints: short timeouts, non-2xx is not an error.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The last lines of a log file, for error messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The process id of what a supervisor started (its child), if it runs. Every thread's children
/// are read: the supervisor (Go) may start the child from any of its threads.
pub fn supervised_pid(supervisor: &Child) -> Option<u32> {
    let pid = supervisor.id();
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|task| task.ok())
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .find_map(|children| children.split_whitespace().next()?.parse().ok())
}

/// Kills a supervised child and reaps it. The supervisor's death stops the server.
pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
