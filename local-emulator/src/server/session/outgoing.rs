//! Outgoing deliveries: dispositions from receivers (complete, abandon, dead-letter), and the
//! pump that moves messages and events from the broker to links with credit.

use super::{ConnectionState, Node, PUMP_BATCH};
use crate::broker::BrokerError;
use crate::server::codec::Value;
use crate::server::frame::{self, code, AMQP};
use crate::server::management::broker_condition;
use crate::server::{message, quirks};

/// One delivery ready to go: payload, tag, settled, lock token.
struct Outgoing {
    payload: Vec<u8>,
    tag: Vec<u8>,
    settled: bool,
    token: Option<uuid::Uuid>,
}

impl ConnectionState {
    pub(super) fn on_disposition(&mut self, ch: u16, d: &Value) {
        if d.field(0).as_bool() != Some(true) {
            return;
        }
        let first = d.field(1).as_u64().unwrap_or(0) as u32;
        let last = d.field(2).as_u64().map_or(first, |v| v as u32);
        let settled = d.field(3).as_bool().unwrap_or(false);
        let state = d.field(4).clone();
        let echo = quirks::settled_echo(&state);
        let Some(s) = self.sessions.get_mut(&ch) else {
            return;
        };
        let ids: Vec<u32> = (0..=last.wrapping_sub(first).min(100_000))
            .map(|i| first.wrapping_add(i))
            .collect();
        let tokens: Vec<(u32, Option<uuid::Uuid>)> = ids
            .iter()
            .filter_map(|id| s.unsettled.remove(id).map(|t| (*id, t)))
            .collect();
        let mut echoes = Vec::new();
        for (id, token) in tokens {
            let Some(token) = token else { continue };
            let r = self
                .ctx
                .broker
                .with(|b, now| match state.descriptor_code() {
                    Some(code::ACCEPTED) => b.complete(token),
                    Some(code::REJECTED) => {
                        let err = state.field(0);
                        let info = err.field(2);
                        let reason = info
                            .get("DeadLetterReason")
                            .and_then(Value::as_str)
                            .or(err.field(0).as_str());
                        let desc = info
                            .get("DeadLetterErrorDescription")
                            .and_then(Value::as_str)
                            .or(err.field(1).as_str());
                        b.dead_letter(
                            token,
                            reason.unwrap_or_default(),
                            desc.unwrap_or_default(),
                            now,
                        )
                    }
                    // `modified` with undeliverable-here is how the SDKs defer a message; its
                    // annotations are the properties to modify.
                    Some(code::MODIFIED) if state.field(1).as_bool() == Some(true) => {
                        b.defer(token, &message::properties(state.field(2)))
                    }
                    Some(code::MODIFIED) => {
                        b.abandon(token, now, &message::properties(state.field(2)))
                    }
                    Some(code::RELEASED) => b.abandon(token, now, &[]),
                    _ => Ok(()),
                });
            if let Err(e) = r {
                echoes.push((
                    id,
                    frame::rejected(frame::error(
                        "com.microsoft:message-lock-lost",
                        &e.to_string(),
                    )),
                ));
            }
        }
        if !settled {
            if echoes.is_empty() {
                self.send(ch, &frame::disposition(false, first, last, true, echo));
            } else {
                for id in ids {
                    let st = echoes
                        .iter()
                        .find(|(i, _)| *i == id)
                        .map_or(echo.clone(), |(_, v)| v.clone());
                    self.send(ch, &frame::disposition(false, id, id, true, st));
                }
            }
        }
    }

    /// Sends what links with credit can take, after trying parked session receivers again.
    /// Returns `true` if more may be waiting.
    pub fn pump(&mut self) -> bool {
        if !self.parked.is_empty() {
            self.retry_parked();
        }
        let mut busy = false;
        let channels: Vec<u16> = self.sessions.keys().copied().collect();
        for ch in channels {
            let handles: Vec<u32> = self.sessions[&ch].links.keys().copied().collect();
            for h in handles {
                busy |= self.pump_link(ch, h);
            }
        }
        busy
    }

    /// Whether a link lost what it held in the broker (its session lock, its partition):
    /// then it is detached with the reason.
    fn lost(&mut self, ch: u16, h: u32) -> bool {
        let Some(link) = self.sessions.get(&ch).and_then(|s| s.links.get(&h)) else {
            return false;
        };
        let owner = link.owner;
        let why = match &link.node {
            Node::Store {
                key,
                session: Some(s),
            } => self
                .ctx
                .broker
                .with(|b, now| !b.holds_session(key, s, owner, now))
                .then(|| BrokerError::SessionLockLost(s.clone())),
            Node::Consumer { .. } => self
                .ctx
                .broker
                .with(|b, _| b.take_stolen(owner))
                .map(BrokerError::LinkStolen),
            _ => None,
        };
        let Some(e) = why else { return false };
        self.detach_with(ch, h, broker_condition(&e), &e.to_string());
        true
    }

    fn pump_link(&mut self, ch: u16, h: u32) -> bool {
        if self.lost(ch, h) {
            return false;
        }
        let mut sent = 0;
        loop {
            let Some(link) = self.sessions.get_mut(&ch).and_then(|s| s.links.get_mut(&h)) else {
                return false;
            };
            if !link.we_send {
                return false;
            }
            if link.credit == 0 || sent >= PUMP_BATCH {
                return link.credit > 0 && sent >= PUMP_BATCH;
            }
            let settled_mode = link.snd_settle == 1;
            let next: Option<Outgoing> = match &mut link.node {
                Node::Cbs | Node::Management(_) | Node::Send(_) => {
                    link.pending.pop_front().map(|payload| Outgoing {
                        payload,
                        tag: vec![0; 4],
                        settled: true,
                        token: None,
                    })
                }
                Node::Store { key, session } => {
                    let owner = link.owner;
                    self.ctx
                        .broker
                        .with(|b, now| match session {
                            None => b.receive(key, now, !settled_mode),
                            // A lost lock is found by `lost` on the next pump.
                            Some(s) => b
                                .receive_session(key, s, owner, now, !settled_mode)
                                .ok()
                                .flatten(),
                        })
                        .map(|d| {
                            let lock = d.lock;
                            let body = message::service_bus(&d.stored, lock.map(|l| l.1));
                            let token = lock.map_or_else(uuid::Uuid::new_v4, |l| l.0);
                            Outgoing {
                                payload: body,
                                tag: quirks::delivery_tag_for_lock(token).to_vec(),
                                settled: settled_mode,
                                token: lock.map(|l| l.0),
                            }
                        })
                }
                Node::Consumer {
                    hub,
                    partition,
                    cursor,
                } => {
                    let ev = self
                        .ctx
                        .broker
                        .with(|b, _| b.hub_read(hub, *partition, *cursor, 1));
                    ev.into_iter().next().map(|e| {
                        *cursor += 1;
                        Outgoing {
                            payload: message::event_hubs(&e),
                            tag: e.seq.to_be_bytes().to_vec(),
                            settled: link.snd_settle != 0,
                            token: None,
                        }
                    })
                }
            };
            let Some(Outgoing {
                payload,
                tag,
                settled,
                token,
            }) = next
            else {
                if link.drain {
                    link.delivery_count = link.delivery_count.wrapping_add(link.credit);
                    link.credit = 0;
                    link.drain = false;
                    let dc = link.delivery_count;
                    self.link_flow(ch, h, dc, 0, true);
                }
                return false;
            };
            link.credit -= 1;
            link.delivery_count = link.delivery_count.wrapping_add(1);
            self.write_delivery(ch, h, &tag, settled, token, &payload);
            sent += 1;
        }
    }

    fn write_delivery(
        &mut self,
        ch: u16,
        h: u32,
        tag: &[u8],
        settled: bool,
        token: Option<uuid::Uuid>,
        payload: &[u8],
    ) {
        let Some(s) = self.sessions.get_mut(&ch) else {
            return;
        };
        let did = s.next_delivery_id;
        s.next_delivery_id = did.wrapping_add(1);
        if !settled {
            s.unsettled.insert(did, token);
        }
        let room = (self.peer_max_frame as usize)
            .saturating_sub(8 + 96 + tag.len())
            .max(256);
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![payload]
        } else {
            payload.chunks(room).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            s.next_outgoing_id = s.next_outgoing_id.wrapping_add(1);
            let t = frame::transfer(h, did, tag, settled, i + 1 < n);
            frame::write_frame(&mut self.out, AMQP, ch, &t, chunk);
        }
    }
}
