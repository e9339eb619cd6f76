//! Two network namespaces joined by a veth pair, with IPv6 ready on both ends.

use std::net::Ipv6Addr;
use std::process::{Command, Output};
use std::time::Duration;

use super::{require_root, unique_id, wait_for};

/// The server side's global address and the client side's, on 2001:db8:1::/64.
pub const SERVER_GLOBAL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const CLIENT_GLOBAL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
pub const SUBNET: &str = "2001:db8:1::/64";

/// Run a command, panicking with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {cmd}: {e} (is it installed? see scripts/install-deps.sh)")
    });
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run a command like [`run`] and return its standard output as text.
pub fn run_stdout(cmd: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&run(cmd, args).stdout).into_owned()
}

/// Whether an XDP program is attached to `dev` in namespace `ns`.
pub fn xdp_attached(ns: &str, dev: &str) -> bool {
    run_stdout("ip", &["-n", ns, "link", "show", "dev", dev]).contains("xdp")
}

/// Attach the XDP program in object file `obj` (section `xdp`) to `dev` in namespace `ns`
/// through netlink, generic mode: such a program outlives the process that attached it, as a
/// crashed loader would leave it.
pub fn attach_xdp_object(ns: &str, dev: &str, obj: &str) {
    run(
        "ip",
        &[
            "-n",
            ns,
            "link",
            "set",
            "dev",
            dev,
            "xdpgeneric",
            "obj",
            obj,
            "sec",
            "xdp",
        ],
    );
}

/// A server namespace and a client namespace joined by a veth pair. Dropping it kills what
/// still runs inside and deletes both namespaces (which deletes the veth pair).
pub struct NetPair {
    pub server_ns: String,
    pub client_ns: String,
    pub server_if: String,
    pub client_if: String,
    pub server_ifindex: u32,
    pub client_ifindex: u32,
    pub server_ll: Ipv6Addr,
    pub client_ll: Ipv6Addr,
}

impl NetPair {
    pub fn new() -> Self {
        require_root();
        let id = format!("{:x}{:x}", std::process::id(), unique_id());
        // Interface names are at most 15 bytes.
        assert!(id.len() <= 12);
        let mut p = NetPair {
            server_ns: format!("xdhcp6-{id}-s"),
            client_ns: format!("xdhcp6-{id}-c"),
            server_if: format!("x6{id}s"),
            client_if: format!("x6{id}c"),
            server_ifindex: 0,
            client_ifindex: 0,
            server_ll: Ipv6Addr::UNSPECIFIED,
            client_ll: Ipv6Addr::UNSPECIFIED,
        };
        // From here on `p` is dropped on panic, removing whatever was created.
        run("ip", &["netns", "add", &p.server_ns]);
        run("ip", &["netns", "add", &p.client_ns]);
        run(
            "ip",
            &[
                "link",
                "add",
                &p.server_if,
                "netns",
                &p.server_ns,
                "type",
                "veth",
                "peer",
                "name",
                &p.client_if,
                "netns",
                &p.client_ns,
            ],
        );
        for (ns, ifname, global) in [
            (&p.server_ns, &p.server_if, SERVER_GLOBAL),
            (&p.client_ns, &p.client_if, CLIENT_GLOBAL),
        ] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
            // No duplicate address detection: the link-local address is usable the moment the
            // link is up, instead of a second later, and nothing else is on this wire.
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{ifname}.accept_dad=0"),
                ],
            );
            // veth offloads TX checksums; frames would arrive with incomplete UDP checksums
            // (BRIEF §7).
            run(
                "ip",
                &["netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off"],
            );
            run("ip", &["-n", ns, "link", "set", ifname, "up"]);
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{global}/64"),
                    "dev",
                    ifname,
                    "nodad",
                ],
            );
        }
        p.server_ll = p.wait_link_local(&p.server_ns.clone(), &p.server_if.clone());
        p.client_ll = p.wait_link_local(&p.client_ns.clone(), &p.client_if.clone());
        p.server_ifindex = ifindex(&p.server_ns, &p.server_if);
        p.client_ifindex = ifindex(&p.client_ns, &p.client_if);
        p
    }

    /// Wait until the interface has a usable (not tentative) link-local address.
    fn wait_link_local(&self, ns: &str, ifname: &str) -> Ipv6Addr {
        wait_for(Duration::from_secs(10), || {
            let out = run(
                "ip",
                &[
                    "-n", ns, "-6", "-o", "addr", "show", "dev", ifname, "scope", "link",
                ],
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains("tentative") {
                return None;
            }
            text.split_whitespace()
                .find_map(|w| {
                    w.strip_prefix("fe80")
                        .map(|_| w.split('/').next().unwrap_or(w).parse().ok())
                })
                .flatten()
        })
        .unwrap_or_else(|| panic!("{ifname} in {ns}: no usable link-local address after 10 s"))
    }

    /// `ip netns exec <ns>` prefix for a command line run in the client namespace.
    pub fn client_cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client_ns, program]);
        c
    }

    pub fn server_cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.server_ns, program]);
        c
    }
}

impl Default for NetPair {
    fn default() -> Self {
        Self::new()
    }
}

fn ifindex(ns: &str, ifname: &str) -> u32 {
    let out = run(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{ifname}/ifindex"),
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ifindex is a number")
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.server_ns, &self.client_ns] {
            // Processes the test started in the namespace (a client that outlived a failed
            // assertion) would keep it alive.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Run `f` on a new thread that has entered network namespace `ns`, and return its result.
/// Threads `f` spawns inherit the namespace, so a whole in-process server can run there.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns);
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Move the calling thread into network namespace `ns` (see `ip netns`).
pub fn enter_netns(ns: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("open netns {ns}: {e}"));
    // SAFETY: setns(2) on a namespace descriptor we hold open; CLONE_NEWNET only changes the
    // calling thread's network namespace, which is what this function is for.
    #[allow(unsafe_code)]
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}
