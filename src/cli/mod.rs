//! Command-line front end: argument parsing and the subcommands' top-level flow.

pub mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// xdhcp6: a kernel-bypass DHCPv6 server.
#[derive(Debug, Parser)]
#[command(name = "xdhcp6", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Also write the counters as JSON here every second and at exit.
        #[arg(long)]
        stats_file: Option<PathBuf>,
    },
    /// Validate a configuration file; exits non-zero with the reason when it is invalid.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Version, uptime, backend and queues of a running server.
    Status {
        #[arg(short, long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Apply a changed configuration file to a running server (same as SIGHUP).
    Reload {
        #[arg(short, long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Query leases: from a running server (default) or offline from a lease file (--file).
    Leases {
        #[arg(short, long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Read this lease file directly instead of asking a running server.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Only leases of this client DUID (hex, colons optional).
        #[arg(long)]
        duid: Option<String>,
        /// Only the lease of this address (or the delegated prefix that contains it).
        #[arg(long)]
        address: Option<String>,
        /// Only leases inside this prefix (ADDR/LEN).
        #[arg(long)]
        prefix: Option<String>,
        /// Skip this many matching leases.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = LeaseFormat::Table)]
        format: LeaseFormat,
    },
    /// Load-test a DHCPv6 server (this one or any other) with emulated clients.
    Bench(Box<crate::loadgen::Args>),
    /// Live statistics of a running server (like top).
    Stats {
        /// Control socket of the running server.
        #[arg(short, long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print one report and exit (rates over one interval).
        #[arg(long)]
        once: bool,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print raw snapshots as JSON (one per line; with --once, one pretty object).
        #[arg(long)]
        json: bool,
    },
}

/// The control socket path when the configuration does not set one.
pub const DEFAULT_SOCKET: &str = "/run/xdhcp6/control.sock";

/// How `leases` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaseFormat {
    Table,
    Json,
    Csv,
}

/// Send a control request and print the answer's data as pretty JSON.
pub fn simple_request(
    socket: &std::path::Path,
    req: &crate::control::Request,
) -> std::process::ExitCode {
    match crate::control::request(socket, req) {
        Ok(r) if r.ok => {
            let data = r.data.unwrap_or_default();
            match data.get("message").and_then(|m| m.as_str()) {
                Some(m) => println!("{m}"),
                None => println!(
                    "{}",
                    serde_json::to_string_pretty(&data).unwrap_or_default()
                ),
            }
            std::process::ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!(
                "xdhcp6: {}",
                r.error.unwrap_or_else(|| "request failed".into())
            );
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xdhcp6: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Print leases (JSON objects as `lease_json` makes them) in the chosen format.
pub fn print_leases(leases: &[serde_json::Value], format: LeaseFormat) {
    const COLS: [&str; 9] = [
        "duid",
        "iaid",
        "type",
        "address",
        "state",
        "preferred_lifetime",
        "valid_lifetime",
        "cltt",
        "expires_at",
    ];
    let cell = |l: &serde_json::Value, c: &str| match &l[c] {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    match format {
        LeaseFormat::Json => {
            for l in leases {
                println!("{l}");
            }
        }
        LeaseFormat::Csv => {
            println!("{}", COLS.join(","));
            for l in leases {
                println!(
                    "{}",
                    COLS.iter()
                        .map(|c| cell(l, c))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        LeaseFormat::Table => {
            println!(
                "{:<44} {:>10} {:<4} {:<44} {:<10} {:>10}",
                "duid", "iaid", "type", "address/prefix", "state", "valid"
            );
            for l in leases {
                println!(
                    "{:<44} {:>10} {:<4} {:<44} {:<10} {:>10}",
                    cell(l, "duid"),
                    cell(l, "iaid"),
                    cell(l, "type"),
                    cell(l, "address"),
                    cell(l, "state"),
                    cell(l, "valid_lifetime")
                );
            }
        }
    }
}

/// Run `check-config`: print a one-line verdict and return the exit status.
pub fn check_config(file: &std::path::Path) -> std::process::ExitCode {
    match crate::config::load_file(file) {
        Ok(cfg) => {
            let na: usize = cfg.links.iter().map(|l| l.address_pools.len()).sum();
            let pd: usize = cfg.links.iter().map(|l| l.prefix_pools.len()).sum();
            println!(
                "{}: OK ({} links, {na} address pools, {pd} prefix pools)",
                file.display(),
                cfg.links.len()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            std::process::ExitCode::from(2)
        }
    }
}
