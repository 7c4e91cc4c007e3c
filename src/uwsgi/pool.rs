//! A pool of uWSGI backends: which server takes the next request (nginx's smooth weighted
//! round robin, or least connections), per-server concurrency caps (`max_conns`), and
//! passive health: `max_fails` failures within `fail_timeout` mark a server down for
//! `fail_timeout`, except in a pool of one, which nginx never marks down.
//!
//! uWSGI closes every connection after one response, so nothing here holds connections:
//! a [`Slot`] is the right to have one request in flight to one server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::config::{BackendAddr, Balance, UpstreamConfig};

struct Backend {
    addr: BackendAddr,
    weight: i64,
    max_conns: Option<u32>,
    active: AtomicU32,
    health: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    fails: u32,
    window_start: Option<Instant>,
    down_until: Option<Instant>,
}

/// A configured pool and its live state.
pub struct Pool {
    config: UpstreamConfig,
    backends: Vec<Backend>,
    /// Smooth weighted round robin's current weights.
    current: Mutex<Vec<i64>>,
    /// Called when a slot is released, so waiters for a free slot can look again.
    on_release: Box<dyn Fn() + Send + Sync>,
}

/// The outcome of asking for a backend.
pub enum Pick<'p> {
    /// A server with a free slot, reserved until the slot is dropped.
    Got(Slot<'p>),
    /// Every server still eligible is at `max_conns`: wait for a slot.
    AllBusy,
    /// No server is left: all were tried for this request or are marked down.
    NoneLeft,
}

/// One request's reservation on one server.
pub struct Slot<'p> {
    pool: &'p Pool,
    index: usize,
}

impl Slot<'_> {
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn addr(&self) -> &BackendAddr {
        &self.pool.backends[self.index].addr
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.pool.backends[self.index].active.fetch_sub(1, Ordering::AcqRel);
        (self.pool.on_release)();
    }
}

impl Pool {
    /// A pool for `config`; `on_release` runs whenever a slot is freed.
    pub fn new(config: UpstreamConfig, on_release: Box<dyn Fn() + Send + Sync>) -> Pool {
        let backends: Vec<Backend> = config
            .servers
            .iter()
            .map(|s| Backend {
                addr: s.addr.clone(),
                weight: i64::from(s.weight),
                max_conns: s.max_conns,
                active: AtomicU32::new(0),
                health: Mutex::new(Health::default()),
            })
            .collect();
        Pool { current: Mutex::new(vec![0; backends.len()]), backends, config, on_release }
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// How many servers one request may try (`next_upstream_tries`, bounded by the pool).
    pub fn tries(&self) -> usize {
        let n = self.backends.len();
        match self.config.next_upstream_tries {
            0 => n,
            t => (t as usize).min(n),
        }
    }

    fn is_down(&self, i: usize, now: Instant) -> bool {
        if self.backends.len() == 1 {
            return false;
        }
        let h = self.backends[i].health.lock().unwrap_or_else(|e| e.into_inner());
        h.down_until.is_some_and(|t| t > now)
    }

    /// Picks a server not in `tried`, not down, with a free slot, and reserves the slot.
    pub fn acquire(&self, now: Instant, tried: &[usize]) -> Pick<'_> {
        if self.backends.len() == 1 {
            // a pool of one (never marked down): no candidates to weigh
            if !tried.is_empty() {
                return Pick::NoneLeft;
            }
            return self.reserve(0);
        }
        let alive: Vec<usize> =
            (0..self.backends.len()).filter(|i| !tried.contains(i) && !self.is_down(*i, now)).collect();
        if alive.is_empty() {
            return Pick::NoneLeft;
        }
        let mut free: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&i| {
                let b = &self.backends[i];
                b.max_conns.is_none_or(|m| b.active.load(Ordering::Acquire) < m)
            })
            .collect();
        if free.is_empty() {
            return Pick::AllBusy;
        }
        if self.config.balance == Balance::LeastConn {
            // fewest in flight per unit of weight; ties share by weighted round robin
            let load = |i: usize| {
                let b = &self.backends[i];
                (i64::from(b.active.load(Ordering::Acquire)), b.weight)
            };
            let best = free.iter().map(|&i| load(i)).min_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)));
            if let Some((a, w)) = best {
                free.retain(|&i| {
                    let (ai, wi) = load(i);
                    ai * w == a * wi
                });
            }
        }
        let index = self.weighted_round_robin(&free);
        self.reserve(index)
    }

    /// Takes a slot of server `index`, unless it is at `max_conns`.
    fn reserve(&self, index: usize) -> Pick<'_> {
        let b = &self.backends[index];
        let prev = b.active.fetch_add(1, Ordering::AcqRel);
        if b.max_conns.is_some_and(|m| prev >= m) {
            // another request took the last slot between the check and now
            b.active.fetch_sub(1, Ordering::AcqRel);
            return Pick::AllBusy;
        }
        Pick::Got(Slot { pool: self, index })
    }

    /// nginx's smooth weighted round robin over `candidates` (not empty).
    fn weighted_round_robin(&self, candidates: &[usize]) -> usize {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0;
        let mut best = candidates[0];
        for &i in candidates {
            current[i] += self.backends[i].weight;
            total += self.backends[i].weight;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        best
    }

    /// Counts a failure against server `i` (connect error, timeout, broken response).
    pub fn record_failure(&self, i: usize, now: Instant) {
        let max_fails = self.config.max_fails;
        if max_fails == 0 || self.backends.len() == 1 {
            return;
        }
        let window = self.config.fail_timeout;
        let mut h = self.backends[i].health.lock().unwrap_or_else(|e| e.into_inner());
        if h.window_start.is_none_or(|s| now.duration_since(s) > window) {
            h.fails = 0;
            h.window_start = Some(now);
        }
        h.fails += 1;
        if h.fails >= max_fails {
            h.down_until = Some(crate::clock::deadline(now, window));
        }
    }

    /// A request to server `i` got a response: its failures are forgotten.
    pub fn record_success(&self, i: usize) {
        let mut h = self.backends[i].health.lock().unwrap_or_else(|e| e.into_inner());
        *h = Health::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uwsgi::config::ServerConfig;
    use std::time::Duration;

    fn pool(servers: &[(&str, u32, Option<u32>)], balance: Balance) -> Pool {
        let mut c = UpstreamConfig::implicit(BackendAddr::Unix("/x".into()));
        c.servers = servers
            .iter()
            .map(|(p, w, m)| ServerConfig { addr: BackendAddr::Unix(p.into()), weight: *w, max_conns: *m })
            .collect();
        c.balance = balance;
        Pool::new(c, Box::new(|| {}))
    }

    fn take(p: &Pool, now: Instant) -> usize {
        match p.acquire(now, &[]) {
            Pick::Got(s) => s.index(),
            _ => panic!("no server"),
        }
    }

    #[test]
    fn smooth_weighted_round_robin_as_nginx() {
        // nginx's documented sequence for weights 5, 1, 1: a a b a c a a
        let p = pool(&[("/a", 5, None), ("/b", 1, None), ("/c", 1, None)], Balance::RoundRobin);
        let now = Instant::now();
        let seq: Vec<usize> = (0..7).map(|_| take(&p, now)).collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn max_conns_caps_and_releases() {
        let p = pool(&[("/a", 1, Some(1)), ("/b", 1, Some(1))], Balance::RoundRobin);
        let now = Instant::now();
        let first = match p.acquire(now, &[]) {
            Pick::Got(s) => s,
            _ => panic!(),
        };
        let second = match p.acquire(now, &[]) {
            Pick::Got(s) => s,
            _ => panic!(),
        };
        assert_ne!(first.index(), second.index());
        assert!(matches!(p.acquire(now, &[]), Pick::AllBusy));
        drop(first);
        assert!(matches!(p.acquire(now, &[]), Pick::Got(_)));
    }

    #[test]
    fn least_conn_prefers_the_idle_server() {
        let p = pool(&[("/a", 1, None), ("/b", 1, None)], Balance::LeastConn);
        let now = Instant::now();
        let busy = match p.acquire(now, &[]) {
            Pick::Got(s) => s,
            _ => panic!(),
        };
        for _ in 0..3 {
            let s = match p.acquire(now, &[]) {
                Pick::Got(s) => s,
                _ => panic!(),
            };
            assert_ne!(s.index(), busy.index());
        }
    }

    #[test]
    fn passive_health_marks_down_for_fail_timeout() {
        let mut p = pool(&[("/a", 1, None), ("/b", 1, None)], Balance::RoundRobin);
        p.config.max_fails = 2;
        let t0 = Instant::now();
        p.record_failure(0, t0);
        assert!(!p.is_down(0, t0));
        p.record_failure(0, t0 + Duration::from_secs(1));
        assert!(p.is_down(0, t0 + Duration::from_secs(2)));
        for _ in 0..4 {
            assert_eq!(take(&p, t0 + Duration::from_secs(2)), 1);
        }
        // back after fail_timeout (10 s)
        assert!(!p.is_down(0, t0 + Duration::from_secs(12)));
        // failures outside the window do not add up
        p.record_success(0);
        p.record_failure(0, t0 + Duration::from_secs(20));
        p.record_failure(0, t0 + Duration::from_secs(40));
        assert!(!p.is_down(0, t0 + Duration::from_secs(40)));
    }

    #[test]
    fn a_pool_of_one_is_never_down() {
        let p = pool(&[("/a", 1, None)], Balance::RoundRobin);
        let now = Instant::now();
        for _ in 0..5 {
            p.record_failure(0, now);
        }
        assert_eq!(take(&p, now), 0);
    }

    #[test]
    fn tried_and_down_servers_leave_none() {
        let p = pool(&[("/a", 1, None), ("/b", 1, None)], Balance::RoundRobin);
        let now = Instant::now();
        assert!(matches!(p.acquire(now, &[0, 1]), Pick::NoneLeft));
        p.record_failure(0, now);
        p.record_failure(1, now);
        assert!(matches!(p.acquire(now, &[]), Pick::NoneLeft));
        assert_eq!(p.tries(), 2);
    }
}
