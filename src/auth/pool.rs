//! Password verification as a bounded resource: a fixed set of worker threads (one per
//! core unless configured) compute the hashes, fed by two bounded queues.
//!
//! * At most `workers` hash computations run at once, so memory-hard schemes (ARGON2ID
//!   takes ~19 MiB per check) cost at most `workers × m` however many clients try at
//!   once. Dedicated threads (not the shared blocking pool) also keep the allocator's
//!   per-thread arenas few.
//! * Two lanes: attempts from addresses with no recent failure (*clean*) are served before
//!   those from addresses that failed lately (*suspect*), so a real user's login gets
//!   through a flood of wrong passwords. Each lane holds at most `queue` waiting checks,
//!   and one suspect address at most [`Pool::per_ip_cap`] checks queued or running.
//! * A check that finds no room is not computed: the caller fails it like a wrong
//!   password (same answer, same padded time). Refusals are logged once per burst: one
//!   line when the first is refused, one with the count when the queues run dry.
//! * A worker that finds nothing to do frees its reusable hash memory before it sleeps
//!   (`idle_hook`), and the last one to go idle asks glibc to hand freed memory back to
//!   the kernel, so memory returns near its baseline after a burst.
//!
//! A check whose caller went away (client disconnected, deadline passed) is skipped.
#![allow(unsafe_code)] // system calls without a safe wrapper; each block has a SAFETY comment

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Which queue an attempt waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// No recent failure from this address: served first.
    Clean,
    /// The address failed recently: served when no clean check waits.
    Suspect,
}

/// Why a check was not computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// The lane's queue is full.
    QueueFull,
    /// This suspect address already has its share of the queue.
    AddressShare,
    /// The worker died while computing (a panic in a hash library).
    WorkerLost,
}

type Job = Box<dyn FnOnce() + Send>;

struct Queued {
    /// The suspect address holding a share while this job is queued or running.
    share: Option<IpAddr>,
    job: Job,
}

#[derive(Default)]
struct State {
    clean: VecDeque<Queued>,
    suspect: VecDeque<Queued>,
    /// Suspect jobs queued or running, per address.
    per_ip: HashMap<IpAddr, usize>,
    running: usize,
    /// Checks refused since the queues last ran dry.
    refused: u64,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    queue: usize,
    per_ip: usize,
    /// Run by a worker when it finds nothing more to do (frees its reusable memory).
    idle_hook: fn(),
}

/// The pool. Dropping it lets the workers finish what is queued and exit.
pub struct Pool {
    shared: Arc<Shared>,
    workers: usize,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    /// `workers` 0 = one per core; `queue` 0 = 16 per worker. `idle_hook` runs on a
    /// worker when the queues are empty after its job.
    pub fn new(workers: usize, queue: usize, idle_hook: fn()) -> Pool {
        let workers = if workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            workers
        };
        let queue = if queue == 0 { 16 * workers } else { queue };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            queue,
            per_ip: (queue / 8).max(2),
            idle_hook,
        });
        let mut started = 0;
        for i in 0..workers {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("loft-hash-{i}"))
                .spawn(move || worker(&s));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!("cannot start password hashing thread {i}: {e}"),
            }
        }
        Pool {
            shared,
            workers: started,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn queue_cap(&self) -> usize {
        self.shared.queue
    }

    /// Most checks one suspect address may have queued or running.
    pub fn per_ip_cap(&self) -> usize {
        self.shared.per_ip
    }

    /// Runs `f` on a worker when there is room, and waits for its result.
    pub async fn run<T, F>(&self, lane: Lane, ip: Option<IpAddr>, f: F) -> Result<T, Busy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.workers == 0 {
            // No thread could be started: nobody would ever run the job.
            return Err(Busy::WorkerLost);
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // Skipped when nobody waits for the answer any more.
            if !tx.is_closed() {
                let _ = tx.send(f());
            }
        });
        self.enqueue(lane, ip, job)?;
        rx.await.map_err(|_| Busy::WorkerLost)
    }

    fn enqueue(&self, lane: Lane, ip: Option<IpAddr>, job: Job) -> Result<(), Busy> {
        let mut st = lock(&self.shared.state);
        let share = if lane == Lane::Suspect { ip } else { None };
        let full = match lane {
            Lane::Clean => st.clean.len() >= self.shared.queue,
            Lane::Suspect => st.suspect.len() >= self.shared.queue,
        };
        let over_share =
            share.is_some_and(|a| st.per_ip.get(&a).copied().unwrap_or(0) >= self.shared.per_ip);
        if full || over_share {
            st.refused += 1;
            if st.refused == 1 {
                tracing::warn!(
                    workers = self.workers,
                    queue = self.shared.queue,
                    "password checks refused without hashing: {} (logged once per burst)",
                    if full {
                        "the hash queue is full"
                    } else {
                        "one address has too many checks waiting"
                    }
                );
            }
            return Err(if full {
                Busy::QueueFull
            } else {
                Busy::AddressShare
            });
        }
        if let Some(a) = share {
            *st.per_ip.entry(a).or_insert(0) += 1;
        }
        let q = Queued { share, job };
        match lane {
            Lane::Clean => st.clean.push_back(q),
            Lane::Suspect => st.suspect.push_back(q),
        }
        drop(st);
        self.shared.work.notify_one();
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_all();
    }
}

fn worker(s: &Shared) {
    // Whether this thread may hold reusable hash memory (it ran a job since it last
    // released it).
    let mut holding = false;
    loop {
        let Some(q) = next_job(s, &mut holding) else {
            return;
        };
        holding = true;
        // A panicking hash library must not take the worker with it; the waiting
        // caller sees its channel closed.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(q.job));
        let burst_over = {
            let mut st = lock(&s.state);
            st.running -= 1;
            if let Some(a) = q.share {
                if let Some(n) = st.per_ip.get_mut(&a) {
                    *n -= 1;
                    if *n == 0 {
                        st.per_ip.remove(&a);
                    }
                }
            }
            let idle = st.running == 0 && st.clean.is_empty() && st.suspect.is_empty();
            let refused = std::mem::take(&mut st.refused);
            if !idle {
                st.refused = refused;
            }
            idle.then_some(refused)
        };
        if let Some(refused) = burst_over.filter(|n| *n > 0) {
            tracing::warn!(
                "password check burst over: {refused} checks were refused without hashing"
            );
        }
    }
}

/// Waits for the next job (`None` when the pool is dropped). Before going to sleep the
/// worker frees its reusable memory, and the last one to go idle hands the freed memory
/// back to the kernel.
fn next_job(s: &Shared, holding: &mut bool) -> Option<Queued> {
    let mut st = lock(&s.state);
    loop {
        if let Some(q) = st.clean.pop_front().or_else(|| st.suspect.pop_front()) {
            st.running += 1;
            return Some(q);
        }
        if st.stopping {
            return None;
        }
        if *holding {
            *holding = false;
            drop(st);
            (s.idle_hook)();
            st = lock(&s.state);
            if st.running == 0 && st.clean.is_empty() && st.suspect.is_empty() {
                drop(st);
                release_free_memory();
                st = lock(&s.state);
            }
            continue;
        }
        st = s.work.wait(st).unwrap_or_else(|p| p.into_inner());
    }
}

/// Hands memory freed by the hash computations back to the kernel. glibc keeps freed
/// blocks in per-thread arenas (and raises its mmap threshold after freeing one large
/// block), so without this the RSS after a burst of ARGON2ID checks stays at its peak.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes no
    // pointer from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, n]))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_is_bounded_by_workers() {
        let pool = Arc::new(Pool::new(2, 100, || {}));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20u8 {
            let (pool, now, peak) = (pool.clone(), now.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(Lane::Clean, ip(i), move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    now.fetch_sub(1, Ordering::SeqCst);
                    i
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Ok(i as u8));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    /// Blocks both workers until released, so the queues can be observed.
    fn stall(
        pool: &Arc<Pool>,
    ) -> (
        std::sync::mpsc::Sender<()>,
        Vec<tokio::task::JoinHandle<()>>,
    ) {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let mut held = Vec::new();
        for _ in 0..pool.workers() {
            let (pool, rx) = (pool.clone(), rx.clone());
            held.push(tokio::spawn(async move {
                let _ = pool
                    .run(Lane::Clean, None, move || {
                        let _ = rx.lock().unwrap().recv();
                    })
                    .await;
            }));
        }
        (tx, held)
    }

    async fn settle(pool: &Pool, running: usize) {
        for _ in 0..200 {
            if lock(&pool.shared.state).running == running {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("workers never picked up the jobs");
    }

    /// Waits until the lanes hold this many queued checks (spawned submissions are
    /// enqueued when their task first runs: on a loaded machine, not within a fixed sleep).
    async fn queued(pool: &Pool, suspect: usize, clean: usize) {
        for _ in 0..400 {
            {
                let st = lock(&pool.shared.state);
                if st.suspect.len() == suspect && st.clean.len() == clean {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("submissions never reached the queues");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_and_address_share_refuse_and_clean_goes_first() {
        let pool = Arc::new(Pool::new(2, 4, || {}));
        assert_eq!(pool.per_ip_cap(), 2);
        let (release, held) = stall(&pool);
        settle(&pool, 2).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let submit = |lane: Lane, who: Option<IpAddr>, tag: &'static str| {
            let (pool, order) = (pool.clone(), order.clone());
            tokio::spawn(async move {
                pool.run(lane, who, move || order.lock().unwrap().push(tag))
                    .await
            })
        };
        let s1 = submit(Lane::Suspect, ip(1), "s1");
        let s2 = submit(Lane::Suspect, ip(1), "s2");
        queued(&pool, 2, 0).await;
        // A third from the same suspect address exceeds its share.
        assert_eq!(
            submit(Lane::Suspect, ip(1), "s3").await.unwrap(),
            Err(Busy::AddressShare)
        );
        let s4 = submit(Lane::Suspect, ip(2), "s4");
        let s5 = submit(Lane::Suspect, ip(3), "s5");
        queued(&pool, 4, 0).await;
        assert_eq!(
            submit(Lane::Suspect, ip(4), "s6").await.unwrap(),
            Err(Busy::QueueFull)
        );
        // The clean lane has its own room and is served first.
        let c1 = submit(Lane::Clean, ip(9), "c1");
        queued(&pool, 4, 1).await;
        for _ in 0..2 {
            release.send(()).unwrap();
        }
        for h in held {
            h.await.unwrap();
        }
        for t in [s1, s2, s4, s5, c1] {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.first(), Some(&"c1"), "{order:?}");
        settle(&pool, 0).await;
        let st = lock(&pool.shared.state);
        assert!(st.per_ip.is_empty() && st.refused == 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_check_is_reported_and_the_worker_survives() {
        let pool = Pool::new(1, 4, || {});
        let r: Result<(), Busy> = pool.run(Lane::Clean, None, || panic!("boom")).await;
        assert_eq!(r, Err(Busy::WorkerLost));
        assert_eq!(pool.run(Lane::Clean, None, || 7).await, Ok(7));
    }
}
