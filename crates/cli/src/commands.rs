//! One function per command: turn the arguments into a request, send it
//! through the backend, print the answer.

use std::io::Read;

use anyhow::{Context, bail};

use super::backend::Backend;
use super::output::{Progress, print_component, print_flavor, print_json, print_logs, print_table};
use super::remote::{Login, RemoteBackend, normalise_url};
use super::{AuditArgs, FlavorCommand, LoginArgs, PushArgs, RegistryCommand, SecretCommand};
use flavorbox_app::audit::{AuditEvent, AuditQuery};
use flavorbox_app::{
    self as app, ComponentInfo, CreateSecret, ImageSeen, PushProgress, PushRequest,
    RegisterComponent, SecretChange, UpdateComponent,
};

/// `image parse`: the host's parser, no state needed.
pub(crate) fn image_parse(text: &str, json_out: bool) -> anyhow::Result<()> {
    let image = app::parse_image(text)?;
    if json_out {
        return print_json(&image);
    }
    println!("name:   {}", image.name);
    println!("domain: {}", image.domain);
    println!("path:   {}", image.path);
    println!("tag:    {}", image.tag.as_deref().unwrap_or("-"));
    println!("digest: {}", image.digest.as_deref().unwrap_or("-"));
    Ok(())
}

/// `flavor ...`.
pub(crate) async fn flavor(backend: &impl Backend, cmd: FlavorCommand) -> anyhow::Result<()> {
    match cmd {
        FlavorCommand::Register {
            source,
            oci,
            verify_key,
            out,
        } => {
            let info = if flavorbox_app::OciSource::looks_like(&source) {
                let request = app::RegisterFromOci {
                    source: source.clone(),
                    secret: oci.secret,
                    insecure_registries: oci.insecure_registry,
                    verify_keys: read_keys(&verify_key)?,
                };
                // The error names the source itself.
                backend
                    .register_flavor_from_oci(request)
                    .await
                    .context("flavor not registered")?
            } else {
                if !verify_key.is_empty() || oci.secret.is_some() {
                    bail!(
                        "--verify-key and --secret apply to `oci://` sources; `{source}` is a file"
                    );
                }
                let bytes =
                    std::fs::read(&source).with_context(|| format!("cannot read {source}"))?;
                backend
                    .register_flavor(bytes)
                    .await
                    .with_context(|| format!("cannot register {source}"))?
            };
            if out.json {
                print_json(&info)
            } else {
                println!("{}", info.name);
                Ok(())
            }
        }
        FlavorCommand::Publish {
            name,
            target,
            oci,
            out,
        } => {
            let report = backend
                .publish_flavor(&name, &target, oci.secret, oci.insecure_registry)
                .await
                .with_context(|| format!("cannot publish flavor `{name}` to {target}"))?;
            if out.json {
                return print_json(&report);
            }
            eprintln!("published flavor `{name}` to {}", report.target);
            println!("{}", report.digest);
            Ok(())
        }
        FlavorCommand::Sign { source, key, oci } => {
            let key = flavorbox_app::SigningKey::read(&key)?;
            let (digest, tag) = backend
                .sign_flavor(&source, &key, oci.secret, oci.insecure_registry)
                .await
                .with_context(|| format!("cannot sign {source}"))?;
            eprintln!(
                "signed {digest} with key {}; the signature is at tag `{tag}`",
                key.public().short_id()
            );
            println!("{digest}");
            Ok(())
        }
        FlavorCommand::Update {
            name,
            oci,
            verify_key,
            out,
        } => {
            let keys = read_keys(&verify_key)?;
            let update = backend
                .update_flavor(&name, oci.secret, oci.insecure_registry, keys)
                .await
                .with_context(|| format!("cannot update flavor `{name}`"))?;
            if out.json {
                return print_json(&update);
            }
            let origin = update.flavor.origin.as_ref();
            let now = origin.map_or("-", |o| o.digest.as_str());
            if update.moved {
                println!("flavor `{name}` moved: {} -> {now}", update.previous_digest);
                for component in &update.revalidate {
                    eprintln!(
                        "registry component `{component}` must be validated again: flavorbox registry update {component}"
                    );
                }
            } else {
                println!("flavor `{name}` is up to date at {now}");
            }
            Ok(())
        }
        FlavorCommand::List { out } => {
            let flavors = backend.list_flavors().await?;
            if out.json {
                return print_json(&flavors);
            }
            let rows = flavors
                .iter()
                .map(|f| {
                    vec![
                        f.name.clone(),
                        if f.builtin { "built-in" } else { "registered" }.to_string(),
                        f.metadata.display_name.clone(),
                        f.metadata.wit_version.clone(),
                        f.sha256.chars().take(12).collect(),
                    ]
                })
                .collect();
            print_table(&["NAME", "SOURCE", "DISPLAY NAME", "WIT", "SHA256"], rows);
            Ok(())
        }
        FlavorCommand::Describe { name, out } => {
            let info = backend.describe_flavor(&name).await?;
            if out.json {
                print_json(&info)
            } else {
                print_flavor(&info)
            }
        }
        FlavorCommand::Delete { name } => {
            backend.delete_flavor(&name).await?;
            eprintln!("deleted flavor `{name}`");
            Ok(())
        }
        // Run before any backend is chosen (cli::run): they need no state.
        FlavorCommand::New(_) | FlavorCommand::Build(_) => Ok(()),
    }
}

/// Reads PEM public key files for --verify-key.
fn read_keys(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read key {}", p.display()))?;
            // Checked here so a bad file is named by its path.
            flavorbox_app::PublicKey::from_pem(&text, &p.display().to_string())?;
            Ok(text)
        })
        .collect()
}

/// `registry ...`.
pub(crate) async fn registry(backend: &impl Backend, cmd: RegistryCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Register {
            name,
            flavor,
            uri,
            config,
            secret,
            out,
        } => {
            let request = RegisterComponent {
                name: name.clone(),
                flavor,
                uri,
                config: app::parse_options(&config).map_err(anyhow::Error::msg)?,
                secret,
            };
            let info = backend
                .register_component(request)
                .await
                .with_context(|| format!("registry component `{name}` was not registered"))?;
            show_component_change("registered", &info, out.json)
        }
        RegistryCommand::Update {
            name,
            uri,
            config,
            secret,
            remove_secret,
            out,
        } => {
            let update = UpdateComponent {
                uri,
                config: app::parse_options(&config).map_err(anyhow::Error::msg)?,
                secret: match (secret, remove_secret) {
                    (Some(name), _) => SecretChange::Set(name),
                    (None, true) => SecretChange::Remove,
                    (None, false) => SecretChange::Keep,
                },
            };
            let info = backend
                .update_component(&name, update)
                .await
                .with_context(|| format!("registry component `{name}` was not updated"))?;
            show_component_change("updated", &info, out.json)
        }
        RegistryCommand::List { out } => {
            let components = backend.list_components().await?;
            if out.json {
                return print_json(&components);
            }
            let rows = components
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.flavor.clone(),
                        c.uri.clone(),
                        c.is_local.to_string(),
                        c.secret.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(&["NAME", "FLAVOR", "URI", "LOCAL", "SECRET"], rows);
            Ok(())
        }
        RegistryCommand::Describe { name, out } => {
            let info = backend.describe_component(&name).await?;
            if out.json {
                print_json(&info)
            } else {
                print_component(&info)
            }
        }
        RegistryCommand::Delete { name } => {
            backend.delete_component(&name).await?;
            eprintln!("deleted registry component `{name}`");
            Ok(())
        }
    }
}

/// Prints a registered or updated component with the flavor's log lines.
fn show_component_change(verb: &str, info: &ComponentInfo, json: bool) -> anyhow::Result<()> {
    print_logs(&info.flavor, &info.logs);
    if json {
        print_json(info)
    } else {
        println!(
            "{verb} registry component `{}` ({} at {})",
            info.name, info.flavor, info.uri
        );
        Ok(())
    }
}

/// `secret ...`.
pub(crate) async fn secret(backend: &impl Backend, cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Create {
            name,
            username,
            password_stdin,
            password,
        } => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the password from standard input")?;
                text.trim_end_matches(['\r', '\n']).to_string()
            } else {
                password.unwrap_or_default()
            };
            if password.is_empty() {
                bail!("the password is empty");
            }
            backend
                .create_secret(CreateSecret {
                    name: name.clone(),
                    username,
                    password: password.into(),
                })
                .await?;
            eprintln!("created secret `{name}`");
            Ok(())
        }
        SecretCommand::List { out } => {
            let secrets = backend.list_secrets().await?;
            if out.json {
                return print_json(&secrets);
            }
            let rows = secrets
                .iter()
                .map(|s| vec![s.name.clone(), s.username.clone(), s.created_at.clone()])
                .collect();
            print_table(&["NAME", "USERNAME", "CREATED"], rows);
            Ok(())
        }
        SecretCommand::Delete { name } => {
            backend.delete_secret(&name).await?;
            eprintln!("deleted secret `{name}`");
            Ok(())
        }
    }
}

/// `push`.
pub(crate) async fn push(backend: &impl Backend, args: PushArgs) -> anyhow::Result<()> {
    let mut progress = Progress::new();
    let request = PushRequest {
        image: args.image,
        component: args.registry.clone(),
        dry_run: args.dry_run,
    };
    let report = backend
        .push(request, &mut |step| match step {
            PushProgress::Flavor {
                flavor,
                logs,
                warnings,
            } => {
                print_logs(&flavor, &logs);
                for warning in &warnings {
                    eprintln!("warning: {warning}");
                }
            }
            PushProgress::Engine { event } => progress.event(event),
        })
        .await;
    progress.finish();
    let report = report?;
    if args.out.json {
        return print_json(&report);
    }
    match &report.digest {
        Some(digest) => {
            println!("pushed {}", report.image);
            println!("digest: {digest}");
        }
        None => {
            println!(
                "dry run: `{}` passed every check for registry `{}`; nothing was pushed",
                report.image, args.registry
            );
            if report.image_info == ImageSeen::Absent {
                eprintln!(
                    "note: the flavor asks to see the image, and there was none to read (no \
                     engine answered, or it does not have `{}`): its rules on the image are \
                     checked by the push",
                    report.image
                );
            }
        }
    }
    Ok(())
}

/// `audit`: a page of the trail, newest first; the next page's command on stderr.
pub(crate) async fn audit(backend: &impl Backend, args: AuditArgs) -> anyhow::Result<()> {
    let query = AuditQuery {
        image: args.image,
        verdict: args.verdict,
        since: args.since,
        until: args.until,
        before: args.before,
        limit: Some(args.limit),
    };
    // The app (or the server) checks the filters and names a bad one.
    let page = backend
        .audit(query.clone())
        .await
        .context("cannot read the audit trail")?;
    if args.out.json {
        print_json(&page)?;
    } else if page.events.is_empty() {
        eprintln!("no audit events match");
    } else {
        let rows = page.events.iter().map(audit_row).collect();
        print_table(
            &[
                "ID",
                "AT",
                "ACTION",
                "VERDICT",
                "IMAGE/FLAVOR",
                "COMPONENT",
                "DETAIL",
            ],
            rows,
        );
    }
    if let Some(next) = page.next {
        eprintln!("more events: {}", next_page_command(&query, next));
    }
    Ok(())
}

/// One event as a table row: the image of a decision, the flavor of a
/// change; the reason, else the digest pushed.
fn audit_row(e: &AuditEvent) -> Vec<String> {
    let dash = || "-".to_string();
    let subject = e
        .image
        .clone()
        .or_else(|| e.flavor.clone())
        .unwrap_or_else(dash);
    let detail = e
        .reason
        .as_deref()
        .or(e.digest.as_deref())
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(dash);
    vec![
        e.id.to_string(),
        e.at.clone(),
        e.action.clone(),
        e.verdict.clone(),
        subject,
        e.component.clone().unwrap_or_else(dash),
        detail,
    ]
}

/// The command that shows the page after the one `query` got: the same
/// filters, older than `next`.
fn next_page_command(query: &AuditQuery, next: i64) -> String {
    let mut command = "flavorbox audit".to_string();
    let filters = [
        ("--image", &query.image),
        ("--verdict", &query.verdict),
        ("--since", &query.since),
        ("--until", &query.until),
    ];
    for (flag, value) in filters {
        if let Some(value) = value {
            command.push_str(&format!(" {flag} {}", shell_word(value)));
        }
    }
    if let Some(limit) = query.limit.filter(|&n| n != flavorbox_app::audit::PAGE) {
        command.push_str(&format!(" --limit {limit}"));
    }
    command.push_str(&format!(" --before {next}"));
    command
}

/// `text` as one shell word: as is when it is plain, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@+=,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `login`: checks the URL and token against the server, then saves them.
pub(crate) async fn login(home: &std::path::Path, args: LoginArgs) -> anyhow::Result<()> {
    let token = if args.token_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the token from standard input")?;
        text.trim().to_string()
    } else {
        args.token.unwrap_or_default()
    };
    if token.is_empty() {
        bail!("no token: pass --token, --token-stdin or set FLAVORBOX_TOKEN");
    }
    let login = Login {
        url: normalise_url(&args.url)?,
        token: token.into(),
    };
    RemoteBackend::new(login.clone())
        .verify()
        .await
        .with_context(|| format!("cannot log in to {}", login.url))?;
    let path = login.save(home)?;
    eprintln!(
        "logged in to {}; `flavor`, `registry`, `secret`, `push` and `audit` now use it (saved in {}; `flavorbox logout` to return to the local state)",
        login.url,
        path.display()
    );
    Ok(())
}

/// `logout`: forgets the saved server.
pub(crate) fn logout(home: &std::path::Path) -> anyhow::Result<()> {
    let path = home.join(super::remote::LOGIN_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!(
            "logged out; commands use the local state in {}",
            home.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "not logged in; commands use the local state in {}",
                home.display()
            );
        }
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    Ok(())
}

/// `migrate`: applies this version's pending migrations to a shared
/// PostgreSQL database and says which, or that there were none.
pub(crate) async fn migrate(url: &str) -> anyhow::Result<()> {
    if !flavorbox_app::is_postgres_url(url) {
        anyhow::bail!(
            "`{}` is not a PostgreSQL URL: use postgres://USER:PASSWORD@HOST:PORT/DATABASE (a SQLite home migrates itself when opened)",
            flavorbox_app::redact_database_url(url)
        );
    }
    let applied = flavorbox_app::App::migrate_database(url).await?;
    let shown = flavorbox_app::redact_database_url(url);
    if applied.is_empty() {
        println!("{shown} is up to date: nothing to apply");
    } else {
        let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
        println!("{shown}: applied migration(s) {}", versions.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_command_keeps_the_filters() {
        let query = AuditQuery {
            image: Some("127.0.0.1:5000/team/app:1".into()),
            verdict: Some("denied".into()),
            since: None,
            until: Some("it's late".into()),
            before: Some(90),
            limit: Some(100),
        };
        assert_eq!(
            next_page_command(&query, 42),
            "flavorbox audit --image 127.0.0.1:5000/team/app:1 --verdict denied \
             --until 'it'\\''s late' --before 42"
        );
        let query = AuditQuery {
            limit: Some(5),
            ..AuditQuery::default()
        };
        assert_eq!(
            next_page_command(&query, 7),
            "flavorbox audit --limit 5 --before 7"
        );
    }
}
