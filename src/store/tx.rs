//! The write transaction handed to mutations: redb's transaction plus the effects the mutation
//! asks for once its commit is durable (invalidate cached credentials, count a metric, enqueue
//! work). Effects of a mutation that fails, or of a commit that fails, are dropped.

use std::any::Any;
use std::cell::RefCell;
use std::ops::Deref;

/// Something to do after a durable commit. The store does not interpret effects: the sink
/// installed with [`super::Store::set_effect_sink`] downcasts them to the types it knows.
pub type Effect = Box<dyn Any + Send>;

/// Receives the effects of every committed batch, on the writer thread, before any caller of
/// that batch gets its answer: an answered revocation has already been applied.
pub type EffectSink = Box<dyn Fn(Vec<Effect>) + Send + Sync>;

/// A redb write transaction with an effect list.
pub struct WriteTx {
    inner: redb::WriteTransaction,
    effects: RefCell<Vec<Effect>>,
}

impl WriteTx {
    pub(super) fn new(inner: redb::WriteTransaction) -> Self {
        Self { inner, effects: RefCell::new(Vec::new()) }
    }

    /// Asks for `effect` once this transaction's commit is durable.
    pub fn on_commit<E: Any + Send>(&self, effect: E) {
        self.effects.borrow_mut().push(Box::new(effect));
    }

    /// How many effects are queued (a mark to roll back to when a mutation fails).
    pub(super) fn effect_mark(&self) -> usize {
        self.effects.borrow().len()
    }

    /// Drops the effects queued after `mark`.
    pub(super) fn rollback_effects(&self, mark: usize) {
        self.effects.borrow_mut().truncate(mark);
    }

    pub(super) fn into_parts(self) -> (redb::WriteTransaction, Vec<Effect>) {
        (self.inner, self.effects.into_inner())
    }
}

impl Deref for WriteTx {
    type Target = redb::WriteTransaction;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}
