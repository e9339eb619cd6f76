//! The server binary on the XDP backend (`backend = "xdp"`), in network namespaces over veth
//! (root): real clients get addresses and prefixes through AF_XDP, ordinary traffic still
//! reaches the kernel, VLAN tags are kept, and restarts attach cleanly.
//!
//! That the packets came through AF_XDP and not the kernel is checked three ways: the stats
//! file says `backend = "xdp"`, the XDP program's `steered` counter (`xdhcp6 status`) grew,
//! and the XDP backend opens no UDP socket at all, so nothing else could have answered.
//!
//! Needs root, `dhclient` and `perfdhcp` (scripts/install-deps.sh). veth has copy mode only.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::clients::{dhclient, exchange, perfdhcp_exchanges, Events};
use support::config::{TestConfig, PD_LEN};
use support::netns::{attach_xdp_object, in_netns, xdp_attached, NetPair, SERVER_GLOBAL};
use support::raw::{hw_addr, icmp6_echo, ifindex, send_raw, solicit, udp_frame, RawRx};
use support::server::ServerProcess;
use support::wait_for;

const ALL_DHCP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// The XDP program's counter `name` on the served interface, from `xdhcp6 status`.
fn program_counter(status: &Value, name: &str) -> u64 {
    status["xdp"]["programs"][0][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no XDP program counter {name} in status {status:#}"))
}

/// The stats file and `status` agree that this server runs on AF_XDP, and the program steered
/// at least `steered` frames; returns the status.
fn assert_on_af_xdp(server: &ServerProcess, steered: u64) -> Value {
    let snap = server.snapshot();
    assert_eq!(snap.backend, "xdp", "{snap:?}");
    assert_eq!(snap.xdp_mode, "copy", "veth binds in copy mode only");
    let status = server.status();
    assert_eq!(status["backend"], "xdp", "{status:#}");
    assert!(
        program_counter(&status, "steered") >= steered,
        "the XDP program steered fewer than {steered} frames: {status:#}"
    );
    status
}

fn bound<'a>(ev: &'a Events, key: &str) -> Option<&'a String> {
    ev.iter()
        .filter(|e| e.get("reason").is_some_and(|r| r == "BOUND6"))
        .find_map(|e| e.get(key))
}

#[test]
fn dhclient_gets_an_address_and_a_prefix_through_af_xdp() {
    let net = NetPair::new();
    let mut server = ServerProcess::start(&net, &TestConfig::xdp(&net.server_if));
    assert!(
        xdp_attached(&net.server_ns, &net.server_if),
        "program attached while serving"
    );
    let mut client = dhclient(&net, &["-N", "-P"]);
    let ev = client
        .wait_events(Duration::from_secs(20), |ev| {
            bound(ev, "new_ip6_address").is_some() && bound(ev, "new_ip6_prefix").is_some()
        })
        .unwrap_or_else(|| {
            panic!(
                "no address and prefix within 20 s; events {:#?}\n{}\n{}",
                client.events(),
                client.output(),
                server.log()
            )
        });
    let addr: Ipv6Addr = bound(&ev, "new_ip6_address").unwrap().parse().unwrap();
    let pool = support::config::POOL_FIRST.parse::<Ipv6Addr>().unwrap()
        ..=support::config::POOL_LAST.parse().unwrap();
    assert!(pool.contains(&addr), "{addr} is outside the pool");
    let prefix = bound(&ev, "new_ip6_prefix").unwrap();
    assert!(prefix.ends_with(&format!("/{PD_LEN}")), "{prefix}");
    drop(client);

    // Solicit, Advertise, Request, Reply at least.
    let s = server.wait_stats(Duration::from_secs(3), |s| s.answered() >= 2);
    assert!(s.received() >= 2 && s.answered() >= 2, "{s:?}");
    assert_eq!(s.io_dropped(), 0, "{s:?}");
    assert_on_af_xdp(&server, 2);

    // SIGTERM: clean exit, program detached.
    let (status, _) = server.stop();
    assert!(status.success(), "exit status {status}\n{}", server.log());
    assert!(
        !xdp_attached(&net.server_ns, &net.server_if),
        "program detached on SIGTERM"
    );
}

const CLIENTS: u64 = 200;

/// perfdhcp four-message exchanges against the XDP backend, as tests/clients_perfdhcp.rs does
/// against the socket backend.
fn perfdhcp_over_xdp(extra: &[&str]) {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::xdp(&net.server_if));
    let done = perfdhcp_exchanges(&net, &server, CLIENTS, extra);
    let s = server.wait_stats(Duration::from_secs(3), |s| s.answered() >= 2 * done);
    assert!(s.answered() >= 2 * done, "{s:?}");
    assert_eq!(s.io_dropped(), 0, "{s:?}");
    // Every Solicit and every Request perfdhcp completed came through the program.
    assert_on_af_xdp(&server, CLIENTS + done);
    // The kernel's side of the sockets, as `xdhcp6 stats` and the metrics show it (refreshed
    // every second): copy mode sends only inside `sendto`, at most 32 frames a call, so every
    // answer took part in a kick; nothing was lost or rejected on the way in.
    let snap = wait_for(Duration::from_secs(3), || {
        Some(server.snapshot()).filter(|s| s.total().xsk.tx_kicks > 0)
    })
    .unwrap_or_else(|| server.snapshot());
    let x = snap.total().xsk;
    assert!(x.tx_kicks >= s.answered().div_ceil(32), "{x:?} {s:?}");
    assert_eq!(
        (x.rx_lost(), x.invalid_descs, x.tx_kick_errors),
        (0, 0, 0),
        "{x:?}"
    );
}

#[test]
fn perfdhcp_addresses_through_af_xdp() {
    perfdhcp_over_xdp(&[]);
}

#[test]
fn perfdhcp_addresses_and_prefixes_through_af_xdp() {
    perfdhcp_over_xdp(&["-e", "address-and-prefix"]);
}

#[test]
fn perfdhcp_relayed_through_af_xdp() {
    perfdhcp_over_xdp(&["-A", "1"]);
}

#[test]
fn icmpv6_and_tcp_reach_the_kernel_while_attached() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::xdp(&net.server_if));
    let server_ll = net.server_ll;
    let client_if = net.client_if.clone();
    in_netns(&net.client_ns, || {
        assert!(icmp6_echo(SERVER_GLOBAL, 0), "ping to the global address");
        assert!(
            icmp6_echo(server_ll, ifindex(&client_if)),
            "ping to the link-local address"
        );
    });
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let acceptor = scope.spawn(|| {
            in_netns(&net.server_ns, move || {
                let l = TcpListener::bind(SocketAddrV6::new(SERVER_GLOBAL, 8547, 0, 0)).unwrap();
                tx.send(()).unwrap();
                let (mut c, _) = l.accept().unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut b = [0u8; 5];
                c.read_exact(&mut b).unwrap();
                c.write_all(&b).unwrap();
            })
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        in_netns(&net.client_ns, || {
            let addr = SocketAddrV6::new(SERVER_GLOBAL, 8547, 0, 0).into();
            let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                .expect("TCP connect to the server's address");
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            c.write_all(b"hello").unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"hello");
        });
        acceptor.join().unwrap();
    });
    let status = server.status();
    assert!(program_counter(&status, "passed") > 0, "{status:#}");
    assert_eq!(
        program_counter(&status, "steered"),
        0,
        "no DHCPv6 was sent, so nothing may be steered: {status:#}"
    );
}

#[test]
fn vlan_tagged_client_is_answered_with_the_tag() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::xdp(&net.server_if));
    // The tag is in the frame, as a trunk port delivers it. The server namespace has no VLAN
    // device, so the kernel would drop the frame: only the XDP path can answer it.
    let (client_if, client_ll) = (net.client_if.clone(), net.client_ll);
    let xid = [0x5a, 0x17, 0x07];
    let reply = in_netns(&net.client_ns, || {
        let mac = hw_addr(&client_if);
        let req = udp_frame(&[7], mac, client_ll, ALL_DHCP, 546, 547, &solicit(xid, mac));
        let rx = RawRx::open(&client_if);
        for _ in 0..5 {
            send_raw(&client_if, &req);
            if let Some(got) = rx.recv_reply(xid, None) {
                return got;
            }
        }
        panic!("no answer to a VLAN-tagged Solicit");
    });
    assert_eq!(
        reply.tci & 0x0fff,
        7,
        "the answer carries VLAN 7: {reply:?}"
    );
    assert_eq!(reply.payload[0], 2, "an Advertise: {reply:?}");
    assert_eq!((reply.src, reply.src_port), (net.server_ll, 547));
    assert_eq!(reply.dst, net.client_ll);
    let s = server.wait_stats(Duration::from_secs(3), |s| s.answered() >= 1);
    assert!(s.answered() >= 1, "{s:?}");
    assert_on_af_xdp(&server, 1);
}

/// A Solicit through the kernel's UDP stack on the client side; true if an Advertise came.
fn solicit_answered(net: &NetPair, xid: [u8; 3]) -> bool {
    let mac = in_netns(&net.client_ns, || hw_addr(&net.client_if));
    (0..3).any(|_| {
        exchange(net, &[solicit(xid, mac)], Duration::from_secs(1))
            .iter()
            .any(|(_, p)| p.first() == Some(&2) && p.get(1..4) == Some(&xid[..]))
    })
}

#[test]
fn restart_after_sigkill_attaches_cleanly() {
    let net = NetPair::new();
    let cfg = TestConfig::xdp(&net.server_if);
    let mut first = ServerProcess::start(&net, &cfg);
    assert!(solicit_answered(&net, [1, 1, 1]), "{}", first.log());
    first.kill9();
    // The program was attached through a BPF link, which died with the process.
    assert!(
        !xdp_attached(&net.server_ns, &net.server_if),
        "nothing left attached after kill -9"
    );

    let second = ServerProcess::start(&net, &cfg);
    assert!(solicit_answered(&net, [2, 2, 2]), "{}", second.log());
    assert_on_af_xdp(&second, 1);
}

#[test]
fn restart_replaces_a_stale_program_of_ours() {
    let net = NetPair::new();
    // A program left attached through netlink (outlives its process), as a crashed loader of
    // another kind would leave it.
    attach_xdp_object(&net.server_ns, &net.server_if, xdhcp6::io::xdp::OBJECT_PATH);
    let server = ServerProcess::start(&net, &TestConfig::xdp(&net.server_if));
    assert!(solicit_answered(&net, [3, 3, 3]), "{}", server.log());
    assert!(server.log().contains("stale"), "{}", server.log());
    assert_on_af_xdp(&server, 1);
}

#[test]
fn unprivileged_serve_names_what_is_missing() {
    let net = NetPair::new();
    let dir = support::TempDir::new("unpriv");
    let cfg = TestConfig::xdp(&net.server_if);
    let config_file = dir.join("xdhcp6.toml");
    std::fs::write(&config_file, cfg.to_toml(dir.path())).unwrap();
    // World-readable config and a world-executable copy of the binary (the build tree may be
    // under a private home directory).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = dir.join("xdhcp6");
    std::fs::copy(env!("CARGO_BIN_EXE_xdhcp6"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A memlock limit below the 8 MiB UMEM, so CAP_IPC_LOCK is missing too.
    let out = Command::new("ip")
        .args(["netns", "exec", &net.server_ns])
        .args(["prlimit", "--memlock=65536:65536", "setpriv"])
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(&bin)
        .arg("serve")
        .arg("--config")
        .arg(&config_file)
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for what in ["CAP_NET_ADMIN", "CAP_BPF", "CAP_IPC_LOCK"] {
        assert!(stderr.contains(what), "the error names {what}: {stderr}");
    }
    assert!(!xdp_attached(&net.server_ns, &net.server_if));
}

#[test]
fn auto_backend_uses_xdp_where_it_can() {
    let net = NetPair::new();
    let cfg = TestConfig {
        backend: "auto".into(),
        ..TestConfig::new(&net.server_if)
    };
    let server = ServerProcess::start(&net, &cfg);
    assert!(solicit_answered(&net, [4, 4, 4]), "{}", server.log());
    assert_on_af_xdp(&server, 1);
}
