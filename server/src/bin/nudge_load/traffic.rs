//! The events the benchmark sends (about 300 bytes each, three in four naming a
//! workflow's trigger) and the senders: as fast as answered, or at a fixed rate.

use super::client::{hook_request, Conn};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A small fast PRNG (xorshift64*), seeded per worker: no dependency needed.
pub struct Rng(pub u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(0x9E37_79B9_7F4A_7C15 ^ (seed + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Event names and their weight in 100. The first five start runs of some
/// benchmark workflow (75 in 100); checkouts and orders resume waiting carts,
/// orders and accepted offers reach goals.
pub const MIX: [(&str, u64); 9] = [
    ("cart_updated", 34),
    ("transaction_completed", 20),
    ("inventory_updated", 12),
    ("signed_up", 5),
    ("payment_failed", 4),
    ("page_viewed", 13),
    ("checkout_started", 6),
    ("order_completed", 4),
    ("offer_accepted", 2),
];

fn pick_name(rng: &mut Rng) -> &'static str {
    let mut roll = rng.next() % 100;
    for (name, weight) in MIX {
        if roll < weight {
            return name;
        }
        roll -= weight;
    }
    MIX[0].0
}

/// Appends one event as JSON. Customer fields are a function of the customer id
/// (a customer keeps their tier); the rest is drawn: cart values 0–999.99, amounts
/// skewed low up to 20,000, stock 0–99 in eight stores.
pub fn write_event(out: &mut String, id: &str, rng: &mut Rng, customers: u64, now: i64) {
    let c = rng.next() % customers.max(1);
    let name = pick_name(rng);
    let tier = match c % 7 {
        0 => "gold",
        1 | 2 => "silver",
        _ => "standard",
    };
    let cents = rng.next() % 100_000;
    let items = rng.next() % 9 + 1;
    let x = rng.next() % 1000;
    let amount = x * x / 50;
    let currency = ["EUR", "EUR", "EUR", "USD", "USD", "GBP"][(rng.next() % 6) as usize];
    let sku = rng.next() % 5000;
    let stock = rng.next() % 100;
    let store = rng.next() % 8 + 1;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r#"{{"id":"{id}","type":"{name}","at":{now},"customer":{{"id":"c-{c}","email":"c{c}@example.com","tier":"{tier}"}},"cart":{{"id":"k-{c}","value":{}.{:02},"items":{items}}},"amount":{amount},"currency":"{currency}","sku":"sku-{sku}","stock":{stock},"store":"store-{store}","page":"/products/sku-{sku}"}}"#,
        cents / 100,
        cents % 100,
    );
}

/// One event as a string, with the given id.
pub fn event(id: &str, rng: &mut Rng, customers: u64, now: i64) -> String {
    let mut out = String::with_capacity(320);
    write_event(&mut out, id, rng, customers, now);
    out
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Plan {
    pub addr: String,
    pub slug: String,
    pub secret: String,
    pub concurrency: usize,
    /// Events per request: 1 sends single events, more sends arrays.
    pub batch: usize,
    pub customers: u64,
    pub duration: Duration,
    /// Events a second over all connections; `None`: each connection sends as fast as answered.
    pub rate: Option<f64>,
    /// Prefix of this run's event ids, so runs never collide.
    pub run: String,
}

#[derive(Debug, Default)]
pub struct Tally {
    pub events: u64,
    pub requests: u64,
    pub errors: BTreeMap<String, u64>,
    pub latencies_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.events += other.events;
        self.requests += other.requests;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

async fn worker(id: usize, plan: Arc<Plan>, until: Instant, accepted: Arc<AtomicU64>) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng::seeded(id as u64);
    let mut seq = 0u64;
    let batch = plan.batch.max(1);
    let mut pace = plan.rate.map(|rate| {
        let every = Duration::from_secs_f64((plan.concurrency * batch) as f64 / rate.max(0.001));
        // Start the connections spread over one interval rather than all at once.
        let offset = every.mul_f64(id as f64 / plan.concurrency.max(1) as f64);
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        interval
    });
    let mut conn = None;
    while Instant::now() < until {
        if let Some(interval) = pace.as_mut() {
            interval.tick().await;
            if Instant::now() >= until {
                break;
            }
        }
        if conn.is_none() {
            match Conn::open(&plan.addr).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    *tally.errors.entry("connect".into()).or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut body = String::with_capacity(batch * 330 + 2);
        if batch > 1 {
            body.push('[');
        }
        for i in 0..batch {
            if i > 0 {
                body.push(',');
            }
            seq += 1;
            write_event(&mut body, &format!("{}-{id}-{seq}", plan.run), &mut rng, plan.customers, now);
        }
        if batch > 1 {
            body.push(']');
        }
        let req = match hook_request(&plan.addr, &plan.slug, &plan.secret, now, body) {
            Ok(req) => req,
            Err(_) => {
                *tally.errors.entry("request".into()).or_default() += 1;
                continue;
            }
        };
        let started = Instant::now();
        match c.send(req).await {
            Ok((status, _)) => {
                tally.latencies_us.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                tally.requests += 1;
                if status == 202 {
                    tally.events += batch as u64;
                    accepted.fetch_add(batch as u64, Ordering::Relaxed);
                } else {
                    *tally.errors.entry(status.to_string()).or_default() += 1;
                }
            }
            Err(_) => {
                *tally.errors.entry("connection lost".into()).or_default() += 1;
                conn = None;
            }
        }
    }
    tally
}

/// Sends for `plan.duration`; `accepted` counts events as they are acknowledged
/// (for samplers). Returns the tally, latencies sorted, and the seconds it took.
pub async fn send(plan: Plan, accepted: Arc<AtomicU64>) -> anyhow::Result<(Tally, f64)> {
    let plan = Arc::new(plan);
    let started = Instant::now();
    let until = started + plan.duration;
    let workers: Vec<_> =
        (0..plan.concurrency).map(|i| tokio::spawn(worker(i, plan.clone(), until, accepted.clone()))).collect();
    let mut total = Tally::default();
    for w in workers {
        total.merge(w.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    Ok((total, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_about_300_bytes_of_json_and_three_in_four_name_a_trigger() {
        let triggers = ["cart_updated", "transaction_completed", "inventory_updated", "signed_up", "payment_failed"];
        let weight: u64 = MIX.iter().filter(|(n, _)| triggers.contains(n)).map(|(_, w)| w).sum();
        assert_eq!(weight, 75);
        assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u64>(), 100);
        let mut rng = Rng::seeded(1);
        let mut matching = 0;
        for i in 0..2000 {
            let text = event(&format!("run-0-{i}"), &mut rng, 100_000, 1_764_547_200);
            assert!((250..=350).contains(&text.len()), "{} bytes: {text}", text.len());
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            assert_eq!(v["id"], format!("run-0-{i}"));
            assert!(v["cart"]["value"].is_number() && v["stock"].is_number(), "{text}");
            if triggers.contains(&v["type"].as_str().unwrap_or_default()) {
                matching += 1;
            }
        }
        assert!((1400..=1600).contains(&matching), "{matching} of 2000 name a trigger");
    }
}
