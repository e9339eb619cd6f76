//! Hand-made packets (built with `dhcproto`) against the server binary, for the rules real
//! clients never break: a Request whose Server Identifier is missing or not ours is dropped
//! and counted (RFC 8415 §16.4), and a Renew for a binding the server does not have gets
//! NoBinding (§18.3.4). Also the harness's own check: garbage reaches the server, is dropped,
//! and the drop counter shows it. Needs root.

mod support;

use std::time::Duration;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, Status, IANA,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use support::clients::exchange;
use support::config::TestConfig;
use support::netns::NetPair;
use support::server::ServerProcess;

const CLIENT_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0xc1, 0x1e];
const IAID: u32 = 7;

fn encode(m: &Message) -> Vec<u8> {
    let mut buf = Vec::new();
    m.encode(&mut Encoder::new(&mut buf)).expect("encode");
    buf
}

fn decode(b: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(b)).expect("reply decodes")
}

fn msg(t: MessageType, server_id: Option<&[u8]>, ia_addr: Option<std::net::Ipv6Addr>) -> Message {
    let mut m = Message::new(t);
    m.opts_mut()
        .insert(DhcpOption::ClientId(CLIENT_DUID.to_vec()));
    m.opts_mut().insert(DhcpOption::ElapsedTime(0));
    if let Some(s) = server_id {
        m.opts_mut().insert(DhcpOption::ServerId(s.to_vec()));
    }
    let mut ia_opts = DhcpOptions::new();
    if let Some(addr) = ia_addr {
        ia_opts.insert(DhcpOption::IAAddr(IAAddr {
            addr,
            preferred_life: 0,
            valid_life: 0,
            opts: DhcpOptions::new(),
        }));
    }
    m.opts_mut().insert(DhcpOption::IANA(IANA {
        id: IAID,
        t1: 0,
        t2: 0,
        opts: ia_opts,
    }));
    m
}

#[test]
fn garbage_reaches_the_server_and_is_counted() {
    let net = NetPair::new();
    let mut server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let replies = exchange(
        &net,
        &[vec![0xff, 0, 1], vec![], vec![1, 2]],
        Duration::from_millis(500),
    );
    assert!(replies.is_empty(), "garbage is never answered");
    let s = server.wait_stats(Duration::from_secs(3), |s| s.received() >= 3);
    assert_eq!(
        (s.received(), s.answered(), s.dropped()),
        (3, 0, 3),
        "{s:?}"
    );
    let (status, last) = server.stop();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status:?}\n{}",
        server.log()
    );
    assert_eq!(last.received(), 3, "final counters written at exit");
}

#[test]
fn request_with_missing_or_wrong_server_id_is_dropped() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let adv = exchange(
        &net,
        &[encode(&msg(MessageType::Solicit, None, None))],
        Duration::from_secs(1),
    );
    assert_eq!(adv.len(), 1, "one Advertise for one Solicit");
    let adv = decode(&adv[0].1);
    assert_eq!(adv.msg_type(), MessageType::Advertise);
    let Some(DhcpOption::ServerId(sid)) = adv.opts().get(OptionCode::ServerId) else {
        panic!("Advertise without Server ID: {adv:?}")
    };
    assert_eq!(sid, &server.duid(), "the Server ID is the persisted DUID");
    // Counters are published by the workers after they answer: wait for the Advertise's.
    let before = server.wait_stats(Duration::from_secs(3), |s| s.answered() >= 1);

    let mut wrong = sid.clone();
    *wrong.last_mut().unwrap() ^= 0xff;
    let bad = [
        encode(&msg(MessageType::Request, None, None)),
        encode(&msg(MessageType::Request, Some(&wrong), None)),
    ];
    let replies = exchange(&net, &bad, Duration::from_secs(1));
    assert!(
        replies.is_empty(),
        "a Request without our Server ID is dropped: {replies:?}"
    );
    let after = server.wait_stats(Duration::from_secs(3), |s| {
        s.dropped() >= before.dropped() + 2
    });
    assert_eq!(
        after.dropped() - before.dropped(),
        2,
        "both drops counted: {after:?}"
    );
    assert_eq!(after.answered(), before.answered());

    // The next valid client is served normally.
    let ok = exchange(
        &net,
        &[encode(&msg(MessageType::Request, Some(sid), None))],
        Duration::from_secs(1),
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(decode(&ok[0].1).msg_type(), MessageType::Reply);
}

#[test]
fn renew_for_unknown_binding_gets_no_binding() {
    let net = NetPair::new();
    let server = ServerProcess::start(&net, &TestConfig::new(&net.server_if));
    let sid = server.duid();
    let renew = msg(
        MessageType::Renew,
        Some(&sid),
        Some("2001:db8:1::1234".parse().unwrap()),
    );
    let replies = exchange(&net, &[encode(&renew)], Duration::from_secs(1));
    assert_eq!(replies.len(), 1, "a Renew is always answered");
    let reply = decode(&replies[0].1);
    assert_eq!(reply.msg_type(), MessageType::Reply);
    assert_eq!(reply.xid(), renew.xid());
    let Some(DhcpOption::IANA(ia)) = reply.opts().get(OptionCode::IANA) else {
        panic!("Reply without IA_NA: {reply:?}")
    };
    assert_eq!(ia.id, IAID);
    let Some(DhcpOption::StatusCode(sc)) = ia.opts.get(OptionCode::StatusCode) else {
        panic!("IA_NA without status: {ia:?}")
    };
    assert_eq!(sc.status, Status::NoBinding, "RFC 8415 §18.3.4");
}
