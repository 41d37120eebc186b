//! Sessions and links of one connection: `begin`/`end`, `attach`/`detach`, flow control,
//! incoming transfers and dispositions, and outgoing deliveries pumped from the broker.

use super::cbs::Grant;
use super::codec::Value;
use super::context::Context;
use super::frame::{self, code, Frame, LinkFlow, AMQP};
use super::quirks;
use crate::broker::eventhub::Position;
use crate::broker::{Address, StoreKey};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

mod attach;
mod incoming;
mod outgoing;

const SESSION_WINDOW: u32 = 65_536;
const LINK_CREDIT: u32 = 1_000;
const PUMP_BATCH: u32 = 256;

/// What a link is attached to.
#[derive(Debug, Clone)]
enum Node {
    Cbs,
    Management(Option<String>),
    Send(Address),
    /// A queue-like store, or one session of it.
    Store {
        key: StoreKey,
        session: Option<String>,
    },
    /// An event hub partition read through a consumer group (registered as a reader).
    Consumer {
        hub: String,
        partition: usize,
        cursor: usize,
    },
}

struct Partial {
    delivery_id: u32,
    settled: bool,
    format: u32,
    data: Vec<u8>,
}

struct Link {
    we_send: bool,
    node: Node,
    source: String,
    target: String,
    snd_settle: u8,
    credit: u32,
    delivery_count: u32,
    drain: bool,
    partial: Option<Partial>,
    pending: VecDeque<Vec<u8>>,
    max_message_size: u64,
    /// Identifies the link to the broker (session locks, partition readers).
    owner: u64,
}

struct Session {
    next_outgoing_id: u32,
    next_delivery_id: u32,
    next_incoming_id: u32,
    incoming_left: u32,
    links: BTreeMap<u32, Link>,
    unsettled: HashMap<u32, Option<uuid::Uuid>>,
}

/// A disposition held back for an incoming transfer.
struct Deferred {
    /// The session's channel.
    channel: u16,
    /// The transfer's delivery id.
    delivery_id: u32,
    /// The outcome to settle it with.
    state: Value,
}

/// The state of one connection above the frame layer.
pub struct ConnectionState {
    ctx: Arc<Context>,
    grants: Vec<Grant>,
    sessions: BTreeMap<u16, Session>,
    peer_max_frame: u32,
    /// Bytes to write to the socket.
    pub out: Vec<u8>,
    /// Set once `close` has been sent.
    pub closed: bool,
    /// Set when an armed fault drops the connection without a word.
    pub dropped: bool,
    /// Dispositions for incoming transfers, held back briefly (see [`quirks::DISPOSITION_DELAY`]).
    deferred: Vec<Deferred>,
    /// Replies to the peer's detaches, held back (see [`quirks::HeldDetachReplies`]).
    detach_replies: quirks::HeldDetachReplies,
    /// Session receivers waiting for a session with messages (next available).
    parked: Vec<attach::Parked>,
}

fn now_s() -> i64 {
    crate::broker::handle::now_ms() / 1000
}

impl ConnectionState {
    /// A fresh connection with the grants SASL gave.
    pub fn new(ctx: Arc<Context>, grants: Vec<Grant>, peer_max_frame: u32) -> ConnectionState {
        ConnectionState {
            ctx,
            grants,
            sessions: BTreeMap::new(),
            peer_max_frame,
            out: Vec::new(),
            closed: false,
            dropped: false,
            deferred: Vec::new(),
            detach_replies: Default::default(),
            parked: Vec::new(),
        }
    }

    fn send(&mut self, channel: u16, body: &Value) {
        frame::write_frame(&mut self.out, AMQP, channel, body, &[]);
    }

    /// Whether dispositions are waiting for [`ConnectionState::flush_deferred`].
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty() || !self.detach_replies.is_empty()
    }

    /// Sends held-back dispositions, one frame per run of consecutive ids with the same state.
    pub fn flush_deferred(&mut self) {
        for (ch, body) in self.detach_replies.take() {
            if self.sessions.contains_key(&ch) {
                self.send(ch, &body);
            }
        }
        let items = std::mem::take(&mut self.deferred);
        let mut i = 0;
        while i < items.len() {
            let Deferred {
                channel: ch,
                delivery_id: first,
                state,
            } = &items[i];
            let mut last = *first;
            let mut j = i + 1;
            while j < items.len()
                && items[j].channel == *ch
                && items[j].delivery_id == last.wrapping_add(1)
                && items[j].state == *state
            {
                last = items[j].delivery_id;
                j += 1;
            }
            // Only on sessions still open: a frame on a channel the peer ended makes fe2o3
            // drop the whole connection ("Session is not found").
            if self.sessions.contains_key(ch) {
                let body = frame::disposition(true, *first, last, true, state.clone());
                self.send(*ch, &body);
            }
            i = j;
        }
    }

    /// Sends `close` (with an error, if any) and stops.
    pub fn close(&mut self, err: Option<Value>) {
        self.flush_deferred();
        if !self.closed {
            if let Some(e) = &err {
                tracing::debug!(error = ?e, "closing connection with an error");
            }
            self.send(0, &frame::close(err));
            self.closed = true;
        }
    }

    /// Handles one frame from the peer.
    pub fn on_frame(&mut self, f: Frame) {
        let Some(body) = f.body else { return };
        let ch = f.channel;
        if body.descriptor_code() == Some(code::END) {
            // The peer ends the session: what it is still owed on it would reach a session it
            // may already have dropped, which fe2o3 answers by closing the connection.
            self.detach_replies.session_ended(ch);
            self.deferred.retain(|d| d.channel != ch);
        }
        if body.descriptor_code() != Some(code::TRANSFER) {
            self.flush_deferred();
        }
        tracing::trace!(ch, code = ?body.descriptor_code(), fields = ?body.inner().as_seq().map(|s| s.iter().take(7).collect::<Vec<_>>()), "frame in");
        let known = self.sessions.contains_key(&ch);
        match body.descriptor_code() {
            Some(code::BEGIN) if !known => {
                let next_in = body.field(1).as_u64().unwrap_or(0) as u32;
                self.sessions.insert(
                    ch,
                    Session {
                        next_outgoing_id: 0,
                        next_delivery_id: 0,
                        next_incoming_id: next_in,
                        incoming_left: SESSION_WINDOW,
                        links: BTreeMap::new(),
                        unsettled: HashMap::new(),
                    },
                );
                self.send(ch, &frame::begin(ch, 0, SESSION_WINDOW));
            }
            Some(code::ATTACH) if known => self.on_attach(ch, &body, None),
            Some(code::FLOW) if known => self.on_flow(ch, &body),
            Some(code::TRANSFER) if known => self.on_transfer(ch, &body, f.payload),
            Some(code::DISPOSITION) if known => self.on_disposition(ch, &body),
            Some(code::DETACH) if known => {
                let handle = body.field(0).as_u64().unwrap_or(0) as u32;
                self.remove_link(ch, handle);
                // A receiver that gives up waiting for a session.
                self.parked
                    .retain(|p| !(p.channel == ch && p.handle == handle));
                // Held back: dropped if the session ends meanwhile.
                self.detach_replies.hold(
                    ch,
                    frame::detach(handle, body.field(1).as_bool().unwrap_or(false), None),
                );
            }
            Some(code::END) if known => {
                if let Some(s) = self.sessions.remove(&ch) {
                    s.links.values().for_each(|l| self.release(l));
                }
                self.parked.retain(|p| p.channel != ch);
                self.send(ch, &frame::end(None));
            }
            Some(code::CLOSE) => self.close(None),
            Some(c) => {
                let msg = format!("unexpected performative 0x{c:02x} on channel {ch}");
                self.close(Some(frame::error("amqp:connection:framing-error", &msg)));
            }
            None => self.close(Some(frame::error(
                "amqp:decode-error",
                "frame body is not a performative",
            ))),
        }
    }

    fn link_flow(
        &mut self,
        ch: u16,
        handle: u32,
        delivery_count: u32,
        link_credit: u32,
        drain: bool,
    ) {
        let Some(s) = self.sessions.get(&ch) else {
            return;
        };
        let f = frame::flow(
            s.next_incoming_id,
            s.incoming_left,
            s.next_outgoing_id,
            Some(LinkFlow {
                handle,
                delivery_count,
                link_credit,
                available: 0,
                drain,
            }),
        );
        self.send(ch, &f);
    }

    fn on_flow(&mut self, ch: u16, f: &Value) {
        let Some(handle) = f.field(4).as_u64().map(|h| h as u32) else {
            if f.field(9).as_bool() == Some(true) {
                if let Some(s) = self.sessions.get(&ch) {
                    let body = frame::flow(
                        s.next_incoming_id,
                        s.incoming_left,
                        s.next_outgoing_id,
                        None,
                    );
                    self.send(ch, &body);
                }
            }
            return;
        };
        let Some(link) = self
            .sessions
            .get_mut(&ch)
            .and_then(|s| s.links.get_mut(&handle))
        else {
            return;
        };
        if link.we_send {
            let their_dc = f
                .field(5)
                .as_u64()
                .map_or(link.delivery_count, |v| v as u32);
            let credit = f.field(6).as_u64().unwrap_or(0) as u32;
            link.credit = their_dc
                .wrapping_add(credit)
                .wrapping_sub(link.delivery_count);
            link.drain = f.field(8).as_bool().unwrap_or(false);
        }
        if f.field(9).as_bool() == Some(true) {
            let (dc, cr) = (link.delivery_count, link.credit);
            self.link_flow(ch, handle, dc, cr, false);
        }
    }
}

/// Reads an Event Hubs selector such as `amqp.annotation.x-opt-offset > '-1'`.
pub fn position(selector: &str) -> Position {
    let s = selector.replace(' ', "");
    let (field, rest) = match s.split_once("x-opt-") {
        Some((_, r)) => {
            let end = r.find(['>', '=', '<']).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => return Position::Latest,
    };
    let incl = rest.starts_with(">=") || rest.starts_with('=');
    let value = rest.trim_start_matches(['>', '=']).trim_matches('\'');
    if value == "@latest" {
        return Position::Latest;
    }
    let n: i64 = value.parse().unwrap_or(-1);
    match field {
        "offset" if n < 0 => Position::Earliest,
        "offset" => Position::Offset(n, incl),
        "sequence-number" => Position::Sequence(n, incl),
        "enqueued-time" => Position::Enqueued(n, incl),
        _ => Position::Latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_positions_cover_offset_sequence_time_and_latest() {
        assert_eq!(
            position("amqp.annotation.x-opt-offset > '-1'"),
            Position::Earliest
        );
        assert_eq!(
            position("amqp.annotation.x-opt-offset > '@latest'"),
            Position::Latest
        );
        assert_eq!(
            position("amqp.annotation.x-opt-offset >= '42'"),
            Position::Offset(42, true)
        );
        assert_eq!(
            position("amqp.annotation.x-opt-sequence-number > '3'"),
            Position::Sequence(3, false)
        );
        assert_eq!(
            position("amqp.annotation.x-opt-enqueued-time > '1700000000000'"),
            Position::Enqueued(1_700_000_000_000, false)
        );
    }
}
