//! How the demo talks: a header per stage saying what happens and why, indented details, one
//! success line per stage (`[n/7] ✓ …`, which the demo's test looks for) and, when a person is
//! watching, a pause between stages.

use std::future::Future;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a long step may go without a line before the demo says it is still at work.
const QUIET_AT_MOST: Duration = Duration::from_secs(15);

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

/// The lines of a long step (a build, an install) as they come, with a line saying the step
/// goes on whenever it has said nothing for [`QUIET_AT_MOST`]: the demo is never silent for a
/// minute.
pub struct Progress {
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    /// A step starting now.
    pub fn new() -> Self {
        let now = Instant::now();
        Progress {
            started: now,
            last_line: Mutex::new(now),
        }
    }

    /// Shows one line of the step's own output.
    pub fn line(&self, text: &str) {
        println!("      {text}");
        self.heard();
    }

    fn heard(&self) {
        *self
            .last_line
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }

    fn quiet_for(&self) -> Duration {
        self.last_line
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .elapsed()
    }

    /// Runs `work`, saying it is still at work whenever it has been quiet too long.
    pub async fn around<T>(&self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                done = &mut work => return done,
                _ = tick.tick() => {
                    if self.quiet_for() >= QUIET_AT_MOST {
                        println!(
                            "      … still at it ({:.0}s since this step began)",
                            self.started.elapsed().as_secs_f64()
                        );
                        self.heard();
                    }
                }
            }
        }
    }
}
