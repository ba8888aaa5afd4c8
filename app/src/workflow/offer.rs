//! Offers: whether a code may be redeemed now, and why not. The engine, the
//! REST redemption and the backtest all ask here; the store only writes.

use super::describe::format_ms;

/// An issued code as redemption sees it.
#[derive(Debug, Clone, Copy)]
pub struct CodeState<'a> {
    pub code: &'a str,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
    pub redeemed_by: Option<&'a str>,
}

/// Why a code cannot be redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    AlreadyRedeemed { at: i64, by: String },
    Expired { at: i64 },
}

impl Refusal {
    /// The reason, in a sentence's words (without the final stop).
    pub fn detail(&self, code: &str) -> String {
        match self {
            Refusal::AlreadyRedeemed { at, by } => format!("{code} was already redeemed on {} by {by}", format_ms(*at)),
            Refusal::Expired { at } => format!("{code} expired on {}", format_ms(*at)),
        }
    }
}

/// Whether `offer` may be redeemed at `now`: once, before it expires.
pub fn redeemable(offer: CodeState<'_>, now: i64) -> Result<(), Refusal> {
    match offer.redeemed_at {
        Some(at) => Err(Refusal::AlreadyRedeemed { at, by: offer.redeemed_by.unwrap_or("?").to_string() }),
        None if offer.expires_at <= now => Err(Refusal::Expired { at: offer.expires_at }),
        None => Ok(()),
    }
}

/// Whether an event's offer code (the one its source's mapping reads, or an
/// API redemption's) is `code`. Letter case does not matter: people retype
/// codes. A code anywhere else in a payload is not a redemption.
pub fn redeems(event_code: Option<&str>, code: &str) -> bool {
    event_code.is_some_and(|c| c.trim().eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_redeems_once_before_it_expires() {
        let fresh = CodeState { code: "CART-1", expires_at: 1_000, redeemed_at: None, redeemed_by: None };
        assert_eq!(redeemable(fresh, 999), Ok(()));
        assert_eq!(redeemable(fresh, 1_000), Err(Refusal::Expired { at: 1_000 }), "expiry is exclusive");
        let used = CodeState { redeemed_at: Some(500), redeemed_by: Some("shop"), ..fresh };
        let refusal = redeemable(used, 600).unwrap_err();
        assert_eq!(refusal, Refusal::AlreadyRedeemed { at: 500, by: "shop".into() });
        assert_eq!(refusal.detail("CART-1"), "CART-1 was already redeemed on 1970-01-01 00:00 UTC by shop");
    }

    #[test]
    fn only_the_events_own_code_redeems_in_any_letter_case() {
        assert!(redeems(Some("cart-1"), "CART-1"));
        assert!(redeems(Some(" CART-1 "), "CART-1"));
        assert!(!redeems(Some("CART-2"), "CART-1"));
        assert!(!redeems(None, "CART-1"));
    }
}
