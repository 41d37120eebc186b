//! Incoming transfers: reassembly, size limits, delivery to the broker or to the `$cbs` and
//! `$management` nodes, and the routing of their replies.

use super::{now_s, ConnectionState, Node, Partial, LINK_CREDIT, SESSION_WINDOW};
use crate::broker::NodeKind;
use crate::server::codec::Value;
use crate::server::frame;
use crate::server::management::{self, broker_condition};
use crate::server::{message, quirks};

impl ConnectionState {
    pub(super) fn on_transfer(&mut self, ch: u16, t: &Value, payload: Vec<u8>) {
        let handle = t.field(0).as_u64().unwrap_or(0) as u32;
        let Some(s) = self.sessions.get_mut(&ch) else {
            return;
        };
        s.next_incoming_id = s.next_incoming_id.wrapping_add(1);
        s.incoming_left = s.incoming_left.saturating_sub(1);
        let refill = s.incoming_left < SESSION_WINDOW / 2;
        if refill {
            s.incoming_left = SESSION_WINDOW;
        }
        let Some(link) = s.links.get_mut(&handle) else {
            let msg = format!("transfer on unattached handle {handle}");
            return self.close(Some(frame::error("amqp:session:unattached-handle", &msg)));
        };
        let more = t.field(5).as_bool().unwrap_or(false);
        let mut p = link.partial.take().unwrap_or_else(|| Partial {
            delivery_id: t.field(1).as_u64().unwrap_or(0) as u32,
            settled: t.field(4).as_bool().unwrap_or(false),
            format: t.field(3).as_u64().unwrap_or(0) as u32,
            data: Vec::new(),
        });
        p.settled |= t.field(4).as_bool().unwrap_or(false);
        p.data.extend(payload);
        if t.field(9).as_bool() == Some(true) {
            return;
        }
        let limit = link.max_message_size;
        if p.data.len() as u64 > limit + 65_536 {
            s.links.remove(&handle);
            let desc =
                format!("the message exceeds the link's maximum message size of {limit} bytes");
            return self.send(
                ch,
                &frame::detach(
                    handle,
                    true,
                    Some(frame::error("amqp:link:message-size-exceeded", &desc)),
                ),
            );
        }
        if more {
            link.partial = Some(p);
            return;
        }
        link.delivery_count = link.delivery_count.wrapping_add(1);
        link.credit = link.credit.saturating_sub(1);
        let low = link.credit < LINK_CREDIT / 2;
        if low {
            link.credit = LINK_CREDIT;
        }
        let (dc, node) = (link.delivery_count, link.node.clone());
        if refill {
            let s = &self.sessions[&ch];
            let body = frame::flow(
                s.next_incoming_id,
                s.incoming_left,
                s.next_outgoing_id,
                None,
            );
            self.send(ch, &body);
        }
        if low {
            self.link_flow(ch, handle, dc, LINK_CREDIT, false);
        }
        let sent = matches!(node, Node::Send(_));
        let state = self.deliver_in(ch, node, &p, limit);
        if sent && state == frame::accepted() && self.ctx.faults.lose_settlement() {
            // Stored, and the client never learns it: as if the connection died just now.
            self.dropped = true;
            return;
        }
        if !p.settled {
            self.deferred.push(super::Deferred {
                channel: ch,
                delivery_id: p.delivery_id,
                state,
            });
        }
    }

    fn deliver_in(&mut self, ch: u16, node: Node, p: &Partial, limit: u64) -> Value {
        match node {
            Node::Cbs => {
                let now = now_s();
                let management::CbsReply {
                    reply,
                    reply_to,
                    grant,
                } = management::cbs(&self.ctx, &p.data, now);
                self.grants.extend(grant);
                self.route_reply(ch, reply, reply_to.as_deref(), "$cbs");
                frame::accepted()
            }
            Node::Management(entity) => {
                let (reply, reply_to) = management::handle(&self.ctx, entity.as_deref(), &p.data);
                let node = entity.map_or("$management".to_owned(), |e| format!("{e}/$management"));
                self.route_reply(ch, reply, reply_to.as_deref(), &node);
                frame::accepted()
            }
            Node::Send(addr) => {
                if p.data.len() as u64 > limit {
                    let desc = format!(
                        "the message of {} bytes exceeds the limit of {limit} bytes",
                        p.data.len()
                    );
                    return frame::rejected(frame::error("amqp:link:message-size-exceeded", &desc));
                }
                let msgs = match message::messages(&p.data, p.format) {
                    Ok(m) => m,
                    Err(e) => {
                        return frame::rejected(frame::error("amqp:decode-error", &e.to_string()))
                    }
                };
                let r = self.ctx.broker.with(|b, now| {
                    let service_bus = b.kind(&addr) != Ok(NodeKind::Hub);
                    msgs.into_iter().try_for_each(|mut m| {
                        if service_bus {
                            message::give_id(&mut m);
                        }
                        b.send(&addr, m, now).map(drop)
                    })
                });
                match r {
                    Ok(()) => frame::accepted(),
                    Err(e) => frame::rejected(frame::error(broker_condition(&e), &e.to_string())),
                }
            }
            Node::Store { .. } | Node::Consumer { .. } => frame::rejected(frame::error(
                "amqp:not-allowed",
                "this link only delivers messages",
            )),
        }
    }

    /// Queues a reply on the link that asked for it: the link whose target is the reply-to
    /// address, else the node's receiver, preferring the request's own session (the Rust SDK
    /// runs several CBS sessions at once, all with the same reply-to).
    fn route_reply(&mut self, ch: u16, reply: Vec<u8>, reply_to: Option<&str>, node: &str) {
        let mut best: Option<(u8, u16, u32)> = None;
        for (c, s) in &self.sessions {
            for (h, l) in &s.links {
                if !l.we_send {
                    continue;
                }
                let (exact, fb) = quirks::reply_link_matches(reply_to, &l.target, &l.source, node);
                let rank = match (exact, fb, *c == ch) {
                    (true, _, true) => 0,
                    (false, true, true) => 1,
                    (true, _, false) => 2,
                    (false, true, false) => 3,
                    _ => continue,
                };
                if best.is_none_or(|b| rank < b.0) {
                    best = Some((rank, *c, *h));
                }
            }
        }
        if let Some(link) = best.and_then(|(_, c, h)| self.sessions.get_mut(&c)?.links.get_mut(&h))
        {
            link.pending.push_back(reply);
        } else {
            tracing::debug!(node, ?reply_to, "no link to answer on; reply dropped");
        }
    }
}
