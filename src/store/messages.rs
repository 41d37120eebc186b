//! What instances sharing a store tell each other: endpoints or subscriptions changed, work
//! became due, and the live tail's relay (what happens on one instance, for a tail open on
//! another). PostgreSQL carries it with `LISTEN/NOTIFY` ([`super::postgres`]); an embedded
//! store has one instance, which hears itself in-process ([`Local`]).

use async_trait::async_trait;

use super::StoreError;

/// The most bytes one [`Messages::tell_tails`] carries (PostgreSQL's `NOTIFY` payloads stop
/// short of 8,000).
pub const TAIL_TEXT_MAX: usize = 7_600;

/// A notification handler.
pub type Callback = std::sync::Arc<dyn Fn() + Send + Sync>;
/// A handler of a notification that carries text.
pub type TextCallback = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// What other instances tell this one, and who hears it (see [`Messages::watch`]).
#[derive(Clone)]
pub struct Watchers {
    /// Some instance stored due work.
    pub on_work: Callback,
    /// Some instance changed endpoints or subscriptions.
    pub on_change: Callback,
    /// Some instance told the live tails what happened there (the text it gave
    /// [`Messages::tell_tails`]).
    pub on_tail: TextCallback,
    /// Some instance has a live tail open and wants to hear (the asking instance's name).
    pub on_tail_wanted: TextCallback,
}

/// The messages between the instances of one store.
#[async_trait]
pub trait Messages: Send + Sync {
    /// Whether other instances may share this store, so that a live tail open on one of them
    /// wants to hear what happens on the others.
    fn shared(&self) -> bool;

    /// Calls the handlers of `watchers` when other instances tell this one something.
    fn watch(&self, watchers: Watchers);

    /// Tells every instance that endpoints or subscriptions changed.
    async fn changed(&self) -> Result<(), StoreError>;

    /// Tells every instance that work was made due (after a commit, a retry or a replay);
    /// many calls close together make one message.
    fn work(&self);

    /// Tells the live tails of every instance `text` (at most [`TAIL_TEXT_MAX`] bytes).
    async fn tell_tails(&self, text: &str) -> Result<(), StoreError>;

    /// Asks every instance, on behalf of instance `asker`, to tell the live tails what
    /// happens there for a while.
    async fn want_tail(&self, asker: &str) -> Result<(), StoreError>;
}

/// The messages of a store only one process uses: there is nobody else to tell, and this
/// process wakes its own dispatcher and refreshes its own routing where it makes a change.
#[derive(Debug, Default)]
pub struct Local;

#[async_trait]
impl Messages for Local {
    fn shared(&self) -> bool {
        false
    }

    fn watch(&self, _watchers: Watchers) {}

    async fn changed(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn work(&self) {}

    async fn tell_tails(&self, _text: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn want_tail(&self, _asker: &str) -> Result<(), StoreError> {
        Ok(())
    }
}
