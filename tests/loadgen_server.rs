//! The generator against the xdhcp6 server (socket backend) in a network namespace: every
//! scenario, direct and relayed (one and two levels), IA_NA and IA_PD, completes with zero
//! invalid replies. Needs root, like every namespace test.

mod support;

use clap::Parser;
use support::config::TestConfig;
use support::netns::{in_netns, NetPair, CLIENT_GLOBAL, SERVER_GLOBAL};
use support::server::ServerProcess;
use xdhcp6::loadgen;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: loadgen::Args,
}

#[test]
fn every_scenario_against_the_server_is_clean() {
    let net = NetPair::new();
    let mut cfg = TestConfig::new(&net.server_if);
    cfg.rapid_commit = true;
    let _server = ServerProcess::start(&net, &cfg);
    let server = SERVER_GLOBAL.to_string();
    let bind = CLIENT_GLOBAL.to_string();
    let pd_pool = format!("{},{}", support::config::PD_POOL, support::config::PD_LEN);

    for sc in ["sarr", "rapid", "renew", "rebind", "release", "info", "mix"] {
        for relay in ["0", "1", "2"] {
            let mut argv = vec![
                "bench",
                "--scenario",
                sc,
                "--ia",
                "both",
                "--pool",
                "2001:db8:1::/64",
                "--pd-pool",
                &pd_pool,
                // The same clients every run: the server's pool holds 4096 addresses.
                "--clients",
                "300",
                "--rate",
                "2000",
                "--duration",
                "0.4",
                "--timeout-ms",
                "500",
                "--retries",
                "2",
                "--quiet",
                // This test covers the socket transport; tests/loadgen_xdp.rs covers AF_XDP.
                "--transport",
                "socket",
            ];
            if relay == "0" {
                argv.extend(["--iface", &net.client_if]);
            } else {
                argv.extend(["--relay", relay, "--server", &server, "--bind", &bind]);
            }
            let cli = Cli::try_parse_from(&argv).expect("arguments parse");
            let r = in_netns(&net.client_ns, || loadgen::run(cli.args)).expect("generator runs");
            let what = format!("{sc} relay={relay}");
            assert!(r.result.completed > 0, "{what}: {r}");
            assert_eq!(r.result.invalid, 0, "{what}: {r}");
            assert_eq!(r.result.completed, r.result.offered, "{what}: {r}");
            if let Some(p) = &r.prepare {
                assert_eq!(p.invalid, 0, "{what}: {r}");
            }
        }
    }
}
