//! The generator against the in-process test responder over loopback: every scenario, direct
//! and relayed, completes with zero invalid replies; each deliberate fault is reported.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use clap::Parser;
use xdhcp6::loadgen::responder::{Fault, Responder, ResponderArgs};
use xdhcp6::loadgen::{self, Report};

const POOL: &str = "2001:db8:1::/64";
const PD_POOL: &str = "2001:db8:8000::/36,60";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: loadgen::Args,
}

struct TestResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestResponder {
    fn start(fault: Fault) -> Self {
        let sock = UdpSocket::bind("[::1]:0").expect("bind loopback");
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let args = ResponderArgs {
            listen: addr,
            pools: vec![POOL.parse().unwrap()],
            pd_pools: vec![PD_POOL.parse().unwrap()],
            fault,
            max_clients: 100_000,
            duration: 120.0,
            xdp_iface: None,
            cpu: None,
            xdp_reflect: false,
        };
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            Responder::new(args).serve(&sock, &s).expect("responder");
        });
        TestResponder {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn generate(r: &TestResponder, extra: &[&str]) -> Report {
    let server = format!("{}", r.addr);
    let mut argv = vec![
        "bench",
        "--server",
        &server,
        "--bind",
        "::1",
        "--bind-port",
        "0",
        "--pool",
        POOL,
        "--pd-pool",
        PD_POOL,
        "--clients",
        "300",
        "--rate",
        "3000",
        "--duration",
        "0.4",
        "--timeout-ms",
        "200",
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).expect("arguments parse");
    loadgen::run(cli.args).expect("generator runs")
}

fn assert_clean(r: &Report, what: &str) {
    let p = &r.result;
    assert!(p.completed > 0, "{what}: nothing completed: {r}");
    assert_eq!(p.invalid, 0, "{what}: invalid replies: {r}");
    assert_eq!(p.drops, 0, "{what}: drops: {r}");
    assert_eq!(p.completed, p.offered, "{what}: {r}");
    if let Some(prep) = &r.prepare {
        assert_eq!(prep.invalid, 0, "{what}: preparation: {r}");
        assert_eq!(prep.completed, 300, "{what}: every client bound: {r}");
    }
}

#[test]
fn every_scenario_direct_and_relayed_is_clean() {
    let resp = TestResponder::start(Fault::None);
    let scenarios = ["sarr", "rapid", "renew", "rebind", "release", "info", "mix"];
    for (i, sc) in scenarios.iter().enumerate() {
        for (relay, ia) in [("0", "na"), ("1", "pd"), ("2", "both")] {
            let seed = format!("{}", i * 3 + relay.parse::<usize>().unwrap());
            let r = generate(
                &resp,
                &[
                    "--scenario",
                    sc,
                    "--relay",
                    relay,
                    "--ia",
                    ia,
                    "--seed",
                    &seed,
                ],
            );
            assert_clean(&r, &format!("{sc} relay={relay} ia={ia}"));
            assert!(r.ownership_untracked == 0);
        }
    }
}

#[test]
fn find_max_reports_trials() {
    let resp = TestResponder::start(Fault::None);
    let r = generate(
        &resp,
        &[
            "--find-max",
            "--start-rate",
            "500",
            "--max-rate",
            "2000",
            "--trial-secs",
            "0.3",
        ],
    );
    assert!(r.trials.len() >= 3, "{r}");
    assert!(r.max_rate.unwrap_or(0.0) > 1800.0, "{r}");
    assert!(r.trials.iter().all(|t| t.passed), "{r}");
}

fn invalid_of(r: &Report, kind: &str) -> u64 {
    r.result.invalid_by_kind.get(kind).copied().unwrap_or(0)
}

#[test]
fn duplicate_addresses_are_reported() {
    let resp = TestResponder::start(Fault::Duplicate);
    let r = generate(&resp, &["--ia", "both"]);
    assert!(invalid_of(&r, "duplicate") > 0, "{r}");
    // Exactly one client can hold the address; everyone else's Reply is a duplicate.
    assert!(r.result.completed <= 1 + r.result.offered / 300, "{r}");
}

#[test]
fn wrong_transaction_ids_are_reported() {
    let resp = TestResponder::start(Fault::WrongXid);
    let r = generate(&resp, &[]);
    assert!(invalid_of(&r, "bad_xid") > 0, "{r}");
    assert_eq!(r.result.completed, 0, "{r}");
    assert_eq!(
        r.result.drops, r.result.offered,
        "unanswered exchanges are drops: {r}"
    );
}

#[test]
fn missing_server_id_is_reported() {
    let resp = TestResponder::start(Fault::NoServerId);
    let r = generate(&resp, &["--scenario", "info"]);
    assert_eq!(invalid_of(&r, "missing_server_id"), r.result.offered, "{r}");
}

#[test]
fn out_of_pool_addresses_are_reported() {
    let resp = TestResponder::start(Fault::OutOfPool);
    let r = generate(&resp, &[]);
    assert_eq!(invalid_of(&r, "out_of_pool"), r.result.offered, "{r}");
}

#[test]
fn no_binding_on_renew_is_reported() {
    let resp = TestResponder::start(Fault::NoBinding);
    let r = generate(&resp, &["--scenario", "renew"]);
    assert!(invalid_of(&r, "status_no_binding") > 0, "{r}");
}

#[test]
fn foreign_client_ids_are_reported() {
    let resp = TestResponder::start(Fault::WrongClientId);
    let r = generate(&resp, &["--relay", "1"]);
    assert!(invalid_of(&r, "unknown_client") > 0, "{r}");
    assert_eq!(r.result.completed, 0, "{r}");
}
