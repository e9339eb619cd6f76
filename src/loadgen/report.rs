//! The end-of-run report (text or `--json`) and the progress line.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::engine::{Kind, Stats};
use super::msg::Invalid;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExchangeCounts {
    pub offered: u64,
    pub completed: u64,
}

/// What one phase (a run, a find-max trial, the preparation pass) measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseReport {
    /// Seconds load was offered (rates are per this; the drain of in-flight exchanges after
    /// it is not counted).
    pub elapsed_s: f64,
    /// Exchanges started.
    pub offered: u64,
    pub offered_per_s: f64,
    pub completed: u64,
    pub completed_per_s: f64,
    /// Exchanges completed while load was offered, per second of it. Well below
    /// `offered_per_s` means the server fell behind (queues grew), even if everything was
    /// answered in the end.
    pub completed_in_window_per_s: f64,
    /// Exchanges that got no answer after all retransmissions.
    pub drops: u64,
    /// Exchanges ended by an invalid reply.
    pub failed: u64,
    /// (drops + failed) / offered, in percent.
    pub loss_pct: f64,
    pub timeouts: u64,
    pub retransmits: u64,
    pub late_replies: u64,
    pub invalid: u64,
    pub invalid_by_kind: BTreeMap<&'static str, u64>,
    pub by_exchange: BTreeMap<&'static str, ExchangeCounts>,
    /// Per-exchange latency, first message sent to final reply, in microseconds.
    pub latency_us: Latency,
    pub tx_packets: u64,
    pub rx_packets: u64,
    pub tx_dropped: u64,
    pub window_full: u64,
    /// The generator's own load: worker CPU time over the phase's wall time (drain
    /// included), in percent of one core, summed over workers. Near 100 × cores the generator
    /// is the bottleneck, not the server.
    pub generator_cpu_pct: f64,
}

impl PhaseReport {
    pub fn from_stats(s: &Stats) -> Self {
        // Rates are over the time load was offered; the drain after it adds no exchanges.
        let secs = (s.send_us as f64 / 1e6).max(1e-6);
        let offered = s.started_total();
        let completed = s.completed_total();
        let h = &s.latency_us;
        let q = |x: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(x)
            }
        };
        let mut by_exchange = BTreeMap::new();
        for k in Kind::ALL {
            let (o, c) = (s.started[k as usize], s.completed[k as usize]);
            if o + c > 0 {
                by_exchange.insert(
                    k.name(),
                    ExchangeCounts {
                        offered: o,
                        completed: c,
                    },
                );
            }
        }
        let invalid_by_kind = Invalid::ALL
            .iter()
            .filter(|k| s.invalid[k.index()] > 0)
            .map(|k| (k.name(), s.invalid[k.index()]))
            .collect();
        PhaseReport {
            elapsed_s: secs,
            offered,
            offered_per_s: offered as f64 / secs,
            completed,
            completed_per_s: completed as f64 / secs,
            completed_in_window_per_s: s.completed_in_window as f64 / secs,
            drops: s.drops,
            failed: s.failed,
            loss_pct: if offered == 0 {
                0.0
            } else {
                (s.drops + s.failed) as f64 * 100.0 / offered as f64
            },
            timeouts: s.timeouts,
            retransmits: s.retransmits,
            late_replies: s.late,
            invalid: s.invalid_total(),
            invalid_by_kind,
            by_exchange,
            latency_us: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p99_9: q(0.999),
                max: if h.is_empty() { 0 } else { h.max() },
                mean: if h.is_empty() { 0.0 } else { h.mean() },
            },
            tx_packets: s.tx_packets,
            rx_packets: s.rx_packets,
            tx_dropped: s.tx_dropped,
            window_full: s.window_full,
            generator_cpu_pct: s.cpu_us as f64 * 100.0 / (s.elapsed_us.max(1)) as f64,
        }
    }
}

/// One rate tried by `--find-max` or `--sweep`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Trial {
    pub target_rate: f64,
    pub passed: bool,
    pub result: PhaseReport,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub scenario: &'static str,
    pub ia: &'static str,
    /// "direct" or "relayed(N)".
    pub mode: String,
    /// "af_xdp" or "udp".
    pub transport: &'static str,
    /// How the transport was set up (AF_XDP mode, queues, addresses), or why AF_XDP was not
    /// used.
    pub transport_detail: String,
    /// Transport counters summed over workers (AF_XDP: kicks, bad frames, forwarded replies,
    /// the receive program's counters).
    pub transport_counters: BTreeMap<&'static str, u64>,
    /// Worker threads, one per core.
    pub threads: usize,
    pub clients: u32,
    pub target_rate: f64,
    /// The main result: the run, or the best passing trial of `--find-max`.
    pub result: PhaseReport,
    /// The pass that bound every client before a renew/rebind/release/mix run.
    pub prepare: Option<PhaseReport>,
    /// `--find-max`: the highest rate whose loss stayed within `max_loss_pct`.
    pub max_rate: Option<f64>,
    pub max_loss_pct: Option<f64>,
    /// `--find-max`: the generator could not offer the rate asked for; the result is a
    /// floor for the server, not its maximum.
    pub generator_limited: bool,
    pub trials: Vec<Trial>,
    /// Leases the ownership map could not track (it was full); duplicates among them go
    /// unnoticed.
    pub ownership_untracked: u64,
    pub clients_bound_at_end: usize,
    pub transport_errors: Vec<String>,
}

fn write_phase(f: &mut fmt::Formatter<'_>, p: &PhaseReport) -> fmt::Result {
    writeln!(
        f,
        "  offered    {:>10} exchanges  {:>12.1}/s   ({:.2} s)",
        p.offered, p.offered_per_s, p.elapsed_s
    )?;
    writeln!(
        f,
        "  completed  {:>10} exchanges  {:>12.1}/s   ({:.1}/s while offering)",
        p.completed, p.completed_per_s, p.completed_in_window_per_s
    )?;
    writeln!(
        f,
        "  drops {}  failed {}  loss {:.3} %  timeouts {}  retransmits {}  late {}",
        p.drops, p.failed, p.loss_pct, p.timeouts, p.retransmits, p.late_replies
    )?;
    write!(f, "  invalid replies {}", p.invalid)?;
    for (k, v) in &p.invalid_by_kind {
        write!(f, "  {k}={v}")?;
    }
    writeln!(f)?;
    for (k, v) in &p.by_exchange {
        writeln!(
            f,
            "    {k:<20} offered {:>10}  completed {:>10}",
            v.offered, v.completed
        )?;
    }
    let l = &p.latency_us;
    writeln!(
        f,
        "  latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.1}",
        l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean
    )?;
    writeln!(
        f,
        "  packets tx {} rx {}  tx dropped {}  window full {}  generator CPU {:.0} %",
        p.tx_packets, p.rx_packets, p.tx_dropped, p.window_full, p.generator_cpu_pct
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "xdhcp6 bench: {} ({}), {}, {} transport × {} thread(s), {} clients",
            self.scenario, self.ia, self.mode, self.transport, self.threads, self.clients
        )?;
        writeln!(f, "transport: {}", self.transport_detail)?;
        if let Some(p) = &self.prepare {
            writeln!(f, "preparation (bind every client):")?;
            write_phase(f, p)?;
        }
        if !self.trials.is_empty() {
            writeln!(f, "trials:")?;
            for t in &self.trials {
                writeln!(
                    f,
                    "  {:>12.0}/s target  {:>12.1}/s offered  {:>12.1}/s completed  loss {:>7.3} %  p50 {:>7} µs  p99 {:>7} µs  gen CPU {:>3.0} %  {}",
                    t.target_rate,
                    t.result.offered_per_s,
                    t.result.completed_per_s,
                    t.result.loss_pct,
                    t.result.latency_us.p50,
                    t.result.latency_us.p99,
                    t.result.generator_cpu_pct,
                    if t.passed { "pass" } else { "FAIL" }
                )?;
            }
        }
        if let (Some(r), Some(l)) = (self.max_rate, self.max_loss_pct) {
            writeln!(
                f,
                "max rate: {r:.0} exchanges/s with loss ≤ {l} %{}",
                if self.generator_limited {
                    " (generator-limited: the server may do more)"
                } else {
                    ""
                }
            )?;
        }
        writeln!(f, "result:")?;
        write_phase(f, &self.result)?;
        if self.ownership_untracked > 0 {
            writeln!(
                f,
                "  warning: {} leases not checked for duplicates (ownership map full)",
                self.ownership_untracked
            )?;
        }
        if self.transport_counters.values().any(|&v| v > 0) {
            write!(f, "  transport")?;
            for (k, v) in &self.transport_counters {
                write!(f, "  {k}={v}")?;
            }
            writeln!(f)?;
        }
        for e in &self.transport_errors {
            writeln!(f, "  transport error: {e}")?;
        }
        Ok(())
    }
}
