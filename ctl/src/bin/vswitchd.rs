//! `vswitchd`: the vswitch daemon. Starts the datapath, restores the saved configuration, and
//! serves the management socket until SIGTERM/SIGINT.

use std::fs;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use ctl::daemon::Daemon;
use ctl::parse::parse_cpu_list;
use ctl::{persist, server};
use datapath::{IdlePolicy, Switch, SwitchConfig};
use tracing::info;

#[derive(Parser, Debug)]
#[command(
    name = "vswitchd",
    version,
    about = "vswitch daemon: a userspace poll-mode virtual switch"
)]
struct Args {
    /// Management socket (Unix stream socket, mode 0660).
    #[arg(long, value_name = "PATH", default_value = ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// State file: the configuration, restored at start and rewritten atomically on each change.
    #[arg(long, value_name = "PATH", default_value = ctl::DEFAULT_STATE)]
    state: PathBuf,
    /// CPUs for PMD threads, one thread per CPU (e.g. `1`, `0,1`, `2-3`). Empty: one unpinned PMD.
    #[arg(long, value_name = "LIST", default_value = "")]
    pmd_cores: String,
    /// Busy-poll without ever sleeping (each PMD core always at 100 %).
    #[arg(long)]
    no_idle_backoff: bool,
    /// A PMD naps only after receiving and sending nothing for this long (microseconds): the
    /// gaps between bursts of a stream are spun through, so napping costs no throughput.
    #[arg(long, value_name = "US", default_value_t = 10_000)]
    pmd_nap_after_us: u64,
    /// Length of each nap of an idle PMD (microseconds): the most a first frame after an idle
    /// spell waits. 0: never nap (as --no-idle-backoff).
    #[arg(long, value_name = "US", default_value_t = 200)]
    pmd_nap_us: u64,
    /// Log filter (tracing env-filter syntax, e.g. `info`, `debug`, `ctl=debug,info`); logs go to stderr.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log: String,
    /// DPDK EAL arguments, used when the first `type=dpdk` port starts DPDK (e.g.
    /// `"-a 0000:03:00.1 --socket-mem 1024"`). vswitchd adds `-l <its first CPU>`, a unique
    /// `--file-prefix`, `--in-memory` and `--no-telemetry`, and `--no-huge -m 512` when no
    /// hugepages are free, unless these arguments set them.
    #[arg(
        long,
        value_name = "ARGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    dpdk_eal: String,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off unless given; keep it on
    /// loopback or a management network: it has no authentication).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// Do not sample latency (`port-latency` then reports nothing): one TSC read and one
    /// histogram record per receive burst fewer.
    #[arg(long)]
    no_latency: bool,
    /// Write the daemon's pid to this file (removed at exit).
    #[arg(long, value_name = "PATH")]
    pidfile: Option<PathBuf>,
}

/// Tells systemd (`Type=notify`) that the daemon is ready: the datapath runs, the saved
/// configuration is restored and the management socket listens. Without `NOTIFY_SOCKET`
/// (not started by systemd) it does nothing.
fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let addr = addr?;
        sock.send_to_addr(b"READY=1\nSTATUS=forwarding\n", &addr)
    });
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd through {path}: {e}");
    }
}

/// Removes the socket and pid files when the daemon exits (normally or on a start-up error).
struct Cleanup {
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = fs::remove_file(f);
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vswitchd: invalid --log filter '{}': {e}", args.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vswitchd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let pmd_cores = parse_cpu_list(&args.pmd_cores).map_err(|e| format!("--pmd-cores: {e}"))?;
    let cfg = persist::load(&args.state)?;
    server::install_signal_handlers()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let listener = server::bind_socket(&args.socket)?;
    let metrics = match args.metrics {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|e| format!("--metrics {addr}: cannot listen: {e}"))?,
        ),
        None => None,
    };
    let mut cleanup = Cleanup {
        files: vec![args.socket.clone()],
    };
    if let Some(pidfile) = &args.pidfile {
        fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pid file {}: {e}", pidfile.display()))?;
        cleanup.files.push(pidfile.clone());
    }

    let switch = Switch::start(SwitchConfig {
        pmd_cores: pmd_cores.clone(),
        no_idle_backoff: args.no_idle_backoff,
        idle: IdlePolicy {
            nap_after: Duration::from_micros(args.pmd_nap_after_us),
            nap: Duration::from_micros(args.pmd_nap_us),
        },
        caller_driven: false,
        dpdk_eal: args.dpdk_eal.split_whitespace().map(String::from).collect(),
        no_latency: args.no_latency,
    })
    .map_err(|e| format!("cannot start the datapath: {e}"))?;
    info!(pmd_cores = ?pmd_cores, no_idle_backoff = args.no_idle_backoff, "datapath started");
    let daemon = Arc::new(Mutex::new(Daemon::new(switch, cfg, args.state.clone())));
    if let Some(l) = metrics {
        let addr = l.local_addr().map_err(|e| format!("--metrics: {e}"))?;
        ctl::metrics::http::spawn(l, daemon.clone())
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        info!(%addr, "metrics at http://{addr}/metrics");
    }
    info!(socket = %args.socket.display(), state = %args.state.display(), "vswitchd {} ready", ctl::PACKAGE_VERSION);

    notify_ready();
    let served = server::accept_loop(listener, daemon.clone());
    info!("shutting down");
    daemon.lock().unwrap_or_else(|p| p.into_inner()).shutdown();
    drop(cleanup);
    served.map_err(|e| format!("management socket failed: {e}"))?;
    info!("stopped");
    Ok(())
}
