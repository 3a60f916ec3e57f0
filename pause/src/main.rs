//! `rollgate-pause`: the sandbox ("pause") process of a pod. containerd's CRI plugin starts it
//! first in every pod sandbox, to hold the pod's namespaces; it does nothing else. As the
//! sandbox's PID 1 it has two duties: reap the zombies of processes re-parented to it, and exit
//! when asked (SIGTERM or SIGINT; PID 1 gets no default signal handling, so it must wait for
//! them explicitly).
//!
//! It blocks SIGTERM, SIGINT and SIGCHLD and takes them one at a time with `sigwait`, so no
//! signal handler (and no unsafe code) is needed. It ignores its arguments. It is a workspace
//! crate of its own (not a bin of another crate) so the image carries a binary with one tiny
//! dependency, nix.

use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

/// What the pause process does on a signal it waits for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Reap every child that has exited.
    Reap,
    /// Exit successfully.
    Exit,
}

/// The signals waited for (all others keep their default disposition).
const WAITED: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD];

/// The decision for one signal.
fn action(signal: Signal) -> Action {
    match signal {
        Signal::SIGCHLD => Action::Reap,
        _ => Action::Exit,
    }
}

/// Reaps exited children until none is left to reap (or there are no children).
fn reap() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

fn main() -> ExitCode {
    let mut set = SigSet::empty();
    for signal in WAITED {
        set.add(signal);
    }
    if let Err(error) = set.thread_block() {
        eprintln!("rollgate-pause: cannot block signals: {error}");
        return ExitCode::FAILURE;
    }
    loop {
        match set.wait() {
            Ok(signal) => match action(signal) {
                Action::Reap => reap(),
                Action::Exit => return ExitCode::SUCCESS,
            },
            Err(error) => {
                eprintln!("rollgate-pause: sigwait failed: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_on_term_and_int_and_reaps_on_chld() {
        assert_eq!(action(Signal::SIGTERM), Action::Exit);
        assert_eq!(action(Signal::SIGINT), Action::Exit);
        assert_eq!(action(Signal::SIGCHLD), Action::Reap);
    }
}
