//! Operating a running server through its control socket and metrics endpoint: `stats --json`
//! counters agree with what perfdhcp sent and received; the Prometheus endpoint parses; reload
//! applies a new pool and refuses a broken file while serving; leases can be queried online;
//! silent or garbage control clients do not stall anything. Needs root and perfdhcp.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::clients::{perf_num, perfdhcp};
use support::config::TestConfig;
use support::netns::{in_netns, NetPair};
use support::server::ServerProcess;
use xdhcp6::stats::ServerSnapshot;

fn xdhcp6(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xdhcp6"))
        .args(args)
        .output()
        .expect("run xdhcp6");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn stats_json(sock: &Path) -> ServerSnapshot {
    let (ok, out, err) = xdhcp6(&["stats", "--once", "--json", "-s", sock.to_str().unwrap()]);
    assert!(ok, "xdhcp6 stats failed: {err}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("stats --json is not a snapshot: {e}\n{out}"))
}

fn sock(server: &ServerProcess) -> std::path::PathBuf {
    server.dir.join("control.sock")
}

#[test]
fn stats_json_matches_what_perfdhcp_sent_and_received() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let (stats, report) = perfdhcp(
        &net,
        &["-r", "200", "-n", "300", "-R", "300"],
        Duration::from_secs(30),
    );
    let n = |block: &str, key: &str| perf_num(&stats, block, key, &report);
    // Let the last replies leave and the counters settle.
    std::thread::sleep(Duration::from_millis(300));
    let snap = stats_json(&sock(&server));
    let t = snap.total();
    let get = |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    assert_eq!(
        get(&t.rx_by_type, "solicit"),
        n("SOLICIT-ADVERTISE", "sent packets"),
        "{report}\n{t:?}"
    );
    assert_eq!(
        get(&t.rx_by_type, "request"),
        n("REQUEST-REPLY", "sent packets"),
        "{report}\n{t:?}"
    );
    // Everything perfdhcp received we sent; it may stop listening before the last reply.
    let adv_rx = n("SOLICIT-ADVERTISE", "received packets");
    let rep_rx = n("REQUEST-REPLY", "received packets");
    let (adv_tx, rep_tx) = (get(&t.tx_by_type, "advertise"), get(&t.tx_by_type, "reply"));
    assert!(
        adv_rx <= adv_tx && adv_tx - adv_rx <= 2,
        "advertise: sent {adv_tx}, perfdhcp got {adv_rx}"
    );
    assert!(
        rep_rx <= rep_tx && rep_tx - rep_rx <= 2,
        "reply: sent {rep_tx}, perfdhcp got {rep_rx}"
    );
    assert_eq!(
        t.rx,
        get(&t.rx_by_type, "solicit") + get(&t.rx_by_type, "request")
    );
    assert_eq!(t.tx, adv_tx + rep_tx);
    assert_eq!(t.dropped(), 0, "{t:?}");
    // Every answered request went into the latency histogram.
    assert_eq!(t.latency_buckets.iter().map(|(_, n)| n).sum::<u64>(), t.tx);
    // Pool usage and lease counts agree with the committed Requests.
    assert_eq!(snap.leases_active, rep_tx, "{snap:?}");
    let na = snap
        .pools
        .iter()
        .find(|p| p.kind == "na")
        .expect("address pool listed");
    assert_eq!((na.total, na.used), (0x1000, rep_tx));
    assert_eq!(snap.backend, "socket");

    // The human view renders the same figures.
    let (ok, text, err) = xdhcp6(&[
        "stats",
        "--once",
        "--interval",
        "0.2",
        "-s",
        sock(&server).to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        text.contains("drops by reason") && text.contains("test-lan"),
        "{text}"
    );

    // Online lease queries: all, then one address.
    let (ok, out, err) = xdhcp6(&[
        "leases",
        "--format",
        "json",
        "--limit",
        "100000",
        "-s",
        sock(&server).to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let leases: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(leases.len() as u64, rep_tx);
    let addr = leases[0]["address"].as_str().unwrap().to_owned();
    let (ok, out, _) = xdhcp6(&[
        "leases",
        "--format",
        "json",
        "--address",
        &addr,
        "-s",
        sock(&server).to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(&addr));
    let (ok, out, _) = xdhcp6(&[
        "leases",
        "--format",
        "csv",
        "--limit",
        "5",
        "-s",
        sock(&server).to_str().unwrap(),
    ]);
    assert!(ok);
    assert_eq!(out.lines().count(), 6, "header + 5 rows: {out}");
    let (ok, _, err) = xdhcp6(&[
        "leases",
        "--address",
        "not-an-address",
        "-s",
        sock(&server).to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("bad IPv6 address"), "{err}");
}

#[test]
fn prometheus_endpoint_parses_and_matches_counters() {
    let net = NetPair::new();
    let mut cfg = TestConfig::new(&net.server_if);
    cfg.extra_server
        .push("metrics_listen = \"127.0.0.1:9547\"".into());
    let _server = ServerProcess::start(&net, &cfg);
    let (stats, report) = perfdhcp(
        &net,
        &["-r", "100", "-n", "50", "-R", "50"],
        Duration::from_secs(20),
    );
    let sent = perf_num(&stats, "SOLICIT-ADVERTISE", "sent packets", &report)
        + perf_num(&stats, "REQUEST-REPLY", "sent packets", &report);
    std::thread::sleep(Duration::from_millis(300));
    // The listener is on the server namespace's loopback.
    let body = in_netns(&net.server_ns, || {
        let mut c = std::net::TcpStream::connect("127.0.0.1:9547").expect("metrics listener");
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut r = String::new();
        c.read_to_string(&mut r).unwrap();
        r
    });
    let (head, text) = body.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4"),
        "{head}"
    );
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let sum = |name: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(sum("xdhcp6_received_total") as u64, sent, "{text}");
    // One lease per Reply sent (perfdhcp may stop listening before the last one arrives).
    let replies: f64 = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "xdhcp6_messages_sent_total" && s.labels.get("type") == Some("reply")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(sum("xdhcp6_leases_active"), replies, "{text}");
    let got = perf_num(&stats, "REQUEST-REPLY", "received packets", &report);
    assert!(
        got as f64 <= replies && replies - got as f64 <= 2.0,
        "{report}"
    );
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "xdhcp6_reply_latency_seconds"));
    assert!(scrape.docs.contains_key("xdhcp6_dropped_total"));
}

#[test]
fn reload_applies_a_new_pool_and_refuses_a_broken_config_while_serving() {
    let net = NetPair::new();
    let cfg = TestConfig::new(&net.server_if);
    let server = ServerProcess::start(&net, &cfg);
    let s = sock(&server);
    let (stats, report) = perfdhcp(
        &net,
        &["-r", "100", "-n", "20", "-R", "20"],
        Duration::from_secs(20),
    );
    let first = perf_num(&stats, "REQUEST-REPLY", "received packets", &report);
    assert!(first >= 18, "{report}");
    // Every Reply perfdhcp counted is a lease; a Reply it missed (sent as it gave up on the
    // exchange) may be one more.
    let leases = stats_json(&s).leases_active;
    assert!(
        leases >= first && leases <= 20,
        "{leases} leases, {first} replies"
    );

    // A second, larger pool appears; the old one and its leases stay.
    let original = std::fs::read_to_string(&server.config_file).unwrap();
    let grown = original.replace(
        "address_pools = [{ first = \"2001:db8:1::1000\", last = \"2001:db8:1::1fff\" }]",
        "address_pools = [{ first = \"2001:db8:1::1000\", last = \"2001:db8:1::1fff\" }, \
         { first = \"2001:db8:1::a:0\", last = \"2001:db8:1::a:ffff\" }]",
    );
    assert_ne!(grown, original, "test config changed shape");
    std::fs::write(&server.config_file, &grown).unwrap();
    let (ok, out, err) = xdhcp6(&["reload", "-s", s.to_str().unwrap()]);
    assert!(ok, "reload refused: {err}");
    assert!(out.contains("2 address pools"), "{out}");
    let snap = stats_json(&s);
    let na: Vec<_> = snap.pools.iter().filter(|p| p.kind == "na").collect();
    assert_eq!(na.len(), 2, "{:?}", snap.pools);
    assert_eq!(snap.leases_active, leases, "reload lost leases");

    // A broken file is refused, names the key, and the running configuration stays.
    std::fs::write(
        &server.config_file,
        grown.replace("valid_lifetime = 600", "valid_lifetime = -5"),
    )
    .unwrap();
    let (ok, _, err) = xdhcp6(&["reload", "-s", s.to_str().unwrap()]);
    assert!(!ok, "a broken config was applied");
    assert!(err.contains("valid_lifetime"), "{err}");
    assert_eq!(
        stats_json(&s)
            .pools
            .iter()
            .filter(|p| p.kind == "na")
            .count(),
        2
    );
    // So is a change only a restart can apply.
    std::fs::write(
        &server.config_file,
        grown.replace("workers = 2", "workers = 1"),
    )
    .unwrap();
    let (ok, _, err) = xdhcp6(&["reload", "-s", s.to_str().unwrap()]);
    assert!(!ok && err.contains("server.workers"), "{err}");

    // The server still serves, and SIGHUP reloads too (back to one pool).
    std::fs::write(&server.config_file, &original).unwrap();
    let (stats, report) = perfdhcp(
        &net,
        &["-r", "100", "-n", "20", "-R", "20"],
        Duration::from_secs(20),
    );
    assert!(
        perf_num(&stats, "REQUEST-REPLY", "received packets", &report) >= 18,
        "{report}"
    );
    let pid = server.pid();
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while stats_json(&s)
        .pools
        .iter()
        .filter(|p| p.kind == "na")
        .count()
        != 1
    {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn silent_and_garbage_control_clients_do_not_stall_the_server() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let s = sock(&server);
    let silent: Vec<UnixStream> = (0..8).map(|_| UnixStream::connect(&s).unwrap()).collect();
    for junk in [&b"\x00\x01\x02garbage\n"[..], &[b'{'; 100_000][..]] {
        let mut g = UnixStream::connect(&s).unwrap();
        let _ = g.write_all(junk);
        let mut r = String::new();
        let _ = g.read_to_string(&mut r);
        assert!(r.contains("\"ok\":false"), "garbage got: {r}");
    }
    let t = Instant::now();
    let snap = stats_json(&s);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "control socket stalled by silent clients"
    );
    assert_eq!(snap.backend, "socket");
    let (stats, report) = perfdhcp(
        &net,
        &["-r", "100", "-n", "20", "-R", "20"],
        Duration::from_secs(20),
    );
    assert!(
        perf_num(&stats, "REQUEST-REPLY", "received packets", &report) >= 18,
        "{report}"
    );
    drop(silent);
    let (ok, out, _) = xdhcp6(&["status", "-s", s.to_str().unwrap()]);
    assert!(ok && out.contains("\"backend\": \"socket\""), "{out}");
}
