//! The server binary serving from its lease file: leases survive `kill -9` and a restart (the
//! same bindings are listed, a renewing client keeps its address), `leases --file` reads the
//! stopped server's file, an empty or missing file starts cleanly while a locked or foreign
//! one stops the start with a clear message, a full disk fails closed without granting what it
//! cannot record, and group-commit mode serves real clients on both backends. Needs root,
//! `perfdhcp` and `dhclient`.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, Status, IANA,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use serde_json::Value;
use support::clients::{dhclient, exchange, perf_num, perfdhcp};
use support::config::TestConfig;
use support::netns::NetPair;
use support::server::ServerProcess;
use support::{wait_for, TempDir};

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

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {e}: {l}")))
        .collect()
}

/// Every lease the running server lists through its control socket.
fn online(server: &ServerProcess) -> Vec<Value> {
    let sock = server.control_socket();
    let (ok, out, err) = xdhcp6(&[
        "leases",
        "--format",
        "json",
        "--limit",
        "100000",
        "-s",
        sock.to_str().unwrap(),
    ]);
    assert!(ok, "xdhcp6 leases: {err}\n{}", server.log());
    json_lines(&out)
}

/// `xdhcp6 leases --file PATH ARGS...` (offline).
fn offline(file: &Path, args: &[&str]) -> String {
    let mut all = vec!["leases", "--file", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let (ok, out, err) = xdhcp6(&all);
    assert!(ok, "xdhcp6 leases --file: {err}");
    out
}

/// What identifies a binding in a listing.
fn bindings(leases: &[Value]) -> BTreeSet<(String, u64, String, String)> {
    leases
        .iter()
        .map(|l| {
            (
                l["duid"].as_str().unwrap().to_owned(),
                l["iaid"].as_u64().unwrap(),
                l["type"].as_str().unwrap().to_owned(),
                l["address"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).expect("encode");
    buf
}

fn decode(b: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(b)).expect("reply decodes")
}

/// A client message with one IA_NA (listing `addr` if given) and our Server ID.
fn msg(t: MessageType, duid: &[u8], iaid: u32, sid: &[u8], addr: Option<Ipv6Addr>) -> Message {
    let mut m = Message::new(t);
    m.opts_mut().insert(DhcpOption::ClientId(duid.to_vec()));
    m.opts_mut().insert(DhcpOption::ElapsedTime(0));
    m.opts_mut().insert(DhcpOption::ServerId(sid.to_vec()));
    let mut ia_opts = DhcpOptions::new();
    if let Some(addr) = addr {
        ia_opts.insert(DhcpOption::IAAddr(IAAddr {
            addr,
            preferred_life: 0,
            valid_life: 0,
            opts: DhcpOptions::new(),
        }));
    }
    m.opts_mut().insert(DhcpOption::IANA(IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts: ia_opts,
    }));
    m
}

/// The IA_NA outcome of a Reply: the address granted with a valid lifetime, or the status.
fn ia_na(reply: &Message) -> Result<Ipv6Addr, Status> {
    assert_eq!(reply.msg_type(), MessageType::Reply, "{reply:?}");
    let Some(DhcpOption::IANA(ia)) = reply.opts().get(OptionCode::IANA) else {
        panic!("Reply without IA_NA: {reply:?}")
    };
    for o in ia.opts.iter() {
        if let DhcpOption::IAAddr(a) = o {
            if a.valid_life > 0 {
                return Ok(a.addr);
            }
        }
    }
    match ia.opts.get(OptionCode::StatusCode) {
        Some(DhcpOption::StatusCode(sc)) => Err(sc.status),
        _ => panic!("IA_NA with neither a lease nor a status: {ia:?}"),
    }
}

/// Send one message and return the single Reply to it.
fn one_reply(net: &NetPair, m: &Message) -> Message {
    let got = exchange(net, &[encode(m)], Duration::from_secs(2));
    assert_eq!(got.len(), 1, "one reply to one {:?}", m.msg_type());
    let r = decode(&got[0].1);
    assert_eq!(r.xid(), m.xid());
    r
}

fn duid_bytes(hex: &str) -> Vec<u8> {
    xdhcp6::io::duid::parse(hex).expect("listed DUIDs parse")
}

/// A DUID-LL for test client `i` (never one perfdhcp makes: a different hardware type).
fn test_duid(i: u32) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 0x20, 0xaa, 0xbb];
    d.extend_from_slice(&i.to_be_bytes());
    d
}

#[test]
fn leases_survive_sigkill_and_restart_and_the_file_exports_offline() {
    let net = NetPair::new();
    let mut server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let (stats, report) = perfdhcp(
        &net,
        &["-r", "200", "-n", "60", "-R", "60"],
        Duration::from_secs(30),
    );
    let done = perf_num(&stats, "REQUEST-REPLY", "received packets", &report);
    assert!(done >= 40, "{report}");
    // Let the last Request be handled before looking.
    std::thread::sleep(Duration::from_millis(300));
    let before = online(&server);
    assert!(before.len() as u64 >= done, "{} < {done}", before.len());
    assert!(before.iter().all(|l| l["state"] == "active"), "{before:?}");
    let sid = server.duid();

    // (a) kill -9 loses nothing a client was told.
    server.kill9();
    server.restart(&net);
    let log = server.log();
    assert!(
        log.contains(&format!("records={} ", before.len()))
            && log.contains("serving leases from the lease file"),
        "{log}"
    );
    let after = online(&server);
    assert_eq!(bindings(&after), bindings(&before));
    for b in &before {
        let a = after
            .iter()
            .find(|a| a["address"] == b["address"])
            .expect("listed");
        assert_eq!(
            (&a["cltt"], &a["expires_at"], &a["valid_lifetime"]),
            (&b["cltt"], &b["expires_at"], &b["valid_lifetime"])
        );
    }
    let status = server.status();
    assert_eq!(
        status["lease_table"]["open_report"]["records"],
        before.len() as u64,
        "{status}"
    );
    assert_eq!(status["lease_table"]["open_report"]["corrupt"], 0);

    // A client of the first run renews after the restart: same address, fresh lifetimes.
    let l = &before[before.len() / 2];
    let duid = duid_bytes(l["duid"].as_str().unwrap());
    let iaid = u32::try_from(l["iaid"].as_u64().unwrap()).unwrap();
    let addr: Ipv6Addr = l["address"].as_str().unwrap().parse().unwrap();
    let renew = msg(MessageType::Renew, &duid, iaid, &sid, Some(addr));
    assert_eq!(ia_na(&one_reply(&net, &renew)), Ok(addr), "Renew keeps it");
    // A Request from it without any hint gets the same address back too.
    let request = msg(MessageType::Request, &duid, iaid, &sid, None);
    assert_eq!(
        ia_na(&one_reply(&net, &request)),
        Ok(addr),
        "Request keeps it"
    );
    let after_renew = online(&server);
    assert_eq!(bindings(&after_renew), bindings(&before), "nothing new");

    // (b) The stopped server's file, read offline, lists the same bindings.
    let (status, _) = server.stop();
    assert!(status.success(), "{}", server.log());
    let file = server.lease_file();
    let json = json_lines(&offline(&file, &["--format", "json", "--limit", "100000"]));
    assert_eq!(bindings(&json), bindings(&before));
    assert!(
        json.iter().all(|l| l["seq"].as_u64().unwrap() > 0),
        "{json:?}"
    );
    let csv = offline(&file, &["--format", "csv", "--limit", "100000"]);
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().expect("CSV header").split(',').collect();
    assert_eq!(header[..4], ["duid", "iaid", "type", "address"], "{csv}");
    let csv_bindings: BTreeSet<_> = rows
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            (
                f[0].to_owned(),
                f[1].parse::<u64>().unwrap(),
                f[2].to_owned(),
                f[3].to_owned(),
            )
        })
        .collect();
    assert_eq!(csv_bindings, bindings(&before));
    let one = json_lines(&offline(
        &file,
        &["--format", "json", "--address", &addr.to_string()],
    ));
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(duid_bytes(one[0]["duid"].as_str().unwrap()), duid);
    let by_duid = json_lines(&offline(
        &file,
        &["--format", "json", "--duid", l["duid"].as_str().unwrap()],
    ));
    assert!(by_duid.iter().any(|x| x["address"] == addr.to_string()));
    let table = offline(&file, &["--prefix", "2001:db8:1::/64"]);
    assert_eq!(table.lines().count(), before.len() + 1, "{table}");
}

#[test]
fn missing_or_empty_lease_file_starts_cleanly() {
    let net = NetPair::new();
    let mut server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let file = server.lease_file();
    let sid = server.duid();
    let grant = |i: u32| {
        let m = msg(MessageType::Request, &test_duid(i), 1, &sid, None);
        ia_na(&one_reply(&net, &m)).expect("a lease")
    };
    // Missing: created at start.
    assert!(file.exists());
    grant(1);
    assert_eq!(online(&server).len(), 1);
    server.stop();

    // Empty (truncated to zero bytes): a new table.
    std::fs::write(&file, b"").unwrap();
    server.restart(&net);
    assert_eq!(online(&server).len(), 0);
    grant(2);
    let status = server.status();
    assert_eq!(status["lease_table"]["records"], 1, "{status}");
    assert_eq!(status["lease_table"]["open_report"]["corrupt"], 0);
    server.kill9();

    // Missing again.
    std::fs::remove_file(&file).unwrap();
    server.restart(&net);
    assert_eq!(online(&server).len(), 0);
    grant(3);
    assert_eq!(online(&server).len(), 1);
}

/// `serve` in the server namespace with a configuration whose lease file is `lease_file`;
/// returns its error output.
fn serve_fails(net: &NetPair, dir: &TempDir, lease_file: &Path) -> String {
    let cfg = TestConfig {
        lease_file: Some(lease_file.to_owned()),
        ..TestConfig::new(&net.server_if)
    };
    let conf = dir.join("xdhcp6.toml");
    std::fs::write(&conf, cfg.to_toml(dir.path())).unwrap();
    let out = net
        .server_cmd("timeout")
        .args([
            "-s",
            "KILL",
            "10",
            env!("CARGO_BIN_EXE_xdhcp6"),
            "serve",
            "--config",
        ])
        .arg(&conf)
        .output()
        .expect("run xdhcp6 serve");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "serve started: {err}");
    err
}

#[test]
fn locked_or_foreign_lease_file_fails_start_with_a_clear_message() {
    let net = NetPair::new();
    let dir = TempDir::new("lease-open");
    let file: PathBuf = dir.join("leases");
    {
        // Another server holds the file.
        let _held =
            xdhcp6::lease::table::LeaseTable::open(xdhcp6::lease::table::TableConfig::new(&file))
                .expect("open");
        let err = serve_fails(&net, &dir, &file);
        assert!(
            err.contains("server.lease_file") && err.contains("in use by another process"),
            "{err}"
        );
    }
    // Not a lease file.
    std::fs::write(&file, vec![0x5a; 8192]).unwrap();
    let err = serve_fails(&net, &dir, &file);
    assert!(
        err.contains("server.lease_file") && err.contains("bad header"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        vec![0x5a; 8192],
        "a foreign file is never touched"
    );
}

/// A small tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Self {
        let dir = TempDir::new("tmpfs");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mount -t tmpfs failed");
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn full_disk_fails_closed_and_keeps_the_recorded_leases() {
    let net = NetPair::new();
    // Room for the header and the first growth step of 4096 records (384 KiB), not the second.
    let fs = Tmpfs::new("600k");
    let mut cfg = TestConfig::new(&net.server_if);
    cfg.lease_file = Some(fs.dir.join("leases"));
    cfg.extra_server.push("lease_file_growth = 4096".into());
    let mut server = ServerProcess::start(&net, &cfg);
    let sid = server.duid();
    // About 2,500 clients with an address and a prefix each: more records than the first
    // step holds, so shards run out of slots and the file cannot grow.
    let (stats, report) = perfdhcp(
        &net,
        &[
            "-e",
            "address-and-prefix",
            "-r",
            "1000",
            "-n",
            "4000",
            "-R",
            "4000",
        ],
        Duration::from_secs(60),
    );
    assert!(
        perf_num(&stats, "REQUEST-REPLY", "rejected leases", &report) > 0,
        "a full disk refuses some grants\n{report}"
    );
    assert!(server.is_running(), "{}", server.log());
    let failing = wait_for(Duration::from_secs(5), || {
        server.log().contains("failing closed").then_some(())
    });
    assert!(
        failing.is_some(),
        "one fail-closed log line\n{}",
        server.log()
    );
    assert_eq!(server.log().matches("failing closed").count(), 1);
    let status = server.status();
    let refused = status["lease_table"]["refused_writes"].as_u64().unwrap();
    assert!(refused > 0, "{status}");
    // The operator sees it in the stats too (and in the metrics, from the same snapshot).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xdhcp6"))
        .args(["stats", "--once", "--json", "--socket"])
        .arg(server.dir.join("control.sock"))
        .output()
        .unwrap();
    let snap: xdhcp6::stats::ServerSnapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert!(snap.lease_writes_refused >= refused, "{snap:?}");

    // Fresh clients: each one is either granted a lease that is then listed, or told
    // NoAddrsAvail and has nothing in the table.
    let sid2 = sid.clone();
    let requests: Vec<Vec<u8>> = (0..64)
        .map(|i| encode(&msg(MessageType::Request, &test_duid(i), 1, &sid2, None)))
        .collect();
    let replies = exchange(&net, &requests, Duration::from_secs(3));
    assert_eq!(replies.len(), 64, "every Request is answered");
    let listed = online(&server);
    let mut refused_now = 0;
    for (_, r) in &replies {
        let r = decode(r);
        let Some(DhcpOption::ClientId(duid)) = r.opts().get(OptionCode::ClientId) else {
            panic!("Reply without Client ID")
        };
        let hex = xdhcp6::daemon::hex(duid);
        let mine: Vec<&Value> = listed.iter().filter(|l| l["duid"] == hex).collect();
        match ia_na(&r) {
            Ok(a) => {
                assert_eq!(mine.len(), 1, "{hex}: granted {a} but listed {mine:?}");
                assert_eq!(mine[0]["address"], a.to_string());
            }
            Err(s) => {
                assert_eq!(s, Status::NoAddrsAvail);
                assert!(mine.is_empty(), "{hex}: refused but listed {mine:?}");
                refused_now += 1;
            }
        }
    }
    assert!(refused_now > 0, "the full shards refuse fresh clients too");
    assert!(
        server.status()["lease_table"]["refused_writes"]
            .as_u64()
            .unwrap()
            > refused
    );

    // Everything recorded is intact after kill -9, online and offline.
    server.kill9();
    server.restart(&net);
    let after = online(&server);
    assert_eq!(bindings(&after), bindings(&listed));
    let status = server.status();
    assert_eq!(
        status["lease_table"]["open_report"]["corrupt"], 0,
        "{status}"
    );
    server.stop();
    let file = server.lease_file();
    let json = json_lines(&offline(&file, &["--format", "json", "--limit", "100000"]));
    assert_eq!(bindings(&json), bindings(&listed));
}

fn group_commit(cfg: TestConfig) -> TestConfig {
    let mut cfg = cfg;
    cfg.extra_server
        .push("lease_durability = \"group-commit\"".into());
    cfg
}

fn perfdhcp_all_served(net: &NetPair, server: &ServerProcess, extra: &[&str]) {
    // Replies wait for fdatasync: give the last exchanges half a second after the last
    // Solicit (-W) before perfdhcp counts them as lost.
    let mut args = vec!["-r", "200", "-n", "200", "-R", "200", "-W", "500000"];
    args.extend_from_slice(extra);
    let (stats, report) = perfdhcp(net, &args, Duration::from_secs(30));
    let sent = perf_num(&stats, "SOLICIT-ADVERTISE", "sent packets", &report);
    let done = perf_num(&stats, "REQUEST-REPLY", "received packets", &report);
    assert_eq!(
        perf_num(&stats, "REQUEST-REPLY", "rejected leases", &report),
        0,
        "{report}"
    );
    assert!(
        done + 2 >= sent,
        "{report}\n{}\n{:#?}\n{:#}",
        server.log(),
        server.stats(),
        server.status()
    );
    let status = server.status();
    let t = &status["lease_table"];
    assert_eq!(t["durability"], "group-commit", "{status}");
    assert_eq!(t["replies_withheld"], 0, "{status}");
    assert_eq!(t["refused_writes"], 0, "{status}");
}

#[test]
fn group_commit_serves_dhclient_and_perfdhcp() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &group_commit(TestConfig::new(&net.server_if)));
    let mut client = dhclient(&net, &["-N", "-P"]);
    let ev = client
        .wait_events(Duration::from_secs(20), |ev| {
            let bound = |key: &str| {
                ev.iter()
                    .any(|e| e.get("reason").is_some_and(|r| r == "BOUND6") && e.contains_key(key))
            };
            bound("new_ip6_address") && bound("new_ip6_prefix")
        })
        .unwrap_or_else(|| panic!("dhclient not bound: {}", client.output()));
    let addr = ev
        .iter()
        .find_map(|e| e.get("new_ip6_address"))
        .unwrap()
        .clone();
    assert!(online(&server).iter().any(|l| l["address"] == addr));
    drop(client);
    perfdhcp_all_served(&net, &server, &["-e", "address-and-prefix"]);
}

#[test]
fn group_commit_serves_perfdhcp_through_af_xdp() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &group_commit(TestConfig::xdp(&net.server_if)));
    perfdhcp_all_served(&net, &server, &[]);
    assert_eq!(server.status()["backend"], "xdp");
}
