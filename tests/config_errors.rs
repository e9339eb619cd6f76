//! Every configuration mistake is rejected with a one-line message naming the key path.

use std::path::Path;

use xdhcp6::config::{load_file, parse_str, ConfigError, INFINITE};

/// Two interfaces and one valid link; tests append keys to that link or add more tables.
const BASE: &str = r#"
[server]
interfaces = ["eth0", "eth1"]

[[link]]
name = "a"
subnet = "2001:db8:1::/64"
"#;

/// A second valid link, to append after the first one's keys.
const LINK_B: &str = r#"
[[link]]
name = "b"
subnet = "2001:db8:2::/64"
"#;

fn with(extra: &str) -> String {
    format!("{BASE}{extra}\n")
}

/// Asserts that `text` is rejected for `key`, with `reason` in the message.
#[track_caller]
fn rejects(text: &str, key: &str, reason: &str) -> ConfigError {
    let e = parse_str(text).expect_err("config should be rejected");
    let msg = e.to_string();
    assert_eq!(e.key(), Some(key), "wrong key in: {msg}");
    assert!(
        msg.starts_with(key),
        "message should start with the key: {msg}"
    );
    assert!(
        msg.contains(reason),
        "message should contain {reason:?}: {msg}"
    );
    assert!(!msg.contains('\n'), "message should be one line: {msg:?}");
    e
}

#[track_caller]
fn accepts(text: &str) -> xdhcp6::config::Config {
    parse_str(text).unwrap_or_else(|e| panic!("config should be accepted: {e}"))
}

#[test]
fn base_is_valid() {
    accepts(BASE);
    accepts(&with(LINK_B));
}

// --- TOML syntax and schema --------------------------------------------------------------------

#[test]
fn syntax_error_has_line_and_column() {
    let e = parse_str("[server]\ninterfaces = [\"eth0\"\n[[link]]\n").unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            ConfigError::Syntax { line: 2, .. } | ConfigError::Syntax { line: 3, .. }
        ),
        "{msg}"
    );
    assert!(msg.starts_with("TOML syntax error at line "), "{msg}");
    assert!(!msg.contains('\n'), "{msg:?}");
}

#[test]
fn unknown_keys_are_rejected_everywhere() {
    let cases: &[(&str, &str)] = &[
        ("bogus = 1\n", "bogus"),
        ("[server]\ninterfaces = [\"eth0\"]\nworkerz = 2\n[[link]]\nname = \"a\"\nsubnet = \"2001:db8:1::/64\"\n", "server.workerz"),
        ("[defaults]\nlifetime = 5\n", "defaults.lifetime"),
        ("[defaults.options]\ndns = []\n", "defaults.options.dns"),
    ];
    for (extra, key) in cases {
        let text = if extra.starts_with("[server]") {
            extra.to_string()
        } else {
            format!("{extra}{BASE}")
        };
        let e = rejects(&text, key, "unknown field");
        assert!(matches!(e, ConfigError::Schema { .. }));
    }
    rejects(
        &with("subnett = \"x\""),
        "link[0].subnett",
        "unknown field `subnett`",
    );
    rejects(
        &with("address_pools = [{ first = \"2001:db8:1::1\", lst = \"2001:db8:1::2\" }]"),
        "link[0].address_pools[0].lst",
        "unknown field",
    );
    rejects(
        &with("prefix_pools = [{ prefix = \"2001:db8:100::/40\", length = 56 }]"),
        "link[0].prefix_pools[0].length",
        "unknown field",
    );
    rejects(
        &with("[link.options]\ndns = []"),
        "link[0].options.dns",
        "unknown field",
    );
    rejects(
        &with("[[link.reservation]]\nduid = \"0001\"\nip = \"2001:db8:1::5\""),
        "link[0].reservation[0].ip",
        "unknown field",
    );
    rejects(
        &format!("{BASE}{LINK_B}foo = true\n"),
        "link[1].foo",
        "unknown field",
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let e = rejects(
        &with("rapid_commit = \"yes\""),
        "link[0].rapid_commit",
        "invalid type",
    );
    let ConfigError::Schema { line, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(line, 8);
    rejects(
        &with("valid_lifetime = true"),
        "link[0].valid_lifetime",
        "duration",
    );
    rejects(
        &with("interface_ids = \"x\""),
        "link[0].interface_ids",
        "invalid type",
    );
}

// --- [server] ----------------------------------------------------------------------------------

#[test]
fn server_interfaces() {
    let link = "[[link]]\nname = \"a\"\nsubnet = \"2001:db8:1::/64\"\n";
    rejects(link, "server.interfaces", "required key is missing");
    rejects(
        &format!("[server]\ninterfaces = []\n{link}"),
        "server.interfaces",
        "at least one",
    );
    rejects(
        &format!("[server]\ninterfaces = [\"eth0\", \"a/b\"]\n{link}"),
        "server.interfaces[1]",
        "not a valid interface name",
    );
    rejects(
        &format!("[server]\ninterfaces = [\"averyveryverylongname\"]\n{link}"),
        "server.interfaces[0]",
        "1 to 15 bytes",
    );
    rejects(
        &format!("[server]\ninterfaces = [\"eth0\", \"eth0\"]\n{link}"),
        "server.interfaces[1]",
        "already listed at server.interfaces[0]",
    );
}

fn server(extra: &str) -> String {
    format!("[server]\ninterfaces = [\"eth0\"]\n{extra}\n[[link]]\nname = \"a\"\nsubnet = \"2001:db8:1::/64\"\n")
}

#[test]
fn server_scalars() {
    rejects(
        &server("backend = \"dpdk\""),
        "server.backend",
        "unknown backend \"dpdk\"",
    );
    rejects(&server("workers = -1"), "server.workers", "out of range");
    rejects(&server("workers = 5000"), "server.workers", "out of range");
    rejects(
        &server("decline_quarantine = 0"),
        "server.decline_quarantine",
        "above 0",
    );
    rejects(
        &server("decline_quarantine = \"infinite\""),
        "server.decline_quarantine",
        "finite",
    );
    rejects(
        &server("decline_quarantine = \"soon\""),
        "server.decline_quarantine",
        "not a duration",
    );
    rejects(
        &server("lease_file = \"\""),
        "server.lease_file",
        "must not be empty",
    );
    rejects(
        &server("lease_file = \"/x\"\nduid_file = \"/x\""),
        "server.lease_file",
        "must differ",
    );
    let long = format!("control_socket = \"/run/{}\"", "s".repeat(120));
    rejects(&server(&long), "server.control_socket", "at most 107");
    let c = accepts(&server(
        "backend = \"xdp\"\nworkers = 4\ndecline_quarantine = \"2h\"",
    ));
    assert_eq!(c.server.workers, 4);
    assert_eq!(c.server.decline_quarantine_secs, 7200);
}

// --- links ---------------------------------------------------------------------------------------

#[test]
fn at_least_one_link() {
    rejects(
        "[server]\ninterfaces = [\"eth0\"]\n",
        "link",
        "at least one is required",
    );
}

#[test]
fn link_names() {
    rejects(
        "[server]\ninterfaces = [\"eth0\"]\n[[link]]\nsubnet = \"2001:db8:1::/64\"\n",
        "link[0].name",
        "required key is missing",
    );
    rejects(
        &BASE.replace("name = \"a\"", "name = \"a b\""),
        "link[0].name",
        "not a valid link name",
    );
    rejects(
        &format!("{BASE}{}", LINK_B.replace("\"b\"", "\"a\"")),
        "link[1].name",
        "already used by link[0]",
    );
}

#[test]
fn link_subnet() {
    let s = |subnet: &str| BASE.replace("2001:db8:1::/64", subnet);
    rejects(
        &s("2001:db8:1::"),
        "link[0].subnet",
        "expected address/length",
    );
    rejects(
        &s("2001:db8:zz::/64"),
        "link[0].subnet",
        "not an IPv6 address",
    );
    rejects(
        &s("2001:db8:1::/200"),
        "link[0].subnet",
        "not a prefix length",
    );
    rejects(
        &s("2001:db8:1::1/64"),
        "link[0].subnet",
        "host bits are set in 2001:db8:1::1/64; did you mean 2001:db8:1::/64?",
    );
    rejects(&s("2001:db8:1::1/128"), "link[0].subnet", "/128");
    rejects(&s("ff05::/16"), "link[0].subnet", "multicast");
    rejects(&s("fe80::/64"), "link[0].subnet", "link-local");
    rejects(
        &format!(
            "{BASE}{}",
            LINK_B.replace("2001:db8:2::/64", "2001:db8:1::/48")
        ),
        "link[1].subnet",
        "overlaps 2001:db8:1::/64 at link[0].subnet",
    );
}

#[test]
fn link_interface_selection() {
    rejects(
        &with("interface = \"eth9\""),
        "link[0].interface",
        "not listed in server.interfaces",
    );
    rejects(
        &format!(
            "{}{LINK_B}interface = \"eth0\"\n",
            with("interface = \"eth0\"")
        ),
        "link[1].interface",
        "already selects link[0]",
    );
    rejects(
        &with("interface_ids = [\"0xabc\"]"),
        "link[0].interface_ids[0]",
        "odd number of hex digits",
    );
    rejects(
        &with("interface_ids = [\"\"]"),
        "link[0].interface_ids[0]",
        "1 to 255",
    );
    rejects(
        &with("interface_ids = [\"x\", \"x\"]"),
        "link[0].interface_ids[1]",
        "duplicates link[0].interface_ids[0]",
    );
    rejects(
        &format!(
            "{}{LINK_B}interface_ids = [\"0x7879\"]\n",
            with("interface_ids = [\"xy\"]")
        ),
        "link[1].interface_ids[0]",
        "already selects the link at link[0].interface_ids[0]",
    );
}

// --- pools ---------------------------------------------------------------------------------------

fn na(first: &str, last: &str) -> String {
    with(&format!(
        "address_pools = [{{ first = \"{first}\", last = \"{last}\" }}]"
    ))
}

#[test]
fn address_pools() {
    rejects(
        &with("address_pools = [{ last = \"2001:db8:1::1\" }]"),
        "link[0].address_pools[0].first",
        "required key is missing",
    );
    rejects(
        &na("2001:db8:1::1", "nope"),
        "link[0].address_pools[0].last",
        "\"nope\" is not an IPv6 address",
    );
    rejects(
        &na("2001:db8:1::20", "2001:db8:1::10"),
        "link[0].address_pools[0].last",
        "below first",
    );
    rejects(
        &na("2001:db8:1::1", "2001:db8:2::1"),
        "link[0].address_pools[0].last",
        "outside the link subnet 2001:db8:1::/64",
    );
    rejects(
        &na("2001:db8:9::1", "2001:db8:1::1"),
        "link[0].address_pools[0].first",
        "outside the link subnet",
    );
    rejects(
        &na("2001:db8:1::", "2001:db8:1::ff"),
        "link[0].address_pools[0].first",
        "Subnet-Router anycast",
    );
    // A whole /64 is 2^64 addresses, one more than a pool can count.
    let big = BASE.replace("2001:db8:1::/64", "2001:db8::/32");
    rejects(
        &format!(
            "{big}address_pools = [{{ first = \"2001:db8::1\", last = \"2001:db8:0:1::\" }}]\n"
        ),
        "link[0].address_pools[0].last",
        "2^64",
    );
    let c = accepts(&na("2001:db8:1::1", "2001:db8:1::1"));
    assert_eq!(c.links[0].address_pools[0].count, 1);
    let c = accepts(&na("2001:db8:1::1", "2001:db8:1:0:ffff:ffff:ffff:ffff"));
    assert_eq!(c.links[0].address_pools[0].count, u64::MAX);
}

fn pd(prefix: &str, len: i64) -> String {
    with(&format!(
        "prefix_pools = [{{ prefix = \"{prefix}\", delegated_length = {len} }}]"
    ))
}

#[test]
fn prefix_pools() {
    rejects(
        &with("prefix_pools = [{ prefix = \"2001:db8:100::/40\" }]"),
        "link[0].prefix_pools[0].delegated_length",
        "required key is missing",
    );
    rejects(
        &with("prefix_pools = [{ delegated_length = 56 }]"),
        "link[0].prefix_pools[0].prefix",
        "required key is missing",
    );
    rejects(
        &pd("2001:db8:100::/40", 40),
        "link[0].prefix_pools[0].delegated_length",
        "longer than the pool prefix /40",
    );
    rejects(
        &pd("2001:db8:100::/40", 32),
        "link[0].prefix_pools[0].delegated_length",
        "out of range",
    );
    rejects(
        &pd("2001:db8:100::/40", 0),
        "link[0].prefix_pools[0].delegated_length",
        "out of range",
    );
    rejects(
        &pd("2001:db8:100::/40", 129),
        "link[0].prefix_pools[0].delegated_length",
        "at most 128",
    );
    rejects(
        &pd("2001:db8:100::/40", 104),
        "link[0].prefix_pools[0].delegated_length",
        "2^64 prefixes",
    );
    rejects(
        &pd("2001:db8:100::/32", 56),
        "link[0].prefix_pools[0].prefix",
        "host bits are set",
    );
    rejects(
        &pd("ff00::/8", 56),
        "link[0].prefix_pools[0].prefix",
        "multicast",
    );
    rejects(
        &pd("2001:db8::/40", 56),
        "link[0].prefix_pools[0].prefix",
        "overlaps the subnet 2001:db8:1::/64",
    );
    let c = accepts(&pd("2001:db8:100::/40", 103));
    assert_eq!(c.links[0].prefix_pools[0].count, 1 << 63);
    let c = accepts(&pd("2001:db8:100::/120", 128));
    assert_eq!(c.links[0].prefix_pools[0].count, 256);
}

#[test]
fn overlapping_pools_are_rejected() {
    // Two address pools of one link.
    rejects(
        &with("address_pools = [{ first = \"2001:db8:1::10\", last = \"2001:db8:1::20\" }, { first = \"2001:db8:1::20\", last = \"2001:db8:1::30\" }]"),
        "link[0].address_pools[1]",
        "overlaps pool 2001:db8:1::10-2001:db8:1::20 at link[0].address_pools[0]",
    );
    // Prefix pools of different links; the later one is named.
    let text = format!(
        "{}{LINK_B}prefix_pools = [{{ prefix = \"2001:db8:100::/48\", delegated_length = 60 }}]\n",
        with("prefix_pools = [{ prefix = \"2001:db8:100::/40\", delegated_length = 56 }]")
    );
    rejects(
        &text,
        "link[1].prefix_pools[0]",
        "at link[0].prefix_pools[0]",
    );
    // Adjacent is fine.
    accepts(&with(
        "address_pools = [{ first = \"2001:db8:1::10\", last = \"2001:db8:1::1f\" }, { first = \"2001:db8:1::20\", last = \"2001:db8:1::30\" }]\n\
         prefix_pools = [{ prefix = \"2001:db8:100::/48\", delegated_length = 56 }, { prefix = \"2001:db8:101::/48\", delegated_length = 56 }]",
    ));
}

#[test]
fn pool_ids_are_unique_and_do_not_depend_on_file_order() {
    let text = format!(
        "{}{LINK_B}address_pools = [{{ first = \"2001:db8:2::1\", last = \"2001:db8:2::9\" }}]\n",
        with("address_pools = [{ first = \"2001:db8:1::1\", last = \"2001:db8:1::9\" }]\nprefix_pools = [{ prefix = \"2001:db8:100::/40\", delegated_length = 56 }]")
    );
    let c = accepts(&text);
    let ids = [
        c.links[0].address_pools[0].id,
        c.links[0].prefix_pools[0].id,
        c.links[1].address_pools[0].id,
    ];
    assert!(ids.iter().all(|&i| i != 0));
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "{ids:?}"
    );
    // A pool inserted before the others, and a range grown at its end, keep every id.
    let text2 = format!(
        "{}{LINK_B}address_pools = [{{ first = \"2001:db8:2::1\", last = \"2001:db8:2::99\" }}]\n",
        with("address_pools = [{ first = \"2001:db8:1::a:0\", last = \"2001:db8:1::a:9\" }, { first = \"2001:db8:1::1\", last = \"2001:db8:1::9\" }]\nprefix_pools = [{ prefix = \"2001:db8:100::/40\", delegated_length = 56 }]")
    );
    let c2 = accepts(&text2);
    assert_eq!(c2.links[0].address_pools[1].id, ids[0]);
    assert_eq!(c2.links[0].prefix_pools[0].id, ids[1]);
    assert_eq!(c2.links[1].address_pools[0].id, ids[2]);
    assert!(!ids.contains(&c2.links[0].address_pools[0].id));
}

// --- lifetimes and timers ------------------------------------------------------------------------

#[test]
fn lifetimes() {
    rejects(
        &with("valid_lifetime = 0"),
        "link[0].valid_lifetime",
        "above 0",
    );
    rejects(
        &with("preferred_lifetime = 0"),
        "link[0].preferred_lifetime",
        "above 0",
    );
    rejects(
        &with("valid_lifetime = -5"),
        "link[0].valid_lifetime",
        "negative",
    );
    rejects(
        &with("valid_lifetime = 4294967295"),
        "link[0].valid_lifetime",
        "\"infinite\"",
    );
    rejects(
        &with("valid_lifetime = \"3 hours\""),
        "link[0].valid_lifetime",
        "not a duration",
    );
    rejects(
        &with("preferred_lifetime = \"2h\"\nvalid_lifetime = \"1h\""),
        "link[0].preferred_lifetime",
        "preferred lifetime 7200 s exceeds the valid lifetime 3600 s set at link[0].valid_lifetime",
    );
    rejects(
        &with("preferred_lifetime = 10000"),
        "link[0].preferred_lifetime",
        "link[0].valid_lifetime (default)",
    );
    // The default preferred lifetime follows a shorter valid lifetime.
    let c = accepts(&with("valid_lifetime = 600"));
    assert_eq!(
        (c.links[0].preferred_lifetime, c.links[0].valid_lifetime),
        (600, 600)
    );
    let c = accepts(&with(
        "preferred_lifetime = \"infinite\"\nvalid_lifetime = \"infinite\"",
    ));
    assert_eq!(c.links[0].valid_lifetime, INFINITE);
}

#[test]
fn renewal_timers() {
    rejects(
        &with("t1 = 100\nt2 = 50"),
        "link[0].t1",
        "t1 100 s exceeds t2 50 s",
    );
    rejects(
        &with("preferred_lifetime = 1000\nt1 = 500\nt2 = 1001"),
        "link[0].t2",
        "exceeds the preferred lifetime 1000 s",
    );
    rejects(
        &with("t1 = 100"),
        "link[0].t2",
        "link[0].t1 is set, so t2 must be set too",
    );
    rejects(&with("t2 = 100"), "link[0].t1", "so t1 must be set too");
    rejects(&with("t1 = 0\nt2 = 100"), "link[0].t1", "both be 0");
    let c = accepts(&with("t1 = 0\nt2 = 0"));
    assert_eq!((c.links[0].t1, c.links[0].t2), (Some(0), Some(0)));
    let c = accepts(&with("preferred_lifetime = \"infinite\"\nvalid_lifetime = \"infinite\"\nt1 = \"infinite\"\nt2 = \"infinite\""));
    assert_eq!(c.links[0].t2, Some(INFINITE));
}

#[test]
fn preference_and_rapid_commit() {
    rejects(&with("preference = 256"), "link[0].preference", "0 to 255");
    rejects(&with("preference = -1"), "link[0].preference", "0 to 255");
    let c = accepts(&with("preference = 255\nrapid_commit = true"));
    assert_eq!(c.links[0].preference, Some(255));
    assert!(c.links[0].rapid_commit);
}

#[test]
fn defaults_are_inherited_and_named_in_errors() {
    let d = |extra: &str| format!("[defaults]\n{extra}\n{BASE}");
    rejects(&d("preference = 300"), "defaults.preference", "0 to 255");
    rejects(
        &d("t1 = 10\nt2 = 5"),
        "defaults.t1",
        "exceeds t2 5 s set at defaults.t2",
    );
    rejects(
        &d("[defaults.options]\nsol_max_rt = 1"),
        "defaults.options.sol_max_rt",
        "60 to 86400",
    );
    let c = accepts(&format!(
        "{}rapid_commit = false\n",
        d("rapid_commit = true\npreference = 7\nt1 = 100\nt2 = 200")
    ));
    assert_eq!(c.links[0].preference, Some(7));
    assert!(!c.links[0].rapid_commit, "the link's own value wins");
    assert_eq!((c.links[0].t1, c.links[0].t2), (Some(100), Some(200)));
    // A link t1 combined with a defaults t2 is checked as a pair.
    rejects(
        &format!("{}t1 = 300\n", d("t1 = 100\nt2 = 200")),
        "link[0].t1",
        "set at defaults.t2",
    );
}

// --- options -------------------------------------------------------------------------------------

fn opts(extra: &str) -> String {
    with(&format!("[link.options]\n{extra}"))
}

#[test]
fn options() {
    rejects(
        &opts("dns_servers = [\"2001:db8::53\", \"10.0.0.1\"]"),
        "link[0].options.dns_servers[1]",
        "not an IPv6 address",
    );
    rejects(
        &opts("dns_servers = [\"ff02::1\"]"),
        "link[0].options.dns_servers[0]",
        "not a unicast address",
    );
    rejects(
        &opts("dns_servers = [\"2001:db8::53\", \"2001:db8::53\"]"),
        "link[0].options.dns_servers[1]",
        "listed twice",
    );
    let many = (0..17)
        .map(|i| format!("\"2001:db8::{i:x}\""))
        .collect::<Vec<_>>()
        .join(", ");
    rejects(
        &opts(&format!("dns_servers = [{many}]")),
        "link[0].options.dns_servers",
        "at most 16",
    );
    let long_label = "a".repeat(64);
    rejects(
        &opts(&format!("domain_search = [\"{long_label}.example\"]")),
        "link[0].options.domain_search[0]",
        "at most 63",
    );
    let long_name = vec!["a".repeat(63); 4].join(".");
    rejects(
        &opts(&format!(
            "domain_search = [\"ok.example\", \"{long_name}\"]"
        )),
        "link[0].options.domain_search[1]",
        "at most 255",
    );
    rejects(
        &opts("domain_search = [\"bad..example\"]"),
        "link[0].options.domain_search[0]",
        "empty label",
    );
    rejects(
        &opts("domain_search = [\"x y.example\"]"),
        "link[0].options.domain_search[0]",
        "only letters",
    );
    rejects(
        &opts("domain_search = [\"a.example\", \"A.example.\"]"),
        "link[0].options.domain_search[1]",
        "listed twice",
    );
    rejects(
        &opts("information_refresh_time = 599"),
        "link[0].options.information_refresh_time",
        "IRT_MINIMUM",
    );
    rejects(
        &opts("sol_max_rt = 59"),
        "link[0].options.sol_max_rt",
        "60 to 86400",
    );
    rejects(
        &opts("inf_max_rt = \"2d\""),
        "link[0].options.inf_max_rt",
        "60 to 86400",
    );
    let c = accepts(&opts(
        "dns_servers = [\"2001:db8::53\"]\ndomain_search = [\"example.com.\"]\ninformation_refresh_time = \"infinite\"\nsol_max_rt = \"1h\"\ninf_max_rt = 60",
    ));
    let o = &c.links[0].options;
    assert_eq!(o.domain_search, ["example.com"]);
    assert_eq!(o.information_refresh_time, Some(INFINITE));
    assert_eq!((o.sol_max_rt, o.inf_max_rt), (Some(3600), Some(60)));
}

// --- reservations --------------------------------------------------------------------------------

fn resv(body: &str) -> String {
    with(&format!(
        "prefix_pools = [{{ prefix = \"2001:db8:100::/40\", delegated_length = 56 }}]\n[[link.reservation]]\n{body}"
    ))
}

#[test]
fn reservations() {
    rejects(
        &resv("address = \"2001:db8:1::5\""),
        "link[0].reservation[0].duid",
        "required key is missing",
    );
    rejects(
        &resv("duid = \"00:01:0\"\naddress = \"2001:db8:1::5\""),
        "link[0].reservation[0].duid",
        "two hex digits",
    );
    rejects(
        &resv("duid = \"\"\naddress = \"2001:db8:1::5\""),
        "link[0].reservation[0].duid",
        "1 to 130",
    );
    let long = "ab".repeat(131);
    rejects(
        &resv(&format!("duid = \"{long}\"\naddress = \"2001:db8:1::5\"")),
        "link[0].reservation[0].duid",
        "131 bytes",
    );
    rejects(
        &resv("duid = \"0001\""),
        "link[0].reservation[0]",
        "needs an address, a prefix or both",
    );
    rejects(
        &resv("duid = \"0001\"\naddress = \"2001:db8:2::5\""),
        "link[0].reservation[0].address",
        "outside the link subnet",
    );
    rejects(
        &resv("duid = \"0001\"\naddress = \"2001:db8:1::\""),
        "link[0].reservation[0].address",
        "Subnet-Router anycast",
    );
    rejects(
        &resv("duid = \"0001\"\naddress = \"2001:db8:1::5\"\n[[link.reservation]]\nduid = \"00:01\"\naddress = \"2001:db8:1::6\""),
        "link[0].reservation[1].duid",
        "already reserved by link[0].reservation[0]",
    );
    rejects(
        &resv("duid = \"0001\"\naddress = \"2001:db8:1::5\"\n[[link.reservation]]\nduid = \"0002\"\naddress = \"2001:db8:1::5\""),
        "link[0].reservation[1].address",
        "already reserved by link[0].reservation[0]",
    );
    rejects(
        &resv("duid = \"0001\"\nprefix = \"2001:db8:100::1/56\""),
        "link[0].reservation[0].prefix",
        "host bits",
    );
    // Inside a pool but not one of its /56s.
    rejects(
        &resv("duid = \"0001\"\nprefix = \"2001:db8:100::/48\""),
        "link[0].reservation[0].prefix",
        "overlaps pool 2001:db8:100::/40",
    );
    rejects(
        &resv("duid = \"0001\"\nprefix = \"2001:db8:1::/60\""),
        "link[0].reservation[0].prefix",
        "overlaps the subnet",
    );
    rejects(
        &resv("duid = \"0001\"\nprefix = \"2001:db8:200::/56\"\n[[link.reservation]]\nduid = \"0002\"\nprefix = \"2001:db8:200::/48\""),
        "link[0].reservation[1].prefix",
        "overlaps reserved prefix 2001:db8:200::/56 at link[0].reservation[0].prefix",
    );
    // One of the pool's /56s, or outside every pool: both fine.
    let c = accepts(&resv(
        "duid = \"00:01:00:01:aa:bb\"\naddress = \"2001:db8:1::5\"\nprefix = \"2001:db8:1ff:ff00::/56\"\n[[link.reservation]]\nduid = \"0x0002\"\nprefix = \"2001:db8:200::/48\"",
    ));
    assert_eq!(c.links[0].reservations[0].duid, [0, 1, 0, 1, 0xaa, 0xbb]);
    assert_eq!(c.links[0].reservations[1].duid, [0, 2]);
}

#[test]
fn reserved_prefix_in_another_links_pool_is_rejected() {
    let text = format!(
        "{}{LINK_B}[[link.reservation]]\nduid = \"0001\"\nprefix = \"2001:db8:100::/56\"\n",
        with("prefix_pools = [{ prefix = \"2001:db8:100::/40\", delegated_length = 56 }]")
    );
    rejects(
        &text,
        "link[1].reservation[0].prefix",
        "at link[0].prefix_pools[0]",
    );
}

#[test]
fn same_duid_on_two_links_is_allowed() {
    let text = format!(
        "{}{LINK_B}[[link.reservation]]\nduid = \"0001\"\naddress = \"2001:db8:2::5\"\n",
        with("[[link.reservation]]\nduid = \"0001\"\naddress = \"2001:db8:1::5\"")
    );
    accepts(&text);
}

// --- files ---------------------------------------------------------------------------------------

#[test]
fn load_file_reports_path_and_resolves_relative_paths() {
    let missing = Path::new("/nonexistent/xdhcp6.toml");
    let e = load_file(missing).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/xdhcp6.toml"), "{e}");

    let dir = std::env::temp_dir().join(format!("xdhcp6-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        BASE.replace("[server]\n", "[server]\nlease_file = \"state/leases\"\n"),
    )
    .unwrap();
    let c = load_file(&file).unwrap();
    assert_eq!(c.server.lease_file, dir.join("state/leases"));
    assert_eq!(c.server.duid_file, Path::new("/var/lib/xdhcp6/server-duid"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn display_is_one_useful_line() {
    let msg = |t: &str| parse_str(t).unwrap_err().to_string();
    assert_eq!(
        msg("[server\n"),
        "TOML syntax error at line 1, column 8: unclosed table, expected `]`"
    );
    assert_eq!(
        msg("[server]\ninterfaces = [\"eth0\"]\nworkers = \"4\"\n"),
        "server.workers: invalid type: string \"4\", expected an integer (line 3, column 11)"
    );
    assert_eq!(
        msg(&with("address_pools = [{ first = \"2001:db8:1::10\", lst = \"x\" }]")),
        "link[0].address_pools[0].lst: unknown field `lst`, expected `first` or `last` (line 8, column 46)"
    );
    assert_eq!(
        msg(&na("2001:db8:1::10", "2001:db8:2::")),
        "link[0].address_pools[0].last: 2001:db8:2:: is outside the link subnet 2001:db8:1::/64"
    );
}
