//! Offline inspection of a lease file (`xdhcp6 leases --file PATH`): read-only, works while a
//! server has the file open (it never takes the lock and never writes).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::Ipv6Addr;
use std::path::Path;

use super::header::{self, HEADER_BYTES};
use super::map::ReadOnly;
use super::record::{self, Record, Slot, DUID_INLINE_PREFIX, RECORD_SIZE};
use super::TableError;
use crate::lease::{BindingState, IaType, Lifetimes, Resource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    JsonLines,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// Which records to export.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExportFilter {
    #[default]
    All,
    /// Bindings of this DUID.
    Duid(Vec<u8>),
    /// The record whose address or prefix contains this address.
    Address(Ipv6Addr),
    /// Records whose address or prefix lies inside this prefix.
    Prefix(Ipv6Addr, u8),
}

impl ExportFilter {
    fn matches(&self, e: &LeaseEntry) -> bool {
        let within = |net: Ipv6Addr, len: u8, a: Ipv6Addr| {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(net) & mask
        };
        match self {
            ExportFilter::All => true,
            ExportFilter::Duid(d) => &e.duid == d,
            ExportFilter::Address(a) => within(e.resource.addr, e.resource.len, *a),
            ExportFilter::Prefix(net, len) => {
                e.resource.len >= *len && within(*net, *len, e.resource.addr)
            }
        }
    }
}

/// One record, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEntry {
    pub duid: Vec<u8>,
    pub iaid: u32,
    pub ia_type: IaType,
    pub resource: Resource,
    pub state: BindingState,
    pub pool_id: u32,
    pub lifetimes: Lifetimes,
    pub cltt: u64,
    pub expires_at: u64,
    pub partner_expires: u64,
    pub partner_acked: bool,
    pub seq: u64,
    pub alloc_server: u8,
}

/// What reading the file found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub records: u64,
    pub exported: u64,
    pub corrupt: u64,
    pub superseded: u64,
}

/// Read every valid record of a lease file (newest copy of each resource).
pub fn read_all(path: &Path) -> Result<(Vec<LeaseEntry>, ExportSummary), TableError> {
    let io = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| TableError::Io { path, op, source }
    };
    let file = File::open(path).map_err(io("open"))?;
    let map = ReadOnly::map(&file).map_err(io("mmap"))?;
    let bytes = map.bytes();
    header::read(bytes).map_err(|reason| TableError::BadHeader {
        path: path.to_path_buf(),
        reason,
    })?;
    let nslots = (bytes.len() - HEADER_BYTES) / RECORD_SIZE;
    let slot_bytes = |s: usize| -> Option<&[u8; RECORD_SIZE]> {
        (s < nslots).then(|| {
            bytes[HEADER_BYTES + s * RECORD_SIZE..HEADER_BYTES + (s + 1) * RECORD_SIZE]
                .try_into()
                .expect("record size")
        })
    };
    let mut sum = ExportSummary::default();
    let mut by_res: HashMap<Resource, LeaseEntry> = HashMap::new();
    for s in 0..nslots {
        let r = match record::decode(slot_bytes(s).expect("in range")) {
            Ok(Slot::Main(r)) => r,
            Ok(_) => continue,
            Err(_) => {
                sum.corrupt += 1;
                continue;
            }
        };
        let Some(duid) = full_duid(&r, |x| {
            slot_bytes(x as usize).and_then(|b| record::decode(b).ok())
        }) else {
            sum.corrupt += 1;
            continue;
        };
        let e = LeaseEntry {
            duid,
            iaid: r.iaid,
            ia_type: r.ia_type,
            resource: r.resource,
            state: r.state,
            pool_id: r.pool_id,
            lifetimes: r.lifetimes,
            cltt: r.cltt,
            expires_at: r.expires_at(),
            partner_expires: r.partner_expires,
            partner_acked: r.partner_acked,
            seq: r.seq,
            alloc_server: r.alloc_server,
        };
        match by_res.get(&e.resource) {
            Some(old) if (old.seq, old.partner_acked) >= (e.seq, e.partner_acked) => {
                sum.superseded += 1
            }
            Some(_) => {
                sum.superseded += 1;
                by_res.insert(e.resource, e);
            }
            None => {
                by_res.insert(e.resource, e);
            }
        }
    }
    let mut out: Vec<LeaseEntry> = by_res.into_values().collect();
    out.sort_by_key(|e| e.resource);
    sum.records = out.len() as u64;
    Ok((out, sum))
}

fn full_duid(r: &Record, mut slot: impl FnMut(u32) -> Option<Slot>) -> Option<Vec<u8>> {
    let mut d = r.inline_bytes().to_vec();
    if r.has_ext() {
        debug_assert_eq!(d.len(), DUID_INLINE_PREFIX);
        for s in r.ext_slots() {
            if d.len() == usize::from(r.duid_len) {
                break;
            }
            match slot(s)? {
                Slot::Ext { len, data } => d.extend_from_slice(&data[..usize::from(len)]),
                _ => return None,
            }
        }
    }
    (d.len() == usize::from(r.duid_len)).then_some(d)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn resource_str(r: &Resource) -> String {
    if r.len == 128 {
        r.addr.to_string()
    } else {
        format!("{}/{}", r.addr, r.len)
    }
}

/// Write the records of `path` that match `filter` to `w`.
pub fn export(
    path: &Path,
    format: ExportFormat,
    filter: &ExportFilter,
    w: &mut dyn Write,
) -> Result<ExportSummary, TableError> {
    let (entries, mut sum) = read_all(path)?;
    let werr = |source| TableError::Io {
        path: path.to_path_buf(),
        op: "write export",
        source,
    };
    if format == ExportFormat::Csv {
        writeln!(w, "duid,iaid,ia_type,resource,state,pool_id,preferred,valid,cltt,expires_at,partner_expires,partner_acked,seq,alloc_server").map_err(werr)?;
    }
    for e in entries.iter().filter(|e| filter.matches(e)) {
        let ia = match e.ia_type {
            IaType::Na => "na",
            IaType::Pd => "pd",
        };
        match format {
            ExportFormat::JsonLines => {
                let v = serde_json::json!({
                    "duid": hex(&e.duid), "iaid": e.iaid, "ia_type": ia, "resource": resource_str(&e.resource),
                    "state": e.state.name(), "pool_id": e.pool_id, "preferred": e.lifetimes.preferred,
                    "valid": e.lifetimes.valid, "cltt": e.cltt, "expires_at": e.expires_at,
                    "partner_expires": e.partner_expires, "partner_acked": e.partner_acked, "seq": e.seq,
                    "alloc_server": e.alloc_server,
                });
                writeln!(w, "{v}").map_err(werr)?;
            }
            ExportFormat::Csv => {
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    hex(&e.duid),
                    e.iaid,
                    ia,
                    resource_str(&e.resource),
                    e.state.name(),
                    e.pool_id,
                    e.lifetimes.preferred,
                    e.lifetimes.valid,
                    e.cltt,
                    e.expires_at,
                    e.partner_expires,
                    e.partner_acked,
                    e.seq,
                    e.alloc_server
                )
                .map_err(werr)?;
            }
        }
        sum.exported += 1;
    }
    Ok(sum)
}
