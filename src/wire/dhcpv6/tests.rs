use super::*;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn opt_bytes(code: u16, data: &[u8]) -> std::vec::Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn msg(t: u8, opts: &[std::vec::Vec<u8>]) -> std::vec::Vec<u8> {
    let mut v = vec![t, 0x12, 0x34, 0x56];
    for o in opts {
        v.extend_from_slice(o);
    }
    v
}

fn parse(buf: &[u8]) -> Result<Repr<'_>, Error> {
    Repr::parse(&Packet::new_checked(buf)?)
}

const CLIENT: &[u8] = &[0, 1, 0, 1, 1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
const SERVER: &[u8] = &[0, 3, 0, 1, 2, 2, 2, 2, 2, 2];

#[test]
fn header_views() {
    let buf = msg(1, &[]);
    let p = Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(p.msg_type(), 1);
    assert_eq!(p.transaction_id(), 0x123456);
    assert!(p.options().is_empty());
    assert_eq!(
        Packet::new_checked(&buf[..3]).unwrap_err(),
        Error::Truncated
    );

    let mut out = [0u8; 4];
    let mut p = Packet::new_checked(&mut out[..]).unwrap();
    p.set_msg_type(7);
    p.set_transaction_id(0xff_abcdef);
    assert_eq!(out, [7, 0xab, 0xcd, 0xef]);
}

#[test]
fn relay_views() {
    let mut buf = [0u8; 34];
    let mut p = RelayPacket::new_checked(&mut buf[..]).unwrap();
    p.set_msg_type(12);
    p.set_hop_count(3);
    p.set_link_address(a("2001:db8::1"));
    p.set_peer_address(a("fe80::2"));
    let p = RelayPacket::new_checked(&buf[..]).unwrap();
    assert_eq!((p.msg_type(), p.hop_count()), (12, 3));
    assert_eq!(p.link_address(), a("2001:db8::1"));
    assert_eq!(p.peer_address(), a("fe80::2"));
    assert_eq!(
        RelayPacket::new_checked(&buf[..33]).unwrap_err(),
        Error::Truncated
    );
}

#[test]
fn option_iterator_stops_at_bad_length() {
    let mut area = opt_bytes(1, &[1, 2, 3]);
    area.extend_from_slice(&[0, 2, 0, 9, 1]); // claims 9 bytes, has 1
    let items: std::vec::Vec<_> = Options::new(&area).collect();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], Ok((1, &[1u8, 2, 3][..])));
    assert_eq!(items[1], Err(Error::Truncated));
    // A dangling partial header is also an error, reported once.
    let items: std::vec::Vec<_> = Options::new(&[0, 1, 0]).collect();
    assert_eq!(items, vec![Err(Error::Truncated)]);
}

#[test]
fn writer_never_overflows_and_is_atomic() {
    let mut buf = [0u8; 10];
    let mut w = OptionWriter::new(&mut buf);
    w.put(1, &[9, 9]).unwrap();
    assert_eq!(w.position(), 6);
    assert_eq!(w.put(2, &[1, 2, 3]), Err(Error::BufferTooSmall));
    assert_eq!(w.position(), 6, "a failed put writes nothing");
    let n = w.begin(3).unwrap();
    assert_eq!(w.put_u32(1), Err(Error::BufferTooSmall));
    w.end(n).unwrap();
    assert_eq!(w.written(), &[0, 1, 0, 2, 9, 9, 0, 3, 0, 0]);
    // Zero-length buffer.
    let mut empty = [0u8; 0];
    let mut w = OptionWriter::new(&mut empty);
    assert!(w.begin(1).is_err());
    assert!(w.put_empty(1).is_err());
}

#[test]
fn nested_lengths_are_patched() {
    let mut buf = [0u8; 64];
    let mut w = OptionWriter::new(&mut buf);
    let outer = w.begin(opt::IA_NA).unwrap();
    w.put_u32(7).unwrap();
    w.put_u32(100).unwrap();
    w.put_u32(200).unwrap();
    let inner = w.begin(opt::STATUS_CODE).unwrap();
    w.put_u16(2).unwrap();
    w.end(inner).unwrap();
    w.end(outer).unwrap();
    let n = w.position();
    let mut it = Options::new(&buf[..n]);
    let (code, data) = it.next().unwrap().unwrap();
    assert_eq!(code, opt::IA_NA);
    let ia = IaNa::parse(data).unwrap();
    assert_eq!((ia.iaid, ia.t1, ia.t2), (7, 100, 200));
    assert_eq!(ia.status().unwrap().status(), Some(Status::NoAddrsAvail));
    assert!(it.next().is_none());
}

#[test]
fn every_message_type_round_trips() {
    for t in MessageType::ALL.into_iter().filter(|t| !t.is_relay()) {
        let mut r = Repr::new(t, 0xabcdef);
        r.client_id = Some(Duid(CLIENT));
        r.server_id = Some(Duid(SERVER));
        r.elapsed_time = Some(100);
        let mut buf = [0u8; 256];
        let n = r.emit(&mut buf).unwrap();
        let back = parse(&buf[..n]).unwrap();
        assert_eq!(back, r, "{t:?}");
    }
}

#[test]
fn relay_types_are_rejected_by_repr_and_client_types_by_relay_repr() {
    let buf = msg(12, &[]);
    assert_eq!(parse(&buf), Err(Error::UnknownMessageType(12)));
    assert_eq!(parse(&msg(0, &[])), Err(Error::UnknownMessageType(0)));
    assert_eq!(parse(&msg(200, &[])), Err(Error::UnknownMessageType(200)));
    let buf = [1u8; 34];
    let p = RelayPacket::new_checked(&buf[..]).unwrap();
    assert_eq!(RelayRepr::parse(&p), Err(Error::UnknownMessageType(1)));
}

#[test]
fn every_option_round_trips() {
    let mut sub = [0u8; 128];
    let mut w = OptionWriter::new(&mut sub);
    IaAddr {
        addr: a("2001:db8::5"),
        preferred: 10,
        valid: 20,
        options: &[],
    }
    .emit(&mut w)
    .unwrap();
    StatusCode::new(Status::Success).emit(&mut w).unwrap();
    let na_sub = w.position();
    let na_opts = sub[..na_sub].to_vec();
    let mut sub = [0u8; 128];
    let mut w = OptionWriter::new(&mut sub);
    IaPrefix {
        preferred: 1,
        valid: 2,
        prefix_len: 56,
        prefix: a("2001:db8:100::"),
        options: &[],
    }
    .emit(&mut w)
    .unwrap();
    let pd_opts = w.written().to_vec();

    let mut domains = [0u8; 64];
    let mut w = OptionWriter::new(&mut domains);
    encode_domain_name("example.com", &mut w).unwrap();
    encode_domain_name("corp.example.", &mut w).unwrap();
    let dl = w.written().to_vec();
    let dns = [a("2001:db8::53").octets(), a("2001:db8::54").octets()].concat();
    let vclass = [&9u32.to_be_bytes()[..], &[0, 3, b'a', b'b', b'c']].concat();

    let mut r = Repr::new(MessageType::Reply, 1);
    r.client_id = Some(Duid(CLIENT));
    r.server_id = Some(Duid(SERVER));
    r.ia_na
        .push(IaNa {
            iaid: 1,
            t1: 5,
            t2: 8,
            options: &na_opts,
        })
        .unwrap();
    r.ia_ta
        .push(IaTa {
            iaid: 2,
            options: &na_opts,
        })
        .unwrap();
    r.ia_pd
        .push(IaPd {
            iaid: 3,
            t1: 0,
            t2: 0,
            options: &pd_opts,
        })
        .unwrap();
    r.oro = Some(Oro(&[0, 23, 0, 24]));
    r.preference = Some(255);
    r.elapsed_time = Some(65535);
    r.status = Some(StatusCode {
        code: 0,
        message: b"ok",
    });
    r.rapid_commit = true;
    r.reconfigure_accept = true;
    r.vendor_class = Some(VendorClass {
        enterprise: 9,
        data: &vclass[4..],
    });
    r.vendor_opts = Some(VendorOpts {
        enterprise: 4491,
        options: &[0, 1, 0, 1, 7],
    });
    r.dns_servers = Some(DnsServers(&dns));
    r.domain_list = Some(DomainList(&dl));
    r.information_refresh_time = Some(86400);
    r.sol_max_rt = Some(3600);
    r.inf_max_rt = Some(7200);
    let mut buf = [0u8; 1024];
    let n = r.emit(&mut buf).unwrap();
    let back = parse(&buf[..n]).unwrap();
    assert_eq!(back, r);

    // Typed accessors see the same values.
    let ia = back.ia_na[0];
    let addrs: std::vec::Vec<_> = ia.addresses().collect();
    assert_eq!(addrs.len(), 1);
    assert_eq!(
        (addrs[0].addr, addrs[0].preferred, addrs[0].valid),
        (a("2001:db8::5"), 10, 20)
    );
    let p: std::vec::Vec<_> = back.ia_pd[0].prefixes().collect();
    assert_eq!((p[0].prefix, p[0].prefix_len), (a("2001:db8:100::"), 56));
    assert_eq!(
        back.oro.unwrap().codes().collect::<std::vec::Vec<_>>(),
        vec![23, 24]
    );
    assert_eq!(
        back.dns_servers
            .unwrap()
            .addrs()
            .collect::<std::vec::Vec<_>>(),
        vec![a("2001:db8::53"), a("2001:db8::54")]
    );
    let names: std::vec::Vec<String> = back
        .domain_list
        .unwrap()
        .names()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, vec!["example.com", "corp.example"]);
    assert_eq!(
        back.vendor_class
            .unwrap()
            .classes()
            .collect::<std::vec::Vec<_>>(),
        vec![b"abc"]
    );

    // Every byte count below the full size fails cleanly.
    for short in 0..n {
        let mut small = vec![0u8; short];
        assert_eq!(r.emit(&mut small), Err(Error::BufferTooSmall));
    }
}

#[test]
fn relay_round_trip() {
    let inner = msg(1, &[opt_bytes(opt::CLIENTID, CLIENT)]);
    let r = RelayRepr {
        msg_type: MessageType::RelayForw,
        hop_count: 1,
        link_address: a("2001:db8:1::1"),
        peer_address: a("fe80::1234"),
        relay_message: Some(&inner),
        interface_id: Some(b"eth0.100"),
        remote_id: Some(RemoteId {
            enterprise: 3561,
            id: b"port-7",
        }),
        subscriber_id: Some(b"sub-1"),
        client_link_layer_addr: Some(ClientLinkLayerAddr {
            hw_type: 1,
            addr: &[2, 0, 0, 0, 0, 1],
        }),
    };
    let mut buf = [0u8; 256];
    let n = r.emit(&mut buf).unwrap();
    let p = RelayPacket::new_checked(&buf[..n]).unwrap();
    assert_eq!(RelayRepr::parse(&p).unwrap(), r);
}

#[test]
fn relay_rejects_duplicate_relay_message_and_short_options() {
    let mut buf = vec![12u8, 0];
    buf.extend_from_slice(&[0; 32]);
    let mut two = buf.clone();
    two.extend(opt_bytes(opt::RELAY_MSG, &[1, 0, 0, 0]));
    two.extend(opt_bytes(opt::RELAY_MSG, &[1, 0, 0, 0]));
    let p = RelayPacket::new_checked(&two[..]).unwrap();
    assert_eq!(RelayRepr::parse(&p), Err(Error::DuplicateRelayMessage));
    let mut short = buf.clone();
    short.extend(opt_bytes(opt::REMOTE_ID, &[0, 0, 1]));
    let p = RelayPacket::new_checked(&short[..]).unwrap();
    assert_eq!(
        RelayRepr::parse(&p),
        Err(Error::BadOptionLength(opt::REMOTE_ID))
    );
    let mut trunc = buf.clone();
    trunc.extend_from_slice(&[0, 9, 0, 100, 1, 2]);
    let p = RelayPacket::new_checked(&trunc[..]).unwrap();
    assert_eq!(RelayRepr::parse(&p), Err(Error::Truncated));
}

#[test]
fn duid_rules() {
    let dup = msg(1, &[opt_bytes(1, CLIENT), opt_bytes(1, CLIENT)]);
    assert_eq!(parse(&dup), Err(Error::DuplicateClientId));
    let dup = msg(3, &[opt_bytes(2, SERVER), opt_bytes(2, SERVER)]);
    assert_eq!(parse(&dup), Err(Error::DuplicateServerId));
    assert_eq!(
        parse(&msg(1, &[opt_bytes(1, &[])])),
        Err(Error::BadClientId)
    );
    assert_eq!(
        parse(&msg(1, &[opt_bytes(1, &[0, 1])])),
        Err(Error::BadClientId)
    );
    assert_eq!(
        parse(&msg(1, &[opt_bytes(1, &[7; 131])])),
        Err(Error::BadClientId)
    );
    assert!(parse(&msg(1, &[opt_bytes(1, &[7; 130])])).is_ok());
    assert!(parse(&msg(1, &[opt_bytes(1, &[7; 3])])).is_ok());
    assert_eq!(
        parse(&msg(3, &[opt_bytes(2, &[])])),
        Err(Error::BadServerId)
    );
    assert_eq!(
        parse(&msg(3, &[opt_bytes(2, &[1; 200])])),
        Err(Error::BadServerId)
    );
}

#[test]
fn short_fixed_fields_are_rejected() {
    let cases: &[(u16, usize)] = &[
        (opt::IA_NA, 11),
        (opt::IA_TA, 3),
        (opt::IA_PD, 11),
        (opt::PREFERENCE, 0),
        (opt::ELAPSED_TIME, 1),
        (opt::STATUS_CODE, 1),
        (opt::VENDOR_CLASS, 3),
        (opt::VENDOR_OPTS, 3),
        (opt::INFORMATION_REFRESH_TIME, 3),
        (opt::SOL_MAX_RT, 2),
        (opt::INF_MAX_RT, 0),
        (opt::ORO, 3),
        (opt::DNS_SERVERS, 15),
    ];
    for &(code, len) in cases {
        let buf = msg(1, &[opt_bytes(code, &vec![0; len])]);
        assert_eq!(
            parse(&buf),
            Err(Error::BadOptionLength(code)),
            "option {code} len {len}"
        );
    }
    // Inside an IA: an IAADDR of 23 bytes, an IAPREFIX of 24.
    let ia = [&[0u8; 12][..], &opt_bytes(opt::IAADDR, &[0; 23])].concat();
    assert_eq!(
        parse(&msg(3, &[opt_bytes(opt::IA_NA, &ia)])),
        Err(Error::BadOptionLength(opt::IAADDR))
    );
    let ia = [&[0u8; 12][..], &opt_bytes(opt::IAPREFIX, &[0; 24])].concat();
    assert_eq!(
        parse(&msg(3, &[opt_bytes(opt::IA_PD, &ia)])),
        Err(Error::BadOptionLength(opt::IAPREFIX))
    );
    // A truncated sub-option inside an IA.
    let ia = [&[0u8; 12][..], &[0, 5, 0, 30, 1]].concat();
    assert_eq!(
        parse(&msg(3, &[opt_bytes(opt::IA_NA, &ia)])),
        Err(Error::Truncated)
    );
}

#[test]
fn unknown_options_are_ignored_and_singletons_keep_the_first() {
    let buf = msg(
        1,
        &[
            opt_bytes(1, CLIENT),
            opt_bytes(999, &[1, 2, 3]),
            opt_bytes(opt::ELAPSED_TIME, &[0, 5]),
            opt_bytes(opt::ELAPSED_TIME, &[0, 6]),
        ],
    );
    let r = parse(&buf).unwrap();
    assert_eq!(r.elapsed_time, Some(5));
    assert_eq!(r.client_id, Some(Duid(CLIENT)));
}

#[test]
fn too_many_ias_sets_the_flag() {
    let ia = opt_bytes(opt::IA_NA, &[0; 12]);
    let opts: std::vec::Vec<_> = (0..MAX_IAS + 3).map(|_| ia.clone()).collect();
    let buf = msg(3, &opts);
    let r = parse(&buf).unwrap();
    assert_eq!(r.ia_na.len(), MAX_IAS);
    assert!(r.ias_truncated);
}

#[test]
fn domain_names() {
    let mut buf = [0u8; 300];
    let mut w = OptionWriter::new(&mut buf);
    assert_eq!(encode_domain_name("a..b", &mut w), Err(Error::BadName));
    assert_eq!(w.position(), 0, "a bad name leaves nothing behind");
    let long = "x".repeat(64);
    assert_eq!(encode_domain_name(&long, &mut w), Err(Error::BadName));
    let label = "a".repeat(63);
    let too_long = [label.as_str(); 4].join(".");
    assert_eq!(encode_domain_name(&too_long, &mut w), Err(Error::BadName));
    encode_domain_name(".", &mut w).unwrap();
    assert_eq!(w.written(), &[0]);
    // Compression pointers and names running off the end are refused.
    assert_eq!(DomainList::parse(&[0xc0, 0x0c]), Err(Error::BadName));
    assert_eq!(
        DomainList::parse(&[3, b'c', b'o', b'm']),
        Err(Error::BadName)
    );
    assert_eq!(DomainList::parse(&[5, b'c']), Err(Error::BadName));
    let l = DomainList::parse(&[1, b'a', 0, 0]).unwrap();
    let names: std::vec::Vec<String> = l.names().map(|n| n.to_string()).collect();
    assert_eq!(names, vec!["a", "."]);
    let odd = [3, b'a', b'.', 0xff, 0];
    let n = DomainList::parse(&odd).unwrap().names().next().unwrap();
    assert_eq!(n.to_string(), "a\\046\\255");
}

#[test]
fn status_and_types() {
    for v in 0..7u16 {
        assert_eq!(Status::from_u16(v).unwrap() as u16, v);
    }
    assert_eq!(Status::from_u16(7), None);
    for t in MessageType::ALL {
        assert_eq!(MessageType::from_u8(t as u8), Some(t));
    }
    assert_eq!(MessageType::from_u8(14), None);
}
