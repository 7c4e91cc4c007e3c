//! A heap slot for one request's future that is reused by the next request on the same
//! thread instead of being freed and allocated again. The future is boxed so that an
//! idle keep-alive connection does not carry the (several KiB) state of a request being
//! served; recycling the slot keeps a static hit free of allocations in steady state.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Slots kept per thread: as many requests in flight at once as that, without allocating.
const KEPT: usize = 256;

thread_local! {
    static FREE: RefCell<Vec<(Layout, NonNull<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// An owned, pinned future in a recycled heap slot.
pub struct RecycledBox<F> {
    ptr: NonNull<F>,
}

// SAFETY: the box owns its `F` exclusively, like `Box<F>`; the slot itself is plain memory
// from the global allocator, which any thread may reuse or free.
unsafe impl<F: Send> Send for RecycledBox<F> {}

impl<F: Future> RecycledBox<F> {
    pub fn new(value: F) -> RecycledBox<F> {
        let layout = Layout::new::<F>();
        if layout.size() == 0 {
            let ptr = NonNull::<F>::dangling();
            // SAFETY: a zero-sized value needs no memory; a dangling aligned pointer is valid
            unsafe { ptr.as_ptr().write(value) };
            return RecycledBox { ptr };
        }
        let reused = FREE.with(|free| {
            let mut free = free.borrow_mut();
            let i = free.iter().rposition(|(l, _)| *l == layout)?;
            Some(free.swap_remove(i).1)
        });
        let raw = reused.unwrap_or_else(|| {
            // SAFETY: the layout has a non-zero size
            NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout))
        });
        let ptr = raw.cast::<F>();
        // SAFETY: `ptr` is valid for writes of `F` (allocated or kept with F's layout)
        unsafe { ptr.as_ptr().write(value) };
        RecycledBox { ptr }
    }
}

impl<F: Future> Future for RecycledBox<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the value never moves out of its slot until it is dropped in place
        unsafe { Pin::new_unchecked(&mut *self.get_unchecked_mut().ptr.as_ptr()) }.poll(cx)
    }
}

impl<F> Drop for RecycledBox<F> {
    fn drop(&mut self) {
        let layout = Layout::new::<F>();
        // SAFETY: the slot holds a live `F`, dropped exactly once here
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        if layout.size() == 0 {
            return;
        }
        let raw = self.ptr.cast::<u8>();
        // (while the thread's locals are being torn down the slot is simply freed)
        let kept = FREE
            .try_with(|free| {
                let mut free = free.borrow_mut();
                if free.len() < KEPT {
                    free.push((layout, raw));
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !kept {
            // SAFETY: allocated with this layout by `new`
            unsafe { dealloc(raw.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>, [u8; 100]);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn slots_are_reused_and_values_dropped() {
        let drops = Arc::new(AtomicUsize::new(0));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut slots = Vec::new();
        for i in 0..3u8 {
            let c = Counted(drops.clone(), [i; 100]);
            let fut = RecycledBox::new(async move { c.1[0] });
            slots.push(fut.ptr.cast::<u8>().as_ptr() as usize);
            assert_eq!(rt.block_on(fut), i);
        }
        assert_eq!(drops.load(Ordering::Relaxed), 3);
        assert!(slots.windows(2).all(|w| w[0] == w[1]), "the slot was not reused: {slots:?}");
        // a future dropped before it finished drops its captured state too
        let c = Counted(drops.clone(), [9; 100]);
        drop(RecycledBox::new(async move {
            std::future::pending::<()>().await;
            drop(c);
        }));
        assert_eq!(drops.load(Ordering::Relaxed), 4);
    }
}
