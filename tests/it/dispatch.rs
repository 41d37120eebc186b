//! The dispatcher's hand-off: how many fresh deliveries it takes straight from ingestion, and
//! when. Its places are bounded per endpoint and in all, given back when unused, refused while
//! refused deliveries may wait in the store (so fresh ones never overtake them), and offered
//! only while the dispatcher runs (after the leases of a previous run were released).

use std::sync::Arc;
use std::time::Duration;

use herald::destinations::network::NetworkPolicy;
use herald::destinations::webhook::WebhookClient;
use herald::destinations::{Destinations, Origin};
use herald::dispatch::{DispatchConfig, Dispatcher, RetryPolicy, Waker};
use herald::model::EndpointId;
use herald::registry::{Registry, Routing};
use herald::store::{open, StoreSettings, StoreUrl};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_hand_off_is_bounded_per_endpoint_and_in_all_and_only_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&StoreSettings {
        url: StoreUrl::Sqlite(dir.path().join("herald.db")),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        schema: None,
        idempotency_window: Duration::from_secs(86_400),
        keys: crate::support::test_keys(),
    })
    .await
    .unwrap();
    let config = herald::config::Config::from_toml(&[]).unwrap();
    let catalog = herald::server::load_catalog(&config).unwrap();
    let policy = NetworkPolicy::new(Vec::new());
    let registry = Registry::new(
        store.clone(),
        catalog.clone(),
        policy.clone(),
        Routing::default(),
    );
    let webhooks = WebhookClient::new(policy, Duration::from_secs(5)).unwrap();
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(Destinations::new(webhooks)),
        registry,
        DispatchConfig {
            owner: store.lease_owner(),
            retry: RetryPolicy {
                schedule: vec![Duration::from_secs(1)],
                max_attempts: 3,
                ttl: Duration::from_secs(3600),
            },
            lease: Duration::from_secs(60),
            max_in_flight: 3,
            endpoint_concurrency: 2,
            poll_interval: Duration::from_millis(50),
            origin: Origin {
                public_url: "http://127.0.0.1".into(),
                organization: "herald".into(),
            },
            catalog,
            health: Default::default(),
            notices: None,
            activity: Default::default(),
            tracing: Default::default(),
            keep_succeeded_requests: true,
        },
        Waker::default(),
    );
    let hand_off = dispatcher.hand_off();
    let (a, b) = (EndpointId::new(), EndpointId::new());
    assert!(
        hand_off.reserve(a).is_none(),
        "nothing is handed off before the leases of a previous run are released"
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(dispatcher.run(shutdown.clone()));
    crate::support::wait_for(Duration::from_secs(5), "the hand-off opens", || {
        let open = hand_off.reserve(a).is_some().then_some(());
        async move { open }
    })
    .await;

    let a1 = hand_off.reserve(a).expect("a place at a");
    let a2 = hand_off.reserve(a).expect("a second place at a");
    assert!(hand_off.reserve(a).is_none(), "a holds its limit of 2");
    let b1 = hand_off.reserve(b).expect("a place at b");
    assert!(hand_off.reserve(b).is_none(), "3 places in all are taken");
    drop(a1);
    assert!(
        hand_off.reserve(a).is_none() && hand_off.reserve(b).is_none(),
        "the deliveries refused went to the store: fresh ones join them there, not overtake them"
    );
    // Ingestion wakes the dispatcher after storing what it refused; the lease round finds
    // nothing waiting, and the place given back is free again.
    hand_off.wake();
    let b2 = crate::support::wait_for(Duration::from_secs(5), "the place given back", || {
        let place = hand_off.reserve(b);
        async move { place }
    })
    .await;
    // Unused places hold nothing up at shutdown.
    drop((a2, b1, b2));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the dispatcher stops")
        .unwrap();
    assert!(
        hand_off.reserve(b).is_none(),
        "nothing is handed off after shutdown"
    );
}
