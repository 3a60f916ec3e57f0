//! Image verification for rollgate: before a revision gets any ReplicaSet, every image must be
//! pinned by a sha256 digest and pass its ImagePolicy: cosign signatures by enough trusted keys
//! of each authority, and the required in-toto attestations, all read from the image's OCI
//! registry.
//!
//! The pure checks (reference grammar, which policies apply and their globs, signature and DSSE
//! verification, CEL conditions, verdicts and overrides) are separate from the one module that
//! does I/O ([`registry`]), so each is tested on its own. No Kubernetes client here: the caller
//! passes the ImagePolicies it watches and the PEM of keys held in Secrets.
//!
//! ```no_run
//! # async fn example(policies: Vec<rollgate_crds::ImagePolicy>) {
//! use rollgate_verify::{NamespaceScope, SecretKeys, VerificationRequest, Verifier, VerifierConfig};
//! let labels = std::collections::BTreeMap::new();
//! let verifier = Verifier::new(VerifierConfig::default());
//! let images = vec!["registry.example.com/app@sha256:…".to_owned()];
//! let verdict = verifier
//!     .verify(&VerificationRequest {
//!         images: &images,
//!         policy_name: None,
//!         policies: &policies,
//!         namespace: NamespaceScope { name: "shop", labels: &labels },
//!         secret_keys: &SecretKeys::new(),
//!         break_glass_justification: None,
//!     })
//!     .await;
//! if !verdict.admitted() {
//!     println!("Verified=False: {}", verdict.message().unwrap_or_default());
//! }
//! # }
//! ```

pub mod attestations;
pub mod cache;
pub mod condition;
pub mod dsse;
pub mod globs;
pub mod keys;
pub mod memo;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod simple_signing;
pub mod summary;
pub mod verdict;
pub mod verifier;

pub use keys::{PublicKey, SecretKeys, key_id};
pub use policy::NamespaceScope;
pub use reference::{DigestReference, ReferenceError, TAG_OR_MALFORMED_DIGEST};
pub use registry::{RegistryConnection, RegistryLimits};
pub use summary::Summary;
pub use verdict::{ImageVerdict, Outcome, PolicyCheck, PolicyId, RevisionVerdict};
pub use verifier::{VerificationRequest, Verifier, VerifierConfig};
