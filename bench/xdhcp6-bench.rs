//! `xdhcp6-bench`: the DHCPv6 load generator as its own binary (the same code as
//! `xdhcp6 bench`). See `xdhcp6::loadgen`.

use clap::Parser;

#[derive(Parser)]
#[command(name = "xdhcp6-bench", version)]
struct Cli {
    #[command(flatten)]
    args: xdhcp6::loadgen::Args,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    xdhcp6::loadgen::main(cli.args)?;
    Ok(())
}
