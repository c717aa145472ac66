//! Reuse of the decoded frames' pixel buffers.
//!
//! A 1080p bgr8 frame is 6 MB. Allocating one per frame costs a zero-fill (or fresh pages and
//! their faults) thirty times a second; instead the decoder takes a buffer from this pool and
//! whoever consumed the frame (the ROS publisher, once the message is published) gives it back.
//! Buffers that are never given back are simply freed; the pool then allocates a new one.

use std::sync::Mutex;

/// A small stack of spare byte buffers.
pub struct BufferPool {
    spare: Mutex<Vec<Vec<u8>>>,
    max_spare: usize,
}

impl BufferPool {
    /// A pool keeping at most `max_spare` buffers.
    pub fn new(max_spare: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::with_capacity(max_spare)),
            max_spare,
        }
    }

    /// A buffer of exactly `len` bytes. Its contents are unspecified (a reused buffer keeps
    /// old pixels): the caller overwrites all of it.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let reused = {
            let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            let index = spare.iter().position(|b| b.capacity() >= len);
            index.map(|i| spare.swap_remove(i))
        };
        match reused {
            Some(mut buffer) => {
                // Only grows (zero-filling the new part) when the size changed.
                buffer.resize(len, 0);
                buffer
            }
            None => vec![0; len],
        }
    }

    /// Returns a buffer for reuse; dropped when the pool is full.
    pub fn give_back(&self, buffer: Vec<u8>) {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < self.max_spare {
            spare.push(buffer);
        }
    }

    /// Spare buffers held now.
    pub fn spare_buffers(&self) -> usize {
        self.spare.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_given_back_buffers_and_bounds_the_spares() {
        let pool = BufferPool::new(2);
        let first = pool.take(1000);
        assert_eq!(first.len(), 1000);
        let address = first.as_ptr();
        pool.give_back(first);
        let again = pool.take(1000);
        assert_eq!(again.as_ptr(), address, "the spare buffer is reused");
        let smaller = {
            pool.give_back(again);
            pool.take(10)
        };
        assert_eq!(smaller.len(), 10);
        pool.give_back(smaller);
        pool.give_back(vec![0; 5]);
        pool.give_back(vec![0; 5]);
        assert_eq!(pool.spare_buffers(), 2);
        // No spare is big enough: a new buffer.
        assert_eq!(pool.take(4000).len(), 4000);
    }
}
