//! Login throttling: too many failed attempts for one account, or from one
//! address, within a window lock further attempts until the window has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<String, Window>>,
    pub max_per_account: u32,
    pub max_per_address: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    started: Instant,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            windows: Mutex::new(HashMap::new()),
            max_per_account: 5,
            max_per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl LoginThrottle {
    fn keys(account: &str, address: Option<&str>) -> (String, Option<String>) {
        (format!("account:{account}"), address.map(|a| format!("address:{a}")))
    }

    /// `Err(wait)` while the account or the address is locked.
    pub fn check(&self, account: &str, address: Option<&str>, now: Instant) -> Result<(), Duration> {
        let (account_key, address_key) = Self::keys(account, address);
        let windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut wait = Duration::ZERO;
        let mut locked = |key: &str, max: u32| {
            if let Some(w) = windows.get(key) {
                let age = now.saturating_duration_since(w.started);
                if w.failures >= max && age < self.window {
                    wait = wait.max(self.window - age);
                }
            }
        };
        locked(&account_key, self.max_per_account);
        if let Some(key) = &address_key {
            locked(key, self.max_per_address);
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    pub fn record_failure(&self, account: &str, address: Option<&str>, now: Instant) {
        let (account_key, address_key) = Self::keys(account, address);
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > 100_000 {
            let window = self.window;
            windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
        }
        for key in std::iter::once(account_key).chain(address_key) {
            let w = windows.entry(key).or_insert(Window { failures: 0, started: now });
            if now.saturating_duration_since(w.started) >= self.window {
                *w = Window { failures: 0, started: now };
            }
            w.failures += 1;
        }
    }

    /// A successful login forgets the account's failures (not the address's).
    pub fn record_success(&self, account: &str) {
        let (account_key, _) = Self::keys(account, None);
        self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&account_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_locked_after_max_failures_and_unlocked_after_the_window() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..t.max_per_account {
            assert!(t.check("a@x", Some("1.2.3.4"), start).is_ok());
            t.record_failure("a@x", Some("1.2.3.4"), start);
        }
        let wait = t.check("a@x", Some("1.2.3.4"), start).expect_err("locked");
        assert_eq!(wait, t.window);
        // Another account from another address is not affected.
        assert!(t.check("b@x", Some("5.6.7.8"), start).is_ok());
        // After the window the account may try again.
        assert!(t.check("a@x", Some("1.2.3.4"), start + t.window).is_ok());
    }

    #[test]
    fn one_address_guessing_many_accounts_is_locked() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..t.max_per_address {
            t.record_failure(&format!("user{i}@x"), Some("9.9.9.9"), now);
        }
        assert!(t.check("fresh@x", Some("9.9.9.9"), now).is_err());
        assert!(t.check("fresh@x", Some("1.1.1.1"), now).is_ok());
    }
}
