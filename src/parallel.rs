//! Splitting a kernel's outputs over CPU threads (ours, not a port: the GPU's grid of
//! thread blocks becomes a list of independent tasks).
//!
//! Every output element is computed entirely inside one task, in the original's
//! order, so results do not depend on how many threads run the tasks.

use std::cell::Cell;

thread_local! {
    static OVERRIDE: Cell<usize> = const { Cell::new(0) };
}

/// The number of worker threads: `CONVNET_THREADS` if set, else the machine's.
pub fn threads() -> usize {
    let o = OVERRIDE.with(Cell::get);
    if o > 0 {
        return o;
    }
    std::env::var("CONVNET_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `f` with kernels on this thread using `n` worker threads (for tests that
/// compare thread counts inside one process).
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let old = OVERRIDE.with(|o| o.replace(n));
    let r = f();
    OVERRIDE.with(|o| o.set(old));
    r
}

/// Runs `task(i)` for every `i` in `0..n` on [`threads`] threads (the caller's
/// included), each taking the next task as it finishes one.
pub fn for_each_task(n: usize, task: impl Fn(usize) + Sync) {
    let t = threads().min(n);
    if t <= 1 {
        (0..n).for_each(task);
        return;
    }
    // Threads take the next task from a shared counter (tasks differ in cost, e.g. at
    // image borders); the calling thread is one of them. Each task writes its own
    // outputs, so which thread runs it does not change any result.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if i >= n {
            break;
        }
        task(i);
    };
    std::thread::scope(|s| {
        for _ in 1..t {
            s.spawn(work);
        }
        work();
    });
}

/// A pointer to an output buffer that tasks running on several threads write to.
/// Tasks must write disjoint elements; the kernels ensure that by construction (each
/// output element belongs to exactly one task).
#[derive(Clone, Copy)]
pub struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Wraps `out` for the duration of one [`for_each_task`] call.
    pub fn new(out: &mut [f32]) -> SharedOut {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }
    /// Reads element `i`.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        assert!(i < self.len);
        // SAFETY: in bounds; only the task that owns element `i` touches it.
        unsafe { *self.ptr.add(i) }
    }
    /// Writes element `i`.
    #[inline]
    pub fn set(&self, i: usize, v: f32) {
        assert!(i < self.len);
        // SAFETY: in bounds; only the task that owns element `i` touches it.
        unsafe { *self.ptr.add(i) = v }
    }
    /// The `len` elements from `start`, for a task that owns all of them.
    ///
    /// # Safety
    /// No other task may access `start..start+len` while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_whatever_the_thread_count() {
        for t in [1, 2, 3, 8] {
            let mut out = vec![0.0f32; 37];
            let o = SharedOut::new(&mut out);
            with_threads(t, || for_each_task(37, |i| o.set(i, o.get(i) + i as f32)));
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32));
        }
    }
}
