use std::process::ExitCode;

use clap::Parser;
use xdhcp6::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { .. } => {
            eprintln!("xdhcp6: serve is not wired yet");
            ExitCode::FAILURE
        }
        Command::CheckConfig { .. } => {
            eprintln!("xdhcp6: check-config is not wired yet");
            ExitCode::FAILURE
        }
    }
}
