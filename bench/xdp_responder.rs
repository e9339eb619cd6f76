//! `xdp-responder`: runs the XDP data path without the rest of the server, for benchmarks and
//! the netns integration tests.
//!
//! - `--mode echo`: the bare AF_XDP echo (swap MACs/addresses/ports): the ceiling of a setup.
//! - `--mode fake`: the full worker path (parse, core call, in-place reply with checksum) with a
//!   stand-in core that answers every request with a fixed-shape reply. It stays useful as a
//!   data-path test once the real core lands.
//!
//! Prints `ready {json}` once attached and bound, and `stats {json}` when it stops (after
//! `--duration-secs`, or at end of standard input with `--until-stdin-eof`).

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use xdhcp6::io::xdp::{self, AttachMode, DataPath, Responder, XdpConfig, ZeroCopy};
use xdhcp6::proto::{DropReason, ReplyMeta, RxMeta};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Echo,
    Fake,
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

impl Responder for FakeCore {
    fn respond(
        &self,
        req: &[u8],
        meta: &RxMeta,
        _now: u64,
        out: &mut [u8],
    ) -> Result<ReplyMeta, DropReason> {
        if req.len() < 4 || req.len() > out.len() {
            return Err(DropReason::NotImplemented);
        }
        out[..req.len()].copy_from_slice(req);
        out[0] = match req[0] {
            12 => 13,
            1..=11 => 7,
            _ => return Err(DropReason::NotImplemented),
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
    let path = match args.mode {
        Mode::Echo => DataPath::Echo,
        Mode::Fake => DataPath::Serve(Arc::new(FakeCore)),
    };
    let backend = match xdp::start(&cfg, path) {
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

    let stop = Arc::new(AtomicBool::new(false));
    if args.until_stdin_eof {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let started = Instant::now();
    let limit = args.duration_secs.map(Duration::from_secs);
    while !stop.load(Ordering::Relaxed)
        && limit.is_none_or(|l| started.elapsed() < l)
        && backend.healthy()
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = backend.stop();
    println!(
        "stats {}",
        serde_json::to_string(&stats).expect("serializable")
    );
}
