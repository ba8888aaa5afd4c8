//! Webhook delivery: sends each pending `call_webhook` action with its
//! rendered method, URL, headers and body and an `Idempotency-Key` (the
//! action key, the same on every attempt); retries network errors, 429 and 5xx
//! with exponential backoff and jitter (honouring Retry-After) up to a
//! maximum, then marks the action failed with the reason. Slow receivers
//! never hold up runs: delivery is its own task, with bounded concurrency.

use anyhow::Context as _;
use app::engine::clock::Clock;
use app::service::Ctx;
use app::store::runs::{self, PendingAction};
use app::workflow::eval::Action;
use app::workflow::status::ActionStatus;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Attempts before an action is marked failed.
    pub max_attempts: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The first retry's delay; each later one doubles it (plus jitter), up to an hour.
    pub base_delay: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_attempts: 8,
            timeout: Duration::from_secs(10),
            base_delay: Duration::from_secs(2),
            concurrency: 32,
        }
    }
}

pub struct Delivery {
    ctx: Ctx,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    /// The earliest retry recorded since the run loop last looked.
    retry_at: AtomicI64,
}

/// What one attempt came to.
#[derive(Debug)]
enum Outcome {
    Delivered(u16),
    /// Worth another try, after at least this long (from Retry-After).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Failed(String),
}

impl Delivery {
    pub fn new(ctx: Ctx, clock: Arc<dyn Clock>, config: DeliveryConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("Nudge/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .context("Building the webhook HTTP client.")?;
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Ok(Delivery { ctx, clock, config, client, slots, retry_at: AtomicI64::new(i64::MAX) })
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let this = Arc::new(self);
        let handover = &this.ctx.signals.handover;
        handover.open(this.lease_ms());
        // A lease round at start: what was pending or leased before a restart.
        let mut due_at = i64::MIN;
        loop {
            // New actions the engine committed leased to this worker.
            for action in handover.take() {
                if let Err(err) = this.clone().start(action).await {
                    tracing::error!(error = format!("{err:#}"), "Starting a webhook attempt failed.");
                }
            }
            let now = this.clock.now();
            due_at = due_at.min(this.retry_at.swap(i64::MAX, Ordering::Relaxed));
            if this.ctx.signals.due_now.swap(false, Ordering::Relaxed) {
                due_at = i64::MIN;
            }
            if now >= due_at {
                match this.clone().round().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = format!("{err:#}"), "Webhook delivery round failed."),
                }
                // At least a round a second, as a backstop for what falls due
                // without a word to this loop.
                due_at = match runs::next_attempt(&this.ctx.db).await {
                    Ok(Some(at)) => at.min(now + 1000),
                    _ => now + 1000,
                };
            }
            let wait = Duration::from_millis((due_at.saturating_sub(now)).clamp(10, 1000) as u64);
            let _ = tokio::time::timeout(wait, this.ctx.signals.deliveries.notified()).await;
        }
    }

    /// How long an attempt's lease lasts: it outlasts the attempt, so a crash
    /// mid-request retries it later.
    fn lease_ms(&self) -> i64 {
        self.config.timeout.as_millis() as i64 * 3
    }

    /// Starts an attempt once a slot is free.
    async fn start(self: Arc<Self>, action: PendingAction) -> anyhow::Result<()> {
        let permit = self.slots.clone().acquire_owned().await.context("The delivery semaphore closed.")?;
        tokio::spawn(async move {
            self.attempt(action).await;
            drop(permit);
        });
        Ok(())
    }

    /// Leases the due actions and starts their attempts; returns how many.
    pub async fn round(self: Arc<Self>) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let due = self.lease(now, now + self.lease_ms()).await?;
        let n = due.len();
        for action in due {
            self.clone().start(action).await?;
        }
        Ok(n)
    }

    /// Delivers everything due now and waits for the attempts (tests).
    pub async fn deliver_due(self: Arc<Self>) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let due = self.lease(now, now + self.lease_ms()).await?;
        let n = due.len();
        for action in due {
            self.attempt(action).await;
        }
        Ok(n)
    }

    /// A lease takes the engine's turn to write: on SQLite it would otherwise
    /// wait for the lock in sleeps of up to 100 ms, seconds under load.
    async fn lease(&self, now: i64, lease_until: i64) -> sqlx::Result<Vec<PendingAction>> {
        let _turn = self.ctx.signals.write_turn(&self.ctx.db).await;
        runs::lease_due_actions(&self.ctx.db, now, lease_until, 64).await
    }

    /// Attempts are recorded by the engine, with whatever group it commits
    /// next: one transaction for many, and no second writer beside it.
    async fn record(
        &self,
        action_key: &str,
        attempt: i64,
        status: ActionStatus,
        error: Option<&str>,
        next: Option<i64>,
    ) -> app::error::AppResult<()> {
        let attempt = runs::Attempt {
            action_key: action_key.to_string(),
            attempts: attempt,
            status,
            error: error.map(String::from),
            next_attempt_at: next,
        };
        self.ctx.engine.record(vec![attempt]).await
    }

    async fn attempt(&self, action: PendingAction) {
        let attempt = action.attempts + 1;
        let outcome = match serde_json::from_str::<Action>(&action.payload) {
            Ok(Action::CallWebhook { method, url, headers, body, key, .. }) => {
                self.send(&method, &url, &headers, &body, &key).await
            }
            Ok(_) | Err(_) => Outcome::Failed("the action is not a webhook call".into()),
        };
        let now = self.clock.now();
        let mut retry = None;
        let result = match outcome {
            Outcome::Delivered(status) => {
                tracing::debug!(action = %action.action_key, status, attempt, "Webhook delivered.");
                self.record(&action.action_key, attempt, ActionStatus::Done, None, None).await
            }
            Outcome::Retry { reason, after } if attempt < i64::from(self.config.max_attempts) => {
                let delay = backoff(self.config.base_delay, attempt, &action.action_key).max(after.unwrap_or_default());
                let next = now + delay.as_millis() as i64;
                retry = Some(next);
                tracing::info!(action = %action.action_key, attempt, reason = %reason, retry_in_ms = delay.as_millis() as u64, "Webhook attempt failed; retrying.");
                self.record(&action.action_key, attempt, ActionStatus::Pending, Some(&reason), Some(next)).await
            }
            Outcome::Retry { reason, .. } | Outcome::Failed(reason) => {
                tracing::warn!(action = %action.action_key, attempt, reason = %reason, "Webhook failed for good.");
                self.record(&action.action_key, attempt, ActionStatus::Failed, Some(&reason), None).await
            }
        };
        if let Err(err) = result {
            tracing::error!(action = %action.action_key, error = %err, "Recording a webhook attempt failed; it will be retried.");
            return;
        }
        if let Some(next) = retry {
            // Recorded: the run loop leases it when it falls due.
            self.retry_at.fetch_min(next, Ordering::Relaxed);
        }
        // The run's page and list show its webhooks' health: tell them.
        if let Err(err) = app::service::runs::announce(&self.ctx, &action.run_id).await {
            tracing::warn!(run = %action.run_id, error = %err, "Announcing a webhook attempt failed.");
        }
    }

    async fn send(&self, method: &str, url: &str, headers: &[(String, String)], body: &str, key: &str) -> Outcome {
        let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
            return Outcome::Failed(format!("'{method}' is not an HTTP method"));
        };
        let mut req = self.client.request(method, url).header("Idempotency-Key", key);
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if !body.is_empty() {
            req = req.body(body.to_string());
        }
        match req.send().await {
            Ok(res) => {
                let status = res.status();
                if status.is_success() {
                    Outcome::Delivered(status.as_u16())
                } else if status.as_u16() == 429 || status.is_server_error() {
                    let after = res
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(3600)));
                    Outcome::Retry { reason: format!("HTTP {}", status.as_u16()), after }
                } else {
                    Outcome::Failed(format!("HTTP {} (not retried)", status.as_u16()))
                }
            }
            Err(err) if err.is_builder() => Outcome::Failed(format!("the request cannot be built: {err}")),
            Err(err) => Outcome::Retry { reason: short_error(&err), after: None },
        }
    }
}

fn short_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "could not connect".into()
    } else {
        err.to_string()
    }
}

/// base × 2^(attempt-1), at most an hour, plus up to 25 % jitter derived from
/// the key and attempt (spread, but reproducible).
pub fn backoff(base: Duration, attempt: i64, key: &str) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
    let plain = base.saturating_mul(2u32.saturating_pow(exp)).min(Duration::from_secs(3600));
    let jitter = app::workflow::eval::fnv1a(&[key, &attempt.to_string()]) % 1000;
    plain + plain.mul_f64(jitter as f64 / 4000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_a_ceiling() {
        let base = Duration::from_secs(2);
        for attempt in 1..=5 {
            let plain = base * 2u32.pow(attempt as u32 - 1);
            let d = backoff(base, attempt, "run:node");
            assert!(d >= plain && d <= plain.mul_f64(1.25), "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 40, "k") <= Duration::from_secs(4500));
        assert_ne!(backoff(base, 3, "a:b"), backoff(base, 3, "c:d"), "jitter spreads retries");
    }
}
