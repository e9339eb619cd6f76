//! The XDP backend in network namespaces over a veth pair (needs root).
//!
//! Each test builds its own pair of namespaces — `server` (XDP + AF_XDP, running the
//! `xdp-responder` binary) and `client` — joined by a veth pair with fixed addresses, and tears
//! them down at the end. Traffic never leaves those namespaces. Client code runs on a thread
//! moved into the client namespace with `setns`.
//!
//! The responder runs the backend with a stand-in core (`--mode fake`) that turns any request
//! into a reply of the same shape; what is tested here is the data path: steering, parsing,
//! in-place rewriting (addresses, ports, VLAN tags, checksum), TX, counters, attach and detach.
//! The real server on this backend, with real clients, is tests/xdp_server.rs.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::netns::{attach_xdp_object, in_netns, run, run_stdout, xdp_attached};
use support::raw::{hw_addr, icmp6_echo, ifindex, send_raw, udp_frame, RawRx};
use support::{require_root, unique_id, wait_for, TempDir};

const RESPONDER: &str = env!("CARGO_BIN_EXE_xdp-responder");
const SERVER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const CLIENT_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const SERVER_GUA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const CLIENT_GUA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const ALL_DHCP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
const WAIT: Duration = Duration::from_secs(2);

/// Two namespaces joined by a veth pair; deleted on drop.
struct Lab {
    server_ns: String,
    client_ns: String,
    /// Server-side and client-side veth names.
    xs: String,
    xc: String,
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let id = format!("{}{}", std::process::id() % 100_000, unique_id());
        let lab = Lab {
            server_ns: format!("xd6t-{id}-s"),
            client_ns: format!("xd6t-{id}-c"),
            xs: format!("x6s{id}"),
            xc: format!("x6c{id}"),
        };
        let (s, c, xs, xc) = (&lab.server_ns, &lab.client_ns, &lab.xs, &lab.xc);
        run("ip", &["netns", "add", s]);
        run("ip", &["netns", "add", c]);
        run(
            "ip",
            &[
                "link", "add", xs, "netns", s, "type", "veth", "peer", "name", xc, "netns", c,
            ],
        );
        for (ns, dev, ll, gua) in [
            (s, xs, "fe80::1/64", "2001:db8:1::1/64"),
            (c, xc, "fe80::2/64", "2001:db8:1::2/64"),
        ] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            // No automatic link-local: fixed addresses, usable at once (nodad).
            run("ip", &["-n", ns, "link", "set", dev, "addrgenmode", "none"]);
            run("ip", &["-n", ns, "addr", "add", ll, "dev", dev, "nodad"]);
            run("ip", &["-n", ns, "addr", "add", gua, "dev", dev, "nodad"]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
            // veth leaves TX checksums to an offload that never happens on the XDP path
            // (BRIEF §7): have the kernel compute them.
            run(
                "ip",
                &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"],
            );
        }
        // Carrier comes up asynchronously (linkwatch); the multicast route that sending to
        // ff02::1:2 needs appears only then.
        for (ns, dev) in [(s, xs), (c, xc)] {
            wait_for(Duration::from_secs(5), || {
                run_stdout(
                    "ip",
                    &[
                        "-n", ns, "-6", "route", "show", "table", "local", "dev", dev,
                    ],
                )
                .contains("ff00::/8")
                .then_some(())
            })
            .unwrap_or_else(|| panic!("{dev} in {ns} did not come up"));
        }
        lab
    }

    fn client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.client_ns, f)
    }

    fn server<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.server_ns, f)
    }

    fn start(&self, extra: &[&str]) -> Responder {
        Responder::start(self, extra)
    }

    fn xdp_attached(&self) -> bool {
        xdp_attached(&self.server_ns, &self.xs)
    }

    /// Attach the program in `obj` to the server side through netlink (see
    /// [`attach_xdp_object`]).
    fn attach_xdp_object(&self, obj: &str) {
        attach_xdp_object(&self.server_ns, &self.xs, obj);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The `xdp-responder` binary running in the server namespace.
struct Responder {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    ready: Value,
}

impl Responder {
    fn start(lab: &Lab, extra: &[&str]) -> Responder {
        let mut args = vec![
            "netns",
            "exec",
            &lab.server_ns,
            RESPONDER,
            "--iface",
            &lab.xs,
            "--until-stdin-eof",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new("ip")
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn xdp-responder");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("xdp-responder did not get ready: {:?}", child.try_wait()));
        let ready = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected line {line}"));
        let ready = serde_json::from_str(ready).expect("ready json");
        Responder {
            stdin: child.stdin.take(),
            child,
            lines,
            ready,
        }
    }

    /// Stop cleanly (end of stdin) and return the final stats.
    fn stop(mut self) -> Value {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("stats line before exit");
            if let Some(s) = line.strip_prefix("stats ") {
                let v = serde_json::from_str(s).expect("stats json");
                assert!(self.child.wait().expect("wait").success());
                return v;
            }
        }
    }

    fn kill9(mut self) {
        // SIGKILL the responder itself (the child is `ip netns exec`, which execs it).
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An XDP program counter of the (only) interface.
fn prog(stats: &Value, name: &str) -> u64 {
    stats["programs"][0][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// A drop counter of the workers (`io_*` for the backend's, else the core's), summed.
fn drop_count(stats: &Value, name: &str) -> u64 {
    stats["total"]["drops"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no drop counter {name} in {stats}"))
}

/// Requests received / replies sent by the workers, summed.
fn total(stats: &Value, name: &str) -> u64 {
    stats["total"][name].as_u64().unwrap_or(0)
}

/// A minimal Solicit: type 1, transaction id, Elapsed Time option.
fn solicit(xid: [u8; 3]) -> Vec<u8> {
    vec![1, xid[0], xid[1], xid[2], 0, 8, 0, 2, 0, 0]
}

/// A direct client on `dev` (link-local `src`): send a Solicit to ff02::1:2, expect a Reply
/// (stand-in core) from the server's link-local address and port 547.
fn direct_exchange(dev: &str, src: Ipv6Addr, xid: [u8; 3]) -> (Vec<u8>, SocketAddrV6) {
    let idx = ifindex(dev);
    let sock = UdpSocket::bind(SocketAddrV6::new(src, 546, 0, idx)).expect("bind client port 546");
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 2048];
    // A few tries: the first request may race the responder's socket becoming active.
    for _ in 0..3 {
        sock.send_to(&solicit(xid), SocketAddrV6::new(ALL_DHCP, 547, 0, idx))
            .expect("send");
        if let Ok((n, std::net::SocketAddr::V6(from))) = sock.recv_from(&mut buf) {
            return (buf[..n].to_vec(), from);
        }
    }
    panic!("no reply to a direct Solicit on {dev}");
}

#[test]
fn direct_and_relayed_requests_are_answered_through_af_xdp() {
    let lab = Lab::new();
    let r = lab.start(&["--mode", "fake"]);
    assert_eq!(
        r.ready[0]["mode"], "copy",
        "veth supports copy mode only: {}",
        r.ready
    );

    let (reply, from) = lab.client(|| direct_exchange(&lab.xc, CLIENT_LL, [0xaa, 0xbb, 0xcc]));
    assert_eq!(
        reply[..4],
        [7, 0xaa, 0xbb, 0xcc],
        "Reply with the same transaction id"
    );
    assert_eq!(
        (*from.ip(), from.port()),
        (SERVER_LL, 547),
        "direct: from our link-local"
    );

    // A relay (port 547, global address) unicasting a Relay-forward to the server's address.
    let (reply, from) = lab.client(|| {
        let sock =
            UdpSocket::bind(SocketAddrV6::new(CLIENT_GUA, 547, 0, 0)).expect("bind relay port");
        sock.set_read_timeout(Some(WAIT)).unwrap();
        let mut msg = vec![12, 0];
        msg.extend_from_slice(&[0u8; 32]);
        msg.extend_from_slice(&[0, 9, 0, 4, 1, 2, 3, 4]);
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            sock.send_to(&msg, SocketAddrV6::new(SERVER_GUA, 547, 0, 0))
                .unwrap();
            if let Ok((n, std::net::SocketAddr::V6(from))) = sock.recv_from(&mut buf) {
                return (buf[..n].to_vec(), from);
            }
        }
        panic!("no Relay-reply");
    });
    assert_eq!(reply[0], 13, "Relay-reply");
    assert_eq!(reply.len(), 2 + 32 + 8);
    assert_eq!(
        (*from.ip(), from.port()),
        (SERVER_GUA, 547),
        "relayed: from our global address to port 547"
    );

    let stats = r.stop();
    assert!(prog(&stats, "steered") >= 2, "steered by XDP: {stats}");
    assert!(
        total(&stats, "rx") >= 2 && total(&stats, "tx") >= 2,
        "answered via AF_XDP: {stats}"
    );
    assert!(!lab.xdp_attached(), "program detached on clean exit");
}

#[test]
fn icmpv6_and_tcp_still_work_while_attached() {
    let lab = Lab::new();
    let r = lab.start(&["--mode", "fake"]);
    let idx = lab.client(|| ifindex(&lab.xc));
    assert!(
        lab.client(|| icmp6_echo(SERVER_GUA, 0)),
        "ping to the global address"
    );
    assert!(
        lab.client(|| icmp6_echo(SERVER_LL, idx)),
        "ping to the link-local address"
    );

    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let server = scope.spawn(|| {
            lab.server(move || {
                let l = TcpListener::bind(SocketAddrV6::new(SERVER_GUA, 8547, 0, 0)).unwrap();
                tx.send(()).unwrap();
                let (mut c, _) = l.accept().unwrap();
                let mut b = [0u8; 5];
                c.read_exact(&mut b).unwrap();
                c.write_all(&b).unwrap();
            })
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        lab.client(|| {
            let mut c =
                TcpStream::connect_timeout(&SocketAddrV6::new(SERVER_GUA, 8547, 0, 0).into(), WAIT)
                    .expect("TCP connect");
            c.set_read_timeout(Some(WAIT)).unwrap();
            c.write_all(b"hello").unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"hello");
        });
        server.join().unwrap();
    });

    let stats = r.stop();
    assert!(prog(&stats, "passed") > 0, "{stats}");
    assert_eq!(
        stats["programs"][0]["steered"], 0,
        "no DHCPv6 sent, nothing steered: {stats}"
    );
}

#[test]
fn vlan_tagged_request_is_answered_with_the_tag() {
    let lab = Lab::new();
    let r = lab.start(&["--mode", "fake"]);
    // Raw frames with the tag inside the frame, as a trunk port delivers them (a tag offloaded
    // into metadata would be invisible to XDP; see BRIEF §7). The server has no VLAN device:
    // only the XDP path can answer.
    let reply = lab.client(|| {
        let mac = hw_addr(&lab.xc);
        let req = udp_frame(
            &[7],
            mac,
            CLIENT_LL,
            ALL_DHCP,
            546,
            547,
            &solicit([1, 2, 3]),
        );
        let rx = RawRx::open(&lab.xc);
        for _ in 0..3 {
            send_raw(&lab.xc, &req);
            if let Some(got) = rx.recv_reply([1, 2, 3], Some(7)) {
                return got;
            }
        }
        panic!("no reply to a VLAN-tagged Solicit");
    });
    assert_eq!(reply.tci & 0x0fff, 7, "reply carries VLAN 7");
    assert_eq!(reply.payload[..4], [7, 1, 2, 3]);
    let stats = r.stop();
    assert!(total(&stats, "tx") >= 1, "{stats}");
}

/// A client's untagged frame to ff02::1:2 port 547, with UDP checksum `checksum` in place of
/// the correct one.
fn dhcp_frame(payload: &[u8], checksum: u16) -> Vec<u8> {
    let mac = [0x02, 0, 0, 0, 0, 2];
    let mut f = udp_frame(&[], mac, CLIENT_LL, ALL_DHCP, 546, 547, payload);
    // Ethernet 14 + IPv6 40, then the UDP checksum at 6..8.
    f[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&checksum.to_be_bytes());
    f
}

#[test]
fn malformed_and_bad_checksum_frames_are_counted_then_next_client_served() {
    let lab = Lab::new();
    let r = lab.start(&["--mode", "fake"]);
    lab.client(|| {
        send_raw(&lab.xc, &dhcp_frame(&solicit([9, 9, 9]), 0x1234)); // wrong checksum
        send_raw(&lab.xc, &dhcp_frame(&solicit([9, 9, 9]), 0)); // zero: forbidden in IPv6
        let mut truncated = dhcp_frame(&solicit([9, 9, 9]), 0);
        truncated.truncate(14 + 20);
        send_raw(&lab.xc, &truncated);
    });
    let (reply, _) = lab.client(|| direct_exchange(&lab.xc, CLIENT_LL, [4, 5, 6]));
    assert_eq!(reply[..4], [7, 4, 5, 6]);
    let stats = r.stop();
    assert_eq!(drop_count(&stats, "io_bad_checksum"), 2, "{stats}");
    assert_eq!(
        stats["programs"][0]["malformed"], 1,
        "truncated IPv6 header: {stats}"
    );
}

#[test]
fn restart_after_sigkill_and_stale_program_attaches_cleanly() {
    let lab = Lab::new();
    let r = lab.start(&["--mode", "fake"]);
    r.kill9();
    // The BPF link died with the process: nothing left behind.
    assert!(
        !lab.xdp_attached(),
        "link-attached program gone after kill -9"
    );

    // A program left attached through netlink (how older loaders and `ip` attach; such a
    // program outlives its process), as a crashed run of another loader would leave it.
    lab.attach_xdp_object(xdhcp6::io::xdp::OBJECT_PATH);
    assert!(lab.xdp_attached());

    let r = lab.start(&["--mode", "fake"]);
    let (reply, _) = lab.client(|| direct_exchange(&lab.xc, CLIENT_LL, [7, 7, 7]));
    assert_eq!(reply[0], 7);
    let stats = r.stop();
    assert!(total(&stats, "tx") >= 1, "{stats}");
    assert!(!lab.xdp_attached());
}

#[test]
fn foreign_program_is_not_replaced() {
    let lab = Lab::new();
    lab.attach_xdp_object(xdhcp6::io::xdp::FOREIGN_TEST_OBJECT_PATH);
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.server_ns,
            RESPONDER,
            "--iface",
            &lab.xs,
        ])
        .output()
        .expect("run responder");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "must refuse to replace a foreign program"
    );
    assert!(
        stderr.contains("xdp_foreign") && stderr.contains("not ours"),
        "{stderr}"
    );
    assert!(lab.xdp_attached(), "the foreign program is left in place");
}

#[test]
fn unprivileged_start_names_the_missing_capabilities() {
    let lab = Lab::new();
    // A copy the unprivileged user can surely execute (the build tree may be under a private
    // home directory).
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("responder");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("xdp-responder");
    std::fs::copy(RESPONDER, &bin).expect("copy responder");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.server_ns,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            bin.to_str().unwrap(),
            "--iface",
            &lab.xs,
        ])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for cap in ["CAP_NET_ADMIN", "CAP_BPF", "CAP_NET_RAW"] {
        assert!(stderr.contains(cap), "error names {cap}: {stderr}");
    }
    assert!(!lab.xdp_attached());
}

#[test]
fn binds_every_queue_by_default_and_busy_polls() {
    let lab = Lab::new();
    for (ns, dev) in [(&lab.server_ns, &lab.xs), (&lab.client_ns, &lab.xc)] {
        run(
            "ip",
            &[
                "netns", "exec", ns, "ethtool", "-L", dev, "rx", "2", "tx", "2",
            ],
        );
    }
    let r = lab.start(&["--mode", "fake", "--workers", "1", "--busy-poll-us", "20"]);
    let queues: Vec<u64> = r
        .ready
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["queue"].as_u64().unwrap())
        .collect();
    assert_eq!(queues, [0, 1], "one socket per RX queue: {}", r.ready);
    let (reply, _) = lab.client(|| direct_exchange(&lab.xc, CLIENT_LL, [3, 1, 4]));
    assert_eq!(reply[..4], [7, 3, 1, 4]);
    let stats = r.stop();
    assert!(total(&stats, "tx") >= 1, "{stats}");
    assert_eq!(
        stats["sockets"].as_array().map(Vec::len),
        Some(2),
        "{stats}"
    );
}

/// Whole batches go on the TX ring lap after lap while it has room. xdpilone refreshes its
/// view of the kernel's consumer index only when the cached view shows no room at all; a
/// batch that met a cached view of fewer free slots than it needed used to be cut short (the
/// rest dropped) with the ring nearly empty, once per lap. Batches of 3 on a 64-slot ring
/// meet that point on the first lap (63 = 21 × 3, leaving a cached view of 1).
#[test]
fn tx_ring_takes_whole_batches_lap_after_lap() {
    use xdhcp6::io::xdp::{Kick, Xsk, XskSizes, ZeroCopy};
    use xdpilone::xdp::XdpDesc;
    let lab = Lab::new();
    let sizes = XskSizes {
        frame_size: 2048,
        frame_count: 256,
        fill_ring: 64,
        completion_ring: 64,
        rx_ring: 64,
        tx_ring: 64,
    };
    lab.client(|| {
        let mut xsk = Xsk::open(&lab.xc, 0, &sizes, ZeroCopy::Off).expect("AF_XDP socket");
        let frame = udp_frame(
            &[],
            hw_addr(&lab.xc),
            CLIENT_LL,
            ALL_DHCP,
            546,
            547,
            &solicit([9, 9, 9]),
        );
        const BATCH: usize = 3;
        let mut sent_total = 0usize;
        for lap_batch in 0..(64 * 5 / BATCH) {
            // Make room: the kernel sends in copy mode only inside sendto, 32 frames a call.
            let deadline = Instant::now() + WAIT;
            while xsk.tx_pending() as usize + BATCH > 64 || xsk.free_frames() < BATCH {
                let _: Kick = xsk.kick_tx().expect("kick");
                xsk.reap_completions(256);
                assert!(Instant::now() < deadline, "the kernel stopped sending");
            }
            let mut descs = [XdpDesc::default(); BATCH];
            for d in descs.iter_mut() {
                let addr = xsk.alloc_frame().expect("a free frame");
                let buf = xsk.owned_frame_mut(addr).expect("frame");
                buf[..frame.len()].copy_from_slice(&frame);
                *d = XdpDesc {
                    addr,
                    len: frame.len() as u32,
                    options: 0,
                };
            }
            let pending = xsk.tx_pending();
            let n = xsk.transmit(&descs);
            assert_eq!(
                n, BATCH,
                "batch {lap_batch}: {pending} of 64 slots pending, yet only {n} of {BATCH} taken"
            );
            sent_total += n;
            let _ = xsk.kick_tx();
            xsk.reap_completions(256);
        }
        assert!(sent_total > 64 * 4, "several laps of the ring");
    });
}
