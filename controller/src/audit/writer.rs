//! Writing one AuditRecord: a plain create under its deterministic name, never an update.
//!
//! If the name is taken, the existing object is read: the same spec means an earlier attempt
//! (before a crash) already wrote it; another spec means someone else put an object there
//! (pre-created at the name the controller would use). That object is reported as foreign and
//! the record is written under a generated name (`<name>-<random>`): records are found by
//! content, never by name, so a squatted name cannot stop the log.

use kube::api::{Api, PostParams};
use rollgate_crds::{AuditRecord, AuditRecordSpec};

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The record was created.
    Created,
    /// The record already existed with this content.
    Existed,
    /// Another object held the name (`squatter`); the record was created under a generated
    /// name.
    Relocated {
        /// The foreign object at the record's name.
        squatter: String,
    },
}

/// Writes `spec` as an AuditRecord in `namespace`.
pub async fn write(
    api: &Api<AuditRecord>,
    namespace: &str,
    spec: &AuditRecordSpec,
) -> Result<Written, kube::Error> {
    let record = AuditRecord::for_spec(namespace, spec.clone());
    let name = record.metadata.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), &record).await {
        Ok(_) => return Ok(Written::Created),
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(error),
    }
    if let Some(existing) = api.get_opt(&name).await?
        && existing.spec == *spec
    {
        return Ok(Written::Existed);
    }
    let mut relocated = record;
    relocated.metadata.name = None;
    relocated.metadata.generate_name = Some(format!("{}-", truncate(&name, 240)));
    api.create(&PostParams::default(), &relocated).await?;
    Ok(Written::Relocated { squatter: name })
}

fn truncate(name: &str, length: usize) -> &str {
    match name.char_indices().nth(length) {
        Some((end, _)) => &name[..end],
        None => name,
    }
}
