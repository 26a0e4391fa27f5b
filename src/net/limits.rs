//! `max_connections_per_user_ip`: logged-in sessions counted per (user, remote address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts sessions per (user, remote IP) to enforce `max_connections_per_user_ip`.
pub struct UserIpLimits {
    max: usize,
    counts: Mutex<HashMap<(String, IpAddr), usize>>,
}

/// Held by a logged-in session; releases its slot when dropped.
pub struct UserIpGuard {
    limits: Arc<UserIpLimits>,
    key: (String, IpAddr),
}

impl UserIpLimits {
    pub fn new(max: usize) -> Arc<UserIpLimits> {
        Arc::new(UserIpLimits {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more session of `user` from `ip`, or `None` at the limit.
    pub fn acquire(self: &Arc<Self>, user: &str, ip: IpAddr) -> Option<UserIpGuard> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = (user.to_string(), ip);
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(UserIpGuard {
            limits: Arc::clone(self),
            key,
        })
    }
}

impl Drop for UserIpGuard {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}
