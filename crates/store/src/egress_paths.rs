//! The one cross-tenant read a tenant's write needs: the registry URIs other
//! tenants' components use, so that two tenants cannot hold overlapping
//! paths of one allow-listed registry (one could push into the other's
//! namespace). Which URIs overlap is the caller's rule (the egress policy's);
//! the store only runs it inside the component write's transaction and
//! answers [`StoreError::PathTaken`], never naming the other tenant.
//!
//! The read and the write share the write transaction, so no other writer
//! commits an overlapping component between the check and the insert: on
//! SQLite `BEGIN IMMEDIATE` serialises every writer of the database (every
//! tenant's); on PostgreSQL the `SERIALIZABLE` transaction of `begin_write`
//! makes two such writes conflict (SQLSTATE 40001, a retry), since each
//! reads the rows the other inserts.

use super::backend::Connection;
use super::error::StoreError;

/// Every registry URI of a component of a tenant other than `tenant`, as
/// stored (the normalised uri), without duplicates. Filtering by registry is
/// left to the caller: hosts compare by value (`[::1]` is `[0:0::1]`), which
/// SQL on text cannot do.
pub(super) async fn component_uris_of_other_tenants(
    conn: &mut Connection,
    tenant: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT uri FROM components WHERE tenant <> $1")
            .bind(tenant)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(uri,)| uri).collect())
}

/// Refuses writing `uri` for `tenant` with [`StoreError::PathTaken`] when
/// `overlaps` holds for another tenant's component uri; run inside the write
/// transaction. No test: nothing is read.
pub(super) async fn require_no_overlap(
    conn: &mut Connection,
    tenant: &str,
    uri: &str,
    overlaps: Option<&(dyn Fn(&str) -> bool + Send + Sync)>,
) -> Result<(), StoreError> {
    let Some(overlaps) = overlaps else {
        return Ok(());
    };
    let others = component_uris_of_other_tenants(conn, tenant).await?;
    if others.iter().any(|other| overlaps(other)) {
        return Err(StoreError::PathTaken {
            uri: uri.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{ComponentRecord, Store, StoreError};

    fn component(name: &str, uri: &str) -> ComponentRecord {
        ComponentRecord {
            name: name.to_owned(),
            flavor: "default".to_owned(),
            uri: uri.to_owned(),
            config_json: "{}".to_owned(),
            secret: None,
            flavor_sha256: None,
            created_at: String::new(),
            updated_at: String::new(),
            version: 0,
        }
    }

    #[tokio::test]
    async fn a_guarded_write_sees_only_other_tenants_uris_and_stores_nothing_when_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("home")).await.expect("open");
        let (a, b) = (store.tenant("a"), store.tenant("b"));
        a.insert_component(&component("app", "127.0.0.1:5000/team-a"))
            .await
            .unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let refuse_team_a = |other: &str| {
            seen.lock().unwrap().push(other.to_owned());
            other.starts_with("127.0.0.1:5000/team-a")
        };
        let err = b
            .insert_component_guarded(
                &component("app", "127.0.0.1:5000/team-a/sub"),
                Some(&refuse_team_a),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PathTaken { .. }), "{err:?}");
        assert!(!err.to_string().contains("`a`"), "names no tenant: {err}");
        assert_eq!(b.get_component("app").await.unwrap(), None);
        assert_eq!(*seen.lock().unwrap(), vec!["127.0.0.1:5000/team-a"]);

        // The tenant's own components are not "another tenant's".
        a.insert_component_guarded(&component("two", "127.0.0.1:5000/team-a"), Some(&|_| true))
            .await
            .unwrap();
        let mut moved = a.get_component("two").await.unwrap().expect("two");
        moved.uri = "127.0.0.1:5000/team-a/x".into();
        a.update_component_guarded(&moved, Some(&|_| true))
            .await
            .unwrap();

        // An update that would overlap is rolled back.
        b.insert_component(&component("app", "127.0.0.1:5000/team-b"))
            .await
            .unwrap();
        let mut update = b.get_component("app").await.unwrap().expect("app");
        update.uri = "127.0.0.1:5000/team-a".into();
        let err = b
            .update_component_guarded(&update, Some(&refuse_team_a))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PathTaken { .. }), "{err:?}");
        let kept = b.get_component("app").await.unwrap().expect("app");
        assert_eq!(kept.uri, "127.0.0.1:5000/team-b");
        assert_eq!(kept.version, update.version);
    }
}
