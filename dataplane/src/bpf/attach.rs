//! Loading kxdp's XDP program and attaching it with a bpf_link (see the
//! module documentation of [`crate::bpf`]).

use std::ffi::CStr;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

use super::asm;
use super::program;
use super::types::{AttachedMode, BpfError, XdpAction, XdpAttachMode, XdpFilter};
use kxdp_sys::bpf as sys;

/// Size of the buffer for a verifier log (the programs are tiny).
const VERIFIER_LOG_SIZE: usize = 256 * 1024;
/// The programs call no GPL-only helper.
const LICENSE: &CStr = c"Apache-2.0";

/// kxdp's XDP program attached to one interface, with its XSKMAP.
///
/// Dropping it closes the link (detaching the program), then the program
/// and the map; the kernel frees them once nothing else refers to them.
#[derive(Debug)]
pub struct XdpAttachment {
    // Field order is drop order: the link (the attachment itself) goes
    // first. It is never read: holding the descriptor is what keeps the
    // program attached.
    _link: OwnedFd,
    program: OwnedFd,
    xskmap: OwnedFd,
    ifname: String,
    mode: AttachedMode,
    program_id: u32,
    queues: u32,
}

impl XdpAttachment {
    /// Load the program for `filter` with an XSKMAP of `queues` slots and
    /// attach it to `ifname` (looked up in the calling thread's network
    /// namespace). Needs CAP_BPF and CAP_NET_ADMIN (or root).
    pub fn attach(
        ifname: &str,
        filter: XdpFilter,
        mode: XdpAttachMode,
        queues: u32,
    ) -> Result<Self, BpfError> {
        if queues == 0 {
            return Err(BpfError::Invalid("queues must be at least 1".into()));
        }
        let ifindex = crate::xsk::if_index(ifname).map_err(|source| BpfError::NoSuchInterface {
            ifname: ifname.to_owned(),
            source,
        })?;
        let xskmap =
            sys::create_xskmap("kxdp_xsks", queues).map_err(|source| BpfError::Syscall {
                op: "BPF_MAP_CREATE",
                source,
            })?;
        let program = load(filter, &xskmap)?;
        let program_id = sys::program_id(&program).map_err(|source| BpfError::Syscall {
            op: "BPF_OBJ_GET_INFO_BY_FD",
            source,
        })?;

        let (link, mode) = attach_in_mode(ifname, "the XDP program", mode, |m| {
            sys::create_xdp_link(&program, ifindex, m.flags())
        })?;
        tracing::info!(ifname, %mode, program_id, ?filter, "XDP program attached");
        Ok(XdpAttachment {
            _link: link,
            program,
            xskmap,
            ifname: ifname.to_owned(),
            mode,
            program_id,
            queues,
        })
    }

    /// Put an AF_XDP socket in the XSKMAP slot of `queue_id`: from now on
    /// the frames the program redirects on that queue go to it. The socket
    /// must be bound to this interface and queue (the kernel drops frames
    /// redirected to a socket bound elsewhere). Closing the socket removes
    /// it from the map.
    pub fn register_socket(&self, queue_id: u32, xsk_fd: RawFd) -> Result<(), BpfError> {
        self.check_queue(queue_id)?;
        let fd =
            u32::try_from(xsk_fd).map_err(|_| BpfError::Invalid(format!("socket fd {xsk_fd}")))?;
        sys::map_update_u32(&self.xskmap, queue_id, fd).map_err(|source| BpfError::Syscall {
            op: "BPF_MAP_UPDATE_ELEM",
            source,
        })
    }

    /// Empty the XSKMAP slot of `queue_id` (its frames then take the
    /// filter's fallback action).
    pub fn unregister_socket(&self, queue_id: u32) -> Result<(), BpfError> {
        self.check_queue(queue_id)?;
        sys::map_delete_u32(&self.xskmap, queue_id).map_err(|source| BpfError::Syscall {
            op: "BPF_MAP_DELETE_ELEM",
            source,
        })
    }

    /// The mode the program is attached in.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// The kernel's id of the loaded program (as `bpftool prog show id N`
    /// shows it).
    pub fn program_id(&self) -> u32 {
        self.program_id
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Run the loaded program once on `frame` with BPF_PROG_TEST_RUN (rx
    /// queue 0, nothing is redirected): what it would do with that frame.
    /// For diagnostics and tests; `frame` must be at least 14 bytes.
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, BpfError> {
        sys::test_run(&self.program, frame)
            .map(XdpAction::from)
            .map_err(|source| BpfError::Syscall {
                op: "BPF_PROG_TEST_RUN",
                source,
            })
    }

    fn check_queue(&self, queue_id: u32) -> Result<(), BpfError> {
        if queue_id >= self.queues {
            return Err(BpfError::Invalid(format!(
                "queue {queue_id} on {} (the XSKMAP has {} slots)",
                self.ifname, self.queues
            )));
        }
        Ok(())
    }
}

/// Attach in `mode` with `link` (one BPF_LINK_CREATE per mode tried):
/// under [`XdpAttachMode::Auto`] native first, and generic (skb) mode with
/// a log line when native fails. Written once for every program kxdp
/// attaches; `link` is the syscall, which unit tests replace.
pub(crate) fn attach_in_mode<L>(
    ifname: &str,
    what: &str,
    mode: XdpAttachMode,
    mut link: impl FnMut(AttachedMode) -> io::Result<L>,
) -> Result<(L, AttachedMode), BpfError> {
    let mut attach = |m: AttachedMode| {
        link(m).map_err(|source| BpfError::Attach {
            ifname: ifname.to_owned(),
            mode: m,
            source,
        })
    };
    match mode {
        XdpAttachMode::Native => Ok((attach(AttachedMode::Native)?, AttachedMode::Native)),
        XdpAttachMode::Generic => Ok((attach(AttachedMode::Generic)?, AttachedMode::Generic)),
        XdpAttachMode::Auto => match attach(AttachedMode::Native) {
            Ok(link) => Ok((link, AttachedMode::Native)),
            Err(native) => {
                let cause = std::error::Error::source(&native).map(ToString::to_string);
                tracing::info!(
                    ifname,
                    what,
                    cause = cause.as_deref().unwrap_or(""),
                    "native XDP attach failed, falling back to generic (skb) mode"
                );
                Ok((attach(AttachedMode::Generic)?, AttachedMode::Generic))
            }
        },
    }
}

/// Assemble and load the program for `filter`; on rejection, load again
/// with a log buffer to return the verifier's explanation.
fn load(filter: XdpFilter, xskmap: &OwnedFd) -> Result<OwnedFd, BpfError> {
    use std::os::fd::AsRawFd;
    let name = match filter {
        XdpFilter::All => "kxdp_all",
        XdpFilter::Vxlan { .. } => "kxdp_vxlan",
    };
    let insns = program::xdp_program(&filter, xskmap.as_raw_fd())
        .map_err(|e| BpfError::Invalid(format!("assembling {name}: {e}")))?;
    load_insns(name, &insns)
}

/// Load `insns`; if the kernel refuses, load again with a log buffer and
/// return the verifier's log in the error.
pub(crate) fn load_insns(name: &'static str, insns: &[asm::Insn]) -> Result<OwnedFd, BpfError> {
    match sys::load_xdp_program(name, insns, LICENSE, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut log = vec![0u8; VERIFIER_LOG_SIZE];
            match sys::load_xdp_program(name, insns, LICENSE, Some(&mut log)) {
                Ok(fd) => Ok(fd),
                Err(source) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let log = String::from_utf8_lossy(&log[..end]).into_owned();
                    tracing::debug!(%first, "BPF_PROG_LOAD failed");
                    Err(BpfError::Verifier {
                        program: name,
                        log,
                        source,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kxdp_harness::privileged_test;
    use std::net::Ipv4Addr;

    /// The fallback, with the syscall replaced: no root needed.
    #[test]
    fn auto_falls_back_to_generic_only_when_native_fails() {
        use std::cell::RefCell;
        let refuse = |refused: &'static [AttachedMode]| {
            let tried = RefCell::new(Vec::new());
            let result = attach_in_mode("veth0", "test", XdpAttachMode::Auto, |m| {
                tried.borrow_mut().push(m);
                if refused.contains(&m) {
                    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
                } else {
                    Ok(m as u8)
                }
            });
            (result, tried.into_inner())
        };
        let (ok, tried) = refuse(&[]);
        assert!(matches!(ok, Ok((_, AttachedMode::Native))), "{ok:?}");
        assert_eq!(tried, [AttachedMode::Native]);
        let (ok, tried) = refuse(&[AttachedMode::Native]);
        assert!(matches!(ok, Ok((_, AttachedMode::Generic))), "{ok:?}");
        assert_eq!(tried, [AttachedMode::Native, AttachedMode::Generic]);
        let (err, tried) = refuse(&[AttachedMode::Native, AttachedMode::Generic]);
        assert_eq!(tried, [AttachedMode::Native, AttachedMode::Generic]);
        match err {
            Err(BpfError::Attach { ifname, mode, .. }) => {
                assert_eq!((ifname.as_str(), mode), ("veth0", AttachedMode::Generic));
            }
            other => panic!("expected an attach error, got {other:?}"),
        }
        // An explicit mode is tried alone, never falls back.
        for mode in [XdpAttachMode::Native, XdpAttachMode::Generic] {
            let mut tried = Vec::new();
            let result = attach_in_mode("veth0", "test", mode, |m| {
                tried.push(m);
                Err::<(), _>(io::Error::from_raw_os_error(libc::EPERM))
            });
            assert!(matches!(result, Err(BpfError::Attach { .. })));
            assert_eq!(tried.len(), 1, "{mode:?}");
        }
    }

    /// The loader, the attach fallback and the XSKMAP updates, with the
    /// bpf(2) syscall replaced (`kxdp_sys::bpf::override_syscall`): what
    /// kxdp asks of the kernel, in order, without root.
    #[test]
    fn attach_loads_links_and_fills_the_xskmap_through_the_one_syscall() {
        use kxdp_sys::bpf::{override_syscall, Call, Reply};
        use std::cell::RefCell;
        thread_local! {
            static CALLS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        }
        fn dev_null() -> io::Result<Reply> {
            Ok(Reply::Fd(std::fs::File::open("/dev/null")?.into()))
        }
        fn kernel(call: &Call<'_>) -> io::Result<Reply> {
            let line = match call {
                Call::MapCreate {
                    map_type,
                    max_entries,
                    name,
                    ..
                } => format!("map_create {name} type {map_type} entries {max_entries}"),
                Call::ProgLoad {
                    name,
                    insns,
                    license,
                } => format!(
                    "prog_load {name} {} {}",
                    license.to_string_lossy(),
                    if insns.is_empty() { "empty" } else { "code" }
                ),
                Call::ProgInfo { .. } => "prog_info".into(),
                Call::LinkCreate { flags, .. } => format!("link_create flags {flags}"),
                Call::MapUpdate { key, .. } => format!("map_update {key}"),
                Call::MapDelete { key, .. } => format!("map_delete {key}"),
                other => format!("{other:?}"),
            };
            CALLS.with(|c| c.borrow_mut().push(line));
            match call {
                Call::ProgInfo { .. } => Ok(Reply::Value(42)),
                // No native XDP on this "driver".
                Call::LinkCreate { flags, .. } if *flags == AttachedMode::Native.flags() => {
                    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
                }
                Call::MapUpdate { .. } | Call::MapDelete { .. } => Ok(Reply::Done),
                _ => dev_null(),
            }
        }
        let _guard = override_syscall(kernel);
        let attached = XdpAttachment::attach("lo", XdpFilter::All, XdpAttachMode::Auto, 2)
            .expect("attaches through the replaced syscall");
        assert_eq!(attached.mode(), AttachedMode::Generic);
        assert_eq!(attached.program_id(), 42);
        attached.register_socket(1, 7).expect("map update");
        attached.unregister_socket(0).expect("map delete");
        assert!(matches!(
            attached.register_socket(2, 7),
            Err(BpfError::Invalid(_))
        ));
        let calls = CALLS.with(|c| c.take());
        assert_eq!(
            calls,
            [
                "map_create kxdp_xsks type 17 entries 2",
                "prog_load kxdp_all Apache-2.0 code",
                "prog_info",
                "link_create flags 4",
                "link_create flags 2",
                "map_update 1",
                "map_delete 0",
            ]
        );

        // A program the "verifier" refuses is loaded again with a log.
        fn refusing(call: &Call<'_>) -> io::Result<Reply> {
            match call {
                Call::ProgLoad { .. } => Err(io::Error::from_raw_os_error(libc::EACCES)),
                _ => dev_null(),
            }
        }
        let _guard = override_syscall(refusing);
        let err = XdpAttachment::attach("lo", XdpFilter::All, XdpAttachMode::Auto, 1);
        assert!(
            matches!(
                err,
                Err(BpfError::Verifier {
                    program: "kxdp_all",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn actions_and_modes() {
        assert_eq!(XdpAction::from(4), XdpAction::Redirect);
        assert_eq!(XdpAction::from(2), XdpAction::Pass);
        assert_eq!(XdpAction::from(9), XdpAction::Other(9));
        assert_eq!(
            XdpAttachMode::from(kxdp_config::XdpMode::Generic),
            XdpAttachMode::Generic
        );
        assert_eq!(AttachedMode::Native.flags(), 4);
        assert_eq!(AttachedMode::Generic.flags(), 2);
    }

    #[test]
    #[cfg_attr(
        not(kxdp_privileged),
        ignore = "needs root (network namespaces, XDP, AF_XDP)"
    )]
    fn a_rejected_program_comes_back_with_the_verifier_log() {
        privileged_test("a_rejected_program_comes_back_with_the_verifier_log");
        // Reads the first byte of the packet without a bounds check.
        let mut a = asm::Asm::new();
        a.load(asm::Size::U32, asm::Reg::R2, asm::Reg::R1, 0)
            .load(asm::Size::U8, asm::Reg::R0, asm::Reg::R2, 0)
            .exit();
        let insns = a.finish().expect("assembles");
        match load_insns("kxdp_bad", &insns) {
            Err(BpfError::Verifier { log, program, .. }) => {
                assert_eq!(program, "kxdp_bad");
                assert!(
                    log.contains("invalid access to packet"),
                    "verifier log: {log}"
                );
            }
            other => panic!("expected a verifier error, got {other:?}"),
        }
        // The real programs pass the verifier of this kernel.
        let map = sys::create_xskmap("kxdp_test", 4).expect("map");
        for filter in [
            XdpFilter::All,
            XdpFilter::Vxlan {
                vtep: Ipv4Addr::new(192, 0, 2, 1),
                udp_port: 4789,
            },
        ] {
            let prog = load(filter, &map).expect("verifier accepts");
            assert!(sys::program_id(&prog).expect("id") > 0);
        }
    }

    #[test]
    fn attach_rejects_zero_queues_and_unknown_interfaces() {
        let err = XdpAttachment::attach("lo", XdpFilter::All, XdpAttachMode::Auto, 0);
        assert!(matches!(err, Err(BpfError::Invalid(_))), "{err:?}");
        let err = XdpAttachment::attach("kxdp-nonexist", XdpFilter::All, XdpAttachMode::Auto, 1);
        assert!(
            matches!(err, Err(BpfError::NoSuchInterface { .. })),
            "{err:?}"
        );
    }
}
