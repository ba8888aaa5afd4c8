//! Nudge's own ids (UUID v7 text, `store::new_id`) as the database holds them.
//!
//! The ids of sources, events, workflows, runs and alerts fill most of every
//! row and index the hot path writes. SQLite keeps them as 16-byte blobs
//! rather than 36 bytes of text (migration `0011_binary_ids` converted the
//! rows written before); Postgres keeps its text columns. Everywhere else
//! they are the usual text: a query binds one through [`Id`] and reads one
//! back through [`IdText`], and nothing outside this module sees a blob.
//!
//! Only the canonical spelling (lowercase, hyphenated) is stored as a blob,
//! so an id read back is exactly the text that was written; any other text
//! (an empty workflow id in the rollups, an id from a hand-made fixture)
//! stays text, is never equal to a blob, and sorts before every blob.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type, TypeInfo, ValueRef};
use std::borrow::Cow;

/// An id to bind to a query.
#[derive(Debug, Clone, Copy)]
pub struct Id<'a>(pub &'a str);

/// An id read from a query, as text; `#[sqlx(try_from = "IdText")]` on a
/// `String` field of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdText(pub String);

impl From<IdText> for String {
    fn from(id: IdText) -> String {
        id.0
    }
}

/// The 16 bytes of `text` when it is a UUID in its canonical spelling.
pub fn bytes(text: &str) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(text).ok()?;
    let canonical = text.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    canonical.then(|| *uuid.as_bytes())
}

/// The canonical text of an id's 16 bytes.
pub fn text(bytes: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

impl Type<Sqlite> for Id<'_> {
    fn type_info() -> SqliteTypeInfo {
        <&[u8] as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <&[u8] as Type<Sqlite>>::compatible(ty) || <&str as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Id<'q> {
    fn encode_by_ref(&self, args: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        args.push(match bytes(self.0) {
            Some(b) => SqliteArgumentValue::Blob(Cow::Owned(b.to_vec())),
            None => SqliteArgumentValue::Text(Cow::Borrowed(self.0)),
        });
        Ok(IsNull::No)
    }
}

impl Type<Postgres> for Id<'_> {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Id<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Sqlite> for IdText {
    fn type_info() -> SqliteTypeInfo {
        <&[u8] as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <&[u8] as Type<Sqlite>>::compatible(ty) || <&str as Type<Sqlite>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Sqlite> for IdText {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.type_info().name() == "BLOB" {
            let raw = <&[u8] as Decode<Sqlite>>::decode(value)?;
            Ok(IdText(text(raw.try_into()?)))
        } else {
            Ok(IdText(<String as Decode<Sqlite>>::decode(value)?))
        }
    }
}

impl Type<Postgres> for IdText {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for IdText {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(IdText(<String as Decode<Postgres>>::decode(value)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_is_binary() {
        let id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let b = bytes(id).expect("canonical");
        assert_eq!(text(b), id);
        assert_eq!(bytes(&id.to_uppercase()), None);
        assert_eq!(bytes(&id.replace('-', "")), None);
        assert_eq!(bytes(""), None);
        assert_eq!(bytes("run-1"), None);
    }

    #[test]
    fn binary_ids_order_as_their_text() {
        let mut ids: Vec<String> = (0..50).map(|_| crate::store::new_id()).collect();
        ids.push(crate::store::uuid_v7_floor(1_700_000_000_000));
        ids.push("ffffffff-ffff-7fff-bfff-ffffffffffff".into());
        let mut by_text = ids.clone();
        by_text.sort();
        let mut by_bytes = ids.clone();
        by_bytes.sort_by_key(|s| bytes(s).expect("canonical"));
        assert_eq!(by_text, by_bytes);
    }
}
