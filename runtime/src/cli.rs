//! The `flavorbox` command line: ZenML's `container-registry` workflow on
//! top of the application layer. `--json` prints one JSON document on stdout;
//! errors go to stderr with a non-zero exit code.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::app::{
    App, ComponentInfo, DEFAULT_TENANT, FlavorInfo, Policy, PushProgress, SecretChange,
};
use crate::push::PushEvent;
use crate::reference::Reference;
use crate::sandbox::LogLine;

/// Container-registry flavors as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "flavorbox", version, about, long_about = None)]
pub struct Cli {
    /// State directory (database, flavor blobs, compiled code).
    #[arg(long, global = true, env = "FLAVORBOX_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(subcommand)]
    command: Command,
}

/// The operator's limits for every flavor call (defaults: see the README).
#[derive(Debug, Args)]
struct LimitArgs {
    /// Fuel (roughly wasm instructions) a flavor call may burn.
    #[arg(long, global = true, env = "FLAVORBOX_FUEL", value_name = "UNITS")]
    fuel: Option<u64>,
    /// Wall-clock limit of a flavor call, host lookups included.
    #[arg(long, global = true, env = "FLAVORBOX_TIMEOUT_MS", value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Linear memory a flavor call may use.
    #[arg(long, global = true, env = "FLAVORBOX_MEMORY_MIB", value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    memory_mib: Option<u64>,
    /// Refuse the `repository-exists` capability to every flavor.
    #[arg(long, global = true, env = "FLAVORBOX_NO_REPOSITORY_LOOKUP")]
    no_repository_lookup: bool,
}

impl LimitArgs {
    fn policy(&self) -> Policy {
        let mut policy = Policy::default();
        if let Some(fuel) = self.fuel {
            policy.limits.fuel = fuel;
        }
        if let Some(ms) = self.timeout_ms {
            policy.limits.timeout = std::time::Duration::from_millis(ms);
        }
        if let Some(mib) = self.memory_mib {
            policy.limits.memory_bytes = usize::try_from(mib << 20).unwrap_or(usize::MAX);
        }
        policy.allow_repository_exists = !self.no_repository_lookup;
        policy
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register, list, describe and delete flavors.
    #[command(subcommand)]
    Flavor(FlavorCommand),
    /// Register, update, list, describe and delete registry components.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Store registry credentials (values are never printed).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Work with image references.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Push an image to a registry component's registry.
    Push(PushArgs),
}

#[derive(Debug, Args)]
struct JsonFlag {
    /// Print one JSON document on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum FlavorCommand {
    /// Check a `.wasm` component against the flavor world, store it and precompile it.
    Register {
        /// The flavor component (built for wasm32-wasip2).
        file: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Built-in and registered flavors.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A flavor's metadata, config schema and hash.
    Describe {
        /// Flavor name.
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a registered flavor (refused while a registry component uses it).
    Delete {
        /// Flavor name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Register a registry component; its flavor validates the config first.
    Register {
        /// Component name.
        name: String,
        /// Flavor that validates the config and approves pushes.
        #[arg(long)]
        flavor: String,
        /// Registry URI, e.g. `localhost:5000` or `docker.io/my-account`.
        #[arg(long)]
        uri: String,
        /// A config field; VALUE is JSON if it parses, else a string. Repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Secret holding the registry credentials.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Change a component's uri, config fields (`KEY=null` removes one) or secret.
    Update {
        /// Component name.
        name: String,
        /// New registry URI.
        #[arg(long)]
        uri: Option<String>,
        /// A config field; VALUE is JSON if it parses, else a string. Repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Secret holding the registry credentials.
        #[arg(long, conflicts_with = "remove_secret")]
        secret: Option<String>,
        /// Push without credentials from now on.
        #[arg(long)]
        remove_secret: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Every registry component.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// One registry component.
    Describe {
        /// Component name.
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a registry component.
    Delete {
        /// Component name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Store a username and password.
    #[command(group = clap::ArgGroup::new("pw").required(true).args(["password_stdin", "password"]))]
    Create {
        /// Secret name.
        name: String,
        /// Registry username.
        #[arg(long)]
        username: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The password (visible in the process list; prefer --password-stdin).
        #[arg(long)]
        password: Option<String>,
    },
    /// Secret names and usernames.
    List {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Delete a secret (refused while a registry component uses it).
    Delete {
        /// Secret name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Parse and normalise an image reference the way Docker does.
    Parse {
        /// The reference, e.g. `ubuntu:22.04` or `localhost:5000/team/app@sha256:...`.
        reference: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Args)]
struct PushArgs {
    /// The image, tagged under the registry's URI (e.g. `localhost:5000/team/app:1`).
    image: String,
    /// Registry component to push to.
    #[arg(long)]
    registry: String,
    /// Run every check, including the flavor's, but do not talk to the Docker engine.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    out: JsonFlag,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLAVORBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text an
/// outer message already includes.
fn render_error(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if out.contains(&message) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&message);
    }
    out
}

async fn open(home: Option<PathBuf>, policy: Policy) -> anyhow::Result<App> {
    let home = home.unwrap_or_else(App::default_home);
    App::open(&home, policy)
        .await
        .with_context(|| format!("cannot open the state in {}", home.display()))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints rows under headers, each column as wide as its widest cell.
fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            out.push_str(&format!("{cell:<w$}  "));
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a flavor's log lines; `trace` and `debug` only with `FLAVORBOX_LOG=debug`.
fn print_logs(source: &str, logs: &[LogLine]) {
    let verbose =
        std::env::var("FLAVORBOX_LOG").is_ok_and(|v| v.contains("debug") || v.contains("trace"));
    for line in logs {
        if !verbose && line.level.is_detail() {
            continue;
        }
        eprintln!("flavor {source} [{}] {}", line.level, line.message);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Image(ImageCommand::Parse { reference, out }) => image_parse(&reference, out.json),
        Command::Flavor(cmd) => {
            let app = open(cli.home, cli.limits.policy()).await?;
            flavor(&app, cmd).await
        }
        Command::Registry(cmd) => {
            let app = open(cli.home, cli.limits.policy()).await?;
            registry(&app, cmd).await
        }
        Command::Secret(cmd) => {
            let app = open(cli.home, cli.limits.policy()).await?;
            secret(&app, cmd).await
        }
        Command::Push(args) => {
            let app = open(cli.home, cli.limits.policy()).await?;
            push(&app, args).await
        }
    }
}

fn image_parse(text: &str, json_out: bool) -> anyhow::Result<()> {
    let r = Reference::parse(text).with_context(|| format!("invalid image reference `{text}`"))?;
    let doc = json!({
        "domain": r.domain(),
        "path": r.path(),
        "tag": r.tag(),
        "digest": r.digest(),
        "name": r.name(),
    });
    if json_out {
        return print_json(&doc);
    }
    println!("name:   {}", r.name());
    println!("domain: {}", r.domain());
    println!("path:   {}", r.path());
    println!("tag:    {}", r.tag().unwrap_or("-"));
    println!("digest: {}", r.digest().unwrap_or("-"));
    Ok(())
}

fn print_flavor(f: &FlavorInfo) -> anyhow::Result<()> {
    let m = &f.metadata;
    println!("name:          {}", f.name);
    println!("display name:  {}", m.display_name);
    println!(
        "source:        {}",
        if f.builtin { "built-in" } else { "registered" }
    );
    println!("sha256:        {}", f.sha256);
    if let Some(at) = &f.registered_at {
        println!("registered at: {at}");
    }
    println!("wit version:   {}", m.wit_version);
    println!("description:   {}", m.description);
    println!("docs:          {}", m.docs_url);
    if !m.logo_url.is_empty() {
        println!("logo:          {}", m.logo_url);
    }
    let caps: Vec<String> = m.capabilities.iter().map(|c| c.to_string()).collect();
    println!(
        "capabilities:  {}",
        if caps.is_empty() {
            "none".to_string()
        } else {
            caps.join(", ")
        }
    );
    println!("config schema:");
    println!("{}", serde_json::to_string_pretty(&m.config_schema)?);
    Ok(())
}

async fn flavor(app: &App, cmd: FlavorCommand) -> anyhow::Result<()> {
    let t = app.tenant(DEFAULT_TENANT);
    match cmd {
        FlavorCommand::Register { file, out } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let info = t
                .register_flavor(bytes)
                .await
                .with_context(|| format!("cannot register {}", file.display()))?;
            if out.json {
                print_json(&info)
            } else {
                println!("{}", info.name);
                Ok(())
            }
        }
        FlavorCommand::List { out } => {
            let flavors = t.list_flavors().await?;
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
                        f.sha256.chars().take(12).collect(),
                    ]
                })
                .collect();
            print_table(&["NAME", "SOURCE", "DISPLAY NAME", "SHA256"], rows);
            Ok(())
        }
        FlavorCommand::Describe { name, out } => {
            let info = t.describe_flavor(&name).await?;
            if out.json {
                print_json(&info)
            } else {
                print_flavor(&info)
            }
        }
        FlavorCommand::Delete { name } => {
            t.delete_flavor(&name).await?;
            eprintln!("deleted flavor `{name}`");
            Ok(())
        }
    }
}

fn print_component(c: &ComponentInfo) -> anyhow::Result<()> {
    println!("name:     {}", c.name);
    println!("flavor:   {}", c.flavor);
    println!("uri:      {}", c.uri);
    println!("is_local: {}", c.is_local);
    println!("secret:   {}", c.secret.as_deref().unwrap_or("-"));
    println!("created:  {}", c.created_at);
    println!("updated:  {}", c.updated_at);
    println!("config:");
    println!("{}", serde_json::to_string_pretty(&c.config)?);
    Ok(())
}

async fn registry(app: &App, cmd: RegistryCommand) -> anyhow::Result<()> {
    let t = app.tenant(DEFAULT_TENANT);
    match cmd {
        RegistryCommand::Register {
            name,
            flavor,
            uri,
            config,
            secret,
            out,
        } => {
            let options = crate::config::parse_options(&config).map_err(anyhow::Error::msg)?;
            let info = t
                .register_component(&name, &flavor, &uri, options, secret)
                .await
                .with_context(|| format!("registry component `{name}` was not registered"))?;
            print_logs(&flavor, &info.logs);
            if out.json {
                print_json(&info)
            } else {
                println!(
                    "registered registry component `{}` ({} at {})",
                    info.name, info.flavor, info.uri
                );
                Ok(())
            }
        }
        RegistryCommand::Update {
            name,
            uri,
            config,
            secret,
            remove_secret,
            out,
        } => {
            let options = crate::config::parse_options(&config).map_err(anyhow::Error::msg)?;
            let secret = match (secret, remove_secret) {
                (Some(name), _) => SecretChange::Set(name),
                (None, true) => SecretChange::Remove,
                (None, false) => SecretChange::Keep,
            };
            let info = t
                .update_component(&name, uri.as_deref(), options, secret)
                .await
                .with_context(|| format!("registry component `{name}` was not updated"))?;
            print_logs(&info.flavor, &info.logs);
            if out.json {
                print_json(&info)
            } else {
                println!(
                    "updated registry component `{}` ({} at {})",
                    info.name, info.flavor, info.uri
                );
                Ok(())
            }
        }
        RegistryCommand::List { out } => {
            let components = t.list_components().await?;
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
            let info = t.describe_component(&name).await?;
            if out.json {
                print_json(&info)
            } else {
                print_component(&info)
            }
        }
        RegistryCommand::Delete { name } => {
            t.delete_component(&name).await?;
            eprintln!("deleted registry component `{name}`");
            Ok(())
        }
    }
}

async fn secret(app: &App, cmd: SecretCommand) -> anyhow::Result<()> {
    let t = app.tenant(DEFAULT_TENANT);
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
            t.create_secret(&name, &username, &password).await?;
            eprintln!("created secret `{name}`");
            Ok(())
        }
        SecretCommand::List { out } => {
            let secrets = t.list_secrets().await?;
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
            t.delete_secret(&name).await?;
            eprintln!("deleted secret `{name}`");
            Ok(())
        }
    }
}

/// Shows the engine's progress: a bar on a terminal, plain lines otherwise.
///
/// Docker's push stream as bollard 0.19 exposes it carries no layer ids, so
/// the bar follows whichever layer the engine reports on.
struct Progress {
    bar: Option<ProgressBar>,
    last: Option<String>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:<24} [{bar:30}] {bytes}/{total_bytes}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress { bar, last: None }
    }

    fn event(&mut self, event: PushEvent) {
        let (id, status, current, total) = match event {
            PushEvent::Layer {
                id,
                status,
                current,
                total,
            } => (id, status, current, total),
            PushEvent::Status(status) => (String::new(), status, None, None),
        };
        let line = if id.is_empty() {
            status
        } else {
            format!("{id}: {status}")
        };
        match &self.bar {
            Some(bar) => {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                if let Some(current) = current {
                    bar.set_position(current);
                }
                if self.last.as_deref() != Some(line.as_str()) {
                    if current.is_none() {
                        bar.println(&line);
                    }
                    bar.set_message(line.clone());
                }
            }
            None => {
                if self.last.as_deref() != Some(line.as_str()) {
                    eprintln!("{line}");
                }
            }
        }
        self.last = Some(line);
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn push(app: &App, args: PushArgs) -> anyhow::Result<()> {
    let t = app.tenant(DEFAULT_TENANT);
    let mut progress = Progress::new();
    let report = t
        .push(
            &args.image,
            &args.registry,
            args.dry_run,
            &mut |step| match step {
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
                PushProgress::Engine(event) => progress.event(event),
            },
        )
        .await;
    progress.finish();
    let report = report?;
    if args.out.json {
        return print_json(&json!({
            "image": report.image,
            "digest": report.digest,
            "warnings": report.warnings,
            "dry_run": report.dry_run,
        }));
    }
    match &report.digest {
        Some(digest) => {
            println!("pushed {}", report.image);
            println!("digest: {digest}");
        }
        None => println!(
            "dry run: `{}` passed every check for registry `{}`; nothing was pushed",
            report.image, args.registry
        ),
    }
    Ok(())
}
