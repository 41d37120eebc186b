//! The store contract: one suite, run against SQLite and PostgreSQL, so neither backend
//! drifts. PostgreSQL tests use this machine's server (`HERALD_TEST_PG`, by default
//! `postgres://postgres@127.0.0.1:5432/test`), each in a schema of its own; they fail, never
//! skip, when it is not reachable.

use std::sync::Arc;
use std::time::Duration;

use herald::model::*;
use herald::store::*;
use time::OffsetDateTime;

use crate::support::pg_url;

/// A store for one test, and what removes it.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// What opened it (to open another instance on the same database).
    pub settings: StoreSettings,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let settings = StoreSettings {
        url: StoreUrl::Sqlite(dir.path().join("herald.db")),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        schema: None,
        idempotency_window: Duration::from_secs(86_400),
        keys: crate::support::test_keys(),
    };
    TestStore {
        store: open(&settings).await.expect("SQLite store opens"),
        settings,
        _dir: Some(dir),
    }
}

pub async fn postgres() -> TestStore {
    let settings = StoreSettings {
        url: pg_url().parse().expect("a postgres:// URL"),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
        schema: Some(format!("t_{}", uuid::Uuid::new_v4().simple())),
        idempotency_window: Duration::from_secs(86_400),
        keys: crate::support::test_keys(),
    };
    let store = open(&settings)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed by the store contract tests (scripts/test.sh starts it): {e}", settings.url));
    TestStore {
        store,
        settings,
        _dir: None,
    }
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub(crate) async fn endpoint(store: &dyn Store, name: &str) -> Endpoint {
    let e = Endpoint {
        id: EndpointId::new(),
        name: name.into(),
        settings: DestinationSettings::Webhook(WebhookSettings {
            url: "https://example.com/hook".into(),
            secrets: vec![SigningSecret {
                id: SecretId::new(),
                secret: Secret::generate(),
                created_at: now(),
            }],
            timeout: None,
            auth: None,
            headers: Vec::new(),
            validation: Default::default(),
        }),
        max_concurrency: Some(3),
        rate_limit: None,
        created_at: now(),
        updated_at: now(),
        owners: Vec::new(),
    };
    store.records().put_endpoint(&e).await.unwrap();
    e
}

pub(crate) async fn subscription(
    store: &dyn Store,
    endpoint: EndpointId,
    name: &str,
) -> Subscription {
    let s = Subscription {
        id: SubscriptionId::new(),
        name: name.into(),
        solution: "contoso".into(),
        event: Some("contoso_CustomerPurchase".into()),
        category: None,
        endpoint_id: endpoint,
        format: Default::default(),
        filter: Default::default(),
        enabled: true,
        rank: 1,
        mode: Default::default(),
        stage: None,
        amqp: Default::default(),
        transform: None,
        row: Default::default(),
        disabled_reason: None,
        created_at: now(),
        updated_at: now(),
    };
    store.records().put_subscription(&s).await.unwrap();
    s
}

pub(crate) fn new_event(sub: &Subscription, key: Option<(&str, u8)>) -> NewEvent {
    let mut params = serde_json::Map::new();
    params.insert("Total".into(), 12.5.into());
    NewEvent {
        event: Arc::new(OutgoingEvent::new(Event {
            id: EventId::new(),
            name: herald::model::EventName::parse("contoso_CustomerPurchase").unwrap(),
            solution: "contoso".into(),
            params,
            correlation_id: "corr-1".into(),
            caller: "test".into(),
            received_at: now(),
            depth: 1,
            pipeline: Default::default(),
            traceparent: None,
            images: None,
        })),
        idempotency: key.map(|(k, f)| (k.to_owned(), [f; 32])),
        deliveries: vec![NewDelivery {
            id: DeliveryId::new(),
            subscription_id: sub.id,
            endpoint_id: sub.endpoint_id,
            leased_until: None,
        }],
        handoff: None,
    }
}

pub(crate) fn lease_req<'a>(
    owner: &'a str,
    skip: &'a [EndpointId],
    limit: u32,
    per_endpoint: u32,
) -> LeaseRequest<'a> {
    LeaseRequest {
        owner,
        now: now(),
        until: now() + Duration::from_secs(60),
        limit,
        per_endpoint,
        skip_endpoints: skip,
    }
}

pub(crate) fn result(d: &LeasedDelivery, next: NextState) -> AttemptResult {
    AttemptResult {
        delivery_id: d.id,
        attempts: d.attempts + 1,
        attempt: Some(Attempt {
            attempt: d.attempts + 1,
            started_at: now(),
            duration_ms: 3,
            outcome: if next == NextState::Succeeded {
                AttemptOutcome::Success
            } else {
                AttemptOutcome::Retry
            },
            http_status: Some(503),
            error: Some("receiver answered 503".into()),
            exchange: Some(herald::model::Exchange {
                target: "https://receiver.example/hook".into(),
                headers: vec![("webhook-id".into(), d.id.to_string())],
                body: Some("{}".into()),
                response: Some("HTTP 503 Service Unavailable\n\nbusy".into()),
                ..Default::default()
            }),
        }),
        next,
        routed: None,
    }
}

pub async fn stored_events_come_back_with_their_deliveries(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let mut new = new_event(&sub, None);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    Arc::get_mut(&mut new.event).unwrap().event.traceparent = Some(traceparent.into());
    let out = s.ingest(vec![new.clone()]).await.unwrap();
    assert_eq!(
        out,
        vec![IngestOutcome::Created {
            id: new.event.id,
            deliveries: 1
        }]
    );
    let (event, deliveries) = s
        .records()
        .event(&Scope::All, new.event.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.params, new.event.params);
    assert_eq!(event.correlation_id, "corr-1");
    assert_eq!(event.traceparent.as_deref(), Some(traceparent));
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, DeliveryStatus::Pending);
    assert!(s
        .records()
        .event(&Scope::All, EventId::new())
        .await
        .unwrap()
        .is_none());
}

pub async fn an_event_keeps_its_depth_and_what_its_steps_did(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let mut new = new_event(&sub, None);
    let mut event = new.event.event.clone();
    event.depth = 3;
    event.pipeline.changes.push(ParamChange {
        step: "normalise".into(),
        stage: Stage::PreOperation,
        parameter: "Total".into(),
        from: Some(12.5.into()),
        to: Some(11.into()),
    });
    event
        .pipeline
        .shared_variables
        .insert("rate".into(), 0.88.into());
    event
        .pipeline
        .response
        .insert("QuoteId".into(), "q-1".into());
    new.event = Arc::new(OutgoingEvent::new(event.clone()));
    s.ingest(vec![new.clone()]).await.unwrap();
    let (stored, _) = s
        .records()
        .event(&Scope::All, new.event.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.depth, 3);
    assert_eq!(stored.pipeline, event.pipeline);
    // An event no step touched stores no pipeline and reads back empty, at depth 1.
    let plain = new_event(&sub, None);
    s.ingest(vec![plain.clone()]).await.unwrap();
    let (stored, _) = s
        .records()
        .event(&Scope::All, plain.event.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.depth, stored.pipeline.is_empty()), (1, true));
}

pub async fn an_idempotency_key_returns_the_first_event_or_reports_reuse(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let first = new_event(&sub, Some(("k1", 1)));
    s.ingest(vec![first.clone()]).await.unwrap();
    let same = s
        .ingest(vec![new_event(&sub, Some(("k1", 1)))])
        .await
        .unwrap();
    assert_eq!(
        same,
        vec![IngestOutcome::Replayed {
            id: first.event.id,
            deliveries: 1
        }]
    );
    let other = s
        .ingest(vec![new_event(&sub, Some(("k1", 2)))])
        .await
        .unwrap();
    assert_eq!(other, vec![IngestOutcome::KeyReused { id: first.event.id }]);
    // Concurrent requests with one key create one event.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = t.store.clone();
            let ev = new_event(&sub, Some(("k2", 3)));
            tokio::spawn(async move { store.ingest(vec![ev]).await.unwrap().remove(0) })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), IngestOutcome::Created { .. }) {
            created += 1;
        }
    }
    assert_eq!(created, 1);
}

pub async fn leases_respect_the_limits_and_skip_busy_endpoints(t: TestStore) {
    let s = t.store.as_ref();
    let a = endpoint(s, "a").await;
    let b = endpoint(s, "b").await;
    let sa = subscription(s, a.id, "sa").await;
    let sb = subscription(s, b.id, "sb").await;
    let events: Vec<NewEvent> = (0..5)
        .map(|_| new_event(&sa, None))
        .chain((0..5).map(|_| new_event(&sb, None)))
        .collect();
    s.ingest(events).await.unwrap();
    let leased = s.lease(lease_req("one", &[], 100, 2)).await.unwrap();
    assert_eq!(leased.len(), 4, "two per endpoint");
    let skip = [a.id];
    let more = s.lease(lease_req("one", &skip, 100, 10)).await.unwrap();
    assert!(more.iter().all(|d| d.endpoint_id == b.id));
    assert_eq!(more.len(), 3);
    let rest = s.lease(lease_req("two", &[], 1, 10)).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event.name, "contoso_CustomerPurchase");
}

pub async fn an_expired_lease_is_taken_over_and_the_old_owner_result_is_ignored(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    let mut req = lease_req("dead", &[], 10, 10);
    req.until = now() - Duration::from_secs(1);
    let first = s.lease(req).await.unwrap();
    assert_eq!(first.len(), 1);
    let second = s.lease(lease_req("alive", &[], 10, 10)).await.unwrap();
    assert_eq!(second.len(), 1, "the expired lease is taken over");
    s.record(
        "dead",
        None,
        &[result(&first[0], NextState::RetryAt(now()))],
    )
    .await
    .unwrap();
    s.record("alive", None, &[result(&second[0], NextState::Succeeded)])
        .await
        .unwrap();
    let (d, attempts) = s
        .records()
        .delivery(&Scope::All, second[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Succeeded);
    assert!(d.finished_at.is_some());
    assert_eq!(attempts.len(), 1);
}

pub async fn retries_dead_letters_and_replay_move_deliveries_as_asked(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest(vec![new_event(&sub, None), new_event(&sub, None)])
        .await
        .unwrap();
    let leased = s.lease(lease_req("me", &[], 10, 10)).await.unwrap();
    let later = now() + Duration::from_secs(3600);
    s.record(
        "me",
        None,
        &[
            result(&leased[0], NextState::RetryAt(later)),
            result(
                &leased[1],
                NextState::DeadLettered("receiver answered 400".into()),
            ),
        ],
    )
    .await
    .unwrap();
    assert!(
        s.lease(lease_req("me", &[], 10, 10))
            .await
            .unwrap()
            .is_empty(),
        "nothing is due"
    );
    let next = s.records().next_due(&[]).await.unwrap().unwrap();
    assert!((next - later).abs() < time::Duration::seconds(1));
    assert_eq!(
        s.records().next_due(&[ep.id]).await.unwrap(),
        None,
        "a skipped endpoint's work does not count"
    );
    let dead = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                status: Some(DeliveryStatus::DeadLettered),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("receiver answered 400"));
    assert_eq!(
        s.records()
            .replay(
                &Scope::All,
                &ReplayFilter {
                    event: Some("other".into()),
                    ..Default::default()
                },
                now()
            )
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.records()
            .replay(
                &Scope::All,
                &ReplayFilter {
                    endpoint_id: Some(ep.id),
                    ..Default::default()
                },
                now()
            )
            .await
            .unwrap(),
        1
    );
    let again = s.lease(lease_req("me", &[], 10, 10)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    s.record("me", None, &[result(&again[0], NextState::Succeeded)])
        .await
        .unwrap();
    assert_eq!(
        s.records()
            .retry(&Scope::All, again[0].id, now())
            .await
            .unwrap(),
        Some(false),
        "a succeeded delivery is not retried"
    );
    assert_eq!(
        s.records()
            .retry(&Scope::All, leased[0].id, now())
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(
        s.records()
            .retry(&Scope::All, DeliveryId::new(), now())
            .await
            .unwrap(),
        None
    );
    let counts = s.records().counts().await.unwrap();
    assert!(
        counts.contains(&(DeliveryStatus::Succeeded, 1))
            && counts.contains(&(DeliveryStatus::Pending, 1))
    );
}

pub async fn endpoints_and_subscriptions_keep_unique_names_and_cascade_on_delete(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let mut twin = ep.clone();
    twin.id = EndpointId::new();
    assert!(matches!(
        s.records().put_endpoint(&twin).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.records()
            .endpoint_by_name("ep")
            .await
            .unwrap()
            .unwrap()
            .id,
        ep.id
    );
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    s.records()
        .disable_subscription(sub.id, "receiver answered 410")
        .await
        .unwrap();
    let disabled = s.records().subscription(sub.id).await.unwrap().unwrap();
    assert!(!disabled.enabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("receiver answered 410")
    );
    let cancelled = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                status: Some(DeliveryStatus::Cancelled),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert!(s.records().delete_endpoint(ep.id).await.unwrap());
    assert!(s.records().subscriptions().await.unwrap().is_empty());
    assert!(s.records().endpoints().await.unwrap().is_empty());
}

pub async fn released_leases_are_due_again_at_once(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    assert_eq!(
        s.lease(lease_req("me", &[], 10, 10)).await.unwrap().len(),
        1
    );
    assert_eq!(s.records().release_leases("someone-else").await.unwrap(), 0);
    assert_eq!(s.records().release_leases("me").await.unwrap(), 1);
    assert_eq!(
        s.lease(lease_req("me", &[], 10, 10)).await.unwrap().len(),
        1
    );
}

pub async fn concurrent_leases_never_hand_out_a_delivery_twice(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest((0..60).map(|_| new_event(&sub, None)).collect())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let store = t.store.clone();
            tokio::spawn(async move {
                let owner = format!("owner-{i}");
                let mut got = Vec::new();
                loop {
                    let leased = store.lease(lease_req(&owner, &[], 5, 100)).await.unwrap();
                    if leased.is_empty() {
                        return got;
                    }
                    got.extend(leased.into_iter().map(|d| d.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 60, "every delivery leased once");
    assert_eq!(unique.len(), 60, "no delivery leased twice");
}

pub async fn a_handed_off_delivery_whose_instance_dies_is_taken_over(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    // Handed off by this instance at ingestion: stored in flight, leased by its owner.
    let mut live = new_event(&sub, None);
    live.deliveries[0].leased_until = Some(now() + Duration::from_secs(60));
    // Handed off by an instance that died a while ago: its lease has run out.
    let mut dead = new_event(&sub, None);
    dead.deliveries[0].leased_until = Some(now() - Duration::from_millis(1));
    let (live_id, dead_id) = (live.deliveries[0].id, dead.deliveries[0].id);
    s.ingest(vec![live, dead]).await.unwrap();
    let (d, _) = s
        .records()
        .delivery(&Scope::All, live_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::InFlight, "born leased");
    let taken = s.lease(lease_req("survivor", &[], 10, 10)).await.unwrap();
    assert_eq!(
        taken.iter().map(|d| d.id).collect::<Vec<_>>(),
        [dead_id],
        "the expired hand-off is taken over, the live one is left to its owner"
    );
    assert_eq!(taken[0].attempts, 0);
    assert_eq!(taken[0].event.params["Total"], 12.5);
    // The owner's result counts while it holds the lease.
    let owner = s.lease_owner();
    let handed = LeasedDelivery {
        id: live_id,
        attempts: 0,
        created_at: now(),
        subscription_id: sub.id,
        endpoint_id: ep.id,
        event: taken[0].event.clone(),
        routed: None,
    };
    // A restart of the owner (an embedded store's only instance) releases the lease at once.
    assert_eq!(s.records().release_leases(&owner).await.unwrap(), 1);
    let again = s.lease(lease_req(&owner, &[], 10, 10)).await.unwrap();
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), [live_id]);
    s.record(&owner, None, &[result(&handed, NextState::Succeeded)])
        .await
        .unwrap();
    let (d, attempts) = s
        .records()
        .delivery(&Scope::All, live_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Succeeded);
    assert_eq!(attempts.len(), 1);
}

pub async fn one_group_commit_answers_each_event_as_if_alone(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let first = new_event(&sub, Some(("k", 1)));
    let batch = vec![
        first.clone(),
        new_event(&sub, Some(("k", 1))),
        new_event(&sub, Some(("k", 2))),
        new_event(&sub, None),
    ];
    let plain = batch[3].event.id;
    let out = s.ingest(batch).await.unwrap();
    assert_eq!(
        out,
        vec![
            IngestOutcome::Created {
                id: first.event.id,
                deliveries: 1
            },
            IngestOutcome::Replayed {
                id: first.event.id,
                deliveries: 1
            },
            IngestOutcome::KeyReused { id: first.event.id },
            IngestOutcome::Created {
                id: plain,
                deliveries: 1
            },
        ]
    );
    let stored = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                limit: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "only the created events have deliveries");
}

pub async fn results_are_recorded_many_at_a_time(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest((0..700).map(|_| new_event(&sub, None)).collect())
        .await
        .unwrap();
    let leased = s.lease(lease_req("me", &[], 1000, 1000)).await.unwrap();
    assert_eq!(leased.len(), 700);
    let retry_at = now() + Duration::from_secs(3600);
    let results: Vec<_> = leased
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let next = match i % 3 {
                0 => NextState::Succeeded,
                1 => NextState::RetryAt(retry_at),
                _ => NextState::DeadLettered("gave up".into()),
            };
            result(d, next)
        })
        .collect();
    s.record("me", None, &results).await.unwrap();
    let counts: std::collections::HashMap<_, _> =
        s.records().counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get(&DeliveryStatus::Succeeded), Some(&234));
    assert_eq!(counts.get(&DeliveryStatus::Pending), Some(&233));
    assert_eq!(counts.get(&DeliveryStatus::DeadLettered), Some(&233));
    assert_eq!(counts.get(&DeliveryStatus::InFlight), None);
    let (d, attempts) = s
        .records()
        .delivery(&Scope::All, leased[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.attempts, 1);
    assert_eq!(d.last_error.as_deref(), Some("receiver answered 503"));
    assert_eq!(attempts[0].http_status, Some(503));
    let exchange = attempts[0].exchange.as_ref().expect("the exchange is kept");
    assert_eq!(exchange.headers[0].0, "webhook-id");
    assert_eq!(
        exchange.response.as_deref(),
        Some("HTTP 503 Service Unavailable\n\nbusy")
    );
}

pub async fn a_backlog_at_one_endpoint_does_not_hold_back_the_others(t: TestStore) {
    let s = t.store.as_ref();
    let busy = endpoint(s, "busy").await;
    let quiet = endpoint(s, "quiet").await;
    let sb = subscription(s, busy.id, "sb").await;
    let sq = subscription(s, quiet.id, "sq").await;
    // The backlog is older than the quiet endpoint's one delivery.
    s.ingest((0..2000).map(|_| new_event(&sb, None)).collect())
        .await
        .unwrap();
    s.ingest(vec![new_event(&sq, None)]).await.unwrap();
    let leased = s.lease(lease_req("me", &[], 8, 4)).await.unwrap();
    let to = |id: EndpointId| leased.iter().filter(|d| d.endpoint_id == id).count();
    assert_eq!((to(busy.id), to(quiet.id)), (4, 1));
    // Skipping the busy endpoint finds the quiet one's work without reading the backlog.
    s.ingest(vec![new_event(&sq, None)]).await.unwrap();
    let skip = [busy.id];
    let leased = s.lease(lease_req("me", &skip, 8, 4)).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].endpoint_id, quiet.id);
}

pub async fn work_of_a_deleted_endpoint_is_neither_replayed_nor_due(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    let leased = s.lease(lease_req("me", &[], 10, 10)).await.unwrap();
    s.record(
        "me",
        None,
        &[result(
            &leased[0],
            NextState::DeadLettered("gave up".into()),
        )],
    )
    .await
    .unwrap();
    assert!(s.records().delete_endpoint(ep.id).await.unwrap());
    assert_eq!(
        s.records()
            .replay(&Scope::All, &ReplayFilter::default(), now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.records()
            .retry(&Scope::All, leased[0].id, now())
            .await
            .unwrap(),
        Some(false)
    );
    // A delivery stored for an endpoint deleted meanwhile (an ingestion racing the delete)
    // does not make the dispatcher look again and again.
    s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    assert_eq!(s.records().next_due(&[]).await.unwrap(), None);
}

pub async fn endpoint_health_gates_leases_one_probe_at_a_time_and_holds_for_a_disabled_endpoint(
    t: TestStore,
) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    s.ingest((0..3).map(|_| new_event(&sub, None)).collect())
        .await
        .unwrap();
    let h = s.health();
    assert!(h.health_records().await.unwrap().is_empty());
    // Failing, its first probe due in a minute: nothing is leased, nothing is due before.
    let t0 = now();
    let (before, after) = h
        .change_health(ep.id, t0, &|mut x: EndpointHealth| {
            x.state = HealthState::Failing;
            x.consecutive_failures = 5;
            x.failing_since = Some(t0);
            x.probe_at = Some(t0 + Duration::from_secs(60));
            x
        })
        .await
        .unwrap();
    assert_eq!(before.state, HealthState::Healthy);
    assert_eq!(h.health(ep.id).await.unwrap(), after);
    assert!(s
        .lease(lease_req("me", &[], 10, 10))
        .await
        .unwrap()
        .is_empty());
    let due = s
        .records()
        .next_due(&[])
        .await
        .unwrap()
        .expect("the probe time");
    assert!(
        due >= t0 + Duration::from_secs(59),
        "{due} is the probe time"
    );
    assert!(!h
        .claim_probe(ep.id, now(), now() + Duration::from_secs(30))
        .await
        .unwrap());
    // The probe is due: the deliveries are leasable, and one caller gets the probe.
    h.change_health(ep.id, now(), &|mut x: EndpointHealth| {
        x.probe_at = Some(t0);
        x
    })
    .await
    .unwrap();
    assert_eq!(
        s.lease(lease_req("me", &[], 10, 10)).await.unwrap().len(),
        3
    );
    let until = now() + Duration::from_secs(30);
    assert!(h.claim_probe(ep.id, now(), until).await.unwrap());
    assert!(!h.claim_probe(ep.id, now(), until).await.unwrap());
    // Disabled: waiting deliveries are held in the same change, and resumed oldest first.
    s.records().release_leases("me").await.unwrap();
    h.change_health(ep.id, now(), &|x: EndpointHealth| {
        x.disabled("maintenance", now())
    })
    .await
    .unwrap();
    let held = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                status: Some(DeliveryStatus::Held),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(held.len(), 3);
    assert!(s
        .lease(lease_req("me", &[], 10, 10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.records().next_due(&[]).await.unwrap(), None);
    s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    assert_eq!(h.hold_deliveries(ep.id, now()).await.unwrap(), 1);
    let (_, healthy) = h
        .change_health(ep.id, now(), &|x: EndpointHealth| x.enabled(now()))
        .await
        .unwrap();
    assert!(healthy.is_pristine());
    assert!(
        h.health_records().await.unwrap().is_empty(),
        "a pristine record is removed"
    );
    assert_eq!(h.resume_held(ep.id, now()).await.unwrap(), 4);
    let resumed = s
        .records()
        .deliveries(&Scope::All, &DeliveryQuery::default())
        .await
        .unwrap();
    assert!(
        resumed
            .iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.next_attempt_at == d.created_at),
        "due as of their creation, so leased oldest first: {resumed:?}"
    );
    assert_eq!(
        s.lease(lease_req("me", &[], 10, 10)).await.unwrap().len(),
        4
    );
    // What waits past its time to live is dead-lettered, without an attempt; the rest stays.
    s.records().release_leases("me").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t1 = now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    let expired = h
        .expire_waiting(ep.id, t1, now(), "expired while failing")
        .await
        .unwrap();
    assert_eq!(expired, 4);
    let dead = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                status: Some(DeliveryStatus::DeadLettered),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(dead
        .iter()
        .all(|d| d.attempts == 0 && d.last_error.as_deref() == Some("expired while failing")));
    assert_eq!(
        s.lease(lease_req("me", &[], 10, 10)).await.unwrap().len(),
        1
    );
}

pub async fn rate_reservations_space_sends_and_a_429_pauses_and_halves_the_rate(t: TestStore) {
    use herald::store::rates::{Reserve, Slot};
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let r = s.rates();
    let t0 = 1_000_000_000_000_000i64;
    let ask = |now: i64| Reserve {
        now,
        interval: 5_000,
        tolerance: 0,
        max_wait: 1_000_000,
    };
    // Evenly spaced, 5 ms apart, whoever asks.
    let mut starts = Vec::new();
    for _ in 0..4 {
        starts.push(r.reserve(ep.id, ask(t0)).await.unwrap());
    }
    assert_eq!(
        starts,
        [
            Slot::At(t0),
            Slot::At(t0 + 5_000),
            Slot::At(t0 + 10_000),
            Slot::At(t0 + 15_000)
        ]
    );
    // Nothing is reserved further off than the caller would wait.
    let far = Reserve {
        max_wait: 10_000,
        ..ask(t0)
    };
    assert_eq!(
        r.reserve(ep.id, far).await.unwrap(),
        Slot::After(t0 + 20_000)
    );
    // A burst of 3 lets three go at once after a lull.
    let later = t0 + 10_000_000;
    let burst = Reserve {
        tolerance: 10_000,
        ..ask(later)
    };
    for expected in [later, later, later, later + 5_000] {
        assert_eq!(r.reserve(ep.id, burst).await.unwrap(), Slot::At(expected));
    }
    // A 429: nothing before the pause ends, then at half the rate; a second 429 during the
    // pause halves nothing more.
    let now = t0 + 20_000_000;
    let pause = now + 1_000_000;
    r.slow_down(ep.id, now, pause, pause + 60_000_000)
        .await
        .unwrap();
    r.slow_down(ep.id, now + 10, pause + 10, pause + 60_000_010)
        .await
        .unwrap();
    assert_eq!(r.slowed(now).await.unwrap(), [(ep.id, pause + 60_000_010)]);
    let after = Reserve {
        max_wait: 2_000_000,
        ..ask(now)
    };
    assert_eq!(r.reserve(ep.id, after).await.unwrap(), Slot::At(pause + 10));
    assert_eq!(
        r.reserve(ep.id, after).await.unwrap(),
        Slot::At(pause + 10 + 10_000)
    );
    assert!(r.slowed(pause + 60_000_011).await.unwrap().is_empty());
}

/// An event of `solution` for `sub` (whose own solution the store does not check).
fn event_of(sub: &Subscription, solution: &str) -> NewEvent {
    let mut new = new_event(sub, None);
    let mut event = new.event.event.clone();
    event.solution = solution.into();
    new.event = Arc::new(OutgoingEvent::new(event));
    new
}

pub async fn a_scope_reaches_only_events_and_deliveries_of_its_solutions(t: TestStore) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let stored = s
        .ingest(vec![
            event_of(&sub, "contoso"),
            event_of(&sub, "fabrikam"),
            event_of(&sub, "fabrikam"),
        ])
        .await
        .unwrap();
    let ids: Vec<EventId> = stored
        .iter()
        .map(|o| match o {
            IngestOutcome::Created { id, .. } => *id,
            other => panic!("not created: {other:?}"),
        })
        .collect();
    let contoso = Scope::Solutions(vec!["contoso".into()]);
    let fabrikam = Scope::Solutions(vec!["fabrikam".into()]);
    let nobody = Scope::Solutions(Vec::new());
    let both = Scope::Solutions(vec!["contoso".into(), "fabrikam".into()]);

    assert!(s.records().event(&contoso, ids[0]).await.unwrap().is_some());
    assert!(s.records().event(&contoso, ids[1]).await.unwrap().is_none());
    assert!(s
        .records()
        .event(&fabrikam, ids[1])
        .await
        .unwrap()
        .is_some());
    assert!(s.records().event(&nobody, ids[0]).await.unwrap().is_none());

    let all = DeliveryQuery::default();
    let count = |scope: Scope| {
        let all = all.clone();
        async move { s.records().deliveries(&scope, &all).await.unwrap().len() }
    };
    assert_eq!(count(Scope::All).await, 3);
    assert_eq!(count(contoso.clone()).await, 1);
    assert_eq!(count(fabrikam.clone()).await, 2);
    assert_eq!(count(nobody.clone()).await, 0);
    let merged = s
        .records()
        .deliveries(
            &both,
            &DeliveryQuery {
                limit: Some(2),
                ..all.clone()
            },
        )
        .await
        .unwrap();
    let newest = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                limit: Some(2),
                ..all.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        merged.iter().map(|d| d.id).collect::<Vec<_>>(),
        newest.iter().map(|d| d.id).collect::<Vec<_>>(),
        "a scope of two solutions pages like one list, newest first"
    );

    // Every delivery dead-lettered: fabrikam's are out of contoso's reach.
    let leased = s.lease(lease_req("me", &[], 10, 10)).await.unwrap();
    let dead: Vec<_> = leased
        .iter()
        .map(|d| result(d, NextState::DeadLettered("gone".into())))
        .collect();
    s.record("me", None, &dead).await.unwrap();
    let of_fabrikam = s.records().deliveries(&fabrikam, &all).await.unwrap()[0].id;
    assert!(s
        .records()
        .delivery(&contoso, of_fabrikam)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .records()
        .delivery(&fabrikam, of_fabrikam)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.records()
            .retry(&contoso, of_fabrikam, now())
            .await
            .unwrap(),
        None,
        "out of scope is as absent as unknown"
    );
    assert_eq!(
        s.records()
            .replay(&contoso, &ReplayFilter::default(), now())
            .await
            .unwrap(),
        1,
        "contoso replays its own dead letter only"
    );
    assert_eq!(
        s.records()
            .replay(&nobody, &ReplayFilter::default(), now())
            .await
            .unwrap(),
        0
    );
    let still_dead = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                status: Some(DeliveryStatus::DeadLettered),
                ..all.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(still_dead.len(), 2, "fabrikam's dead letters are untouched");
    assert_eq!(
        s.records()
            .retry(&fabrikam, of_fabrikam, now())
            .await
            .unwrap(),
        Some(true)
    );
}

fn plugin(name: &str, solution: &str, bytes: &[u8]) -> NewPluginVersion {
    NewPluginVersion {
        name: name.into(),
        solution: solution.into(),
        description: "test".into(),
        hash: herald::plugins::content_hash(bytes),
        exports: vec!["herald:plugin/handler@1.0.0".into()],
        bytes: bytes.to_vec(),
        created_at: now(),
    }
}

async fn plugin_versions_are_numbered_per_name_and_keep_their_bytes(t: TestStore) {
    let p = t.store.plugins();
    let first = p
        .push_plugin(&plugin("tiny", "contoso", b"one"))
        .await
        .unwrap();
    assert_eq!((first.version.version, first.created), (1, true));
    let again = p
        .push_plugin(&plugin("tiny", "contoso", b"one"))
        .await
        .unwrap();
    assert_eq!((again.version.version, again.created), (1, false));
    let second = p
        .push_plugin(&plugin("tiny", "contoso", b"two"))
        .await
        .unwrap();
    assert_eq!(second.version.version, 2);
    // A name belongs to one solution.
    assert!(matches!(
        p.push_plugin(&plugin("tiny", "fabrikam", b"three")).await,
        Err(StoreError::Conflict(_))
    ));
    p.push_plugin(&plugin("other", "fabrikam", b"x"))
        .await
        .unwrap();
    let (latest, bytes) = p.plugin_bytes("tiny", None).await.unwrap().unwrap();
    assert_eq!((latest.version, bytes.as_slice()), (2, b"two".as_slice()));
    let (pinned, bytes) = p.plugin_bytes("tiny", Some(1)).await.unwrap().unwrap();
    assert_eq!((pinned.version, bytes.as_slice()), (1, b"one".as_slice()));
    assert!(p.plugin_bytes("tiny", Some(3)).await.unwrap().is_none());
    let all = p.plugins().await.unwrap();
    let names: Vec<_> = all.iter().map(|v| (v.name.as_str(), v.version)).collect();
    assert_eq!(names, [("other", 1), ("tiny", 1), ("tiny", 2)]);
    assert_eq!(all[2].size, 3);
    assert_eq!(p.delete_plugin("tiny").await.unwrap(), 2);
    assert!(p.plugin_versions("tiny").await.unwrap().is_empty());
}

/// One test per backend for each test function named.
/// `sub`'s event routed under hand-off `handoff` at `seq`: its one delivery kept in its row.
fn routed_event(sub: &Subscription, handoff: i64, seq: i64) -> NewEvent {
    let mut e = new_event(sub, None);
    let mut event = Arc::try_unwrap(e.event).unwrap().event;
    event.id = EventId::routable();
    e.deliveries[0].id = DeliveryId::of(event.id, 1);
    e.deliveries[0].leased_until = Some(now() + Duration::from_secs(60));
    e.event = Arc::new(OutgoingEvent::new(event));
    e.handoff = Some(Routed { handoff, seq });
    e
}

pub async fn deliveries_kept_in_their_event_row_are_shown_settled_taken_over_and_fenced(
    t: TestStore,
) {
    let s = t.store.as_ref();
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    let lease = now() + Duration::from_secs(60);
    let h = s.records().open_handoff("me", lease).await.unwrap();
    let events: Vec<NewEvent> = (1..=3).map(|seq| routed_event(&sub, h, seq)).collect();
    let ids: Vec<DeliveryId> = events.iter().map(|e| e.deliveries[0].id).collect();
    s.ingest(events).await.unwrap();
    // Written as no row of its own: in flight on its instance, found by id, listed, counted.
    let status = |id: DeliveryId| async move {
        s.records()
            .delivery(&Scope::All, id)
            .await
            .unwrap()
            .map(|(d, attempts)| (d.status, attempts.len()))
    };
    assert_eq!(status(ids[0]).await, Some((DeliveryStatus::InFlight, 0)));
    let counts = |wanted: DeliveryStatus| async move {
        s.records()
            .counts()
            .await
            .unwrap()
            .into_iter()
            .find(|(c, _)| *c == wanted)
            .map_or(0, |(_, n)| n)
    };
    assert_eq!(counts(DeliveryStatus::InFlight).await, 3);
    // The first succeeded (the mark says so); the second failed and becomes a row with its
    // attempt; the third is still being sent.
    let leased = |i: usize, events: &[(Event, Vec<Delivery>)]| LeasedDelivery {
        id: ids[i],
        attempts: 0,
        created_at: now(),
        subscription_id: sub.id,
        endpoint_id: ep.id,
        event: Arc::new(OutgoingEvent::new(events[i].0.clone())),
        routed: Some(Routed {
            handoff: h,
            seq: i as i64 + 1,
        }),
    };
    let mut stored = Vec::new();
    for id in &ids {
        let (event, _) = id.route().unwrap();
        stored.push(
            s.records()
                .event(&Scope::All, event)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(stored[0].1.len(), 1, "an event lists its kept delivery");
    let mut failed = result(&leased(1, &stored), NextState::RetryAt(now()));
    failed.routed = Some(RoutedResult {
        routed: Routed { handoff: h, seq: 2 },
        event_id: stored[1].0.id,
        subscription_id: sub.id,
        endpoint_id: ep.id,
        created_at: now(),
    });
    let mark = HandoffMark {
        handoff: h,
        through: 2,
        until: lease,
    };
    assert!(s.record("me", Some(&mark), &[failed]).await.unwrap());
    assert_eq!(status(ids[0]).await, Some((DeliveryStatus::Succeeded, 0)));
    assert_eq!(status(ids[1]).await, Some((DeliveryStatus::Pending, 1)));
    assert_eq!(status(ids[2]).await, Some((DeliveryStatus::InFlight, 0)));
    let listed = s
        .records()
        .deliveries(
            &Scope::All,
            &DeliveryQuery {
                status: Some(DeliveryStatus::Succeeded),
                endpoint_id: Some(ep.id),
                limit: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[0]]);
    assert_eq!(counts(DeliveryStatus::Succeeded).await, 1);
    assert_eq!(counts(DeliveryStatus::Pending).await, 1);
    // Its instance stops writing the mark: once the lease ends, another takes the unsettled
    // delivery over as a pending row; the settled ones stay as they are.
    let later = now() + Duration::from_secs(61);
    assert_eq!(
        s.records()
            .take_over(Takeover::Expired(now()), now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.records()
            .take_over(Takeover::Expired(later), later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(status(ids[2]).await, Some((DeliveryStatus::Pending, 0)));
    assert_eq!(status(ids[0]).await, Some((DeliveryStatus::Succeeded, 0)));
    // The old instance comes back: its mark and results are refused (fencing).
    let mut late = result(&leased(2, &stored), NextState::DeadLettered("late".into()));
    late.routed = Some(RoutedResult {
        routed: Routed { handoff: h, seq: 3 },
        event_id: stored[2].0.id,
        subscription_id: sub.id,
        endpoint_id: ep.id,
        created_at: now(),
    });
    let mark = HandoffMark { through: 3, ..mark };
    assert!(!s.record("me", Some(&mark), &[late]).await.unwrap());
    assert_eq!(status(ids[2]).await, Some((DeliveryStatus::Pending, 0)));
    // Events routed under the closed hand-off are refused, nothing stored.
    let refused = routed_event(&sub, h, 4);
    if matches!(t.settings.url, StoreUrl::Postgres(_)) {
        assert!(matches!(
            s.ingest(vec![refused]).await,
            Err(StoreError::HandoffClosed)
        ));
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::sqlite().await).await })*
        }
        mod on_postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::postgres().await).await })*
        }
    };
}
pub(crate) use contract;

contract!(
    stored_events_come_back_with_their_deliveries,
    an_event_keeps_its_depth_and_what_its_steps_did,
    an_idempotency_key_returns_the_first_event_or_reports_reuse,
    leases_respect_the_limits_and_skip_busy_endpoints,
    an_expired_lease_is_taken_over_and_the_old_owner_result_is_ignored,
    retries_dead_letters_and_replay_move_deliveries_as_asked,
    endpoints_and_subscriptions_keep_unique_names_and_cascade_on_delete,
    released_leases_are_due_again_at_once,
    concurrent_leases_never_hand_out_a_delivery_twice,
    a_handed_off_delivery_whose_instance_dies_is_taken_over,
    one_group_commit_answers_each_event_as_if_alone,
    results_are_recorded_many_at_a_time,
    a_backlog_at_one_endpoint_does_not_hold_back_the_others,
    work_of_a_deleted_endpoint_is_neither_replayed_nor_due,
    endpoint_health_gates_leases_one_probe_at_a_time_and_holds_for_a_disabled_endpoint,
    rate_reservations_space_sends_and_a_429_pauses_and_halves_the_rate,
    a_scope_reaches_only_events_and_deliveries_of_its_solutions,
    plugin_versions_are_numbered_per_name_and_keep_their_bytes,
    deliveries_kept_in_their_event_row_are_shown_settled_taken_over_and_fenced,
);
