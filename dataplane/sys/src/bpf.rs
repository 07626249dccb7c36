//! The bpf(2) syscall. Every command goes through [`sys_bpf`], one function
//! to read (as in aya's `sys/bpf.rs`); the safe wrappers below build each
//! command's attribute block with pointers that live across the call.
//!
//! Each attribute block is a `#[repr(C)]` prefix of `union bpf_attr` for its
//! command, without implicit padding; the kernel zero-extends a shorter
//! block, so only the fields used are declared.

use std::cell::Cell;
use std::ffi::CStr;
use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One `struct bpf_insn`: opcode, dst/src registers in one byte (dst in the
/// low nibble on little-endian hosts), offset, immediate.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    pub fn src(&self) -> u8 {
        self.regs >> 4
    }
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{code {:#04x} dst r{} src r{} off {} imm {:#x}}}",
            self.code,
            self.dst(),
            self.src(),
            self.off,
            self.imm
        )
    }
}

/// The bpf(2) commands kxdp uses (`enum bpf_cmd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Cmd {
    MapCreate = 0,
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    ProgLoad = 5,
    ProgTestRun = 10,
    ObjGetInfoByFd = 15,
    LinkCreate = 28,
}

/// `BPF_MAP_TYPE_ARRAY`.
pub const MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_MAP_TYPE_XSKMAP`.
pub const MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_PROG_TYPE_XDP`.
pub const PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` attach type.
pub const ATTACH_TYPE_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE`.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    _pad: u32,
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The first fields of `struct bpf_prog_info` (the kernel fills up to
/// `info_len`); its pointer fields stay zero so nothing else is written.
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// The first fields of `struct bpf_map_info`.
#[repr(C)]
#[derive(Default, Debug)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
}

/// `BPF_MAP_TYPE_PERCPU_HASH`.
const MAP_TYPE_PERCPU_HASH: u32 = 5;
/// `BPF_MAP_TYPE_PERCPU_ARRAY`.
const MAP_TYPE_PERCPU_ARRAY: u32 = 6;

#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// Marker for the attribute blocks above.
///
/// # Safety
///
/// Implementors are `#[repr(C)]` prefixes of `union bpf_attr` without
/// implicit padding bytes.
unsafe trait Attr {}
// SAFETY: each is a repr(C) prefix of bpf_attr with explicit padding only.
unsafe impl Attr for MapCreateAttr {}
// SAFETY: as above.
unsafe impl Attr for MapElemAttr {}
// SAFETY: as above.
unsafe impl Attr for ProgLoadAttr {}
// SAFETY: as above.
unsafe impl Attr for TestRunAttr {}
// SAFETY: as above.
unsafe impl Attr for InfoAttr {}
// SAFETY: as above.
unsafe impl Attr for LinkCreateAttr {}

/// One bpf(2) call as a replacement sees it ([`override_syscall`]): the
/// command and its arguments, decoded (pointers already followed).
#[derive(Debug)]
pub enum Call<'a> {
    /// BPF_MAP_CREATE.
    MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        name: &'a str,
    },
    /// BPF_MAP_LOOKUP_ELEM of a 32-bit key; answer with [`Reply::Bytes`].
    MapLookup { map_fd: u32, key: u32 },
    /// BPF_MAP_UPDATE_ELEM of a 32-bit key and value.
    MapUpdate { map_fd: u32, key: u32, value: u32 },
    /// BPF_MAP_DELETE_ELEM of a 32-bit key.
    MapDelete { map_fd: u32, key: u32 },
    /// BPF_PROG_LOAD of an XDP program.
    ProgLoad {
        name: &'a str,
        insns: &'a [Insn],
        license: &'a CStr,
    },
    /// BPF_PROG_TEST_RUN on `data`; answer with [`Reply::Value`] (the action).
    ProgTestRun { prog_fd: u32, data: &'a [u8] },
    /// BPF_OBJ_GET_INFO_BY_FD of a program; answer with [`Reply::Value`] (its id).
    ProgInfo { prog_fd: u32 },
    /// BPF_OBJ_GET_INFO_BY_FD of a map; answer with [`Reply::MapInfo`].
    MapInfo { map_fd: u32 },
    /// BPF_LINK_CREATE of an XDP link.
    LinkCreate {
        prog_fd: u32,
        ifindex: u32,
        flags: u32,
    },
}

/// What a replacement returns for a [`Call`] that succeeds.
#[derive(Debug)]
pub enum Reply {
    /// Success without a result (map update, delete).
    Done,
    /// A new descriptor (map create, program load, link create): any open
    /// descriptor the replacement owns, for instance a dup of `/dev/null`.
    Fd(OwnedFd),
    /// A number (a program id, a test run's action).
    Value(u32),
    /// A map lookup's value bytes (copied into the caller's buffer).
    Bytes(Vec<u8>),
    /// A map's info.
    MapInfo(MapInfo),
}

/// A replacement for the bpf(2) syscall on this thread.
pub type Syscall = fn(&Call<'_>) -> io::Result<Reply>;

thread_local! {
    static OVERRIDE: Cell<Option<Syscall>> = const { Cell::new(None) };
}

/// Until the returned guard is dropped, every bpf(2) call made by this
/// thread goes to `replacement` instead of the kernel (as aya's
/// `override_syscall`): the loader, the attach fallback and map updates
/// are tested that way without root.
pub fn override_syscall(replacement: Syscall) -> OverrideGuard {
    let previous = OVERRIDE.with(|o| o.replace(Some(replacement)));
    OverrideGuard { previous }
}

/// Restores the previous bpf(2) behaviour of the thread on drop.
#[derive(Debug)]
pub struct OverrideGuard {
    previous: Option<Syscall>,
}

impl Drop for OverrideGuard {
    fn drop(&mut self) {
        OVERRIDE.with(|o| o.set(self.previous));
    }
}

/// The replacement's answer to `call`, when one is installed on this
/// thread (`None`: go to the kernel).
fn intercept<'a>(call: impl FnOnce() -> Call<'a>) -> Option<io::Result<Reply>> {
    let replacement = OVERRIDE.with(Cell::get)?;
    Some(replacement(&call()))
}

fn unexpected(reply: Reply) -> io::Error {
    io::Error::other(format!("bpf override: unexpected reply {reply:?}"))
}

impl Reply {
    fn fd(self) -> io::Result<OwnedFd> {
        match self {
            Reply::Fd(fd) => Ok(fd),
            other => Err(unexpected(other)),
        }
    }

    fn done(self) -> io::Result<()> {
        match self {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn value(self) -> io::Result<u32> {
        match self {
            Reply::Value(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }
}

/// bpf(cmd, attr, sizeof attr): the one place kxdp enters the syscall.
///
/// # Safety
///
/// `attr` must be the attribute block of `cmd`, and every pointer in it
/// must be valid for the reads and writes the kernel does for `cmd`
/// (instructions, license, log buffer, info struct, test data) for the
/// duration of the call.
unsafe fn sys_bpf<A: Attr>(cmd: Cmd, attr: &mut A) -> io::Result<i64> {
    // SAFETY: `attr` is a live, writable block of `size_of::<A>()` bytes;
    // the caller vouches for the pointers inside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            (attr as *mut A).cast::<libc::c_void>(),
            size_of::<A>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// Turn a syscall's returned descriptor into an owned one.
fn owned_fd(ret: i64) -> io::Result<OwnedFd> {
    let fd = i32::try_from(ret).map_err(|_| io::Error::other("bpf returned a bad fd"))?;
    // SAFETY: the kernel just created `fd` for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_u32(fd: &OwnedFd) -> u32 {
    // A live descriptor is never negative.
    fd.as_raw_fd() as u32
}

/// A NUL-padded object name (at most 15 bytes are kept).
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

/// BPF_MAP_CREATE of an XSKMAP with `max_entries` slots (u32 → socket fd).
pub fn create_xskmap(name: &str, max_entries: u32) -> io::Result<OwnedFd> {
    if let Some(r) = intercept(|| Call::MapCreate {
        map_type: MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries,
        name,
    }) {
        return r?.fd();
    }
    let mut attr = MapCreateAttr {
        map_type: MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: object_name(name),
        _pad: 0,
    };
    // SAFETY: MapCreateAttr is BPF_MAP_CREATE's block; it holds no pointers.
    owned_fd(unsafe { sys_bpf(Cmd::MapCreate, &mut attr) }?)
}

/// BPF_MAP_CREATE of an array (u32 index → `value_size` bytes, zeroed).
pub fn create_array_map(name: &str, value_size: u32, max_entries: u32) -> io::Result<OwnedFd> {
    if let Some(r) = intercept(|| Call::MapCreate {
        map_type: MAP_TYPE_ARRAY,
        key_size: 4,
        value_size,
        max_entries,
        name,
    }) {
        return r?.fd();
    }
    let mut attr = MapCreateAttr {
        map_type: MAP_TYPE_ARRAY,
        key_size: 4,
        value_size,
        max_entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: object_name(name),
        _pad: 0,
    };
    // SAFETY: MapCreateAttr is BPF_MAP_CREATE's block; it holds no pointers.
    owned_fd(unsafe { sys_bpf(Cmd::MapCreate, &mut attr) }?)
}

/// BPF_MAP_LOOKUP_ELEM `value = map[key]` for a 32-bit key of a map that
/// is not per-CPU. The map's value size is asked of the kernel first: a
/// `value` shorter than it is refused (InvalidInput), so the kernel never
/// writes past the buffer.
pub fn map_lookup_u32(map: &OwnedFd, key: u32, value: &mut [u8]) -> io::Result<()> {
    if let Some(r) = intercept(|| Call::MapLookup {
        map_fd: fd_u32(map),
        key,
    }) {
        return match r? {
            Reply::Bytes(bytes) if bytes.len() <= value.len() => {
                value[..bytes.len()].copy_from_slice(&bytes);
                Ok(())
            }
            other => Err(unexpected(other)),
        };
    }
    let info = map_info(map)?;
    if info.map_type == MAP_TYPE_PERCPU_ARRAY || info.map_type == MAP_TYPE_PERCPU_HASH {
        // A per-CPU lookup writes value_size × possible CPUs.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "map_lookup_u32 does not read per-CPU maps",
        ));
    }
    if info.key_size != 4 || (value.len() as u64) < u64::from(info.value_size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "map lookup with a {}-byte buffer, map has {}-byte keys and {}-byte values",
                value.len(),
                info.key_size,
                info.value_size
            ),
        ));
    }
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map),
        _pad: 0,
        key: &key as *const u32 as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `key` is a live u32 the kernel only reads; `value` is a live
    // writable buffer at least as long as the map's value size (checked
    // above), which is what the kernel writes for a non-per-CPU map.
    unsafe { sys_bpf(Cmd::MapLookupElem, &mut attr) }?;
    Ok(())
}

/// BPF_MAP_UPDATE_ELEM `map[key] = value` for 32-bit keys and values.
pub fn map_update_u32(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
    if let Some(r) = intercept(|| Call::MapUpdate {
        map_fd: fd_u32(map),
        key,
        value,
    }) {
        return r?.done();
    }
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map),
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0, // BPF_ANY
    };
    // SAFETY: `key` and `value` are live u32s matching the map's key and
    // value sizes; the kernel only reads them.
    unsafe { sys_bpf(Cmd::MapUpdateElem, &mut attr) }?;
    Ok(())
}

/// BPF_MAP_DELETE_ELEM `map[key]` for 32-bit keys.
pub fn map_delete_u32(map: &OwnedFd, key: u32) -> io::Result<()> {
    if let Some(r) = intercept(|| Call::MapDelete {
        map_fd: fd_u32(map),
        key,
    }) {
        return r?.done();
    }
    let mut attr = MapElemAttr {
        map_fd: fd_u32(map),
        _pad: 0,
        key: &key as *const u32 as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: `key` is a live u32 the kernel only reads.
    unsafe { sys_bpf(Cmd::MapDeleteElem, &mut attr) }?;
    Ok(())
}

/// BPF_PROG_LOAD of an XDP program. With `log` the verifier writes its log
/// there (log level 1); the log is NUL-terminated by the kernel.
pub fn load_xdp_program(
    name: &str,
    insns: &[Insn],
    license: &CStr,
    log: Option<&mut [u8]>,
) -> io::Result<OwnedFd> {
    if let Some(r) = intercept(|| Call::ProgLoad {
        name,
        insns,
        license,
    }) {
        return r?.fd();
    }
    let (log_level, log_size, log_buf) = match log {
        Some(buf) => (
            1,
            u32::try_from(buf.len()).unwrap_or(u32::MAX),
            buf.as_mut_ptr() as u64,
        ),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type: PROG_TYPE_XDP,
        insn_cnt: u32::try_from(insns.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name: object_name(name),
        prog_ifindex: 0,
        expected_attach_type: ATTACH_TYPE_XDP,
    };
    // SAFETY: `insns` (insn_cnt entries) and `license` are live and only
    // read; `log`, when given, is a live writable buffer of log_size bytes.
    owned_fd(unsafe { sys_bpf(Cmd::ProgLoad, &mut attr) }?)
}

/// BPF_OBJ_GET_INFO_BY_FD on a program: its id.
pub fn program_id(prog: &OwnedFd) -> io::Result<u32> {
    if let Some(r) = intercept(|| Call::ProgInfo {
        prog_fd: fd_u32(prog),
    }) {
        return r?.value();
    }
    let mut info = ProgInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(prog),
        info_len: size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    // SAFETY: `info` is a live writable ProgInfo of info_len bytes whose
    // pointer fields are zero (so the kernel writes no arrays).
    unsafe { sys_bpf(Cmd::ObjGetInfoByFd, &mut attr) }?;
    Ok(info.id)
}

/// BPF_OBJ_GET_INFO_BY_FD on a map: its type and sizes.
pub fn map_info(map: &OwnedFd) -> io::Result<MapInfo> {
    if let Some(r) = intercept(|| Call::MapInfo {
        map_fd: fd_u32(map),
    }) {
        return match r? {
            Reply::MapInfo(info) => Ok(info),
            other => Err(unexpected(other)),
        };
    }
    let mut info = MapInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(map),
        info_len: size_of::<MapInfo>() as u32,
        info: &mut info as *mut MapInfo as u64,
    };
    // SAFETY: `info` is a live writable MapInfo of info_len bytes without
    // pointer fields.
    unsafe { sys_bpf(Cmd::ObjGetInfoByFd, &mut attr) }?;
    Ok(info)
}

/// BPF_LINK_CREATE: attach an XDP program to an interface with a link that
/// lives as long as the returned descriptor (and so dies with the process).
pub fn create_xdp_link(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    if let Some(r) = intercept(|| Call::LinkCreate {
        prog_fd: fd_u32(prog),
        ifindex,
        flags,
    }) {
        return r?.fd();
    }
    let mut attr = LinkCreateAttr {
        prog_fd: fd_u32(prog),
        target_ifindex: ifindex,
        attach_type: ATTACH_TYPE_XDP,
        flags,
    };
    // SAFETY: LinkCreateAttr holds no pointers.
    owned_fd(unsafe { sys_bpf(Cmd::LinkCreate, &mut attr) }?)
}

/// BPF_PROG_TEST_RUN: run the program once on `data`; returns its action.
pub fn test_run(prog: &OwnedFd, data: &[u8]) -> io::Result<u32> {
    if let Some(r) = intercept(|| Call::ProgTestRun {
        prog_fd: fd_u32(prog),
        data,
    }) {
        return r?.value();
    }
    let mut attr = TestRunAttr {
        prog_fd: fd_u32(prog),
        retval: 0,
        data_size_in: u32::try_from(data.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        data_size_out: 0,
        data_in: data.as_ptr() as u64,
        data_out: 0,
        repeat: 1,
        duration: 0,
        ctx_size_in: 0,
        ctx_size_out: 0,
        ctx_in: 0,
        ctx_out: 0,
        flags: 0,
        cpu: 0,
    };
    // SAFETY: `data` is live and only read; no output buffers are given.
    unsafe { sys_bpf(Cmd::ProgTestRun, &mut attr) }?;
    Ok(attr.retval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_blocks_match_the_kernel_layout() {
        // Offsets from include/uapi/linux/bpf.h.
        assert_eq!(size_of::<MapCreateAttr>(), 48);
        assert_eq!(size_of::<MapElemAttr>(), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(size_of::<TestRunAttr>(), 72);
        assert_eq!(size_of::<LinkCreateAttr>(), 16);
        assert_eq!(std::mem::offset_of!(ProgInfo, name), 64);
        assert_eq!(std::mem::offset_of!(MapInfo, value_size), 12);
    }

    #[test]
    fn object_names_are_truncated_and_nul_padded() {
        assert_eq!(&object_name("kxdp")[..5], b"kxdp\0");
        let long = object_name("a_very_long_program_name");
        assert_eq!(long[15], 0);
        assert_eq!(&long[..15], b"a_very_long_pro");
    }
}
