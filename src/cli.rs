//! The command line: `serve`, `simulate`, `loadtest`, `rpc --stdio`. Loads and validates the config, sets up
//! logging, and runs the chosen face.

use crate::app::AppState;
use crate::config::{Config, LogFormat};
use crate::simulator::Simulator;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "voxgate",
    version,
    about = "A realtime voice gateway: one server between voice clients and a realtime speech model",
    after_help = "Start with `voxgate serve` (offline, on the built-in simulator) and open                   http://127.0.0.1:8080/. Every config key also reads from VOXGATE_<SECTION>__<KEY>."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The options of the commands that read voxgate's configuration (not `loadtest`, which only
/// talks to the addresses it is given).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigOpts {
    /// Config file (TOML); every key is optional (defaults: config/voxgate.toml documents them).
    #[arg(long, env = "VOXGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines instead of text (same as [server] log_format = "json").
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (HTTP + websocket faces).
    Serve {
        #[command(flatten)]
        opts: ConfigOpts,
        /// Listen address, overriding `[server] listen` (default 127.0.0.1:8080; a host name
        /// with a port works too, e.g. localhost:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Serve https/wss with a self-signed certificate made at start (for a LAN demo: a
        /// browser off localhost needs https for the microphone). The certificate is written
        /// to the temp directory and its fingerprint logged; ignored when [server] tls_cert is set.
        #[arg(long)]
        dev_tls: bool,
    },
    /// Run the embedded realtime model simulator on its own (its [simulator] settings apply).
    Simulate {
        #[command(flatten)]
        opts: ConfigOpts,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Echo input audio straight back (latency measurement).
        #[arg(long)]
        echo: bool,
    },
    /// Drive many synthetic voice sessions against a running voxgate and report latency.
    Loadtest(Box<crate::loadtest::LoadtestArgs>),
    /// Check the configuration (file, VOXGATE_ variables, defaults) and print the effective one
    /// as TOML with secrets redacted; exits non-zero naming the key when it is invalid.
    CheckConfig {
        #[command(flatten)]
        opts: ConfigOpts,
    },
    /// Speak JSON-RPC on stdin/stdout (websocket JSON-RPC is `serve`'s /rpc).
    Rpc {
        #[command(flatten)]
        opts: ConfigOpts,
        /// Use stdio: newline-delimited JSON-RPC on stdin/stdout, logs on stderr (required).
        #[arg(long, required = true)]
        stdio: bool,
    },
}

/// Targets whose debug/trace output includes raw HTTP requests (Authorization headers): capped at
/// `info` whatever RUST_LOG says, so keys never reach the logs.
const HEADER_LOGGING_TARGETS: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "str0m",
];

/// Logs to stderr (text or JSON lines) and, when `[telemetry] otlp_endpoint` is set, spans to
/// an OTLP collector; the exporter is returned so that it can be flushed at the end.
fn init_logging(
    format: LogFormat,
    telemetry: Option<&crate::config::TelemetryConfig>,
) -> anyhow::Result<Option<crate::telemetry::Telemetry>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    type Base = tracing_subscriber::Registry;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for target in HEADER_LOGGING_TARGETS {
        if let Ok(d) = format!("{target}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // RUST_LOG filters the logs only: exported spans do not depend on the log level.
    let mut layers: Vec<Box<dyn tracing_subscriber::Layer<Base> + Send + Sync>> =
        vec![match format {
            LogFormat::Json => text.json().with_filter(filter).boxed(),
            LogFormat::Pretty => text.with_filter(filter).boxed(),
        }];
    let mut exporter = None;
    if let Some((layer, t)) = telemetry
        .map(crate::telemetry::layer::<Base>)
        .transpose()?
        .flatten()
    {
        // voxgate's own spans (requests, conversations) and the events inside them.
        let ours =
            tracing_subscriber::filter::Targets::new().with_target("voxgate", tracing::Level::INFO);
        layers.push(layer.with_filter(ours).boxed());
        exporter = Some(t);
    }
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(exporter)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Loadtest(args) = cli.command {
        // The load generator needs no gateway config; it only talks to the addresses it is given.
        init_logging(LogFormat::Pretty, None)?;
        let code = crate::loadtest::run(*args).await?;
        if code != 0 {
            std::process::exit(code);
        }
        return Ok(());
    }
    let opts = match &cli.command {
        Command::Serve { opts, .. }
        | Command::Simulate { opts, .. }
        | Command::CheckConfig { opts }
        | Command::Rpc { opts, .. } => opts.clone(),
        Command::Loadtest(_) => ConfigOpts::default(),
    };
    let mut cfg = Config::load(opts.config.as_deref(), std::env::vars())?;
    if opts.log_json {
        cfg.server.log_format = LogFormat::Json;
    }
    let telemetry = init_logging(cfg.server.log_format, Some(&cfg.telemetry))?;
    if let Some(url) = cfg.telemetry.traces_url() {
        tracing::info!(%url, "telemetry: exporting spans over OTLP/HTTP");
    }
    let result = run_command(cli.command, cfg).await;
    if let Some(t) = telemetry {
        // The spans of the last moments go out before the process ends.
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
    result
}

async fn run_command(command: Command, mut cfg: Config) -> anyhow::Result<()> {
    for warning in crate::config::env_warnings(std::env::vars()) {
        tracing::warn!("{warning}");
    }
    match command {
        Command::Serve {
            listen, dev_tls, ..
        } => {
            if let Some(l) = listen {
                cfg.server.listen = l;
                cfg.validate()?;
            }
            serve(cfg, dev_tls).await
        }
        Command::Simulate { listen, echo, .. } => {
            let mut sim_cfg = cfg.simulator.clone();
            sim_cfg.echo |= echo;
            let sim = Simulator::start(listen, sim_cfg)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tracing::info!(addr = %sim.addr, "simulator listening; base_url = {}", sim.base_url());
            say(&format!("simulator listening on {}", sim.addr));
            ShutdownSignals::new().recv().await;
            Ok(())
        }
        Command::Loadtest(_) => Ok(()),
        Command::CheckConfig { .. } => {
            let text = crate::config::effective_toml(&cfg).map_err(anyhow::Error::msg)?;
            say(&format!(
                "# voxgate: the configuration is valid; in effect (secrets redacted):\n{text}"
            ));
            Ok(())
        }
        Command::Rpc { stdio, .. } => {
            if !stdio {
                anyhow::bail!(
                    "`voxgate rpc` needs --stdio (websocket JSON-RPC is served by `voxgate serve` at /rpc)"
                );
            }
            require_upstream_key(&cfg)?;
            let app = AppState::build(cfg).await?;
            crate::rpc::stdio::serve(app).await?;
            Ok(())
        }
    }
}

/// A line on stdout for scripts and people; a reader that went away (a closed pipe) is no
/// reason to stop serving.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The listener's TLS, if any: `[server] tls_cert`/`tls_key`, else `--dev-tls`'s self-signed one.
fn tls_identity(
    cfg: &Config,
    dev_tls: bool,
    listen: &SocketAddr,
) -> anyhow::Result<Option<crate::http::tls::TlsIdentity>> {
    if let (Some(cert), Some(key)) = (&cfg.server.tls_cert, &cfg.server.tls_key) {
        let id = crate::http::tls::load(cert, key)?;
        tracing::info!(cert = %cert.display(), fingerprint = %id.fingerprint, "TLS on: serving https and wss");
        return Ok(Some(id));
    }
    if !dev_tls {
        return Ok(None);
    }
    let hosts = crate::http::tls::dev_hosts(listen);
    let dir = std::env::temp_dir().join(format!("voxgate-dev-tls-{}", std::process::id()));
    let (id, path) = crate::http::tls::dev_self_signed(&hosts, &dir)?;
    tracing::warn!(
        cert = %path.display(),
        fingerprint = %id.fingerprint,
        hosts = %hosts.join(","),
        "TLS on with a self-signed development certificate: browsers will ask to trust it; \
         clients may pin the fingerprint or trust the certificate file"
    );
    Ok(Some(id))
}

/// A real model service needs a key: said at start, naming where it is looked for, rather than
/// at the first session.
fn require_upstream_key(cfg: &Config) -> anyhow::Result<()> {
    if cfg.upstream.kind == crate::config::UpstreamKind::Openai
        && cfg.upstream.resolve_api_key().is_none()
    {
        anyhow::bail!(
            "[upstream] kind = \"openai\" needs an API key: set the environment variable {} \
             (named by [upstream] api_key_env) or [upstream] api_key; or leave kind at \
             \"simulator\" to run offline",
            cfg.upstream.api_key_env
        );
    }
    Ok(())
}

async fn serve(cfg: Config, dev_tls: bool) -> anyhow::Result<()> {
    require_upstream_key(&cfg)?;
    let listen: SocketAddr = cfg
        .server
        .listen_addr()
        .map_err(|e| anyhow::anyhow!("server.listen: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let tls = tls_identity(&cfg, dev_tls, &addr)?;
    let app = AppState::build(cfg).await?;
    app.join_cluster(addr).map_err(anyhow::Error::msg)?;
    if app.cfg.auth.mode == crate::config::AuthMode::None {
        tracing::warn!(
            %addr,
            "AUTHENTICATION IS OFF ([auth] mode = \"none\"): anyone who can reach this address uses voxgate \
             and its upstream key. Allowed only on loopback; set [auth] mode = \"keys\" to require API keys."
        );
    }
    // Listening for signals before saying so: a SIGTERM right after the line below is a drain.
    let mut signals = ShutdownSignals::new();
    tracing::info!(%addr, upstream = ?app.cfg.upstream.kind, "voxgate listening");
    // A machine-readable line for scripts and tests that bind port 0.
    say(&format!("voxgate listening on {addr}"));
    // …and one for people: where the demo page is.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shown = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    say(&format!("open {scheme}://{shown}/ for the demo page"));
    let grace = Duration::from_secs(app.cfg.server.drain_grace_secs);
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let draining = app.clone();
    let server =
        crate::http::serve_with(listener, tls.map(|t| t.acceptor), app.clone(), async move {
            signals.recv().await;
            drain(&draining, grace, signals).await;
            let _ = drained_tx.send(());
        });
    // Connections still open after the drain (idle websockets) get a moment, not forever.
    let linger = async {
        if drained_rx.await.is_ok() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        res = server => res?,
        () = linger => tracing::info!("closing the connections left after the drain"),
    }
    // Websockets outlive the server's graceful shutdown: each writes what it still owes (the
    // drain's `closed`), closes, and only then does the process exit.
    app.close_connections(Duration::from_secs(2)).await;
    if let Some(cluster) = app.cluster() {
        cluster.leave().await;
    }
    tracing::info!("voxgate stopped");
    Ok(())
}

/// Graceful drain: refuse new sessions at once (`/readyz` turns 503), let running ones finish
/// for `grace`, then close the rest with reason `requested`. A second signal exits at once.
async fn drain(app: &AppState, grace: Duration, mut signals: ShutdownSignals) {
    tokio::spawn(async move {
        signals.recv().await;
        tracing::warn!("second shutdown signal: exiting now without waiting for sessions");
        std::process::exit(130);
    });
    app.begin_drain();
    // Peers learn of the drain now, not at the next heartbeat.
    if let Some(cluster) = app.cluster() {
        cluster.beat(app).await;
    }
    let running = app.sessions.running_count();
    tracing::info!(
        running,
        grace_secs = grace.as_secs(),
        "draining: accepting no new sessions; running ones may finish"
    );
    if tokio::time::timeout(grace, app.sessions.wait_idle())
        .await
        .is_ok()
    {
        tracing::info!("drain complete: every session finished");
        return;
    }
    for (owner, thread_id) in app.sessions.running_ids() {
        tracing::info!(%thread_id, reason = "requested", "drain grace period over: closing session");
        app.sessions.stop(&owner, &thread_id);
    }
    if tokio::time::timeout(Duration::from_secs(5), app.sessions.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!(
            left = app.sessions.running_count(),
            "sessions still closing after the drain; exiting anyway"
        );
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from creation on: a signal that arrives while the
/// first one is being handled is not lost, so a quick second Ctrl-C still exits at once.
struct ShutdownSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// The next SIGTERM or SIGINT.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: Option<&mut tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(self.term.as_mut()) => {},
                () = next(self.int.as_mut()) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
