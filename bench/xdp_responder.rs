//! `xdp-responder`: runs the XDP data path without the rest of the server, for the benchmark
//! ceiling and the data-path tests (tests/xdp_netns.rs). The server itself runs the same
//! backend with the real core (`xdhcp6 serve` with `backend = "xdp"`; tests/xdp_server.rs).
//!
//! - `--mode echo`: the bare AF_XDP echo (swap MACs/addresses/ports): the ceiling of a setup.
//! - `--mode fake`: the full worker path (parse, checksum, core call, in-place reply) with a
//!   stand-in [`Handler`] that answers every request with a fixed-shape reply, so frame-level
//!   behaviour can be tested without DHCPv6 semantics.
//! - `--mode socket-fake`: the stand-in behind one plain UDP socket.
//!
//! Prints `ready {json}` (the bound sockets) once attached and bound, and `stats {json}` when
//! it stops (after `--duration-secs`, or at end of standard input with `--until-stdin-eof`):
//! the backend status (`programs`, `sockets`) plus `total`, the worker counters summed.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use xdhcp6::io::shutdown::Shutdown;
use xdhcp6::io::xdp::{self, AttachMode, XdpBackend, XdpConfig, ZeroCopy};
use xdhcp6::io::Handler;
use xdhcp6::proto::{DropReason, ReplyMeta, RxMeta};
use xdhcp6::stats::ServerSnapshot;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Echo,
    Fake,
    /// The stand-in core behind a plain UDP socket (recvmmsg/sendmmsg batches).
    SocketFake,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Attach {
    Auto,
    Native,
    Generic,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long = "iface", required = true)]
    interfaces: Vec<String>,
    #[arg(long, value_enum, default_value = "fake")]
    mode: Mode,
    /// Queues to bind (default: all).
    #[arg(long, value_delimiter = ',')]
    queues: Option<Vec<u32>>,
    #[arg(long, value_enum, default_value = "auto")]
    attach: Attach,
    /// Copy mode only (skip the zero-copy attempt).
    #[arg(long)]
    copy: bool,
    #[arg(long)]
    no_verify_checksum: bool,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    workers: usize,
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Busy-poll with this SO_BUSY_POLL value (µs) instead of sleeping in poll().
    #[arg(long)]
    busy_poll_us: Option<u32>,
    #[arg(long)]
    duration_secs: Option<u64>,
    #[arg(long)]
    until_stdin_eof: bool,
    /// Only check whether the XDP backend could run here (`xdp::probe`), then exit.
    #[arg(long)]
    probe: bool,
}

/// Stand-in core: Solicit etc. (types 1..=11) get a Reply (7) with the same transaction id and
/// the request's options echoed, sent to the client's port; a Relay-forward (12) gets a
/// Relay-reply (13) with the same body, sent to the relay (port 547).
struct FakeCore;

impl Handler for FakeCore {
    fn handle(
        &self,
        req: &[u8],
        meta: &RxMeta,
        _now: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        if req.len() < 4 {
            return Err(DropReason::Truncated);
        }
        let out = out.get_mut(..req.len()).ok_or(DropReason::BufferTooSmall)?;
        out.copy_from_slice(req);
        out[0] = match req[0] {
            12 => 13,
            1..=11 => 7,
            _ => return Err(DropReason::UnexpectedMessageType),
        };
        Ok(ReplyMeta {
            len: req.len(),
            dst: meta.src,
            dst_port: meta.src_port,
        })
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let cfg = XdpConfig {
        interfaces: args.interfaces.clone(),
        queues: args.queues.clone(),
        batch_size: args.batch,
        attach_mode: match args.attach {
            Attach::Auto => AttachMode::Auto,
            Attach::Native => AttachMode::Native,
            Attach::Generic => AttachMode::Generic,
        },
        zero_copy: if args.copy {
            ZeroCopy::Off
        } else {
            ZeroCopy::Auto
        },
        busy_poll: args
            .busy_poll_us
            .map(|usecs| xdp::BusyPoll { usecs, budget: 64 }),
        workers: args.workers,
        cpus: args.cpus.clone(),
        verify_udp_checksum: !args.no_verify_checksum,
        ..XdpConfig::default()
    };
    if args.probe {
        match xdp::probe(&cfg) {
            Ok(()) => println!("probe ok"),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    if let Mode::SocketFake = args.mode {
        socket_fake(&args);
        return;
    }
    let backend = match XdpBackend::open(&cfg) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let sockets: Vec<_> = backend.sockets().cloned().collect();
    println!(
        "ready {}",
        serde_json::to_string(&sockets).expect("serializable")
    );
    std::io::stdout().flush().ok();

    let shutdown = Arc::new(Shutdown::new().expect("shutdown socket pair"));
    shutdown.install_signal_handlers().expect("signal handlers");
    if args.until_stdin_eof {
        let shutdown = Arc::clone(&shutdown);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            shutdown.trigger();
        });
    }
    let started = Instant::now();
    let limit = args.duration_secs.map(Duration::from_secs);
    let status = backend.status_handle();
    let stats = backend.new_stats();
    let mut last = serde_json::Value::Null;
    let mut tick = || {
        last = status.status_json();
        if limit.is_some_and(|l| started.elapsed() >= l) {
            shutdown.trigger();
        }
    };
    let result = match args.mode {
        Mode::Echo => backend.run_echo(&stats, &shutdown, &mut tick),
        _ => backend.run(&FakeCore, &stats, &shutdown, &mut tick),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
    }
    let snap = ServerSnapshot {
        workers: stats
            .iter()
            .enumerate()
            .map(|(i, s)| s.snapshot(i))
            .collect(),
        ..ServerSnapshot::default()
    };
    last["total"] = serde_json::to_value(snap.total()).expect("serializable");
    println!("stats {last}");
}

/// UDP-socket responder with the stand-in core: one thread, batches of `--batch` datagrams.
fn socket_fake(args: &Args) {
    use std::os::fd::AsRawFd;
    if let Some(&cpu) = args.cpus.first() {
        // SAFETY: zeroed cpu_set_t, CPU_SET within bounds, applies to this thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        }
    }
    let sock = std::net::UdpSocket::bind("[::]:547").expect("bind [::]:547");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let fd = sock.as_raw_fd();
    let batch = args.batch.clamp(1, 256);
    let mut bufs = vec![[0u8; 2048]; batch];
    let mut outs = vec![[0u8; 2048]; batch];
    // SAFETY: sockaddr_in6 is plain data.
    let mut addrs: Vec<libc::sockaddr_in6> = vec![unsafe { std::mem::zeroed() }; batch];
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut out_iovs: Vec<libc::iovec> = outs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: 0,
        })
        .collect();
    // SAFETY: mmsghdr is plain data.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; batch];
    let mut out_msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; batch];
    println!("ready []");
    std::io::stdout().flush().ok();
    let started = Instant::now();
    let limit = args.duration_secs.map(Duration::from_secs);
    let (mut rx, mut tx) = (0u64, 0u64);
    while limit.is_none_or(|l| started.elapsed() < l) {
        for i in 0..batch {
            msgs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in6).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as u32;
            msgs[i].msg_hdr.msg_iov = &mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every msghdr points at live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                batch as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        rx += n as u64;
        let mut m = 0;
        for i in 0..n {
            let len = msgs[i].msg_len as usize;
            let src = std::net::Ipv6Addr::from(addrs[i].sin6_addr.s6_addr);
            let meta = RxMeta {
                src,
                src_port: u16::from_be(addrs[i].sin6_port),
                dst: std::net::Ipv6Addr::UNSPECIFIED,
                ifindex: addrs[i].sin6_scope_id,
            };
            if let Ok(r) = FakeCore.handle(&bufs[i][..len], &meta, 0, &mut outs[i]) {
                addrs[i].sin6_port = r.dst_port.to_be();
                out_iovs[i].iov_len = r.len;
                out_msgs[m].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in6).cast();
                out_msgs[m].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as u32;
                out_msgs[m].msg_hdr.msg_iov = &mut out_iovs[i];
                out_msgs[m].msg_hdr.msg_iovlen = 1;
                m += 1;
            }
        }
        let mut done = 0;
        while done < m {
            // SAFETY: as above, for the first `m` prepared messages.
            let k =
                unsafe { libc::sendmmsg(fd, out_msgs[done..].as_mut_ptr(), (m - done) as u32, 0) };
            if k <= 0 {
                break;
            }
            done += k as usize;
        }
        tx += done as u64;
    }
    println!("stats {{\"rx\":{rx},\"tx\":{tx}}}");
}
