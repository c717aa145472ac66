//! A bounded hand-off that never blocks the producer: when it is full the oldest item is
//! dropped and counted.
//!
//! Used between the network task and the decoder thread (access units) and between the
//! decoder thread and the publisher (decoded frames). Producers may be async tasks or plain
//! threads; consumers can wait either way ([`DropOldestQueue::pop`] or
//! [`DropOldestQueue::pop_blocking`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// A bounded multi-producer queue that drops its oldest item instead of blocking.
pub struct DropOldestQueue<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
    dropped: AtomicU64,
    condvar: Condvar,
    notify: Notify,
}

impl<T> DropOldestQueue<T> {
    /// A queue holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            capacity,
            dropped: AtomicU64::new(0),
            condvar: Condvar::new(),
            notify: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding this lock cannot leave the deque inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item. Returns `true` when an older item was dropped to make room. Items pushed
    /// after [`close`](Self::close) are discarded (and not counted as dropped).
    pub fn push(&self, item: T) -> bool {
        let dropped_one = {
            let mut inner = self.lock();
            if inner.closed {
                return false;
            }
            let full = inner.items.len() >= self.capacity;
            if full {
                inner.items.pop_front();
            }
            inner.items.push_back(item);
            full
        };
        if dropped_one {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.condvar.notify_one();
        self.notify.notify_one();
        dropped_one
    }

    /// Takes the oldest item, waiting asynchronously. `None` once closed and empty.
    pub async fn pop(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if let Some(item) = inner.items.pop_front() {
                    return Some(item);
                }
                if inner.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Takes the oldest item, blocking the calling thread for at most `timeout`.
    /// `Err(Closed)` once closed and empty, `Ok(None)` on timeout.
    pub fn pop_blocking(&self, timeout: Duration) -> Result<Option<T>, Closed> {
        let inner = self.lock();
        let (mut inner, _) = self
            .condvar
            .wait_timeout_while(inner, timeout, |i| i.items.is_empty() && !i.closed)
            .unwrap_or_else(|p| p.into_inner());
        match inner.items.pop_front() {
            Some(item) => Ok(Some(item)),
            None if inner.closed => Err(Closed),
            None => Ok(None),
        }
    }

    /// Drops every queued item without counting them (e.g. after a reconnect).
    pub fn clear(&self) {
        self.lock().items.clear();
    }

    /// Wakes every waiter; later pushes are discarded and pops drain what is left.
    pub fn close(&self) {
        self.lock().closed = true;
        self.condvar.notify_all();
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// How many items were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The queue was closed and is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue was closed")]
pub struct Closed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_and_counts() {
        let q = DropOldestQueue::new(2);
        assert!(!q.push(1));
        assert!(!q.push(2));
        assert!(q.push(3));
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pop_blocking(Duration::ZERO), Ok(Some(2)));
        assert_eq!(q.pop_blocking(Duration::ZERO), Ok(Some(3)));
        assert_eq!(q.pop_blocking(Duration::from_millis(5)), Ok(None));
        q.close();
        assert_eq!(q.pop_blocking(Duration::from_secs(5)), Err(Closed));
        assert!(!q.push(4));
        assert_eq!(q.dropped(), 1);
    }

    #[tokio::test]
    async fn async_pop_wakes_on_push_from_a_thread_and_on_close() {
        let q = DropOldestQueue::new(4);
        let producer = q.clone();
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            producer.push(7u32);
            std::thread::sleep(Duration::from_millis(20));
            producer.close();
        });
        assert_eq!(q.pop().await, Some(7));
        assert_eq!(q.pop().await, None);
        handle.join().unwrap();
    }
}

/// Whether anybody consumes an output (decoded frames, access units, JPEG pictures): set by
/// the consumer (e.g. from the ROS subscriber count), read by the producer, which skips the
/// work while nobody does.
#[derive(Clone, Debug)]
pub struct Demand(Arc<AtomicBool>);

impl Demand {
    pub fn new(wanted: bool) -> Self {
        Self(Arc::new(AtomicBool::new(wanted)))
    }

    pub fn set(&self, wanted: bool) {
        self.0.store(wanted, Ordering::Relaxed);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
