//! Attaching links: address and authorization checks, the node a link serves, session
//! receivers (a given session or the next available one, parked until one has messages),
//! Event Hubs readers with epochs, and what a link holds in the broker until it goes.

use super::{now_s, ConnectionState, Link, Node, LINK_CREDIT};
use crate::broker::eventhub::Position;
use crate::broker::{Address, BrokerError, NodeKind};
use crate::server::cbs;
use crate::server::codec::Value;
use crate::server::frame::{self, AttachReply};
use crate::server::management::broker_condition;
use crate::server::quirks;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Descriptor of a transaction coordinator target.
const COORDINATOR: u64 = 0x30;

/// Owner ids for links, unique in the process.
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// How long a receiver for the next available session waits when it names no timeout (as
/// Service Bus's default operation timeout), and at most.
const DEFAULT_SESSION_WAIT: Duration = Duration::from_secs(60);
const MAX_SESSION_WAIT: Duration = Duration::from_secs(3600);

/// How many receivers of one connection may wait for a session at once.
const MAX_PARKED: usize = 256;

/// A session receiver's attach, waiting for a session with messages.
pub(super) struct Parked {
    /// The session (channel) it came on.
    pub(super) channel: u16,
    /// The link's handle.
    pub(super) handle: u32,
    attach: Value,
    deadline: Instant,
}

/// Why an attach is not granted now.
enum Refusal {
    /// Refused with this condition and description.
    Refused(&'static str, String),
    /// Next available session asked for, and none is available yet.
    Wait,
}

impl From<BrokerError> for Refusal {
    fn from(e: BrokerError) -> Refusal {
        match e {
            BrokerError::NoSessionAvailable => Refusal::Wait,
            e => Refusal::Refused(broker_condition(&e), e.to_string()),
        }
    }
}

/// What the broker granted a link besides its node.
#[derive(Default)]
struct Granted {
    /// The session a session receiver holds, and until when (unix ms).
    session: Option<(String, i64)>,
}

impl ConnectionState {
    pub(super) fn refuse(
        &mut self,
        ch: u16,
        name: &str,
        handle: u32,
        client_receives: bool,
        cond: &str,
        desc: &str,
    ) {
        tracing::debug!(name, cond, desc, "attach refused");
        self.send(
            ch,
            &frame::attach(AttachReply {
                name,
                handle,
                role_receiver: !client_receives,
                snd_settle_mode: 0,
                rcv_settle_mode: 0,
                source: Value::Null,
                target: Value::Null,
                max_message_size: 0,
                properties: Vec::new(),
            }),
        );
        self.send(
            ch,
            &frame::detach(handle, true, Some(frame::error(cond, desc))),
        );
    }

    /// Handles an attach; `deadline` is set when a parked one is tried again.
    pub(super) fn on_attach(&mut self, ch: u16, a: &Value, deadline: Option<Instant>) {
        let name = a.field(0).as_str().unwrap_or_default().to_owned();
        let handle = a.field(1).as_u64().unwrap_or(0) as u32;
        let client_receives = a.field(2).as_bool().unwrap_or(false);
        let (source, target) = (a.field(5), a.field(6));
        if !client_receives && target.descriptor_code() == Some(COORDINATOR) {
            let desc = "transactions are not supported by the emulator";
            return self.refuse(ch, &name, handle, false, "amqp:not-implemented", desc);
        }
        let raw = if client_receives {
            source.field(0)
        } else {
            target.field(0)
        };
        let raw = raw.as_str().unwrap_or_default().to_owned();
        let path = quirks::strip_scheme_and_host(&raw).to_owned();
        let addr = match Address::parse(&path) {
            Ok(a) => a,
            Err(e) => {
                return self.refuse(
                    ch,
                    &name,
                    handle,
                    client_receives,
                    "amqp:not-found",
                    &e.to_string(),
                )
            }
        };
        let authorized = match &addr {
            Address::Cbs => true,
            Address::Management(None) => self.grants.iter().any(|g| g.expires_s > now_s()),
            _ => cbs::covers(&self.grants, &cbs::normalize(&path), now_s()),
        };
        if !authorized {
            let desc = format!("Unauthorized access. A valid token for '{path}' is required; send one to $cbs first.");
            return self.refuse(
                ch,
                &name,
                handle,
                client_receives,
                "amqp:unauthorized-access",
                &desc,
            );
        }
        let owner = NEXT_OWNER.fetch_add(1, Ordering::Relaxed);
        let (node, granted) = match self.node_for(&addr, client_receives, a, owner) {
            Ok(n) => n,
            Err(Refusal::Refused(cond, desc)) => {
                return self.refuse(ch, &name, handle, client_receives, cond, &desc)
            }
            Err(Refusal::Wait) => {
                let deadline = deadline.unwrap_or_else(|| {
                    Instant::now()
                        .checked_add(session_wait(a))
                        .unwrap_or_else(Instant::now)
                });
                if Instant::now() < deadline && self.parked.len() >= MAX_PARKED {
                    let desc = format!(
                        "at most {MAX_PARKED} receivers of a connection may wait for a session"
                    );
                    return self.refuse(
                        ch,
                        &name,
                        handle,
                        client_receives,
                        "amqp:resource-limit-exceeded",
                        &desc,
                    );
                }
                if Instant::now() < deadline {
                    self.parked.push(Parked {
                        channel: ch,
                        handle,
                        attach: a.clone(),
                        deadline,
                    });
                    return;
                }
                let desc = "no unlocked session with messages became available in time";
                return self.refuse(
                    ch,
                    &name,
                    handle,
                    client_receives,
                    "com.microsoft:timeout",
                    desc,
                );
            }
        };
        let hub = matches!(node, Node::Consumer { .. })
            || matches!(&node, Node::Send(ad) if self.ctx.broker.with(|b, _| b.kind(ad)) == Ok(NodeKind::Hub));
        let max_message_size = match node {
            Node::Cbs | Node::Management(_) => self.ctx.hub_max_message_size,
            _ if hub => self.ctx.hub_max_message_size,
            _ => self.ctx.max_message_size,
        };
        let snd_settle = a.field(3).as_u64().unwrap_or(2) as u8;
        let mut source_reply = frame::full_terminus(source, 11);
        let mut properties = Vec::new();
        if let Some((session, until)) = &granted.session {
            source_reply = quirks::with_session_filter(source_reply, session);
            properties.push((
                Value::sym(quirks::LOCKED_UNTIL_UTC),
                Value::Long(quirks::dotnet_ticks(*until)),
            ));
        }
        self.send(
            ch,
            &frame::attach(AttachReply {
                name: &name,
                handle,
                role_receiver: !client_receives,
                snd_settle_mode: snd_settle,
                rcv_settle_mode: a.field(4).as_u64().unwrap_or(0) as u8,
                source: source_reply,
                target: frame::full_terminus(target, 7),
                max_message_size,
                properties,
            }),
        );
        let initial = a.field(9).as_u64().unwrap_or(0) as u32;
        let link = Link {
            we_send: client_receives,
            node,
            source: source.field(0).as_str().unwrap_or_default().to_owned(),
            target: target.field(0).as_str().unwrap_or_default().to_owned(),
            snd_settle,
            credit: if client_receives { 0 } else { LINK_CREDIT },
            delivery_count: if client_receives { 0 } else { initial },
            drain: false,
            partial: None,
            pending: VecDeque::new(),
            max_message_size,
            owner,
        };
        let grant = (!client_receives).then_some((link.delivery_count, link.credit));
        let replaced = self
            .sessions
            .get_mut(&ch)
            .and_then(|s| s.links.insert(handle, link));
        if let Some(old) = replaced {
            // A handle attached again: what the old link held goes back.
            self.release(&old);
        }
        if let Some((dc, credit)) = grant {
            self.link_flow(ch, handle, dc, credit, false);
        }
    }

    fn node_for(
        &self,
        addr: &Address,
        client_receives: bool,
        attach: &Value,
        owner: u64,
    ) -> Result<(Node, Granted), Refusal> {
        let not_allowed =
            |what: &str| Refusal::Refused("amqp:not-allowed", format!("cannot {what} '{addr}'"));
        let plain = |n: Node| Ok((n, Granted::default()));
        match addr {
            Address::Cbs => return plain(Node::Cbs),
            Address::Management(e) => return plain(Node::Management(e.clone())),
            _ => {}
        }
        let source = attach.field(5);
        let broker = &self.ctx.broker;
        let kind = broker.with(|b, _| b.kind(addr))?;
        match (kind, client_receives, addr) {
            (NodeKind::Queue, true, _) => {
                let wanted = quirks::session_filter(source.field(7));
                let (key, session) = broker.with(|b, now| {
                    let key = b.store_key(addr)?;
                    let session = match (&wanted, b.requires_session(&key)) {
                        (None, true) => return Err(BrokerError::NotAllowed(
                            "It is not possible for an entity that requires sessions to create a non-sessionful message receiver.".into(),
                        )),
                        (None, false) => None,
                        (Some(w), _) => Some(b.accept_session(&key, w.as_deref(), owner, now)?),
                    };
                    Ok((key, session))
                })?;
                Ok((
                    Node::Store {
                        key,
                        session: session.as_ref().map(|s| s.0.clone()),
                    },
                    Granted { session },
                ))
            }
            (NodeKind::Queue, false, Address::Entity(_))
            | (NodeKind::Topic | NodeKind::Hub, false, _) => plain(Node::Send(addr.clone())),
            (NodeKind::Consumer, true, Address::Consumer(h, cg, p)) => {
                let pos = quirks::selector_filter(source.field(7))
                    .map_or(Position::Latest, |s| super::position(&s));
                let partition = *p as usize;
                let epoch = attach.field(13).get(quirks::EPOCH).and_then(Value::as_i64);
                let cursor = broker.with(|b, _| {
                    b.open_reader(h, cg, partition, owner, epoch)
                        .map(|()| b.hub_index(h, partition, pos))
                })?;
                if epoch.is_some() {
                    // Readers it took the partition from learn it when their connections wake.
                    broker.notify();
                }
                plain(Node::Consumer {
                    hub: h.clone(),
                    partition,
                    cursor,
                })
            }
            (_, true, _) => Err(not_allowed("receive from")),
            (_, false, _) => Err(not_allowed("send to")),
        }
    }

    /// Tries parked session receivers again: attached once a session is free, refused with
    /// `com.microsoft:timeout` once their wait is over.
    pub(super) fn retry_parked(&mut self) {
        for p in std::mem::take(&mut self.parked) {
            if self.sessions.contains_key(&p.channel) {
                self.on_attach(p.channel, &p.attach, Some(p.deadline));
            }
        }
    }

    /// When the earliest parked receiver's wait is over.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.parked.iter().map(|p| p.deadline).min()
    }

    /// Gives back what a link held in the broker: its session lock (waking receivers parked
    /// for the next available session), its partition reader.
    pub(super) fn release(&self, link: &Link) {
        match &link.node {
            Node::Store {
                key,
                session: Some(s),
            } => {
                self.ctx
                    .broker
                    .with(|b, _| b.release_session(key, s, link.owner));
                self.ctx.broker.notify();
            }
            Node::Consumer { .. } => self.ctx.broker.with(|b, _| b.close_reader(link.owner)),
            _ => {}
        }
    }

    /// Takes a link out of its session and gives back what it held; whether it was there.
    pub(super) fn remove_link(&mut self, ch: u16, handle: u32) -> bool {
        let link = self
            .sessions
            .get_mut(&ch)
            .and_then(|s| s.links.remove(&handle));
        if let Some(l) = &link {
            self.release(l);
        }
        link.is_some()
    }

    /// Detaches a link of ours with an error (its session lock was lost, its partition taken).
    pub(super) fn detach_with(&mut self, ch: u16, handle: u32, cond: &str, desc: &str) {
        if self.remove_link(ch, handle) {
            self.send(
                ch,
                &frame::detach(handle, true, Some(frame::error(cond, desc))),
            );
        }
    }
}

impl Drop for ConnectionState {
    fn drop(&mut self) {
        for s in self.sessions.values() {
            for l in s.links.values() {
                self.release(l);
            }
        }
    }
}

/// How long a next-available session receiver waits: its `com.microsoft:timeout` link
/// property (ms), else the default.
fn session_wait(attach: &Value) -> Duration {
    attach
        .field(13)
        .get(quirks::OPERATION_TIMEOUT)
        .and_then(Value::as_u64)
        .map_or(DEFAULT_SESSION_WAIT, Duration::from_millis)
        .min(MAX_SESSION_WAIT)
}
