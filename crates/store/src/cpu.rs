//! Each replica's CPU time per tenant and minute, shared so that a tenant's
//! CPU budget is one budget across replicas.

use super::Store;
use super::backend::WriteLock;
use super::error::StoreError;

impl Store {
    /// Adds what `replica` used per tenant (`used`, microseconds) to the
    /// current minute of the database's clock, and returns what every
    /// other replica used per tenant in that minute; minutes before the
    /// last are removed. One transaction, one round trip per statement.
    pub async fn exchange_cpu_usage(
        &self,
        replica: &str,
        used: &[(String, i64)],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tx = self.db.begin_write(WriteLock::None).await?;
        let (minute,): (i64,) = sqlx::query_as(&format!("SELECT {}", self.db.minute_now()))
            .fetch_one(&mut *tx)
            .await?;
        for (tenant, micros) in used {
            sqlx::query(
                "INSERT INTO cpu_usage (tenant, replica, minute, micros) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, replica, minute) \
                 DO UPDATE SET micros = cpu_usage.micros + excluded.micros",
            )
            .bind(tenant)
            .bind(replica)
            .bind(minute)
            .bind(*micros)
            .execute(&mut *tx)
            .await?;
        }
        let elsewhere: Vec<(String, i64)> = sqlx::query_as(
            "SELECT tenant, CAST(SUM(micros) AS BIGINT) FROM cpu_usage \
             WHERE minute = $1 AND replica <> $2 GROUP BY tenant",
        )
        .bind(minute)
        .bind(replica)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM cpu_usage WHERE minute < $1")
            .bind(minute - 1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(elsewhere)
    }
}
