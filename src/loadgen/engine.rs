//! One worker: drives its slice of the clients through a transport, open-loop at a rate.
//!
//! Each loop iteration receives a batch and handles it (a reply may queue the next message of
//! the exchange), sends the follow-ups, starts the exchanges the rate makes due, handles
//! expired retransmission timers, and flushes. Timers live in a FIFO: every message has the
//! same timeout, so deadlines come out in send order and no heap or wheel is needed. An entry
//! whose client has moved on is stale and skipped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::wire::dhcpv6::MessageType;

use super::clients::{flag, mix64, xid, Client, State, NO_SERVER};
use super::msg::{Invalid, Leases, Wire};
use super::ownership::{Claim, Ownership};
use super::{Scenario, Transport};

/// Most distinct server DUIDs a worker remembers (clients store a `u8` index).
const MAX_SERVERS: usize = 16;
/// Receive passes per loop turn at most (each up to one transport batch).
const RX_PASSES: usize = 16;
/// Busy clients skipped while looking for one to start an exchange, before giving up a tick.
const PICK_SCAN: usize = 64;
/// Latency histogram range: 1 µs to 100 s, 3 significant digits.
const LATENCY_MAX_US: u64 = 100_000_000;

/// The kinds of exchange, for per-kind counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    SolicitRequest,
    RapidCommit,
    Renew,
    Rebind,
    Release,
    InformationRequest,
}

impl Kind {
    pub const COUNT: usize = 6;
    pub const ALL: [Kind; Self::COUNT] = [
        Kind::SolicitRequest,
        Kind::RapidCommit,
        Kind::Renew,
        Kind::Rebind,
        Kind::Release,
        Kind::InformationRequest,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            Kind::SolicitRequest => "solicit_request",
            Kind::RapidCommit => "rapid_commit",
            Kind::Renew => "renew",
            Kind::Rebind => "rebind",
            Kind::Release => "release",
            Kind::InformationRequest => "information_request",
        }
    }
    fn of(c: &Client) -> Kind {
        match c.state {
            State::Soliciting | State::Requesting if c.flags & flag::RAPID != 0 => {
                Kind::RapidCommit
            }
            State::Renewing => Kind::Renew,
            State::Rebinding => Kind::Rebind,
            State::Releasing => Kind::Release,
            State::InfoRequesting => Kind::InformationRequest,
            _ => Kind::SolicitRequest,
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static histogram bounds are valid")
}

/// What one phase of one worker counted.
#[derive(Debug, Clone)]
pub struct Stats {
    pub started: [u64; Kind::COUNT],
    pub completed: [u64; Kind::COUNT],
    /// Exchanges completed while load was still offered: below the offered count (beyond a
    /// latency's worth) the server is falling behind and queues are growing.
    pub completed_in_window: u64,
    /// Exchanges abandoned without an answer (after all retransmissions, or at the end).
    pub drops: u64,
    /// Exchanges ended by an invalid reply.
    pub failed: u64,
    /// Retransmission timer expiries (each leads to a retransmission or a drop).
    pub timeouts: u64,
    pub retransmits: u64,
    pub invalid: [u64; Invalid::COUNT],
    /// Replies to a message the client no longer waits for (after a timeout, duplicates).
    pub late: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
    /// Datagrams the transport could not send.
    pub tx_dropped: u64,
    /// Ticks where no exchange could start: every client busy, or the in-flight cap reached.
    pub window_full: u64,
    /// Exchange latency, first message sent to final reply.
    pub latency_us: Histogram<u64>,
    /// From the start of the phase until no new exchange started (rates are per this).
    pub send_us: u64,
    /// The whole phase, including the drain of in-flight exchanges.
    pub elapsed_us: u64,
    /// CPU time the workers used during the phase (summed over workers).
    pub cpu_us: u64,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            started: [0; Kind::COUNT],
            completed: [0; Kind::COUNT],
            completed_in_window: 0,
            drops: 0,
            failed: 0,
            timeouts: 0,
            retransmits: 0,
            invalid: [0; Invalid::COUNT],
            late: 0,
            tx_packets: 0,
            rx_packets: 0,
            tx_dropped: 0,
            window_full: 0,
            latency_us: new_histogram(),
            send_us: 0,
            elapsed_us: 0,
            cpu_us: 0,
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        for i in 0..Kind::COUNT {
            self.started[i] += o.started[i];
            self.completed[i] += o.completed[i];
        }
        for i in 0..Invalid::COUNT {
            self.invalid[i] += o.invalid[i];
        }
        self.drops += o.drops;
        self.completed_in_window += o.completed_in_window;
        self.failed += o.failed;
        self.timeouts += o.timeouts;
        self.retransmits += o.retransmits;
        self.late += o.late;
        self.tx_packets += o.tx_packets;
        self.rx_packets += o.rx_packets;
        self.tx_dropped += o.tx_dropped;
        self.window_full += o.window_full;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&o.latency_us);
        self.elapsed_us = self.elapsed_us.max(o.elapsed_us);
        self.send_us = self.send_us.max(o.send_us);
        self.cpu_us += o.cpu_us;
    }

    pub fn started_total(&self) -> u64 {
        self.started.iter().sum()
    }
    pub fn completed_total(&self) -> u64 {
        self.completed.iter().sum()
    }
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().sum()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// Running totals a worker publishes for the progress line (never reset).
pub struct Progress {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    pub drops: AtomicU64,
    pub invalid: AtomicU64,
    /// Latencies since the progress printer last took them.
    pub interval: Mutex<Histogram<u64>>,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            interval: Mutex::new(new_histogram()),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// The generator's clock: microseconds since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }
    pub fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Settings shared by all workers for the whole run.
pub struct Ctx {
    pub wire: Wire,
    pub timeout_us: u64,
    pub retries: u8,
    pub max_inflight: usize,
    /// Poll the transport without waiting instead of sleeping in it (`--busy-wait`).
    pub busy_wait: bool,
    pub na_owners: Ownership,
    pub pd_owners: Ownership,
}

/// What one phase asks of one worker.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub scenario: Scenario,
    /// Exchanges per second this worker starts.
    pub rate: f64,
    pub duration_us: u64,
    /// Most exchanges this worker starts.
    pub max_exchanges: u64,
    /// Visit each client at most once (the preparation pass).
    pub one_pass: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    local: u32,
    seq: u32,
    retries: u8,
    deadline_us: u64,
}

pub struct Worker {
    /// Global index of `clients[0]`.
    pub first: u32,
    pub clients: Vec<Client>,
    servers: Vec<Vec<u8>>,
    cursor: usize,
    timers: VecDeque<Pending>,
    inflight: usize,
    followups: Vec<u32>,
    stats: Stats,
    interval: Histogram<u64>,
    pub progress: Arc<Progress>,
    totals: [u64; 4],
    /// The phase is still starting exchanges.
    window_open: bool,
}

impl Worker {
    pub fn new(first: u32, count: usize) -> Self {
        Worker {
            first,
            clients: vec![Client::NEW; count],
            servers: Vec::new(),
            cursor: 0,
            timers: VecDeque::new(),
            inflight: 0,
            followups: Vec::new(),
            stats: Stats::new(),
            interval: new_histogram(),
            progress: Arc::new(Progress::new()),
            totals: [0; 4],
            window_open: false,
        }
    }

    /// Clients currently holding at least one lease.
    pub fn bound(&self) -> usize {
        self.clients.iter().filter(|c| c.holds_any()).count()
    }

    /// Run one phase to its end (duration or count reached, then in-flight exchanges drained
    /// until they complete or time out).
    pub fn run_phase(
        &mut self,
        t: &mut dyn Transport,
        ctx: &Ctx,
        plan: &Plan,
        clock: &Clock,
        stop: &AtomicBool,
    ) -> Stats {
        self.stats = Stats::new();
        self.cursor = 0;
        let cpu_start = super::udp::thread_cpu_us();
        let start = clock.now_us();
        let send_end = start.saturating_add(plan.duration_us);
        // Long enough for the last message's full retransmission schedule.
        let drain_us = ctx.timeout_us * (u64::from(ctx.retries) + 1) + 50_000;
        let mut stopped_at: Option<u64> = None;
        let mut started = 0u64;
        let mut visited = 0usize;
        let mut last_publish = start;
        let rate_per_us = plan.rate / 1e6;
        let batch_cap = 64u64;
        loop {
            let now = clock.now_us();
            let sending = stopped_at.is_none()
                && now < send_end
                && started < plan.max_exchanges
                && !(plan.one_pass && visited >= self.clients.len())
                && !stop.load(Ordering::Relaxed);
            self.window_open = sending;
            if !sending {
                let at = *stopped_at.get_or_insert(now);
                if self.inflight == 0 || now >= at + drain_us || stop.load(Ordering::Relaxed) {
                    break;
                }
            }

            // Drain what has arrived, several batches if need be: the kernel may deliver a whole
            // kick's worth of replies while one batch is handled, and replies left waiting in
            // the RX ring add to their latency and, once it is full, are dropped.
            let mut activity = 0;
            for _ in 0..RX_PASSES {
                let n = self.receive(t, ctx, clock, Duration::ZERO);
                activity += n;
                if n == 0 {
                    break;
                }
            }
            activity += self.send_followups(t, ctx, now);

            if sending {
                let due = ((now - start) as f64 * rate_per_us) as u64;
                let mut n = due.saturating_sub(started).min(batch_cap);
                while n > 0 {
                    if self.inflight >= ctx.max_inflight {
                        self.stats.window_full += 1;
                        break;
                    }
                    match self.pick(plan.one_pass, &mut visited) {
                        Some(local) => {
                            self.start_exchange(t, ctx, plan.scenario, local, now);
                            started += 1;
                            activity += 1;
                            n -= 1;
                        }
                        None => {
                            self.stats.window_full += 1;
                            break;
                        }
                    }
                }
            }

            activity += self.expire_timers(t, ctx, now);
            self.stats.tx_dropped += t.flush();

            if now >= last_publish + 100_000 {
                self.publish();
                last_publish = now;
            }

            if activity == 0 {
                // Sleep in the receive call until the next exchange is due (at most 1 ms).
                let next_due_us = if sending && rate_per_us > 0.0 {
                    let at = start + ((started + 1) as f64 / rate_per_us) as u64;
                    at.saturating_sub(now)
                } else {
                    1_000
                };
                let wait_us = next_due_us.clamp(0, 1_000);
                if ctx.busy_wait {
                    let until = clock.now_us() + wait_us;
                    while self.receive(t, ctx, clock, Duration::ZERO) == 0 && clock.now_us() < until
                    {
                        std::hint::spin_loop();
                    }
                } else if wait_us > 0 {
                    self.receive(t, ctx, clock, Duration::from_micros(wait_us));
                }
            }
        }
        // Whatever is still in flight now has had its chance.
        while let Some(p) = self.timers.pop_front() {
            let c = &mut self.clients[p.local as usize];
            if c.state.is_waiting() && c.seq == p.seq && c.retries == p.retries {
                self.stats.drops += 1;
                abandon(c);
            }
        }
        self.inflight = 0;
        self.stats.elapsed_us = clock.now_us() - start;
        self.stats.cpu_us = super::udp::thread_cpu_us().saturating_sub(cpu_start);
        self.stats.send_us = stopped_at.unwrap_or(start).saturating_sub(start);
        self.publish();
        std::mem::take(&mut self.stats)
    }

    fn publish(&mut self) {
        let s = &self.stats;
        let totals = [
            s.started_total(),
            s.completed_total(),
            s.drops,
            s.invalid_total(),
        ];
        let p = &self.progress;
        let atomics = [&p.started, &p.completed, &p.drops, &p.invalid];
        for (i, a) in atomics.iter().enumerate() {
            // Totals restart at each phase; the published counters only grow.
            let delta = totals[i].saturating_sub(self.totals[i]);
            a.fetch_add(delta, Ordering::Relaxed);
        }
        self.totals = totals;
        let mut h = p.interval.lock().unwrap_or_else(|e| e.into_inner());
        let _ = h.add(&self.interval);
        self.interval.reset();
    }

    fn pick(&mut self, one_pass: bool, visited: &mut usize) -> Option<usize> {
        let n = self.clients.len();
        for _ in 0..PICK_SCAN.min(n) {
            if one_pass && *visited >= n {
                return None;
            }
            let l = self.cursor;
            self.cursor = if l + 1 == n { 0 } else { l + 1 };
            *visited += 1;
            if !self.clients[l].state.is_waiting() {
                return Some(l);
            }
        }
        None
    }

    fn start_exchange(
        &mut self,
        t: &mut dyn Transport,
        ctx: &Ctx,
        scenario: Scenario,
        local: usize,
        now: u64,
    ) {
        let idx = self.first + local as u32;
        let c = &mut self.clients[local];
        let bound = c.holds_any();
        let next = match scenario {
            Scenario::FourMessage => State::Soliciting,
            Scenario::RapidCommit => {
                c.flags |= flag::RAPID;
                State::Soliciting
            }
            Scenario::Renew if bound => State::Renewing,
            Scenario::Rebind if bound => State::Rebinding,
            Scenario::Release if bound => State::Releasing,
            Scenario::Renew | Scenario::Rebind | Scenario::Release => State::Soliciting,
            Scenario::Information => State::InfoRequesting,
            Scenario::Mix => match (bound, mix64(u64::from(idx) ^ u64::from(c.seq)) % 100) {
                (false, 0..90) => State::Soliciting,
                (false, _) => State::InfoRequesting,
                (true, 0..60) => State::Renewing,
                (true, 60..70) => State::Rebinding,
                (true, 70..80) => State::Releasing,
                (true, 80..90) => State::InfoRequesting,
                (true, _) => State::Soliciting,
            },
        };
        c.state = next;
        c.seq = c.seq.wrapping_add(1);
        c.retries = 0;
        c.t_start_us = now as u32;
        if next == State::Releasing {
            // RFC 8415 §18.2.7: the client stops using the leases as soon as it sends Release,
            // so the server may hand them out again whether or not the Reply arrives.
            release_all(ctx, c, idx);
        }
        self.stats.started[Kind::of(c) as usize] += 1;
        self.inflight += 1;
        self.transmit(t, ctx, local, now);
    }

    fn transmit(&mut self, t: &mut dyn Transport, ctx: &Ctx, local: usize, now: u64) {
        let idx = self.first + local as u32;
        let c = self.clients[local];
        let server = self.servers.get(usize::from(c.server)).map(Vec::as_slice);
        let elapsed_cs = ((now as u32).wrapping_sub(c.t_start_us) / 10_000).min(0xffff) as u16;
        if t.tx_slot().is_none() {
            self.stats.tx_dropped += t.flush();
        }
        let Some(buf) = t.tx_slot() else {
            self.stats.tx_dropped += 1;
            return;
        };
        match ctx
            .wire
            .build(idx, &c, xid(idx, c.seq), server, elapsed_cs, buf)
        {
            Ok(n) => {
                t.tx_commit(n);
                self.stats.tx_packets += 1;
            }
            // Only a relay chain too deep for the buffer gets here; counted, then it times out.
            Err(_) => self.stats.tx_dropped += 1,
        }
        self.timers.push_back(Pending {
            local: local as u32,
            seq: c.seq,
            retries: c.retries,
            deadline_us: now + ctx.timeout_us,
        });
    }

    fn send_followups(&mut self, t: &mut dyn Transport, ctx: &Ctx, now: u64) -> usize {
        let n = self.followups.len();
        for i in 0..n {
            let local = self.followups[i] as usize;
            self.transmit(t, ctx, local, now);
        }
        self.followups.clear();
        n
    }

    fn expire_timers(&mut self, t: &mut dyn Transport, ctx: &Ctx, now: u64) -> usize {
        let mut n = 0;
        while let Some(p) = self.timers.front().copied() {
            if p.deadline_us > now {
                break;
            }
            self.timers.pop_front();
            let c = &mut self.clients[p.local as usize];
            if !(c.state.is_waiting() && c.seq == p.seq && c.retries == p.retries) {
                continue;
            }
            n += 1;
            self.stats.timeouts += 1;
            if c.retries < ctx.retries {
                c.retries += 1;
                self.stats.retransmits += 1;
                self.transmit(t, ctx, p.local as usize, now);
            } else {
                self.stats.drops += 1;
                self.inflight -= 1;
                abandon(c);
            }
        }
        n
    }

    /// Take in what has arrived, waiting up to `wait` for it. The replies of one call share
    /// one timestamp, read when the first is handed over: after the wait, never before it (a
    /// stamp taken before sleeping would shorten each latency by the time slept).
    fn receive(
        &mut self,
        t: &mut dyn Transport,
        ctx: &Ctx,
        clock: &Clock,
        wait: Duration,
    ) -> usize {
        let mut stamp = None;
        let r = t.recv(wait, &mut |payload| {
            let now = *stamp.get_or_insert_with(|| clock.now_us());
            self.stats.rx_packets += 1;
            self.on_reply(ctx, payload, now);
        });
        // A receive error (e.g. ICMP-induced ECONNREFUSED) loses nothing we could count
        // better: the exchanges involved time out.
        r.unwrap_or(0)
    }

    fn invalid(&mut self, k: Invalid) {
        self.stats.invalid[k.index()] += 1;
    }

    fn on_reply(&mut self, ctx: &Ctx, payload: &[u8], now: u64) {
        let (r, idx) = match ctx.wire.open(payload) {
            Ok(x) => x,
            Err(k) => return self.invalid(k),
        };
        let local = idx.wrapping_sub(self.first) as usize;
        let Some(&c) = self.clients.get(local) else {
            return self.invalid(Invalid::UnknownClient);
        };
        if !c.state.is_waiting() {
            self.stats.late += 1;
            return;
        }
        if r.transaction_id != xid(idx, c.seq) {
            if r.transaction_id == xid(idx, c.seq.wrapping_sub(1)) {
                self.stats.late += 1;
            } else {
                // RFC 8415 §16: the client discards it and keeps waiting.
                self.invalid(Invalid::BadXid);
            }
            return;
        }
        let mut c = c;
        let outcome = self.judge(ctx, &r, idx, &mut c);
        match outcome {
            Ok(true) => {
                let lat = u64::from((now as u32).wrapping_sub(c.t_start_us)).max(1);
                let _ = self.stats.latency_us.record(lat.min(LATENCY_MAX_US));
                let _ = self.interval.record(lat.min(LATENCY_MAX_US));
                self.stats.completed[Kind::of(&c) as usize] += 1;
                self.stats.completed_in_window += u64::from(self.window_open);
                self.inflight -= 1;
                c.rest();
            }
            Ok(false) => {
                // Advertise accepted: the Request goes out next.
                c.state = State::Requesting;
                c.seq = c.seq.wrapping_add(1);
                c.retries = 0;
                self.followups.push(local as u32);
            }
            Err(k) => {
                self.invalid(k);
                self.stats.failed += 1;
                self.inflight -= 1;
                if k == Invalid::StatusNoBinding {
                    release_all(ctx, &mut c, idx);
                }
                c.rest();
            }
        }
        self.clients[local] = c;
    }

    /// Check a reply against what client `c` waits for. `Ok(true)`: the exchange completed;
    /// `Ok(false)`: an Advertise was accepted.
    fn judge(
        &mut self,
        ctx: &Ctx,
        r: &crate::wire::dhcpv6::Repr<'_>,
        idx: u32,
        c: &mut Client,
    ) -> Result<bool, Invalid> {
        let sid = r.server_id.ok_or(Invalid::MissingServerId)?.bytes();
        Invalid::check_status(r.status.map(|s| s.code))?;
        match (c.state, r.msg_type) {
            (State::Soliciting, MessageType::Advertise) => {
                let leases = ctx.wire.leases(r, idx)?;
                c.server = self.intern(sid)?;
                take_offer(ctx, c, idx, &leases);
                Ok(false)
            }
            (State::Soliciting, MessageType::Reply)
                if c.flags & flag::RAPID != 0 && r.rapid_commit =>
            {
                let leases = ctx.wire.leases(r, idx)?;
                c.server = self.intern(sid)?;
                bind(ctx, c, idx, &leases)?;
                Ok(true)
            }
            (State::Requesting | State::Renewing, MessageType::Reply) => {
                if self.servers.get(usize::from(c.server)).map(Vec::as_slice) != Some(sid) {
                    return Err(Invalid::WrongServerId);
                }
                let leases = ctx.wire.leases(r, idx)?;
                bind(ctx, c, idx, &leases)?;
                Ok(true)
            }
            (State::Rebinding, MessageType::Reply) => {
                let leases = ctx.wire.leases(r, idx)?;
                c.server = self.intern(sid)?;
                bind(ctx, c, idx, &leases)?;
                Ok(true)
            }
            (State::Releasing | State::InfoRequesting, MessageType::Reply) => Ok(true),
            _ => Err(Invalid::UnexpectedType),
        }
    }

    fn intern(&mut self, sid: &[u8]) -> Result<u8, Invalid> {
        if let Some(i) = self.servers.iter().position(|s| s.as_slice() == sid) {
            return Ok(i as u8);
        }
        if self.servers.len() >= MAX_SERVERS {
            return Err(Invalid::WrongServerId);
        }
        self.servers.push(sid.to_vec());
        Ok((self.servers.len() - 1) as u8)
    }
}

/// The client gives up an exchange that got no answer.
fn abandon(c: &mut Client) {
    if c.state == State::Requesting {
        // The offer was never confirmed; what the client held before (if anything) stays.
        c.flags &= !(flag::OFFER_NA | flag::OFFER_PD);
    }
    if c.server != NO_SERVER && !c.holds_any() {
        c.server = NO_SERVER;
    }
    c.rest();
}

fn release_all(ctx: &Ctx, c: &mut Client, idx: u32) {
    if c.flags & flag::HAS_NA != 0 {
        ctx.na_owners.release(c.na_pool, c.na_off, idx);
    }
    if c.flags & flag::HAS_PD != 0 {
        ctx.pd_owners.release(c.pd_pool, c.pd_idx, idx);
    }
    c.flags &= !(flag::HAS_NA | flag::HAS_PD);
}

/// Remember an Advertise's offer in the lease fields. A held lease that differs from the offer
/// is given up: the client starts over with what this server offers.
fn take_offer(ctx: &Ctx, c: &mut Client, idx: u32, l: &Leases) {
    if let Some((pool, off)) = l.na {
        if c.flags & flag::HAS_NA != 0 && (c.na_pool, c.na_off) != (pool, off) {
            ctx.na_owners.release(c.na_pool, c.na_off, idx);
            c.flags &= !flag::HAS_NA;
        }
        c.na_pool = pool;
        c.na_off = off;
        c.flags |= flag::OFFER_NA;
    }
    if let Some((pool, off)) = l.pd {
        if c.flags & flag::HAS_PD != 0 && (c.pd_pool, c.pd_idx) != (pool, off) {
            ctx.pd_owners.release(c.pd_pool, c.pd_idx, idx);
            c.flags &= !flag::HAS_PD;
        }
        c.pd_pool = pool;
        c.pd_idx = off;
        c.flags |= flag::OFFER_PD;
    }
}

/// Record the leases a Reply grants, checking nobody else holds them.
fn bind(ctx: &Ctx, c: &mut Client, idx: u32, l: &Leases) -> Result<(), Invalid> {
    if let Some((pool, off)) = l.na {
        if c.flags & flag::HAS_NA != 0 && (c.na_pool, c.na_off) != (pool, off) {
            ctx.na_owners.release(c.na_pool, c.na_off, idx);
            c.flags &= !flag::HAS_NA;
        }
        if let Claim::Taken { .. } = ctx.na_owners.claim(pool, off, idx) {
            return Err(Invalid::Duplicate);
        }
        c.na_pool = pool;
        c.na_off = off;
        c.flags |= flag::HAS_NA;
    }
    if let Some((pool, off)) = l.pd {
        if c.flags & flag::HAS_PD != 0 && (c.pd_pool, c.pd_idx) != (pool, off) {
            ctx.pd_owners.release(c.pd_pool, c.pd_idx, idx);
            c.flags &= !flag::HAS_PD;
        }
        if let Claim::Taken { .. } = ctx.pd_owners.claim(pool, off, idx) {
            return Err(Invalid::Duplicate);
        }
        c.pd_pool = pool;
        c.pd_idx = off;
        c.flags |= flag::HAS_PD;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::pool::NaPool;
    use crate::loadgen::responder::{Fault, Responder, ResponderArgs};

    /// A transport like AF_XDP copy mode on veth: `flush` is the kick, and the whole round trip
    /// happens inside it, every reply landing at once in an RX ring of `cap` entries (the rest
    /// dropped, as the kernel does); `recv` hands out one batch of 64 at a time.
    struct Burst {
        responder: Responder,
        slot: Vec<u8>,
        queued: Vec<Vec<u8>>,
        ring: VecDeque<Vec<u8>>,
        cap: usize,
        ring_full: u64,
    }

    impl Transport for Burst {
        fn tx_slot(&mut self) -> Option<&mut [u8]> {
            (self.queued.len() < 64).then_some(&mut self.slot[..])
        }
        fn tx_commit(&mut self, len: usize) {
            self.queued.push(self.slot[..len].to_vec());
        }
        fn flush(&mut self) -> u64 {
            let mut out = [0u8; 1500];
            for req in std::mem::take(&mut self.queued) {
                if let Some(n) = self.responder.answer(&req, &mut out) {
                    if self.ring.len() < self.cap {
                        self.ring.push_back(out[..n].to_vec());
                    } else {
                        self.ring_full += 1;
                    }
                }
            }
            0
        }
        fn recv(&mut self, _wait: Duration, f: &mut dyn FnMut(&[u8])) -> std::io::Result<usize> {
            let n = self.ring.len().min(64);
            for r in self.ring.drain(..n) {
                f(&r);
            }
            Ok(n)
        }
        fn tx_errors(&self) -> (u64, Option<String>) {
            (0, None)
        }
    }

    fn responder(pool: NaPool, max_clients: usize) -> Responder {
        Responder::new(ResponderArgs {
            listen: "[::1]:547".parse().unwrap(),
            pools: vec![pool],
            pd_pools: vec![],
            fault: Fault::None,
            max_clients,
            duration: 60.0,
            xdp_iface: None,
            cpu: None,
            xdp_reflect: false,
        })
    }

    fn ctx(pool: NaPool, clients: usize) -> Ctx {
        Ctx {
            wire: Wire {
                seed: 7,
                ia_na: true,
                ia_pd: false,
                relays: vec![],
                remote_id_enterprise: 0,
                na_pools: vec![pool],
                pd_pools: vec![],
            },
            timeout_us: 5_000_000,
            retries: 0,
            max_inflight: clients,
            busy_wait: false,
            na_owners: Ownership::with_capacity(clients * 2),
            pd_owners: Ownership::with_capacity(16),
        }
    }

    #[test]
    fn a_kick_worth_of_replies_is_drained_before_more_is_sent() {
        // Flat out: every turn starts 64 exchanges and sends the Requests of the Advertises it
        // took in, so a kick brings back up to twice a batch. A turn that took in only one batch
        // fell behind by a batch a turn until the ring overflowed and replies were lost.
        const CLIENTS: usize = 4096;
        let pool: NaPool = "2001:db8:1::/64".parse().unwrap();
        let mut t = Burst {
            responder: responder(pool, CLIENTS * 2),
            slot: vec![0; 1500],
            queued: Vec::new(),
            ring: VecDeque::new(),
            cap: 512,
            ring_full: 0,
        };
        let ctx = ctx(pool, CLIENTS);
        let plan = Plan {
            scenario: Scenario::FourMessage,
            rate: 1e9,
            duration_us: 30_000_000,
            max_exchanges: CLIENTS as u64,
            one_pass: true,
        };
        let mut w = Worker::new(0, CLIENTS);
        let s = w.run_phase(&mut t, &ctx, &plan, &Clock::new(), &AtomicBool::new(false));
        assert_eq!(t.ring_full, 0, "replies lost on a full RX ring");
        assert_eq!(s.completed_total(), CLIENTS as u64);
        assert_eq!((s.drops, s.invalid_total()), (0, 0));
    }

    /// A server that answers each message `delay` after it was sent; `recv` sleeps (up to its
    /// wait) until the next reply is due, like `poll()` does.
    struct Slow {
        responder: Responder,
        delay: Duration,
        slot: Vec<u8>,
        due: VecDeque<(std::time::Instant, Vec<u8>)>,
        /// Calls that were allowed to sleep.
        waits: usize,
    }

    impl Transport for Slow {
        fn tx_slot(&mut self) -> Option<&mut [u8]> {
            Some(&mut self.slot[..])
        }
        fn tx_commit(&mut self, len: usize) {
            let mut out = [0u8; 1500];
            let req = self.slot[..len].to_vec();
            if let Some(n) = self.responder.answer(&req, &mut out) {
                let at = std::time::Instant::now() + self.delay;
                self.due.push_back((at, out[..n].to_vec()));
            }
        }
        fn flush(&mut self) -> u64 {
            0
        }
        fn recv(&mut self, wait: Duration, f: &mut dyn FnMut(&[u8])) -> std::io::Result<usize> {
            self.waits += usize::from(!wait.is_zero());
            if let Some(&(at, _)) = self.due.front() {
                let now = std::time::Instant::now();
                if at > now && !wait.is_zero() {
                    std::thread::sleep((at - now).min(wait));
                }
            } else {
                std::thread::sleep(wait);
            }
            let mut n = 0;
            while self
                .due
                .front()
                .is_some_and(|(at, _)| *at <= std::time::Instant::now())
            {
                let (_, r) = self.due.pop_front().expect("checked");
                f(&r);
                n += 1;
            }
            Ok(n)
        }
        fn tx_errors(&self) -> (u64, Option<String>) {
            (0, None)
        }
    }

    /// Twenty exchanges at 400/s against a server answering 3 ms late. Each exchange is two
    /// round trips: none can take under 6 ms.
    fn run_slow(busy_wait: bool) -> (Stats, Slow) {
        const CLIENTS: usize = 20;
        let pool: NaPool = "2001:db8:1::/64".parse().unwrap();
        let mut t = Slow {
            responder: responder(pool, CLIENTS * 2),
            delay: Duration::from_millis(3),
            slot: vec![0; 1500],
            due: VecDeque::new(),
            waits: 0,
        };
        let ctx = Ctx {
            busy_wait,
            ..ctx(pool, CLIENTS)
        };
        let plan = Plan {
            scenario: Scenario::FourMessage,
            rate: 400.0,
            duration_us: 10_000_000,
            max_exchanges: CLIENTS as u64,
            one_pass: true,
        };
        let mut w = Worker::new(0, CLIENTS);
        let s = w.run_phase(&mut t, &ctx, &plan, &Clock::new(), &AtomicBool::new(false));
        assert_eq!(s.completed_total(), CLIENTS as u64);
        assert_eq!((s.drops, s.invalid_total()), (0, 0));
        (s, t)
    }

    #[test]
    fn a_reply_taken_in_after_a_wait_is_timed_when_it_arrives() {
        // Every reply is taken in by a receive that slept for it (the engine waits at most
        // 1 ms at a time). A timestamp read before the sleep made latencies shorter by the
        // time slept.
        let (s, t) = run_slow(false);
        assert!(t.waits > 0, "the engine never slept in the transport");
        assert!(
            s.latency_us.min() >= 6_000,
            "shortest exchange {} µs, but each takes at least 6000 µs",
            s.latency_us.min()
        );
    }

    #[test]
    fn busy_wait_polls_the_transport_without_sleeping_in_it() {
        let (s, t) = run_slow(true);
        assert_eq!(t.waits, 0, "a busy-waiting engine slept in the transport");
        assert!(s.latency_us.min() >= 6_000, "{} µs", s.latency_us.min());
    }
}
