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
    },
    /// Validate a configuration file; exits non-zero with the reason when it is invalid.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Live statistics of a running server (like top).
    Stats {
        /// Control socket of the running server.
        #[arg(short, long, default_value = "/run/xdhcp6/control.sock")]
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
