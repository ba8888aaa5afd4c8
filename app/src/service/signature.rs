//! Webhook signatures, Stripe-style: `Nudge-Signature: t=<unix seconds>,v1=<hex>`
//! where the hex is HMAC-SHA256(secret, "<t>.<raw body>"). Several `v1` entries
//! are allowed (during a secret rotation the sender may sign with both).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "nudge-signature";
/// Signatures older or newer than this are refused, against replays.
pub const TOLERANCE_SECS: i64 = 300;

/// The `v1` value for `body` signed at unix second `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

/// A complete header value, for examples, tests and the "send test event" button.
pub fn header_value(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    Expired,
    Mismatch,
}

impl SignatureError {
    pub fn detail(&self) -> &'static str {
        match self {
            SignatureError::Missing => "The Nudge-Signature header is missing.",
            SignatureError::Malformed => "The Nudge-Signature header is malformed; expected t=<unix seconds>,v1=<hex>.",
            SignatureError::Expired => {
                "The signature timestamp is more than 5 minutes away from now; sign each request when sending it."
            }
            SignatureError::Mismatch => {
                "The signature does not match the body; sign the raw body with the source's secret."
            }
        }
    }
}

/// Checks `header` against `body` with any of `secrets`, at unix second `now`.
/// Comparison is constant-time (`Mac::verify_slice`).
pub fn verify(header: Option<&str>, secrets: &[&str], body: &[u8], now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.trim().parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => candidates.push(hex::decode(v.trim()).map_err(|_| SignatureError::Malformed)?),
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    for secret in secrets {
        for candidate in &candidates {
            if mac(secret, t, body).verify_slice(candidate).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_and_any_change_is_refused() {
        let body = br#"{"id":"e1"}"#;
        let h = header_value("whsec_a", 1_000, body);
        assert_eq!(verify(Some(&h), &["whsec_a"], body, 1_000), Ok(()));
        assert_eq!(verify(Some(&h), &["whsec_a"], br#"{"id":"e2"}"#, 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&h), &["whsec_b"], body, 1_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&h), &["whsec_a"], body, 1_000 + TOLERANCE_SECS + 1), Err(SignatureError::Expired));
        assert_eq!(verify(None, &["whsec_a"], body, 1_000), Err(SignatureError::Missing));
        assert_eq!(verify(Some("t=abc,v1=00"), &["whsec_a"], body, 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify(Some("v1=00"), &["whsec_a"], body, 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify(Some("t=1000"), &["whsec_a"], body, 1_000), Err(SignatureError::Malformed));
        let far = format!("t={},v1=00", i64::MIN);
        assert_eq!(verify(Some(&far), &["whsec_a"], body, 1_000), Err(SignatureError::Expired), "no overflow");
    }

    #[test]
    fn during_rotation_either_secret_and_several_v1_entries_are_accepted() {
        let body = b"[]";
        let old = sign("old", 50, body);
        let new = sign("new", 50, body);
        let both = format!("t=50,v1={old},v1={new}");
        assert_eq!(verify(Some(&both), &["new"], body, 50), Ok(()));
        assert_eq!(verify(Some(&format!("t=50,v1={old}")), &["new", "old"], body, 50), Ok(()));
        assert_eq!(verify(Some(&format!("t=50,v1={old}")), &["new"], body, 50), Err(SignatureError::Mismatch));
    }
}
