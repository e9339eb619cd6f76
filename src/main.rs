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
use xdhcp6::io::{duid, shutdown::Shutdown, socket, xdp};

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
            if let Some(file) = file {
                let filter = match daemon::LeaseFilter::parse(
                    duid.as_deref(),
                    address.as_deref(),
                    prefix.as_deref(),
                ) {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("xdhcp6 leases: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                return match daemon::offline_leases(&file, &filter, offset, limit) {
                    Ok((leases, summary)) => {
                        if summary.corrupt > 0 {
                            eprintln!(
                                "xdhcp6 leases: {}: {} corrupt records skipped",
                                file.display(),
                                summary.corrupt
                            );
                        }
                        cli::print_leases(&leases, format);
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("xdhcp6 leases: {e}");
                        ExitCode::FAILURE
                    }
                };
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
        Command::Bench(args) => match xdhcp6::loadgen::main(*args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xdhcp6 bench: {e:#}");
                ExitCode::FAILURE
            }
        },
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
    // Open the backend first: a missing interface, a busy port or missing privileges fail
    // before anything else starts.
    let backend = open_backend(&cfg)?;
    // Then the lease file: another server running with it stops this one here (a server
    // running on the same interfaces has already stopped it above: the port or the XDP
    // attachment is busy). The backend is closed again on the way out.
    let table = Arc::new(open_lease_table(&cfg)?);
    let server_duid = duid::for_config(&cfg, daemon::unix_now())
        .with_context(|| format!("server DUID file {}", cfg.server.duid_file.display()))?;
    tracing::info!(duid = %duid::format_hex(&server_duid), "server DUID");
    let (interfaces, workers, name) = match &backend {
        Backend::Socket(b) => (
            b.interfaces()
                .map(|i| (i.ifindex, i.name.clone()))
                .collect(),
            b.workers(),
            "socket",
        ),
        Backend::Xdp(b) => (b.interfaces().to_vec(), b.workers(), "xdp"),
    };
    let rt = Arc::new(Runtime::with_table(
        config_path,
        cfg.clone(),
        table,
        server_duid,
        interfaces,
        workers,
        name,
    ));
    if let Backend::Xdp(b) = &backend {
        rt.set_xdp_mode(b.mode().name());
        let status = b.status_handle();
        rt.set_backend_status(Box::new(move || status.status_json()));
    }
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
    // One stats file for both backends: the whole snapshot the control socket answers with.
    let mut error_logged = false;
    let mut write_stats = || {
        let Some(path) = &stats_file else { return };
        let written = serde_json::to_vec_pretty(&rt.snapshot())
            .map_err(std::io::Error::other)
            .and_then(|json| xdhcp6::io::write_atomically(path, &json));
        if let Err(e) = written {
            if !std::mem::replace(&mut error_logged, true) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write stats file");
            }
        }
    };
    let result = match backend {
        Backend::Socket(b) => b
            .run(
                &*rt,
                rt.stats(),
                &shutdown,
                &socket::SocketOptions::default(),
                &mut write_stats,
            )
            .map(drop)
            .map_err(anyhow::Error::from),
        Backend::Xdp(b) => {
            let r = b.run(&*rt, rt.stats(), &shutdown, &mut write_stats);
            let total = rt.snapshot().total();
            tracing::info!(
                received = total.rx,
                answered = total.tx,
                drops = ?total.drops.iter().filter(|(_, n)| **n > 0).collect::<Vec<_>>(),
                "XDP backend stopped; programs detached"
            );
            r.map_err(anyhow::Error::from)
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = housekeeping.join();
    result
}

/// Open `server.lease_file` and log what the open found.
fn open_lease_table(cfg: &xdhcp6::config::Config) -> anyhow::Result<daemon::storage::TableStore> {
    use xdhcp6::lease::table::TableError;
    let path = &cfg.server.lease_file;
    let table = daemon::storage::TableStore::open(cfg).map_err(|e| {
        let hint = match &e {
            TableError::Locked { .. } => {
                "; is another xdhcp6 server running with this lease file? Stop it first"
            }
            TableError::BadHeader { .. } => {
                "; it is not a lease file of this version. Move it away to start with an empty \
                 table (`xdhcp6 leases --file` may still read it)"
            }
            _ => "",
        };
        anyhow::anyhow!("server.lease_file: {e}{hint}")
    })?;
    let r = table.open_report();
    tracing::info!(
        path = %path.display(),
        records = r.records,
        corrupt = r.corrupt,
        superseded = r.superseded,
        orphans = r.orphans,
        header_repaired = r.header_repaired,
        open_ms = r.open_ms,
        durability = ?cfg.server.lease.durability,
        "serving leases from the lease file"
    );
    if r.corrupt > 0 || r.header_repaired > 0 {
        tracing::warn!(
            path = %path.display(),
            corrupt = r.corrupt,
            header_repaired = r.header_repaired,
            "lease file had torn or corrupt records: skipped (their slots are reused); every \
             intact lease is served"
        );
    }
    Ok(table)
}

/// The packet path `serve` runs.
enum Backend {
    Socket(socket::SocketBackend),
    Xdp(xdp::XdpBackend),
}

/// Open the backend `server.backend` asks for. `auto` takes XDP where it can be opened
/// (privileges, AF_XDP support, attach, bind) and otherwise says why in the log and uses
/// sockets; `xdp` fails with the reason.
fn open_backend(cfg: &xdhcp6::config::Config) -> anyhow::Result<Backend> {
    use xdhcp6::config::Backend as Choice;
    let xdp_cfg = || xdp::XdpConfig::from_config(cfg);
    let socket =
        || -> anyhow::Result<Backend> { Ok(Backend::Socket(socket::SocketBackend::bind(cfg)?)) };
    match cfg.server.backend {
        Choice::Socket => socket(),
        Choice::Xdp => xdp::XdpBackend::open(&xdp_cfg())
            .map(Backend::Xdp)
            .context("server.backend = \"xdp\""),
        Choice::Auto => match xdp::XdpBackend::open(&xdp_cfg()) {
            Ok(b) => Ok(Backend::Xdp(b)),
            Err(e) => {
                tracing::warn!(
                    reason = %e,
                    "server.backend = \"auto\": the XDP backend cannot run here; using the socket backend"
                );
                socket()
            }
        },
    }
}
