//! Connection slots: `max_connections` in all, of which at most `max_unauthenticated` are
//! connections that have not logged in yet, at most `max_connections_per_ip` of those
//! from one address. The rest stay for logged-in sessions and for new logins: idle
//! unauthenticated connections cannot lock real users out.
//!
//! When a newcomer finds the unauthenticated share (or every slot) taken, the oldest
//! unauthenticated connection that is not in the middle of a command is told to go
//! (it says BYE) and its slot passes to the newcomer at once. Only when none can be
//! dropped is the newcomer refused. An address at its pre-login cap is refused.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken and no unauthenticated connection could be dropped.
    Full,
    /// This address already has `max_connections_per_ip` connections not logged in.
    PerIp,
}

/// One connection that has not logged in yet.
struct Pending {
    ip: IpAddr,
    /// Inside a command (an authentication may be running): not dropped for a newcomer.
    busy: AtomicBool,
    /// Dropped for a newcomer, which took over its slot.
    kicked: AtomicBool,
    kick: Notify,
}

struct State {
    total: usize,
    /// Unauthenticated connections, oldest first.
    unauth: BTreeMap<u64, Arc<Pending>>,
    per_ip: HashMap<IpAddr, usize>,
    next: u64,
    /// Refusals not yet logged, and when the last log line about them was written.
    refused: u64,
    refusal_logged: Option<Instant>,
}

/// Refusals are logged at most this often (one line with the count, not one per client).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The server's slot table.
pub struct Slots {
    max_total: usize,
    max_unauth: usize,
    max_per_ip: usize,
    state: Mutex<State>,
    /// The number of counted connections, for shutdown to wait on.
    count: watch::Sender<usize>,
}

/// Held by a connection for its whole life.
pub struct ConnSlot {
    slots: Arc<Slots>,
    /// While not logged in: the entry in the unauthenticated table and its key.
    pending: Option<(u64, Arc<Pending>)>,
}

impl Slots {
    pub fn new(max_total: usize, max_unauth: usize, max_per_ip: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max_total: max_total.max(1),
            max_unauth: max_unauth.clamp(1, max_total.max(1)),
            max_per_ip: max_per_ip.max(1),
            state: Mutex::new(State {
                total: 0,
                unauth: BTreeMap::new(),
                per_ip: HashMap::new(),
                next: 0,
                refused: 0,
                refusal_logged: None,
            }),
            count: watch::channel(0).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `ip`, dropping the oldest idle unauthenticated
    /// connection if that is what it takes.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Refusal> {
        let mut st = self.lock();
        if st.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        if st.unauth.len() >= self.max_unauth || st.total >= self.max_total {
            // The newcomer takes the victim's slot: `total` does not change.
            let victim = st
                .unauth
                .iter()
                .find(|(_, p)| !p.busy.load(Ordering::SeqCst))
                .map(|(k, _)| *k);
            let Some(key) = victim else {
                return Err(Refusal::Full);
            };
            if let Some(p) = st.unauth.remove(&key) {
                dec(&mut st.per_ip, p.ip);
                p.kicked.store(true, Ordering::SeqCst);
                p.kick.notify_one();
            }
        } else {
            st.total += 1;
            self.count.send_replace(st.total);
        }
        let key = st.next;
        st.next += 1;
        let p = Arc::new(Pending {
            ip,
            busy: AtomicBool::new(false),
            kicked: AtomicBool::new(false),
            kick: Notify::new(),
        });
        st.unauth.insert(key, Arc::clone(&p));
        *st.per_ip.entry(ip).or_insert(0) += 1;
        Ok(ConnSlot {
            slots: Arc::clone(self),
            pending: Some((key, p)),
        })
    }

    /// Counts a refused connection. Returns how many to report when a log line is due
    /// (the first refusal, then at most once per [`REFUSAL_LOG_EVERY`]).
    pub fn note_refusal(&self) -> Option<u64> {
        let mut st = self.lock();
        st.refused += 1;
        let due = st
            .refusal_logged
            .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY);
        if !due {
            return None;
        }
        st.refusal_logged = Some(Instant::now());
        Some(std::mem::take(&mut st.refused))
    }

    /// (all connections, unauthenticated ones), for tests and logs.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.total, st.unauth.len())
    }

    /// Waits until every counted connection is gone.
    pub async fn drained(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

fn dec(map: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = map.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            map.remove(&ip);
        }
    }
}

impl ConnSlot {
    /// Resolves when this connection was dropped for a newcomer; never after login.
    pub async fn kicked(&self) {
        match &self.pending {
            Some((_, p)) => p.kick.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Marks the start of a command. False when the connection was already dropped for a
    /// newcomer: it must say BYE instead.
    pub fn begin_command(&self) -> bool {
        let Some((_, p)) = &self.pending else {
            return true;
        };
        // Under the table's lock, so `admit` never picks a connection that is starting.
        let _st = self.slots.lock();
        if p.kicked.load(Ordering::SeqCst) {
            return false;
        }
        p.busy.store(true, Ordering::SeqCst);
        true
    }

    /// Was the connection dropped for a newcomer? (Never after login.)
    pub fn is_kicked(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|(_, p)| p.kicked.load(Ordering::SeqCst))
    }

    pub fn end_command(&self) {
        if let Some((_, p)) = &self.pending {
            p.busy.store(false, Ordering::SeqCst);
        }
    }

    /// The connection logged in: it leaves the unauthenticated share (and its address's
    /// pre-login count) and keeps its slot.
    pub fn logged_in(&mut self) {
        if let Some((key, p)) = self.pending.take() {
            let mut st = self.slots.lock();
            if st.unauth.remove(&key).is_some() {
                dec(&mut st.per_ip, p.ip);
            }
        }
    }
}

/// Resolves when the connection was dropped for a newcomer; never without a slot (a
/// session made outside the accept loop) or after login.
pub async fn kicked(slot: Option<&ConnSlot>) {
    match slot {
        Some(s) => s.kicked().await,
        None => std::future::pending().await,
    }
}

/// Runs `wait` (a wait for the client inside a command, such as a SASL continuation) with
/// the connection counted as idle: a client stalling there may be dropped for a newcomer
/// like one stalling between commands. `None` when that happened.
pub async fn wait_idle<T>(
    slot: Option<&ConnSlot>,
    wait: impl std::future::Future<Output = T>,
) -> Option<T> {
    let Some(slot) = slot.filter(|s| s.pending.is_some()) else {
        return Some(wait.await);
    };
    slot.end_command();
    let r = tokio::select! {
        r = wait => Some(r),
        _ = slot.kicked() => None,
    };
    // Busy again, unless dropped in the meantime.
    r.filter(|_| slot.begin_command())
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        if let Some((key, p)) = self.pending.take() {
            if p.kicked.load(Ordering::SeqCst) {
                return; // its slot belongs to the newcomer now
            }
            if st.unauth.remove(&key).is_some() {
                dec(&mut st.per_ip, p.ip);
            }
        }
        st.total -= 1;
        self.slots.count.send_replace(st.total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn the_oldest_idle_unauthenticated_connection_makes_room() {
        let s = Slots::new(10, 3, 2);
        let a = s.admit(ip(1)).unwrap();
        let b = s.admit(ip(2)).unwrap();
        let c = s.admit(ip(3)).unwrap();
        assert!(a.begin_command(), "a is busy: not a victim");
        let d = s.admit(ip(4)).unwrap();
        assert_eq!(s.counts(), (3, 3));
        assert!(!b.begin_command(), "b, the oldest idle one, was dropped");
        a.end_command();
        drop(b);
        assert_eq!(s.counts(), (3, 3), "b's slot went to d");
        drop((a, c, d));
        assert_eq!(s.counts(), (0, 0));
    }

    #[test]
    fn logged_in_sessions_keep_their_slots_and_per_ip_counts_only_before_login() {
        let s = Slots::new(4, 2, 1);
        let mut a = s.admit(ip(1)).unwrap();
        assert_eq!(s.admit(ip(1)).err(), Some(Refusal::PerIp));
        a.logged_in();
        let mut b = s.admit(ip(1)).unwrap();
        b.logged_in();
        let _c = s.admit(ip(2)).unwrap();
        let _d = s.admit(ip(3)).unwrap();
        assert_eq!(s.counts(), (4, 2));
        // All four slots are taken: a newcomer replaces an idle unauthenticated one,
        // never a logged-in session.
        let _e = s.admit(ip(4)).unwrap();
        assert_eq!(s.counts(), (4, 2));
        drop((a, b));
        assert_eq!(s.counts(), (2, 2));
    }

    #[test]
    fn busy_connections_are_not_dropped() {
        let s = Slots::new(2, 2, 5);
        let a = s.admit(ip(1)).unwrap();
        let b = s.admit(ip(1)).unwrap();
        assert!(a.begin_command() && b.begin_command());
        assert_eq!(s.admit(ip(2)).err(), Some(Refusal::Full));
    }
}
