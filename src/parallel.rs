//! Splitting a kernel's outputs over CPU threads (ours, not a port: the GPU's grid of
//! thread blocks becomes a list of independent tasks).
//!
//! Every output element is computed entirely inside one task, in the original's
//! order, so results do not depend on how many threads run the tasks. Each calling
//! thread keeps its helper threads between calls: a kernel call wakes them (they spin
//! briefly first), it does not start threads.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

thread_local! {
    static OVERRIDE: Cell<usize> = const { Cell::new(0) };
}

/// The number of worker threads: `CONVNET_THREADS` if set, else the machine's.
pub fn threads() -> usize {
    let o = OVERRIDE.with(Cell::get);
    if o > 0 {
        return o;
    }
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("CONVNET_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Runs `f` with kernels on this thread using `n` worker threads (for tests that
/// compare thread counts inside one process).
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    /// Puts the previous count back, also when `f` panics.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(n)));
    f()
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
    POOL.with(|pool| pool.run(t - 1, n, &task));
}

thread_local! {
    /// The calling thread's helpers, started on first use and kept for its lifetime
    /// (a kernel call costs a wake-up, not a thread start).
    static POOL: Pool = Pool::default();
}

type TaskPtr = *const (dyn Fn(usize) + Sync + 'static);

/// One [`for_each_task`] call as the helpers see it. The pointers live on the caller's
/// stack; the caller does not return before every helper that took a seat has left.
#[derive(Clone, Copy)]
struct Job {
    task: TaskPtr,
    next: *const AtomicUsize,
    n: usize,
}

// SAFETY: the task is `Sync` and the counter atomic; see [`Job`] for their lifetime.
unsafe impl Send for Job {}

impl Job {
    /// Takes and runs tasks until none is left.
    ///
    /// # Safety
    /// The job's caller is still inside [`Pool::run`].
    unsafe fn work(self) {
        let (task, next) = (&*self.task, &*self.next);
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                break;
            }
            task(i);
        }
    }
}

#[derive(Default)]
struct State {
    /// Counts the jobs posted; a helper joins each new one at most once.
    generation: u64,
    job: Option<Job>,
    /// Helpers the current job still takes.
    seats: usize,
    /// Helpers inside the current job.
    running: usize,
    /// A helper's task panicked: the payload, re-raised on the calling thread.
    panic: Option<Box<dyn std::any::Any + Send>>,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// `State::generation`, read without the lock by helpers spinning for a new job.
    posted: AtomicU64,
    wake: Condvar,
    done: Condvar,
}

#[derive(Default)]
struct Pool {
    shared: Arc<Shared>,
    helpers: RefCell<Vec<JoinHandle<()>>>,
}

/// Spins a helper makes, looking for the next job, before it sleeps: kernels follow
/// each other within microseconds during a training step.
const SPINS: u32 = 1 << 14;

impl Pool {
    /// Runs `task` for `0..n` on the calling thread and `helpers` helpers.
    fn run(&self, helpers: usize, n: usize, task: &(dyn Fn(usize) + Sync)) {
        self.grow(helpers);
        let next = AtomicUsize::new(0);
        // SAFETY (lifetime): we wait below until no helper holds the job.
        let task: *const (dyn Fn(usize) + Sync + '_) = task;
        let job = Job {
            task: unsafe {
                std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), TaskPtr>(task)
            },
            next: &next,
            n,
        };
        let sh = &*self.shared;
        {
            let mut s = sh.state.lock().unwrap();
            s.generation += 1;
            s.job = Some(job);
            s.seats = helpers;
            sh.posted.store(s.generation, Ordering::Release);
        }
        sh.wake.notify_all();
        // SAFETY: the job's data lives until this function returns.
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { job.work() }));
        let mut s = sh.state.lock().unwrap();
        s.seats = 0;
        while s.running > 0 {
            s = sh.done.wait(s).unwrap();
        }
        s.job = None;
        let theirs = s.panic.take();
        drop(s);
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if let Some(p) = theirs {
            std::panic::resume_unwind(p);
        }
    }

    /// Starts helpers until there are at least `helpers`.
    fn grow(&self, helpers: usize) {
        let mut hs = self.helpers.borrow_mut();
        while hs.len() < helpers {
            let sh = Arc::clone(&self.shared);
            let seen = sh.state.lock().unwrap().generation;
            hs.push(std::thread::spawn(move || helper(&sh, seen)));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap().shutdown = true;
        self.shared.wake.notify_all();
        for h in self.helpers.get_mut().drain(..) {
            let _ = h.join();
        }
    }
}

/// A helper's life: wait for a job it has not seen, take a seat if one is left, work.
fn helper(sh: &Shared, mut seen: u64) {
    loop {
        for _ in 0..SPINS {
            if sh.posted.load(Ordering::Acquire) != seen {
                break;
            }
            std::hint::spin_loop();
        }
        let job = {
            let mut s = sh.state.lock().unwrap();
            loop {
                if s.shutdown {
                    return;
                }
                if s.generation != seen {
                    seen = s.generation;
                    if s.seats > 0 {
                        s.seats -= 1;
                        s.running += 1;
                        break s.job.expect("a job with seats is posted");
                    }
                }
                s = sh.wake.wait(s).unwrap();
            }
        };
        // SAFETY: we hold a seat, so the caller waits for us before it returns.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { job.work() }));
        let mut s = sh.state.lock().unwrap();
        if let Err(p) = r {
            s.panic.get_or_insert(p);
        }
        s.running -= 1;
        if s.running == 0 {
            sh.done.notify_one();
        }
    }
}

/// A pointer to an output buffer (of f32 unless said otherwise) that tasks running on
/// several threads write to. Tasks must write disjoint elements; the kernels ensure that
/// by construction (each output element belongs to exactly one task).
#[derive(Clone, Copy)]
pub struct SharedOut<T = f32> {
    ptr: *mut T,
    len: usize,
}

unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T: Copy> SharedOut<T> {
    /// Wraps `out` for the duration of one [`for_each_task`] call.
    pub fn new(out: &mut [T]) -> SharedOut<T> {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }
    /// Reads element `i`.
    #[inline]
    pub fn get(&self, i: usize) -> T {
        assert!(i < self.len);
        // SAFETY: in bounds; only the task that owns element `i` touches it.
        unsafe { *self.ptr.add(i) }
    }
    /// Writes element `i`.
    #[inline]
    pub fn set(&self, i: usize, v: T) {
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
    pub unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
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

    #[test]
    fn helpers_serve_many_calls_and_nested_calls() {
        let total = AtomicUsize::new(0);
        with_threads(3, || {
            for _ in 0..200 {
                for_each_task(5, |_| {
                    for_each_task(4, |j| {
                        total.fetch_add(j, Ordering::Relaxed);
                    })
                });
            }
        });
        assert_eq!(total.into_inner(), 200 * 5 * 6);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_goes_on() {
        for bad in [0, 63] {
            let r = std::panic::catch_unwind(|| {
                with_threads(2, || {
                    for_each_task(64, |i| {
                        assert_ne!(i, bad, "task {i} fails");
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    })
                })
            });
            assert!(r.is_err());
        }
        let n = AtomicUsize::new(0);
        with_threads(2, || {
            for_each_task(10, |_| {
                n.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(n.into_inner(), 10);
    }
}
