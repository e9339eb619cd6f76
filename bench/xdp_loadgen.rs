//! `xdp-loadgen`: the load generator of the XDP benchmark (docs/benchmarks.md). Runs in the
//! client namespace: sends DHCPv6 Solicit frames (AF_PACKET, `sendmmsg` batches, qdisc bypass)
//! as fast as it can, and counts the answers with an XDP sink (`ebpf/xdp_bench_sink.c`) that
//! drops replies on arrival, so counting costs next to nothing. Prints one JSON line.
//!
//! CPU per answered packet is measured two ways: the server process (utime + stime of
//! `--server-pid`) and the whole machine (busy jiffies in /proc/stat, sender included).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use aya::maps::PerCpuArray;
use aya::programs::{Xdp, XdpMode};
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    iface: String,
    /// Destination MAC: 33:33:00:01:00:02 for ff02::1:2, or the server's for unicast.
    #[arg(long)]
    dst_mac: String,
    #[arg(long, default_value = "fe80::2")]
    src_ip: Ipv6Addr,
    #[arg(long, default_value = "ff02::1:2")]
    dst_ip: Ipv6Addr,
    /// Frame size in bytes (Ethernet header included).
    #[arg(long, default_value_t = 162)]
    size: usize,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long)]
    cpu: Option<usize>,
    #[arg(long)]
    server_pid: Option<u32>,
    /// Label echoed in the output.
    #[arg(long, default_value = "")]
    label: String,
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).expect("hex MAC"))
        .collect();
    v.try_into().expect("6-byte MAC")
}

fn if_info(name: &str) -> (i32, [u8; 6]) {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C string; SIOCGIFHWADDR on a zeroed ifreq naming the interface.
    unsafe {
        let idx = libc::if_nametoindex(c.as_ptr());
        assert!(idx != 0, "no interface {name}");
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, b) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *d = b as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut ifr), 0);
        libc::close(fd);
        let sa = ifr.ifr_ifru.ifru_hwaddr.sa_data;
        (idx as i32, std::array::from_fn(|i| sa[i] as u8))
    }
}

/// A Solicit frame of `size` bytes with transaction id `xid` and a correct UDP checksum: Elapsed
/// Time, IA_NA, and a Client Identifier that differs per `xid` and pads the frame to `size`.
fn solicit_frame(
    size: usize,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    xid: u32,
) -> Vec<u8> {
    assert!(size >= 14 + 40 + 8 + 10 + 16, "frame too small");
    let payload_len = size - 62;
    let mut p = vec![
        1,
        (xid >> 16) as u8,
        (xid >> 8) as u8,
        xid as u8,
        0,
        8,
        0,
        2,
        0,
        0,
    ];
    // IA_NA (IAID 1, T1/T2 0): the server computes an address for every Solicit.
    p.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    if payload_len >= p.len() + 4 + 10 {
        // Client Identifier (DUID-EN-like filler) up to the requested size.
        let duid_len = payload_len - p.len() - 4;
        p.extend_from_slice(&[0, 1]);
        p.extend_from_slice(&(duid_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 2, 0, 0, 0x87, 0x61]);
        p.extend((0..duid_len - 6).map(|i| (i as u32 ^ xid) as u8));
    }
    p.resize(payload_len, 0);
    let mut f = Vec::with_capacity(size);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    let ulen = (8 + p.len()) as u16;
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&546u16.to_be_bytes());
    f.extend_from_slice(&547u16.to_be_bytes());
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&p);
    let mut acc: u64 = u64::from(ulen) + 17;
    for b in [&src.octets()[..], &dst.octets()[..], &f[54..]] {
        for c in b.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let sum = !(acc as u16);
    f[60..62].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
    f
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state(0) ... utime(11) stime(12).
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// (busy, total) jiffies over all CPUs.
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn main() {
    let a = Args::parse();
    if let Some(cpu) = a.cpu {
        // SAFETY: zeroed cpu_set_t, CPU_SET within bounds, applies to this thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        }
    }
    let (ifindex, src_mac) = if_info(&a.iface);
    let dst_mac = parse_mac(&a.dst_mac);

    let mut ebpf = aya::Ebpf::load(aya::include_bytes_aligned!(concat!(
        env!("OUT_DIR"),
        "/xdp_bench_sink.o"
    )))
    .expect("load sink");
    let prog: &mut Xdp = ebpf
        .program_mut("xdp_bench_sink")
        .unwrap()
        .try_into()
        .unwrap();
    prog.load().expect("load sink program");
    prog.attach(&a.iface, XdpMode::Driver)
        .or_else(|_| prog.attach(&a.iface, XdpMode::Skb))
        .expect("attach sink");
    let replies = || -> u64 {
        let m = PerCpuArray::<_, u64>::try_from(ebpf.map("replies").unwrap()).unwrap();
        m.get(&0, 0).unwrap().iter().sum()
    };

    let frames: Vec<Vec<u8>> = (0..a.batch as u32)
        .map(|i| solicit_frame(a.size, dst_mac, src_mac, a.src_ip, a.dst_ip, 0x10000 + i))
        .collect();
    // SAFETY: socket/setsockopt/sendmmsg with buffers that outlive the calls.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0, "AF_PACKET socket");
    let one: i32 = 1;
    // SAFETY: valid option pointer and size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const i32).cast(),
            4,
        )
    };
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&dst_mac);
    let mut iovs: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut _,
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: msghdr is plain data; pointers set below stay valid for the run.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();

    let mut sent: u64 = 0;
    let mut send_for = |d: Duration| -> u64 {
        let end = Instant::now() + d;
        let mut n_total = 0u64;
        while Instant::now() < end {
            // SAFETY: msgs/iovs/frames/sll are alive and correctly linked.
            let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
            if n > 0 {
                n_total += n as u64;
            }
        }
        n_total
    };
    send_for(Duration::from_secs(a.warmup_secs));
    let r0 = replies();
    let p0 = a.server_pid.map(proc_cpu_ticks);
    let m0 = machine_ticks();
    let t0 = Instant::now();
    sent += send_for(Duration::from_secs(a.duration_secs));
    let elapsed = t0.elapsed().as_secs_f64();
    // Let in-flight replies land before the last read.
    std::thread::sleep(Duration::from_millis(50));
    let answered = replies() - r0;
    let m1 = machine_ticks();
    let p1 = a.server_pid.map(proc_cpu_ticks);
    // SAFETY: sysconf is always safe to call.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let per_pkt_us = |ticks: u64| {
        if answered == 0 {
            0.0
        } else {
            ticks as f64 / hz * 1e6 / answered as f64
        }
    };
    let server_us = match (p0, p1) {
        (Some(a0), Some(a1)) => per_pkt_us(a1 - a0),
        _ => 0.0,
    };
    let machine_us = per_pkt_us(m1.0 - m0.0);
    println!(
        "{{\"label\":\"{}\",\"sent\":{sent},\"answered\":{answered},\"secs\":{elapsed:.2},\"sent_pps\":{:.0},\"answered_pps\":{:.0},\"server_cpu_us_per_pkt\":{server_us:.2},\"machine_cpu_us_per_pkt\":{machine_us:.2}}}",
        a.label,
        sent as f64 / elapsed,
        answered as f64 / elapsed
    );
    // SAFETY: we own fd.
    unsafe { libc::close(fd) };
}
