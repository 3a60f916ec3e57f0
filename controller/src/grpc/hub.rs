//! One watch of every Rollout, kept in memory and fanned out to every WatchRollouts stream
//! through a broadcast channel: a thousand streams cost one API watch, and each change is
//! converted to its message once.
//!
//! # Versions and resuming
//!
//! Each entry carries the Rollout's `resourceVersion` as a number (the API server's versions
//! are etcd revisions; a version that is not a number counts as 0). A deleted Rollout leaves a
//! tombstone carrying the version of its deletion, so a resumed stream learns of deletions too.
//! Tombstones are bounded ([`TOMBSTONES`]); the hub can resume a stream from any version not
//! older than its horizon: the version *of the first list* (the collection's resourceVersion,
//! read right after the list), raised when an old tombstone is dropped. A server that has just
//! started knows nothing of what happened before its list, in particular of a Rollout deleted
//! while it was down, so a resume from an older version (typically a client reconnecting after a
//! restart) is refused with `OUT_OF_RANGE` and a message telling the client to re-list, as a
//! Kubernetes watch answers `410 Gone`, rather than silently missing that deletion. When the
//! watch has to list again (its history expired), the difference to the previous state is
//! broadcast as changes, and Rollouts gone meanwhile become tombstones at the list's version.
//!
//! Subscribing takes the current state and a receiver under the lock that publishing takes,
//! so a subscriber sees every change exactly once: in the state, or on the channel.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::watcher};
use rollgate_crds::Rollout;
use rollgate_proto::v1;
use tokio::sync::broadcast;
use tonic::Status;

use super::convert;

/// Deleted Rollouts remembered for resumed streams.
pub const TOMBSTONES: usize = 10_000;

/// One Rollout as the hub holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its resource version, as a number.
    pub version: u64,
    /// Its message.
    pub rollout: v1::Rollout,
}

/// A change of one Rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Added, modified or deleted.
    pub kind: v1::rollout_event::Type,
    /// The Rollout after the change (before it, for a deletion).
    pub entry: Arc<Entry>,
}

/// The state at subscription, and the changes after it.
pub struct Subscription {
    /// The changes newer than the version asked for (everything, as added, without one), in
    /// version order.
    pub initial: Vec<Arc<Change>>,
    /// The newest version the hub knows.
    pub newest: u64,
    /// Every change after the state above.
    pub receiver: broadcast::Receiver<Arc<Change>>,
}

type Key = (String, String);

struct State {
    rollouts: HashMap<Key, Arc<Entry>>,
    tombstones: VecDeque<Arc<Entry>>,
    relisted: Option<HashMap<Key, Arc<Entry>>>,
    horizon: Option<u64>,
    newest: u64,
}

/// The shared watch of Rollouts.
pub struct Hub {
    state: Mutex<State>,
    sender: broadcast::Sender<Arc<Change>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl Hub {
    /// A hub whose channel buffers `buffer` changes per subscriber.
    pub fn new(buffer: usize) -> Arc<Hub> {
        let (sender, _) = broadcast::channel(buffer.max(16));
        Arc::new(Hub {
            state: Mutex::new(State {
                rollouts: HashMap::new(),
                tombstones: VecDeque::new(),
                relisted: None,
                horizon: None,
                newest: 0,
            }),
            sender,
            synced: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Watches every Rollout the client can see and applies each event, forever.
    pub async fn run(self: Arc<Self>, client: kube::Client) {
        let api = Api::<Rollout>::all(client);
        let mut events = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::InitDone) => {
                    if let Some(version) = collection_version(&api).await {
                        self.listed_at(version);
                    }
                    self.apply(Event::InitDone);
                }
                Ok(event) => self.apply(event),
                Err(error) => tracing::warn!(%error, "watch of Rollouts failed; retrying"),
            }
        }
    }

    /// Records that the list being completed was taken at `version` (the collection's
    /// resourceVersion): the next `InitDone` counts it as known, and the first one makes it the
    /// horizon.
    pub fn listed_at(&self, version: u64) {
        let mut state = self.lock();
        state.newest = state.newest.max(version);
    }

    /// Applies one watch event and publishes the changes it makes.
    pub fn apply(&self, event: Event<Rollout>) {
        let mut state = self.lock();
        match event {
            Event::Apply(rollout) => {
                let entry = entry_of(&rollout);
                self.upsert(&mut state, entry);
            }
            Event::Delete(rollout) => {
                let entry = Arc::new(entry_of(&rollout));
                state.newest = state.newest.max(entry.version);
                let key = (entry.namespace.clone(), entry.name.clone());
                state.rollouts.remove(&key);
                self.delete(&mut state, entry);
            }
            Event::Init => state.relisted = Some(HashMap::new()),
            Event::InitApply(rollout) => {
                let entry = Arc::new(entry_of(&rollout));
                let key = (entry.namespace.clone(), entry.name.clone());
                state.relisted.get_or_insert_default().insert(key, entry);
            }
            Event::InitDone => {
                let listed = state.relisted.take().unwrap_or_default();
                let gone: Vec<Key> = state
                    .rollouts
                    .keys()
                    .filter(|key| !listed.contains_key(*key))
                    .cloned()
                    .collect();
                let mut listed: Vec<_> = listed.into_values().collect();
                listed.sort_by_key(|entry| entry.version);
                let newest = listed.iter().map(|entry| entry.version).max();
                state.newest = state.newest.max(newest.unwrap_or(0));
                for entry in listed {
                    self.upsert(&mut state, Arc::unwrap_or_clone(entry));
                }
                for key in gone {
                    if let Some(entry) = state.rollouts.remove(&key) {
                        let mut tombstone = Arc::unwrap_or_clone(entry);
                        tombstone.version = state.newest;
                        self.delete(&mut state, Arc::new(tombstone));
                    }
                }
                if state.horizon.is_none() {
                    state.horizon = Some(state.newest);
                }
                self.synced.send_replace(true);
            }
        }
    }

    fn upsert(&self, state: &mut State, entry: Entry) {
        state.newest = state.newest.max(entry.version);
        let key = (entry.namespace.clone(), entry.name.clone());
        let kind = match state.rollouts.get(&key) {
            Some(old) if old.version == entry.version => return,
            Some(_) => v1::rollout_event::Type::Modified,
            None => v1::rollout_event::Type::Added,
        };
        let entry = Arc::new(entry);
        state.rollouts.insert(key, entry.clone());
        let _ = self.sender.send(Arc::new(Change { kind, entry }));
    }

    fn delete(&self, state: &mut State, entry: Arc<Entry>) {
        state.tombstones.push_back(entry.clone());
        while state.tombstones.len() > TOMBSTONES {
            if let Some(dropped) = state.tombstones.pop_front() {
                state.horizon = Some(state.horizon.unwrap_or(0).max(dropped.version));
            }
        }
        let kind = v1::rollout_event::Type::Deleted;
        let _ = self.sender.send(Arc::new(Change { kind, entry }));
    }

    /// Waits until the first list is complete; `UNAVAILABLE` after `timeout`.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), Status> {
        let mut synced = self.synced.subscribe();
        match tokio::time::timeout(timeout, synced.wait_for(|synced| *synced)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Status::unavailable(
                "the server has not loaded the Rollouts yet; retry shortly",
            )),
        }
    }

    /// The Rollouts for which `keep` holds, sorted by namespace and name.
    pub fn list(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Arc<Entry>> {
        let state = self.lock();
        let mut entries: Vec<Arc<Entry>> = state
            .rollouts
            .values()
            .filter(|entry| keep(entry))
            .cloned()
            .collect();
        drop(state);
        entries.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        entries
    }

    /// One Rollout.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Entry>> {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().rollouts.get(&key).cloned()
    }

    /// The state newer than version `after` (all of it without one) and the changes that
    /// follow. `OUT_OF_RANGE` when `after` is older than the hub's history.
    pub fn subscribe(&self, after: Option<u64>) -> Result<Subscription, Status> {
        let state = self.lock();
        let horizon = state.horizon.unwrap_or(0);
        if let Some(after) = after.filter(|after| *after < horizon) {
            return Err(Status::out_of_range(format!(
                "resource_version {after} is older than this server's history (it starts at {horizon}, for example because the server restarted): changes before that, deletions included, cannot be replayed; re-list: watch again without a resource_version"
            )));
        }
        let floor = after.unwrap_or(0);
        let mut initial: Vec<Arc<Change>> = state
            .rollouts
            .values()
            .filter(|entry| after.is_none() || entry.version > floor)
            .map(|entry| {
                let kind = v1::rollout_event::Type::Added;
                Arc::new(Change {
                    kind,
                    entry: entry.clone(),
                })
            })
            .collect();
        if after.is_some() {
            let deleted = state.tombstones.iter().filter(|e| e.version > floor);
            initial.extend(deleted.map(|entry| {
                let kind = v1::rollout_event::Type::Deleted;
                Arc::new(Change {
                    kind,
                    entry: entry.clone(),
                })
            }));
        }
        initial.sort_by_key(|change| change.entry.version);
        Ok(Subscription {
            initial,
            newest: state.newest,
            receiver: self.sender.subscribe(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The Rollout collection's current resourceVersion (a one-item list), retried a few times;
/// `None` (the newest listed Rollout's version then stands in) when the API server keeps failing.
async fn collection_version(api: &Api<Rollout>) -> Option<u64> {
    let params = kube::api::ListParams::default().limit(1);
    for attempt in 1..=5u32 {
        match api.list_metadata(&params).await {
            Ok(list) => {
                return list
                    .metadata
                    .resource_version
                    .as_deref()
                    .map(version_number);
            }
            Err(error) => {
                tracing::warn!(%error, attempt, "read the Rollouts' list version");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    None
}

/// A resource version as a number; 0 when it is not one.
pub fn version_number(version: &str) -> u64 {
    version.parse().unwrap_or(0)
}

fn entry_of(rollout: &Rollout) -> Entry {
    let message = convert::rollout(rollout);
    let id = message.id.clone().unwrap_or_default();
    Entry {
        namespace: id.namespace,
        name: id.name,
        labels: rollout.metadata.labels.clone().unwrap_or_default(),
        version: version_number(&message.resource_version),
        rollout: message,
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
