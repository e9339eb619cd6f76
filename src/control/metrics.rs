//! Prometheus metrics: the figures of `xdhcp6 stats` in the Prometheus text exposition format
//! (version 0.0.4), served over HTTP on a listener that is off unless configured and meant for
//! loopback.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::stats::{bucket_high, ServerSnapshot};

/// Histogram bucket bounds exported for the reply latency, seconds.
const LATENCY_LE_S: [f64; 18] = [
    1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3,
    50e-3, 100e-3, 500e-3, 1.0,
];

/// Reads one counter of a worker snapshot.
type WorkerField = fn(&crate::stats::WorkerSnapshot) -> u64;

/// Escape a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Render a snapshot in the Prometheus text format.
pub fn render(s: &ServerSnapshot) -> String {
    let mut o = String::with_capacity(8192);
    header(
        &mut o,
        "xdhcp6_info",
        "gauge",
        "Build and data-path information.",
    );
    let _ = writeln!(
        o,
        "xdhcp6_info{{version=\"{}\",backend=\"{}\",xdp_mode=\"{}\"}} 1",
        esc(&s.version),
        esc(&s.backend),
        esc(&s.xdp_mode)
    );
    header(
        &mut o,
        "xdhcp6_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    let _ = writeln!(o, "xdhcp6_uptime_seconds {}", s.uptime_secs);

    let simple: [(&str, &str, WorkerField); 9] = [
        (
            "xdhcp6_received_total",
            "Requests received by the worker.",
            |w| w.rx,
        ),
        ("xdhcp6_replies_total", "Replies sent by the worker.", |w| {
            w.tx
        }),
        (
            "xdhcp6_fill_ring_empty_total",
            "Times the AF_XDP fill ring was found empty.",
            |w| w.fill_ring_empty,
        ),
        (
            "xdhcp6_xsk_rx_dropped_total",
            "Packets the kernel dropped before the AF_XDP RX ring (mostly: no fill-ring frame).",
            |w| w.xsk.rx_dropped,
        ),
        (
            "xdhcp6_xsk_rx_ring_full_total",
            "Packets the kernel dropped because the AF_XDP RX ring was full.",
            |w| w.xsk.rx_ring_full,
        ),
        (
            "xdhcp6_xsk_fill_ring_empty_total",
            "Times the kernel found the AF_XDP fill ring empty.",
            |w| w.xsk.rx_fill_ring_empty,
        ),
        (
            "xdhcp6_xsk_tx_ring_empty_total",
            "TX kicks that found the AF_XDP TX ring empty.",
            |w| w.xsk.tx_ring_empty,
        ),
        (
            "xdhcp6_xsk_invalid_descs_total",
            "AF_XDP descriptors the kernel rejected as invalid (RX and TX).",
            |w| w.xsk.invalid_descs,
        ),
        (
            "xdhcp6_xsk_tx_kicks_total",
            "sendto calls made to push AF_XDP TX frames.",
            |w| w.xsk.tx_kicks,
        ),
    ];
    for (name, help, get) in simple {
        header(&mut o, name, "counter", help);
        for w in &s.workers {
            let _ = writeln!(o, "{name}{{worker=\"{}\"}} {}", w.worker, get(w));
        }
    }
    header(
        &mut o,
        "xdhcp6_dropped_total",
        "counter",
        "Requests dropped, by reason.",
    );
    for w in &s.workers {
        for (reason, n) in &w.drops {
            let _ = writeln!(
                o,
                "xdhcp6_dropped_total{{worker=\"{}\",reason=\"{}\"}} {n}",
                w.worker,
                esc(reason)
            );
        }
    }
    for (name, help, rx) in [
        (
            "xdhcp6_messages_received_total",
            "Messages received, by DHCPv6 type.",
            true,
        ),
        (
            "xdhcp6_messages_sent_total",
            "Messages sent, by DHCPv6 type.",
            false,
        ),
    ] {
        header(&mut o, name, "counter", help);
        for w in &s.workers {
            for (t, n) in if rx { &w.rx_by_type } else { &w.tx_by_type } {
                let _ = writeln!(
                    o,
                    "{name}{{worker=\"{}\",type=\"{}\"}} {n}",
                    w.worker,
                    esc(t)
                );
            }
        }
    }
    header(
        &mut o,
        "xdhcp6_reply_latency_seconds",
        "histogram",
        "Time from receiving a request to handing its reply to the transmit path.",
    );
    for w in &s.workers {
        let dense = w.dense_latency();
        let mut sum_ns = 0f64;
        for (i, &n) in dense.iter().enumerate() {
            sum_ns += bucket_high(i) as f64 * n as f64;
        }
        let count: u64 = dense.iter().sum();
        for le in LATENCY_LE_S {
            let le_ns = (le * 1e9) as u64;
            let c: u64 = dense
                .iter()
                .enumerate()
                .filter(|(i, _)| bucket_high(*i) <= le_ns)
                .map(|(_, n)| n)
                .sum();
            let _ = writeln!(
                o,
                "xdhcp6_reply_latency_seconds_bucket{{worker=\"{}\",le=\"{le}\"}} {c}",
                w.worker
            );
        }
        let _ = writeln!(
            o,
            "xdhcp6_reply_latency_seconds_bucket{{worker=\"{}\",le=\"+Inf\"}} {count}",
            w.worker
        );
        let _ = writeln!(
            o,
            "xdhcp6_reply_latency_seconds_sum{{worker=\"{}\"}} {}",
            w.worker,
            sum_ns / 1e9
        );
        let _ = writeln!(
            o,
            "xdhcp6_reply_latency_seconds_count{{worker=\"{}\"}} {count}",
            w.worker
        );
    }
    header(
        &mut o,
        "xdhcp6_pool_size",
        "gauge",
        "Addresses or prefixes in the pool.",
    );
    for p in &s.pools {
        let _ = writeln!(
            o,
            "xdhcp6_pool_size{{link=\"{}\",pool=\"{}\",type=\"{}\"}} {}",
            esc(&p.link),
            esc(&p.pool),
            esc(&p.kind),
            p.total
        );
    }
    header(
        &mut o,
        "xdhcp6_pool_used",
        "gauge",
        "Addresses or prefixes bound in the pool.",
    );
    for p in &s.pools {
        let _ = writeln!(
            o,
            "xdhcp6_pool_used{{link=\"{}\",pool=\"{}\",type=\"{}\"}} {}",
            esc(&p.link),
            esc(&p.pool),
            esc(&p.kind),
            p.used
        );
    }
    header(&mut o, "xdhcp6_leases_active", "gauge", "Active bindings.");
    let _ = writeln!(o, "xdhcp6_leases_active {}", s.leases_active);
    header(
        &mut o,
        "xdhcp6_lease_writes_refused_total",
        "counter",
        "Grants the lease store refused to record (full disk, I/O error: fail closed).",
    );
    let _ = writeln!(
        o,
        "xdhcp6_lease_writes_refused_total {}",
        s.lease_writes_refused
    );
    if let Some(f) = &s.failover {
        header(
            &mut o,
            "xdhcp6_failover_connected",
            "gauge",
            "1 when the partner link is up.",
        );
        let _ = writeln!(
            o,
            "xdhcp6_failover_connected{{state=\"{}\",partner_state=\"{}\"}} {}",
            esc(&f.state),
            esc(&f.partner_state),
            u8::from(f.connected)
        );
        header(
            &mut o,
            "xdhcp6_failover_unacked_updates",
            "gauge",
            "Updates not yet acknowledged.",
        );
        let _ = writeln!(o, "xdhcp6_failover_unacked_updates {}", f.unacked_updates);
        header(
            &mut o,
            "xdhcp6_failover_lag_seconds",
            "gauge",
            "Age of the oldest unacked update.",
        );
        let _ = writeln!(o, "xdhcp6_failover_lag_seconds {}", f.lag_ms as f64 / 1e3);
    }
    o
}

/// Source of snapshots for the endpoint.
pub type SnapshotFn = Arc<dyn Fn() -> ServerSnapshot + Send + Sync>;

/// The HTTP listener; dropping it stops it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(addr: SocketAddr, source: SnapshotFn) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => serve(s, &source),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => {
                            tracing::warn!("metrics accept: {e}");
                            thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answer one HTTP/1.x request: GET /metrics gets the exposition, anything else 404; a client
/// that does not finish its request headers within a second is dropped.
fn serve(mut s: TcpStream, source: &SnapshotFn) {
    if s.set_nonblocking(false).is_err()
        || s.set_read_timeout(Some(Duration::from_secs(1))).is_err()
        || s.set_write_timeout(Some(Duration::from_secs(2))).is_err()
    {
        return;
    }
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        if len == buf.len() {
            let _ = s.write_all(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
            );
            return;
        }
    }
    let line = buf[..len].split(|&b| b == b'\r').next().unwrap_or_default();
    let ok = line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?");
    if !ok {
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let body = render(&source());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|_| s.write_all(body.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{bucket_of, PoolUsage, WorkerSnapshot};

    fn sample() -> ServerSnapshot {
        let mut w = WorkerSnapshot {
            worker: 0,
            rx: 10,
            tx: 8,
            ..Default::default()
        };
        w.drops.insert("unknown_server_id".into(), 2);
        w.rx_by_type.insert("solicit".into(), 10);
        w.latency_buckets = vec![(bucket_of(3_000) as u32, 8)];
        ServerSnapshot {
            version: "0.1.0".into(),
            backend: "socket".into(),
            workers: vec![w],
            pools: vec![PoolUsage {
                link: "lan-a".into(),
                pool: "2001:db8::/64".into(),
                kind: "na".into(),
                total: 100,
                used: 8,
            }],
            leases_active: 8,
            ..Default::default()
        }
    }

    #[test]
    fn exposition_parses_with_a_prometheus_parser() {
        let text = render(&sample());
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
        let get = |name: &str| scrape.samples.iter().find(|s| s.metric == name).unwrap();
        match get("xdhcp6_received_total").value {
            prometheus_parse::Value::Counter(v) => assert_eq!(v, 10.0),
            ref v => panic!("{v:?}"),
        }
        let pool = get("xdhcp6_pool_used");
        assert_eq!(pool.labels.get("link"), Some("lan-a"));
        let h = get("xdhcp6_reply_latency_seconds");
        match &h.value {
            prometheus_parse::Value::Histogram(b) => {
                let le5us = b
                    .iter()
                    .find(|c| (c.less_than - 5e-6).abs() < 1e-12)
                    .unwrap();
                assert_eq!(le5us.count, 8.0);
                let le2us = b
                    .iter()
                    .find(|c| (c.less_than - 2e-6).abs() < 1e-12)
                    .unwrap();
                assert_eq!(le2us.count, 0.0);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn http_endpoint_serves_metrics_and_404s_others() {
        let src: SnapshotFn = Arc::new(sample);
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), src).unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(srv.local_addr()).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut r = String::new();
            c.read_to_string(&mut r).unwrap();
            r
        };
        let r = get("/metrics");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("xdhcp6_leases_active 8"));
        assert!(get("/").starts_with("HTTP/1.1 404"));
        // A silent client does not block the next scrape for long.
        let _silent = TcpStream::connect(srv.local_addr()).unwrap();
        assert!(get("/metrics").starts_with("HTTP/1.1 200"));
    }
}
