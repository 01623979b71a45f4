//! Locks that keep working after a thread panicked while holding them.
//!
//! A poisoned `Mutex` or `RwLock` only says that a thread panicked while
//! holding it. Everything the broker guards with one is left consistent by
//! each critical section, or repaired right after (the index is rebuilt
//! from the disk by the next rescan, and a dead writer stops the process:
//! see `store::writer`), so the data is used as it is rather than
//! propagating the panic to every later reader.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// [`Mutex::lock`], recovering the guard from a poisoned lock.
pub(crate) trait LockOrRecover<T> {
    /// The guard, poisoned or not.
    fn lock_or_recover(&self) -> MutexGuard<'_, T>;
}

impl<T> LockOrRecover<T> for Mutex<T> {
    fn lock_or_recover(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// [`RwLock::read`] and [`RwLock::write`], recovering from poisoning.
pub(crate) trait RwLockOrRecover<T> {
    /// A read guard, poisoned or not.
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T>;
    /// A write guard, poisoned or not.
    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> RwLockOrRecover<T> for RwLock<T> {
    fn read_or_recover(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write_or_recover(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|p| p.into_inner())
    }
}
