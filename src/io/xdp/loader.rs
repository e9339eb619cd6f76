//! Loading and attaching the XDP program (`ebpf/xdp_dhcp6.c`, built by `build.rs` and embedded
//! here) with aya: native (driver) mode first, generic (SKB) mode as the logged fallback; a
//! stale program left by a crashed run is detached first; the program is detached again when
//! [`XdpProgram`] is dropped (clean exit).

use std::io;

use aya::maps::{PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};

use super::sys;
use super::XdpError;

/// Name of the program function in `ebpf/xdp_dhcp6.c` (what `bpftool prog` shows).
pub const PROGRAM_NAME: &str = "xdp_dhcp6";

/// The compiled object, embedded so the installed binary needs no extra files.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdp_dhcp6.o"));

/// Path of the compiled object in the build tree (tests attach it with `ip link` to simulate a
/// stale program left by a crashed run).
#[doc(hidden)]
pub const OBJECT_PATH: &str = concat!(env!("OUT_DIR"), "/xdp_dhcp6.o");

/// A pass-all program with another name (`xdp_foreign`), for tests of the foreign-program rule.
#[doc(hidden)]
pub const FOREIGN_TEST_OBJECT_PATH: &str = concat!(env!("OUT_DIR"), "/xdp_pass_test.o");

/// Counter slots of the `counters` map; order matches `enum counter` in the C source.
const CNT_STEERED: u32 = 0;
const CNT_PASSED: u32 = 1;
const CNT_MALFORMED: u32 = 2;
const CNT_UNBOUND: u32 = 3;

/// Which XDP attach mode to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic mode with a log line.
    #[default]
    Auto,
    /// Native mode or fail.
    Native,
    /// Generic (SKB) mode: works on any interface, slower.
    Generic,
}

/// The mode the program ended up attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attached {
    Native,
    Generic,
}

/// Per-interface XDP program counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgramCounters {
    /// DHCPv6 server frames redirected into an AF_XDP socket.
    pub steered: u64,
    /// Other traffic handed to the kernel.
    pub passed: u64,
    /// Frames with truncated or unparseable headers (handed to the kernel).
    pub malformed: u64,
    /// DHCPv6 server frames on a queue with no socket bound (handed to the kernel).
    pub unbound: u64,
}

/// Load the program into the kernel without attaching it (the verifier runs): used by
/// [`super::probe`] and [`XdpProgram::attach`].
pub fn load() -> Result<Ebpf, XdpError> {
    let mut ebpf = EbpfLoader::new()
        .load(OBJECT)
        .map_err(|e| XdpError::Load(e.to_string()))?;
    let prog: &mut Xdp = program(&mut ebpf)?;
    prog.load().map_err(|e| XdpError::Load(e.to_string()))?;
    Ok(ebpf)
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or_else(|| XdpError::Load(format!("object has no program {PROGRAM_NAME}")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| XdpError::Load(e.to_string()))
}

/// Name of a loaded program by id, if it is still loaded and visible to us.
fn program_name(id: u32) -> Option<String> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_string))
}

/// Detach XDP programs left on `ifindex` by a crashed run (or, if `replace_foreign`, by anyone)
/// so that ours can attach. A program held by a BPF link belongs to a live process (or a pin)
/// and is never touched.
fn clear_stale(ifname: &str, ifindex: u32, replace_foreign: bool) -> Result<(), XdpError> {
    let attached = sys::xdp_query(ifindex).map_err(|e| XdpError::Interface {
        name: ifname.to_string(),
        what: "querying attached XDP programs",
        source: e,
    })?;
    for (mode, id) in attached.iter() {
        let name = program_name(id).unwrap_or_else(|| "?".to_string());
        if name != PROGRAM_NAME && !replace_foreign {
            return Err(XdpError::ForeignProgram {
                ifname: ifname.to_string(),
                id,
                name,
            });
        }
        match sys::xdp_detach(ifindex, mode) {
            Ok(()) => tracing::warn!(
                interface = ifname,
                prog_id = id,
                prog_name = %name,
                "detached a stale XDP program (left by a crashed run?)"
            ),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(XdpError::Busy {
                    ifname: ifname.to_string(),
                    id,
                    name,
                });
            }
            Err(e) => {
                return Err(XdpError::Interface {
                    name: ifname.to_string(),
                    what: "detaching a stale XDP program",
                    source: e,
                })
            }
        }
    }
    Ok(())
}

/// Our program attached to one interface, with its maps. Dropping it detaches the program.
pub struct XdpProgram {
    ebpf: Ebpf,
    ifname: String,
    mode: Attached,
}

impl XdpProgram {
    pub fn attach(
        ifname: &str,
        ifindex: u32,
        mode: AttachMode,
        replace_foreign: bool,
    ) -> Result<Self, XdpError> {
        clear_stale(ifname, ifindex, replace_foreign)?;
        let mut ebpf = load()?;
        let prog = program(&mut ebpf)?;
        let attach_err = |e: aya::programs::ProgramError, m: &str| XdpError::Attach {
            ifname: ifname.to_string(),
            mode: m.to_string(),
            reason: busy_hint(&e),
        };
        let attached = match mode {
            AttachMode::Native => {
                prog.attach_to_if_index(ifindex, XdpMode::Driver)
                    .map_err(|e| attach_err(e, "native"))?;
                Attached::Native
            }
            AttachMode::Generic => {
                prog.attach_to_if_index(ifindex, XdpMode::Skb)
                    .map_err(|e| attach_err(e, "generic"))?;
                Attached::Generic
            }
            AttachMode::Auto => match prog.attach_to_if_index(ifindex, XdpMode::Driver) {
                Ok(_) => Attached::Native,
                Err(native) => {
                    tracing::warn!(
                        interface = ifname,
                        reason = %busy_hint(&native),
                        "native XDP attach failed; falling back to generic (SKB) mode, which is slower"
                    );
                    prog.attach_to_if_index(ifindex, XdpMode::Skb)
                        .map_err(|e| attach_err(e, "generic"))?;
                    Attached::Generic
                }
            },
        };
        tracing::info!(interface = ifname, mode = ?attached, "XDP program attached");
        Ok(XdpProgram {
            ebpf,
            ifname: ifname.to_string(),
            mode: attached,
        })
    }

    pub fn mode(&self) -> Attached {
        self.mode
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Steer frames received on `queue` into the AF_XDP socket `fd`.
    pub fn register(&mut self, queue: u32, fd: i32) -> Result<(), XdpError> {
        let map = self
            .ebpf
            .map_mut("xsks")
            .ok_or_else(|| XdpError::Load("object has no map xsks".into()))?;
        let mut xsks = XskMap::try_from(map).map_err(|e| XdpError::Load(e.to_string()))?;
        xsks.set(queue, fd, 0)
            .map_err(|e| XdpError::Load(format!("XSKMAP[{queue}]: {e}")))
    }

    pub fn counters(&self) -> Result<ProgramCounters, XdpError> {
        let map = self
            .ebpf
            .map("counters")
            .ok_or_else(|| XdpError::Load("object has no map counters".into()))?;
        let arr =
            PerCpuArray::<_, u64>::try_from(map).map_err(|e| XdpError::Load(e.to_string()))?;
        let sum = |i: u32| -> Result<u64, XdpError> {
            let v = arr.get(&i, 0).map_err(|e| XdpError::Load(e.to_string()))?;
            Ok(v.iter().sum())
        };
        Ok(ProgramCounters {
            steered: sum(CNT_STEERED)?,
            passed: sum(CNT_PASSED)?,
            malformed: sum(CNT_MALFORMED)?,
            unbound: sum(CNT_UNBOUND)?,
        })
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Dropping `ebpf` closes the BPF link, which detaches the program.
        tracing::info!(interface = %self.ifname, "detaching XDP program");
    }
}

/// Explain the common attach failure: another program is attached through a BPF link.
fn busy_hint(e: &aya::programs::ProgramError) -> String {
    let s = e.to_string();
    let busy = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
        == Some(libc::EBUSY)
        || s.contains("Device or resource busy");
    if busy {
        format!("{s} (another XDP program is attached through a BPF link: is another xdhcp6 running on this interface?)")
    } else {
        s
    }
}
