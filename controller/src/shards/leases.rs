//! The Lease loop of a sharded replica: renew this replica's member Lease, read every Lease of
//! the set (one LIST), work out with [`super::assign::plan`] what to claim, keep, release or
//! drop, and carry it out. Claims and releases are conditional writes (the resourceVersion
//! read, or a create), so two replicas never both claim one shard. Once a third of the lease
//! duration, and at once when asked to stop: then every held shard is drained and released and
//! the member Lease deleted, so the others take over without waiting for it to expire.
//!
//! The Leases, in the lease namespace, labelled `rollgate.io/lease-set: <lease name>`:
//! `<lease name>-member-<instance>` (holder and renewTime: this replica is live) and
//! `<lease name>-shard-<i>` (holder: who writes for shard i; liveness is its member Lease's).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use tokio::sync::watch;

use super::Shards;
use super::assign::{ShardLease, ShardStep, plan};
use crate::write::FieldManager;

/// The label that groups one controller's Leases.
pub const LEASE_SET_LABEL: &str = "rollgate.io/lease-set";

/// Where the Leases live and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaseSet {
    /// The Leases' namespace.
    pub namespace: String,
    /// The set's name: the prefix of every Lease and the value of [`LEASE_SET_LABEL`].
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a member Lease stays valid without renewal.
    pub duration: Duration,
}

impl LeaseSet {
    fn member_lease(&self, identity: &str) -> String {
        format!("{}-member-{identity}", self.name)
    }

    fn shard_lease(&self, shard: u32) -> String {
        format!("{}-shard-{shard}", self.name)
    }

    /// The grace that covers clock skew and a slow renewal: a third of the duration.
    pub fn grace(&self) -> Duration {
        self.duration / 3
    }
}

/// What the loop tells the rest of the process.
pub struct Hooks<F> {
    /// Called for a shard just before this replica starts writing for it (the audit log
    /// forgets what it knew of its Rollouts: another replica may have appended since).
    pub before_gain: F,
    /// Bumped after shards were claimed: their Rollouts are reconciled then.
    pub claims: watch::Sender<u64>,
    /// Set to the number of shards held after every round.
    pub held: prometheus_client::metrics::gauge::Gauge,
}

/// Runs the loop until `stop` resolves.
pub async fn run<F: Fn(u32)>(
    client: kube::Client,
    set: LeaseSet,
    shards: Shards,
    hooks: Hooks<F>,
    stop: impl std::future::Future<Output = ()>,
) {
    let api: Api<Lease> = Api::namespaced(client, &set.namespace);
    tokio::pin!(stop);
    loop {
        let round = tick(&api, &set, &shards, &hooks).await;
        hooks.held.set(shards.held().len() as i64);
        if let Err(error) = round {
            tracing::warn!(%error, "shard leases: one round failed; trying again");
        }
        tokio::select! {
            () = tokio::time::sleep(set.grace()) => {}
            () = &mut stop => break,
        }
    }
    leave(&api, &set, &shards).await;
    hooks.held.set(0);
}

/// One round: renew, read, plan, act.
async fn tick<F: Fn(u32)>(
    api: &Api<Lease>,
    set: &LeaseSet,
    shards: &Shards,
    hooks: &Hooks<F>,
) -> Result<(), kube::Error> {
    let sent = Instant::now();
    match renew(api, set).await {
        Ok(()) => shards.renewed(sent),
        Err(error) => tracing::warn!(%error, "could not renew the member lease"),
    }
    let selector = format!("{LEASE_SET_LABEL}={}", set.name);
    let listed = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    let by_name: BTreeMap<String, Lease> = listed
        .into_iter()
        .map(|lease| (lease.name_any(), lease))
        .collect();
    let now = Timestamp::now();
    let mut live: BTreeSet<String> = by_name
        .values()
        .filter(|lease| {
            lease
                .name_any()
                .starts_with(&format!("{}-member-", set.name))
        })
        .filter(|lease| is_live(lease, now))
        .filter_map(|lease| lease.spec.as_ref()?.holder_identity.clone())
        .collect();
    if shards.renewal_holds() {
        live.insert(set.identity.clone());
    } else {
        live.remove(&set.identity);
    }
    let leases: Vec<Option<ShardLease>> = (0..shards.count())
        .map(|shard| {
            by_name
                .get(&set.shard_lease(shard))
                .map(|lease| ShardLease {
                    holder: lease
                        .spec
                        .as_ref()
                        .and_then(|spec| spec.holder_identity.clone())
                        .filter(|holder| !holder.is_empty()),
                })
        })
        .collect();
    let live_refs: BTreeSet<&str> = live.iter().map(String::as_str).collect();
    let steps = plan(&set.identity, &leases, &live_refs, &shards.held());
    let mut gained = false;
    for (shard, step) in steps {
        let existing = by_name.get(&set.shard_lease(shard));
        match step {
            ShardStep::Claim => match claim(api, set, shard, existing).await {
                Ok(()) => {
                    (hooks.before_gain)(shard);
                    shards.gain(shard);
                    gained = true;
                    tracing::info!(shard, "claimed a shard");
                }
                Err(error) => tracing::debug!(shard, %error, "shard claim lost a race"),
            },
            ShardStep::Release => {
                shards.drain(shard).await;
                if let Some(lease) = existing {
                    release(api, lease).await;
                }
                tracing::info!(shard, "released a shard to its new owner");
            }
            ShardStep::Lost => {
                shards.lose(shard);
                tracing::warn!(
                    shard,
                    "lost a shard: its lease names another holder or lapsed"
                );
            }
            ShardStep::Keep | ShardStep::Wait => {}
        }
    }
    if gained {
        hooks.claims.send_modify(|claims| *claims += 1);
    }
    Ok(())
}

/// Whether a member Lease was renewed within its duration, by this clock.
fn is_live(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    renewed.0 + SignedDuration::from_secs(i64::from(seconds)) > now
}

/// Renews (or creates) this replica's member Lease: server-side apply, unconditional (nobody
/// else writes it).
async fn renew(api: &Api<Lease>, set: &LeaseSet) -> Result<(), kube::Error> {
    let name = set.member_lease(&set.identity);
    let lease = Lease {
        metadata: labelled(&name, &set.name),
        spec: Some(LeaseSpec {
            holder_identity: Some(set.identity.clone()),
            lease_duration_seconds: Some(set.duration.as_secs().try_into().unwrap_or(i32::MAX)),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    let params = PatchParams::apply(&lease_manager()).force();
    api.patch(&name, &params, &Patch::Apply(&lease)).await?;
    Ok(())
}

/// Claims shard `shard`: replaces its Lease at the resourceVersion read (or creates it), so a
/// concurrent claim by another replica fails.
async fn claim(
    api: &Api<Lease>,
    set: &LeaseSet,
    shard: u32,
    existing: Option<&Lease>,
) -> Result<(), kube::Error> {
    let now = MicroTime(Timestamp::now());
    let name = set.shard_lease(shard);
    let transitions = existing
        .and_then(|lease| lease.spec.as_ref()?.lease_transitions)
        .unwrap_or(0);
    let spec = LeaseSpec {
        holder_identity: Some(set.identity.clone()),
        lease_duration_seconds: Some(set.duration.as_secs().try_into().unwrap_or(i32::MAX)),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(transitions + 1),
        ..LeaseSpec::default()
    };
    match existing {
        Some(lease) => {
            let mut lease = lease.clone();
            lease.spec = Some(spec);
            api.replace(&name, &PostParams::default(), &lease).await?;
        }
        None => {
            let lease = Lease {
                metadata: labelled(&name, &set.name),
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// Clears the holder of a shard Lease this replica gave up (at the resourceVersion read).
async fn release(api: &Api<Lease>, lease: &Lease) {
    let mut released = lease.clone();
    if let Some(spec) = released.spec.as_mut() {
        spec.holder_identity = None;
    }
    if let Err(error) = api
        .replace(&lease.name_any(), &PostParams::default(), &released)
        .await
    {
        tracing::warn!(lease = %lease.name_any(), %error, "could not release a shard lease");
    }
}

/// On stopping: drains and releases every held shard, then deletes the member Lease.
async fn leave(api: &Api<Lease>, set: &LeaseSet, shards: &Shards) {
    for shard in shards.held() {
        shards.drain(shard).await;
        if let Ok(Some(lease)) = api.get_opt(&set.shard_lease(shard)).await
            && lease
                .spec
                .as_ref()
                .and_then(|spec| spec.holder_identity.as_deref())
                == Some(set.identity.as_str())
        {
            release(api, &lease).await;
        }
    }
    if let Err(error) = api
        .delete(&set.member_lease(&set.identity), &DeleteParams::default())
        .await
    {
        tracing::warn!(%error, "could not delete the member lease");
    }
}

fn labelled(name: &str, set: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some([(LEASE_SET_LABEL.to_owned(), set.to_owned())].into()),
        ..ObjectMeta::default()
    }
}

fn lease_manager() -> String {
    format!("{}-lease", FieldManager::Controller.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(renewed_seconds_ago: i64, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(
                    Timestamp::now() - SignedDuration::from_secs(renewed_seconds_ago),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_member_is_live_until_its_duration_has_passed_since_its_renewal() {
        let now = Timestamp::now();
        assert!(is_live(&member(5, 15), now));
        assert!(!is_live(&member(16, 15), now));
        assert!(!is_live(&Lease::default(), now));
    }

    #[test]
    fn lease_names_are_grouped_by_the_set() {
        let set = LeaseSet {
            namespace: "rollgate".into(),
            name: "rollgate-controller".into(),
            identity: "pod-a".into(),
            duration: Duration::from_secs(15),
        };
        assert_eq!(
            set.member_lease("pod-a"),
            "rollgate-controller-member-pod-a"
        );
        assert_eq!(set.shard_lease(3), "rollgate-controller-shard-3");
        assert_eq!(set.grace(), Duration::from_secs(5));
    }
}
