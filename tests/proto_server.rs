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
    // No binding, on-link address: NoBinding.
    let (_, rep) = run(&s, &rebind(&[ip("2001:db8:1::1001")]), multicast()).unwrap();
    assert_eq!(
        parse(&rep).ia_na[0].status().unwrap().status(),
        Some(Status::NoBinding)
    );
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
    // Solicit by unicast is fine; relayed Requests arrive unicast from the relay legitimately.
    let sol = Msg::new(M::Solicit, 7).client(CLIENT_DUID).ia_na(1, &[]);
    assert_eq!(
        parse(&run(&s, &sol, unicast).unwrap().1).msg_type,
        M::Advertise
    );
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

#[test]
fn many_ias_are_cut_cleanly() {
    let s = server();
    let mut m = Msg::new(M::Request, 1)
        .client(CLIENT_DUID)
        .server(SERVER_DUID);
    for i in 0..40 {
        m = m.ia_na(i, &[]);
    }
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
        (
            levels[0].hop_count,
            levels[0].link_address,
            levels[0].peer_address
        ),
        (1, ip("2001:db8:1::1"), ip("2001:db8:2::1"))
    );
    assert_eq!(levels[0].interface_id, Some(&b"uplink"[..]));
    assert_eq!(
        (
            levels[1].hop_count,
            levels[1].link_address,
            levels[1].peer_address
        ),
        (0, ip("2001:db8:2::1"), ip("fe80::2"))
    );
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
