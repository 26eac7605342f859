//! The `flavorbox` command line: ZenML's `container-registry` workflow over
//! the application layer. Every command goes through a [`backend::Backend`]
//! (today the local one over [`flavorbox_app`]; the server's client is the
//! second), so the CLI parses arguments and prints, and nothing else.
//! `--json` prints one JSON document on stdout; errors go to stderr with a
//! non-zero exit code.

mod backend;
mod bench;
mod commands;
mod output;
mod remote;
mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use self::backend::{Backend, LocalBackend};
use self::remote::{Login, RemoteBackend};
use flavorbox_app::{App, AppConfig, AppConfigBuilder, AppError, Tenant};

/// Container-registry flavors as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "flavorbox", version, about, long_about = None)]
pub struct Cli {
    /// State directory (database, flavor blobs, compiled code).
    #[arg(long, global = true, env = "FLAVORBOX_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The operator's limits for every flavor call (defaults: see the README).
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// Fuel (roughly wasm instructions) a flavor call may burn.
    #[arg(long, global = true, env = "FLAVORBOX_FUEL", value_name = "UNITS")]
    pub(crate) fuel: Option<u64>,
    /// Wall-clock limit of a flavor call, host lookups included.
    #[arg(long, global = true, env = "FLAVORBOX_TIMEOUT_MS", value_name = "MS")]
    pub(crate) timeout_ms: Option<u64>,
    /// Linear memory a flavor call may use.
    #[arg(long, global = true, env = "FLAVORBOX_MEMORY_MIB", value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(crate) memory_mib: Option<u64>,
    /// Largest flavor component accepted, in MiB (default 64).
    #[arg(
        long,
        global = true,
        env = "FLAVORBOX_MAX_WASM_MIB",
        value_name = "MIB"
    )]
    pub(crate) max_wasm_mib: Option<u64>,
    /// Refuse the `repository-exists` capability to every flavor.
    #[arg(long, global = true, env = "FLAVORBOX_NO_REPOSITORY_LOOKUP")]
    pub(crate) no_repository_lookup: bool,
}

impl LimitArgs {
    /// The operator's configuration for state in `home`, checked.
    fn config(&self, home: PathBuf) -> Result<AppConfig, AppError> {
        self.builder(home).build()
    }

    /// The operator's settings for state in `home`, not yet checked.
    fn builder(&self, home: PathBuf) -> AppConfigBuilder {
        let mut builder = AppConfig::builder(home).repository_lookup(!self.no_repository_lookup);
        if let Some(fuel) = self.fuel {
            builder = builder.fuel(fuel);
        }
        if let Some(ms) = self.timeout_ms {
            builder = builder.timeout(std::time::Duration::from_millis(ms));
        }
        if let Some(mib) = self.memory_mib {
            builder = builder.memory_mib(mib);
        }
        if let Some(mib) = self.max_wasm_mib {
            builder = builder.max_component_mib(mib);
        }
        builder
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// The audit trail: every check, push and dry run with its verdict, and
    /// every change of a flavor or registry component, newest first.
    Audit(AuditArgs),
    /// Run the multi-tenant server (see docs/server.md).
    Serve(ServeArgs),
    /// Bring a shared PostgreSQL database up to this version's schema, as a
    /// step of its own before replicas are upgraded (docs/server.md).
    Migrate(MigrateArgs),
    /// Send `flavor`, `registry`, `secret`, `push` and `audit` to a server from now on.
    Login(LoginArgs),
    /// Forget the server: commands use the local state again.
    Logout,
    /// Measure what an isolated flavor call costs, against the same logic
    /// called natively and run in a process per call (docs/performance.md).
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// A built-in flavor, or one registered in the local state.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub(crate) flavor: String,
    /// A component file to measure instead, without registering it (e.g. a
    /// flavor you are writing, or one built for an older WIT version).
    #[arg(long, value_name = "FILE.wasm", conflicts_with = "flavor")]
    pub(crate) wasm: Option<PathBuf>,
    /// The config to validate (JSON); default: the schema's first examples.
    #[arg(long, value_name = "JSON")]
    pub(crate) config: Option<String>,
    /// Also measure memory per loaded flavor, 1/100/1000 flavors loaded,
    /// and 100 B / 10 KB / 1 MB configs.
    #[arg(long)]
    pub(crate) scale: bool,
    #[command(flatten)]
    pub(crate) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Let registries at HOST[:PORT] (only paths inside PATH, if given)
    /// through the egress policy for every tenant even if they resolve to
    /// loopback or private addresses. Repeatable; bind entries to one
    /// tenant in the config file's `[tenants.NAME] allow_registry`.
    #[arg(long = "allow-registry", value_name = "HOST[:PORT][/PATH]")]
    pub(crate) allow_registry: Vec<String>,
    /// The server's TOML config file (quotas, bounds; see docs/server.md).
    #[arg(long, env = "FLAVORBOX_SERVER_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Sandbox calls that may run at once (default: twice the cores, at least 4).
    #[arg(long, value_name = "N")]
    pub(crate) max_concurrent_calls: Option<usize>,
    /// Keep the state in this PostgreSQL database, shared by every replica
    /// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`), instead of the
    /// home's SQLite file; the home keeps this replica's compiled code.
    #[arg(
        long,
        env = "FLAVORBOX_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The PostgreSQL database to migrate.
    #[arg(
        long,
        env = "FLAVORBOX_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database: String,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The server's URL, e.g. `http://127.0.0.1:8080`.
    pub(crate) url: String,
    /// The tenant's token (visible in the process list; prefer --token-stdin).
    #[arg(long, env = "FLAVORBOX_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Read the token from standard input.
    #[arg(long, conflicts_with = "token")]
    pub(crate) token_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JsonFlag {
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FlavorCommand {
    /// Check a `.wasm` component (a file, or pulled from `oci://...`)
    /// against the flavor world, store it and precompile it.
    Register {
        /// The flavor component (built for wasm32-wasip2): a file, or
        /// `oci://HOST/REPO:TAG[@sha256:...]` in a registry.
        source: String,
        #[command(flatten)]
        oci: OciArgs,
        /// A PEM public key (cosign.pub) one of whose signatures the
        /// artifact must carry, besides the operator's trusted keys. Repeatable.
        #[arg(long = "verify-key", value_name = "KEY.pub")]
        verify_key: Vec<PathBuf>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Push a registered flavor to a registry as a Wasm OCI artifact; prints the manifest digest.
    Publish {
        /// Flavor name.
        name: String,
        /// Where to: `oci://HOST/REPO:TAG`.
        target: String,
        #[command(flatten)]
        oci: OciArgs,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Sign a published flavor's manifest digest the way `cosign sign --key` does.
    Sign {
        /// The artifact: `oci://HOST/REPO:TAG` or `...@sha256:...`.
        source: String,
        /// An unencrypted PEM ECDSA P-256 private key
        /// (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        #[command(flatten)]
        oci: OciArgs,
    },
    /// Resolve the tag a flavor was registered from again; if it moved, verify and register the new artifact.
    Update {
        /// Flavor name.
        name: String,
        #[command(flatten)]
        oci: OciArgs,
        /// A PEM public key the new artifact must be signed with. Repeatable.
        #[arg(long = "verify-key", value_name = "KEY.pub")]
        verify_key: Vec<PathBuf>,
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
    /// Create a flavor project in Rust, Python or JavaScript, ready to build.
    New(scaffold::NewArgs),
    /// Build the flavor project in a directory; prints the `.wasm` path.
    Build(scaffold::BuildArgs),
}

/// How to reach an OCI registry.
#[derive(Debug, Args)]
pub(crate) struct OciArgs {
    /// Secret holding the registry's credentials.
    #[arg(long)]
    pub(crate) secret: Option<String>,
    /// Reach HOST[:PORT] over plain HTTP (loopback registries always are). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub(crate) insecure_registry: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
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
pub(crate) enum SecretCommand {
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
pub(crate) enum ImageCommand {
    /// Parse and normalise an image reference the way Docker does.
    Parse {
        /// The reference, e.g. `ubuntu:22.04` or `localhost:5000/team/app@sha256:...`.
        reference: String,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The image, tagged under the registry's URI (e.g. `localhost:5000/team/app:1`).
    pub(crate) image: String,
    /// Registry component to push to.
    #[arg(long)]
    pub(crate) registry: String,
    /// Run every check, including the flavor's, but do not talk to the Docker engine.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) out: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only this image, as recorded (`host/repo:tag`).
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    /// Only this verdict: allowed, denied, refused, pushed, failed or changed.
    #[arg(long, value_name = "VERDICT")]
    pub(crate) verdict: Option<String>,
    /// Only events at or after this time (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) until: Option<String>,
    /// Events per page, 1 to 1000.
    #[arg(long, value_name = "N", default_value_t = flavorbox_app::audit::PAGE)]
    pub(crate) limit: u32,
    /// Only events older than this id: the next page, as the previous one says.
    #[arg(long, value_name = "ID")]
    pub(crate) before: Option<i64>,
    #[command(flatten)]
    pub(crate) out: JsonFlag,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FLAVORBOX_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(if serving { "info" } else { "warn" })
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A server's log goes to a collector: one JSON object a line, with the
    // request span's fields (request id, tenant, flavor).
    let _ = if serving && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if serving { workers } else { 2 })
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            ExitCode::FAILURE
        }
    };
    // Dropping the runtime would wait without bound for blocking tasks (a
    // sandbox call runs to its own deadline): a server's exit stays bounded
    // by its drain.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
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

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Image(ImageCommand::Parse { reference, out }) = &cli.command {
        return commands::image_parse(reference, out.json);
    }
    // Authoring commands edit files and run toolchains: no state, no server.
    let cli = match cli.command {
        Command::Flavor(FlavorCommand::New(args)) => return scaffold::new(args),
        Command::Flavor(FlavorCommand::Build(args)) => return scaffold::build(args),
        command => Cli { command, ..cli },
    };
    let home = match cli.home {
        Some(home) => home,
        None => App::default_home()?,
    };
    match cli.command {
        Command::Serve(args) => return serve(&cli.limits, home, args).await,
        Command::Migrate(args) => return commands::migrate(&args.database).await,
        Command::Login(args) => return commands::login(&home, args).await,
        Command::Logout => return commands::logout(&home),
        Command::Bench(args) => return bench::bench(&cli.limits, home, args).await,
        _ => {}
    }
    if let Some(login) = Login::current(&home)? {
        return dispatch(&RemoteBackend::new(login), cli.command).await;
    }
    // One command, a few sandbox calls: no instance pool to set up.
    let config = cli.limits.builder(home.clone()).pooling(false).build()?;
    let app = App::open(config)
        .await
        .with_context(|| format!("cannot open the state in {}", home.display()))?;
    let tenant = Tenant::local();
    dispatch(&LocalBackend::new(app.tenant(&tenant)), cli.command)
        .await
        .map_err(|e| name_the_home(e, &home))
}

/// A full disk or a read-only file system reported without a path names
/// the state directory: the database's errors do not know it.
fn name_the_home(error: anyhow::Error, home: &std::path::Path) -> anyhow::Error {
    use flavorbox_app::StoreError;
    let store_error = error.chain().find_map(|cause| {
        cause
            .downcast_ref::<flavorbox_app::AppError>()
            .and_then(|e| match e {
                flavorbox_app::AppError::Store(s) => Some(s),
                _ => None,
            })
            .or_else(|| cause.downcast_ref::<StoreError>())
    });
    match store_error {
        Some(StoreError::NoSpace { path: None }) => anyhow::Error::new(StoreError::NoSpace {
            path: Some(home.to_path_buf()),
        }),
        Some(StoreError::ReadOnly { path: None }) => anyhow::Error::new(StoreError::ReadOnly {
            path: Some(home.to_path_buf()),
        }),
        _ => error,
    }
}

/// Runs a state command through a backend, local or remote.
async fn dispatch(backend: &impl Backend, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Flavor(cmd) => commands::flavor(backend, cmd).await,
        Command::Registry(cmd) => commands::registry(backend, cmd).await,
        Command::Secret(cmd) => commands::secret(backend, cmd).await,
        Command::Push(args) => commands::push(backend, args).await,
        Command::Audit(args) => commands::audit(backend, args).await,
        Command::Image(_)
        | Command::Serve(_)
        | Command::Migrate(_)
        | Command::Login(_)
        | Command::Logout
        | Command::Bench(_) => Ok(()),
    }
}

/// `serve`: checks every setting, opens the state, runs until SIGTERM.
async fn serve(limits: &LimitArgs, home: PathBuf, args: ServeArgs) -> anyhow::Result<()> {
    let flags = flavorbox_server::config::ServeFlags {
        listen: args.listen,
        allow_registry: args.allow_registry,
        config: args.config,
        max_concurrent_calls: args.max_concurrent_calls,
    };
    let mut builder = limits.builder(home.clone());
    let state = match &args.database {
        Some(url) => {
            builder = builder.database(url.clone());
            format!(
                "the database {} (code cache in {})",
                flavorbox_app::redact_database_url(url),
                home.display()
            )
        }
        None => format!("the state in {}", home.display()),
    };
    let (config, options) =
        flavorbox_server::config::load(builder, &flags, |name| std::env::var(name).ok())?;
    let app = App::open(config)
        .await
        .with_context(|| format!("cannot open {state}"))?;
    flavorbox_server::serve(app, options).await
}
