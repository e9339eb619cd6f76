use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use xdhcp6::cli::{self, Cli, Command};
use xdhcp6::control::{self, Request};
use xdhcp6::daemon::{self, ControlHandler, Runtime};
use xdhcp6::io::{duid, shutdown::Shutdown, socket};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, stats_file } => match serve(&config, stats_file) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xdhcp6 serve: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Status { socket } => cli::simple_request(&socket, &Request::Status),
        Command::Reload { socket } => cli::simple_request(&socket, &Request::Reload),
        Command::Leases {
            socket,
            file,
            duid,
            address,
            prefix,
            offset,
            limit,
            format,
        } => {
            if file.is_some() {
                eprintln!("xdhcp6 leases --file: the offline lease-file reader arrives with the memory-mapped lease table");
                return ExitCode::FAILURE;
            }
            let req = Request::Leases {
                duid,
                address,
                prefix,
                offset,
                limit,
            };
            match control::request(&socket, &req) {
                Ok(r) if r.ok => {
                    let data = r.data.unwrap_or_default();
                    let leases = data["leases"].as_array().cloned().unwrap_or_default();
                    cli::print_leases(&leases, format);
                    ExitCode::SUCCESS
                }
                Ok(r) => {
                    eprintln!("xdhcp6 leases: {}", r.error.unwrap_or_default());
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("xdhcp6 leases: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Stats {
            socket,
            once,
            interval,
            json,
        } => {
            let interval = Duration::from_secs_f64(interval.clamp(0.05, 3600.0));
            match cli::stats::run(&socket, once, interval, json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xdhcp6 stats: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(config_path: &Path, stats_file: Option<PathBuf>) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cfg = xdhcp6::config::load_file(config_path)?;
    let shutdown = Shutdown::new()?;
    shutdown.install_signal_handlers()?;
    // Bind first: a missing interface or a busy port fails before anything else starts.
    let backend = socket::SocketBackend::bind(&cfg)?;
    let server_duid = duid::for_config(&cfg, daemon::unix_now())
        .with_context(|| format!("server DUID file {}", cfg.server.duid_file.display()))?;
    tracing::info!(duid = %duid::format_hex(&server_duid), "server DUID");
    let store: daemon::DynStore = Arc::new(xdhcp6::lease::memory::MemoryStore::new());
    let interfaces = backend
        .interfaces()
        .map(|i| (i.ifindex, i.name.clone()))
        .collect();
    let rt = Arc::new(Runtime::new(
        config_path,
        cfg.clone(),
        store,
        server_duid,
        interfaces,
        backend.workers(),
        "socket",
    ));
    let _control = control::ControlServer::start(
        &cfg.server.control_socket,
        cfg.server.control_group.as_deref(),
        Arc::new(ControlHandler(rt.clone())),
    )?;
    tracing::info!(path = %cfg.server.control_socket.display(), "control socket listening");
    let _metrics = match cfg.server.metrics_listen {
        Some(addr) => {
            let rt2 = rt.clone();
            let m = control::metrics::MetricsServer::start(addr, Arc::new(move || rt2.snapshot()))
                .with_context(|| format!("metrics listener {addr}"))?;
            tracing::info!(%addr, "Prometheus metrics at http://{addr}/metrics");
            Some(m)
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let housekeeping = daemon::spawn_housekeeping(rt.clone(), stop.clone())?;
    let opts = socket::SocketOptions {
        stats_file,
        ..Default::default()
    };
    let result = backend.run(&*rt, rt.stats(), &shutdown, &opts);
    stop.store(true, Ordering::Relaxed);
    let _ = housekeeping.join();
    result?;
    Ok(())
}
