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
        edited: Default::default(),
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
    let count = |s: &str| {
        b.peek(&b.store_key(&addr(s)).expect("store"), 0, 10, None)
            .len()
    };
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
        b.abandon(d.lock.expect("lock").0, 0, &[])
            .expect("abandons");
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
    assert_eq!(again.peek(&k, 0, 10, None).len(), 1);
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

fn with_id(id: &str) -> Message {
    let mut m = msg("x", "y");
    m.system.message_id = Some(id.into());
    m
}

#[test]
fn duplicate_detection_drops_a_repeated_message_id_within_the_window_only() {
    let mut t = Topology::default();
    let mut q = QueueSpec::new("dq");
    q.store.duplicate_window_ms = Some(1_000);
    t.queues.push(q);
    t.queues.push(QueueSpec::new("plain"));
    let mut b = Broker::new(&t, 0);
    assert_eq!(
        b.send(&addr("dq"), with_id("m1"), 0).expect("sent").len(),
        1
    );
    assert!(b
        .send(&addr("dq"), with_id("m1"), 500)
        .expect("accepted")
        .is_empty());
    assert_eq!(
        b.send(&addr("dq"), with_id("m2"), 500).expect("sent").len(),
        1
    );
    assert_eq!(
        b.send(&addr("dq"), with_id("m1"), 1_001)
            .expect("sent")
            .len(),
        1
    );
    let k = b.store_key(&addr("dq")).expect("q");
    assert_eq!(b.peek(&k, 0, 10, None).len(), 3);
    b.send(&addr("plain"), with_id("m1"), 0).expect("sent");
    b.send(&addr("plain"), with_id("m1"), 0).expect("sent");
    let plain = b.store_key(&addr("plain")).expect("q");
    assert_eq!(
        b.peek(&plain, 0, 10, None).len(),
        2,
        "no detection configured"
    );
}

#[test]
fn duplicate_history_survives_a_journal_replay() {
    let mut t = Topology::default();
    let mut q = QueueSpec::new("dq");
    q.store.duplicate_window_ms = Some(60_000);
    t.queues.push(q);
    let mut b = Broker::new(&t, 0);
    b.send(&addr("dq"), with_id("m1"), 0).expect("sent");
    let mut again = Broker::new(&t, 0);
    for op in b.drain_journal() {
        again.replay(op, 0);
    }
    assert!(again
        .send(&addr("dq"), with_id("m1"), 10)
        .expect("accepted")
        .is_empty());
}

#[test]
fn a_topic_copy_without_a_session_id_is_dead_lettered_by_a_session_subscription() {
    let mut sub = SubscriptionSpec::new("s");
    sub.store.requires_session = true;
    let t = Topology {
        topics: vec![TopicSpec::new(
            "t",
            vec![sub, SubscriptionSpec::new("plain")],
        )],
        ..Default::default()
    };
    let mut b = Broker::new(&t, 0);
    b.send(&addr("t"), msg("x", "y"), 0).expect("sent");
    let dlq = b
        .store_key(&addr("t/Subscriptions/s/$DeadLetterQueue"))
        .expect("dlq");
    let dead = b.peek(&dlq, 0, 10, None);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].dead_letter.as_ref().expect("reason").0,
        "Session id is null."
    );
    let plain = b.store_key(&addr("t/Subscriptions/plain")).expect("sub");
    assert_eq!(b.peek(&plain, 0, 10, None).len(), 1);
}

#[test]
fn each_matching_rule_with_an_action_makes_its_own_copy_named_after_the_rule() {
    let mut sub = SubscriptionSpec::new("s");
    let mut relabel = RuleSpec::new("relabel", filter::Filter::True);
    relabel.action = Some(filter::Action::sql("SET sys.Label = 'changed'").expect("action"));
    sub.rules = vec![
        RuleSpec::new("a", filter::Filter::True),
        RuleSpec::new("b", filter::Filter::True),
        relabel,
    ];
    let t = Topology {
        topics: vec![TopicSpec::new("t", vec![sub])],
        ..Default::default()
    };
    let mut b = Broker::new(&t, 0);
    b.send(&addr("t"), msg("orig", "y"), 0).expect("sent");
    let k = b.store_key(&addr("t/Subscriptions/s")).expect("sub");
    let got = b.peek(&k, 0, 10, None);
    assert_eq!(
        got.len(),
        2,
        "one for the rules without actions, one for the action"
    );
    assert_eq!(got[0].msg.system.subject.as_deref(), Some("orig"));
    assert_eq!(got[1].msg.system.subject.as_deref(), Some("changed"));
    assert_eq!(
        got[1].msg.app.get("RuleName"),
        Some(&PropValue::Str("relabel".into()))
    );
}

#[test]
fn a_deferred_message_stays_deferred_across_a_journal_replay() {
    let mut b = Broker::new(&Topology::builtin(), 0);
    b.send(&addr("queue1"), msg("a", "b"), 0).expect("sent");
    let k = b.store_key(&addr("queue1")).expect("q");
    let d = b.receive(&k, 0, true).expect("message");
    b.defer(d.lock.expect("lock").0, &[]).expect("defers");
    let mut again = Broker::new(&Topology::builtin(), 0);
    for op in b.drain_journal() {
        again.replay(op, 0);
    }
    assert!(
        again.receive(&k, 0, true).is_none(),
        "not in the queue's order"
    );
    let got = again
        .receive_deferred(&k, &[d.stored.seq], None, true, 0)
        .expect("by sequence number");
    assert_eq!(got.len(), 1);
    assert_eq!(
        again
            .receive_deferred(&k, &[99], None, true, 0)
            .map(|v| v.len()),
        Err(BrokerError::MessageNotFound(99))
    );
}

#[test]
fn a_forwarding_cycle_stops_and_a_failed_forward_is_dead_lettered_not_lost() {
    let mut a = QueueSpec::new("a");
    a.store.forward_to = Some("b".into());
    let mut b_q = QueueSpec::new("b");
    b_q.store.forward_to = Some("a".into());
    b_q.store.duplicate_window_ms = Some(60_000);
    let mut to_sessions = QueueSpec::new("c");
    to_sessions.store.forward_to = Some("s".into());
    let mut s = QueueSpec::new("s");
    s.store.requires_session = true;
    let t = Topology {
        queues: vec![a, b_q, to_sessions, s],
        ..Default::default()
    };
    let mut b = Broker::new(&t, 0);
    b.send(&addr("a"), with_id("m1"), 0)
        .expect("sent around the cycle");
    let held: usize = ["a", "b"]
        .iter()
        .map(|q| {
            b.peek(&b.store_key(&addr(q)).expect("q"), 0, 10, None)
                .len()
        })
        .sum();
    assert_eq!(held, 1, "one copy, kept where forwarding stopped");
    b.send(&addr("c"), with_id("m2"), 0).expect("accepted");
    let dlq = b.store_key(&addr("c/$DeadLetterQueue")).expect("dlq");
    let dead = b.peek(&dlq, 0, 10, None);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].dead_letter.as_ref().expect("reason").0,
        "ForwardingFailed"
    );
}
