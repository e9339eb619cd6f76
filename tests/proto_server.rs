//! Protocol tests of the server core through its public API: RFC 8415 §16 validation, §18.3
//! behaviour, relays, link selection, and the bad-input classes of BRIEF §6 each followed by a
//! normal exchange.

mod common;

use std::net::Ipv6Addr;

use common::*;
use xdhcp6::lease::memory::MemoryStore;
use xdhcp6::lease::{BindingKey, IaType, LeaseStore};
use xdhcp6::proto::{DropReason, ReplyMeta, RxMeta, Server, MAX_RELAY_DEPTH};
use xdhcp6::wire::dhcpv6::{opt, IaAddr, MessageType as M, Repr, Status, INFINITY};

const NOW: u64 = 1_700_000_000;

fn run(s: &Server<MemoryStore>, m: &Msg, meta: RxMeta) -> Result<(ReplyMeta, Vec<u8>), DropReason> {
    let mut out = [0u8; 1500];
    let r = s.handle(m.bytes(), &meta, NOW, &mut out)?;
    Ok((r, out[..r.len].to_vec()))
}

fn addrs(r: &Repr<'_>, i: usize) -> Vec<IaAddr<'static>> {
    // Copy out (options dropped) so tests can hold them past the buffer.
    r.ia_na[i]
        .addresses()
        .map(|a| IaAddr {
            addr: a.addr,
            preferred: a.preferred,
            valid: a.valid,
            options: &[],
        })
        .collect()
}

fn status(r: &Repr<'_>) -> Option<Status> {
    r.status.and_then(|s| s.status())
}

/// Solicit → Advertise → Request → Reply for `duid`; returns the committed address.
fn obtain(s: &Server<MemoryStore>, duid: &[u8], iaid: u32) -> Ipv6Addr {
    let sol = Msg::new(M::Solicit, 1)
        .client(duid)
        .elapsed()
        .ia_na(iaid, &[]);
    let (_, adv) = run(s, &sol, multicast()).unwrap();
    let adv = parse(&adv);
    assert_eq!(adv.msg_type, M::Advertise);
    let a = addrs(&adv, 0)[0].addr;
    let req = Msg::new(M::Request, 2)
        .client(duid)
        .server(SERVER_DUID)
        .ia_na(iaid, &[a]);
    let (_, rep) = run(s, &req, multicast()).unwrap();
    let rep = parse(&rep);
    assert_eq!(rep.msg_type, M::Reply);
    assert_eq!(
        addrs(&rep, 0)[0].addr,
        a,
        "Request commits what Advertise offered"
    );
    a
}

fn normal_exchange_works(s: &Server<MemoryStore>) {
    let a = obtain(s, CLIENT_DUID, 77);
    assert!(config().links[0].subnet.contains(a));
}

#[test]
fn solicit_advertise_request_reply() {
    let s = server();
    let sol = Msg::new(M::Solicit, 0xabcdef)
        .client(CLIENT_DUID)
        .elapsed()
        .ia_na_full(1, 10, 5, &[]) // nonsensical client T1 > T2: ignored
        .oro(&[
            opt::DNS_SERVERS,
            opt::DOMAIN_LIST,
            opt::SOL_MAX_RT,
            opt::INF_MAX_RT,
        ]);
    let (meta, adv) = run(&s, &sol, multicast()).unwrap();
    assert_eq!((meta.dst, meta.dst_port), (ip("fe80::2"), 546));
    let adv = parse(&adv);
    assert_eq!(adv.msg_type, M::Advertise);
    assert_eq!(adv.transaction_id, 0xabcdef);
    assert_eq!(adv.server_id.unwrap().bytes(), SERVER_DUID);
    assert_eq!(adv.client_id.unwrap().bytes(), CLIENT_DUID);
    assert_eq!(adv.preference, Some(7));
    assert!(!adv.rapid_commit);
    assert_eq!(status(&adv), None);
    let ia = adv.ia_na[0];
    assert_eq!(
        (ia.iaid, ia.t1, ia.t2),
        (1, 1800, 2880),
        "0.5 and 0.8 of preferred (§21.4)"
    );
    let a = addrs(&adv, 0);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].preferred, a[0].valid), (3600, 7200));
    assert!(
        config().links[0].address_pools[0].contains(xdhcp6::lease::Resource::address(a[0].addr))
    );
    // ORO-driven options; INF_MAX_RT only goes in replies to Information-request (§21.25).
    let dns: Vec<_> = adv.dns_servers.unwrap().addrs().collect();
    assert_eq!(dns, vec![ip("2001:db8::53"), ip("2001:db8::54")]);
    let names: Vec<String> = adv
        .domain_list
        .unwrap()
        .names()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, vec!["example.com", "corp.example.net"]);
    assert_eq!(adv.sol_max_rt, Some(600));
    assert_eq!(adv.inf_max_rt, None);
    assert_eq!(adv.information_refresh_time, None);
    // The Advertise committed nothing.
    let key = BindingKey {
        duid: CLIENT_DUID,
        iaid: 1,
        ia_type: IaType::Na,
    };
    let pool = &config().links[0].address_pools[0];
    assert_eq!(s.store().lookup(&key, pool, NOW), None);

    let req = Msg::new(M::Request, 0x123)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[a[0].addr]);
    let (_, rep) = run(&s, &req, multicast()).unwrap();
    let rep = parse(&rep);
    assert_eq!(rep.msg_type, M::Reply);
    assert_eq!(rep.transaction_id, 0x123);
    assert_eq!(rep.preference, None, "Preference only in Advertise");
    assert_eq!(addrs(&rep, 0)[0].addr, a[0].addr);
    assert_eq!(
        s.store().lookup(&key, pool, NOW).unwrap().resource.addr,
        a[0].addr
    );
}

#[test]
fn same_client_same_address_and_retransmissions_processed_afresh() {
    let s = server();
    let a = obtain(&s, CLIENT_DUID, 1);
    // A retransmitted Request (same xid) gets the same answer; a new Solicit too.
    assert_eq!(obtain(&s, CLIENT_DUID, 1), a);
    // A second server instance with a fresh store computes the same address (stable hash).
    assert_eq!(obtain(&server(), CLIENT_DUID, 1), a);
    // Another client gets another one.
    assert_ne!(obtain(&s, &[0, 4, 1, 2, 3, 4], 1), a);
}

#[test]
fn rapid_commit() {
    let s = server();
    let sol = Msg::new(M::Solicit, 5)
        .client(CLIENT_DUID)
        .rapid()
        .ia_na(1, &[])
        .ia_pd(2, &[]);
    let (_, rep) = run(&s, &sol, multicast()).unwrap();
    let rep = parse(&rep);
    assert_eq!(rep.msg_type, M::Reply);
    assert!(rep.rapid_commit);
    assert_eq!(rep.preference, None);
    let key = BindingKey {
        duid: CLIENT_DUID,
        iaid: 1,
        ia_type: IaType::Na,
    };
    let l = s
        .store()
        .lookup(&key, &config().links[0].address_pools[0], NOW)
        .unwrap();
    assert_eq!(addrs(&rep, 0)[0].addr, l.resource.addr);
    let p = rep.ia_pd[0].prefixes().next().unwrap();
    assert_eq!(p.prefix_len, 56);

    // Link "other" does not enable Rapid Commit: plain Advertise.
    let mut s2 = server();
    s2.set_interface(9, "eth1");
    let meta = RxMeta {
        ifindex: 9,
        ..multicast()
    };
    let (_, adv) = run(&s2, &sol, meta).unwrap();
    let adv = parse(&adv);
    assert_eq!(adv.msg_type, M::Advertise);
    assert!(!adv.rapid_commit);
}

#[test]
fn server_id_rules_per_type() {
    let s = server();
    let other = &[0, 2, 0, 0, 0, 9, 1][..];
    let cases: Vec<(Msg, DropReason)> = vec![
        (
            Msg::new(M::Solicit, 1).ia_na(1, &[]),
            DropReason::MissingClientId,
        ),
        (
            Msg::new(M::Solicit, 1)
                .client(CLIENT_DUID)
                .server(SERVER_DUID),
            DropReason::UnexpectedServerId,
        ),
        (
            Msg::new(M::Confirm, 1)
                .client(CLIENT_DUID)
                .server(SERVER_DUID),
            DropReason::UnexpectedServerId,
        ),
        (
            Msg::new(M::Rebind, 1)
                .client(CLIENT_DUID)
                .server(SERVER_DUID),
            DropReason::UnexpectedServerId,
        ),
        (
            Msg::new(M::Confirm, 1).ia_na(1, &[ip("2001:db8:1::1")]),
            DropReason::MissingClientId,
        ),
        (
            Msg::new(M::Rebind, 1).ia_na(1, &[]),
            DropReason::MissingClientId,
        ),
        (
            Msg::new(M::InformationRequest, 1).server(other),
            DropReason::NotForUs,
        ),
        (
            Msg::new(M::InformationRequest, 1).ia_na(1, &[]),
            DropReason::IaInInformationRequest,
        ),
        (
            Msg::new(M::InformationRequest, 1).ia_pd(1, &[]),
            DropReason::IaInInformationRequest,
        ),
        (
            Msg::new(M::InformationRequest, 1).ia_ta(1),
            DropReason::IaInInformationRequest,
        ),
    ];
    let mut all = cases;
    for t in [M::Request, M::Renew, M::Release, M::Decline] {
        all.push((
            Msg::new(t, 1).server(SERVER_DUID).ia_na(1, &[]),
            DropReason::MissingClientId,
        ));
        all.push((
            Msg::new(t, 1).client(CLIENT_DUID).ia_na(1, &[]),
            DropReason::MissingServerId,
        ));
        all.push((
            Msg::new(t, 1)
                .client(CLIENT_DUID)
                .server(other)
                .ia_na(1, &[]),
            DropReason::NotForUs,
        ));
    }
    for (m, why) in all {
        assert_eq!(
            run(&s, &m, multicast()).unwrap_err(),
            why,
            "{:?}",
            m.bytes()
        );
        normal_exchange_works(&s);
    }
}

#[test]
fn information_request() {
    let s = server();
    let codes = [
        opt::DNS_SERVERS,
        opt::DNS_SERVERS,
        opt::INFORMATION_REFRESH_TIME,
        opt::INF_MAX_RT,
        opt::SOL_MAX_RT,
    ];
    // No Client ID: the Reply carries none (§16.12); our Server ID is allowed.
    let m = Msg::new(M::InformationRequest, 9)
        .server(SERVER_DUID)
        .oro(&codes);
    let (_, rep) = run(&s, &m, multicast()).unwrap();
    let rep = parse(&rep);
    assert_eq!(rep.msg_type, M::Reply);
    assert_eq!(rep.client_id, None);
    assert_eq!(rep.server_id.unwrap().bytes(), SERVER_DUID);
    assert_eq!(rep.dns_servers.unwrap().addrs().count(), 2);
    assert_eq!(rep.domain_list, None, "not requested");
    assert_eq!(rep.information_refresh_time, Some(3600));
    assert_eq!(rep.inf_max_rt, Some(900));
    assert_eq!(rep.sol_max_rt, Some(600));
    assert!(rep.ia_na.is_empty());
    // A requested option appears once even when the ORO repeats it.
    let (_, raw) = run(&s, &m, multicast()).unwrap();
    let count = xdhcp6::wire::dhcpv6::Options::new(&raw[4..])
        .filter(|o| matches!(o, Ok((opt::DNS_SERVERS, _))))
        .count();
    assert_eq!(count, 1);
    // With a Client ID it is echoed.
    let m = Msg::new(M::InformationRequest, 9).client(CLIENT_DUID);
    let (_, rep) = run(&s, &m, multicast()).unwrap();
    assert_eq!(parse(&rep).client_id.unwrap().bytes(), CLIENT_DUID);
}

#[test]
fn renew_extends_and_unknown_gets_nobinding() {
    let s = server();
    let renew = |iaid: u32, list: &[Ipv6Addr]| {
        Msg::new(M::Renew, 3)
            .client(CLIENT_DUID)
            .server(SERVER_DUID)
            .ia_na(iaid, list)
    };
    // Unknown binding: NoBinding in the IA.
    let (_, rep) = run(&s, &renew(1, &[ip("2001:db8:1::1000")]), multicast()).unwrap();
    let rep = parse(&rep);
    assert_eq!(
        rep.ia_na[0].status().unwrap().status(),
        Some(Status::NoBinding)
    );
    assert!(addrs(&rep, 0).is_empty());

    let a = obtain(&s, CLIENT_DUID, 1);
    // Renew listing the binding, an off-link address and another on-link one.
    let (_, rep) = run(
        &s,
        &renew(1, &[a, ip("2001:db8:9::1"), ip("2001:db8:1::ffff")]),
        multicast(),
    )
    .unwrap();
    let rep = parse(&rep);
    let got = addrs(&rep, 0);
    assert_eq!(got.len(), 3);
    assert_eq!(
        (got[0].addr, got[0].preferred, got[0].valid),
        (a, 3600, 7200)
    );
    assert_eq!(
        (got[1].addr, got[1].preferred, got[1].valid),
        (ip("2001:db8:9::1"), 0, 0)
    );
    assert_eq!((got[2].preferred, got[2].valid), (0, 0));
    assert_eq!((rep.ia_na[0].t1, rep.ia_na[0].t2), (1800, 2880));
    assert_eq!(rep.ia_na[0].status(), None);
    // Renewing without listing the address still returns the binding.
    let (_, rep) = run(&s, &renew(1, &[]), multicast()).unwrap();
    assert_eq!(addrs(&parse(&rep), 0)[0].addr, a);
}

#[test]
fn rebind() {
    let s = server();
    let rebind = |list: &[Ipv6Addr]| Msg::new(M::Rebind, 4).client(CLIENT_DUID).ia_na(1, list);
    // No binding, address off the link: returned with lifetimes 0 (§18.3.5).
    let (_, rep) = run(&s, &rebind(&[ip("2001:db8:5::5")]), multicast()).unwrap();
    let rep = parse(&rep);
    let got = addrs(&rep, 0);
    assert_eq!(
        (got[0].addr, got[0].valid, got[0].preferred),
        (ip("2001:db8:5::5"), 0, 0)
    );
    // No binding, on-link address outside every pool: NoBinding.
    let (_, rep) = run(&s, &rebind(&[ip("2001:db8:1::5")]), multicast()).unwrap();
    assert_eq!(
        parse(&rep).ia_na[0].status().unwrap().status(),
        Some(Status::NoBinding)
    );
    // No binding, free address in a pool of the link: bound again, unchanged (§18.3.5; see
    // rebind_after_lost_bindings_recreates_the_same_lease).
    let (_, rep) = run(&s, &rebind(&[ip("2001:db8:1::1001")]), multicast()).unwrap();
    let got = addrs(&parse(&rep), 0);
    assert_eq!((got[0].addr, got[0].valid), (ip("2001:db8:1::1001"), 7200));
    // With a binding: extended.
    let a = obtain(&s, CLIENT_DUID, 1);
    let (_, rep) = run(&s, &rebind(&[a]), multicast()).unwrap();
    let got = addrs(&parse(&rep), 0);
    assert_eq!((got[0].addr, got[0].valid), (a, 7200));
}

#[test]
fn confirm() {
    let s = server();
    let c = |list: &[Ipv6Addr]| Msg::new(M::Confirm, 4).client(CLIENT_DUID).ia_na(1, list);
    let (_, rep) = run(
        &s,
        &c(&[ip("2001:db8:1::5"), ip("2001:db8:1::6")]),
        multicast(),
    )
    .unwrap();
    let rep = parse(&rep);
    assert_eq!(status(&rep), Some(Status::Success));
    assert!(rep.ia_na.is_empty());
    let (_, rep) = run(
        &s,
        &c(&[ip("2001:db8:1::5"), ip("2001:db8:2::6")]),
        multicast(),
    )
    .unwrap();
    assert_eq!(status(&parse(&rep)), Some(Status::NotOnLink));
    assert_eq!(
        run(&s, &c(&[]), multicast()).unwrap_err(),
        DropReason::ConfirmWithoutAddresses
    );
}

#[test]
fn release_and_decline() {
    let s = server();
    let pool = config().links[0].address_pools[0];
    let key = BindingKey {
        duid: CLIENT_DUID,
        iaid: 1,
        ia_type: IaType::Na,
    };
    let a = obtain(&s, CLIENT_DUID, 1);
    let rel = Msg::new(M::Release, 5)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[a])
        .ia_na(2, &[a]);
    let (_, rep) = run(&s, &rel, multicast()).unwrap();
    let rep = parse(&rep);
    assert_eq!(status(&rep), Some(Status::Success));
    // IA 1 released (not listed); IA 2 never held it: NoBinding.
    assert_eq!(rep.ia_na.len(), 1);
    assert_eq!(rep.ia_na[0].iaid, 2);
    assert_eq!(
        rep.ia_na[0].status().unwrap().status(),
        Some(Status::NoBinding)
    );
    assert_eq!(s.store().lookup(&key, &pool, NOW), None);

    // Decline: the address is quarantined, the client gets another one next time.
    let a = obtain(&s, CLIENT_DUID, 1);
    let dec = Msg::new(M::Decline, 6)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[a]);
    let (_, rep) = run(&s, &dec, multicast()).unwrap();
    let rep = parse(&rep);
    assert_eq!(status(&rep), Some(Status::Success));
    assert!(rep.ia_na.is_empty());
    let b = obtain(&s, CLIENT_DUID, 1);
    assert_ne!(a, b);
    // Declining what one does not hold: NoBinding.
    let (_, rep) = run(&s, &dec, multicast()).unwrap();
    assert_eq!(
        parse(&rep).ia_na[0].status().unwrap().status(),
        Some(Status::NoBinding)
    );
}

#[test]
fn use_multicast_for_unicast_direct_requests() {
    let s = server();
    let unicast = RxMeta {
        dst: ip("2001:db8:1::547"),
        ..multicast()
    };
    for t in [M::Request, M::Renew, M::Release, M::Decline] {
        let m = Msg::new(t, 7)
            .client(CLIENT_DUID)
            .server(SERVER_DUID)
            .ia_na(1, &[ip("2001:db8:1::1000")]);
        let (meta, rep) = run(&s, &m, unicast).unwrap();
        let rep = parse(&rep);
        assert_eq!(rep.msg_type, M::Reply);
        assert_eq!(status(&rep), Some(Status::UseMulticast));
        assert!(rep.ia_na.is_empty(), "no other options");
        assert_eq!(rep.client_id.unwrap().bytes(), CLIENT_DUID);
        assert_eq!(meta.dst, ip("fe80::2"));
    }
    // Still validated first: a foreign Server ID is dropped, not answered.
    let m = Msg::new(M::Request, 7)
        .client(CLIENT_DUID)
        .server(&[0, 9, 9, 9])
        .ia_na(1, &[]);
    assert_eq!(run(&s, &m, unicast).unwrap_err(), DropReason::NotForUs);
    // Solicit, Confirm, Rebind and Information-request sent by unicast are discarded (§16):
    // unicast is only ever allowed for the four types above.
    let sol = Msg::new(M::Solicit, 7).client(CLIENT_DUID).ia_na(1, &[]);
    let conf = Msg::new(M::Confirm, 7)
        .client(CLIENT_DUID)
        .ia_na(1, &[ip("2001:db8:1::1000")]);
    let rebind = Msg::new(M::Rebind, 7)
        .client(CLIENT_DUID)
        .ia_na(1, &[ip("2001:db8:1::1000")]);
    let info = Msg::new(M::InformationRequest, 7).client(CLIENT_DUID);
    for m in [&sol, &conf, &rebind, &info] {
        assert_eq!(
            run(&s, m, unicast).unwrap_err(),
            DropReason::UnicastNotAllowed,
            "{:?}",
            m.bytes()
        );
        // The same message relayed (unicast from the relay) is answered.
        let wrapped = Msg(relay(
            m.bytes(),
            0,
            ip("2001:db8:1::1"),
            ip("fe80::2"),
            None,
        ));
        assert!(run(&s, &wrapped, from_relay()).is_ok());
        // And multicast from the client too.
        assert!(run(&s, m, multicast()).is_ok());
    }
    // ff05::1:3 (All_DHCP_Servers) is multicast as well.
    let site = RxMeta {
        dst: ip("ff05::1:3"),
        ..multicast()
    };
    assert!(run(&s, &sol, site).is_ok());
    let req = Msg::new(M::Request, 7)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[]);
    let wrapped = Msg(relay(
        req.bytes(),
        0,
        ip("2001:db8:1::1"),
        ip("fe80::2"),
        None,
    ));
    let (_, rep) = run(&s, &wrapped, from_relay()).unwrap();
    let (_, inner) = unwrap_relays(&rep);
    assert_eq!(parse(inner).status, None);
}

#[test]
fn ia_ta_is_declined_and_pd_is_served() {
    let s = server();
    let sol = Msg::new(M::Solicit, 1).client(CLIENT_DUID).ia_ta(3);
    let rep = run(&s, &sol, multicast()).unwrap().1;
    let rep = parse(&rep);
    assert_eq!(rep.ia_ta.len(), 1);
    let st = xdhcp6::wire::dhcpv6::sub_options(rep.ia_ta[0].options, opt::STATUS_CODE)
        .next()
        .unwrap();
    assert_eq!(
        u16::from_be_bytes([st[0], st[1]]),
        Status::NoAddrsAvail as u16
    );
    assert_eq!(
        status(&rep),
        Some(Status::NoAddrsAvail),
        "nothing offered at all: top-level too"
    );

    // IA_PD with a length-only hint.
    let sol = Msg::new(M::Solicit, 1)
        .client(CLIENT_DUID)
        .ia_pd(4, &[(Ipv6Addr::UNSPECIFIED, 56)])
        .ia_ta(3);
    let rep = run(&s, &sol, multicast()).unwrap().1;
    let rep = parse(&rep);
    assert_eq!(status(&rep), None, "something was offered");
    let p = rep.ia_pd[0].prefixes().next().unwrap();
    assert_eq!(p.prefix_len, 56);
    assert!(
        config().links[0].prefix_pools[0].contains(xdhcp6::lease::Resource::prefix(p.prefix, 56))
    );
    assert_eq!((rep.ia_pd[0].t1, rep.ia_pd[0].t2), (1800, 2880));
}

#[test]
fn several_ias_get_distinct_resources_and_per_ia_status() {
    let s = server();
    let req = Msg::new(M::Request, 1)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[])
        .ia_na(2, &[])
        .ia_na(3, &[])
        .ia_pd(10, &[])
        .ia_pd(11, &[]);
    let rep = run(&s, &req, multicast()).unwrap().1;
    let rep = parse(&rep);
    assert_eq!(rep.ia_na.len(), 3);
    assert_eq!(rep.ia_pd.len(), 2);
    let mut seen: Vec<Ipv6Addr> = (0..3).map(|i| addrs(&rep, i)[0].addr).collect();
    seen.extend(
        rep.ia_pd
            .iter()
            .map(|ia| ia.prefixes().next().unwrap().prefix),
    );
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    // Link "other" has 16 addresses and no prefix pools: IA 17 and the IA_PD fail per IA.
    let mut s = server();
    s.set_interface(2, "eth1");
    let meta = RxMeta {
        ifindex: 2,
        ..multicast()
    };
    for i in 0..16 {
        let m = Msg::new(M::Request, 1)
            .client(&[0, 4, 0, i])
            .server(SERVER_DUID)
            .ia_na(1, &[]);
        let rep = run(&s, &m, meta).unwrap().1;
        assert_eq!(addrs(&parse(&rep), 0).len(), 1);
    }
    let m = Msg::new(M::Request, 1)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[])
        .ia_pd(2, &[]);
    let rep = run(&s, &m, meta).unwrap().1;
    let rep = parse(&rep);
    assert_eq!(
        rep.ia_na[0].status().unwrap().status(),
        Some(Status::NoAddrsAvail)
    );
    assert_eq!(
        rep.ia_pd[0].status().unwrap().status(),
        Some(Status::NoPrefixAvail)
    );
    assert_eq!((rep.ia_na[0].t1, rep.ia_na[0].t2), (0, 0));
}

/// A Request (transaction id 1) with `n` empty IA_NAs, IAIDs 0 to `n - 1`.
fn request_with_ia_nas(n: u32) -> Msg {
    let mut m = Msg::new(M::Request, 1)
        .client(CLIENT_DUID)
        .server(SERVER_DUID);
    for i in 0..n {
        m = m.ia_na(i, &[]);
    }
    m
}

#[test]
fn many_ias_are_cut_cleanly() {
    let s = server();
    let m = request_with_ia_nas(40);
    // Plenty of room: 16 kept by the parser (the fixed maximum), all answered.
    let rep = run(&s, &m, multicast()).unwrap().1;
    assert_eq!(parse(&rep).ia_na.len(), xdhcp6::wire::dhcpv6::MAX_IAS);
    // Little room: fewer IAs, every one complete, and the message parses.
    for size in [60usize, 100, 200, 300, 450] {
        let mut out = vec![0u8; size];
        let r = s.handle(m.bytes(), &multicast(), NOW, &mut out).unwrap();
        assert!(r.len <= size);
        let rep = parse(&out[..r.len]);
        assert!(rep.ia_na.len() < 16);
        for ia in &rep.ia_na {
            assert_eq!(ia.addresses().count(), 1);
        }
    }
    // Not even room for the header and IDs: dropped, counted.
    let mut out = [0u8; 20];
    assert_eq!(
        s.handle(m.bytes(), &multicast(), NOW, &mut out)
            .unwrap_err(),
        DropReason::BufferTooSmall
    );
    normal_exchange_works(&s);
}

#[test]
fn timers_ignore_client_values_and_follow_config() {
    let s = server();
    for (t1, t2, p, v) in [
        (0, 0, 0, 0),
        (INFINITY, INFINITY, INFINITY, INFINITY),
        (500, 100, 9000, 10),
        (1, 2, 3, 4),
    ] {
        let m = Msg::new(M::Solicit, 1).client(CLIENT_DUID).ia_na_full(
            1,
            t1,
            t2,
            &[(ip("2001:db8:1::1100"), p, v)],
        );
        let rep = run(&s, &m, multicast()).unwrap().1;
        let rep = parse(&rep);
        let ia = rep.ia_na[0];
        assert_eq!((ia.t1, ia.t2), (1800, 2880));
        let a = addrs(&rep, 0)[0];
        assert_eq!(a.addr, ip("2001:db8:1::1100"), "the hint is honoured");
        assert_eq!((a.preferred, a.valid), (3600, 7200));
    }
    // Link "other": configured T1/T2.
    let mut s = server();
    s.set_interface(2, "eth1");
    let m = Msg::new(M::Solicit, 1).client(CLIENT_DUID).ia_na(1, &[]);
    let rep = run(
        &s,
        &m,
        RxMeta {
            ifindex: 2,
            ..multicast()
        },
    )
    .unwrap()
    .1;
    let ia = parse(&rep).ia_na[0];
    assert_eq!((ia.t1, ia.t2), (300, 600));
}

#[test]
fn reservations_win_and_are_never_given_to_others() {
    let s = server();
    let a = obtain(&s, RESERVED_DUID, 1);
    assert_eq!(a, ip("2001:db8:1::1234"));
    let m = Msg::new(M::Solicit, 1).client(RESERVED_DUID).ia_pd(1, &[]);
    let rep = run(&s, &m, multicast()).unwrap().1;
    assert_eq!(
        parse(&rep).ia_pd[0].prefixes().next().unwrap().prefix,
        ip("2001:db8:100:ff00::")
    );
    // Someone else asking for the reserved address gets another.
    let m = Msg::new(M::Request, 1)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[ip("2001:db8:1::1234")]);
    let rep = run(&s, &m, multicast()).unwrap().1;
    assert_ne!(addrs(&parse(&rep), 0)[0].addr, ip("2001:db8:1::1234"));
    // Renew of the reservation extends it.
    let m = Msg::new(M::Renew, 1)
        .client(RESERVED_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[a]);
    let rep = run(&s, &m, multicast()).unwrap().1;
    let got = addrs(&parse(&rep), 0);
    assert_eq!((got[0].addr, got[0].valid), (a, 7200));
}

/// A relay level's hop count, link-address and peer-address.
fn hop(level: &xdhcp6::wire::dhcpv6::RelayRepr<'_>) -> (u8, Ipv6Addr, Ipv6Addr) {
    (level.hop_count, level.link_address, level.peer_address)
}

#[test]
fn relayed_two_levels_with_interface_id_echoed() {
    let s = server();
    let sol = Msg::new(M::Solicit, 0x42).client(CLIENT_DUID).ia_na(1, &[]);
    // Inner relay (closest to the client) has a link-address on "other"; the outer one's
    // link-address is on "lan": the inner one wins (§13.1).
    let inner = relay(
        sol.bytes(),
        0,
        ip("2001:db8:2::1"),
        ip("fe80::2"),
        Some(b"port-1"),
    );
    let outer = relay(
        &inner,
        1,
        ip("2001:db8:1::1"),
        ip("2001:db8:2::1"),
        Some(b"uplink"),
    );
    let (meta, rep) = run(&s, &Msg(outer), from_relay()).unwrap();
    assert_eq!((meta.dst, meta.dst_port), (ip("2001:db8:ffff::1"), 547));
    let (levels, msg) = unwrap_relays(&rep);
    assert_eq!(levels.len(), 2);
    assert_eq!(levels[0].msg_type, M::RelayRepl);
    assert_eq!(
        hop(&levels[0]),
        (1, ip("2001:db8:1::1"), ip("2001:db8:2::1"))
    );
    assert_eq!(levels[0].interface_id, Some(&b"uplink"[..]));
    assert_eq!(hop(&levels[1]), (0, ip("2001:db8:2::1"), ip("fe80::2")));
    assert_eq!(levels[1].interface_id, Some(&b"port-1"[..]));
    let adv = parse(msg);
    assert_eq!(adv.transaction_id, 0x42);
    assert!(config().links[1].subnet.contains(addrs(&adv, 0)[0].addr));
    assert_eq!(rep.len(), 34 + 10 + 4 + 34 + 10 + 4 + msg.len());

    // Lightweight relay (unspecified link-address) inside an outer relay on "lan".
    let inner = relay(
        sol.bytes(),
        0,
        Ipv6Addr::UNSPECIFIED,
        ip("fe80::2"),
        Some(b"x"),
    );
    let outer = relay(&inner, 1, ip("2001:db8:1::1"), ip("fe80::9"), None);
    let (_, rep) = run(&s, &Msg(outer), from_relay()).unwrap();
    let (levels, msg) = unwrap_relays(&rep);
    assert_eq!(levels[0].interface_id, None);
    assert!(config().links[0]
        .subnet
        .contains(addrs(&parse(msg), 0)[0].addr));

    // No link-address anywhere: Interface-ID picks the link.
    let inner = relay(
        sol.bytes(),
        0,
        Ipv6Addr::UNSPECIFIED,
        ip("fe80::2"),
        Some(b"relay-if-2"),
    );
    let (_, rep) = run(&s, &Msg(inner), from_relay()).unwrap();
    let (_, msg) = unwrap_relays(&rep);
    assert!(config().links[1]
        .subnet
        .contains(addrs(&parse(msg), 0)[0].addr));

    // Neither matches: dropped.
    let inner = relay(
        sol.bytes(),
        0,
        ip("2001:db8:77::1"),
        ip("fe80::2"),
        Some(b"nope"),
    );
    assert_eq!(
        run(&s, &Msg(inner), from_relay()).unwrap_err(),
        DropReason::NoLink
    );
}

#[test]
fn relay_depth_limit_and_missing_messages() {
    let s = server();
    let sol = Msg::new(M::Solicit, 1).client(CLIENT_DUID).ia_na(1, &[]);
    let nest = |levels: usize| {
        let mut m = sol.0.clone();
        for h in 0..levels {
            m = relay(&m, h as u8, ip("2001:db8:1::1"), ip("fe80::1"), Some(b"i"));
        }
        Msg(m)
    };
    let (_, rep) = run(&s, &nest(MAX_RELAY_DEPTH), from_relay()).unwrap();
    let (levels, msg) = unwrap_relays(&rep);
    assert_eq!(levels.len(), MAX_RELAY_DEPTH);
    assert_eq!(parse(msg).msg_type, M::Advertise);
    assert_eq!(
        run(&s, &nest(MAX_RELAY_DEPTH + 1), from_relay()).unwrap_err(),
        DropReason::RelayTooDeep
    );
    assert_eq!(
        run(&s, &nest(200), from_relay()).unwrap_err(),
        DropReason::RelayTooDeep
    );
    normal_exchange_works(&s);

    // Relay-forward without a Relay Message, with an empty one, and truncated.
    let mut bare = vec![12u8, 0];
    bare.extend_from_slice(&[0; 32]);
    assert_eq!(
        run(&s, &Msg(bare.clone()), from_relay()).unwrap_err(),
        DropReason::RelayMessageMissing
    );
    let empty = relay(&[], 0, ip("2001:db8:1::1"), ip("fe80::1"), None);
    assert_eq!(
        run(&s, &Msg(empty), from_relay()).unwrap_err(),
        DropReason::RelayMessageMissing
    );
    let mut cut = nest(1).0;
    cut.truncate(cut.len() - 3);
    assert_eq!(
        run(&s, &Msg(cut), from_relay()).unwrap_err(),
        DropReason::Truncated
    );
    assert_eq!(
        run(&s, &Msg(bare[..20].to_vec()), from_relay()).unwrap_err(),
        DropReason::Truncated
    );
    // A Relay-reply, or a relay wrapping an Advertise, is not for a server.
    let mut rr = nest(1).0;
    rr[0] = 13;
    assert_eq!(
        run(&s, &Msg(rr), from_relay()).unwrap_err(),
        DropReason::UnexpectedMessageType
    );
    let adv = Msg::new(M::Advertise, 1).client(CLIENT_DUID);
    let wrapped = relay(adv.bytes(), 0, ip("2001:db8:1::1"), ip("fe80::1"), None);
    assert_eq!(
        run(&s, &Msg(wrapped), from_relay()).unwrap_err(),
        DropReason::UnexpectedMessageType
    );
    normal_exchange_works(&s);
}

#[test]
fn direct_link_selection() {
    let mut s = server();
    s.set_interface(5, "eth1");
    s.set_interface(6, "not-configured");
    let sol = Msg::new(M::Solicit, 1).client(CLIENT_DUID).ia_na(1, &[]);
    let on = |ifindex| {
        let rep = run(
            &s,
            &sol,
            RxMeta {
                ifindex,
                ..multicast()
            },
        )
        .unwrap()
        .1;
        let a = addrs(&parse(&rep), 0)[0].addr;
        a
    };
    assert!(config().links[1].subnet.contains(on(5)));
    assert!(
        config().links[0].subnet.contains(on(6)),
        "unmapped: the one unnamed link"
    );
    assert!(config().links[0].subnet.contains(on(1)));

    // Every link names an interface: an unmapped interface has no link.
    let mut cfg = config();
    cfg.links[0].interface = Some("eth0".into());
    let mut s = Server::new(&cfg, MemoryStore::new(), SERVER_DUID.to_vec());
    assert_eq!(run(&s, &sol, multicast()).unwrap_err(), DropReason::NoLink);
    s.set_interface(1, "eth0");
    assert!(run(&s, &sol, multicast()).is_ok());
}

#[test]
fn bad_input_classes_then_normal_exchange() {
    let s = server();
    let long_duid = vec![0u8; 131];
    let ia_short = Msg::new(M::Solicit, 1)
        .client(CLIENT_DUID)
        .opt(opt::IA_NA, &[0; 11]);
    let iaaddr_short = {
        let mut d = vec![0u8; 12];
        d.extend_from_slice(&[0, 5, 0, 10]);
        d.extend_from_slice(&[0; 10]);
        Msg::new(M::Solicit, 1)
            .client(CLIENT_DUID)
            .opt(opt::IA_NA, &d)
    };
    let mut past_end = Msg::new(M::Solicit, 1).client(CLIENT_DUID).0;
    past_end.extend_from_slice(&[0, 3, 0, 200, 1, 2, 3]);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![], DropReason::Truncated),
        (vec![1], DropReason::Truncated),
        (vec![1, 0, 0], DropReason::Truncated),
        (past_end, DropReason::Truncated),
        (
            Msg::new(M::Solicit, 1).client(CLIENT_DUID).0[..10].to_vec(),
            DropReason::Truncated,
        ),
        (ia_short.0, DropReason::BadOption),
        (iaaddr_short.0, DropReason::BadOption),
        (
            Msg::new(M::Solicit, 1)
                .client(CLIENT_DUID)
                .opt(opt::ELAPSED_TIME, &[1])
                .0,
            DropReason::BadOption,
        ),
        (
            Msg::new(M::Solicit, 1)
                .client(CLIENT_DUID)
                .opt(opt::ORO, &[1])
                .0,
            DropReason::BadOption,
        ),
        (
            Msg::new(M::Solicit, 1).client(&[]).0,
            DropReason::BadClientId,
        ),
        (
            Msg::new(M::Solicit, 1).client(&long_duid).0,
            DropReason::BadClientId,
        ),
        (
            Msg::new(M::Solicit, 1)
                .client(CLIENT_DUID)
                .client(CLIENT_DUID)
                .0,
            DropReason::DuplicateClientId,
        ),
        (
            Msg::new(M::Request, 1).client(CLIENT_DUID).server(&[]).0,
            DropReason::BadServerId,
        ),
        (
            Msg::new(M::Request, 1)
                .client(CLIENT_DUID)
                .server(SERVER_DUID)
                .server(SERVER_DUID)
                .0,
            DropReason::DuplicateServerId,
        ),
        (
            Msg::raw(0, 1).client(CLIENT_DUID).0,
            DropReason::UnknownMessageType,
        ),
        (
            Msg::raw(14, 1).client(CLIENT_DUID).0,
            DropReason::UnknownMessageType,
        ),
        (
            Msg::raw(255, 1).client(CLIENT_DUID).0,
            DropReason::UnknownMessageType,
        ),
        (
            Msg::new(M::Advertise, 1).client(CLIENT_DUID).0,
            DropReason::UnexpectedMessageType,
        ),
        (
            Msg::new(M::Reply, 1).client(CLIENT_DUID).0,
            DropReason::UnexpectedMessageType,
        ),
        (
            Msg::new(M::Reconfigure, 1).client(CLIENT_DUID).0,
            DropReason::UnexpectedMessageType,
        ),
    ];
    for (bytes, why) in cases {
        assert_eq!(
            run(&s, &Msg(bytes.clone()), multicast()).unwrap_err(),
            why,
            "{bytes:?}"
        );
        normal_exchange_works(&s);
    }
    // Unknown options are ignored, not a reason to drop (§16).
    let m = Msg::new(M::Solicit, 1)
        .client(CLIENT_DUID)
        .opt(4242, &[1, 2, 3])
        .ia_na(1, &[]);
    assert!(run(&s, &m, multicast()).is_ok());
}

#[test]
fn drop_reasons_are_indexable() {
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), DropReason::COUNT);
}

// ---------------------------------------------------------------------------------------------
// Review additions: each test below failed before the fix it names.
// ---------------------------------------------------------------------------------------------

fn prefixes(r: &Repr<'_>, i: usize) -> Vec<(Ipv6Addr, u8, u32, u32)> {
    r.ia_pd[i]
        .prefixes()
        .map(|p| (p.prefix, p.prefix_len, p.preferred, p.valid))
        .collect()
}

fn ia_status(opts: &[u8]) -> Option<Status> {
    xdhcp6::wire::dhcpv6::sub_options(opts, opt::STATUS_CODE)
        .next()
        .and_then(|d| Status::from_u16(u16::from_be_bytes([d[0], d[1]])))
}

/// A restart with an empty lease file: the Rebind of a client that still holds an address and
/// a prefix from us gets the SAME address and prefix back (§18.3.5, RFC 7031 lease stability),
/// and the binding is recorded again. A Renew still gets NoBinding (§18.3.4).
#[test]
fn rebind_after_lost_bindings_recreates_the_same_lease() {
    let before = server();
    let a = obtain(&before, CLIENT_DUID, 1);
    let req = Msg::new(M::Request, 3)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_pd(2, &[]);
    let rep = run(&before, &req, multicast()).unwrap().1;
    let (p, plen, _, _) = prefixes(&parse(&rep), 0)[0];

    let after = server(); // empty store
    let renew = Msg::new(M::Renew, 4)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[a]);
    let rep = run(&after, &renew, multicast()).unwrap().1;
    assert_eq!(
        parse(&rep).ia_na[0].status().unwrap().status(),
        Some(Status::NoBinding)
    );

    let rebind = Msg::new(M::Rebind, 5)
        .client(CLIENT_DUID)
        .ia_na(1, &[a])
        .ia_pd(2, &[(p, plen)]);
    let rep = run(&after, &rebind, multicast()).unwrap().1;
    let rep = parse(&rep);
    let got = addrs(&rep, 0);
    assert_eq!(
        (got[0].addr, got[0].preferred, got[0].valid),
        (a, 3600, 7200)
    );
    assert_eq!(rep.ia_na[0].status(), None);
    assert_eq!((rep.ia_na[0].t1, rep.ia_na[0].t2), (1800, 2880));
    assert_eq!(prefixes(&rep, 0)[0], (p, 56, 3600, 7200));
    let key = BindingKey {
        duid: CLIENT_DUID,
        iaid: 1,
        ia_type: IaType::Na,
    };
    let pool = config().links[0].address_pools[0];
    assert_eq!(
        after
            .store()
            .lookup(&key, &pool, NOW)
            .unwrap()
            .resource
            .addr,
        a
    );
    // The binding now exists: a Renew extends it.
    let rep = run(&after, &renew, multicast()).unwrap().1;
    assert_eq!(addrs(&parse(&rep), 0)[0].valid, 7200);

    // Another client rebinding the same address: it is taken, so it gets lifetimes 0.
    let other = [0u8, 4, 9, 9, 9];
    let m = Msg::new(M::Rebind, 6).client(&other).ia_na(1, &[a]);
    let rep = run(&after, &m, multicast()).unwrap().1;
    let got = addrs(&parse(&rep), 0);
    assert_eq!((got[0].addr, got[0].valid), (a, 0));
    // An address reserved for another client is not handed over either.
    let m = Msg::new(M::Rebind, 6)
        .client(&other)
        .ia_na(2, &[ip("2001:db8:1::1234")]);
    let rep = run(&after, &m, multicast()).unwrap().1;
    let rep = parse(&rep);
    assert!(addrs(&rep, 0).iter().all(|x| x.valid == 0));
    // An on-link address outside every pool is not ours to give: NoBinding.
    let m = Msg::new(M::Rebind, 6)
        .client(&other)
        .ia_na(3, &[ip("2001:db8:1::5")]);
    let rep = run(&after, &m, multicast()).unwrap().1;
    assert_eq!(
        parse(&rep).ia_na[0].status().unwrap().status(),
        Some(Status::NoBinding)
    );
    normal_exchange_works(&after);
}

/// More IAs than `MAX_IAS` of one kind: the first `MAX_IAS` are served, the rest are answered
/// with a status instead of being silently left out; Renew, Rebind, Release, Decline and
/// Confirm handle every IA.
#[test]
fn ias_beyond_the_limit_are_answered_not_ignored() {
    let s = server();
    let mut m = request_with_ia_nas(40);
    for i in 0..20 {
        m = m.ia_pd(100 + i, &[]);
    }
    let mut out = vec![0u8; 8192];
    let r = s.handle(m.bytes(), &multicast(), NOW, &mut out).unwrap();
    let raw = &out[..r.len];
    let count = |code| {
        xdhcp6::wire::dhcpv6::Options::new(&raw[4..])
            .filter_map(Result::ok)
            .filter(|(c, _)| *c == code)
            .map(|(_, d)| d.to_vec())
            .collect::<Vec<_>>()
    };
    let nas = count(opt::IA_NA);
    let pds = count(opt::IA_PD);
    assert_eq!(nas.len(), 40, "every IA_NA answered");
    assert_eq!(pds.len(), 20, "every IA_PD answered");
    let limit = xdhcp6::wire::dhcpv6::MAX_IAS;
    for (i, d) in nas.iter().enumerate() {
        let ia = xdhcp6::wire::dhcpv6::IaNa::parse(d).unwrap();
        assert_eq!(ia.iaid, i as u32);
        if i < limit {
            assert_eq!(ia.addresses().count(), 1);
        } else {
            assert_eq!(ia.addresses().count(), 0);
            assert_eq!(ia_status(ia.options), Some(Status::NoAddrsAvail));
        }
    }
    for (i, d) in pds.iter().enumerate() {
        let ia = xdhcp6::wire::dhcpv6::IaPd::parse(d).unwrap();
        if i < limit {
            assert_eq!(ia.prefixes().count(), 1);
        } else {
            assert_eq!(ia_status(ia.options), Some(Status::NoPrefixAvail));
        }
    }

    // Obtain 40 IA_NAs through several Requests, then Renew and Release them in one message.
    let s = server();
    let mut held = Vec::new();
    for chunk in (0u32..40).collect::<Vec<_>>().chunks(10) {
        let mut m = Msg::new(M::Request, 2)
            .client(CLIENT_DUID)
            .server(SERVER_DUID);
        for i in chunk {
            m = m.ia_na(*i, &[]);
        }
        let rep = run(&s, &m, multicast()).unwrap().1;
        let rep = parse(&rep);
        for (k, ia) in rep.ia_na.iter().enumerate() {
            held.push((ia.iaid, addrs(&rep, k)[0].addr));
        }
    }
    assert_eq!(held.len(), 40);
    let mut renew = Msg::new(M::Renew, 3)
        .client(CLIENT_DUID)
        .server(SERVER_DUID);
    let mut release = Msg::new(M::Release, 4)
        .client(CLIENT_DUID)
        .server(SERVER_DUID);
    for (iaid, a) in &held {
        renew = renew.ia_na(*iaid, &[*a]);
        release = release.ia_na(*iaid, &[*a]);
    }
    let mut out = vec![0u8; 8192];
    let r = s
        .handle(renew.bytes(), &multicast(), NOW, &mut out)
        .unwrap();
    let renewed: Vec<_> = xdhcp6::wire::dhcpv6::Options::new(&out[4..r.len])
        .filter_map(Result::ok)
        .filter(|(c, _)| *c == opt::IA_NA)
        .map(|(_, d)| {
            let ia = xdhcp6::wire::dhcpv6::IaNa::parse(d).unwrap();
            let a = ia.addresses().next().unwrap();
            (ia.iaid, a.addr, a.valid)
        })
        .collect();
    assert_eq!(renewed.len(), 40);
    assert!(renewed.iter().all(|x| x.2 == 7200));
    let rep = run(&s, &release, multicast()).unwrap().1;
    let rep = parse(&rep);
    assert_eq!(status(&rep), Some(Status::Success));
    assert!(rep.ia_na.is_empty(), "every IA was ours: no NoBinding");
    let pool = config().links[0].address_pools[0];
    for (iaid, _) in &held {
        let key = BindingKey {
            duid: CLIENT_DUID,
            iaid: *iaid,
            ia_type: IaType::Na,
        };
        assert_eq!(
            s.store().lookup(&key, &pool, NOW),
            None,
            "IA {iaid} released"
        );
    }
    // Confirm looks at every address: an off-link one in IA 30 makes it NotOnLink.
    let mut c = Msg::new(M::Confirm, 5).client(CLIENT_DUID);
    for i in 0..30 {
        c = c.ia_na(i, &[ip("2001:db8:1::1000")]);
    }
    c = c.ia_na(30, &[ip("2001:db8:9::1")]);
    let rep = run(&s, &c, multicast()).unwrap().1;
    assert_eq!(status(&parse(&rep)), Some(Status::NotOnLink));
}

/// However large the caller's buffer, a reply never exceeds what a UDP datagram can carry and
/// every length field stays within 16 bits.
#[test]
fn reply_never_exceeds_a_udp_datagram() {
    let s = server();
    let mut m = Msg::new(M::Request, 1)
        .client(CLIENT_DUID)
        .server(SERVER_DUID);
    let mut i = 0;
    while m.0.len() + 16 <= 65_000 {
        m = m.ia_na(i, &[]);
        i += 1;
    }
    let mut out = vec![0u8; 1 << 18];
    let r = s.handle(m.bytes(), &multicast(), NOW, &mut out).unwrap();
    assert!(r.len <= 65_535 - 8, "{}", r.len);
    assert_eq!(
        parse(&out[..r.len]).ia_na.len(),
        xdhcp6::wire::dhcpv6::MAX_IAS
    );
    // Relayed: the Relay Message length fields fit too.
    let wrapped = relay(m.bytes(), 0, ip("2001:db8:1::1"), ip("fe80::2"), None);
    if let Ok(r) = s.handle(&wrapped, &from_relay(), NOW, &mut out) {
        assert!(r.len <= 65_535 - 8);
        let (levels, inner) = unwrap_relays(&out[..r.len]);
        assert_eq!(levels.len(), 1);
        parse(inner);
    }
}

/// RFC 6221 lightweight relays put :: in link-address and may add no Interface-ID the server
/// knows; when no level names a link, the client is on the link the message arrived on.
#[test]
fn unspecified_link_addresses_fall_back_to_the_receiving_interface() {
    let mut s = server();
    s.set_interface(9, "eth1");
    let sol = Msg::new(M::Solicit, 1).client(CLIENT_DUID).ia_na(1, &[]);
    let inner = relay(
        sol.bytes(),
        0,
        Ipv6Addr::UNSPECIFIED,
        ip("fe80::2"),
        Some(b"unknown-port"),
    );
    let outer = relay(&inner, 1, Ipv6Addr::UNSPECIFIED, ip("fe80::3"), None);
    for m in [inner, outer] {
        let meta = RxMeta {
            src: ip("fe80::77"),
            ifindex: 9,
            ..from_relay()
        };
        let (rm, rep) = run(&s, &Msg(m), meta).unwrap();
        assert_eq!((rm.dst, rm.dst_port), (ip("fe80::77"), 547));
        let (_, msg) = unwrap_relays(&rep);
        assert!(config().links[1]
            .subnet
            .contains(addrs(&parse(msg), 0)[0].addr));
    }
    // The same from a routed, global source by unicast: it says nothing about the link.
    let m = relay(sol.bytes(), 0, Ipv6Addr::UNSPECIFIED, ip("fe80::2"), None);
    let meta = RxMeta {
        ifindex: 9,
        ..from_relay()
    };
    assert_eq!(run(&s, &Msg(m), meta).unwrap_err(), DropReason::NoLink);
    // A relay that does name a link-address we do not serve is not second-guessed.
    let m = relay(sol.bytes(), 0, ip("2001:db8:77::1"), ip("fe80::2"), None);
    let meta = RxMeta {
        ifindex: 9,
        ..from_relay()
    };
    assert_eq!(run(&s, &Msg(m), meta).unwrap_err(), DropReason::NoLink);
}

/// §18.3.2: an address the client asks for that is not appropriate for its link is not
/// granted; the client gets one of ours, and the off-link one back with lifetimes 0 so that
/// it stops using it (as §18.3.4/§18.3.5 do for Renew and Rebind).
#[test]
fn request_for_an_off_link_address() {
    let s = server();
    let off = ip("2001:db8:9::1");
    let m = Msg::new(M::Request, 1)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .ia_na(1, &[off]);
    let rep = run(&s, &m, multicast()).unwrap().1;
    let rep = parse(&rep);
    let got = addrs(&rep, 0);
    assert_eq!(got.len(), 2);
    assert!(
        config().links[0].address_pools[0].contains(xdhcp6::lease::Resource::address(got[0].addr))
    );
    assert_eq!(got[0].valid, 7200);
    assert_eq!((got[1].addr, got[1].preferred, got[1].valid), (off, 0, 0));
    assert_eq!((rep.ia_na[0].t1, rep.ia_na[0].t2), (1800, 2880));
    // Solicit with a hint outside the pools (on-link or not): a pool address, nothing else.
    for hint in [ip("2001:db8:1::5"), off] {
        let m = Msg::new(M::Solicit, 1)
            .client(CLIENT_DUID)
            .ia_na(7, &[hint]);
        let rep = run(&s, &m, multicast()).unwrap().1;
        let got = addrs(&parse(&rep), 0);
        assert_eq!(got.len(), 1);
        assert!(config().links[0].address_pools[0]
            .contains(xdhcp6::lease::Resource::address(got[0].addr)));
    }
}

#[test]
fn prefix_delegation_hints() {
    let s = server();
    let sol = |iaid, hint: (Ipv6Addr, u8)| {
        let m = Msg::new(M::Solicit, 1)
            .client(CLIENT_DUID)
            .ia_pd(iaid, &[hint]);
        let rep = run(&s, &m, multicast()).unwrap().1;
        let got = prefixes(&parse(&rep), 0);
        got
    };
    let pool = config().links[0].prefix_pools[0];
    let in_pool = |p: Ipv6Addr| pool.contains(xdhcp6::lease::Resource::prefix(p, 56));
    // Length-only hint for a length the pool does not delegate: the pool's /56.
    let got = sol(1, (Ipv6Addr::UNSPECIFIED, 60));
    assert_eq!(got.len(), 1);
    assert!(got[0].1 == 56 && in_pool(got[0].0));
    // An exact prefix inside the pool is honoured.
    let want = ip("2001:db8:100:4200::");
    assert_eq!(sol(2, (want, 56))[0].0, want);
    // The right bits with the wrong length, or outside the pool: some /56 of the pool.
    for h in [(want, 60), (ip("2001:db8:900::"), 56), (want, 0)] {
        let got = sol(3, h);
        assert_eq!(got.len(), 1);
        assert!(got[0].1 == 56 && in_pool(got[0].0));
        assert!(got[0].2 <= got[0].3, "preferred ≤ valid");
    }
}

/// §21.4, §21.6, §21.21, §21.22: whatever the configuration, T1 ≤ T2 and preferred ≤ valid in
/// every IA sent; infinite lifetimes give infinite T1/T2.
#[test]
fn timers_and_lifetimes_are_consistent_for_any_configuration() {
    let cases = [
        (INFINITY, INFINITY, None, None, (INFINITY, INFINITY)),
        (INFINITY, INFINITY, Some(1000), None, (1000, 3_435_973_836)),
        (9000, 100, None, None, (50, 80)),
        (3600, 7200, Some(5000), Some(4000), (3600, 3600)),
        (3600, 7200, Some(4000), Some(1000), (1000, 1000)),
        (0, 7200, None, None, (0, 0)),
    ];
    for (pref, valid, t1, t2, want) in cases {
        let mut cfg = config();
        cfg.links[0].preferred_lifetime = pref;
        cfg.links[0].valid_lifetime = valid;
        cfg.links[0].t1 = t1;
        cfg.links[0].t2 = t2;
        let s = Server::new(&cfg, MemoryStore::new(), SERVER_DUID.to_vec());
        let m = Msg::new(M::Solicit, 1)
            .client(CLIENT_DUID)
            .ia_na_full(1, INFINITY, 0, &[(ip("2001:db8:1::1100"), INFINITY, 1)])
            .ia_pd(2, &[]);
        let rep = run(&s, &m, multicast()).unwrap().1;
        let rep = parse(&rep);
        let ia = rep.ia_na[0];
        assert_eq!((ia.t1, ia.t2), want, "{pref} {valid} {t1:?} {t2:?}");
        assert_eq!((rep.ia_pd[0].t1, rep.ia_pd[0].t2), want);
        let a = addrs(&rep, 0)[0];
        assert!(a.preferred <= a.valid);
        assert_eq!(a.valid, valid);
        let p = prefixes(&rep, 0)[0];
        assert!(p.2 <= p.3);
    }
}

#[test]
fn duid_lengths_and_odd_options() {
    let s = server();
    let d130: Vec<u8> = (0..130u8).collect();
    let d131: Vec<u8> = (0..131u8).collect();
    let ok = Msg::new(M::Solicit, 1).client(&d130).ia_na(1, &[]);
    let rep = run(&s, &ok, multicast()).unwrap().1;
    assert_eq!(parse(&rep).client_id.unwrap().bytes(), &d130[..]);
    for bad in [&d131[..], &[0, 1][..], &[0][..]] {
        let m = Msg::new(M::Solicit, 1).client(bad).ia_na(1, &[]);
        assert_eq!(
            run(&s, &m, multicast()).unwrap_err(),
            DropReason::BadClientId
        );
        let m = Msg::new(M::Request, 1)
            .client(CLIENT_DUID)
            .server(bad)
            .ia_na(1, &[]);
        assert_eq!(
            run(&s, &m, multicast()).unwrap_err(),
            DropReason::BadServerId
        );
    }
    // Zero-length options that may be empty, unknown ORO codes, a duplicated ORO, Reconfigure
    // Accept, vendor options from Windows and cable modems: all accepted, none echoed.
    let mut vclass = 311u32.to_be_bytes().to_vec();
    vclass.extend_from_slice(&[0, 8]);
    vclass.extend_from_slice(b"MSFT 5.0");
    let mut vopts = 4491u32.to_be_bytes().to_vec();
    vopts.extend_from_slice(&[0, 1, 0, 2, 0, 32]);
    let m = Msg::new(M::Solicit, 1)
        .client(CLIENT_DUID)
        .oro(&[0xfff0, 0, opt::DNS_SERVERS, opt::DNS_SERVERS])
        .oro(&[opt::DOMAIN_LIST])
        .opt(opt::RECONF_ACCEPT, &[])
        .opt(opt::VENDOR_CLASS, &vclass)
        .opt(opt::VENDOR_OPTS, &vopts)
        .opt(opt::USER_CLASS, &[])
        .opt(0xbeef, &[])
        .ia_na(1, &[]);
    let rep = run(&s, &m, multicast()).unwrap().1;
    let r = parse(&rep);
    assert!(!r.reconfigure_accept, "we never send Reconfigure (§18.3.1)");
    assert_eq!(r.vendor_class, None);
    assert_eq!(r.vendor_opts, None);
    assert_eq!(addrs(&r, 0).len(), 1);
    // The first ORO counts (a second one is a client bug); a repeated code is answered once.
    assert_eq!(r.dns_servers.unwrap().addrs().count(), 2);
    assert_eq!(r.domain_list, None);
    let dns = xdhcp6::wire::dhcpv6::Options::new(&rep[4..])
        .filter(|o| matches!(o, Ok((opt::DNS_SERVERS, _))))
        .count();
    assert_eq!(dns, 1);
    // An empty ORO asks for nothing.
    let m = Msg::new(M::Solicit, 1)
        .client(CLIENT_DUID)
        .opt(opt::ORO, &[])
        .ia_na(1, &[]);
    let rep = run(&s, &m, multicast()).unwrap().1;
    assert_eq!(parse(&rep).dns_servers, None);
}

#[test]
fn relay_header_fields_are_mirrored_and_only_interface_id_is_echoed() {
    let s = server();
    let sol = Msg::new(M::Solicit, 1).client(CLIENT_DUID).ia_na(1, &[]);
    for hop in [0u8, 7, 8, 32, 255] {
        let mut m = vec![MessageType_RELAY_FORW, hop];
        m.extend_from_slice(&ip("2001:db8:1::1").octets());
        m.extend_from_slice(&ip("fe80::2").octets());
        let m = Msg(m)
            .opt(opt::REMOTE_ID, &[0, 0, 0, 9, 1, 2, 3])
            .opt(opt::SUBSCRIBER_ID, b"sub")
            .opt(opt::CLIENT_LINKLAYER_ADDR, &[0, 1, 2, 0, 0, 0, 0, 2])
            .opt(opt::INTERFACE_ID, &[])
            .opt(opt::RELAY_MSG, sol.bytes());
        let (_, rep) = run(&s, &m, from_relay()).unwrap();
        let (levels, _) = unwrap_relays(&rep);
        assert_eq!(levels[0].hop_count, hop);
        assert_eq!(levels[0].interface_id, Some(&[][..]));
        assert_eq!(levels[0].remote_id, None);
        assert_eq!(levels[0].subscriber_id, None);
        assert_eq!(levels[0].client_link_layer_addr, None);
    }
}

#[allow(non_upper_case_globals)]
const MessageType_RELAY_FORW: u8 = 12;
