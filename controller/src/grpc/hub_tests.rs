use serde_json::json;

use super::*;
use rollgate_proto::v1::rollout_event::Type;

fn rollout(name: &str, version: u64, weight: i32) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "rollgate.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": version.to_string(),
                     "labels": {"team": "payments"}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}]}}
        },
        "status": {"canaryWeight": weight}
    }))
    .unwrap()
}

fn synced(hub: &Hub, rollouts: &[Rollout]) {
    hub.apply(Event::Init);
    for rollout in rollouts {
        hub.apply(Event::InitApply(rollout.clone()));
    }
    hub.apply(Event::InitDone);
}

fn seen(changes: &[Arc<Change>]) -> Vec<(Type, String, u64)> {
    changes
        .iter()
        .map(|c| (c.kind, c.entry.name.clone(), c.entry.version))
        .collect()
}

fn drain(receiver: &mut broadcast::Receiver<Arc<Change>>) -> Vec<Arc<Change>> {
    let mut changes = Vec::new();
    while let Ok(change) = receiver.try_recv() {
        changes.push(change);
    }
    changes
}

#[test]
fn a_new_subscriber_gets_the_state_then_every_change_once() {
    let hub = Hub::new(64);
    synced(&hub, &[rollout("b", 12, 0), rollout("a", 10, 0)]);
    let mut subscription = hub.subscribe(None).unwrap();
    assert_eq!(
        seen(&subscription.initial),
        [(Type::Added, "a".into(), 10), (Type::Added, "b".into(), 12)]
    );
    assert_eq!(subscription.newest, 12);
    hub.apply(Event::Apply(rollout("a", 13, 20)));
    hub.apply(Event::Apply(rollout("a", 13, 20)));
    hub.apply(Event::Apply(rollout("c", 14, 0)));
    hub.apply(Event::Delete(rollout("b", 15, 0)));
    let live = drain(&mut subscription.receiver);
    assert_eq!(
        seen(&live),
        [
            (Type::Modified, "a".into(), 13),
            (Type::Added, "c".into(), 14),
            (Type::Deleted, "b".into(), 15)
        ]
    );
    assert_eq!(live[0].entry.rollout.canary_weight, 20);
    assert_eq!(live[0].entry.labels["team"], "payments");
    assert_eq!(hub.list(|_| true).len(), 2);
    assert!(hub.get("shop", "b").is_none());
}

#[test]
fn a_resumed_subscriber_gets_only_newer_changes_and_deletions() {
    let hub = Hub::new(64);
    synced(&hub, &[rollout("a", 10, 0), rollout("b", 11, 0)]);
    hub.apply(Event::Apply(rollout("a", 20, 40)));
    hub.apply(Event::Delete(rollout("b", 21, 0)));
    hub.apply(Event::Apply(rollout("c", 22, 0)));
    let resumed = hub.subscribe(Some(20)).unwrap();
    assert_eq!(
        seen(&resumed.initial),
        [
            (Type::Deleted, "b".into(), 21),
            (Type::Added, "c".into(), 22)
        ]
    );
    let everything_after_first_list = hub.subscribe(Some(11)).unwrap();
    assert_eq!(everything_after_first_list.initial.len(), 3);
    let too_old = hub.subscribe(Some(5)).err().unwrap();
    assert_eq!(too_old.code(), tonic::Code::OutOfRange);
}

#[test]
fn a_resume_from_before_a_restart_is_told_to_relist() {
    // Before the restart the client saw "b" at 105; "b" was deleted (version 110) while the
    // server was down, and the new server lists at 110 and holds only "a".
    let hub = Hub::new(64);
    hub.apply(Event::Init);
    hub.apply(Event::InitApply(rollout("a", 100, 0)));
    hub.listed_at(110);
    hub.apply(Event::InitDone);
    let refused = hub.subscribe(Some(105)).err().unwrap();
    assert_eq!(refused.code(), tonic::Code::OutOfRange);
    assert!(
        refused.message().contains("re-list"),
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("105"), "{}", refused.message());
    assert!(hub.subscribe(Some(110)).unwrap().initial.is_empty());
}

#[test]
fn a_relist_publishes_the_difference() {
    let hub = Hub::new(64);
    synced(&hub, &[rollout("a", 10, 0), rollout("b", 11, 0)]);
    let mut subscription = hub.subscribe(None).unwrap();
    synced(&hub, &[rollout("a", 10, 0), rollout("c", 30, 0)]);
    assert_eq!(
        seen(&drain(&mut subscription.receiver)),
        [
            (Type::Added, "c".into(), 30),
            (Type::Deleted, "b".into(), 30)
        ]
    );
    let resumed = hub.subscribe(Some(11)).unwrap();
    assert_eq!(resumed.initial.len(), 2);
}

#[tokio::test]
async fn readers_wait_for_the_first_list() {
    let hub = Hub::new(16);
    let waited = hub.wait_synced(Duration::from_millis(10)).await;
    assert_eq!(waited.unwrap_err().code(), tonic::Code::Unavailable);
    synced(&hub, &[]);
    hub.wait_synced(Duration::from_millis(10)).await.unwrap();
}

#[test]
fn versions_that_are_not_numbers_count_as_zero() {
    assert_eq!(version_number("123"), 123);
    assert_eq!(version_number("abc"), 0);
}
