//! Crash test: a child process (this test binary, re-executed) grants leases as fast as it can
//! and reports each grant on a pipe after the store call returned; the parent kills it with
//! SIGKILL at a random moment, reopens the file and checks that every reported grant is there.
//! Repeated many times on the same file, so growth, reopen and renewals are all crossed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xdhcp6::lease::table::{Durability, LeaseTable, TableConfig};
use xdhcp6::lease::{
    AllocRequest, BindingKey, IaType, LeaseStore, Lifetimes, NoReservations, PoolSpec, Resource,
};

const CHILD_ENV: &str = "XDHCP6_LEASE_CRASH_CHILD";

fn pools() -> [PoolSpec; 2] {
    [
        PoolSpec {
            id: 1,
            ia_type: IaType::Na,
            base: "2001:db8::".parse().unwrap(),
            len: 128,
            count: 1 << 40,
        },
        PoolSpec {
            id: 2,
            ia_type: IaType::Pd,
            base: "2001:db8:8000::".parse().unwrap(),
            len: 56,
            count: 1 << 16,
        },
    ]
}

fn cfg(path: &str, group: bool) -> TableConfig {
    TableConfig {
        shards: 8,
        chunk_records: 256,
        durability: if group {
            Durability::GroupCommit {
                batch_window: Duration::from_micros(200),
                max_interval: Duration::from_millis(20),
            }
        } else {
            Durability::Mapped
        },
        pools: vec![pools()[1]],
        ..TableConfig::new(path)
    }
}

fn duid(run: u64, i: u64) -> Vec<u8> {
    let mut d = format!("run{run}-client{i}").into_bytes();
    if i % 7 == 0 {
        d.resize(100 + (i % 31) as usize, b'x'); // long DUID: extension records
    }
    d
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The child: grant, renew and report until killed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // not a child: nothing to do
    };
    let run: u64 = std::env::var("XDHCP6_CRASH_RUN").unwrap().parse().unwrap();
    let group = std::env::var("XDHCP6_CRASH_GROUP").is_ok();
    let t = LeaseTable::open(cfg(&path, group)).unwrap();
    let pools = pools();
    let mut out = std::io::stdout().lock();
    let lt = Lifetimes {
        preferred: 1 << 29,
        valid: 1 << 30,
    };
    for i in 0u64.. {
        let now = 1_000_000 + run * 1_000_000 + i;
        let pd = i % 5 == 4;
        let pool = &pools[usize::from(pd)];
        let (d, iaid, lease) = if i % 3 == 2 && i > 10 {
            // Renew an earlier client of this run: the newer expiry must survive.
            let j = (i * 7919) % (i - 1);
            if j % 5 == 4 {
                continue; // that one was a prefix
            }
            let d = duid(run, j);
            let key = BindingKey {
                duid: &d,
                iaid: j as u32,
                ia_type: IaType::Na,
            };
            // Alternately lookup then bind, and the one-call renew (its in-place fast path).
            let l = if (i / 3) % 2 == 0 {
                let Some(l) = t.lookup(&key, &pools[0], now) else {
                    continue;
                };
                t.bind(&key, 1, l.resource, lt, now).unwrap()
            } else {
                let Some(l) = t.renew(&key, &pools[0], lt, now) else {
                    continue;
                };
                l.unwrap()
            };
            (d.clone(), j as u32, l)
        } else {
            let d = duid(run, i);
            let key = BindingKey {
                duid: &d,
                iaid: i as u32,
                ia_type: pool.ia_type,
            };
            let req = AllocRequest {
                key,
                pool,
                hint: None,
                reserved: &NoReservations,
                lifetimes: lt,
                now,
            };
            let l = t.allocate(&req, true).unwrap();
            (d, i as u32, l)
        };
        if group {
            t.wait_durable(t.commit_ticket()).unwrap();
        }
        writeln!(
            out,
            "G {} {} {} {} {} {}",
            hex(&d),
            iaid,
            u8::from(lease.resource.len != 128),
            lease.resource.addr,
            lease.resource.len,
            lease.expires_at
        )
        .unwrap();
        out.flush().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdhcp6-lease-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

type Grants = HashMap<(Vec<u8>, u32, u8), (Resource, u64)>;

fn crash_loop(name: &str, group: bool, iterations: u64) {
    let path = tmp(name);
    let pstr = path.to_str().unwrap().to_string();
    let mut rng = Rng(0x9e37_79b9
        ^ Instant::now().elapsed().as_nanos() as u64
        ^ u64::from(std::process::id()));
    let mut grants: Grants = HashMap::new();
    let mut total_reported = 0usize;
    for run in 0..iterations {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &pstr)
            .env("XDHCP6_CRASH_RUN", run.to_string())
            .envs(group.then_some(("XDHCP6_CRASH_GROUP", "1")))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(path.with_extension("stderr")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut first = Some(tx);
            let mut r = BufReader::new(stdout);
            let mut buf = String::new();
            loop {
                buf.clear();
                match r.read_line(&mut buf) {
                    Ok(0) | Err(_) => break,
                    // libtest may print "test crash_child ... " before the first line.
                    Ok(_) if buf.ends_with('\n') && buf.contains("G ") => {
                        let at = buf.find("G ").unwrap();
                        lines.push(buf[at..].trim_end().to_string());
                        if let Some(tx) = first.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                }
            }
            lines
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("child reported nothing");
        std::thread::sleep(Duration::from_micros(rng.next() % 150_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        total_reported += lines.len();
        for l in lines {
            let f: Vec<&str> = l.split(' ').collect();
            let key = (unhex(f[1]), f[2].parse().unwrap(), f[3].parse().unwrap());
            let res = Resource {
                addr: f[4].parse::<Ipv6Addr>().unwrap(),
                len: f[5].parse().unwrap(),
            };
            grants.insert(key, (res, f[6].parse().unwrap()));
        }
        // Reopen and check every grant ever reported.
        let t = LeaseTable::open(cfg(&pstr, group)).unwrap();
        let rep = t.open_report().clone();
        assert_eq!(rep.corrupt, 0, "run {run}: {rep:?}");
        let pools = pools();
        for ((d, iaid, pd), (res, expires)) in &grants {
            let pool = &pools[usize::from(*pd)];
            let key = BindingKey {
                duid: d,
                iaid: *iaid,
                ia_type: pool.ia_type,
            };
            let l = t.lookup(&key, pool, 0).unwrap_or_else(|| {
                panic!(
                    "run {run}: reported grant lost: {} iaid {iaid} {res:?}",
                    String::from_utf8_lossy(d)
                )
            });
            assert_eq!(l.resource, *res, "run {run}");
            assert!(l.expires_at >= *expires, "run {run}: renewal lost");
        }
        // At most the one grant in flight when each child died was written but not reported.
        let extra = t.len() - grants.len() as u64;
        assert!(
            extra <= run + 1,
            "run {run}: {extra} unreported records: {rep:?}"
        );
    }
    eprintln!(
        "{name}: {iterations} kills, {total_reported} grants reported, {} bindings checked",
        grants.len()
    );
    let _ = std::fs::remove_file(&path);
}

fn iterations(default: u64) -> u64 {
    std::env::var("XDHCP6_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill9_loses_no_reported_grant() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    crash_loop("mapped", false, iterations(30));
}

#[test]
fn kill9_loses_no_reported_grant_group_commit() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    crash_loop("group", true, iterations(8));
}
