//! `wire relay-server`: run a relay (the wire-relay crate) in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wire_relay::app::{Config, DEFAULT_BIND};

use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_BIND)]
    bind: SocketAddr,
    /// Serve loopback only, and do not list handles.
    #[arg(long)]
    local_only: bool,
    /// Also serve the same API on this Unix socket (created mode 0600).
    #[arg(long)]
    uds: Option<PathBuf>,
    /// Where the relay keeps its files [default: <wire home>/relay]. With --store, only the
    /// metrics history behind /stats is kept here.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Keep slots, blobs, capabilities, handles and intros in this PostgreSQL database
    /// (postgres://user[:password]@host[:port]/db) instead of redb files in --data; several
    /// relays on one database serve one mailbox. The schema is created or upgraded at start.
    #[arg(long, value_name = "URL", env = "WIRE_RELAY_STORE")]
    store: Option<String>,
    /// The URL clients reach this relay at; its host[:port] is the domain of handles here
    /// [default: http://<bind address>, or https://<bind address> with --tls-cert].
    #[arg(long)]
    public_url: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (the relay's certificate first, then any
    /// intermediates); needs --tls-key. Send SIGHUP to load new files without a restart.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, RSA or EC).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Blobs a slot may hold before its owner acknowledges.
    #[arg(long, hide = true)]
    slot_blobs_max: Option<u64>,
    /// Turn off per-address rate limits (benchmarks and closed test rigs only).
    #[arg(long, hide = true)]
    no_rate_limits: bool,
    /// On PostgreSQL, the longest a group of appends waits for the clients its connection
    /// last answered to send again and join it, in microseconds (0: never wait; an open load
    /// of clients that send now and then gains nothing from the wait).
    #[arg(long, value_name = "US", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=100_000))]
    group_wait_us: u64,
    /// Page cache for the relay's files, in MiB.
    #[arg(long, hide = true, default_value_t = 16)]
    cache_mib: usize,
}

pub fn run(out: &Out, args: Args) -> anyhow::Result<ExitCode> {
    let data = match args.data {
        Some(d) => d,
        None => wire_engine::Home::from_env()?.root().join("relay"),
    };
    if !args.local_only && !args.bind.ip().is_loopback() && args.public_url.is_none() {
        eprintln!(
            "wire relay: listening on {} without --public-url; handles here will be named after that address",
            args.bind
        );
    }
    if let Some(url) = &args.store
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        anyhow::bail!(
            "--store {}: expected a postgres://user@host:port/db URL (leave --store out for the embedded store in --data)",
            wire_relay::store::redact(url)
        );
    }
    let store = args.store.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let json = out.json;
    let local_only = args.local_only;
    let slot_blobs_max = args.slot_blobs_max;
    let cache = args.cache_mib << 20;
    let no_rate_limits = args.no_rate_limits;
    let group_wait = std::time::Duration::from_micros(args.group_wait_us);
    let config_for = |url: &str| -> Result<Config, String> {
        let mut c = Config::new(url, data.clone())?;
        c.store_url = store.clone();
        c.local_only = local_only;
        c.cache_bytes = cache;
        c.group_wait = group_wait;
        if no_rate_limits {
            c.rates = wire_relay::app::Rates::unlimited();
        }
        if let Some(n) = slot_blobs_max {
            c.quotas.slot_blobs_max = n;
        }
        Ok(c)
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(wire_relay::tls::TlsFiles { cert, key }),
        // clap requires each with the other.
        _ => None,
    };
    let result = runtime.block_on(wire_relay::server::run(
        args.bind,
        args.uds,
        args.public_url,
        tls,
        config_for,
        |config, bound| {
            let uds = bound.uds.as_ref().map(|(_, p)| p.display().to_string());
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "listening": bound.listening_url(),
                        "tls": bound.tls.is_some(),
                        "public_url": config.public_url,
                        "domain": config.domain,
                        "uds": uds,
                        "data": config.data_dir.display().to_string(),
                        "store": config.store_url.as_deref().map(wire_relay::store::redact),
                        "local_only": config.local_only,
                    })
                );
            } else {
                println!("wire relay listening on {}", bound.listening_url());
                if let Some(tls) = &bound.tls {
                    println!(
                        "  TLS certificate {} (SIGHUP reloads it)",
                        tls.files().cert.display()
                    );
                }
                println!("  handles here are nick@{}", config.domain);
                if let Some(uds) = uds {
                    println!("  also on unix socket {uds}");
                }
                match &config.store_url {
                    Some(url) => println!(
                        "  data in PostgreSQL at {} (metrics history in {})",
                        wire_relay::store::redact(url),
                        config.data_dir.display()
                    ),
                    None => println!("  data in {}", config.data_dir.display()),
                }
                println!("  pages at {url}/ and {url}/stats", url = config.public_url);
                if config.local_only {
                    println!("  local-only: loopback, no handle listing, no phonebook");
                } else {
                    println!("  phonebook at {}/phonebook", config.public_url);
                }
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
        },
    ));
    // Connections that outlived the drain are cancelled here rather than waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}
