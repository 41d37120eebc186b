//! What the console keeps and reads, on SQLite and PostgreSQL alike: sessions, activity per
//! minute summed over instances, counts that stop at a cap, and pages of deliveries by keyset
//! in each order.

use std::collections::HashSet;

use time::OffsetDateTime;

use herald::model::{
    ActivityRow, Browse, Counts, DeliveryStatus, EndpointId, NextState, Scope, Subscription,
};
use herald::store::console::SessionRecord;
use herald::store::Store;

use crate::store_contract::{
    contract, endpoint, lease_req, new_event, postgres, result, sqlite, subscription, TestStore,
};

fn session(token: &str, expires_at: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        token_hash: token.into(),
        key_hash: "ab".repeat(32),
        csrf: "token".into(),
        created_at: OffsetDateTime::now_utc(),
        expires_at,
        idle_until: expires_at,
    }
}

pub async fn sessions_end_when_they_expire_or_close_and_close_once(t: TestStore) {
    let c = t.store.console();
    let now = OffsetDateTime::now_utc();
    let hour = time::Duration::HOUR;
    c.open_session(&session("a", now + hour)).await.unwrap();
    let found = c.session("a", now).await.unwrap().expect("open");
    assert_eq!((found.csrf.as_str(), found.key_hash.len()), ("token", 64));
    assert!(
        c.session("a", now + hour * 2).await.unwrap().is_none(),
        "expired"
    );
    assert!(c.session("nobody", now).await.unwrap().is_none());
    assert!(c.close_session("a").await.unwrap());
    assert!(
        !c.close_session("a").await.unwrap(),
        "a session closes once"
    );
    assert!(c.session("a", now).await.unwrap().is_none());
    // Expired sessions are forgotten when the next one opens.
    c.open_session(&session("old", now - hour)).await.unwrap();
    c.open_session(&session("new", now + hour)).await.unwrap();
    assert!(!c.close_session("old").await.unwrap(), "forgotten already");
}

pub async fn a_session_unused_for_its_idle_timeout_ends_and_use_moves_that_on(t: TestStore) {
    let c = t.store.console();
    let now = OffsetDateTime::now_utc();
    let (minute, hour) = (time::Duration::MINUTE, time::Duration::HOUR);
    let minutes = time::Duration::minutes;
    c.open_session(&SessionRecord {
        idle_until: now + minutes(30),
        ..session("idle", now + hour)
    })
    .await
    .unwrap();
    assert!(c
        .session("idle", now + minutes(29))
        .await
        .unwrap()
        .is_some());
    assert!(
        c.session("idle", now + minutes(31))
            .await
            .unwrap()
            .is_none(),
        "idle for 30 minutes"
    );
    // Use moves it on; never back, never past the session's end.
    c.touch_session("idle", now + minutes(50)).await.unwrap();
    c.touch_session("idle", now + minutes(40)).await.unwrap();
    let found = c
        .session("idle", now + minutes(45))
        .await
        .unwrap()
        .expect("moved on");
    assert_eq!(
        found.idle_until.unix_timestamp(),
        (now + minutes(50)).unix_timestamp()
    );
    c.touch_session("idle", now + time::Duration::hours(3))
        .await
        .unwrap();
    let found = c.session("idle", now).await.unwrap().unwrap();
    assert_eq!(
        found.idle_until.unix_timestamp(),
        found.expires_at.unix_timestamp()
    );
    assert!(c
        .session("idle", now + hour + minute)
        .await
        .unwrap()
        .is_none());
    // A session gone idle is forgotten when the next one opens.
    c.open_session(&SessionRecord {
        idle_until: now - minute,
        ..session("left", now + hour)
    })
    .await
    .unwrap();
    c.open_session(&session("next", now + hour)).await.unwrap();
    assert!(!c.close_session("left").await.unwrap(), "forgotten already");
}

pub async fn activity_adds_up_across_instances_and_forgets_old_minutes(t: TestStore) {
    let c = t.store.console();
    let ep = EndpointId::new();
    let row = |minute, ms| ActivityRow {
        minute,
        endpoint_id: Some(ep),
        counts: Counts {
            events: 0,
            succeeded: 3,
            failed: 1,
            dead_lettered: 1,
            total_ms: 4 * ms,
            max_ms: ms,
        },
    };
    let events = ActivityRow {
        minute: 100,
        endpoint_id: None,
        counts: Counts {
            events: 7,
            ..Default::default()
        },
    };
    // Two instances add what each counted in the same minute.
    c.add_activity(&[row(100, 10), events.clone()], 0)
        .await
        .unwrap();
    c.add_activity(&[row(100, 30), row(101, 5)], 0)
        .await
        .unwrap();
    let rows = c.activity(100).await.unwrap();
    let at = |m: i64, e: Option<EndpointId>| {
        rows.iter()
            .find(|r| r.minute == m && r.endpoint_id == e)
            .map(|r| r.counts)
    };
    let summed = at(100, Some(ep)).expect("minute 100");
    assert_eq!(
        (
            summed.succeeded,
            summed.failed,
            summed.total_ms,
            summed.max_ms
        ),
        (6, 2, 160, 30)
    );
    assert_eq!(at(100, None).map(|c| c.events), Some(7));
    assert!(at(101, Some(ep)).is_some());
    assert!(c
        .activity(101)
        .await
        .unwrap()
        .iter()
        .all(|r| r.minute >= 101));
    c.add_activity(&[], 101).await.unwrap();
    assert!(
        c.activity(0).await.unwrap().iter().all(|r| r.minute >= 101),
        "minute 100 forgotten"
    );
}

/// Stores `n` events with a delivery each; returns the subscription.
async fn stored(s: &dyn Store, n: usize) -> Subscription {
    let ep = endpoint(s, "ep").await;
    let sub = subscription(s, ep.id, "sub").await;
    for _ in 0..n {
        s.ingest(vec![new_event(&sub, None)]).await.unwrap();
    }
    sub
}

/// Every page of `q`, following the cursors; the ids in order.
async fn all_pages(s: &dyn Store, q: Browse) -> Vec<String> {
    pages_in(s, &Scope::All, q).await
}

/// Every page of `q` that `scope` sees, following the cursors; the ids in order.
async fn pages_in(s: &dyn Store, scope: &Scope, mut q: Browse) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = s.console().browse(scope, &q).await.unwrap();
        assert!(page.rows.len() <= q.limit as usize);
        ids.extend(page.rows.iter().map(|(d, _)| d.id.to_string()));
        match page.next {
            Some(c) => q.after = Some(c),
            None => return ids,
        }
    }
    panic!("pages never ended");
}

pub async fn pages_of_deliveries_go_by_keyset_in_each_order(t: TestStore) {
    let s = t.store.as_ref();
    stored(s, 7).await;
    // Three of them dead-lettered, one after the other.
    let leased = s.lease(lease_req("me", &[], 3, 3)).await.unwrap();
    for d in &leased {
        let dead = result(d, NextState::DeadLettered("gone".into()));
        s.record("me", None, &[dead]).await.unwrap();
    }
    let by_id = all_pages(
        s,
        Browse {
            limit: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_id.len(), 7);
    let mut sorted = by_id.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(by_id, sorted, "newest first, no row twice, none left out");

    let dead = all_pages(
        s,
        Browse {
            status: Some(DeliveryStatus::DeadLettered),
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    let leased_ids: HashSet<String> = leased.iter().map(|d| d.id.to_string()).collect();
    assert_eq!(dead.iter().cloned().collect::<HashSet<_>>(), leased_ids);
    assert_eq!(dead.len(), 3);

    let named = |name: &str| Browse {
        event_name: Some(name.into()),
        limit: 2,
        ..Default::default()
    };
    let by_event = all_pages(s, named("contoso_CustomerPurchase")).await;
    assert_eq!(by_event.iter().cloned().collect::<HashSet<_>>().len(), 7);
    assert!(all_pages(s, named("contoso_Other")).await.is_empty());
    let seen = |solutions: Vec<&str>| {
        let scope = Scope::Solutions(solutions.into_iter().map(str::to_owned).collect());
        let q = named("contoso_CustomerPurchase");
        async move { pages_in(s, &scope, q).await }
    };
    assert_eq!(seen(vec!["contoso"]).await.len(), 7);
    assert!(seen(vec!["fabrikam"]).await.is_empty());
    assert!(
        seen(vec![]).await.is_empty(),
        "a key of no solution sees nothing"
    );

    // A time range: everything is from the last minute.
    let now = OffsetDateTime::now_utc();
    let window = |from, to| Browse {
        from: Some(from),
        to: Some(to),
        limit: 50,
        ..Default::default()
    };
    let minute = time::Duration::MINUTE;
    assert_eq!(
        all_pages(s, window(now - minute, now + minute)).await.len(),
        7
    );
    assert!(all_pages(s, window(now - minute * 10, now - minute * 5))
        .await
        .is_empty());

    // Counts stop at their cap.
    let c = s.console();
    assert_eq!(
        c.count_up_to(DeliveryStatus::Pending, None, 100)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        c.count_up_to(DeliveryStatus::Pending, None, 2)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        c.count_up_to(DeliveryStatus::DeadLettered, None, 100)
            .await
            .unwrap(),
        3
    );
    let due_by = |t| c.count_up_to(DeliveryStatus::Pending, Some(t), 100);
    assert_eq!(due_by(now + minute).await.unwrap(), 4);
    assert_eq!(due_by(now - minute * 10).await.unwrap(), 0);
}

contract!(
    sessions_end_when_they_expire_or_close_and_close_once,
    a_session_unused_for_its_idle_timeout_ends_and_use_moves_that_on,
    activity_adds_up_across_instances_and_forgets_old_minutes,
    pages_of_deliveries_go_by_keyset_in_each_order,
);
