//! `xdhcp6-bench`: the DHCPv6 load generator as its own binary (the same code as
//! `xdhcp6 bench`). `xdhcp6-bench respond ...` runs the small test responder instead
//! (see `xdhcp6::loadgen::responder`).

use std::sync::atomic::AtomicBool;

use clap::Parser;

#[derive(Parser)]
#[command(name = "xdhcp6-bench", version)]
struct Cli {
    #[command(flatten)]
    args: xdhcp6::loadgen::Args,
}

#[derive(Parser)]
#[command(name = "xdhcp6-bench respond", version)]
struct RespondCli {
    #[command(flatten)]
    args: xdhcp6::loadgen::responder::ResponderArgs,
}

fn main() -> anyhow::Result<()> {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("respond") {
        argv.remove(1);
        let cli = RespondCli::parse_from(argv);
        let stop = AtomicBool::new(false);
        let (answered, ignored) = xdhcp6::loadgen::responder::run(cli.args, &stop)?;
        eprintln!("responder: answered {answered}, ignored {ignored}");
        return Ok(());
    }
    let cli = Cli::parse_from(argv);
    xdhcp6::loadgen::main(cli.args)?;
    Ok(())
}
