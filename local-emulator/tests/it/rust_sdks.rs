//! The Rust SDKs: `azure_messaging_eventhubs` producer and consumer, and a bare
//! `azure_core_amqp` sender.

use crate::support::{amqp, start};
use azure_messaging_eventhubs::{
    ConsumerClient, OpenReceiverOptions, ProducerClient, SendEventOptions, StartLocation,
    StartPosition,
};
use futures::StreamExt;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_event_hubs_producer_and_consumer_send_and_receive() {
    let emu = start().await;
    let endpoint = format!("amqp://127.0.0.1:{}", emu.amqp_addr().port());
    let conn = emu.connection_string();
    let producer = tokio::time::timeout(
        Duration::from_secs(30),
        ProducerClient::builder()
            .with_custom_endpoint(endpoint.clone())
            .open_with_connection_string(&conn, Some("eh1")),
    )
    .await
    .expect("producer opens within 30s")
    .expect("producer opens");
    let props = producer
        .get_eventhub_properties()
        .await
        .expect("hub properties");
    assert_eq!(props.partition_ids, vec!["0".to_owned(), "1".to_owned()]);
    let marker = uuid::Uuid::new_v4().to_string();
    producer
        .send_event(
            marker.clone(),
            Some(SendEventOptions {
                partition_id: Some("1".into()),
            }),
        )
        .await
        .expect("event sent");
    let part = producer
        .get_partition_properties("1")
        .await
        .expect("partition properties");
    assert_eq!(part.last_enqueued_sequence_number, 0);

    let consumer = tokio::time::timeout(
        Duration::from_secs(30),
        ConsumerClient::builder()
            .with_custom_endpoint(endpoint)
            .open_with_connection_string(&conn, Some("eh1")),
    )
    .await
    .expect("consumer opens within 30s")
    .expect("consumer opens");
    let receiver = tokio::time::timeout(
        Duration::from_secs(30),
        consumer.open_receiver_on_partition(
            "1".into(),
            Some(OpenReceiverOptions {
                start_position: Some(StartPosition {
                    location: StartLocation::Earliest,
                    inclusive: false,
                }),
                ..Default::default()
            }),
        ),
    )
    .await
    .expect("receiver opens within 30s")
    .expect("receiver opens");
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        let mut stream = receiver.stream_events();
        while let Some(ev) = stream.next().await {
            let ev = ev.expect("event");
            if ev.event_data().body() == Some(marker.as_bytes()) {
                return true;
            }
        }
        false
    })
    .await
    .expect("event arrives within 20s");
    assert!(found);
    producer.close().await.expect("producer closes");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_azure_core_amqp_sender_enqueues_to_a_queue() {
    let emu = start().await;
    let bodies: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    amqp::send(&emu, "queue1", &refs).await.expect("sent");
    let msgs = emu.peek("queue1", 500);
    assert_eq!(msgs.len(), 200);
    assert_eq!(msgs[0].seq, 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_256_kib_is_refused_with_message_size_exceeded_and_others_still_flow() {
    let emu = start().await;
    let big = "x".repeat(300 * 1024);
    let err = amqp::send(&emu, "queue1", &[big.as_str()])
        .await
        .expect_err("a 300 KiB message is refused");
    let text = format!("{err:?}");
    assert!(
        text.contains("LinkPayloadSizeExceeded")
            && text.contains("exceeds the limit of 262144 bytes"),
        "{text}"
    );
    // The emulator keeps serving: a normal message on a new connection is stored.
    amqp::send(&emu, "queue1", &["small"]).await.expect("sent");
    let stored = emu.peek("queue1", 10);
    assert_eq!(stored.len(), 1, "only the small message is stored");
    emu.shutdown().await;
}
