//! Tests of the zero-copy frame codec (`xdhcp6::wire::frame`): known answers, extension
//! header chains, every truncation, error classes, and property tests (random bytes never
//! panic; parse(build(x)) == x; built checksums verify; replies round-trip).

use std::net::Ipv6Addr;

use proptest::prelude::*;
use xdhcp6::wire::frame::*;

const CLIENT_MAC: MacAddr = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
const SERVER_MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const ALL_DHCP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

fn client_ll() -> Ipv6Addr {
    "fe80::211:22ff:fe33:4455".parse().unwrap()
}

fn server_ll() -> Ipv6Addr {
    "fe80::1".parse().unwrap()
}

/// A 45-byte Solicit-like payload (odd length on purpose).
fn solicit_payload() -> Vec<u8> {
    let mut p = vec![1, 0x12, 0x34, 0x56];
    p.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
    p.extend_from_slice(&[0, 8, 0, 2, 0, 0]);
    p.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&[0, 7, 0, 1, 0xff]);
    p
}

fn solicit_params(vlans: &[VlanTag]) -> Udp6Params {
    Udp6Params {
        dst_mac: ipv6_multicast_mac(&ALL_DHCP),
        src_mac: CLIENT_MAC,
        vlans: VlanTags::from_slice(vlans).unwrap(),
        src_ip: client_ll(),
        dst_ip: ALL_DHCP,
        hop_limit: 1,
        src_port: 546,
        dst_port: 547,
    }
}

fn build(params: &Udp6Params, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let len = build_udp6_frame(&mut buf, params, payload).unwrap();
    buf.truncate(len);
    buf
}

/// Splices an extension header chain between the fixed IPv6 header and UDP. Each entry is
/// (kind, total length in bytes); a fragment header is atomic unless `frag_word` says
/// otherwise. The UDP checksum stays valid: the pseudo-header counts the UDP length only.
fn with_ext(frame: &[u8], ip_offset: usize, chain: &[(u8, usize)], frag_word: u16) -> Vec<u8> {
    let fixed_end = ip_offset + IPV6_HEADER_LEN;
    let mut out = frame[..fixed_end].to_vec();
    let first = chain.first().map_or(17, |c| c.0);
    let old_next = out[ip_offset + 6];
    assert_eq!(old_next, 17);
    out[ip_offset + 6] = first;
    let mut added = 0;
    for (i, &(kind, len)) in chain.iter().enumerate() {
        let next = chain.get(i + 1).map_or(17, |c| c.0);
        let mut h = vec![0u8; len];
        h[0] = next;
        if kind == 44 {
            assert_eq!(len, 8);
            h[2..4].copy_from_slice(&frag_word.to_be_bytes());
            h[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        } else {
            assert!(len >= 8 && len % 8 == 0);
            h[1] = (len / 8 - 1) as u8;
            if kind == 43 {
                h[2] = 4; // routing type (SRH); segments left stays 0
            } else {
                // PadN option filling the header (RFC 8200 §4.2).
                h[2] = 1;
                h[3] = (len - 4) as u8;
            }
        }
        out.extend_from_slice(&h);
        added += len;
    }
    out.extend_from_slice(&frame[fixed_end..]);
    let plen = u16::from_be_bytes([out[ip_offset + 4], out[ip_offset + 5]]) + added as u16;
    out[ip_offset + 4..ip_offset + 6].copy_from_slice(&plen.to_be_bytes());
    out
}

/// The naive RFC 1071 reference: 16-bit words, odd byte padded, carries folded.
fn naive_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    !(sum as u16)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn rfc1071_example() {
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    let mut c = Checksum::new();
    c.add_bytes(&data);
    assert_eq!(c.fold(), 0xddf2);
    assert_eq!(internet_checksum(&data), 0x220d);
}

#[test]
fn checksum_matches_reference_at_every_length_and_split() {
    let data: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(151) ^ 0xa5) as u8)
        .collect();
    for len in 0..data.len() {
        assert_eq!(
            internet_checksum(&data[..len]),
            naive_checksum(&data[..len]),
            "len {len}"
        );
    }
    // Summing in pieces that start at even offsets gives the same result.
    let mut c = Checksum::new();
    c.add_bytes(&data[..40]);
    c.add_bytes(&data[40..122]);
    c.add_bytes(&data[122..199]);
    assert_eq!(c.finish(), naive_checksum(&data[..199]));
    // All-ones words exercise the end-around carry.
    let ones = [0xffu8; 4096];
    assert_eq!(internet_checksum(&ones), naive_checksum(&ones));
}

#[test]
fn known_answer_frame() {
    // Computed independently (Python, 16-bit word sum) for a Solicit on VLAN 100.
    let expected = hex(
        "3333000100020011223344558100006486dd6000000000351101fe80000000000000021122fffe334455\
         ff020000000000000000000000010002022202230035faeb011234560001000a000300010011223344\
         550008000200000003000c00000001000000000000000000070001ff",
    );
    let frame = build(
        &solicit_params(&[VlanTag::new(TPID_8021Q, 100)]),
        &solicit_payload(),
    );
    assert_eq!(frame, expected);

    let f = parse_udp6(&frame).unwrap();
    assert_eq!(f.udp_checksum, 0xfaeb);
    assert_eq!(f.dst_mac, [0x33, 0x33, 0, 1, 0, 2]);
    assert_eq!(f.src_mac, CLIENT_MAC);
    assert_eq!(f.vlans.as_slice(), &[VlanTag::new(TPID_8021Q, 100)]);
    assert_eq!(f.vlans.as_slice()[0].vid(), 100);
    assert_eq!((f.ip_offset, f.udp_offset, f.payload_offset), (18, 58, 66));
    assert_eq!(f.payload_len, 45);
    assert_eq!(f.payload(&frame).unwrap(), &solicit_payload()[..]);
    assert_eq!((f.src_port, f.dst_port, f.hop_limit), (546, 547, 1));
    assert_eq!((f.src_ip, f.dst_ip), (client_ll(), ALL_DHCP));
    assert_eq!(f.ext_headers, 0);
    assert_eq!(verify_udp6_checksum(&frame, &f), Ok(()));
}

#[test]
fn multicast_mac() {
    assert_eq!(ipv6_multicast_mac(&ALL_DHCP), [0x33, 0x33, 0, 1, 0, 2]);
    let all_servers: Ipv6Addr = "ff05::1:3".parse().unwrap();
    assert_eq!(ipv6_multicast_mac(&all_servers), [0x33, 0x33, 0, 1, 0, 3]);
}

#[test]
fn extension_header_chain() {
    let tags = [VlanTag::new(TPID_8021AD, 7), VlanTag::new(TPID_8021Q, 4094)];
    let base = build(&solicit_params(&tags), &solicit_payload());
    let ip = 22;
    // Hop-by-hop, destination options, routing (segments left 0), atomic fragment,
    // destination options: 8 + 16 + 24 + 8 + 8 = 64 bytes.
    let chain = [(0, 8), (60, 16), (43, 24), (44, 8), (60, 8)];
    let frame = with_ext(&base, ip, &chain, 0);
    let f = parse_udp6(&frame).unwrap();
    assert_eq!(f.ext_headers, 5);
    assert_eq!(f.udp_offset, ip + 40 + 64);
    assert_eq!(f.payload(&frame).unwrap(), &solicit_payload()[..]);
    assert_eq!(f.vlans.as_slice(), &tags);
    assert_eq!(verify_udp6_checksum(&frame, &f), Ok(()));

    // The same values as without the chain, apart from the offsets.
    let plain = parse_udp6(&base).unwrap();
    assert_eq!(
        UdpFrame {
            ext_headers: 5,
            udp_offset: f.udp_offset,
            payload_offset: f.payload_offset,
            ..plain
        },
        f
    );
}

#[test]
fn extension_header_errors() {
    let base = build(&solicit_params(&[]), &solicit_payload());
    let ip = 14;
    let parse = |chain: &[(u8, usize)], frag: u16| parse_udp6(&with_ext(&base, ip, chain, frag));

    // Non-atomic fragments: a later one (offset 1) and a first one (M set).
    assert_eq!(parse(&[(44, 8)], 1 << 3), Err(FrameError::Fragment));
    assert_eq!(parse(&[(44, 8)], 1), Err(FrameError::Fragment));
    assert_eq!(
        parse(&[(0, 8), (44, 8)], 0x1230 | 1),
        Err(FrameError::Fragment)
    );
    assert!(parse(&[(44, 8)], 0).is_ok());

    // The walk is bounded.
    let max = vec![(60u8, 8usize); MAX_EXT_HEADERS];
    assert_eq!(
        parse(&max, 0).unwrap().ext_headers as usize,
        MAX_EXT_HEADERS
    );
    let over = vec![(60u8, 8usize); MAX_EXT_HEADERS + 1];
    assert_eq!(parse(&over, 0), Err(FrameError::ExtChainTooLong));

    // Hop-by-hop only first (RFC 8200 §4.1).
    assert_eq!(parse(&[(60, 8), (0, 8)], 0), Err(FrameError::BadExtHeader));

    // Routing header with segments left: we are not the final destination.
    let mut routed = with_ext(&base, ip, &[(43, 24)], 0);
    routed[ip + 40 + 3] = 1;
    assert_eq!(parse_udp6(&routed), Err(FrameError::BadExtHeader));

    // An extension header longer than the IPv6 payload.
    let mut long = with_ext(&base, ip, &[(60, 8)], 0);
    long[ip + 40 + 1] = 200;
    assert_eq!(parse_udp6(&long), Err(FrameError::Truncated));

    // Upper layers other than UDP, after a chain and directly.
    let mut esp = with_ext(&base, ip, &[(60, 8)], 0);
    esp[ip + 40] = 50;
    assert_eq!(parse_udp6(&esp), Err(FrameError::NotUdp));
    for nh in [6u8, 58, 59] {
        let mut f = base.clone();
        f[ip + 6] = nh;
        assert_eq!(parse_udp6(&f), Err(FrameError::NotUdp), "next header {nh}");
    }
}

#[test]
fn error_classes() {
    let base = build(&solicit_params(&[]), &solicit_payload());
    let ip = 14;

    let mut v4 = base.clone();
    v4[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    assert_eq!(parse_udp6(&v4), Err(FrameError::NotIpv6));
    let mut version = base.clone();
    version[ip] = 0x40;
    assert_eq!(parse_udp6(&version), Err(FrameError::NotIpv6));

    // Three tags: build two, then splice a third in front.
    let two = build(
        &solicit_params(&[VlanTag::new(TPID_8021AD, 1), VlanTag::new(TPID_8021Q, 2)]),
        &solicit_payload(),
    );
    let mut three = two[..12].to_vec();
    three.extend_from_slice(&[0x81, 0x00, 0x00, 0x03]);
    three.extend_from_slice(&two[12..]);
    assert_eq!(parse_udp6(&three), Err(FrameError::TooManyVlanTags));

    // IPv6 payload length past the frame; zero (jumbogram) length.
    let mut long = base.clone();
    long[ip + 4..ip + 6].copy_from_slice(&(base.len() as u16).to_be_bytes());
    assert_eq!(parse_udp6(&long), Err(FrameError::Ipv6PayloadLength));
    let mut jumbo = base.clone();
    jumbo[ip + 4..ip + 6].copy_from_slice(&0u16.to_be_bytes());
    assert_eq!(parse_udp6(&jumbo), Err(FrameError::Truncated));

    // UDP length under 8, or past the IPv6 payload.
    let udp = ip + 40;
    for bad in [0u16, 7, 54, 0xffff] {
        let mut f = base.clone();
        f[udp + 4..udp + 6].copy_from_slice(&bad.to_be_bytes());
        assert_eq!(
            parse_udp6(&f),
            Err(FrameError::UdpLength),
            "udp length {bad}"
        );
    }
    // A UDP length inside the IPv6 payload is honoured (Linux does the same).
    let mut short = base.clone();
    short[udp + 4..udp + 6].copy_from_slice(&20u16.to_be_bytes());
    assert_eq!(parse_udp6(&short).unwrap().payload_len, 12);

    // Ethernet padding after the IPv6 payload is ignored.
    let mut padded = base.clone();
    padded.extend_from_slice(&[0u8; 30]);
    assert_eq!(parse_udp6(&padded), parse_udp6(&base));
}

#[test]
fn checksum_policy() {
    let mut frame = build(&solicit_params(&[]), &solicit_payload());
    let f = parse_udp6(&frame).unwrap();
    assert_eq!(verify_udp6_checksum(&frame, &f), Ok(()));

    // Every single-bit flip in the UDP datagram or the addresses is caught.
    for byte in (22..frame.len()).filter(|&b| !(14 + 40 + 4..14 + 40 + 6).contains(&b)) {
        for bit in 0..8 {
            let mut bad = frame.clone();
            bad[byte] ^= 1 << bit;
            if let Ok(g) = parse_udp6(&bad) {
                assert!(
                    verify_udp6_checksum(&bad, &g).is_err(),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    frame[14 + 40 + 6..14 + 40 + 8].copy_from_slice(&[0, 0]);
    let f = parse_udp6(&frame).unwrap();
    assert_eq!(
        verify_udp6_checksum(&frame, &f),
        Err(FrameError::ZeroChecksum)
    );

    // A `UdpFrame` that does not belong to the buffer cannot make it panic.
    assert_eq!(
        verify_udp6_checksum(&frame[..30], &f),
        Err(FrameError::Truncated)
    );
}

#[test]
fn truncated_at_every_length() {
    let tags = [VlanTag::new(TPID_8021AD, 10), VlanTag::new(TPID_8021Q, 20)];
    let base = build(&solicit_params(&tags), &solicit_payload());
    let frame = with_ext(&base, 22, &[(0, 8), (44, 8), (60, 16)], 0);
    let whole = parse_udp6(&frame).unwrap();
    for len in 0..frame.len() {
        let r = parse_udp6(&frame[..len]);
        assert!(r.is_err(), "prefix of {len} bytes parsed: {r:?}");
        assert!(verify_udp6_checksum(&frame[..len], &whole).is_err());
    }
}

#[test]
fn reply_in_place_drops_extension_headers() {
    let tags = [VlanTag::new(TPID_8021AD, 300), VlanTag::new(TPID_8021Q, 42)];
    let base = build(&solicit_params(&tags), &solicit_payload());
    let mut buf = with_ext(&base, 22, &[(0, 8), (60, 16)], 0);
    buf.resize(2048, 0xee);
    let req = parse_udp6(&buf).unwrap();

    let offset = reply_payload_offset(&req);
    assert_eq!(offset, req.payload_offset - 24);
    // The core reads the request, then writes its reply at `offset` in the same frame.
    let reply_payload: Vec<u8> = (0..77u8).collect();
    buf[offset..offset + reply_payload.len()].copy_from_slice(&reply_payload);
    let params = ReplyParams::answering(&req, SERVER_MAC, server_ll());
    let len = finish_reply(&mut buf, &req, &params, reply_payload.len()).unwrap();
    assert_eq!(len, offset + 77);

    let reply = parse_udp6(&buf[..len]).unwrap();
    assert_eq!(verify_udp6_checksum(&buf[..len], &reply), Ok(()));
    assert_eq!(reply.dst_mac, CLIENT_MAC);
    assert_eq!(reply.src_mac, SERVER_MAC);
    assert_eq!(reply.vlans, req.vlans);
    assert_eq!((reply.src_ip, reply.dst_ip), (server_ll(), client_ll()));
    assert_eq!((reply.src_port, reply.dst_port), (547, 546));
    assert_eq!(reply.hop_limit, DEFAULT_HOP_LIMIT);
    assert_eq!(reply.ext_headers, 0);
    assert_eq!(reply.payload_offset, offset);
    assert_eq!(reply.payload(&buf).unwrap(), &reply_payload[..]);
}

#[test]
fn build_errors() {
    let params = solicit_params(&[VlanTag::new(TPID_8021Q, 1)]);
    let payload = solicit_payload();
    let need = udp6_payload_offset(1) + payload.len();
    for len in 0..need {
        let mut buf = vec![0u8; len];
        assert_eq!(
            build_udp6_frame(&mut buf, &params, &payload),
            Err(BuildError::BufferTooSmall)
        );
    }
    let mut buf = vec![0u8; need];
    assert_eq!(build_udp6_frame(&mut buf, &params, &payload), Ok(need));

    let mut big = vec![0u8; 70_000];
    let huge = vec![0u8; 65_528];
    assert_eq!(
        build_udp6_frame(&mut big, &params, &huge),
        Err(BuildError::PayloadTooLong)
    );
    assert!(build_udp6_frame(&mut big, &params, &huge[..65_527]).is_ok());
    assert_eq!(
        finish_udp6_frame(&mut big, &params, usize::MAX),
        Err(BuildError::PayloadTooLong)
    );

    let odd = solicit_params(&[VlanTag {
        tpid: 0x9100,
        tci: 5,
    }]);
    assert_eq!(
        build_udp6_frame(&mut buf, &odd, &payload),
        Err(BuildError::BadVlanTpid)
    );
}

#[test]
fn error_table_is_consistent() {
    let mut names = std::collections::HashSet::new();
    for (i, e) in FrameError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert!(names.insert(e.name()));
    }
    let mut tags = VlanTags::new();
    tags.push(VlanTag::new(TPID_8021AD, 1)).unwrap();
    tags.push(VlanTag::new(TPID_8021Q, 2)).unwrap();
    assert_eq!(
        tags.push(VlanTag::new(TPID_8021Q, 3)),
        Err(FrameError::TooManyVlanTags)
    );
    assert_eq!(tags.len(), 2);
}

// ---- property tests ----

fn arb_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>()
}

fn arb_ip() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn arb_vlans() -> impl Strategy<Value = VlanTags> {
    let tag = (
        prop_oneof![Just(TPID_8021Q), Just(TPID_8021AD)],
        any::<u16>(),
    )
        .prop_map(|(tpid, tci)| VlanTag { tpid, tci });
    prop::collection::vec(tag, 0..=MAX_VLAN_TAGS).prop_map(|v| VlanTags::from_slice(&v).unwrap())
}

fn arb_params() -> impl Strategy<Value = Udp6Params> {
    (
        arb_mac(),
        arb_mac(),
        arb_vlans(),
        arb_ip(),
        arb_ip(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(
            |(dst_mac, src_mac, vlans, src_ip, dst_ip, hop_limit, src_port, dst_port)| Udp6Params {
                dst_mac,
                src_mac,
                vlans,
                src_ip,
                dst_ip,
                hop_limit,
                src_port,
                dst_port,
            },
        )
}

fn arb_chain() -> impl Strategy<Value = Vec<(u8, usize)>> {
    let hdr = prop_oneof![
        (1usize..=4).prop_map(|n| (60u8, n * 8)),
        (1usize..=4).prop_map(|n| (43u8, n * 8)),
        Just((44u8, 8usize)),
    ];
    (any::<bool>(), prop::collection::vec(hdr, 0..=4)).prop_map(|(hbh, mut rest)| {
        if hbh {
            rest.insert(0, (0, 8));
        }
        rest
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = parse_udp6(&bytes) {
            prop_assert!(f.payload_range().end <= bytes.len());
            let _ = verify_udp6_checksum(&bytes, &f);
        }
    }

    #[test]
    fn ipv6_ethertype_random_rest_never_panics(
        tags in 0usize..4,
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        // Steer the random bytes past the EtherType check so the deeper layers get exercised.
        let mut frame = vec![0u8; 12];
        for _ in 0..tags {
            frame.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        frame.extend_from_slice(&[0x86, 0xdd, 0x60]);
        frame.extend_from_slice(&rest);
        if let Ok(f) = parse_udp6(&frame) {
            prop_assert!(f.payload_range().end <= frame.len());
            let _ = verify_udp6_checksum(&frame, &f);
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        params in arb_params(),
        chain in arb_chain(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let base = build(&params, &payload);
        let mut frame = with_ext(&base, 14 + 4 * params.vlans.len(), &chain, 0);
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        if let Ok(f) = parse_udp6(&frame) {
            prop_assert!(f.payload_range().end <= frame.len());
            let _ = verify_udp6_checksum(&frame, &f);
        }
    }

    #[test]
    fn parse_of_build_round_trips(
        params in arb_params(),
        payload in prop::collection::vec(any::<u8>(), 0..1500),
    ) {
        let frame = build(&params, &payload);
        let f = parse_udp6(&frame).unwrap();
        let ip_offset = 14 + 4 * params.vlans.len();
        let expected = UdpFrame {
            dst_mac: params.dst_mac,
            src_mac: params.src_mac,
            vlans: params.vlans,
            ip_offset,
            hop_limit: params.hop_limit,
            src_ip: params.src_ip,
            dst_ip: params.dst_ip,
            ext_headers: 0,
            udp_offset: ip_offset + 40,
            src_port: params.src_port,
            dst_port: params.dst_port,
            udp_checksum: f.udp_checksum,
            payload_offset: udp6_payload_offset(params.vlans.len()),
            payload_len: payload.len(),
        };
        prop_assert_eq!(f, expected);
        prop_assert_eq!(f.payload(&frame).unwrap(), &payload[..]);
        prop_assert_ne!(f.udp_checksum, 0);
        prop_assert_eq!(verify_udp6_checksum(&frame, &f), Ok(()));
        // The checksum agrees with the naive reference over pseudo-header and datagram.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&params.src_ip.octets());
        pseudo.extend_from_slice(&params.dst_ip.octets());
        pseudo.extend_from_slice(&((payload.len() + 8) as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 17]);
        pseudo.extend_from_slice(&frame[f.udp_range()]);
        prop_assert_eq!(naive_checksum(&pseudo), 0);
    }

    #[test]
    fn ext_chains_parse_and_truncate(
        params in arb_params(),
        chain in arb_chain(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let base = build(&params, &payload);
        let frame = with_ext(&base, 14 + 4 * params.vlans.len(), &chain, 0);
        let f = parse_udp6(&frame).unwrap();
        prop_assert_eq!(f.ext_headers as usize, chain.len());
        prop_assert_eq!(f.payload(&frame).unwrap(), &payload[..]);
        prop_assert_eq!(verify_udp6_checksum(&frame, &f), Ok(()));
        for len in 0..frame.len() {
            prop_assert!(parse_udp6(&frame[..len]).is_err());
        }
    }

    #[test]
    fn checksum_matches_reference(data in prop::collection::vec(any::<u8>(), 0..600)) {
        prop_assert_eq!(internet_checksum(&data), naive_checksum(&data));
    }

    #[test]
    fn replies_round_trip(
        params in arb_params(),
        chain in arb_chain(),
        request_payload in prop::collection::vec(any::<u8>(), 0..200),
        reply_payload in prop::collection::vec(any::<u8>(), 0..600),
        our_mac in arb_mac(),
        our_ip in arb_ip(),
        hop_limit in any::<u8>(),
    ) {
        let base = build(&params, &request_payload);
        let mut buf = with_ext(&base, 14 + 4 * params.vlans.len(), &chain, 0);
        let req = parse_udp6(&buf).unwrap();
        buf.resize(2048, 0);
        let offset = reply_payload_offset(&req);
        prop_assert!(offset <= req.payload_offset);
        buf[offset..offset + reply_payload.len()].copy_from_slice(&reply_payload);
        let reply_params = ReplyParams { hop_limit, ..ReplyParams::answering(&req, our_mac, our_ip) };
        let len = finish_reply(&mut buf, &req, &reply_params, reply_payload.len()).unwrap();
        let reply = parse_udp6(&buf[..len]).unwrap();
        prop_assert_eq!(verify_udp6_checksum(&buf[..len], &reply), Ok(()));
        prop_assert_eq!(reply.dst_mac, req.src_mac);
        prop_assert_eq!(reply.src_mac, our_mac);
        prop_assert_eq!(reply.vlans, req.vlans);
        prop_assert_eq!((reply.src_ip, reply.dst_ip), (our_ip, req.src_ip));
        prop_assert_eq!((reply.src_port, reply.dst_port), (req.dst_port, req.src_port));
        prop_assert_eq!(reply.hop_limit, hop_limit);
        prop_assert_eq!(reply.payload(&buf).unwrap(), &reply_payload[..]);
    }

    #[test]
    fn builders_never_panic_on_any_buffer(
        params in arb_params(),
        buf_len in 0usize..200,
        payload_len in prop_oneof![0usize..200, Just(usize::MAX), Just(65_528)],
        req_bytes in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut buf = vec![0u8; buf_len];
        let _ = finish_udp6_frame(&mut buf, &params, payload_len);
        // A request that was not parsed from this buffer, with arbitrary field values.
        let mut req = parse_udp6(&build(&params, &req_bytes)).unwrap();
        req.payload_offset = usize::MAX;
        req.payload_len = usize::MAX;
        let _ = req.payload(&buf);
        let _ = verify_udp6_checksum(&buf, &req);
        let reply = ReplyParams::answering(&req, [0; 6], Ipv6Addr::LOCALHOST);
        let _ = finish_reply(&mut buf, &req, &reply, payload_len);
    }
}
