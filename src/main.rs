use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use xdhcp6::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { .. } => {
            eprintln!("xdhcp6: serve is not wired yet");
            ExitCode::FAILURE
        }
        Command::CheckConfig { file } => cli::check_config(&file),
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
