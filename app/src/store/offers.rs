//! The `offer` and `alert` tables as the API and the inbox read and change them.

use super::{now_ms, Db, Id, IdText};
use crate::model::{Alert, Offer};
use crate::with_pool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    pub code: String,
    /// `<run>:<node>`: the action that issued it.
    pub action_key: String,
    #[sqlx(try_from = "IdText")]
    pub workflow_id: String,
    #[sqlx(try_from = "IdText")]
    pub run_id: String,
    pub customer_id: String,
    pub discount: String,
    pub value: f64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
    pub redeemed_by: Option<String>,
    pub created_at: i64,
}

pub(crate) const OFFER_COLUMNS: &str =
    "code, action_key, workflow_id, run_id, customer_id, discount, value, expires_at, redeemed_at, redeemed_by, created_at";

impl OfferRow {
    pub fn to_offer(&self, now: i64) -> Offer {
        let status = if self.redeemed_at.is_some() {
            "redeemed"
        } else if now >= self.expires_at {
            "expired"
        } else {
            "active"
        };
        Offer {
            code: self.code.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
            customer_id: self.customer_id.clone(),
            discount: self.discount.clone(),
            value: self.value,
            expires_at: self.expires_at,
            status: status.into(),
            redeemed_at: self.redeemed_at,
            redeemed_by: self.redeemed_by.clone(),
            created_at: self.created_at,
        }
    }
}

/// Offers newest first; `status` is `active`, `redeemed` or `expired` at
/// `now`; `after` is the last row of the previous page (created_at, code).
pub async fn list_offers(
    db: &Db,
    status: Option<&str>,
    customer_id: Option<&str>,
    workflow_id: Option<&str>,
    after: Option<(i64, &str)>,
    limit: i64,
    now: i64,
) -> sqlx::Result<Vec<OfferRow>> {
    let status_sql = match status {
        Some("redeemed") => "redeemed_at is not null",
        Some("expired") => "redeemed_at is null and expires_at <= $4",
        Some("active") => "redeemed_at is null and expires_at > $4",
        _ => "$4 = $4",
    };
    let sql = format!(
        "select {OFFER_COLUMNS} from offer where ($1 = '' or customer_id = $1) and ($2 = '' or workflow_id = $2) \
         and ($3 = '' or created_at < $6 or (created_at = $6 and code < $3)) and {status_sql} \
         order by created_at desc, code desc limit $5"
    );
    let (after_at, after_code) = after.unwrap_or((0, ""));
    with_pool!(db, p => sqlx::query_as::<_, OfferRow>(&sql)
        .bind(customer_id.unwrap_or(""))
        .bind(Id(workflow_id.unwrap_or("")))
        .bind(after_code)
        .bind(now)
        .bind(limit)
        .bind(after_at)
        .fetch_all(p)
        .await)
}

/// An offer by its code, in any letter case (codes are issued in capitals).
pub async fn offer(db: &Db, code: &str) -> sqlx::Result<Option<OfferRow>> {
    let sql = format!("select {OFFER_COLUMNS} from offer where code = $1");
    let code = code.trim().to_ascii_uppercase();
    with_pool!(db, p => sqlx::query_as::<_, OfferRow>(&sql).bind(code).fetch_optional(p).await)
}

/// The offers of these customers issued since `since`, to match codes events carry.
pub async fn recent_of_customers(db: &Db, customer_ids: &[String], since: i64) -> sqlx::Result<Vec<OfferRow>> {
    if customer_ids.is_empty() {
        return Ok(Vec::new());
    }
    let n = customer_ids.len();
    let sql = format!(
        "select {OFFER_COLUMNS} from offer where customer_id in ({}) and created_at >= {}",
        super::params(db, 1, n),
        super::param(db, n + 1)
    );
    with_pool!(db, p => {
        let mut q = sqlx::query_as::<_, OfferRow>(&sql);
        for id in customer_ids {
            q = q.bind(id);
        }
        q.bind(since).fetch_all(p).await
    })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    #[sqlx(try_from = "IdText")]
    pub alert_id: String,
    #[sqlx(try_from = "IdText")]
    pub workflow_id: String,
    #[sqlx(try_from = "IdText")]
    pub run_id: String,
    pub customer_id: String,
    pub severity: String,
    pub audience: String,
    pub message: String,
    pub status: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub created_at: i64,
}

const ALERT_COLUMNS: &str = "alert_id, workflow_id, run_id, customer_id, severity, audience, message, status, \
                             acknowledged_by, acknowledged_at, resolved_by, resolved_at, created_at";

impl AlertRow {
    pub fn to_alert(&self) -> Alert {
        Alert {
            alert_id: self.alert_id.clone(),
            workflow_id: self.workflow_id.clone(),
            run_id: self.run_id.clone(),
            customer_id: self.customer_id.clone(),
            severity: self.severity.clone(),
            audience: self.audience.clone(),
            message: self.message.clone(),
            // A value no code writes reads as open, to be seen.
            status: self.status.parse().unwrap_or(crate::workflow::status::AlertStatus::Open),
            acknowledged_by: self.acknowledged_by.clone(),
            acknowledged_at: self.acknowledged_at,
            resolved_by: self.resolved_by.clone(),
            resolved_at: self.resolved_at,
            created_at: self.created_at,
        }
    }
}

/// Alerts newest first, by status, severity and customer.
pub async fn list_alerts(
    db: &Db,
    status: Option<&str>,
    severity: Option<&str>,
    customer_id: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<AlertRow>> {
    let sql = format!(
        "select {ALERT_COLUMNS} from alert where ($1 = '' or status = $1) and ($2 = '' or severity = $2) \
         and ($3 = '' or customer_id = $3) and ($4 = '' or alert_id < $4) order by alert_id desc limit $5"
    );
    with_pool!(db, p => sqlx::query_as::<_, AlertRow>(&sql)
        .bind(status.unwrap_or(""))
        .bind(severity.unwrap_or(""))
        .bind(customer_id.unwrap_or(""))
        .bind(Id(cursor.unwrap_or("")))
        .bind(limit)
        .fetch_all(p)
        .await)
}

pub async fn alert(db: &Db, alert_id: &str) -> sqlx::Result<Option<AlertRow>> {
    let sql = format!("select {ALERT_COLUMNS} from alert where alert_id = $1");
    with_pool!(db, p => sqlx::query_as::<_, AlertRow>(&sql).bind(Id(alert_id)).fetch_optional(p).await)
}

/// open → acknowledged; `false` when the alert is not open.
pub async fn acknowledge(db: &Db, alert_id: &str, by: &str) -> sqlx::Result<bool> {
    let sql = "update alert set status = 'acknowledged', acknowledged_by = $1, acknowledged_at = $2 \
               where alert_id = $3 and status = 'open'";
    Ok(crate::execute!(db, sqlx::query(sql).bind(by).bind(now_ms()).bind(Id(alert_id)))? == 1)
}

/// open or acknowledged → resolved; `false` when it is resolved already.
pub async fn resolve(db: &Db, alert_id: &str, by: &str) -> sqlx::Result<bool> {
    let sql = "update alert set status = 'resolved', resolved_by = $1, resolved_at = $2 \
               where alert_id = $3 and status <> 'resolved'";
    Ok(crate::execute!(db, sqlx::query(sql).bind(by).bind(now_ms()).bind(Id(alert_id)))? == 1)
}
