//! Service Bus sessions on queues and subscriptions that require them: accepting a session (a
//! given one, or the next with messages that nobody holds), its exclusive lock and renewal,
//! receiving its messages in order, its state, and what happens when the lock goes.

use super::message::Delivered;
use super::{Broker, BrokerError, Op, StoreKey};
use std::collections::BTreeMap;

/// One session's broker state.
#[derive(Debug, Default)]
pub(super) struct SessionInfo {
    state: Option<Vec<u8>>,
    lock: Option<SessionLock>,
}

/// Who holds a session, and until when.
#[derive(Debug, Clone, Copy)]
struct SessionLock {
    owner: u64,
    until: i64,
}

impl Broker {
    /// Whether the store receives by session.
    pub fn requires_session(&self, k: &StoreKey) -> bool {
        self.settings.get(k).is_some_and(|s| s.requires_session)
    }

    fn lock_of(&self, k: &StoreKey, session: &str, now_ms: i64) -> Option<SessionLock> {
        self.sessions
            .get(k)?
            .get(session)?
            .lock
            .filter(|l| l.until > now_ms)
    }

    /// Locks a session for `owner`: the one asked for, or (`None`) the session whose first
    /// available message came first among those nobody holds. Returns its id and lock expiry.
    pub fn accept_session(
        &mut self,
        k: &StoreKey,
        wanted: Option<&str>,
        owner: u64,
        now_ms: i64,
    ) -> Result<(String, i64), BrokerError> {
        if !self.requires_session(k) {
            return Err(BrokerError::NotAllowed(
                "A sessionful message receiver cannot be created on an entity that does not require sessions. Set RequiresSession on the queue or subscription.".into(),
            ));
        }
        let lock_ms = self.settings.get(k).map_or(60_000, |s| s.lock_ms);
        // A lock that expired since the last tick gives its messages back before anyone
        // takes the session again.
        self.expire_session_locks(now_ms);
        let id = match wanted {
            Some(s) => {
                if self.lock_of(k, s, now_ms).is_some_and(|l| l.owner != owner) {
                    return Err(BrokerError::SessionCannotBeLocked(s.to_owned()));
                }
                s.to_owned()
            }
            None => {
                let store = self
                    .stores
                    .get(k)
                    .ok_or_else(|| BrokerError::NotFound(k.to_string()))?;
                store
                    .next_session(|s| self.lock_of(k, s, now_ms).is_some())
                    .ok_or(BrokerError::NoSessionAvailable)?
            }
        };
        let until = now_ms + lock_ms;
        self.sessions
            .entry(k.clone())
            .or_default()
            .entry(id.clone())
            .or_default()
            .lock = Some(SessionLock { owner, until });
        Ok((id, until))
    }

    /// Whether `owner` still holds the session.
    pub fn holds_session(&self, k: &StoreKey, session: &str, owner: u64, now_ms: i64) -> bool {
        self.lock_of(k, session, now_ms)
            .is_some_and(|l| l.owner == owner)
    }

    /// The session's lock expiry, if anyone holds it.
    pub(super) fn session_until(
        &self,
        k: &StoreKey,
        session: &str,
        now_ms: i64,
    ) -> Result<i64, BrokerError> {
        self.lock_of(k, session, now_ms)
            .map(|l| l.until)
            .ok_or_else(|| BrokerError::SessionLockLost(session.to_owned()))
    }

    /// Receives the next message of a session `owner` holds; peek-lock when `lock` is true
    /// (the message stays locked as long as the session is).
    pub fn receive_session(
        &mut self,
        k: &StoreKey,
        session: &str,
        owner: u64,
        now_ms: i64,
        lock: bool,
    ) -> Result<Option<Delivered>, BrokerError> {
        if !self.holds_session(k, session, owner, now_ms) {
            return Err(BrokerError::SessionLockLost(session.to_owned()));
        }
        let until = self.session_until(k, session, now_ms)?;
        let mut d = self.take_from(k, now_ms, lock.then_some(i64::MAX), Some(session));
        if let Some(l) = d.as_mut().and_then(|d| d.lock.as_mut()) {
            l.1 = until;
        }
        Ok(d)
    }

    /// `owner` lets the session go (its link detached): its locked messages are available
    /// again.
    pub fn release_session(&mut self, k: &StoreKey, session: &str, owner: u64) {
        let held = self
            .sessions
            .get(k)
            .and_then(|m| m.get(session))
            .and_then(|i| i.lock)
            .is_some_and(|l| l.owner == owner);
        if held {
            self.unlock_session(k, session);
        }
    }

    fn unlock_session(&mut self, k: &StoreKey, session: &str) {
        if let Some(m) = self.sessions.get_mut(k) {
            if let Some(info) = m.get_mut(session) {
                info.lock = None;
                if info.state.is_none() {
                    m.remove(session);
                }
            }
        }
        let tokens = self
            .stores
            .get_mut(k)
            .map(|st| st.release_session(session))
            .unwrap_or_default();
        for t in tokens {
            self.locks.remove(&t);
        }
    }

    /// Renews a session's lock; returns the new expiry.
    pub fn renew_session(
        &mut self,
        k: &StoreKey,
        session: &str,
        now_ms: i64,
    ) -> Result<i64, BrokerError> {
        self.session_until(k, session, now_ms)?;
        let lock_ms = self.settings.get(k).map_or(60_000, |s| s.lock_ms);
        let until = now_ms + lock_ms;
        if let Some(l) = self
            .sessions
            .get_mut(k)
            .and_then(|m| m.get_mut(session))
            .and_then(|i| i.lock.as_mut())
        {
            l.until = until;
        }
        Ok(until)
    }

    /// A held session's state.
    pub fn session_state(
        &self,
        k: &StoreKey,
        session: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<u8>>, BrokerError> {
        self.session_until(k, session, now_ms)?;
        Ok(self
            .sessions
            .get(k)
            .and_then(|m| m.get(session))
            .and_then(|i| i.state.clone()))
    }

    /// Sets (or with `None` clears) a held session's state.
    pub fn set_session_state(
        &mut self,
        k: &StoreKey,
        session: &str,
        state: Option<Vec<u8>>,
        now_ms: i64,
    ) -> Result<(), BrokerError> {
        self.session_until(k, session, now_ms)?;
        self.restore_session_state(k.clone(), session.to_owned(), state.clone());
        self.journal
            .push(Op::SessionState(k.clone(), session.to_owned(), state));
        Ok(())
    }

    pub(super) fn restore_session_state(
        &mut self,
        k: StoreKey,
        session: String,
        state: Option<Vec<u8>>,
    ) {
        let m: &mut BTreeMap<String, SessionInfo> = self.sessions.entry(k).or_default();
        let info = m.entry(session.clone()).or_default();
        info.state = state;
        if info.state.is_none() && info.lock.is_none() {
            m.remove(&session);
        }
    }

    /// Releases session locks that expired. Returns whether any did.
    pub(super) fn expire_session_locks(&mut self, now_ms: i64) -> bool {
        let expired: Vec<(StoreKey, String)> = self
            .sessions
            .iter()
            .flat_map(|(k, m)| {
                m.iter()
                    .filter(|(_, i)| i.lock.is_some_and(|l| l.until <= now_ms))
                    .map(move |(s, _)| (k.clone(), s.clone()))
            })
            .collect();
        for (k, s) in &expired {
            self.unlock_session(k, s);
        }
        !expired.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{Message, SystemProps};
    use super::super::{Address, QueueSpec, Topology};
    use super::*;

    fn session_queue() -> (Broker, StoreKey) {
        let mut q = QueueSpec::new("sq");
        q.store.requires_session = true;
        q.store.lock_ms = 1_000;
        let t = Topology {
            queues: vec![q],
            ..Default::default()
        };
        let b = Broker::new(&t, 0);
        let k = b.store_key(&Address::Entity("sq".into())).expect("queue");
        (b, k)
    }

    fn msg(session: Option<&str>) -> Message {
        Message {
            bare: vec![1],
            system: SystemProps {
                session_id: session.map(str::to_owned),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_session_queue_refuses_a_message_without_a_session_id() {
        let (mut b, _) = session_queue();
        let r = b.send(&Address::Entity("sq".into()), msg(None), 0);
        assert!(
            matches!(r, Err(BrokerError::NotAllowed(m)) if m.contains("SessionId was not set"))
        );
    }

    #[test]
    fn a_locked_session_cannot_be_accepted_by_another_receiver_until_it_is_released() {
        let (mut b, k) = session_queue();
        b.send(&Address::Entity("sq".into()), msg(Some("a")), 0)
            .expect("sent");
        assert_eq!(b.accept_session(&k, None, 1, 0).expect("next").0, "a");
        assert_eq!(
            b.accept_session(&k, Some("a"), 2, 0),
            Err(BrokerError::SessionCannotBeLocked("a".into()))
        );
        assert_eq!(
            b.accept_session(&k, None, 2, 0),
            Err(BrokerError::NoSessionAvailable)
        );
        let d = b
            .receive_session(&k, "a", 1, 0, true)
            .expect("held")
            .expect("message");
        assert_eq!(
            d.lock.expect("locked").1,
            1_000,
            "locked as long as the session"
        );
        b.release_session(&k, "a", 1);
        assert_eq!(b.accept_session(&k, Some("a"), 2, 0).expect("free").0, "a");
        let again = b.receive_session(&k, "a", 2, 0, true).expect("held");
        assert_eq!(again.expect("redelivered").stored.delivery_count, 1);
    }

    #[test]
    fn an_expired_session_lock_is_lost_and_its_state_survives() {
        let (mut b, k) = session_queue();
        b.accept_session(&k, Some("s"), 1, 0).expect("accepts");
        b.set_session_state(&k, "s", Some(b"step-2".to_vec()), 0)
            .expect("state set");
        assert_eq!(b.renew_session(&k, "s", 500), Ok(1_500));
        assert!(b.tick(1_600));
        assert_eq!(
            b.receive_session(&k, "s", 1, 1_600, true).map(|_| ()),
            Err(BrokerError::SessionLockLost("s".into()))
        );
        b.accept_session(&k, Some("s"), 2, 1_600)
            .expect("free again");
        assert_eq!(
            b.session_state(&k, "s", 1_600),
            Ok(Some(b"step-2".to_vec()))
        );
    }
}
