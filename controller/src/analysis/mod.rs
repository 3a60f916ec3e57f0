//! Analysis in the controller: the Rollout reconciler starts an AnalysisRun for each analysis
//! its plan begins ([`runner`], built by [`build`]) and reads their verdicts back as gate
//! results ([`observe`]); a second reconciler ([`measure`]) takes each run's measurements
//! through the AnalysisService when they fall due ([`requests`]) and keeps its status with the
//! pure lifecycle of `rollgate_crds::analysis::lifecycle`.
//!
//! Failed or Error runs abort the Rollout; an Inconclusive one pauses it for a person; nothing
//! but a Successful run ever lets a step pass.

pub mod build;
pub mod client;
pub mod measure;
pub mod observe;
pub mod requests;
pub mod runner;

#[cfg(test)]
mod tests;
