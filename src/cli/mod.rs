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
}
