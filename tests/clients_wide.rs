//! WIDE-DHCPv6 `dhcp6c` (Debian's wide-dhcpv6-client) against the server binary: it obtains an
//! address (IA_NA) and a delegated prefix (IA_PD), configures the address, and on SIGTERM
//! releases both, which the server records. Needs root and `dhcp6c`.

mod support;

use std::fs::File;
use std::net::Ipv6Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::config::{TestConfig, PD_LEN, POOL_FIRST, POOL_LAST};
use support::netns::NetPair;
use support::server::ServerProcess;
use support::{require_tool, wait_for, TempDir};

struct Dhcp6c {
    child: Child,
    dir: TempDir,
}

impl Dhcp6c {
    /// dhcp6c in the foreground with debug output, asking for IA_NA 1 and IA_PD 2. It keeps its
    /// DUID in /var/lib/dhcpv6; a private mount namespace puts the test's directory there so
    /// the host's file is not touched.
    fn start(net: &NetPair) -> Self {
        require_tool("dhcp6c");
        require_tool("unshare");
        let dir = TempDir::new("dhcp6c");
        let conf = dir.join("dhcp6c.conf");
        std::fs::write(
            &conf,
            format!(
                "interface {if} {{\n  send ia-na 1;\n  send ia-pd 2;\n  request domain-name-servers;\n}};\n\
                 id-assoc na 1 {{ }};\n\
                 id-assoc pd 2 {{\n  prefix-interface {if} {{ sla-id 1; sla-len {sla}; }};\n}};\n",
                if = net.client_if,
                sla = 64 - u32::from(PD_LEN)
            ),
        )
        .unwrap();
        let lib = dir.join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        let sh = format!(
            "mkdir -p /var/lib/dhcpv6 && mount --bind '{}' /var/lib/dhcpv6 && exec dhcp6c -f -D -c '{}' -p '{}' '{}'",
            lib.display(),
            conf.display(),
            dir.join("pid").display(),
            net.client_if
        );
        let log = File::create(dir.join("output.log")).unwrap();
        let child = net
            .client_cmd("unshare")
            .args(["-m", "sh", "-c", &sh])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn dhcp6c");
        Dhcp6c { child, dir }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("output.log")).unwrap_or_default()
    }

    /// The value after `marker` on the first output line that has it.
    fn find(&self, marker: &str) -> Option<String> {
        self.output().lines().find_map(|l| {
            l.split_once(marker)
                .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_owned())
        })
    }
}

impl Drop for Dhcp6c {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- dhcp6c output ---\n{}", self.output());
        }
    }
}

fn leases(server: &ServerProcess) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_xdhcp6"))
        .args(["leases", "--format", "json", "-s"])
        .arg(server.dir.join("control.sock"))
        .output()
        .expect("xdhcp6 leases");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn dhcp6c_gets_an_address_and_a_prefix_and_releases_them() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let client = Dhcp6c::start(&net);
    let (addr, prefix) = wait_for(Duration::from_secs(20), || {
        let a = client.find("add an address ")?;
        let p = client.find("create a prefix ")?;
        Some((a, p))
    })
    .unwrap_or_else(|| {
        panic!(
            "dhcp6c did not configure a lease within 20 s\n{}",
            client.output()
        )
    });
    let addr: Ipv6Addr = addr.trim_end_matches("/128").parse().expect("address");
    let first: Ipv6Addr = POOL_FIRST.parse().unwrap();
    let last: Ipv6Addr = POOL_LAST.parse().unwrap();
    assert!((first..=last).contains(&addr), "{addr} outside the pool");
    assert!(prefix.ends_with(&format!("/{PD_LEN}")), "prefix {prefix}");
    // The address is configured on the client's interface.
    let shown = net
        .client_cmd("ip")
        .args(["-6", "addr", "show", "dev", &net.client_if])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&addr.to_string()),
        "address not configured"
    );

    // The server holds both bindings for the client.
    let l = leases(&server);
    let find = |a: &str| l.iter().find(|x| x["address"] == a).cloned();
    let na =
        find(&addr.to_string()).unwrap_or_else(|| panic!("server has no lease for {addr}: {l:?}"));
    let pd = find(&prefix).unwrap_or_else(|| panic!("server has no lease for {prefix}: {l:?}"));
    assert_eq!(na["state"], "active");
    assert_eq!(pd["state"], "active");
    assert_eq!(na["duid"], pd["duid"], "one client");

    // SIGTERM: dhcp6c releases what it holds (RFC 8415 §18.2.7) and the server records it.
    assert!(Command::new("kill")
        .args(["-TERM", &client.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let released = wait_for(Duration::from_secs(10), || {
        let l = leases(&server);
        let state = |a: &str| {
            l.iter()
                .find(|x| x["address"] == a)
                .map(|x| x["state"].clone())
        };
        (state(&addr.to_string()) == Some("released".into())
            && state(&prefix) == Some("released".into()))
        .then_some(())
    });
    assert!(
        released.is_some(),
        "bindings not released: {:?}\n{}",
        leases(&server),
        client.output()
    );
    let releases = |s: &support::server::Stats| s.0.rx_by_type.get("release").copied().unwrap_or(0);
    let stats = server.wait_stats(Duration::from_secs(3), |s| releases(s) >= 1);
    assert!(releases(&stats) >= 1, "{stats:?}");
}
