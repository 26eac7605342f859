//! One push at a time per target image, across every replica.
//!
//! On PostgreSQL a push's turn is a transaction-scoped advisory lock on
//! the target, held on a connection of its own (outside the pool, so pushes
//! waiting for one tag never starve the requests of a connection). The
//! connection's transaction has `idle_in_transaction_session_timeout` set
//! to the job lease, and the holder runs a statement every third of it: a
//! holder that dies closes the connection, one that is paused (SIGSTOP, a
//! stalled VM) stops running statements and the database ends its session,
//! so a turn is never held longer than a lease by a replica that cannot
//! use it. Waiters poll with `pg_try_advisory_xact_lock` instead of
//! blocking in the database. On SQLite (one server) the turn is the
//! caller's to take in its process.

use std::time::Duration;

use sqlx::Connection as _;

use super::backend::{Database, Kind};
use super::error::StoreError;
use super::postgres::redact;

/// How long a waiter sleeps between two tries at a turn, at most.
const MAX_WAIT_STEP: Duration = Duration::from_secs(1);

/// A push's turn at its target: held until dropped (or until the database
/// ended it, see [`PushTurn::is_lost`]).
#[derive(Debug)]
pub struct PushTurn {
    /// Dropping it tells the holder task to end the transaction.
    _release: Option<tokio::sync::oneshot::Sender<()>>,
    lost: Option<tokio::sync::watch::Receiver<bool>>,
}

impl PushTurn {
    /// Whether the turn ended without being dropped: the holder's
    /// connection failed (the database ended the session, or went away),
    /// so another push may hold it now. Always `false` on SQLite.
    pub fn is_lost(&self) -> bool {
        self.lost.as_ref().is_some_and(|lost| *lost.borrow())
    }
}

impl Database {
    /// Waits for the turn at `target` (an image reference); `lease` bounds
    /// how long a holder that stops answering keeps it.
    pub(super) async fn push_turn(
        &self,
        target: &str,
        lease: Duration,
    ) -> Result<PushTurn, StoreError> {
        self.check()?;
        let (Kind::Postgres, Some(url)) = (self.kind(), self.url.as_deref()) else {
            return Ok(PushTurn {
                _release: None,
                lost: None,
            });
        };
        let mut conn = sqlx::AnyConnection::connect(url).await.map_err(|e| {
            StoreError::DatabaseUnreachable {
                url: redact(url),
                reason: e.to_string(),
            }
        })?;
        let secs = lease.as_secs().max(1);
        sqlx::query("BEGIN").execute(&mut conn).await?;
        sqlx::query(&format!(
            "SET LOCAL idle_in_transaction_session_timeout = '{secs}s'"
        ))
        .execute(&mut conn)
        .await?;
        let key = format!("push:{target}");
        let mut step = Duration::from_millis(50);
        loop {
            let (got,): (bool,) =
                sqlx::query_as("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(&key)
                    .fetch_one(&mut conn)
                    .await?;
            if got {
                break;
            }
            tokio::time::sleep(step).await;
            step = (step * 2).min(MAX_WAIT_STEP);
        }
        let (release, mut released) = tokio::sync::oneshot::channel::<()>();
        let (lost_tx, lost) = tokio::sync::watch::channel(false);
        let every = Duration::from_secs(secs) / 3;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut released => break,
                    _ = tokio::time::sleep(every) => {
                        if sqlx::query("SELECT 1").execute(&mut conn).await.is_err() {
                            let _ = lost_tx.send(true);
                            return;
                        }
                    }
                }
            }
            // Ending the transaction releases the lock; closing the
            // connection would too, should the rollback fail.
            let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
            let _ = conn.close().await;
        });
        Ok(PushTurn {
            _release: Some(release),
            lost: Some(lost),
        })
    }
}
