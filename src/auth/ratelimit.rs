//! Brute-force defence: token buckets per remote IP and per user name, consulted before a
//! password is checked. Knows addresses, names and clocks; nothing of passwords or
//! protocols.
//!
//! * Every failed attempt takes one token from the bucket of its remote IP and one from
//!   the bucket of the user name it tried (known or not: treating unknown names alike is
//!   what keeps the limiter from revealing which users exist). Buckets refill one token
//!   per `interval` up to `burst`.
//! * While a bucket is below half full, attempts are *slowed*: each one waits
//!   `max_delay × deficit` before the password is even looked at.
//! * An empty IP bucket *refuses* every attempt from that address, without a password
//!   check, until a token comes back.
//! * An empty user bucket refuses only addresses that already failed for that user
//!   recently; an address with no failures for the user is merely slowed. So an attacker
//!   who exhausts `alice`'s bucket from one place does not lock out Alice logging in from
//!   another, and a distributed attack gets about one guess per address per window.
//!
//! An IPv6 client counts by its /64 prefix (the usual size of one site's network, which
//! a single host can rotate through at will); IPv4 (and IPv4-mapped) addresses count
//! whole.
//!
//! Memory is bounded: at most [`MAX_ENTRIES`] buckets per kind; when full, buckets that
//! have refilled completely are dropped first, then the fullest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most buckets kept per kind (IP, user).
pub const MAX_ENTRIES: usize = 100_000;
/// Most failing addresses remembered per user bucket.
const MAX_FAILED_IPS: usize = 64;

/// Limiter settings (from `[auth]`).
pub use crate::config::RateLimitConfig as Limits;

/// What to do with an attempt, decided before the password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead, after waiting this long (zero when nothing is suspicious).
    Allow(Duration),
    /// Refuse without checking: too many recent failures.
    Refuse,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// Addresses that failed for this user while the bucket was draining (user buckets).
    failed_from: Vec<Option<IpAddr>>,
}

impl Bucket {
    fn new(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst),
            updated: now,
            failed_from: Vec::new(),
        }
    }

    fn refill(&mut self, burst: u32, interval: Duration, now: Instant) {
        let dt = now.saturating_duration_since(self.updated).as_secs_f64();
        let per = interval.as_secs_f64().max(1e-3);
        self.tokens = (self.tokens + dt / per).min(f64::from(burst));
        self.updated = now;
        if self.tokens >= f64::from(burst) {
            self.failed_from.clear();
        }
    }

    /// 0.0 (at least half full) .. 1.0 (empty).
    fn deficit(&self, burst: u32) -> f64 {
        let half = f64::from(burst) / 2.0;
        if half <= 0.0 {
            return 0.0;
        }
        ((half - self.tokens) / half).clamp(0.0, 1.0)
    }
}

/// The key an address is counted under: IPv6 by its /64 prefix, IPv4 as it is.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The limiter. Shared by every protocol through the authenticator.
pub struct RateLimiter {
    limits: Limits,
    ips: Mutex<HashMap<IpAddr, Bucket>>,
    users: Mutex<HashMap<String, Bucket>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes room in a full map: first buckets that are full again, then the fullest.
fn evict<K: Clone + std::hash::Hash + Eq>(
    map: &mut HashMap<K, Bucket>,
    burst: u32,
    interval: Duration,
    now: Instant,
) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    for b in map.values_mut() {
        b.refill(burst, interval, now);
    }
    map.retain(|_, b| b.tokens < f64::from(burst));
    if map.len() >= MAX_ENTRIES {
        let fullest = map
            .iter()
            .max_by(|a, b| a.1.tokens.total_cmp(&b.1.tokens))
            .map(|(k, _)| k.clone());
        if let Some(k) = fullest {
            map.remove(&k);
        }
    }
}

impl RateLimiter {
    pub fn new(limits: Limits) -> RateLimiter {
        RateLimiter {
            limits,
            ips: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decides about an attempt by `user` from `ip` (None: address unknown, e.g. an auth
    /// socket request without `rip=`).
    pub fn check(&self, user: &str, ip: Option<IpAddr>) -> Verdict {
        self.check_at(user, ip, Instant::now())
    }

    pub(crate) fn check_at(&self, user: &str, ip: Option<IpAddr>, now: Instant) -> Verdict {
        let ip = ip.map(address_key);
        let l = self.limits;
        let mut deficit: f64 = 0.0;
        if let Some(ip) = ip {
            let mut ips = lock(&self.ips);
            if let Some(b) = ips.get_mut(&ip) {
                b.refill(l.ip_burst, l.ip_interval, now);
                if b.tokens < 1.0 {
                    return Verdict::Refuse;
                }
                deficit = deficit.max(b.deficit(l.ip_burst));
            }
        }
        {
            let mut users = lock(&self.users);
            if let Some(b) = users.get_mut(user) {
                b.refill(l.user_burst, l.user_interval, now);
                let failed_here = b.failed_from.contains(&ip);
                if b.tokens < 1.0 && failed_here {
                    return Verdict::Refuse;
                }
                // An address that never failed for this user is slowed, not refused: it
                // may be the real user.
                deficit = deficit.max(b.deficit(l.user_burst));
            }
        }
        Verdict::Allow(l.max_delay.mul_f64(deficit))
    }

    /// True when `ip` failed lately (its bucket has not refilled yet): its password checks
    /// wait behind those of addresses with a clean record (see `auth::pool`).
    pub fn is_suspect(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip.map(address_key) else {
            return false;
        };
        let l = self.limits;
        let mut ips = lock(&self.ips);
        ips.get_mut(&ip).is_some_and(|b| {
            b.refill(l.ip_burst, l.ip_interval, Instant::now());
            b.tokens < f64::from(l.ip_burst)
        })
    }

    /// Records a failed attempt (wrong password or unknown user, alike).
    pub fn failed(&self, user: &str, ip: Option<IpAddr>) {
        self.failed_at(user, ip, Instant::now())
    }

    /// Records an attempt that was not checked because the hash queue was full: it costs
    /// its address a token (so the address's next attempts wait in the suspect lane)
    /// but, unverified, is not held against the user name.
    pub fn unchecked(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip.map(address_key) {
            self.charge_ip(ip, Instant::now());
        }
    }

    fn charge_ip(&self, ip: IpAddr, now: Instant) {
        let l = self.limits;
        let mut ips = lock(&self.ips);
        if !ips.contains_key(&ip) {
            evict(&mut ips, l.ip_burst, l.ip_interval, now);
        }
        let b = ips
            .entry(ip)
            .or_insert_with(|| Bucket::new(l.ip_burst, now));
        b.refill(l.ip_burst, l.ip_interval, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    pub(crate) fn failed_at(&self, user: &str, ip: Option<IpAddr>, now: Instant) {
        let ip = ip.map(address_key);
        let l = self.limits;
        if let Some(ip) = ip {
            self.charge_ip(ip, now);
        }
        let mut users = lock(&self.users);
        if !users.contains_key(user) {
            evict(&mut users, l.user_burst, l.user_interval, now);
        }
        let b = users
            .entry(user.to_string())
            .or_insert_with(|| Bucket::new(l.user_burst, now));
        b.refill(l.user_burst, l.user_interval, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        if !b.failed_from.contains(&ip) {
            if b.failed_from.len() >= MAX_FAILED_IPS {
                b.failed_from.remove(0);
            }
            b.failed_from.push(ip);
        }
    }

    /// Records a successful login: the address is no longer suspect for this user.
    /// Tokens are not given back (a success does not excuse earlier guesses).
    pub fn succeeded(&self, user: &str, ip: Option<IpAddr>) {
        let ip = ip.map(address_key);
        let mut users = lock(&self.users);
        if let Some(b) = users.get_mut(user) {
            b.failed_from.retain(|x| *x != ip);
        }
    }

    /// Number of buckets held (IP, user), for tests and statistics.
    pub fn sizes(&self) -> (usize, usize) {
        (lock(&self.ips).len(), lock(&self.users).len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, n]))
    }

    fn limiter() -> RateLimiter {
        RateLimiter::new(Limits {
            ip_burst: 6,
            ip_interval: Duration::from_secs(10),
            user_burst: 4,
            user_interval: Duration::from_secs(10),
            max_delay: Duration::from_secs(2),
        })
    }

    #[test]
    fn fresh_attempts_are_free() {
        let r = limiter();
        assert_eq!(r.check("alice", ip(1)), Verdict::Allow(Duration::ZERO));
        assert_eq!(r.check("alice", None), Verdict::Allow(Duration::ZERO));
    }

    #[test]
    fn an_address_is_slowed_then_refused_then_forgiven() {
        let r = limiter();
        let t0 = Instant::now();
        let mut delays = Vec::new();
        let mut refused_after = None;
        for i in 0..10 {
            match r.check_at(&format!("user{i}"), ip(1), t0) {
                Verdict::Allow(d) => delays.push(d),
                Verdict::Refuse => {
                    refused_after = Some(i);
                    break;
                }
            }
            r.failed_at(&format!("user{i}"), ip(1), t0);
        }
        assert_eq!(refused_after, Some(6), "burst of 6, then refused");
        assert_eq!(delays[0], Duration::ZERO);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert!(*delays.last().unwrap() > Duration::ZERO, "{delays:?}");
        // Another address is untouched.
        assert!(matches!(r.check_at("user0", ip(2), t0), Verdict::Allow(_)));
        // One interval later a token is back.
        let later = t0 + Duration::from_secs(11);
        assert!(matches!(r.check_at("x", ip(1), later), Verdict::Allow(_)));
    }

    #[test]
    fn ipv6_counts_by_its_64_prefix() {
        let r = limiter();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..6 {
            r.failed_at(&format!("u{i}"), Some(if i % 2 == 0 { a } else { b }), t0);
        }
        assert_eq!(r.check_at("x", Some(b), t0), Verdict::Refuse);
        assert!(matches!(
            r.check_at("x", Some(other), t0),
            Verdict::Allow(_)
        ));
        r.failed("y", ip(1));
        assert!(r.is_suspect(Some(mapped)), "IPv4-mapped counts as IPv4");
    }

    #[test]
    fn an_address_is_suspect_after_a_failure_until_refilled() {
        let r = limiter();
        assert!(!r.is_suspect(ip(1)));
        assert!(!r.is_suspect(None));
        r.failed("alice", ip(1));
        assert!(r.is_suspect(ip(1)));
        assert!(!r.is_suspect(ip(2)));
        // An attempt refused unchecked marks the address, not the user name.
        r.unchecked(ip(3));
        assert!(r.is_suspect(ip(3)));
        assert_eq!(r.sizes(), (2, 1));
    }

    #[test]
    fn a_user_is_not_locked_out_from_a_new_address() {
        let r = limiter();
        let t0 = Instant::now();
        for _ in 0..4 {
            r.failed_at("alice", ip(1), t0);
        }
        // The attacking address is refused for alice …
        assert_eq!(r.check_at("alice", ip(1), t0), Verdict::Refuse);
        // … while alice from elsewhere is slowed, not refused.
        match r.check_at("alice", ip(9), t0) {
            Verdict::Allow(d) => assert!(d > Duration::ZERO && d <= Duration::from_secs(2)),
            v => panic!("{v:?}"),
        }
        // A second attacking address gets one guess, then is refused too.
        r.failed_at("alice", ip(2), t0);
        assert_eq!(r.check_at("alice", ip(2), t0), Verdict::Refuse);
        // Success clears the mark of that address.
        r.succeeded("alice", ip(9));
        assert!(matches!(r.check_at("alice", ip(9), t0), Verdict::Allow(_)));
    }

    #[test]
    fn unknown_and_known_users_are_counted_alike() {
        let r = limiter();
        let t0 = Instant::now();
        for _ in 0..4 {
            r.failed_at("nobody", ip(1), t0);
            r.failed_at("alice", ip(2), t0);
        }
        assert_eq!(r.check_at("nobody", ip(1), t0), Verdict::Refuse);
        assert_eq!(r.check_at("alice", ip(2), t0), Verdict::Refuse);
    }

    #[test]
    fn memory_stays_bounded() {
        let r = RateLimiter::new(Limits::default());
        let t0 = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 50) {
            let a = IpAddr::from(i.to_be_bytes());
            r.failed_at("u", Some(a), t0);
        }
        let (ips, users) = r.sizes();
        assert!(ips <= MAX_ENTRIES, "{ips}");
        assert_eq!(users, 1);
    }
}
