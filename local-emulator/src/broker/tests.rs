use super::message::{Message, PropValue};
use super::*;

fn msg(label: &str, prop1: &str) -> Message {
    let mut app = BTreeMap::new();
    app.insert("prop1".to_owned(), PropValue::Str(prop1.to_owned()));
    Message {
        annotations: Vec::new(),
        bare: vec![1, 2, 3],
        system: message::SystemProps {
            subject: Some(label.into()),
            ..Default::default()
        },
        app,
        ttl_ms: None,
        scheduled_ms: None,
        partition_key: None,
    }
}

fn addr(s: &str) -> Address {
    Address::parse(s).expect("address")
}

#[test]
fn topic_copies_to_every_subscription_whose_filter_matches() {
    let mut b = Broker::new(&Topology::builtin(), 0);
    b.send(&addr("topic1"), msg("x", "value1"), 0)
        .expect("sent");
    b.send(&addr("topic1"), msg("important", "other"), 0)
        .expect("sent");
    let count = |s: &str| b.peek(&b.store_key(&addr(s)).expect("store"), 0, 10).len();
    assert_eq!(count("topic1/Subscriptions/subscription1"), 2);
    assert_eq!(count("topic1/Subscriptions/subscription2"), 1);
    assert_eq!(count("topic1/Subscriptions/subscription3"), 1);
}

#[test]
fn max_delivery_count_moves_the_message_to_the_dead_letter_queue() {
    let mut t = Topology::default();
    let mut q = QueueSpec::new("q");
    q.store.max_delivery = 2;
    t.queues.push(q);
    let mut b = Broker::new(&t, 0);
    b.send(&addr("q"), msg("a", "b"), 0).expect("sent");
    let k = b.store_key(&addr("q")).expect("q");
    for _ in 0..2 {
        let d = b.receive(&k, 0, true).expect("message");
        b.abandon(d.lock.expect("lock").0, 0).expect("abandons");
    }
    assert!(b.receive(&k, 0, true).is_none());
    let dlq = b.store_key(&addr("q/$DeadLetterQueue")).expect("dlq");
    let d = b.receive(&dlq, 0, false).expect("dead letter");
    assert_eq!(
        d.stored.dead_letter.expect("reason").0,
        "MaxDeliveryCountExceeded"
    );
}

#[test]
fn journal_replay_restores_what_was_not_removed() {
    let mut b = Broker::new(&Topology::builtin(), 0);
    b.send(&addr("queue1"), msg("a", "b"), 0).expect("sent");
    b.send(&addr("queue1"), msg("c", "d"), 0).expect("sent");
    b.send(&addr("eh1/Partitions/1"), msg("e", "f"), 0)
        .expect("sent");
    let k = b.store_key(&addr("queue1")).expect("q");
    b.receive(&k, 0, false).expect("first");
    let ops = b.drain_journal();
    let mut again = Broker::new(&Topology::builtin(), 0);
    for op in ops {
        again.replay(op, 0);
    }
    assert_eq!(again.peek(&k, 0, 10).len(), 1);
    assert_eq!(again.partition_info("eh1", 1).expect("p").last_seq, 0);
}

#[test]
fn missing_entities_are_not_found() {
    let b = Broker::new(&Topology::builtin(), 0);
    assert!(matches!(
        b.kind(&addr("nope")),
        Err(BrokerError::NotFound(_))
    ));
    assert!(matches!(
        b.kind(&addr("eh1/ConsumerGroups/zz/Partitions/0")),
        Err(BrokerError::NotFound(_))
    ));
    assert_eq!(
        b.kind(&addr("eh1/ConsumerGroups/$Default/Partitions/1")),
        Ok(NodeKind::Consumer)
    );
}
