//! Property tests (random Repr → emit → parse is the identity; random or mutated bytes never
//! make the codec or the server panic) and a differential test against the `dhcproto` crate:
//! what we emit it parses to the same fields, what it emits we parse to the same fields.

mod common;

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use common::*;
use dhcproto::v6 as dp;
use dhcproto::{Decodable, Decoder, Encodable, Name};
use proptest::prelude::*;
use xdhcp6::lease::memory::MemoryStore;
use xdhcp6::proto::{RxMeta, Server};
use xdhcp6::wire::dhcpv6::{
    encode_domain_name, opt, DnsServers, DomainList, Duid, IaAddr, IaNa, IaPd, IaPrefix, IaTa,
    MessageType, OptionWriter, Oro, Packet, RelayPacket, RelayRepr, Repr, Status, StatusCode,
    VendorClass, VendorOpts,
};

// ---------------------------------------------------------------------------------------------
// Owned model of a Repr, so proptest can generate it; `with_repr` builds the borrowed Repr.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Owned {
    msg_type: MessageType,
    xid: u32,
    client_id: Option<Vec<u8>>,
    server_id: Option<Vec<u8>>,
    ia_na: Vec<(u32, u32, u32, Vec<u8>)>,
    ia_ta: Vec<(u32, Vec<u8>)>,
    ia_pd: Vec<(u32, u32, u32, Vec<u8>)>,
    oro: Option<Vec<u8>>,
    preference: Option<u8>,
    elapsed: Option<u16>,
    status: Option<(u16, Vec<u8>)>,
    rapid: bool,
    reconf: bool,
    vendor_class: Option<(u32, Vec<u8>)>,
    vendor_opts: Option<(u32, Vec<u8>)>,
    dns: Option<Vec<u8>>,
    domains: Option<Vec<u8>>,
    irt: Option<u32>,
    sol: Option<u32>,
    inf: Option<u32>,
}

fn with_repr<R>(o: &Owned, f: impl FnOnce(&Repr<'_>) -> R) -> R {
    let mut r = Repr::new(o.msg_type, o.xid);
    r.client_id = o.client_id.as_deref().map(Duid);
    r.server_id = o.server_id.as_deref().map(Duid);
    for (iaid, t1, t2, options) in &o.ia_na {
        r.ia_na
            .push(IaNa {
                iaid: *iaid,
                t1: *t1,
                t2: *t2,
                options,
            })
            .unwrap();
    }
    for (iaid, options) in &o.ia_ta {
        r.ia_ta
            .push(IaTa {
                iaid: *iaid,
                options,
            })
            .unwrap();
    }
    for (iaid, t1, t2, options) in &o.ia_pd {
        r.ia_pd
            .push(IaPd {
                iaid: *iaid,
                t1: *t1,
                t2: *t2,
                options,
            })
            .unwrap();
    }
    r.oro = o.oro.as_deref().map(Oro);
    r.preference = o.preference;
    r.elapsed_time = o.elapsed;
    r.status = o.status.as_ref().map(|(code, m)| StatusCode {
        code: *code,
        message: m,
    });
    r.rapid_commit = o.rapid;
    r.reconfigure_accept = o.reconf;
    r.vendor_class = o.vendor_class.as_ref().map(|(e, d)| VendorClass {
        enterprise: *e,
        data: d,
    });
    r.vendor_opts = o.vendor_opts.as_ref().map(|(e, d)| VendorOpts {
        enterprise: *e,
        options: d,
    });
    r.dns_servers = o.dns.as_deref().map(DnsServers);
    r.domain_list = o.domains.as_deref().map(DomainList);
    r.information_refresh_time = o.irt;
    r.sol_max_rt = o.sol;
    r.inf_max_rt = o.inf;
    f(&r)
}

fn addr_opts(list: &[(u128, u32, u32)]) -> Vec<u8> {
    let mut buf = vec![0u8; list.len() * 28];
    let mut w = OptionWriter::new(&mut buf);
    for (a, p, v) in list {
        IaAddr {
            addr: Ipv6Addr::from(*a),
            preferred: *p,
            valid: *v,
            options: &[],
        }
        .emit(&mut w)
        .unwrap();
    }
    buf
}

fn prefix_opts(list: &[(u128, u8, u32, u32)]) -> Vec<u8> {
    let mut buf = vec![0u8; list.len() * 29];
    let mut w = OptionWriter::new(&mut buf);
    for (a, l, p, v) in list {
        IaPrefix {
            preferred: *p,
            valid: *v,
            prefix_len: *l,
            prefix: Ipv6Addr::from(*a),
            options: &[],
        }
        .emit(&mut w)
        .unwrap();
    }
    buf
}

fn domains(names: &[String]) -> Vec<u8> {
    let mut buf = vec![0u8; names.iter().map(|n| n.len() + 2).sum()];
    let mut w = OptionWriter::new(&mut buf);
    for n in names {
        encode_domain_name(n, &mut w).unwrap();
    }
    let n = w.position();
    buf.truncate(n);
    buf
}

fn vclass(items: &[Vec<u8>]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|i| [&(i.len() as u16).to_be_bytes()[..], i].concat())
        .collect()
}

fn duid() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 3..=130)
}

fn client_types() -> impl Strategy<Value = MessageType> {
    prop::sample::select(
        MessageType::ALL
            .iter()
            .copied()
            .filter(|t| !t.is_relay())
            .collect::<Vec<_>>(),
    )
}

prop_compose! {
    fn owned()(
        msg_type in client_types(),
        xid in 0u32..0x100_0000,
        client_id in prop::option::of(duid()),
        server_id in prop::option::of(duid()),
        ia_na in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>(),
            prop::collection::vec((any::<u128>(), any::<u32>(), any::<u32>()), 0..3)), 0..4),
        ia_ta in prop::collection::vec((any::<u32>(),
            prop::collection::vec((any::<u128>(), any::<u32>(), any::<u32>()), 0..2)), 0..2),
        ia_pd in prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>(),
            prop::collection::vec((any::<u128>(), 0u8..=128, any::<u32>(), any::<u32>()), 0..3)), 0..4),
        oro in prop::option::of(prop::collection::vec(any::<u8>(), 0..10).prop_map(|mut v| { v.truncate(v.len() & !1); v })),
        preference in prop::option::of(any::<u8>()),
        elapsed in prop::option::of(any::<u16>()),
        status in prop::option::of((0u16..7, prop::collection::vec(any::<u8>(), 0..20))),
        rapid in any::<bool>(),
        reconf in any::<bool>(),
        vendor_class in prop::option::of((any::<u32>(), prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 0..3))),
        vendor_opts in prop::option::of((any::<u32>(), prop::collection::vec(any::<u8>(), 0..16))),
        dns in prop::option::of(prop::collection::vec(any::<u128>(), 0..4)),
        names in prop::option::of(prop::collection::vec("[a-z0-9]{1,12}(\\.[a-z0-9-]{1,12}){0,3}", 0..4)),
        irt in prop::option::of(any::<u32>()),
        sol in prop::option::of(any::<u32>()),
        inf in prop::option::of(any::<u32>()),
    ) -> Owned {
        Owned {
            msg_type, xid, client_id, server_id,
            ia_na: ia_na.into_iter().map(|(i, a, b, l)| (i, a, b, addr_opts(&l))).collect(),
            ia_ta: ia_ta.into_iter().map(|(i, l)| (i, addr_opts(&l))).collect(),
            ia_pd: ia_pd.into_iter().map(|(i, a, b, l)| (i, a, b, prefix_opts(&l))).collect(),
            oro, preference, elapsed, status, rapid, reconf,
            vendor_class: vendor_class.map(|(e, items)| (e, vclass(&items))),
            vendor_opts,
            dns: dns.map(|l| l.iter().flat_map(|a| a.to_be_bytes()).collect()),
            domains: names.map(|n| domains(&n)),
            irt, sol, inf,
        }
    }
}

fn shared_server() -> &'static Server<MemoryStore> {
    static S: OnceLock<Server<MemoryStore>> = OnceLock::new();
    S.get_or_init(server)
}

fn valid_request() -> Vec<u8> {
    Msg::new(MessageType::Request, 7)
        .client(CLIENT_DUID)
        .server(SERVER_DUID)
        .elapsed()
        .oro(&[23, 24])
        .ia_na(1, &[ip("2001:db8:1::1001")])
        .ia_pd(2, &[(ip("2001:db8:100::"), 56)])
        .0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn repr_round_trips(o in owned()) {
        with_repr(&o, |r| {
            let mut buf = vec![0u8; 4096];
            let n = r.emit(&mut buf).unwrap();
            let back = Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap();
            prop_assert_eq!(&back, r);
            // Emitting into any shorter buffer fails cleanly.
            let mut short = vec![0u8; n.saturating_sub(1)];
            if n > 0 {
                prop_assert!(r.emit(&mut short).is_err());
            }
            Ok(())
        })?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700), first in 0u8..16, out_len in 0usize..1500) {
        let _ = Packet::new_checked(&bytes[..]).and_then(|p| Repr::parse(&p));
        let _ = RelayPacket::new_checked(&bytes[..]).and_then(|p| RelayRepr::parse(&p));
        let mut out = vec![0u8; out_len];
        let s = shared_server();
        let _ = s.handle(&bytes, &multicast(), 1000, &mut out);
        let mut b = bytes.clone();
        if let Some(x) = b.first_mut() { *x = first; }
        if let Ok(r) = s.handle(&b, &multicast(), 1000, &mut out) {
            prop_assert!(r.len <= out_len);
        }
        let _ = s.handle(&relay(&b, 0, ip("2001:db8:1::1"), ip("fe80::1"), Some(b"x")), &from_relay(), 1000, &mut out);
    }

    #[test]
    fn mutated_requests_never_panic_and_replies_parse(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        out_len in 40usize..600,
    ) {
        let mut m = valid_request();
        for (i, v) in edits {
            let i = i.index(m.len());
            m[i] = v;
        }
        let n = cut.index(m.len() + 1);
        m.truncate(n.max(m.len() / 2));
        let mut out = vec![0u8; out_len];
        let meta = RxMeta { ..multicast() };
        if let Ok(r) = shared_server().handle(&m, &meta, 1000, &mut out) {
            // Whatever we send is well-formed.
            let p = Packet::new_checked(&out[..r.len]).unwrap();
            prop_assert!(Repr::parse(&p).is_ok());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Differential tests against dhcproto.
// ---------------------------------------------------------------------------------------------

fn dp_decode(buf: &[u8]) -> dp::Message {
    dp::Message::decode(&mut Decoder::new(buf)).expect("dhcproto parses our output")
}

fn dp_type(t: MessageType) -> dp::MessageType {
    dp::MessageType::from(t as u8)
}

#[test]
fn dhcproto_parses_what_we_emit() {
    let na = addr_opts(&[(u128::from(ip("2001:db8::5")), 100, 200)]);
    let pd = prefix_opts(&[(u128::from(ip("2001:db8:100::")), 56, 300, 400)]);
    let dns: Vec<u8> = [ip("2001:db8::53").octets(), ip("2001:db8::54").octets()].concat();
    let dl = domains(&["example.com".into(), "a.b.c".into()]);
    let vc = vclass(&[b"abc".to_vec(), b"de".to_vec()]);
    for t in MessageType::ALL.into_iter().filter(|t| !t.is_relay()) {
        let o = Owned {
            msg_type: t,
            xid: 0x0a0b0c,
            client_id: Some(CLIENT_DUID.to_vec()),
            server_id: Some(SERVER_DUID.to_vec()),
            ia_na: vec![(1, 10, 20, na.clone())],
            ia_ta: vec![(3, na.clone())],
            ia_pd: vec![(2, 30, 40, pd.clone())],
            oro: Some(vec![0, 23, 0, 24]),
            preference: Some(9),
            elapsed: Some(123),
            status: Some((Status::NoBinding as u16, b"none".to_vec())),
            rapid: true,
            reconf: true,
            vendor_class: Some((4491, vc.clone())),
            vendor_opts: Some((9, vec![0, 1, 0, 2, 7, 7])),
            dns: Some(dns.clone()),
            domains: Some(dl.clone()),
            irt: Some(86400),
            sol: None,
            inf: None,
        };
        let mut buf = vec![0u8; 2048];
        let n = with_repr(&o, |r| r.emit(&mut buf).unwrap());
        let m = dp_decode(&buf[..n]);
        assert_eq!(m.msg_type(), dp_type(t));
        assert_eq!(m.xid_num(), 0x0a0b0c);
        let opts = m.opts();
        let get = |c: dp::OptionCode| opts.get(c).cloned();
        assert_eq!(
            get(dp::OptionCode::ClientId),
            Some(dp::DhcpOption::ClientId(CLIENT_DUID.to_vec()))
        );
        assert_eq!(
            get(dp::OptionCode::ServerId),
            Some(dp::DhcpOption::ServerId(SERVER_DUID.to_vec()))
        );
        match get(dp::OptionCode::IANA) {
            Some(dp::DhcpOption::IANA(ia)) => {
                assert_eq!((ia.id, ia.t1, ia.t2), (1, 10, 20));
                match ia.opts.get(dp::OptionCode::IAAddr) {
                    Some(dp::DhcpOption::IAAddr(a)) => {
                        assert_eq!(
                            (a.addr, a.preferred_life, a.valid_life),
                            (ip("2001:db8::5"), 100, 200)
                        )
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        match get(dp::OptionCode::IATA) {
            Some(dp::DhcpOption::IATA(ia)) => assert_eq!(ia.id, 3),
            other => panic!("{other:?}"),
        }
        match get(dp::OptionCode::IAPD) {
            Some(dp::DhcpOption::IAPD(ia)) => {
                assert_eq!((ia.id, ia.t1, ia.t2), (2, 30, 40));
                match ia.opts.get(dp::OptionCode::IAPrefix) {
                    Some(dp::DhcpOption::IAPrefix(p)) => assert_eq!(
                        (
                            p.prefix_ip,
                            p.prefix_len,
                            p.preferred_lifetime,
                            p.valid_lifetime
                        ),
                        (ip("2001:db8:100::"), 56, 300, 400)
                    ),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        match get(dp::OptionCode::ORO) {
            Some(dp::DhcpOption::ORO(o)) => assert_eq!(
                o.opts,
                vec![
                    dp::OptionCode::DomainNameServers,
                    dp::OptionCode::DomainSearchList
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            get(dp::OptionCode::Preference),
            Some(dp::DhcpOption::Preference(9))
        );
        assert_eq!(
            get(dp::OptionCode::ElapsedTime),
            Some(dp::DhcpOption::ElapsedTime(123))
        );
        match get(dp::OptionCode::StatusCode) {
            Some(dp::DhcpOption::StatusCode(s)) => {
                assert_eq!(s.status, dp::Status::NoBinding);
                assert_eq!(s.msg, "none");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            get(dp::OptionCode::RapidCommit),
            Some(dp::DhcpOption::RapidCommit)
        );
        assert_eq!(
            get(dp::OptionCode::ReconfAccept),
            Some(dp::DhcpOption::ReconfAccept)
        );
        match get(dp::OptionCode::VendorClass) {
            Some(dp::DhcpOption::VendorClass(v)) => {
                assert_eq!(v.num, 4491);
                assert_eq!(v.data, vec![b"abc".to_vec(), b"de".to_vec()]);
            }
            other => panic!("{other:?}"),
        }
        match get(dp::OptionCode::VendorOpts) {
            Some(dp::DhcpOption::VendorOpts(v)) => assert_eq!(v.num, 9),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            get(dp::OptionCode::DomainNameServers),
            Some(dp::DhcpOption::DomainNameServers(vec![
                ip("2001:db8::53"),
                ip("2001:db8::54")
            ]))
        );
        match get(dp::OptionCode::DomainSearchList) {
            Some(dp::DhcpOption::DomainSearchList(names)) => {
                let got: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                assert_eq!(got, vec!["example.com.", "a.b.c."]);
            }
            other => panic!("{other:?}"),
        }
        // dhcproto 0.15 has no decoder for option 32 and returns it raw.
        match get(dp::OptionCode::InformationRefreshTime) {
            Some(dp::DhcpOption::Unknown(u)) => assert_eq!(u.data(), &86400u32.to_be_bytes()),
            Some(dp::DhcpOption::InformationRefreshTime(v)) => assert_eq!(v, 86400),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn we_parse_what_dhcproto_emits() {
    for t in MessageType::ALL.into_iter().filter(|t| !t.is_relay()) {
        let mut m = dp::Message::new_with_id(dp_type(t), [0x01, 0x02, 0x03]);
        let o = m.opts_mut();
        o.insert(dp::DhcpOption::ClientId(CLIENT_DUID.to_vec()));
        o.insert(dp::DhcpOption::ServerId(SERVER_DUID.to_vec()));
        let mut na_opts = dp::DhcpOptions::new();
        na_opts.insert(dp::DhcpOption::IAAddr(dp::IAAddr {
            addr: ip("2001:db8::77"),
            preferred_life: 11,
            valid_life: 22,
            opts: dp::DhcpOptions::new(),
        }));
        o.insert(dp::DhcpOption::IANA(dp::IANA {
            id: 5,
            t1: 1,
            t2: 2,
            opts: na_opts,
        }));
        let mut pd_opts = dp::DhcpOptions::new();
        pd_opts.insert(dp::DhcpOption::IAPrefix(dp::IAPrefix {
            preferred_lifetime: 33,
            valid_lifetime: 44,
            prefix_len: 60,
            prefix_ip: ip("2001:db8:200::"),
            opts: dp::DhcpOptions::new(),
        }));
        o.insert(dp::DhcpOption::IAPD(dp::IAPD {
            id: 6,
            t1: 3,
            t2: 4,
            opts: pd_opts,
        }));
        o.insert(dp::DhcpOption::IATA(dp::IATA {
            id: 8,
            opts: dp::DhcpOptions::new(),
        }));
        o.insert(dp::DhcpOption::ORO(dp::ORO {
            opts: vec![dp::OptionCode::DomainNameServers, dp::OptionCode::SolMaxRt],
        }));
        o.insert(dp::DhcpOption::Preference(200));
        o.insert(dp::DhcpOption::ElapsedTime(42));
        o.insert(dp::DhcpOption::StatusCode(dp::StatusCode {
            status: dp::Status::NotOnLink,
            msg: "x".into(),
        }));
        o.insert(dp::DhcpOption::RapidCommit);
        o.insert(dp::DhcpOption::ReconfAccept);
        o.insert(dp::DhcpOption::DomainNameServers(vec![ip("2001:db8::1")]));
        o.insert(dp::DhcpOption::DomainSearchList(vec![Name::from_ascii(
            "example.org.",
        )
        .unwrap()]));
        o.insert(dp::DhcpOption::InformationRefreshTime(77));
        let bytes = m.to_vec().unwrap();

        let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(r.msg_type, t);
        assert_eq!(r.transaction_id, 0x010203);
        assert_eq!(r.client_id.unwrap().bytes(), CLIENT_DUID);
        assert_eq!(r.server_id.unwrap().bytes(), SERVER_DUID);
        let ia = r.ia_na[0];
        assert_eq!((ia.iaid, ia.t1, ia.t2), (5, 1, 2));
        let a = ia.addresses().next().unwrap();
        assert_eq!((a.addr, a.preferred, a.valid), (ip("2001:db8::77"), 11, 22));
        let pd = r.ia_pd[0];
        assert_eq!((pd.iaid, pd.t1, pd.t2), (6, 3, 4));
        let p = pd.prefixes().next().unwrap();
        assert_eq!(
            (p.prefix, p.prefix_len, p.preferred, p.valid),
            (ip("2001:db8:200::"), 60, 33, 44)
        );
        assert_eq!(r.ia_ta[0].iaid, 8);
        assert_eq!(
            r.oro.unwrap().codes().collect::<Vec<_>>(),
            vec![opt::DNS_SERVERS, opt::SOL_MAX_RT]
        );
        assert_eq!(r.preference, Some(200));
        assert_eq!(r.elapsed_time, Some(42));
        assert_eq!(r.status.unwrap().status(), Some(Status::NotOnLink));
        assert_eq!(r.status.unwrap().message, b"x");
        assert!(r.rapid_commit && r.reconfigure_accept);
        assert_eq!(
            r.dns_servers.unwrap().addrs().collect::<Vec<_>>(),
            vec![ip("2001:db8::1")]
        );
        let names: Vec<String> = r
            .domain_list
            .unwrap()
            .names()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec!["example.org"]);
        assert_eq!(r.information_refresh_time, Some(77));
    }
}

#[test]
fn dhcproto_vendor_class_encoding_is_rejected_not_misread() {
    // dhcproto 0.15 writes the Vendor Class option length as 4 + the number of class items
    // instead of their byte length, so its output is malformed; we must refuse it rather
    // than read past the option.
    let mut m = dp::Message::new_with_id(dp::MessageType::Solicit, [0, 0, 1]);
    m.opts_mut()
        .insert(dp::DhcpOption::ClientId(CLIENT_DUID.to_vec()));
    m.opts_mut()
        .insert(dp::DhcpOption::VendorClass(dp::VendorClass {
            num: 311,
            data: vec![b"MSFT".to_vec()],
        }));
    let bytes = m.to_vec().unwrap();
    let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap());
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn dhcproto_parses_server_replies() {
    let s = server();
    let sol = Msg::new(MessageType::Solicit, 0x55)
        .client(CLIENT_DUID)
        .oro(&[23, 24])
        .ia_na(1, &[])
        .ia_pd(2, &[]);
    let mut out = [0u8; 1500];
    let r = s.handle(sol.bytes(), &multicast(), 10, &mut out).unwrap();
    let ours = Repr::parse(&Packet::new_checked(&out[..r.len]).unwrap()).unwrap();
    let theirs = dp_decode(&out[..r.len]);
    assert_eq!(theirs.msg_type(), dp::MessageType::Advertise);
    assert_eq!(theirs.xid_num(), 0x55);
    let Some(dp::DhcpOption::IANA(ia)) = theirs.opts().get(dp::OptionCode::IANA) else {
        panic!()
    };
    assert_eq!((ia.t1, ia.t2), (ours.ia_na[0].t1, ours.ia_na[0].t2));
    let Some(dp::DhcpOption::IAAddr(a)) = ia.opts.get(dp::OptionCode::IAAddr) else {
        panic!()
    };
    assert_eq!(a.addr, ours.ia_na[0].addresses().next().unwrap().addr);
    let Some(dp::DhcpOption::IAPD(pd)) = theirs.opts().get(dp::OptionCode::IAPD) else {
        panic!()
    };
    let Some(dp::DhcpOption::IAPrefix(p)) = pd.opts.get(dp::OptionCode::IAPrefix) else {
        panic!()
    };
    assert_eq!(p.prefix_ip, ours.ia_pd[0].prefixes().next().unwrap().prefix);
    assert_eq!(
        theirs.opts().get(dp::OptionCode::Preference),
        Some(&dp::DhcpOption::Preference(7))
    );

    // A relayed reply: dhcproto reads our Relay-reply header and Interface-ID.
    let wrapped = relay(
        sol.bytes(),
        3,
        ip("2001:db8:1::1"),
        ip("fe80::9"),
        Some(b"ge-0/0/1"),
    );
    let mut out = [0u8; 1500];
    let r = s.handle(&wrapped, &from_relay(), 10, &mut out).unwrap();
    let rm = dp::RelayMessage::decode(&mut Decoder::new(&out[..r.len])).unwrap();
    assert_eq!(rm.msg_type(), dp::MessageType::RelayRepl);
    assert_eq!(
        (rm.hop_count(), rm.link_addr(), rm.peer_addr()),
        (3, ip("2001:db8:1::1"), ip("fe80::9"))
    );
    assert_eq!(
        rm.opts().get(dp::OptionCode::InterfaceId),
        Some(&dp::DhcpOption::InterfaceId(b"ge-0/0/1".to_vec()))
    );
    let (_, inner) = unwrap_relays(&out[..r.len]);
    assert_eq!(dp_decode(inner).xid_num(), 0x55);
}
