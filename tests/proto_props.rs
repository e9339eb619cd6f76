//! Hostile-input property test of the whole core: valid messages of every type, direct and
//! relayed, are mutated (byte flips, truncation, option insertion, duplication and length
//! corruption) and fed through `Server::handle`. The server must never panic, never claim to
//! have written more than the buffer holds, and every reply it produces must parse with our
//! own codec and with the independent `dhcproto` crate (BRIEF §6).

mod common;

use std::sync::OnceLock;

use common::*;
use dhcproto::v6 as dp;
use dhcproto::{Decodable, Decoder};
use proptest::prelude::*;
use xdhcp6::lease::memory::MemoryStore;
use xdhcp6::proto::{RxMeta, Server};
use xdhcp6::wire::dhcpv6::{opt, MessageType as M, Packet, RelayPacket, RelayRepr, Repr};

fn shared_server() -> &'static Server<MemoryStore> {
    static S: OnceLock<Server<MemoryStore>> = OnceLock::new();
    S.get_or_init(server)
}

/// Valid client messages covering every type a server accepts and the options real clients
/// send.
fn seeds() -> Vec<Vec<u8>> {
    let a = ip("2001:db8:1::1001");
    let p = (ip("2001:db8:100::"), 56);
    let oro = [
        opt::DNS_SERVERS,
        opt::DOMAIN_LIST,
        opt::SOL_MAX_RT,
        opt::INF_MAX_RT,
        opt::INFORMATION_REFRESH_TIME,
    ];
    let mut vclass = 311u32.to_be_bytes().to_vec();
    vclass.extend_from_slice(&[0, 8]);
    vclass.extend_from_slice(b"MSFT 5.0");
    vec![
        Msg::new(M::Solicit, 1)
            .client(CLIENT_DUID)
            .elapsed()
            .oro(&oro)
            .ia_na(1, &[])
            .ia_pd(2, &[(std::net::Ipv6Addr::UNSPECIFIED, 60)])
            .0,
        Msg::new(M::Solicit, 2)
            .client(RESERVED_DUID)
            .rapid()
            .opt(opt::VENDOR_CLASS, &vclass)
            .ia_na(1, &[a])
            .ia_ta(3)
            .0,
        Msg::new(M::Request, 3)
            .client(CLIENT_DUID)
            .server(SERVER_DUID)
            .oro(&oro)
            .ia_na(1, &[a])
            .ia_pd(2, &[p])
            .0,
        Msg::new(M::Renew, 4)
            .client(CLIENT_DUID)
            .server(SERVER_DUID)
            .ia_na(1, &[a, ip("2001:db8:9::1")])
            .ia_pd(2, &[p])
            .0,
        Msg::new(M::Rebind, 5)
            .client(CLIENT_DUID)
            .ia_na(1, &[a])
            .ia_pd(2, &[p])
            .0,
        Msg::new(M::Confirm, 6).client(CLIENT_DUID).ia_na(1, &[a]).0,
        Msg::new(M::Release, 7)
            .client(CLIENT_DUID)
            .server(SERVER_DUID)
            .ia_na(1, &[a])
            .ia_pd(2, &[p])
            .0,
        Msg::new(M::Decline, 8)
            .client(CLIENT_DUID)
            .server(SERVER_DUID)
            .ia_na(1, &[a])
            .0,
        Msg::new(M::InformationRequest, 9)
            .client(CLIENT_DUID)
            .oro(&oro)
            .0,
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite one byte.
    Set(prop::sample::Index, u8),
    /// Flip one bit.
    Flip(prop::sample::Index, u8),
    /// Cut the message.
    Truncate(prop::sample::Index),
    /// Insert an option (code, payload) at a byte offset.
    Insert(prop::sample::Index, u16, Vec<u8>),
    /// Repeat a slice of the message right after itself (duplicates options).
    Repeat(prop::sample::Index, prop::sample::Index),
    /// Write a 16-bit value (a length or a code, when it lands on one).
    Word(prop::sample::Index, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting_code = prop_oneof![
        (1u16..=40),
        Just(opt::IA_NA),
        Just(opt::IA_PD),
        Just(opt::IAADDR),
        Just(opt::IAPREFIX),
        Just(opt::RELAY_MSG),
        Just(opt::INTERFACE_ID),
        Just(opt::SERVERID),
        Just(opt::CLIENTID),
        any::<u16>(),
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (
            any::<prop::sample::Index>(),
            interesting_code,
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(i, c, d)| Mutation::Insert(i, c, d)),
        (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(a, b)| Mutation::Repeat(a, b)),
        (
            any::<prop::sample::Index>(),
            prop_oneof![Just(0u16), Just(1), Just(0xffff), any::<u16>()]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
    ]
}

fn apply(m: &mut Vec<u8>, mu: &Mutation) {
    match mu {
        Mutation::Set(i, v) if !m.is_empty() => {
            let i = i.index(m.len());
            m[i] = *v;
        }
        Mutation::Flip(i, b) if !m.is_empty() => {
            let i = i.index(m.len());
            m[i] ^= 1 << b;
        }
        Mutation::Truncate(i) => {
            let n = i.index(m.len() + 1);
            m.truncate(n);
        }
        Mutation::Insert(i, code, data) => {
            let at = i.index(m.len() + 1);
            let mut o = code.to_be_bytes().to_vec();
            o.extend_from_slice(&(data.len() as u16).to_be_bytes());
            o.extend_from_slice(data);
            m.splice(at..at, o);
        }
        Mutation::Repeat(a, b) if !m.is_empty() => {
            let (x, y) = (a.index(m.len()), b.index(m.len()));
            let (s, e) = (x.min(y), x.max(y) + 1);
            let part = m[s..e].to_vec();
            m.splice(e..e, part);
        }
        Mutation::Word(i, v) if m.len() >= 2 => {
            let i = i.index(m.len() - 1);
            m[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
        _ => {}
    }
}

/// Check a reply with both codecs; relayed replies level by level.
fn check_reply(mut buf: &[u8]) -> Result<(), TestCaseError> {
    let mut depth = 0;
    while buf.first() == Some(&(M::RelayRepl as u8)) {
        let theirs = dp::RelayMessage::decode(&mut Decoder::new(buf));
        prop_assert!(
            theirs.is_ok(),
            "dhcproto rejects our Relay-reply: {theirs:?}"
        );
        let level = RelayPacket::new_checked(buf).and_then(|p| RelayRepr::parse(&p));
        prop_assert!(
            level.is_ok(),
            "our codec rejects our Relay-reply: {level:?}"
        );
        let inner = level.unwrap().relay_message;
        prop_assert!(inner.is_some());
        buf = inner.unwrap();
        depth += 1;
        prop_assert!(depth <= xdhcp6::proto::MAX_RELAY_DEPTH);
    }
    let p = Packet::new_checked(buf);
    prop_assert!(p.is_ok());
    let ours = Repr::parse(&p.unwrap());
    prop_assert!(ours.is_ok(), "our codec rejects our reply: {ours:?}");
    let ours = ours.unwrap();
    prop_assert!(matches!(ours.msg_type, M::Advertise | M::Reply));
    prop_assert!(ours.server_id.is_some());
    // §21.4/§21.21 and §21.6/§21.22 invariants on what we send.
    for ia in &ours.ia_na {
        prop_assert!(ia.t1 <= ia.t2 || ia.t2 == 0, "T1 {} > T2 {}", ia.t1, ia.t2);
        for a in ia.addresses() {
            prop_assert!(a.preferred <= a.valid);
        }
    }
    for ia in &ours.ia_pd {
        prop_assert!(ia.t1 <= ia.t2 || ia.t2 == 0);
        for p in ia.prefixes() {
            prop_assert!(p.preferred <= p.valid);
        }
    }
    let theirs = dp::Message::decode(&mut Decoder::new(buf));
    prop_assert!(theirs.is_ok(), "dhcproto rejects our reply: {theirs:?}");
    let theirs = theirs.unwrap();
    prop_assert_eq!(theirs.xid_num(), ours.transaction_id);
    prop_assert_eq!(u8::from(theirs.msg_type()), ours.msg_type as u8);
    Ok(())
}

fn meta(kind: u8) -> RxMeta {
    match kind % 3 {
        0 => multicast(),
        1 => from_relay(),
        _ => RxMeta {
            dst: ip("2001:db8:1::547"),
            ..multicast()
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_never_panic_and_replies_parse_with_both_codecs(
        seed in any::<prop::sample::Index>(),
        levels in 0usize..=3,
        iface in prop::option::of(prop::collection::vec(any::<u8>(), 0..12)),
        muts in prop::collection::vec(mutation(), 0..5),
        at_outer in any::<bool>(),
        kind in any::<u8>(),
        out_len in prop_oneof![Just(1500usize), Just(65_535), 0usize..700],
    ) {
        let seeds = seeds();
        let mut m = seeds[seed.index(seeds.len())].clone();
        // Mutate the client message, or the relay wrapping around it.
        if !at_outer {
            for mu in &muts {
                apply(&mut m, mu);
            }
        }
        for h in 0..levels {
            m = relay(&m, h as u8, ip("2001:db8:1::1"), ip("fe80::2"), iface.as_deref());
        }
        if at_outer {
            for mu in &muts {
                apply(&mut m, mu);
            }
        }
        let mut out = vec![0u8; out_len];
        let meta = if levels > 0 { from_relay() } else { meta(kind) };
        if let Ok(r) = shared_server().handle(&m, &meta, 1_000, &mut out) {
            prop_assert!(r.len <= out_len);
            prop_assert!(r.len <= 65_535 - 8);
            check_reply(&out[..r.len])?;
        }
        // Whatever happened, the next valid client is served.
        let ok = Msg::new(M::Solicit, 0x77).client(CLIENT_DUID).ia_na(9, &[]);
        let mut out = [0u8; 1500];
        prop_assert!(shared_server().handle(ok.bytes(), &multicast(), 1_000, &mut out).is_ok());
    }
}

/// Every unmutated seed is answered (so the property above exercises the answering paths, not
/// only the drop paths), and its reply parses with both codecs.
#[test]
fn seeds_are_answered() {
    let s = server();
    for m in seeds() {
        for meta in [multicast(), from_relay()] {
            let msg = if meta == multicast() {
                m.clone()
            } else {
                relay(&m, 0, ip("2001:db8:1::1"), ip("fe80::2"), Some(b"p"))
            };
            let mut out = [0u8; 1500];
            let r = s
                .handle(&msg, &meta, 1_000, &mut out)
                .unwrap_or_else(|e| panic!("{e:?} for {msg:?}"));
            check_reply(&out[..r.len]).unwrap();
        }
    }
}
