//! rollgate's benchmarks. Each is a binary under `src/bin/` that prints its figures; none is a
//! timed test. Run one with `cargo run --release -p rollgate-bench --bin <name>`. The library
//! holds what several benchmarks share.

pub mod api_count;
pub mod fleet;
