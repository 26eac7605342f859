//! Tests of the store against real databases: compiled twice, as `tests`
//! on SQLite files in temporary directories and as `tests_postgres` on a
//! fresh database of a private PostgreSQL server each. Tests of what only
//! a SQLite home has (its files, their modes, a file removed under the
//! process, a read-only home) return at once in the PostgreSQL copy
//! ([`sqlite_only`]).

use std::fs;
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tempfile::TempDir;

use super::blob::BlobDir;
use super::error::component_write_error;
use super::timestamp::{format_rfc3339, now_rfc3339};
use super::*;

const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The directory behind `Store::blobs()` of a store opened by [`open_temp`],
/// for tests that look at or damage the files themselves.
fn blob_dir(dir: &TempDir) -> BlobDir {
    BlobDir::new(dir.path().join("home").join("blobs").join("sha256"))
}

/// Whether this copy of the suite runs on PostgreSQL.
fn on_postgres() -> bool {
    module_path!().ends_with("tests_postgres")
}

/// True (and the caller returns) in the PostgreSQL copy: for tests of the
/// SQLite home's files, which a shared database does not have.
fn sqlite_only() -> bool {
    on_postgres()
}

async fn open_temp() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    if !on_postgres() {
        let store = Store::open(&home).await.expect("open store");
        return (dir, store);
    }
    let url = flavorbox_testdb::postgres().fresh_database();
    let store = Store::open_shared(&home, &url, true)
        .await
        .expect("open store");
    // Rows-only tests register flavors under DIGEST without content; the
    // flavors' foreign key needs a blob row of that name.
    rows_only_blob(&store, DIGEST).await;
    (dir, store)
}

/// Two stores on one database, as two processes (SQLite, one home) or two
/// replicas (PostgreSQL, one server) open it.
async fn open_pair() -> (TempDir, Store, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    if !on_postgres() {
        let home = dir.path().join("home");
        let first = Store::open(&home).await.expect("open store");
        let second = Store::open(&home).await.expect("open store");
        return (dir, first, second);
    }
    let url = flavorbox_testdb::postgres().fresh_database();
    let first = Store::open_shared(&dir.path().join("one"), &url, true)
        .await
        .expect("open store");
    let second = Store::open_shared(&dir.path().join("two"), &url, true)
        .await
        .expect("open store");
    (dir, first, second)
}

/// On PostgreSQL, a blob row named `sha256` (whose content is not that
/// digest's) for tests of flavor rows registered without content; nothing
/// on SQLite, where blobs are files and rows do not reference them.
async fn rows_only_blob(store: &Store, sha256: &str) {
    if !on_postgres() {
        return;
    }
    sqlx::query("INSERT INTO blobs (sha256, content, created_at) VALUES ($1, $2, $3)")
        .bind(sha256)
        .bind(&b"placeholder of rows-only tests"[..])
        .bind(now_rfc3339())
        .execute(store.db.pool().unwrap())
        .await
        .expect("placeholder blob");
}

fn flavor(name: &str) -> FlavorRecord {
    FlavorRecord {
        name: name.to_owned(),
        sha256: DIGEST.to_owned(),
        metadata_json: format!(r#"{{"name":"{name}"}}"#),
        registered_at: String::new(),
        origin: None,
    }
}

fn component(name: &str, flavor: &str, secret: Option<&str>) -> ComponentRecord {
    ComponentRecord {
        name: name.to_owned(),
        flavor: flavor.to_owned(),
        uri: format!("registry.example.com/{name}"),
        config_json: "{}".to_owned(),
        secret: secret.map(str::to_owned),
        flavor_sha256: None,
        created_at: String::new(),
        updated_at: String::new(),
        version: 0,
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

// ----- flavors -----

#[tokio::test]
async fn flavor_round_trips_and_gets_a_registration_time() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_flavor(&flavor("aws"), None).await.unwrap();
    let got = t.get_flavor("aws").await.unwrap().expect("flavor");
    assert_eq!(got.name, "aws");
    assert_eq!(got.sha256, DIGEST);
    assert_eq!(got.metadata_json, r#"{"name":"aws"}"#);
    assert_eq!(got.registered_at.len(), "2024-01-01T00:00:00.000Z".len());
    assert!(got.registered_at.ends_with('Z'));
    assert_eq!(t.get_flavor("gcp").await.unwrap(), None);
}

#[tokio::test]
async fn flavors_are_listed_by_name() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    for name in ["gcp", "Azure", "aws"] {
        t.insert_flavor(&flavor(name), None).await.unwrap();
    }
    let names: Vec<_> = t
        .list_flavors()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["Azure", "aws", "gcp"]);
}

#[tokio::test]
async fn registering_a_taken_flavor_name_is_already_exists() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    assert!(t.insert_flavor(&flavor("aws"), None).await.unwrap());
    // The same content again is no change; other content under the name is refused.
    assert!(!t.insert_flavor(&flavor("aws"), None).await.unwrap());
    let mut other = flavor("aws");
    other.sha256 = "b".repeat(64);
    let err = t.insert_flavor(&other, None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists { kind: "flavor", name } if name == "aws"),
        "{err:?}"
    );
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test]
async fn flavor_with_a_malformed_digest_is_refused() {
    let (_dir, store) = open_temp().await;
    let mut f = flavor("aws");
    f.sha256 = "../../etc/passwd".to_owned();
    let err = store
        .tenant("default")
        .insert_flavor(&f, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidDigest(_)), "{err:?}");
}

#[tokio::test]
async fn deleting_a_missing_flavor_is_not_found() {
    let (_dir, store) = open_temp().await;
    let err = store
        .tenant("default")
        .delete_flavor("aws")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { kind: "flavor", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn deleting_a_builtin_flavor_name_in_use_is_not_found_not_in_use() {
    // Components may use built-in flavors, which are not rows.
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_component(&component("hub", "dockerhub", None))
        .await
        .unwrap();
    let err = t.delete_flavor("dockerhub").await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { kind: "flavor", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn flavor_in_use_is_not_deleted_and_both_rows_stay() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_flavor(&flavor("aws"), None).await.unwrap();
    t.insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    t.insert_component(&component("dev", "aws", None))
        .await
        .unwrap();

    let err = t.delete_flavor("aws").await.unwrap_err();
    match &err {
        StoreError::InUse { kind, name, by } => {
            assert_eq!(*kind, "flavor");
            assert_eq!(name, "aws");
            assert_eq!(by, &["dev", "prod"]);
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "flavor `aws` is used by registry components `dev`, `prod`: delete or update them first"
    );
    assert!(t.get_flavor("aws").await.unwrap().is_some());
    assert!(t.get_component("prod").await.unwrap().is_some());
    assert!(t.get_component("dev").await.unwrap().is_some());

    t.delete_component("prod").await.unwrap();
    t.delete_component("dev").await.unwrap();
    t.delete_flavor("aws").await.unwrap();
    assert_eq!(t.get_flavor("aws").await.unwrap(), None);
}

// ----- components -----

#[tokio::test]
async fn component_round_trips() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.create_secret("creds", "bob", "hunter2").await.unwrap();
    let mut c = component("prod", "aws", Some("creds"));
    c.config_json = r#"{"region":"eu-west-1"}"#.to_owned();
    t.insert_component(&c).await.unwrap();
    let got = t.get_component("prod").await.unwrap().expect("component");
    assert_eq!(got.name, "prod");
    assert_eq!(got.flavor, "aws");
    assert_eq!(got.uri, "registry.example.com/prod");
    assert_eq!(got.config_json, r#"{"region":"eu-west-1"}"#);
    assert_eq!(got.secret.as_deref(), Some("creds"));
    assert!(!got.created_at.is_empty());
    assert_eq!(got.created_at, got.updated_at);
    assert_eq!(t.get_component("dev").await.unwrap(), None);
}

#[tokio::test]
async fn components_are_listed_by_name_and_found_by_flavor() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_component(&component("b", "aws", None))
        .await
        .unwrap();
    t.insert_component(&component("c", "gcp", None))
        .await
        .unwrap();
    t.insert_component(&component("a", "aws", None))
        .await
        .unwrap();
    let names: Vec<_> = t
        .list_components()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(t.components_using_flavor("aws").await.unwrap(), ["a", "b"]);
    assert!(t.components_using_flavor("azure").await.unwrap().is_empty());
}

#[tokio::test]
async fn creating_a_taken_component_name_is_already_exists() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    let err = t
        .insert_component(&component("prod", "gcp", None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::AlreadyExists {
                kind: "registry component",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        t.get_component("prod").await.unwrap().unwrap().flavor,
        "aws"
    );
}

#[tokio::test]
async fn component_naming_a_missing_secret_is_refused_and_not_stored() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    let err = t
        .insert_component(&component("prod", "aws", Some("nope")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::SecretNotFound(s) if s == "nope"),
        "{err:?}"
    );
    assert!(err.to_string().contains("create it first"), "{err}");
    assert_eq!(t.get_component("prod").await.unwrap(), None);
}

#[tokio::test]
async fn update_replaces_fields_keeps_created_at_and_bumps_updated_at() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    let before = t.get_component("prod").await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    t.create_secret("creds", "bob", "pw").await.unwrap();
    let mut c = component("prod", "gcp", Some("creds"));
    c.version = before.version;
    c.uri = "gcr.io/project".to_owned();
    c.config_json = r#"{"x":1}"#.to_owned();
    c.created_at = "1999-01-01T00:00:00.000Z".to_owned(); // ignored
    t.update_component(&c).await.unwrap();

    let after = t.get_component("prod").await.unwrap().unwrap();
    assert_eq!(after.flavor, "gcp");
    assert_eq!(after.uri, "gcr.io/project");
    assert_eq!(after.config_json, r#"{"x":1}"#);
    assert_eq!(after.secret.as_deref(), Some("creds"));
    assert_eq!(after.created_at, before.created_at);
    assert!(
        after.updated_at > before.updated_at,
        "{after:?} vs {before:?}"
    );
    assert_eq!((before.version, after.version), (1, 2));
}

#[tokio::test]
async fn updating_a_missing_component_is_not_found() {
    let (_dir, store) = open_temp().await;
    let err = store
        .tenant("default")
        .update_component(&component("prod", "aws", None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                kind: "registry component",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn update_naming_a_missing_secret_leaves_the_component_as_it_was() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    let before = t.get_component("prod").await.unwrap().unwrap();
    let mut c = component("prod", "gcp", Some("nope"));
    c.version = before.version;
    let err = t.update_component(&c).await.unwrap_err();
    assert!(matches!(err, StoreError::SecretNotFound(_)), "{err:?}");
    assert_eq!(t.get_component("prod").await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn deleting_a_missing_component_is_not_found() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    let err = t.delete_component("prod").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                kind: "registry component",
                ..
            }
        ),
        "{err:?}"
    );
    t.insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    t.delete_component("prod").await.unwrap();
    assert_eq!(t.get_component("prod").await.unwrap(), None);
}

// ----- secrets -----

#[tokio::test]
async fn secret_round_trips_and_listing_omits_the_password() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.create_secret("creds", "bob", "hunter2").await.unwrap();
    t.create_secret("abc", "alice", "pw").await.unwrap();
    let got = t.get_secret("creds").await.unwrap().expect("secret");
    assert_eq!(
        (
            got.name.as_str(),
            got.username.as_str(),
            got.password.expose_secret()
        ),
        ("creds", "bob", "hunter2")
    );
    let list = t.list_secrets().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0].name.as_str(), list[0].username.as_str()),
        ("abc", "alice")
    );
    assert_eq!(
        (list[1].name.as_str(), list[1].username.as_str()),
        ("creds", "bob")
    );
    assert!(!list[0].created_at.is_empty());
    assert!(t.get_secret("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn creating_a_taken_secret_name_is_already_exists() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.create_secret("creds", "bob", "one").await.unwrap();
    let err = t.create_secret("creds", "eve", "two").await.unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists { kind: "secret", .. }),
        "{err:?}"
    );
    assert_eq!(
        t.get_secret("creds")
            .await
            .unwrap()
            .unwrap()
            .password
            .expose_secret(),
        "one"
    );
}

#[tokio::test]
async fn secret_in_use_is_not_deleted() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.create_secret("creds", "bob", "pw").await.unwrap();
    t.insert_component(&component("prod", "aws", Some("creds")))
        .await
        .unwrap();
    let err = t.delete_secret("creds").await.unwrap_err();
    match &err {
        StoreError::InUse {
            kind: "secret",
            name,
            by,
        } => {
            assert_eq!(name, "creds");
            assert_eq!(by, &["prod"]);
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    assert!(t.get_secret("creds").await.unwrap().is_some());

    let mut c = t.get_component("prod").await.unwrap().unwrap();
    c.secret = None;
    t.update_component(&c).await.unwrap();
    t.delete_secret("creds").await.unwrap();
    assert!(t.get_secret("creds").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_missing_secret_is_not_found() {
    let (_dir, store) = open_temp().await;
    let err = store
        .tenant("default")
        .delete_secret("creds")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { kind: "secret", .. }),
        "{err:?}"
    );
}

#[test]
fn secret_debug_hides_the_password() {
    let secret = SecretRecord {
        name: "creds".into(),
        username: "bob".into(),
        password: "hunter2".into(),
    };
    let shown = format!("{secret:?} {secret:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("bob") && shown.contains("REDACTED"),
        "{shown}"
    );
}

// ----- tenants -----

#[tokio::test]
async fn tenants_cannot_see_or_change_each_others_rows() {
    let (_dir, store) = open_temp().await;
    let a = store.tenant("a");
    let b = store.tenant("b");
    assert_eq!(a.tenant(), "a");
    b.insert_flavor(&flavor("aws"), None).await.unwrap();
    b.create_secret("creds", "bob", "b-secret").await.unwrap();
    b.insert_component(&component("prod", "aws", Some("creds")))
        .await
        .unwrap();

    // Not visible.
    assert_eq!(a.get_flavor("aws").await.unwrap(), None);
    assert_eq!(a.get_component("prod").await.unwrap(), None);
    assert!(a.get_secret("creds").await.unwrap().is_none());
    assert!(a.list_flavors().await.unwrap().is_empty());
    assert!(a.list_components().await.unwrap().is_empty());
    assert!(a.list_secrets().await.unwrap().is_empty());
    assert!(a.components_using_flavor("aws").await.unwrap().is_empty());

    // Not deletable or changeable.
    assert!(matches!(
        a.delete_flavor("aws").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        a.delete_component("prod").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        a.delete_secret("creds").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        a.update_component(&component("prod", "gcp", None)).await,
        Err(StoreError::NotFound { .. })
    ));

    // Another tenant's secret cannot be borrowed.
    let err = a
        .insert_component(&component("mine", "aws", Some("creds")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SecretNotFound(_)), "{err:?}");

    // Names may repeat across tenants, with separate contents.
    a.insert_flavor(&flavor("aws"), None).await.unwrap();
    a.create_secret("creds", "alice", "a-secret").await.unwrap();
    a.insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    assert_eq!(
        a.get_secret("creds")
            .await
            .unwrap()
            .unwrap()
            .password
            .expose_secret(),
        "a-secret"
    );
    assert_eq!(
        b.get_secret("creds")
            .await
            .unwrap()
            .unwrap()
            .password
            .expose_secret(),
        "b-secret"
    );
    assert_eq!(
        b.get_component("prod")
            .await
            .unwrap()
            .unwrap()
            .secret
            .as_deref(),
        Some("creds")
    );
    assert_eq!(a.get_component("prod").await.unwrap().unwrap().secret, None);

    // Deleting in one tenant leaves the other's rows.
    a.delete_component("prod").await.unwrap();
    a.delete_flavor("aws").await.unwrap();
    a.delete_secret("creds").await.unwrap();
    assert!(b.get_flavor("aws").await.unwrap().is_some());
    assert!(b.get_component("prod").await.unwrap().is_some());
    assert!(b.get_secret("creds").await.unwrap().is_some());
}

// ----- lifecycle -----

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let sha256 = {
        let store = Store::open(&home).await.unwrap();
        let t = store.tenant("default");
        t.insert_flavor(&flavor("aws"), None).await.unwrap();
        t.create_secret("creds", "bob", "pw").await.unwrap();
        t.insert_component(&component("prod", "aws", Some("creds")))
            .await
            .unwrap();
        let sha256 = store.blobs().put(b"wasm bytes").unwrap();
        store.close().await;
        sha256
    };
    let store = Store::open(&home).await.unwrap();
    let t = store.tenant("default");
    assert!(t.get_flavor("aws").await.unwrap().is_some());
    assert_eq!(
        t.get_secret("creds")
            .await
            .unwrap()
            .unwrap()
            .password
            .expose_secret(),
        "pw"
    );
    assert_eq!(
        t.get_component("prod")
            .await
            .unwrap()
            .unwrap()
            .secret
            .as_deref(),
        Some("creds")
    );
    assert_eq!(store.blobs().get(&sha256).unwrap(), b"wasm bytes");
}

#[tokio::test]
async fn two_stores_on_one_home_open_and_write_at_once() {
    // Two CLI processes: separate pools on the same fresh database.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let (one, two) = tokio::join!(Store::open(&home), Store::open(&home));
    let (one, two) = (one.unwrap(), two.unwrap());
    let write = |store: Store, prefix: &'static str| async move {
        let t = store.tenant("default");
        for i in 0..25 {
            t.create_secret(&format!("{prefix}-s{i}"), "u", "p").await?;
            t.insert_component(&component(
                &format!("{prefix}-c{i}"),
                "aws",
                Some(&format!("{prefix}-s{i}")),
            ))
            .await?;
        }
        Ok::<_, StoreError>(())
    };
    let (r1, r2) = tokio::join!(
        tokio::spawn(write(one.clone(), "one")),
        tokio::spawn(write(two, "two"))
    );
    r1.unwrap().unwrap();
    r2.unwrap().unwrap();
    assert_eq!(
        one.tenant("default").list_components().await.unwrap().len(),
        50
    );
}

#[cfg(unix)]
#[tokio::test]
async fn home_is_0700_and_database_files_are_0600() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = Store::open(&home).await.unwrap();
    let t = store.tenant("default");
    t.create_secret("creds", "bob", "pw").await.unwrap();
    t.insert_flavor(&flavor("aws"), None).await.unwrap();

    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("blobs")), 0o700);
    assert_eq!(mode(&home.join("blobs/sha256")), 0o700);
    assert_eq!(store.code_cache_dir(), home.join("cache/code"));
    assert_eq!(mode(&home.join("cache")), 0o700);
    assert_eq!(mode(store.code_cache_dir()), 0o700);
    assert_eq!(mode(&home.join("flavorbox.db")), 0o600);
    let wal = home.join("flavorbox.db-wal");
    assert!(wal.exists(), "WAL mode should leave a -wal file while open");
    assert_eq!(mode(&wal), 0o600);
    let shm = home.join("flavorbox.db-shm");
    if shm.exists() {
        assert_eq!(mode(&shm), 0o600);
    }
    let sha256 = store.blobs().put(b"x").unwrap();
    let file = BlobDir::new(home.join("blobs/sha256"))
        .path(&sha256)
        .unwrap();
    assert_eq!(mode(&file), 0o600);
}

#[cfg(unix)]
#[tokio::test]
async fn loose_database_permissions_are_tightened_on_open() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    Store::open(&home).await.unwrap().close().await;
    let db = home.join("flavorbox.db");
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
    let _store = Store::open(&home).await.unwrap();
    assert_eq!(mode(&db), 0o600);
}

#[cfg(unix)]
#[tokio::test]
async fn a_loose_code_cache_is_tightened_on_open() {
    // What the sandbox's own create_dir_all left behind before the store
    // owned the directory.
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let code = home.join("cache/code");
    fs::create_dir_all(&code).unwrap();
    fs::set_permissions(&code, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(code.join("kept.cwasm"), b"code").unwrap();
    let store = Store::open(&home).await.unwrap();
    assert_eq!(store.code_cache_dir(), code);
    assert_eq!(mode(&code), 0o700);
    assert_eq!(fs::read(code.join("kept.cwasm")).unwrap(), b"code");
}

// ----- blobs -----

#[tokio::test]
async fn blob_put_get_round_trips_and_is_idempotent() {
    if sqlite_only() {
        return;
    }
    let (dir, store) = open_temp().await;
    let blobs = store.blobs();
    let sha256 = blobs.put(b"hello").unwrap();
    assert_eq!(
        sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(blobs.put(b"hello").unwrap(), sha256);
    assert_eq!(blobs.get(&sha256).unwrap(), b"hello");
    assert!(blobs.contains(&sha256).unwrap());
    assert!(!blobs.contains(DIGEST).unwrap());
    let file = blob_dir(&dir).path(&sha256).unwrap();
    assert!(file.ends_with(format!("home/blobs/sha256/{sha256}")));
    assert_eq!(fs::read(&file).unwrap(), b"hello");
    // No temporary files left behind.
    let entries = fs::read_dir(file.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1);
}

#[tokio::test]
async fn missing_blob_is_not_found() {
    if sqlite_only() {
        return;
    }
    let (_dir, store) = open_temp().await;
    let err = store.blobs().get(DIGEST).unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { kind: "blob", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn corrupt_blob_is_detected_and_repaired_by_put() {
    if sqlite_only() {
        return;
    }
    let (dir, store) = open_temp().await;
    let blobs = store.blobs();
    let sha256 = blobs.put(b"original").unwrap();
    fs::write(blob_dir(&dir).path(&sha256).unwrap(), b"tampered").unwrap();
    let err = blobs.get(&sha256).unwrap_err();
    assert!(
        matches!(&err, StoreError::CorruptBlob { sha256: s } if *s == sha256),
        "{err:?}"
    );
    blobs.put(b"original").unwrap();
    assert_eq!(blobs.get(&sha256).unwrap(), b"original");
}

#[tokio::test]
async fn blob_names_that_are_not_digests_are_rejected() {
    if sqlite_only() {
        return;
    }
    let (dir, store) = open_temp().await;
    let blobs = store.blobs();
    let upper = DIGEST.to_uppercase();
    let long = format!("{DIGEST}0");
    let traversal = format!("../../{}", &DIGEST[6..]);
    for bad in [
        "",
        "..",
        "../flavorbox.db",
        "/etc/passwd",
        &DIGEST[1..],
        &long,
        &upper,
        &traversal,
    ] {
        assert!(
            matches!(blobs.get(bad), Err(StoreError::InvalidDigest(_))),
            "{bad}"
        );
        assert!(
            matches!(blobs.contains(bad), Err(StoreError::InvalidDigest(_))),
            "{bad}"
        );
        assert!(
            matches!(blob_dir(&dir).path(bad), Err(StoreError::InvalidDigest(_))),
            "{bad}"
        );
    }
}

// ----- time and SQL portability -----

/// The instant `secs` seconds and `nanos` nanoseconds after the Unix epoch.
fn at(secs: i64, nanos: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap() + time::Duration::nanoseconds(nanos)
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(format_rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        format_rfc3339(at(951_782_400, 5_000_000)),
        "2000-02-29T00:00:00.005Z"
    );
    assert_eq!(
        format_rfc3339(at(1_700_000_000, 123_000_000)),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(
        format_rfc3339(at(4_102_444_799, 999_000_000)),
        "2099-12-31T23:59:59.999Z"
    );
    assert_eq!(format_rfc3339(at(-1, 0)), "1969-12-31T23:59:59.000Z");
}

#[test]
fn timestamps_truncate_to_milliseconds_and_are_written_in_utc() {
    // Truncated, not rounded: the old hand-written formatter did the same,
    // so a row written by it and one written now compare in time order.
    assert_eq!(
        format_rfc3339(at(1_700_000_000, 999_999_999)),
        "2023-11-14T22:13:20.999Z"
    );
    let elsewhere = at(1_700_000_000, 0).to_offset(time::UtcOffset::from_hms(5, 30, 0).unwrap());
    assert_eq!(format_rfc3339(elsewhere), "2023-11-14T22:13:20.000Z");
    let now = now_rfc3339();
    assert_eq!(now.len(), "2024-01-01T00:00:00.000Z".len(), "{now}");
    assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
}

#[tokio::test]
async fn numbered_placeholders_bind_by_number_in_sqlite() {
    // The store writes `$n` (PostgreSQL syntax); sqlx-sqlite must bind by the
    // number, including a placeholder used twice, not by position.
    let (_dir, store) = open_temp().await;
    let row: (String, String, String) = sqlx::query_as("SELECT $2, $1, $2")
        .bind("one")
        .bind("two")
        .fetch_one(store.db.pool().unwrap())
        .await
        .unwrap();
    assert_eq!(row, ("two".into(), "one".into(), "two".into()));
}

#[test]
fn error_messages_say_what_to_do() {
    let err = StoreError::NotFound {
        kind: "flavor",
        name: "x".into(),
    };
    assert_eq!(
        err.to_string(),
        "flavor `x` does not exist: check the name against the list of flavors"
    );
    let err = StoreError::AlreadyExists {
        kind: "secret",
        name: "x".into(),
    };
    assert_eq!(
        err.to_string(),
        "secret `x` already exists: choose another name, or delete the existing secret first"
    );
}

#[tokio::test]
async fn database_itself_refuses_a_component_naming_a_missing_secret() {
    // The foreign key backs the store's own check, for writers that race it.
    let (_dir, store) = open_temp().await;
    let err = sqlx::query(
        "INSERT INTO components \
         (tenant, name, flavor, uri, config_json, secret, created_at, updated_at) \
         VALUES ('t', 'c', 'f', 'u', '{}', 'missing', 'now', 'now')",
    )
    .execute(store.db.pool().unwrap())
    .await
    .unwrap_err();
    let err = component_write_error(err, &component("c", "f", Some("missing")));
    assert!(matches!(err, StoreError::SecretNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn an_update_based_on_a_stale_read_is_a_conflict_and_changes_nothing() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    let first = t.get_component("prod").await.unwrap().unwrap();
    let stale = first.clone();
    // No pause between the two: versions, unlike millisecond timestamps,
    // tell updates in the same instant apart.
    let mut a = first;
    a.config_json = r#"{"a":1}"#.to_owned();
    t.update_component(&a).await.unwrap();

    let mut b = stale;
    b.config_json = r#"{"b":2}"#.to_owned();
    let err = t.update_component(&b).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { kind: "registry component", name } if name == "prod"),
        "{err:?}"
    );
    assert!(err.to_string().contains("run the command again"));
    let now = t.get_component("prod").await.unwrap().unwrap();
    assert_eq!(now.config_json, r#"{"a":1}"#);
    assert_eq!(now.version, 2);

    // Read again, and the update goes through.
    let mut c = now;
    c.config_json = r#"{"c":3}"#.to_owned();
    t.update_component(&c).await.unwrap();
    assert_eq!(t.get_component("prod").await.unwrap().unwrap().version, 3);
}

#[tokio::test]
async fn two_updates_from_the_same_read_at_once_conflict_and_one_wins() {
    // Two processes: separate pools on one database, racing the same read.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let one = Store::open(&home).await.unwrap();
    let two = Store::open(&home).await.unwrap();
    one.tenant("default")
        .insert_component(&component("prod", "aws", None))
        .await
        .unwrap();
    let read = one
        .tenant("default")
        .get_component("prod")
        .await
        .unwrap()
        .unwrap();
    let update = |store: Store, config: &'static str| {
        let mut r = read.clone();
        r.config_json = config.to_owned();
        async move { store.tenant("default").update_component(&r).await }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(update(one.clone(), r#"{"by":"one"}"#)),
        tokio::spawn(update(two, r#"{"by":"two"}"#))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let winner = match (&a, &b) {
        (Ok(()), Err(StoreError::Conflict { .. })) => r#"{"by":"one"}"#,
        (Err(StoreError::Conflict { .. }), Ok(())) => r#"{"by":"two"}"#,
        other => panic!("expected one success and one conflict, got {other:?}"),
    };
    let now = one
        .tenant("default")
        .get_component("prod")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.config_json, winner);
    assert_eq!(now.version, read.version + 1);
}

#[tokio::test]
async fn update_of_a_missing_component_is_not_found_whatever_the_version() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    for version in [0, 1, 2] {
        let mut c = component("prod", "aws", None);
        c.version = version;
        let err = t.update_component(&c).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn update_refused_after_the_write_rolls_the_write_back() {
    // The version check writes first; a flavor digest that no longer
    // matches must then leave the row, version included, as it was.
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.insert_flavor(&flavor("aws"), None).await.unwrap();
    let mut c = component("prod", "aws", None);
    c.flavor_sha256 = Some(DIGEST.to_owned());
    t.insert_component(&c).await.unwrap();
    let before = t.get_component("prod").await.unwrap().unwrap();

    let mut changed = before.clone();
    changed.config_json = r#"{"x":1}"#.to_owned();
    changed.flavor_sha256 = Some("b".repeat(64));
    let err = t.update_component(&changed).await.unwrap_err();
    assert!(matches!(err, StoreError::FlavorReplaced(_)), "{err:?}");
    assert_eq!(t.get_component("prod").await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn a_database_from_before_versions_migrates_and_its_rows_start_at_version_1() {
    use sqlx::migrate::Migrator;
    use sqlx::sqlite::SqliteConnectOptions;

    // Build a version-2 database with the first two migrations only.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let old_migrations = dir.path().join("migrations").join("sqlite");
    fs::create_dir_all(&old_migrations).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join("sqlite");
    for file in ["0001_init.sql", "0002_component_flavor_digest.sql"] {
        fs::copy(source.join(file), old_migrations.join(file)).unwrap();
    }
    let pool = sqlx::SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(home.join("flavorbox.db"))
            .create_if_missing(true),
    )
    .await
    .unwrap();
    Migrator::new(old_migrations.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO components (tenant, name, flavor, uri, config_json, created_at, updated_at) \
         VALUES ('default', 'prod', 'aws', 'registry.example.com/prod', '{}', \
         '2024-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = Store::open(&home).await.unwrap();
    let t = store.tenant("default");
    let old = t.get_component("prod").await.unwrap().unwrap();
    assert_eq!(old.version, 1);
    assert_eq!(old.updated_at, "2024-01-01T00:00:00.000Z");
    let mut changed = old.clone();
    changed.config_json = r#"{"x":1}"#.to_owned();
    t.update_component(&changed).await.unwrap();
    let new = t.get_component("prod").await.unwrap().unwrap();
    assert_eq!(new.version, 2);
    assert!(new.updated_at > old.updated_at, "{new:?}");
    let err = t.update_component(&changed).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn a_component_must_name_the_flavor_content_that_validated_it() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    let sha = "a".repeat(64);
    rows_only_blob(&store, &sha).await;
    t.insert_flavor(
        &FlavorRecord {
            name: "mine".to_owned(),
            sha256: sha.clone(),
            metadata_json: "{}".to_owned(),
            registered_at: String::new(),
            origin: None,
        },
        None,
    )
    .await
    .unwrap();
    let mut c = component("prod", "mine", None);
    c.flavor_sha256 = Some("b".repeat(64));
    let err = t.insert_component(&c).await.unwrap_err();
    assert!(matches!(err, StoreError::FlavorReplaced(_)), "{err:?}");
    assert!(t.get_component("prod").await.unwrap().is_none());

    c.flavor_sha256 = Some(sha.clone());
    t.insert_component(&c).await.unwrap();
    assert_eq!(
        t.get_component("prod")
            .await
            .unwrap()
            .unwrap()
            .flavor_sha256,
        Some(sha)
    );
    // Another tenant's flavor of the same name and content does not count.
    let other = store.tenant("other");
    let err = other.insert_component(&c).await.unwrap_err();
    assert!(matches!(err, StoreError::FlavorReplaced(_)), "{err:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_world_writable_home_is_refused_and_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = Store::open(&home).await.expect_err("refused");
    assert!(matches!(err, StoreError::UnsafeDir { .. }), "{err}");
    assert!(err.to_string().contains("chmod 700"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&home).expect("dir").flatten().collect();
    assert!(
        left.is_empty(),
        "nothing is created in a refused home: {left:?}"
    );

    // A group-writable blob directory inside a good home is refused too.
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    Store::open(&home).await.expect("opens once private");
    std::fs::set_permissions(home.join("blobs"), std::fs::Permissions::from_mode(0o775))
        .expect("chmod");
    assert!(matches!(
        Store::open(&home).await,
        Err(StoreError::UnsafeDir { .. })
    ));
}

#[tokio::test]
async fn the_code_cache_key_is_made_once_owner_only_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let first = Store::open(&home).await.expect("open").code_cache_key();
    let second = Store::open(&home).await.expect("reopen").code_cache_key();
    assert_eq!(first, second, "the key survives a restart");
    assert_ne!(first, [0u8; 32]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(home.join(CODE_CACHE_KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}

#[tokio::test]
async fn a_flavor_keeps_its_origin_and_is_replaced_only_from_the_content_read() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("default");
    let mut record = flavor("pulled");
    record.origin = Some(crate::FlavorOrigin {
        reference: "oci://127.0.0.1:5000/acme:1".to_owned(),
        digest: format!("sha256:{}", "c".repeat(64)),
        key: None,
    });
    t.insert_flavor(&record, None).await.unwrap();
    let stored = t.get_flavor("pulled").await.unwrap().unwrap();
    assert_eq!(stored.origin, record.origin);
    assert_eq!(
        t.get_flavor("pulled").await.unwrap().unwrap().sha256,
        DIGEST
    );

    let mut moved = record.clone();
    moved.sha256 = "d".repeat(64);
    rows_only_blob(&store, &moved.sha256).await;
    if let Some(origin) = moved.origin.as_mut() {
        origin.digest = format!("sha256:{}", "e".repeat(64));
        origin.key = Some("sha256:key".to_owned());
    }
    // Replacing from content the row no longer has is a conflict.
    let stale = t.replace_flavor(&moved, &"f".repeat(64), None).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!(
        t.get_flavor("pulled").await.unwrap().unwrap().sha256,
        DIGEST
    );
    t.insert_component(&component("prod", "pulled", None))
        .await
        .unwrap();
    let users = t.replace_flavor(&moved, DIGEST, None).await.unwrap();
    assert_eq!(users, vec!["prod".to_owned()]);
    let now = t.get_flavor("pulled").await.unwrap().unwrap();
    assert_eq!((now.sha256, now.origin), (moved.sha256, moved.origin));
    // Another tenant sees none of it.
    assert!(
        store
            .tenant("other")
            .get_flavor("pulled")
            .await
            .unwrap()
            .is_none()
    );
}

// ----- faults: identity, key, sweep, blob lifetime -----

/// A flavor record for `content`, under `name`.
fn flavor_of(name: &str, content: &[u8]) -> FlavorRecord {
    use sha2::Digest as _;
    FlavorRecord {
        sha256: hex::encode(sha2::Sha256::digest(content)),
        ..flavor(name)
    }
}

#[tokio::test]
async fn a_home_whose_database_is_gone_is_refused_not_started_empty() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = Store::open(&home).await.unwrap();
    store
        .tenant("default")
        .insert_flavor(&flavor_of("mine", b"wasm"), Some(b"wasm"))
        .await
        .unwrap();
    store.close().await;
    let listing = |home: &Path| {
        let mut names: Vec<_> = fs::read_dir(home.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let blobs_before = listing(&home);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(home.join(format!("flavorbox.db{suffix}")));
    }
    let err = Store::open(&home).await.unwrap_err();
    assert!(matches!(err, StoreError::StateMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("refusing to create an empty database"),
        "{err}"
    );
    assert!(
        !home.join("flavorbox.db").exists(),
        "no empty database made"
    );
    assert_eq!(listing(&home), blobs_before);
    // Without the marker, the blobs alone say so too.
    fs::remove_file(home.join("state-id")).unwrap();
    let err = Store::open(&home).await.unwrap_err();
    assert!(err.to_string().contains("1 stored flavor blob"), "{err}");
}

#[tokio::test]
async fn a_database_of_another_home_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    Store::open(&a).await.unwrap().close().await;
    Store::open(&b).await.unwrap().close().await;
    // The whole database of `a` (with its log, if one is left) replaces b's.
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("flavorbox.db{suffix}");
        let _ = fs::remove_file(b.join(&name));
        if a.join(&name).exists() {
            fs::copy(a.join(&name), b.join(&name)).unwrap();
        }
    }
    let err = Store::open(&b).await.unwrap_err();
    assert!(err.to_string().contains("is not this directory's"), "{err}");
}

#[tokio::test]
async fn a_database_removed_under_the_store_refuses_reads_and_writes() {
    if sqlite_only() {
        return;
    }
    let (dir, store) = open_temp().await;
    let t = store.tenant("default");
    t.create_secret("before", "u", "p").await.unwrap();
    store.check_database().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(dir.path().join(format!("home/flavorbox.db{suffix}")));
    }
    assert!(matches!(
        store.check_database(),
        Err(StoreError::DatabaseGone { .. })
    ));
    let err = t.create_secret("after", "u", "p").await.unwrap_err();
    assert!(matches!(err, StoreError::DatabaseGone { .. }), "{err:?}");
    let err = t
        .insert_flavor(&flavor_of("x", b"x"), Some(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DatabaseGone { .. }), "{err:?}");
}

#[tokio::test]
async fn a_damaged_code_cache_key_is_replaced_and_its_cache_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let first = Store::open(&home).await.unwrap();
    let key = first.code_cache_key();
    first.close().await;
    fs::write(home.join("cache/code/old.cwasm"), b"code").unwrap();
    fs::write(home.join("code-cache.key"), b"short").unwrap();
    let store = Store::open(&home).await.unwrap();
    assert_ne!(store.code_cache_key(), key);
    assert_eq!(fs::read(home.join("code-cache.key")).unwrap().len(), 32);
    assert_eq!(
        fs::read(home.join("code-cache.key")).unwrap(),
        store.code_cache_key()
    );
    assert!(!home.join("cache/code/old.cwasm").exists());
}

#[tokio::test]
async fn registering_the_same_content_again_repairs_its_blob() {
    if sqlite_only() {
        return;
    }
    let (dir, store) = open_temp().await;
    let t = store.tenant("default");
    let record = flavor_of("mine", b"the component");
    assert!(
        t.insert_flavor(&record, Some(b"the component"))
            .await
            .unwrap()
    );
    let file = blob_dir(&dir).path(&record.sha256).unwrap();
    fs::write(&file, b"the c0mponent").unwrap();
    assert!(matches!(
        store.blobs().get(&record.sha256),
        Err(StoreError::CorruptBlob { .. })
    ));
    assert!(
        !t.insert_flavor(&record, Some(b"the component"))
            .await
            .unwrap()
    );
    assert_eq!(store.blobs().get(&record.sha256).unwrap(), b"the component");
}

#[tokio::test]
async fn identical_concurrent_registrations_all_succeed_once() {
    let (_dir, store) = open_temp().await;
    let record = flavor_of("mine", b"same bytes");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let t = store.tenant("default");
            let record = record.clone();
            tokio::spawn(async move { t.insert_flavor(&record, Some(b"same bytes")).await })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            inserted += 1;
        }
    }
    assert_eq!(inserted, 1);
    assert_eq!(
        store.tenant("default").list_flavors().await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_blob_is_collected_only_when_no_flavor_uses_it() {
    let (_dir, store) = open_temp().await;
    let (a, b) = (store.tenant("a"), store.tenant("b"));
    let record = flavor_of("mine", b"shared");
    a.insert_flavor(&record, Some(b"shared")).await.unwrap();
    b.insert_flavor(&record, Some(b"shared")).await.unwrap();
    a.delete_flavor("mine").await.unwrap();
    assert!(!store.collect_blob(&record.sha256).await.unwrap());
    assert_eq!(store.blob(&record.sha256).await.unwrap(), b"shared");
    b.delete_flavor("mine").await.unwrap();
    assert!(store.collect_blob(&record.sha256).await.unwrap());
    assert!(matches!(
        store.blob(&record.sha256).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_sweep_collects_the_blobs_no_flavor_uses_and_keeps_the_rest() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("a");
    let (kept, dropped) = (flavor_of("kept", b"kept"), flavor_of("dropped", b"dropped"));
    t.insert_flavor(&kept, Some(b"kept")).await.unwrap();
    t.insert_flavor(&dropped, Some(b"dropped")).await.unwrap();
    // A delete whose collection never ran (a kill in between).
    t.delete_flavor("dropped").await.unwrap();
    let report = store.sweep(Default::default).await.unwrap();
    // On PostgreSQL the rows-only placeholder blob goes too.
    let orphans = if on_postgres() { 2 } else { 1 };
    assert_eq!(report.orphan_blobs, orphans, "{report:?}");
    assert_eq!(store.blob(&kept.sha256).await.unwrap(), b"kept");
    assert!(matches!(
        store.blob(&dropped.sha256).await,
        Err(StoreError::NotFound { .. })
    ));
    // The dropped content registered again is whole.
    t.insert_flavor(&dropped, Some(b"dropped")).await.unwrap();
    assert_eq!(store.blob(&dropped.sha256).await.unwrap(), b"dropped");
}

#[tokio::test]
async fn a_sweep_removes_what_dead_writers_left_and_keeps_what_is_used() {
    if sqlite_only() {
        return;
    }
    let (dir, store) = open_temp().await;
    let home = dir.path().join("home");
    let used = flavor_of("mine", b"used");
    store
        .tenant("default")
        .insert_flavor(&used, Some(b"used"))
        .await
        .unwrap();
    let orphan = store.blobs().put(b"orphan").unwrap();
    let blobs = home.join("blobs/sha256");
    let code = home.join("cache/code");
    // A pid no process has (above the kernel's pid_max).
    let dead = ".tmp-99999999-1";
    fs::write(blobs.join(dead), b"half a blob").unwrap();
    fs::write(code.join(format!("{dead}abc")), b"half the code").unwrap();
    fs::write(home.join(format!("{dead}key")), b"half a key").unwrap();
    let live = format!("{}live", super::temp_prefix());
    fs::write(code.join(&live), b"being written").unwrap();
    let builtin = "b".repeat(64);
    for sha in [&used.sha256, &orphan, &builtin] {
        fs::write(code.join(format!("{sha}-0123456789abcdef.cwasm")), b"code").unwrap();
    }
    let report = store
        .sweep(|| [builtin.clone()].into_iter().collect())
        .await
        .unwrap();
    assert_eq!(
        (report.temp_files, report.orphan_blobs, report.orphan_code),
        (3, 1, 1),
        "{report:?}"
    );
    let left = |dir: &Path| {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(left(&blobs), std::slice::from_ref(&used.sha256));
    let mut code_left = vec![
        format!("{}-0123456789abcdef.cwasm", builtin),
        format!("{}-0123456789abcdef.cwasm", used.sha256),
        live,
    ];
    code_left.sort();
    assert_eq!(left(&code), code_left);
    assert!(!home.join(format!("{dead}key")).exists());
    // Nothing left: a second sweep removes nothing.
    let again = store
        .sweep(|| [builtin.clone()].into_iter().collect())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

// ----- jobs -----

fn job(id: &str) -> JobRecord {
    JobRecord {
        id: id.to_owned(),
        component: "prod".to_owned(),
        image: "registry.example.com/team/app:1".to_owned(),
        status: JobStatus::Queued,
        detail_json: "{}".to_owned(),
        created_at: String::new(),
        updated_at: String::new(),
        attempt: 0,
        owner: String::new(),
    }
}

#[tokio::test]
async fn concurrent_jobs_never_exceed_the_quota() {
    let (_dir, store) = open_temp().await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let t = store.tenant("acme");
            tokio::spawn(async move { t.insert_job(&job(&format!("job{i:02}")), Some(4)).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(StoreError::QuotaExceeded { max: 4, .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(accepted, 4);
    assert_eq!(store.tenant("acme").active_jobs().await.unwrap(), 4);
    // Another tenant has its own slots.
    store
        .tenant("other")
        .insert_job(&job("elsewhere"), Some(4))
        .await
        .unwrap();
}

#[tokio::test]
async fn finished_job_history_is_pruned_to_its_bounds() {
    let (_dir, store) = open_temp().await;
    let keep = 10;
    let t = store.tenant("acme").with_job_history(JobHistory {
        max_count: keep,
        ..JOB_HISTORY
    });
    // An old finished job, a running one and more finished ones than kept.
    t.insert_job(&job("ancient"), None).await.unwrap();
    t.update_job("ancient", JobStatus::Succeeded, "{}")
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET created_at = '2000-01-01T00:00:00.000Z' WHERE id = 'ancient'")
        .execute(store.db.pool().unwrap())
        .await
        .unwrap();
    t.insert_job(&job("running"), None).await.unwrap();
    t.update_job("running", JobStatus::Running, "{}")
        .await
        .unwrap();
    for i in 0..keep + 5 {
        let id = format!("done{i:05}");
        t.insert_job(&job(&id), None).await.unwrap();
        t.update_job(&id, JobStatus::Failed, "{}").await.unwrap();
    }
    t.insert_job(&job("last"), None).await.unwrap();
    assert!(t.get_job("ancient").await.unwrap().is_none());
    assert!(t.get_job("running").await.unwrap().is_some());
    assert!(t.get_job("last").await.unwrap().is_some());
    let (finished,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM jobs WHERE tenant = 'acme' AND status NOT IN ('queued', 'running')",
    )
    .fetch_one(store.db.pool().unwrap())
    .await
    .unwrap();
    assert_eq!(u64::try_from(finished).unwrap(), keep);
}

#[tokio::test]
async fn a_job_status_this_version_never_writes_is_an_error_naming_the_job() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("acme");
    t.insert_job(&job("future"), None).await.unwrap();
    for status in JobStatus::ALL {
        // Only an active job is written: start each round from queued.
        sqlx::query("UPDATE jobs SET status = 'queued' WHERE id = 'future'")
            .execute(store.db.pool().unwrap())
            .await
            .unwrap();
        t.update_job("future", status, "{}").await.unwrap();
        let read = t.get_job("future").await.unwrap().expect("the job");
        assert_eq!(read.status, status, "{status} reads back as itself");
    }
    sqlx::query("UPDATE jobs SET status = 'paused' WHERE id = 'future'")
        .execute(store.db.pool().unwrap())
        .await
        .unwrap();
    let err = t.get_job("future").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::CorruptRecord { name, .. } if name == "future"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("job `future`")
            && message.contains("`paused`")
            && message.contains("restore the database from a backup"),
        "{message}"
    );
}

#[tokio::test]
async fn only_a_queued_job_is_deleted_as_never_started() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("acme");
    t.insert_job(&job("reserved"), Some(1)).await.unwrap();
    assert!(
        matches!(
            t.insert_job(&job("second"), Some(1)).await,
            Err(StoreError::QuotaExceeded { max: 1, .. })
        ),
        "the reservation holds the only slot"
    );
    assert!(
        !store
            .tenant("other")
            .delete_queued_job("reserved")
            .await
            .unwrap()
    );
    assert!(t.delete_queued_job("reserved").await.unwrap());
    assert!(t.get_job("reserved").await.unwrap().is_none());
    t.insert_job(&job("second"), Some(1))
        .await
        .expect("the slot is free again");
    t.update_job("second", JobStatus::Running, "{}")
        .await
        .unwrap();
    assert!(!t.delete_queued_job("second").await.unwrap(), "it started");
    assert!(t.get_job("second").await.unwrap().is_some());
}

#[tokio::test]
async fn a_flavor_with_part_of_an_origin_is_an_error_not_a_flavor_without_one() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("acme");
    t.insert_flavor(&flavor("half"), None).await.unwrap();
    sqlx::query(
        "UPDATE flavors SET origin_reference = 'oci://example.com/f:1' WHERE name = 'half'",
    )
    .execute(store.db.pool().unwrap())
    .await
    .unwrap();
    for err in [
        t.get_flavor("half").await.unwrap_err(),
        t.list_flavors().await.unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(
            message.contains("flavor `half`") && message.contains("origin_digest missing"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn secrets_are_bounded_by_count_and_bytes() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("acme").with_quota(RowQuota {
        max_secrets: Some(2),
        max_secret_bytes: Some(100),
        ..RowQuota::default()
    });
    t.create_secret("a", "user", "p".repeat(40).as_str())
        .await
        .unwrap();
    let err = t
        .create_secret("big", "user", "p".repeat(60).as_str())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BytesQuotaExceeded { max: 100, .. }),
        "{err:?}"
    );
    t.create_secret("b", "user", "small").await.unwrap();
    let err = t.create_secret("c", "user", "small").await.unwrap_err();
    assert!(
        matches!(err, StoreError::QuotaExceeded { max: 2, .. }),
        "{err:?}"
    );
    let names: Vec<_> = t
        .list_secrets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
}

fn event(action: &str, verdict: &str, image: &str) -> AuditEntry {
    AuditEntry {
        action: action.to_owned(),
        verdict: verdict.to_owned(),
        image: Some(image.to_owned()),
        replica: "replica-a".to_owned(),
        ..AuditEntry::default()
    }
}

#[tokio::test]
async fn the_audit_trail_is_per_tenant_newest_first_paged_filtered_and_pruned() {
    let (_dir, store) = open_temp().await;
    let (a, b) = (store.tenant("a"), store.tenant("b"));
    for i in 0..5 {
        let verdict = if i % 2 == 0 { "allowed" } else { "denied" };
        a.append_audit(&event("check", verdict, &format!("r/app:{i}")))
            .await
            .unwrap();
    }
    store
        .append_audit(&[("b".to_owned(), event("push", "pushed", "r/b:1"))])
        .await
        .unwrap();

    let all = |before: Option<i64>, limit: u32| AuditFilter {
        before,
        limit,
        ..AuditFilter::default()
    };
    let page = a.audit(&all(None, 100)).await.unwrap();
    let images: Vec<_> = page
        .iter()
        .map(|r| r.entry.image.clone().unwrap())
        .collect();
    assert_eq!(
        images,
        ["r/app:4", "r/app:3", "r/app:2", "r/app:1", "r/app:0"]
    );
    assert!(
        page.iter()
            .all(|r| r.tenant == "a" && r.at.ends_with('Z') && r.at.len() == 24)
    );
    assert!(
        page.windows(2)
            .all(|w| w[0].id > w[1].id && w[0].at >= w[1].at)
    );
    assert_eq!(
        b.audit(&all(None, 100)).await.unwrap().len(),
        1,
        "b sees its own only"
    );
    assert_eq!(store.audit(None, &all(None, 100)).await.unwrap().len(), 6);
    assert_eq!(
        store.audit(Some("b"), &all(None, 100)).await.unwrap().len(),
        1
    );

    // Keyset pages of two walk every row once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = a.audit(&all(before, 2)).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.id);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));

    let denied = AuditFilter {
        verdict: Some("denied".into()),
        limit: 100,
        ..AuditFilter::default()
    };
    assert_eq!(a.audit(&denied).await.unwrap().len(), 2);
    let one = AuditFilter {
        image: Some("r/app:3".into()),
        limit: 100,
        ..AuditFilter::default()
    };
    assert_eq!(a.audit(&one).await.unwrap()[0].entry.verdict, "denied");
    let future = AuditFilter {
        since: Some("2999-01-01T00:00:00.000Z".into()),
        limit: 100,
        ..AuditFilter::default()
    };
    assert!(a.audit(&future).await.unwrap().is_empty());

    // Retention removes what is older than the cutoff, of every tenant.
    assert_eq!(
        store.prune_audit("2000-01-01T00:00:00.000Z").await.unwrap(),
        0
    );
    assert_eq!(
        store.prune_audit("2999-01-01T00:00:00.000Z").await.unwrap(),
        6
    );
    assert!(store.audit(None, &all(None, 100)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deleted_tenants_trail_goes_with_it() {
    let (_dir, store) = open_temp().await;
    store.create_tenant("gone", &"a".repeat(64)).await.unwrap();
    store.create_tenant("stays", &"b".repeat(64)).await.unwrap();
    for tenant in ["gone", "stays"] {
        store
            .tenant(tenant)
            .append_audit(&event("check", "allowed", "r/app:1"))
            .await
            .unwrap();
    }
    store.delete_tenant("gone").await.unwrap();
    let all = AuditFilter {
        limit: 10,
        ..AuditFilter::default()
    };
    let left = store.audit(None, &all).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].tenant, "stays");
}

#[test]
fn the_migrations_are_the_same_on_both_databases_where_the_sql_is_portable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let names = |dir: &str| {
        let mut names: Vec<String> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("sqlite"),
        names("postgres"),
        "one migration per version on both"
    );
    // What may differ, and why: the audit id (SQLite's rowid, PostgreSQL's
    // identity column) and where blobs live (files, or a table).
    let allowed: &[(&str, Option<usize>)] =
        &[("0008_audit.sql", Some(1)), ("0009_blobs.sql", None)];
    for name in names("sqlite") {
        let read = |dir: &str| fs::read_to_string(root.join(dir).join(&name)).unwrap();
        let (lite, pg) = (read("sqlite"), read("postgres"));
        let differing = lite.lines().zip(pg.lines()).filter(|(a, b)| a != b).count()
            + lite.lines().count().abs_diff(pg.lines().count());
        match allowed.iter().find(|(n, _)| *n == name) {
            None => assert_eq!(lite, pg, "{name} differs between the databases"),
            Some((_, Some(lines))) => assert_eq!(differing, *lines, "{name}"),
            Some((_, None)) => {}
        }
    }
}

#[tokio::test]
async fn registrations_racing_on_two_stores_never_exceed_the_quota() {
    let (_dir, one, two) = open_pair().await;
    let quota = RowQuota {
        max_flavors: Some(5),
        ..RowQuota::default()
    };
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        let t = store.tenant("acme").with_quota(quota);
        tasks.push(tokio::spawn(async move {
            let content = format!("flavor {i}");
            let record = flavor_of(&format!("f{i}"), content.as_bytes());
            t.insert_flavor(&record, Some(content.as_bytes())).await
        }));
    }
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => {}
            Err(StoreError::QuotaExceeded { .. }) => refused += 1,
            Err(e) => panic!("unexpected: {e:?}"),
        }
    }
    assert_eq!(refused, 15);
    assert_eq!(one.tenant("acme").list_flavors().await.unwrap().len(), 5);
    assert_eq!(two.tenant("acme").list_flavors().await.unwrap().len(), 5);
}

#[tokio::test]
async fn racing_deletes_and_registrations_leave_every_flavor_with_its_blob() {
    let (_dir, one, two) = open_pair().await;
    let record = flavor_of("shared", b"shared content");
    for round in 0..50 {
        let (a, b) = (one.tenant("a"), two.tenant("b"));
        a.insert_flavor(&record, Some(b"shared content"))
            .await
            .unwrap();
        // One store deletes and collects, the other registers the same
        // content for another tenant, at once.
        let deleter = {
            let (a, one) = (a.clone(), one.clone());
            let sha256 = record.sha256.clone();
            tokio::spawn(async move {
                a.delete_flavor("shared").await.unwrap();
                one.collect_blob(&sha256).await.unwrap()
            })
        };
        let registrar = {
            let record = record.clone();
            tokio::spawn(async move { b.insert_flavor(&record, Some(b"shared content")).await })
        };
        deleter.await.unwrap();
        registrar.await.unwrap().unwrap();
        for store in [&one, &two] {
            assert_eq!(
                store.blob(&record.sha256).await.unwrap(),
                b"shared content",
                "round {round}"
            );
        }
        two.tenant("b").delete_flavor("shared").await.unwrap();
        two.collect_blob(&record.sha256).await.unwrap();
    }
}

#[tokio::test]
async fn a_job_whose_lease_ran_out_is_interrupted_and_its_owner_writes_nothing_more() {
    let (_dir, store) = open_temp().await;
    let mine = store.tenant("acme").with_job_owner("replica-1");
    mine.insert_job(&job("j1"), None).await.unwrap();
    mine.update_job("j1", JobStatus::Running, "{}")
        .await
        .unwrap();
    // A live lease: nobody takes the job.
    assert_eq!(store.interrupt_lost_jobs(None, "{}").await.unwrap(), 0);
    assert_eq!(
        store
            .renew_job_leases("replica-1", JOB_LEASE)
            .await
            .unwrap(),
        1
    );
    // The owner stops renewing (paused) until the lease is behind the clock.
    expire_leases(&store).await;
    assert_eq!(
        store
            .interrupt_lost_jobs(None, r#"{"why":"lease"}"#)
            .await
            .unwrap(),
        1
    );
    // Back from its pause, the owner's writes are fenced off.
    let err = mine
        .update_job("j1", JobStatus::Succeeded, "{}")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::JobLeaseLost(_)), "{err:?}");
    let stored = mine.get_job("j1").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.detail_json.as_str()),
        (JobStatus::Interrupted, r#"{"why":"lease"}"#)
    );
    // Renewing brings nothing back.
    assert_eq!(
        store
            .renew_job_leases("replica-1", JOB_LEASE)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_restart_interrupts_its_own_jobs_and_never_another_replicas() {
    let (_dir, one, two) = open_pair().await;
    let first = one.tenant("acme").with_job_owner("replica-1");
    let second = two.tenant("acme").with_job_owner("replica-2");
    first.insert_job(&job("a"), None).await.unwrap();
    second.insert_job(&job("b"), None).await.unwrap();
    // replica-1 restarts under its name: its job is interrupted, not b.
    assert_eq!(
        one.interrupt_lost_jobs(Some("replica-1"), "{}")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        second.get_job("b").await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    second
        .update_job("b", JobStatus::Running, "{}")
        .await
        .unwrap();
    // Neither writes the other's job.
    assert!(matches!(
        second.update_job("a", JobStatus::Running, "{}").await,
        Err(StoreError::JobLeaseLost(_))
    ));
    assert!(matches!(
        first.update_job("b", JobStatus::Failed, "{}").await,
        Err(StoreError::JobLeaseLost(_))
    ));
    assert!(!first.delete_queued_job("b").await.unwrap());
}

#[tokio::test]
async fn cached_reads_see_this_processes_writes_at_once() {
    let (_dir, store) = open_temp().await;
    store.create_tenant("acme", &"a".repeat(64)).await.unwrap();
    let t = store.tenant("acme");
    t.insert_flavor(&flavor("mine"), None).await.unwrap();
    t.insert_component(&component("prod", "mine", None))
        .await
        .unwrap();
    // Read twice (the second from the cache), then changed: the next read
    // is the new row, with no wait.
    for _ in 0..2 {
        assert_eq!(
            store
                .tenant_for_token_cached(&"a".repeat(64))
                .await
                .unwrap(),
            Some("acme".to_owned())
        );
        assert!(t.get_component_cached("prod").await.unwrap().is_some());
        assert!(t.get_flavor_cached("mine").await.unwrap().is_some());
    }
    let mut changed = component("prod", "mine", None);
    changed.uri = "registry.example.com/elsewhere".to_owned();
    changed.version = 1;
    t.update_component(&changed).await.unwrap();
    assert_eq!(
        t.get_component_cached("prod").await.unwrap().unwrap().uri,
        "registry.example.com/elsewhere"
    );
    t.delete_component("prod").await.unwrap();
    assert!(t.get_component_cached("prod").await.unwrap().is_none());
    // A flavor replaced (its OCI tag moved): the next read is the new content.
    let mut moved = flavor("mine");
    moved.sha256 = "e".repeat(64);
    rows_only_blob(&store, &moved.sha256).await;
    t.replace_flavor(&moved, DIGEST, None).await.unwrap();
    assert_eq!(
        t.get_flavor_cached("mine").await.unwrap().unwrap().sha256,
        "e".repeat(64)
    );
    t.delete_flavor("mine").await.unwrap();
    assert!(t.get_flavor_cached("mine").await.unwrap().is_none());
    store.delete_tenant("acme").await.unwrap();
    assert_eq!(
        store
            .tenant_for_token_cached(&"a".repeat(64))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn cached_reads_see_another_replicas_writes_once_notified() {
    if !on_postgres() {
        // Two processes on one SQLite file have no notifications: their
        // caches agree again within CACHE_TTL.
        return;
    }
    let (_dir, one, two) = open_pair().await;
    let token = "b".repeat(64);
    one.create_tenant("acme", &token).await.unwrap();
    let t1 = one.tenant("acme");
    t1.insert_component(&component("prod", "default", None))
        .await
        .unwrap();
    // Wait until both listen (a replica serves from its cache only then).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(one.db.cache.is_live() && two.db.cache.is_live()) {
        assert!(std::time::Instant::now() < deadline, "never listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t2 = two.tenant("acme");
    assert!(t2.get_component_cached("prod").await.unwrap().is_some());
    assert!(two.tenant_for_token_cached(&token).await.unwrap().is_some());
    // Changed on the other replica: seen here well inside the TTL.
    t1.delete_component("prod").await.unwrap();
    one.delete_tenant("acme").await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let component = t2.get_component_cached("prod").await.unwrap();
        let tenant = two.tenant_for_token_cached(&token).await.unwrap();
        if component.is_none() && tenant.is_none() {
            break;
        }
        assert!(
            started.elapsed() < CACHE_TTL / 2,
            "the other replica's writes were not heard"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn replicas_exchange_their_cpu_use_per_tenant_and_minute() {
    let (_dir, one, two) = open_pair().await;
    // Usage is per minute of the database's clock: a round that straddles
    // a minute's end sees a fresh minute halfway, so it runs again (with
    // replicas of new names, whose rows are their own).
    for round in 0..3 {
        let (r1, r2) = (format!("r1-{round}"), format!("r2-{round}"));
        let used = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
            pairs.iter().map(|(t, m)| (t.to_string(), *m)).collect()
        };
        let sorted = |mut v: Vec<(String, i64)>| {
            v.sort();
            v
        };
        one.exchange_cpu_usage(&r1, &used(&[("acme", 300), ("globex", 5)]))
            .await
            .unwrap();
        // r2 hears r1's use, not its own.
        let first = two
            .exchange_cpu_usage(&r2, &used(&[("acme", 200)]))
            .await
            .unwrap();
        // r1 reports more: added; r1 hears r2's.
        let second = one
            .exchange_cpu_usage(&r1, &used(&[("acme", 100)]))
            .await
            .unwrap();
        let third = two.exchange_cpu_usage(&r2, &[]).await.unwrap();
        let earlier: i64 = first.iter().map(|(_, m)| m).sum();
        if round < 2 && earlier < 305 {
            continue; // the minute turned (or an earlier round's rows show)
        }
        let others = |v: &Vec<(String, i64)>| {
            v.iter()
                .filter(|(t, _)| t == "acme" || t == "globex")
                .cloned()
                .collect::<Vec<_>>()
        };
        if round < 2
            && (sorted(others(&first)) != used(&[("acme", 300), ("globex", 5)])
                || others(&second) != used(&[("acme", 200)])
                || sorted(others(&third)) != used(&[("acme", 400), ("globex", 5)]))
        {
            continue;
        }
        assert_eq!(sorted(first), used(&[("acme", 300), ("globex", 5)]));
        assert_eq!(second, used(&[("acme", 200)]));
        assert_eq!(sorted(third), used(&[("acme", 400), ("globex", 5)]));
        return;
    }
}

#[tokio::test]
async fn a_batch_of_audit_rows_is_written_whole_and_in_order() {
    let (_dir, store) = open_temp().await;
    // More rows than one INSERT takes, of two tenants, interleaved.
    let entries: Vec<(String, AuditEntry)> = (0..250)
        .map(|i| {
            let tenant = if i % 2 == 0 { "acme" } else { "globex" };
            (
                tenant.to_owned(),
                event("check", "allowed", &format!("img-{i:03}")),
            )
        })
        .collect();
    store.append_audit(&entries).await.unwrap();
    let filter = AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    };
    let rows = store.audit(None, &filter).await.unwrap();
    assert_eq!(rows.len(), 250);
    // Newest first: the last entry of the batch has the highest id.
    let images: Vec<String> = rows
        .iter()
        .rev()
        .map(|r| r.entry.image.clone().unwrap_or_default())
        .collect();
    let expected: Vec<String> = (0..250).map(|i| format!("img-{i:03}")).collect();
    assert_eq!(images, expected);
    assert_eq!(
        store.tenant("acme").audit(&filter).await.unwrap().len(),
        125
    );
}

#[tokio::test]
async fn refused_writes_do_not_cost_a_new_database_connection_each() {
    if !on_postgres() {
        // SQLite closes the connection of a failed transaction: a file
        // handle, not a server process.
        return;
    }
    let (_dir, store) = open_temp().await;
    let t = store.tenant("acme").with_quota(RowQuota {
        max_secrets: Some(1),
        ..RowQuota::default()
    });
    t.create_secret("only", "u", "p").await.unwrap();
    let opened = || {
        store
            .db
            .connections_opened
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = opened();
    for i in 0..50 {
        let refused = t.create_secret(&format!("s{i}"), "u", "p").await;
        assert!(matches!(refused, Err(StoreError::QuotaExceeded { .. })));
    }
    // Rolled back and reused: a few connections at most, not one a refusal.
    let new = opened() - before;
    assert!(
        new <= 4,
        "{new} connections (server processes) for 50 refusals"
    );
}

/// Puts every active job's lease behind the database's clock, as if its
/// owner had stopped renewing.
async fn expire_leases(store: &Store) {
    sqlx::query("UPDATE jobs SET lease_until = $1")
        .bind(format_rfc3339(
            time::OffsetDateTime::now_utc() - time::Duration::seconds(1),
        ))
        .execute(store.db.pool().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lost_job_with_a_shared_upload_is_claimed_once_and_its_old_owner_writes_nothing() {
    let (_dir, one, two) = open_pair().await;
    let first = one.tenant("acme").with_job_owner("replica-1");
    first.insert_job(&job("j"), None).await.unwrap();
    first
        .share_job_upload("j", "uploads/acme/j.tar", true)
        .await
        .unwrap();
    first
        .update_job("j", JobStatus::Running, "{}")
        .await
        .unwrap();
    // A live lease: nobody claims it.
    assert!(
        one.claim_lost_jobs("replica-2", JOB_LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    expire_leases(&one).await;
    // Lost, but another replica can run it again: not interrupted.
    assert_eq!(one.interrupt_lost_jobs(None, "{}").await.unwrap(), 0);
    let (a, b) = tokio::join!(
        one.claim_lost_jobs("replica-2", JOB_LEASE, 10),
        two.claim_lost_jobs("replica-3", JOB_LEASE, 10)
    );
    let claimed: Vec<ClaimedJob> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    assert_eq!(claimed.len(), 1, "claimed exactly once: {claimed:?}");
    let claim = &claimed[0];
    assert_eq!(
        (
            claim.tenant.as_str(),
            claim.id.as_str(),
            claim.attempt,
            claim.dry_run
        ),
        ("acme", "j", 2, true)
    );
    assert_eq!(claim.upload_key, "uploads/acme/j.tar");
    assert_eq!(claim.image, "registry.example.com/team/app:1");
    let stored = first.get_job("j").await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempt), (JobStatus::Queued, 2));
    let new_owner = stored.owner.clone();
    assert!(new_owner == "replica-2" || new_owner == "replica-3");
    // The first owner, back from its pause, is fenced off...
    let err = first
        .update_job("j", JobStatus::Succeeded, r#"{"stale":true}"#)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::JobLeaseLost(_)), "{err:?}");
    // ...and so is a restart of the new owner's name at the old attempt.
    let stale = one.tenant("acme").with_job_owner(&new_owner);
    assert!(matches!(
        stale.update_job("j", JobStatus::Running, "{}").await,
        Err(StoreError::JobLeaseLost(_))
    ));
    let current = one
        .tenant("acme")
        .with_job_owner(&new_owner)
        .with_job_attempt(2);
    current
        .update_job("j", JobStatus::Running, "{}")
        .await
        .unwrap();
    // Lost twice more: the third owner is the last, then it is interrupted.
    expire_leases(&one).await;
    let third = one
        .claim_lost_jobs("replica-1", JOB_LEASE, 10)
        .await
        .unwrap();
    assert_eq!(third.iter().map(|c| c.attempt).collect::<Vec<_>>(), [3]);
    expire_leases(&one).await;
    assert!(
        one.claim_lost_jobs("replica-2", JOB_LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(one.interrupt_lost_jobs(None, "{}").await.unwrap(), 1);
    assert_eq!(
        first.get_job("j").await.unwrap().unwrap().status,
        JobStatus::Interrupted
    );
}

#[tokio::test]
async fn a_restart_gives_its_shared_jobs_up_for_a_claim_and_interrupts_the_rest() {
    let (_dir, store) = open_temp().await;
    let mine = store.tenant("acme").with_job_owner("replica-1");
    for id in ["shared", "local"] {
        mine.insert_job(&job(id), None).await.unwrap();
    }
    mine.share_job_upload("shared", "k", false).await.unwrap();
    let marked = if on_postgres() {
        store.interrupt_lost_jobs(Some("replica-1"), "{}").await
    } else {
        store.fail_unfinished_jobs("{}").await
    };
    assert_eq!(marked.unwrap(), 1, "only the job without a shared upload");
    assert_eq!(
        mine.get_job("local").await.unwrap().unwrap().status,
        JobStatus::Interrupted
    );
    // Its lease is given up: claimed at once, by the restarted replica too.
    let claimed = store
        .claim_lost_jobs("replica-1", JOB_LEASE, 10)
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|c| (c.id.as_str(), c.attempt))
            .collect::<Vec<_>>(),
        [("shared", 2)]
    );
    // The claim respects its limit.
    assert!(
        store
            .claim_lost_jobs("replica-1", JOB_LEASE, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_newer_job_for_the_same_image_that_succeeded_is_found() {
    let (_dir, store) = open_temp().await;
    let t = store.tenant("acme");
    for id in ["a", "b"] {
        t.insert_job(&job(id), None).await.unwrap();
    }
    let mut other = job("c");
    other.image = "registry.example.com/team/app:2".into();
    t.insert_job(&other, None).await.unwrap();
    assert_eq!(t.newer_job_succeeded("a").await.unwrap(), None);
    t.update_job("c", JobStatus::Succeeded, "{}").await.unwrap();
    assert_eq!(
        t.newer_job_succeeded("a").await.unwrap(),
        None,
        "another tag"
    );
    t.update_job("b", JobStatus::Succeeded, "{}").await.unwrap();
    assert_eq!(
        t.newer_job_succeeded("a").await.unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(
        t.newer_job_succeeded("b").await.unwrap(),
        None,
        "b is the newest"
    );
    assert_eq!(
        store
            .tenant("globex")
            .newer_job_succeeded("a")
            .await
            .unwrap(),
        None,
        "never another tenant's"
    );
}

#[tokio::test]
async fn one_push_turn_per_target_across_stores_and_a_dead_holders_turn_passes_on() {
    if !on_postgres() {
        return;
    }
    let (_dir, one, two) = open_pair().await;
    let lease = Duration::from_secs(30);
    let held = one.push_turn("r.example.com/app:1", lease).await.unwrap();
    // Another target is free at once.
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        two.push_turn("r.example.com/app:2", lease),
    )
    .await
    .expect("another target does not wait")
    .unwrap();
    drop(other);
    let waiting = tokio::spawn({
        let two = two.clone();
        async move { two.push_turn("r.example.com/app:1", lease).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the same target waits");
    drop(held);
    let second = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the turn passes on when dropped")
        .unwrap()
        .unwrap();
    assert!(!second.is_lost());
    // The holder's session ends (its replica died): the turn passes on.
    let waiting = tokio::spawn({
        let one = one.clone();
        async move { one.push_turn("r.example.com/app:1", lease).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .execute(two.db.pool().unwrap())
    .await
    .unwrap();
    let third = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("a dead holder's turn passes on")
        .unwrap()
        .unwrap();
    drop(third);
}
