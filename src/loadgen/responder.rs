//! A small, deliberately simple DHCPv6 responder for testing the generator: it answers every
//! client message (direct or relayed, any depth) from an in-memory map DUID → lease number,
//! and can be told to misbehave in one specific way ([`Fault`]) so tests can check that the
//! generator reports it. It is also the "ideal server" of `scripts/bench-compare.sh`: a
//! ceiling for what a generator can drive through a socket, used to compare generators.
//!
//! It is not a server: no lease lifetimes, no persistence, no policy beyond RFC 8415's
//! message pairing.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::wire::dhcpv6::{
    opt, MessageType, Nested, OptionWriter, Packet, RelayPacket, RelayRepr, Repr, Status,
};

use super::pool::{NaPool, PdPool};
use super::udp::BatchSocket;

/// One way to be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    /// Behave.
    None,
    /// Give every client the same address and prefix.
    Duplicate,
    /// Answer with a transaction ID that is off by one.
    WrongXid,
    /// Leave out the Server Identifier.
    NoServerId,
    /// Hand out addresses outside the pool.
    OutOfPool,
    /// Answer Renew and Rebind with NoBinding in the IAs.
    NoBinding,
    /// Echo a Client ID that differs from the one sent.
    WrongClientId,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ResponderArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "[::]:547")]
    pub listen: SocketAddr,
    #[arg(long = "pool")]
    pub pools: Vec<NaPool>,
    #[arg(long = "pd-pool")]
    pub pd_pools: Vec<PdPool>,
    #[arg(long, value_enum, default_value = "none")]
    pub fault: Fault,
    /// Most distinct clients remembered; later ones get NoAddrsAvail.
    #[arg(long, default_value_t = 20_000_000)]
    pub max_clients: usize,
    /// Seconds to run (bounded).
    #[arg(long, default_value_t = 600.0)]
    pub duration: f64,
    /// Answer through AF_XDP on this interface (all its queues, one worker) instead of a UDP
    /// socket: the server's XDP backend drives the responder as its core, so the generator's
    /// ceiling can be measured beyond what any socket reaches. Needs root.
    #[arg(long)]
    pub xdp_iface: Option<String>,
    /// CPU for the AF_XDP worker.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// With --xdp-iface: answer inside the XDP program instead (`ebpf/xdp_reflector.c`:
    /// Solicit → Advertise, Request → Reply, IA_NA from the first --pool, via XDP_TX), so the
    /// responder costs next to nothing and the generator is what is measured.
    #[arg(long, requires = "xdp_iface")]
    pub xdp_reflect: bool,
}

const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0xff, 0xde, 0xad, 0xbe, 0xef];
const MAX_LEVELS: usize = 8;
/// Most clients the lease map is sized for at start (it still grows past that).
const PRESIZE_MAX_CLIENTS: usize = 4_000_000;

#[derive(Clone, Copy)]
struct Level<'a> {
    hop_count: u8,
    link: Ipv6Addr,
    peer: Ipv6Addr,
    interface_id: Option<&'a [u8]>,
}

pub struct Responder {
    args: ResponderArgs,
    leases: HashMap<Vec<u8>, u64>,
    pub answered: u64,
    pub ignored: u64,
}

impl Responder {
    pub fn new(args: ResponderArgs) -> Self {
        // Sized up front (bounded): rehashing a map of millions of clients stalls the data
        // path for long enough to drop a ring's worth of requests.
        let capacity = args.max_clients.min(PRESIZE_MAX_CLIENTS);
        Responder {
            args,
            leases: HashMap::with_capacity(capacity),
            answered: 0,
            ignored: 0,
        }
    }

    /// Serve on a socket until `stop` is set or the duration passes: batches of datagrams in
    /// (`recvmmsg`), their replies out (`sendmmsg`), each to its sender.
    pub fn serve(&mut self, sock: &UdpSocket, stop: &AtomicBool) -> std::io::Result<()> {
        let mut s = BatchSocket::new(sock.try_clone()?)?;
        let deadline = Instant::now() + Duration::from_secs_f64(self.args.duration);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let n = s.recv_batch(Duration::from_millis(50))?;
            for i in 0..n {
                let (req, out) = s.split(i);
                match self.answer(req, out) {
                    Some(len) => {
                        self.answered += 1;
                        s.queue_reply(i, len);
                    }
                    None => self.ignored += 1,
                }
            }
            s.send_replies();
        }
        Ok(())
    }

    /// The reply to `req`, written into `out`; `None` to stay silent.
    pub fn answer(&mut self, req: &[u8], out: &mut [u8]) -> Option<usize> {
        let mut levels: heapless::Vec<Level<'_>, MAX_LEVELS> = heapless::Vec::new();
        let mut msg = req;
        while msg.first() == Some(&(MessageType::RelayForw as u8)) {
            let p = RelayPacket::new_checked(msg).ok()?;
            let r = RelayRepr::parse(&p).ok()?;
            levels
                .push(Level {
                    hop_count: r.hop_count,
                    link: r.link_address,
                    peer: r.peer_address,
                    interface_id: r.interface_id,
                })
                .ok()?;
            msg = r.relay_message?;
        }
        let p = Packet::new_checked(msg).ok()?;
        let r = Repr::parse(&p).ok()?;
        let duid = r.client_id?.bytes();
        let reply_type = match r.msg_type {
            MessageType::Solicit if r.rapid_commit => MessageType::Reply,
            MessageType::Solicit => MessageType::Advertise,
            MessageType::Request
            | MessageType::Renew
            | MessageType::Rebind
            | MessageType::Release
            | MessageType::InformationRequest => MessageType::Reply,
            _ => return None,
        };
        let lease = match r.msg_type {
            MessageType::InformationRequest | MessageType::Release => None,
            _ => Some(self.lease_of(duid)),
        };

        let mut w = OptionWriter::new(out);
        let mut nests: heapless::Vec<Nested, MAX_LEVELS> = heapless::Vec::new();
        for l in &levels {
            // RFC 8415 §19.3: copy hop count, link and peer address, and the Interface-ID.
            w.put_u8(MessageType::RelayRepl as u8).ok()?;
            w.put_u8(l.hop_count).ok()?;
            w.put_addr(&l.link).ok()?;
            w.put_addr(&l.peer).ok()?;
            if let Some(id) = l.interface_id {
                w.put(opt::INTERFACE_ID, id).ok()?;
            }
            nests.push(w.begin(opt::RELAY_MSG).ok()?).ok()?;
        }
        let xid = if self.args.fault == Fault::WrongXid {
            (r.transaction_id + 1) & 0x00ff_ffff
        } else {
            r.transaction_id
        };
        w.put_u8(reply_type as u8).ok()?;
        w.put_raw(&xid.to_be_bytes()[1..]).ok()?;
        if self.args.fault == Fault::WrongClientId {
            let mut other = duid.to_vec();
            // A DUID is at least 3 bytes (the codec checked); byte 4 is inside our MACs.
            let i = 4.min(other.len() - 1);
            other[i] ^= 1;
            w.put(opt::CLIENTID, &other).ok()?;
        } else {
            w.put(opt::CLIENTID, duid).ok()?;
        }
        if self.args.fault != Fault::NoServerId {
            w.put(opt::SERVERID, &SERVER_DUID).ok()?;
        }
        if r.msg_type == MessageType::Solicit && r.rapid_commit {
            w.put_empty(opt::RAPID_COMMIT).ok()?;
        }
        let no_binding = self.args.fault == Fault::NoBinding
            && matches!(r.msg_type, MessageType::Renew | MessageType::Rebind);
        match lease {
            Some(Some(n)) => {
                for ia in &r.ia_na {
                    let nest = w.begin(opt::IA_NA).ok()?;
                    w.put_u32(ia.iaid).ok()?;
                    w.put_u32(1000).ok()?;
                    w.put_u32(2000).ok()?;
                    if no_binding {
                        status(&mut w, Status::NoBinding)?;
                    } else if let Some(a) = self.address(n) {
                        let a_n = w.begin(opt::IAADDR).ok()?;
                        w.put_addr(&a).ok()?;
                        w.put_u32(3000).ok()?;
                        w.put_u32(4000).ok()?;
                        w.end(a_n).ok()?;
                    } else {
                        status(&mut w, Status::NoAddrsAvail)?;
                    }
                    w.end(nest).ok()?;
                }
                for ia in &r.ia_pd {
                    let nest = w.begin(opt::IA_PD).ok()?;
                    w.put_u32(ia.iaid).ok()?;
                    w.put_u32(1000).ok()?;
                    w.put_u32(2000).ok()?;
                    if no_binding {
                        status(&mut w, Status::NoBinding)?;
                    } else if let Some((p, len)) = self.prefix(n) {
                        let a_n = w.begin(opt::IAPREFIX).ok()?;
                        w.put_u32(3000).ok()?;
                        w.put_u32(4000).ok()?;
                        w.put_u8(len).ok()?;
                        w.put_addr(&p).ok()?;
                        w.end(a_n).ok()?;
                    } else {
                        status(&mut w, Status::NoPrefixAvail)?;
                    }
                    w.end(nest).ok()?;
                }
            }
            Some(None) => status(&mut w, Status::NoAddrsAvail)?,
            None => {
                if r.msg_type == MessageType::Release {
                    status(&mut w, Status::Success)?;
                }
            }
        }
        while let Some(n) = nests.pop() {
            w.end(n).ok()?;
        }
        Some(w.position())
    }

    fn lease_of(&mut self, duid: &[u8]) -> Option<u64> {
        if let Some(&n) = self.leases.get(duid) {
            return Some(n);
        }
        if self.leases.len() >= self.args.max_clients {
            return None;
        }
        let n = self.leases.len() as u64;
        self.leases.insert(duid.to_vec(), n);
        Some(n)
    }

    fn address(&self, n: u64) -> Option<Ipv6Addr> {
        let p = self.args.pools.first()?;
        let n = if self.args.fault == Fault::Duplicate {
            0
        } else {
            n
        };
        let a = p.addr(n + 1);
        Some(if self.args.fault == Fault::OutOfPool {
            // Flip a bit inside the network part.
            Ipv6Addr::from(u128::from(a) ^ (1u128 << 80))
        } else {
            a
        })
    }

    fn prefix(&self, n: u64) -> Option<(Ipv6Addr, u8)> {
        let p = self.args.pd_pools.first()?;
        let n = if self.args.fault == Fault::Duplicate {
            0
        } else {
            n
        };
        Some((p.prefix(n), p.delegated_len))
    }
}

fn status(w: &mut OptionWriter<'_>, s: Status) -> Option<()> {
    let n = w.begin(opt::STATUS_CODE).ok()?;
    w.put_u16(s as u16).ok()?;
    w.put_raw(s.message().as_bytes()).ok()?;
    w.end(n).ok()
}

/// Bind and serve until `stop` (or the duration). Returns (answered, ignored).
pub fn run(args: ResponderArgs, stop: &AtomicBool) -> std::io::Result<(u64, u64)> {
    if let Some(iface) = args.xdp_iface.clone() {
        if args.xdp_reflect {
            return run_reflect(&args, &iface);
        }
        return run_xdp(args, &iface);
    }
    let sock = UdpSocket::bind(args.listen)?;
    let mut r = Responder::new(args);
    r.serve(&sock, stop)?;
    Ok((r.answered, r.ignored))
}

/// The responder as the core of the server's XDP backend (one worker, every queue).
struct XdpCore(std::sync::Mutex<Responder>);

impl crate::io::Handler for XdpCore {
    fn handle(
        &self,
        request: &[u8],
        meta: &crate::proto::RxMeta,
        _now: u64,
        out: &mut [u8],
    ) -> Result<crate::proto::ReplyMeta, crate::proto::DropReason> {
        // One worker: the lock is never contended.
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match r.answer(request, out) {
            Some(len) => {
                r.answered += 1;
                Ok(crate::proto::ReplyMeta {
                    len,
                    dst: meta.src,
                    dst_port: meta.src_port,
                })
            }
            None => {
                r.ignored += 1;
                Err(crate::proto::DropReason::UnexpectedMessageType)
            }
        }
    }
}

/// The in-kernel reflector on `iface` until SIGINT/SIGTERM or the duration. Returns
/// (answered, passed on to the kernel).
fn run_reflect(args: &ResponderArgs, iface: &str) -> std::io::Result<(u64, u64)> {
    let info = crate::io::xdp::interface_info(iface)?;
    let pool = args.pools.first().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "--xdp-reflect needs a --pool",
        )
    })?;
    let prog = super::reflector::Reflector::attach(&info, pool, &SERVER_DUID)?;
    eprintln!(
        "responder: XDP reflector attached to {iface} ({} mode)",
        prog.attach_mode()
    );
    let shutdown = crate::io::shutdown::Shutdown::new()?;
    shutdown.install_signal_handlers()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    while Instant::now() < deadline && !shutdown.wait(Duration::from_millis(200)) {}
    let c = prog.counters();
    eprintln!("responder: reflector counters {c:?}");
    Ok((c.advertise + c.reply, c.passed + c.malformed + c.no_room))
}

fn run_xdp(args: ResponderArgs, iface: &str) -> std::io::Result<(u64, u64)> {
    use crate::io::xdp::{XdpBackend, XdpConfig};
    let cfg = XdpConfig {
        interfaces: vec![iface.to_string()],
        workers: 1,
        cpus: args.cpu.into_iter().collect(),
        // Senders on veth must run `ethtool -K <dev> tx off`; the generator's AF_XDP frames
        // carry full checksums anyway.
        verify_udp_checksum: false,
        ..XdpConfig::default()
    };
    let backend = XdpBackend::open(&cfg).map_err(std::io::Error::other)?;
    let shutdown = crate::io::shutdown::Shutdown::new()?;
    shutdown.install_signal_handlers()?;
    let duration = Duration::from_secs_f64(args.duration);
    let core = XdpCore(std::sync::Mutex::new(Responder::new(args)));
    let stats = backend.new_stats();
    let started = Instant::now();
    let mut tick = || {
        if started.elapsed() >= duration {
            shutdown.trigger();
        }
    };
    backend
        .run(&core, &stats, &shutdown, &mut tick)
        .map_err(std::io::Error::other)?;
    let r = core.0.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok((r.answered, r.ignored))
}
