//! Process-wide POP3 state shared by all sessions: which maildrops are locked by a POP3
//! session (RFC 1939 §8: "the POP3 server acquires an exclusive-access lock on the
//! maildrop"; [IN-USE] of RFC 2449 §8.1.1 for the second session), and when each user
//! last logged in (for [LOGIN-DELAY], RFC 2449 §6.8). In-process only: IMAP sessions and
//! other programs are not locked out — they see POP3's expunges after QUIT.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Registry {
    locked: Mutex<HashSet<String>>,
    last_login: Mutex<HashMap<String, Instant>>,
}

/// Held by the session that owns a maildrop; unlocks when dropped (QUIT, disconnect,
/// panic unwinding alike).
pub struct MaildropLock {
    registry: Arc<Registry>,
    user: String,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// Locks `user`'s maildrop, or `None` when another POP3 session holds it.
    pub fn lock(self: &Arc<Self>, user: &str) -> Option<MaildropLock> {
        let mut set = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(user.to_string()) {
            return None;
        }
        Some(MaildropLock {
            registry: Arc::clone(self),
            user: user.to_string(),
        })
    }

    pub fn is_locked(&self, user: &str) -> bool {
        let set = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(user)
    }

    /// With a login delay configured: `Err(remaining)` when `user` logged in less than
    /// `delay` ago; otherwise records now as the user's last login.
    pub fn check_login_delay(&self, user: &str, delay: Duration) -> Result<(), Duration> {
        if delay.is_zero() {
            return Ok(());
        }
        let mut map = self.last_login.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(prev) = map.get(user) {
            let since = now.saturating_duration_since(*prev);
            if since < delay {
                return Err(delay - since);
            }
        }
        // Forget entries that no longer matter, so the map stays small.
        if map.len() > 10_000 {
            map.retain(|_, t| now.saturating_duration_since(*t) < delay);
        }
        map.insert(user.to_string(), now);
        Ok(())
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        let mut set = self
            .registry
            .locked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        set.remove(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lock_per_user() {
        let r = Registry::new();
        let a = r.lock("alice").expect("first lock");
        assert!(r.lock("alice").is_none());
        assert!(r.is_locked("alice"));
        let _b = r.lock("bob").expect("other user");
        drop(a);
        assert!(!r.is_locked("alice"));
        assert!(r.lock("alice").is_some());
    }

    #[test]
    fn login_delay() {
        let r = Registry::new();
        assert!(r.check_login_delay("a", Duration::ZERO).is_ok());
        assert!(r.check_login_delay("a", Duration::ZERO).is_ok());
        assert!(r.check_login_delay("a", Duration::from_secs(60)).is_ok());
        let left = r
            .check_login_delay("a", Duration::from_secs(60))
            .unwrap_err();
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
        assert!(r.check_login_delay("b", Duration::from_secs(60)).is_ok());
    }
}
