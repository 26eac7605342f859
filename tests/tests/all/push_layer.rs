//! The push layer against a real Docker engine and real registries: pushes
//! land with the digest the registry stores, credentials are checked, failures
//! are classified, and the registry API answers `repository-exists`.

use std::time::Duration;

use flavorbox_grammar::{Reference, RegistryUri, RepositoryPath};
use flavorbox_net::credentials::Credentials;
use flavorbox_net::push::{self, PushError, PushEvent};
use flavorbox_net::registry_api::{RegistryApi, RegistryApiError};
use flavorbox_tests::services::{
    dead_registry, docker, make_image, registry_manifest_digest, registry_tags, services,
};

/// The deadline given to registry API calls in these tests.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed image reference (the push takes nothing else).
fn reference(image: &str) -> Reference {
    Reference::parse(image).unwrap_or_else(|e| panic!("test reference {image}: {e}"))
}

/// A parsed registry uri.
fn registry_uri(uri: &str) -> RegistryUri {
    RegistryUri::parse(uri).unwrap_or_else(|e| panic!("test registry {uri}: {e}"))
}

/// A parsed repository path.
fn repository(path: &str) -> RepositoryPath {
    RepositoryPath::parse(path).unwrap_or_else(|e| panic!("test repository {path}: {e}"))
}

fn auth_credentials() -> Credentials {
    let s = services();
    Credentials {
        username: s.auth_user.clone(),
        password: s.auth_password.clone().into(),
    }
}

fn wrong_credentials() -> Credentials {
    Credentials {
        username: services().auth_user.clone(),
        password: "not-the-password".into(),
    }
}

#[tokio::test]
async fn push_to_open_registry_stores_the_reported_digest() -> anyhow::Result<()> {
    let registry = &services().open_registry;
    let image = format!("{registry}/fixture/app:1");
    make_image(&image).await?;
    let docker = docker().await?;

    let mut events = Vec::new();
    let outcome =
        push::push_image(&docker, &reference(&image), None, &mut |e| events.push(e)).await?;

    assert!(outcome.digest.starts_with("sha256:"), "{outcome:?}");
    assert!(
        events.iter().any(|e| matches!(e, PushEvent::Layer { .. })),
        "no layer progress reported: {events:?}"
    );
    assert_eq!(
        registry_tags(registry, "fixture/app", None)?,
        vec!["1".to_string()]
    );
    assert_eq!(
        registry_manifest_digest(registry, "fixture/app", "1", None)?,
        outcome.digest
    );
    Ok(())
}

#[tokio::test]
async fn push_to_auth_registry_succeeds_with_the_right_credentials() -> anyhow::Result<()> {
    let s = services();
    let image = format!("{}/fixture/private:1", s.auth_registry);
    make_image(&image).await?;
    let docker = docker().await?;

    let outcome = push::push_image(
        &docker,
        &reference(&image),
        Some(&auth_credentials()),
        &mut |_| {},
    )
    .await?;

    let auth = Some((s.auth_user.as_str(), s.auth_password.as_str()));
    assert_eq!(
        registry_manifest_digest(&s.auth_registry, "fixture/private", "1", auth)?,
        outcome.digest
    );
    Ok(())
}

#[tokio::test]
async fn push_with_wrong_or_missing_credentials_is_an_auth_error() -> anyhow::Result<()> {
    let image = format!("{}/fixture/denied:1", services().auth_registry);
    make_image(&image).await?;
    let docker = docker().await?;

    let wrong = push::push_image(
        &docker,
        &reference(&image),
        Some(&wrong_credentials()),
        &mut |_| {},
    )
    .await;
    assert!(matches!(wrong, Err(PushError::Auth { .. })), "{wrong:?}");
    let missing = push::push_image(&docker, &reference(&image), None, &mut |_| {}).await;
    assert!(
        matches!(missing, Err(PushError::Auth { .. })),
        "{missing:?}"
    );
    Ok(())
}

#[tokio::test]
async fn push_to_a_dead_registry_is_unreachable() -> anyhow::Result<()> {
    let image = format!("{}/fixture/app:1", dead_registry());
    make_image(&image).await?;
    let docker = docker().await?;

    let result = push::push_image(&docker, &reference(&image), None, &mut |_| {}).await;
    assert!(
        matches!(result, Err(PushError::Unreachable { .. })),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn engine_that_does_not_answer_is_a_connect_error_naming_the_fix() {
    let result = push::connect_to("unix:///nonexistent/flavorbox/docker.sock").await;
    let Err(error @ PushError::Connect { .. }) = result else {
        panic!("expected a Connect error, got {:?}", result.map(|_| ()));
    };
    let message = error.to_string();
    assert!(
        message.contains("dockerd") && message.contains("DOCKER_HOST"),
        "{message}"
    );
}

#[tokio::test]
async fn connect_to_negotiates_with_the_debian_engine() -> anyhow::Result<()> {
    let docker = push::connect_to(&services().docker_host).await?;
    docker.ping().await?;
    Ok(())
}

#[tokio::test]
async fn push_of_a_missing_image_is_image_not_found() -> anyhow::Result<()> {
    let image = format!("{}/fixture/never-made:1", services().open_registry);
    let docker = docker().await?;

    let result = push::push_image(&docker, &reference(&image), None, &mut |_| {}).await;
    assert!(
        matches!(result, Err(PushError::ImageNotFound { .. })),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn repository_exists_answers_on_the_open_registry() -> anyhow::Result<()> {
    let registry = &services().open_registry;
    let image = format!("{registry}/fixture/exists:1");
    make_image(&image).await?;
    push::push_image(&docker().await?, &reference(&image), None, &mut |_| {}).await?;

    let api = RegistryApi::default();
    let registry = registry_uri(registry);
    assert!(api.repository_exists(&registry, &repository("fixture/exists"), None, API_TIMEOUT)?);
    assert!(!api.repository_exists(&registry, &repository("fixture/absent"), None, API_TIMEOUT)?);
    Ok(())
}

#[tokio::test]
async fn repository_exists_uses_credentials_on_the_auth_registry() -> anyhow::Result<()> {
    let s = services();
    let image = format!("{}/fixture/guarded:1", s.auth_registry);
    make_image(&image).await?;
    push::push_image(
        &docker().await?,
        &reference(&image),
        Some(&auth_credentials()),
        &mut |_| {},
    )
    .await?;

    let api = RegistryApi::default();
    let creds = auth_credentials();
    let registry = registry_uri(&s.auth_registry);
    let guarded = repository("fixture/guarded");
    assert!(api.repository_exists(&registry, &guarded, Some(&creds), API_TIMEOUT)?);
    assert!(!api.repository_exists(
        &registry,
        &repository("fixture/absent"),
        Some(&creds),
        API_TIMEOUT
    )?);

    let wrong = api.repository_exists(&registry, &guarded, Some(&wrong_credentials()), API_TIMEOUT);
    assert!(
        matches!(wrong, Err(RegistryApiError::Auth { .. })),
        "{wrong:?}"
    );
    let missing = api.repository_exists(&registry, &guarded, None, API_TIMEOUT);
    assert!(
        matches!(missing, Err(RegistryApiError::Auth { .. })),
        "{missing:?}"
    );
    Ok(())
}

#[test]
fn repository_exists_on_a_dead_registry_is_unreachable() {
    let result = RegistryApi::default().repository_exists(
        &registry_uri(&dead_registry()),
        &repository("fixture/app"),
        None,
        API_TIMEOUT,
    );
    assert!(
        matches!(result, Err(RegistryApiError::Unreachable { .. })),
        "{result:?}"
    );
}

#[test]
fn repository_exists_on_a_hanging_registry_times_out() -> anyhow::Result<()> {
    // Accepts connections (the kernel completes the handshake) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let result = RegistryApi::default().repository_exists(
        &registry_uri(&addr.to_string()),
        &repository("fixture/app"),
        None,
        timeout,
    );
    assert!(
        matches!(result, Err(RegistryApiError::TimedOut { .. })),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    drop(listener);
    Ok(())
}

#[test]
fn a_hostile_repository_name_never_becomes_a_repository_path() {
    // The registry API takes only a parsed path, so this cannot reach a URL.
    for hostile in ["../../v2/_catalog?n=1", "a/../b", "a%2fb", "team/app#x", ""] {
        assert!(RepositoryPath::parse(hostile).is_err(), "{hostile:?}");
    }
    // And a path outside the registry uri's namespace is not asked about.
    let result = RegistryApi::default().repository_exists(
        &registry_uri("127.0.0.1:1/team"),
        &repository("other/app"),
        None,
        API_TIMEOUT,
    );
    assert!(
        matches!(result, Err(RegistryApiError::OutsideRegistry { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn push_refuses_a_reference_without_a_tag_or_with_a_digest() -> anyhow::Result<()> {
    let registry = &services().open_registry;
    let docker = docker().await?;
    let digest = format!("sha256:{}", "0".repeat(64));
    for image in [
        format!("{registry}/fixture/app"),
        format!("{registry}/fixture/app@{digest}"),
    ] {
        let result = push::push_image(&docker, &reference(&image), None, &mut |_| {}).await;
        assert!(
            matches!(result, Err(PushError::InvalidReference { .. })),
            "{image}: {result:?}"
        );
    }
    Ok(())
}
