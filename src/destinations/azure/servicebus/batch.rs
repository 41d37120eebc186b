//! Batching for one entity: which waiting jobs go together (one session id, within the
//! link's maximum message size) and the envelope that carries them.

use azure_core_amqp::message::AmqpMessageBody;
use azure_core_amqp::AmqpMessage;

use super::{Job, BATCH_FORMAT, BATCH_OVERHEAD};

/// Takes the next batch: jobs of one session id whose encoded size fits in `max` bytes
/// (always at least one job).
pub(super) fn take_batch(
    jobs: &mut std::iter::Peekable<std::vec::IntoIter<Job>>,
    max: usize,
) -> Vec<Job> {
    let mut batch: Vec<Job> = Vec::new();
    let mut size = BATCH_OVERHEAD;
    while let Some(next) = jobs.peek() {
        let fits = size + next.encoded.len() + 8 <= max;
        let same_session = batch.first().is_none_or(|b| b.session == next.session);
        if !batch.is_empty() && (!fits || !same_session) {
            break;
        }
        size += next.encoded.len() + 8;
        batch.push(jobs.next().expect("peeked"));
    }
    batch
}

/// What goes on the wire for `batch`: the message itself when alone, otherwise a batch
/// envelope whose data sections are the encoded messages, with the first message's id and
/// session id as Service Bus expects.
pub(super) fn envelope(batch: &[Job]) -> (AmqpMessage, Option<u32>) {
    if let [one] = batch {
        return (one.message.clone(), None);
    }
    let first = batch[0].message.properties.as_ref();
    let envelope = AmqpMessage {
        body: AmqpMessageBody::Binary(batch.iter().map(|j| j.encoded.clone()).collect()),
        properties: Some(azure_core_amqp::message::AmqpMessageProperties {
            message_id: first.and_then(|p| p.message_id.clone()),
            group_id: first.and_then(|p| p.group_id.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    (envelope, Some(BATCH_FORMAT))
}
