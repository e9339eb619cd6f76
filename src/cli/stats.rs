//! `xdhcp6 stats`: a live view of a running server, like `top`.
//!
//! Every interval the CLI takes a [`ServerSnapshot`] over the control socket; rates and latency
//! percentiles are computed from the difference between two snapshots of monotonic counters, so
//! the figures describe the last interval, not the whole uptime.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::control::{self, Request};
use crate::stats::{latency_delta, percentile, ServerSnapshot, WorkerSnapshot};

/// Fetch one snapshot from the server at `socket`.
pub fn fetch(socket: &Path) -> Result<ServerSnapshot, String> {
    let r = control::request(socket, &Request::Stats)?;
    if !r.ok {
        return Err(r
            .error
            .unwrap_or_else(|| "server refused the request".into()));
    }
    serde_json::from_value(r.data.unwrap_or_default())
        .map_err(|e| format!("unexpected stats format: {e}"))
}

fn human_ns(ns: Option<u64>) -> String {
    match ns {
        None => "-".into(),
        Some(n) if n < 1_000 => format!("{n}ns"),
        Some(n) if n < 1_000_000 => format!("{:.1}µs", n as f64 / 1e3),
        Some(n) if n < 1_000_000_000 => format!("{:.1}ms", n as f64 / 1e6),
        Some(n) => format!("{:.1}s", n as f64 / 1e9),
    }
}

fn human_uptime(s: u64) -> String {
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else {
        format!("{m}m{sec:02}s")
    }
}

fn rate(cur: u64, prev: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    cur.saturating_sub(prev) as f64 / secs
}

fn row(
    out: &mut String,
    label: &str,
    cur: &WorkerSnapshot,
    prev: Option<&WorkerSnapshot>,
    secs: f64,
) {
    let p = prev.cloned().unwrap_or_default();
    let lat = latency_delta(cur, prev);
    let _ = writeln!(
        out,
        "{label:<8} {:>11.0} {:>11.0} {:>9.0} {:>9} {:>9} {:>9} {:>9}",
        rate(cur.rx, p.rx, secs),
        rate(cur.tx, p.tx, secs),
        rate(cur.dropped(), p.dropped(), secs),
        human_ns(percentile(&lat, 50.0)),
        human_ns(percentile(&lat, 99.0)),
        human_ns(percentile(&lat, 99.9)),
        human_ns(percentile(&lat, 100.0)),
    );
}

/// Render the view for `cur`, with rates over the interval since `prev` (or since start when
/// there is no previous snapshot).
pub fn render(cur: &ServerSnapshot, prev: Option<&ServerSnapshot>) -> String {
    let secs = match prev {
        Some(p) => cur.monotonic_ns.saturating_sub(p.monotonic_ns) as f64 / 1e9,
        None => cur.uptime_secs.max(1) as f64,
    };
    let mut out = String::new();
    let mode = if cur.xdp_mode.is_empty() {
        String::new()
    } else {
        format!(" ({})", cur.xdp_mode)
    };
    let _ = writeln!(
        out,
        "xdhcp6 {} — up {} — backend {}{} — {} workers — interval {:.1}s",
        cur.version,
        human_uptime(cur.uptime_secs),
        cur.backend,
        mode,
        cur.workers.len(),
        secs
    );
    let _ = writeln!(
        out,
        "\n{:<8} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "worker", "rx/s", "replies/s", "drops/s", "p50", "p99", "p99.9", "max"
    );
    for w in &cur.workers {
        let p = prev.and_then(|p| p.workers.iter().find(|x| x.worker == w.worker));
        row(&mut out, &format!("core {}", w.worker), w, p, secs);
    }
    let total = cur.total();
    let ptotal = prev.map(ServerSnapshot::total);
    row(&mut out, "total", &total, ptotal.as_ref(), secs);

    let _ = writeln!(
        out,
        "\n{:<28} {:>11} {:>14}",
        "drops by reason", "per second", "since start"
    );
    let mut any = false;
    for (reason, &n) in &total.drops {
        if n == 0 {
            continue;
        }
        any = true;
        let pn = ptotal
            .as_ref()
            .and_then(|p| p.drops.get(reason).copied())
            .unwrap_or(0);
        let _ = writeln!(out, "{reason:<28} {:>11.0} {n:>14}", rate(n, pn, secs));
    }
    if !any {
        let _ = writeln!(out, "(none)");
    }

    let _ = writeln!(
        out,
        "\n{:<28} {:>11} {:>11}",
        "messages by type", "in/s", "out/s"
    );
    let mut types: Vec<&String> = total
        .rx_by_type
        .keys()
        .chain(total.tx_by_type.keys())
        .collect();
    types.sort();
    types.dedup();
    for t in types {
        let get = |s: Option<&WorkerSnapshot>, rx: bool| {
            s.and_then(|s| {
                if rx {
                    s.rx_by_type.get(t)
                } else {
                    s.tx_by_type.get(t)
                }
            })
            .copied()
            .unwrap_or(0)
        };
        let _ = writeln!(
            out,
            "{t:<28} {:>11.0} {:>11.0}",
            rate(get(Some(&total), true), get(ptotal.as_ref(), true), secs),
            rate(get(Some(&total), false), get(ptotal.as_ref(), false), secs)
        );
    }
    if total.fill_ring_empty > 0 || total.rx_ring_occupancy > 0 {
        let _ = writeln!(
            out,
            "\nrings: rx occupancy {}  tx occupancy {}  fill ring empty {} times",
            total.rx_ring_occupancy, total.tx_ring_occupancy, total.fill_ring_empty
        );
    }
    let x = &total.xsk;
    if x.tx_kicks > 0 || x.rx_lost() > 0 {
        let _ = writeln!(
            out,
            "kernel (AF_XDP): rx dropped {}  rx ring full {}  fill ring empty {}  invalid descs {}  \
             tx kicks {} ({} failed)",
            x.rx_dropped, x.rx_ring_full, x.rx_fill_ring_empty, x.invalid_descs, x.tx_kicks,
            x.tx_kick_errors
        );
    }

    let _ = writeln!(
        out,
        "\n{:<16} {:<42} {:<4} {:>12} {:>12} {:>7}",
        "link", "pool", "type", "used", "free", "used%"
    );
    for p in &cur.pools {
        let pct = if p.total == 0 {
            0.0
        } else {
            p.used as f64 * 100.0 / p.total as f64
        };
        let _ = writeln!(
            out,
            "{:<16} {:<42} {:<4} {:>12} {:>12} {:>6.2}%",
            p.link,
            p.pool,
            p.kind,
            p.used,
            p.total.saturating_sub(p.used),
            pct
        );
    }
    let _ = writeln!(out, "\nactive leases: {}", cur.leases_active);
    if cur.lease_writes_refused > 0 {
        let _ = writeln!(
            out,
            "LEASE STORE FAILING CLOSED: {} grants refused (disk full or I/O error; see the log)",
            cur.lease_writes_refused
        );
    }
    match &cur.failover {
        None => {
            let _ = writeln!(out, "failover: not configured");
        }
        Some(f) => {
            let _ = writeln!(
                out,
                "failover: {} (partner {}), {}, {} unacked updates, lag {} ms",
                f.state,
                f.partner_state,
                if f.connected {
                    "connected"
                } else {
                    "DISCONNECTED"
                },
                f.unacked_updates,
                f.lag_ms
            );
        }
    }
    out
}

/// Run the `stats` subcommand.
pub fn run(socket: &Path, once: bool, interval: Duration, json: bool) -> Result<(), String> {
    let mut prev: Option<ServerSnapshot> = None;
    if once {
        // One interval is still needed for rates: take two snapshots `interval` apart, unless
        // JSON (raw counters) was asked for.
        let first = fetch(socket)?;
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&first).map_err(|e| e.to_string())?
            );
            return Ok(());
        }
        std::thread::sleep(interval);
        let cur = fetch(socket)?;
        print!("{}", render(&cur, Some(&first)));
        return Ok(());
    }
    loop {
        let cur = fetch(socket)?;
        if json {
            println!(
                "{}",
                serde_json::to_string(&cur).map_err(|e| e.to_string())?
            );
        } else {
            // Clear the screen and home the cursor, as top does.
            print!("\x1b[2J\x1b[H{}", render(&cur, prev.as_ref()));
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
        prev = Some(cur);
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{bucket_of, PoolUsage};

    fn snap(t_ns: u64, rx: u64, tx: u64, lat_ns: u64) -> ServerSnapshot {
        let mut w = WorkerSnapshot {
            worker: 0,
            rx,
            tx,
            ..Default::default()
        };
        w.drops.insert("bad_server_id".into(), rx - tx);
        w.latency_buckets = vec![(bucket_of(lat_ns) as u32, tx)];
        ServerSnapshot {
            version: "t".into(),
            uptime_secs: 10,
            monotonic_ns: t_ns,
            backend: "socket".into(),
            workers: vec![w],
            pools: vec![PoolUsage {
                link: "l".into(),
                pool: "p".into(),
                kind: "na".into(),
                total: 200,
                used: 50,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn rates_and_percentiles_cover_the_interval_only() {
        let a = snap(1_000_000_000, 1000, 900, 5_000);
        let b = snap(3_000_000_000, 5000, 4700, 5_000);
        let text = render(&b, Some(&a));
        // 4000 received in 2 s, 3800 answered, 200 dropped.
        let total = text.lines().find(|l| l.starts_with("total")).unwrap();
        let cols: Vec<&str> = total.split_whitespace().collect();
        assert_eq!(&cols[1..4], ["2000", "1900", "100"]);
        assert!(cols[4].ends_with("µs"), "{total}");
        assert!(text.contains("bad_server_id"));
        assert!(text.contains("25.00%"));
        assert!(text.contains("failover: not configured"));
    }
}
