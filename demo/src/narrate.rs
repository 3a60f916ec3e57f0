//! How the demo talks: a header per stage saying what happens and why, indented details, one
//! success line per stage (`[n/7] ✓ …`, which the demo's test looks for) and, when a person is
//! watching, a pause between stages.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// The number of stages.
pub const STAGES: usize = 7;

/// Prints the story.
pub struct Narrator {
    interactive: bool,
    started: Instant,
}

impl Narrator {
    /// A narrator that pauses between stages when `interactive`.
    pub fn new(interactive: bool) -> Self {
        Narrator {
            interactive,
            started: Instant::now(),
        }
    }

    /// The time since the demo started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The header of stage `number`: its title and why it matters.
    pub fn stage(&self, number: usize, title: &str, why: &str) {
        println!();
        println!(
            "━━━ [{number}/{STAGES}] {title} ━━━ (at {:.0}s)",
            self.elapsed().as_secs_f64()
        );
        for line in why.lines() {
            println!("    {}", line.trim());
        }
    }

    /// One thing the demo does now.
    pub fn step(&self, text: &str) {
        println!("  → {text}");
    }

    /// Something to look at: indented under the current step.
    pub fn detail(&self, text: &str) {
        for line in text.lines() {
            println!("      {line}");
        }
    }

    /// Something the demo noticed that does not stop it.
    pub fn note(&self, text: &str) {
        println!("  ! {text}");
    }

    /// The success line of stage `number`.
    pub fn done(&self, number: usize, text: &str) {
        println!("[{number}/{STAGES}] ✓ {text}");
    }

    /// The closing line, once every process has stopped.
    pub fn finished(&self) {
        println!(
            "\nDemo complete in {:.0}s. Every process it started has stopped.",
            self.elapsed().as_secs_f64()
        );
    }

    /// Waits for Enter when a person is watching; returns at once otherwise.
    pub async fn pause(&self) {
        if !self.interactive {
            return;
        }
        print!("\n    (press Enter to continue, Ctrl-C to stop) ");
        let _ = std::io::stdout().flush();
        // Reading stdin blocks; the runtime does not wait for this thread when the demo ends.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)
        })
        .await;
    }
}
