//! Locking shared by the threads.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, also when a thread panicked while holding it: every user of this keeps its data
/// consistent at each step (appends complete or are never published, updates are one call), so
/// a poisoned lock still guards good data, and a panic elsewhere must not take this thread down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
