//! Partitions: a fixed number chosen at install, a customer's by a stable
//! hash of its id. A partition has one owner at a time, which evaluates its
//! events in acceptance order; on one node the process owns them all.

/// Partitions of an installation unless configured otherwise.
pub const DEFAULT_PARTITIONS: u32 = 64;

/// The partition of `customer_id` among `partitions` (FNV-1a: stable across
/// builds, platforms and processes, unlike the standard library's hasher).
pub fn of(customer_id: &str, partitions: u32) -> u32 {
    let hash = crate::workflow::eval::fnv1a(&[customer_id]);
    (hash % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_customer_always_lands_in_the_same_partition_and_customers_spread() {
        assert_eq!(super::of("ana", 64), super::of("ana", 64));
        let mut used = std::collections::HashSet::new();
        for i in 0..1000 {
            let p = super::of(&format!("customer-{i}"), 64);
            assert!(p < 64);
            used.insert(p);
        }
        assert_eq!(used.len(), 64, "a thousand customers use every partition");
        assert_eq!(super::of("ana", 0), 0, "no partitions configured reads as one");
    }
}
