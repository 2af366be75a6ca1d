//! The shutdown trigger shared by sources and the binary's signal handler.
//!
//! Triggering only stops the sources from reading; every later stage drains what was read and
//! exits when its input channel closes (shutdown by dropping, as in mini-redis).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable "stop reading" flag, observable from threads (poll) and tokio tasks (await).
#[derive(Clone, Debug)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    flag: AtomicBool,
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A trigger that has not fired.
    pub fn new() -> Shutdown {
        let (tx, _rx) = watch::channel(false);
        Shutdown { inner: Arc::new(Inner { flag: AtomicBool::new(false), tx }) }
    }

    /// Fires the trigger (idempotent).
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.tx.send_replace(true);
    }

    /// Whether the trigger has fired.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Completes once the trigger has fired.
    pub async fn wait(&self) {
        let mut rx = self.inner.tx.subscribe();
        // `wait_for` checks the current value first, so a trigger that fired earlier is seen.
        let _ = rx.wait_for(|v| *v).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_is_seen_by_clones_and_waiters() {
        let s = Shutdown::new();
        let c = s.clone();
        assert!(!c.is_triggered());
        s.trigger();
        assert!(c.is_triggered());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(1), c.wait()).await.unwrap() });
    }
}
