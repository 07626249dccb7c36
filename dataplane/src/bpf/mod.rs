//! The XDP program kxdp loads itself, through bpf(2), without libbpf,
//! libxdp, a BPF toolchain or bpffs.
//!
//! [`XdpAttachment::attach`] creates an XSKMAP (one slot per queue),
//! assembles and loads the program for an [`XdpFilter`] (see
//! [`XdpFilter`] for what each one does and why), and attaches
//! it to the interface with a **bpf_link** (`BPF_LINK_CREATE`, attach type
//! `BPF_XDP`, kernel ≥ 5.9). The link lives exactly as long as its file
//! descriptor: dropping the attachment detaches the program, and so does
//! the death of the process, even by SIGKILL. Nothing is pinned, so nothing
//! can outlive kxdp on an interface.
//!
//! Native (driver) mode is tried first; in [`XdpAttachMode::Auto`] a failure
//! falls back to generic (skb) mode with a log line. A program the verifier
//! rejects comes back as [`BpfError::Verifier`] with the verifier's log.
//!
//! [`XdpCounter`] is a second, stand-alone program for benchmarks: it
//! counts every frame into an array map and drops it.
//!
//! Safe code: the one bpf(2) entry point and its typed wrappers are
//! `kxdp_sys::bpf`, which tests replace with `override_syscall` to run the
//! loader, the attach fallback and map updates without root.

mod asm;
mod attach;
mod counter;
mod program;
mod types;

pub use attach::XdpAttachment;
pub use counter::{XdpCount, XdpCounter};
pub use types::{AttachedMode, BpfError, XdpAction, XdpAttachMode, XdpFilter};
