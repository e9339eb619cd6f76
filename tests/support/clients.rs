//! Real DHCPv6 clients run in the client namespace, and a tiny sender for hand-made packets.
//!
//! Clients never run their distribution hook scripts: those would rewrite the host's
//! /etc/resolv.conf. They run a script that appends its environment to a log instead, which is
//! also how the tests learn what lease a client got.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::netns::{enter_netns, NetPair};
use super::server::ServerProcess;
use super::{require_tool, wait_for, TempDir};

/// A client hook script's invocations: one map of variables per call, `reason` included.
pub type Events = Vec<BTreeMap<String, String>>;

fn write_hook(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("events.log");
    let script = dir.join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"reason=$reason\"; env | grep -E '^(new|old)_' | sort; echo --; }} >> '{}'\n",
            log.display()
        ),
    )
    .expect("write hook script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod hook");
    (script, log)
}

fn read_events(log: &Path) -> Events {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut events = Vec::new();
    let mut cur = BTreeMap::new();
    for line in text.lines() {
        if line == "--" {
            events.push(std::mem::take(&mut cur));
        } else if let Some((k, v)) = line.split_once('=') {
            cur.insert(k.to_owned(), v.to_owned());
        }
    }
    events
}

/// A client process with its hook log; killed on drop.
pub struct ClientProcess {
    child: Child,
    pub dir: TempDir,
    events_log: PathBuf,
    output_log: PathBuf,
}

impl ClientProcess {
    pub fn events(&self) -> Events {
        read_events(&self.events_log)
    }
    /// The client's own stdout/stderr.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output_log).unwrap_or_default()
    }
    /// Wait until `pred` holds for the events so far; `None` on timeout or client exit.
    pub fn wait_events(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Events) -> bool,
    ) -> Option<Events> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.events();
            if pred(&ev) {
                return Some(ev);
            }
            if Instant::now() >= deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    /// Wait for the client to exit on its own (one-shot clients).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- client output ---\n{}\n--- client events ---\n{:#?}",
                self.output(),
                self.events()
            );
        }
    }
}

/// Start ISC `dhclient -6` in the foreground on the client interface with `extra` flags
/// (`-N` addresses, `-P` prefixes).
pub fn dhclient(net: &NetPair, extra: &[&str]) -> ClientProcess {
    require_tool("dhclient");
    let dir = TempDir::new("dhclient");
    let (script, events_log) = write_hook(dir.path());
    let output_log = dir.join("output.log");
    let out = File::create(&output_log).expect("client log");
    let child = net
        .client_cmd("dhclient")
        .args(["-6", "-d", "-v"])
        .args(extra)
        .arg("-lf")
        .arg(dir.join("dhclient6.leases"))
        .arg("-pf")
        .arg(dir.join("dhclient6.pid"))
        .arg("-sf")
        .arg(&script)
        .arg(&net.client_if)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn dhclient");
    ClientProcess {
        child,
        dir,
        events_log,
        output_log,
    }
}

/// Start `dhcpcd` (DHCPv6 only, no router solicitation) for one lease and exit, asking for an
/// address (IAID 1) and a prefix (IAID 2), with `extra_conf` lines added to its config.
///
/// dhcpcd keeps its DUID and control sockets under /var/lib/dhcpcd and /run/dhcpcd; it runs in
/// a private mount namespace with both replaced by the test's directory, so the host's are not
/// touched and parallel tests do not collide.
pub fn dhcpcd(net: &NetPair, extra_conf: &[&str]) -> ClientProcess {
    require_tool("dhcpcd");
    require_tool("unshare");
    let dir = TempDir::new("dhcpcd");
    let (script, events_log) = write_hook(dir.path());
    let output_log = dir.join("output.log");
    let conf = dir.join("dhcpcd.conf");
    let mut c = String::from("ipv6only\nnoipv6rs\nnohook resolv.conf\nia_na 1\nia_pd 2 -\n");
    for l in extra_conf {
        c.push_str(l);
        c.push('\n');
    }
    std::fs::write(&conf, c).expect("write dhcpcd.conf");
    let (lib, run) = (dir.join("lib"), dir.join("run"));
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let sh = format!(
        "mkdir -p /var/lib/dhcpcd /run/dhcpcd && mount --bind '{}' /var/lib/dhcpcd && mount --bind '{}' /run/dhcpcd && \
         exec dhcpcd -6 -B -1 -d -t 20 -f '{}' -c '{}' '{}'",
        lib.display(),
        run.display(),
        conf.display(),
        script.display(),
        net.client_if
    );
    let out = File::create(&output_log).expect("client log");
    let child = net
        .client_cmd("unshare")
        .args(["-m", "sh", "-c", &sh])
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn dhcpcd");
    ClientProcess {
        child,
        dir,
        events_log,
        output_log,
    }
}

/// One `***Statistics for: X***` block of perfdhcp's report.
pub type PerfStats = BTreeMap<String, BTreeMap<String, String>>;

/// Run `perfdhcp -6` on the client interface to completion (bounded by `timeout`) and parse its
/// statistics blocks ("SOLICIT-ADVERTISE", "REQUEST-REPLY" → "sent packets", "received
/// packets", "rejected leases", "non unique addresses" ...).
pub fn perfdhcp(net: &NetPair, args: &[&str], timeout: Duration) -> (PerfStats, String) {
    require_tool("perfdhcp");
    require_tool("timeout");
    let secs = timeout.as_secs().max(1).to_string();
    let out = net
        .client_cmd("timeout")
        .args(["-s", "KILL", &secs, "perfdhcp", "-6", "-l", &net.client_if])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run perfdhcp");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (parse_perfdhcp(&text), text)
}

pub fn parse_perfdhcp(text: &str) -> PerfStats {
    let mut stats = PerfStats::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("***Statistics for: ")
            .and_then(|r| r.strip_suffix("***"))
        {
            cur = Some(name.to_owned());
            continue;
        }
        if line.starts_with("***") {
            cur = None;
            continue;
        }
        if let (Some(block), Some((k, v))) = (&cur, line.split_once(':')) {
            stats
                .entry(block.clone())
                .or_default()
                .insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    stats
}

/// A perfdhcp counter as a number (panics with the report if missing).
pub fn perf_num(stats: &PerfStats, block: &str, key: &str, report: &str) -> u64 {
    stats
        .get(block)
        .and_then(|b| b.get(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("perfdhcp report has no `{key}` under {block}:\n{report}"))
}

/// Run perfdhcp for `clients` four-message exchanges (`-r 100 -n N -R N`, then `extra`)
/// against `server`, and check that no lease was rejected, no address went to two clients,
/// every Solicit was sent and all but the last two exchanges completed. Returns how many
/// completed.
pub fn perfdhcp_exchanges(
    net: &NetPair,
    server: &ServerProcess,
    clients: u64,
    extra: &[&str],
) -> u64 {
    let n = clients.to_string();
    let mut args = vec!["-r", "100", "-n", &n, "-R", &n];
    args.extend_from_slice(extra);
    let (stats, report) = perfdhcp(net, &args, Duration::from_secs(30));
    for block in ["SOLICIT-ADVERTISE", "REQUEST-REPLY"] {
        assert_eq!(
            perf_num(&stats, block, "rejected leases", &report),
            0,
            "{block}: rejected leases\n{report}"
        );
        assert_eq!(
            perf_num(&stats, block, "non unique addresses", &report),
            0,
            "{block}: duplicates\n{report}"
        );
    }
    let sent = perf_num(&stats, "SOLICIT-ADVERTISE", "sent packets", &report);
    let done = perf_num(&stats, "REQUEST-REPLY", "received packets", &report);
    // perfdhcp stops the moment it has sent its last Solicit, so the last exchange or two can
    // be cut off on its side; everything else must complete.
    assert_eq!(sent, clients, "{report}");
    assert!(
        done + 2 >= clients,
        "only {done} of {clients} four-message exchanges completed\n{report}\n{}",
        server.log()
    );
    done
}

/// Send `packets` from the client namespace as a DHCPv6 client would (from port 546 to
/// ff02::1:2 port 547 on the client interface) and collect whatever comes back within `wait`.
pub fn exchange(
    net: &NetPair,
    packets: &[Vec<u8>],
    wait: Duration,
) -> Vec<(SocketAddrV6, Vec<u8>)> {
    let ns = net.client_ns.clone();
    let ifindex = net.client_ifindex;
    std::thread::scope(|s| {
        s.spawn(move || {
            enter_netns(&ns);
            let sock =
                UdpSocket::bind("[::]:546").expect("bind client port 546 in client namespace");
            let dst = SocketAddrV6::new("ff02::1:2".parse::<Ipv6Addr>().unwrap(), 547, 0, ifindex);
            for p in packets {
                sock.send_to(p, dst).expect("send to ff02::1:2");
            }
            collect(&sock, wait)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Everything `sock` receives until `wait` has passed.
pub fn collect(sock: &UdpSocket, wait: Duration) -> Vec<(SocketAddrV6, Vec<u8>)> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, std::net::SocketAddr::V6(from))) => got.push((from, buf[..n].to_vec())),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}
