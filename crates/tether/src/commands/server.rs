//! `tether server`: open the store, make sure there is a key and an admin token,
//! serve the API until SIGINT/SIGTERM. `tether server rotate-key` re-encrypts
//! every secret under a new key-encryption key. `tether server admin-token`
//! creates a new account admin token on the manager host, for an operator who
//! lost every admin token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tether_store::{Kek, KekOrigin, Store, StoreConfig, KEK_ENV};
use tokio::net::TcpListener;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "TETHER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How often delegates send a heartbeat.
    #[arg(long, env = "TETHER_DELEGATE_HEARTBEAT", default_value = "15s", value_parser = humantime::parse_duration)]
    delegate_heartbeat: std::time::Duration,
    /// A delegate silent this long is disconnected and its tasks go to another.
    #[arg(long, env = "TETHER_DELEGATE_TIMEOUT", default_value = "45s", value_parser = humantime::parse_duration)]
    delegate_timeout: std::time::Duration,
    /// When a delegate's connection closes, how long it has to reconnect and
    /// claim its tasks before they go to another delegate.
    #[arg(long, env = "TETHER_DELEGATE_RECONNECT_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    delegate_reconnect_grace: std::time::Duration,
    /// On SIGTERM/SIGINT, how long requests in flight may take before the
    /// manager exits anyway (keep it under the orchestrator's grace period,
    /// 30 s in Kubernetes). Requests waiting for a task answer at once with
    /// the task id, and clients follow it to the next manager.
    #[arg(long, env = "TETHER_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    shutdown_timeout: std::time::Duration,
    /// A delegate not seen this long (disconnected, holding no task) is
    /// removed from the list, and its name is free for another token.
    #[arg(long, env = "TETHER_DELEGATE_EXPIRY", default_value = "7d", value_parser = humantime::parse_duration)]
    delegate_expiry: std::time::Duration,
    /// How many delegates one delegate token may register (each --name is
    /// one); a new delegate past that is refused and told what to do.
    #[arg(long, env = "TETHER_MAX_DELEGATES_PER_TOKEN", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    max_delegates_per_token: u32,
    #[command(flatten)]
    tests: super::connection_test::TestArgs,
    /// The http(s):// URL at which other managers sharing this database reach this
    /// one, to pass on Kubernetes requests for delegates connected here.
    /// Default: http://<listen address> unless that is a wildcard address.
    #[arg(long, env = "TETHER_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM). Needed for kubectl
    /// through tether: client-go sends tokens only over TLS.
    #[arg(long, env = "TETHER_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, env = "TETHER_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// How long the audit log of proxied Kubernetes requests is kept.
    #[arg(long, env = "TETHER_AUDIT_RETENTION", default_value = "90days", value_parser = humantime::parse_duration)]
    audit_retention: std::time::Duration,
    #[command(subcommand)]
    action: Option<ServerAction>,
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// Where the SQLite database, the generated key and the first admin token live.
    #[arg(long, env = "TETHER_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// `postgres://user@host/db` to keep everything in PostgreSQL instead of SQLite.
    #[arg(long, env = "TETHER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// File holding the key-encryption key (32 bytes, hex or base64). Else
    /// $TETHER_KEK, else <data-dir>/kek (generated on first start).
    #[arg(long, env = "TETHER_KEK_FILE")]
    kek_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ServerAction {
    /// Re-encrypt every secret under a new key-encryption key.
    RotateKey(RotateKeyArgs),
    /// Create a new account admin API token (printed once, stored hashed),
    /// for an operator who lost every admin token. Run it on the manager host
    /// with the server's --data-dir / --database-url / --kek-file: only whoever
    /// holds the database and its key can.
    AdminToken(AdminTokenArgs),
}

#[derive(Debug, Args)]
struct AdminTokenArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The new token's name (shown in `tether token list`).
    #[arg(long, default_value = "recovery admin")]
    name: String,
}

#[derive(Debug, Args)]
struct RotateKeyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// File with the new key; a new random key is generated when absent.
    #[arg(long)]
    new_kek_file: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("tether");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/tether"),
        None => PathBuf::from("tether-data"),
    }
}

async fn open_store(args: &StoreArgs) -> Result<(Store, KekOrigin)> {
    let loaded = Kek::load_or_create(&args.data_dir, args.kek_file.as_deref())?;
    if loaded.generated {
        eprintln!(
            "tether: generated a new key-encryption key in {} (mode 0600). Back it up: secrets cannot be read without it.",
            args.data_dir.join(tether_store::KEK_FILE_NAME).display()
        );
    }
    let store = Store::open(StoreConfig {
        database_url: args.database_url.clone(),
        data_dir: args.data_dir.clone(),
        key: loaded.kek,
    })
    .await?;
    Ok((store, loaded.origin))
}

pub async fn run(args: ServerArgs) -> Result<ExitCode> {
    match args.action {
        Some(ServerAction::RotateKey(r)) => return rotate_key(r).await,
        Some(ServerAction::AdminToken(a)) => return admin_token(a).await,
        None => {}
    }
    init_logging();
    let (store, _) = open_store(&args.store).await?;
    if let Some(token) = store.ensure_admin_token(&args.store.data_dir).await? {
        // Printed once, to the terminal only (not to the log), and saved 0600.
        println!(
            "Admin API token (shown once; also in {}):\n  {}",
            args.store
                .data_dir
                .join(tether_store::ADMIN_TOKEN_FILE_NAME)
                .display(),
            token.expose()
        );
    }
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; is another server using it? pick another with --listen",
            args.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(c), Some(k)) => Some(tether_server::tls::TlsConfig::from_files(c, k)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("tether server listening on {scheme}://{addr}");
    tracing::info!(%addr, backend = ?store.backend(), "serving");
    let broker = tether_server::delegates::Broker::new(
        store.clone(),
        tether_server::delegates::BrokerConfig {
            heartbeat_interval: args.delegate_heartbeat,
            heartbeat_timeout: args.delegate_timeout.max(args.delegate_heartbeat * 2),
            reconnect_grace: args.delegate_reconnect_grace,
            delegate_expiry: args.delegate_expiry,
            max_delegates_per_token: args.max_delegates_per_token,
            ..Default::default()
        },
    );
    let advertise_url = args.advertise_url.clone().or_else(|| {
        // A wildcard address cannot be dialled; a concrete one (loopback
        // included, for managers on one host) can.
        (!addr.ip().is_unspecified()).then(|| format!("{scheme}://{addr}"))
    });
    let state = tether_server::AppState::with_tests(store.clone(), broker, args.tests.settings())
        .with_proxy(tether_server::proxy::ProxySettings {
            advertise_url,
            audit_retention: args.audit_retention,
            tls: tls.clone(),
        });
    tether_server::serve_with(
        listener,
        state,
        tls,
        shutdown_signal(),
        args.shutdown_timeout,
    )
    .await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn rotate_key(args: RotateKeyArgs) -> Result<ExitCode> {
    let (store, origin) = open_store(&args.store).await?;
    let new = match &args.new_kek_file {
        Some(f) => Kek::parse(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            &format!("the key file {}", f.display()),
        )?,
        None => Kek::generate(),
    };
    // The new key is on disk before the database changes, so no crash can leave
    // secrets encrypted under a key that exists nowhere.
    let staged = args.store.data_dir.join("kek.new");
    write_private(&staged, &format!("{}\n", new.export().expose()))?;
    let count = store.rotate_kek(new).await?;
    store.close().await;
    match origin {
        KekOrigin::DataDir(path) | KekOrigin::Generated(path) => {
            std::fs::rename(&staged, &path)
                .with_context(|| format!("moving {} to {}", staged.display(), path.display()))?;
            println!(
                "Re-encrypted {count} secrets; the new key is in {}.",
                path.display()
            );
        }
        KekOrigin::File(path) => {
            println!(
                "Re-encrypted {count} secrets. The new key is in {}: replace {} with it (or point --kek-file at it) before the next start.",
                staged.display(),
                path.display()
            );
        }
        KekOrigin::Env => {
            println!(
                "Re-encrypted {count} secrets. The new key is in {}: set {KEK_ENV} to its contents before the next start.",
                staged.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn admin_token(args: AdminTokenArgs) -> Result<ExitCode> {
    let store_args = &args.store;
    // A recovery opens what exists; it never creates a database or a key.
    let db = store_args.data_dir.join(tether_store::SQLITE_FILE_NAME);
    if store_args.database_url.is_none() && !db.exists() {
        anyhow::bail!(
            "there is no tether database at {}: run this on the manager host with the server's --data-dir (or --database-url for PostgreSQL)",
            db.display()
        );
    }
    let kek_in_env = std::env::var(KEK_ENV).is_ok_and(|v| !v.trim().is_empty());
    let kek_in_dir = store_args.data_dir.join(tether_store::KEK_FILE_NAME);
    if store_args.kek_file.is_none() && !kek_in_env && !kek_in_dir.exists() {
        anyhow::bail!(
            "no key-encryption key: neither --kek-file, ${KEK_ENV} nor {} is there. Give the server's key the way the server gets it",
            kek_in_dir.display()
        );
    }
    let (store, _) = open_store(store_args).await?;
    let (record, token) = store
        .create_token(
            &args.name,
            &tether_domain::scope::Scope::Account,
            tether_store::Role::Admin,
        )
        .await?;
    store.close().await;
    // Printed once, to the terminal only; the database keeps its hash.
    println!(
        "New account admin API token '{}' (id {}; shown once, not stored):\n  {}",
        record.name,
        record.id,
        token.expose()
    );
    eprintln!(
        "Sign in with it (`tether login`), then revoke tokens you no longer trust with `tether token revoke ID`."
    );
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Completes on SIGINT or SIGTERM: the server stops accepting and drains.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
