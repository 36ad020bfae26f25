//! A spin lock (`spinlock_t`) for the kernel's spin-locked structures whose critical
//! sections are a few loads and stores, such as a DMA pool's free list.
//!
//! Taking it is one atomic swap and releasing it one release store, where a mutex pays
//! a read-modify-write for each (the release must learn whether a waiter sleeps). A
//! waiter spins a little, then yields the CPU on every further try: in userspace the
//! holder may have been preempted, and spinning out a whole time slice against it would
//! only delay it. Nothing sleeps, so nothing needs waking.
//!
//! Use it only where the section neither blocks nor runs long: waiters poll.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Tries with a pause instruction before a waiter starts yielding: a few hundred
/// nanoseconds, longer than any section this lock guards.
const SPINS: u32 = 64;

/// A value behind a spin lock.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and a guard exists only while its
// thread holds `locked`, so the lock moves `T` between threads but never shares it.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub(crate) const fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Takes the lock, waiting as long as it takes.
    #[inline]
    pub(crate) fn lock(&self) -> SpinLockGuard<'_, T> {
        loop {
            // Acquire pairs with the release in `SpinLockGuard::drop`: the last holder's
            // writes are visible to this one.
            if !self.locked.swap(true, Ordering::Acquire) {
                return SpinLockGuard { lock: self, _value: PhantomData };
            }
            self.wait();
        }
    }

    /// Polls with plain loads (no cache-line ping-pong) until the lock looks free.
    #[cold]
    fn wait(&self) {
        let mut spins = 0;
        while self.locked.load(Ordering::Relaxed) {
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// The value, without locking: `&mut self` proves no guard is alive.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpinLock").field("value", &*self.lock()).finish()
    }
}

/// Access to the locked value; dropping it releases the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub(crate) struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// The guard is a `&mut T` in all but name: `Sync` only when `T` is.
    _value: PhantomData<&'a mut T>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the guard's only borrow.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_other_threads() {
        // A non-atomic read-modify-write of a counter: any overlap of two sections would
        // lose an increment, so the total proves mutual exclusion (and, with more threads
        // than this machine has cores, that a preempted holder is waited out).
        const THREADS: usize = 4;
        const ROUNDS: usize = 100_000;
        let lock = SpinLock::new(0usize);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..ROUNDS {
                        let mut g = lock.lock();
                        let v = *g;
                        *g = std::hint::black_box(v) + 1;
                    }
                });
            }
        });
        assert_eq!(*lock.lock(), THREADS * ROUNDS);
    }

    #[test]
    fn a_guard_dropped_by_a_panic_releases_the_lock() {
        let lock = SpinLock::new(1);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = lock.lock();
            panic!("inside the section");
        }));
        assert!(caught.is_err());
        assert_eq!(*lock.lock(), 1, "the lock is free again");
    }
}
