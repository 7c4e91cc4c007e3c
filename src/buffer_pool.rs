//! Byte buffers reused across requests on a worker thread, so the steady state of a busy
//! server allocates none: request bodies, file copies, uWSGI responses.

use std::cell::RefCell;

/// Buffers kept per thread; beyond that they are freed (at most KEPT × LARGEST_KEPT
/// bytes stay after a burst).
const KEPT: usize = 64;
/// A buffer grown past this is freed rather than kept: room for the 64 KiB reads of a
/// relay, not for rare large ones.
const LARGEST_KEPT: usize = 80 << 10;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with at least `capacity` bytes of room.
pub fn take(capacity: usize) -> Vec<u8> {
    let mut buf = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
    buf.reserve(capacity);
    buf
}

/// Gives a buffer back for reuse.
pub fn give(mut buf: Vec<u8>) {
    if buf.capacity() > LARGEST_KEPT {
        return;
    }
    buf.clear();
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < KEPT {
            p.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_big_ones_are_dropped() {
        let mut b = take(100);
        b.extend_from_slice(b"abc");
        let ptr = b.as_ptr();
        give(b);
        let again = take(10);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), ptr);
        let big = take(LARGEST_KEPT + 1);
        give(big);
        // the pool (of this test's thread) holds nothing: the big buffer was freed
        assert_eq!(take(0).capacity(), 0);
    }
}
