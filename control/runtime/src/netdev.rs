//! The kernel's `netdev` generic-netlink family (`include/uapi/linux/netdev.h`),
//! for the one dump [`crate::pod_napi`] reads: an interface's NAPI
//! instances (`NETDEV_CMD_NAPI_GET`, Linux 6.8 and later), each with its
//! id and, while the interface is in threaded mode, its kernel thread's
//! pid. (The queue dump, `NETDEV_CMD_QUEUE_GET`, would say which NAPI
//! serves which queue, but veth does not fill that in.)
//!
//! Asking the kernel is the only exact way to find a NAPI thread: its
//! name, `napi/<interface>-<napi id>`, is cut to 15 characters in
//! `/proc/*/comm`, so two pods' veths with long names look alike there.
//!
//! The messages are built and parsed with `netlink-packet-generic` and
//! `netlink-packet-core` and sent on a `netlink-sys` socket, as the
//! rust-netlink crates do for every family; what is kxdp's own is pure
//! (a request's bytes, a reply's bytes to [`Napi`] rows)
//! and tested on bytes recorded from Linux 6.18.

use std::io;

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NlaBuffer,
    NlasIterator, ParseableParametrized, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

/// `NETDEV_CMD_NAPI_GET`.
const CMD_NAPI_GET: u8 = 11;
/// `NETDEV_A_NAPI_IFINDEX`.
const NAPI_IFINDEX: u16 = 1;
/// `NETDEV_A_NAPI_ID`.
const NAPI_ID: u16 = 2;
/// `NETDEV_A_NAPI_PID`: present only while the NAPI has a kernel thread.
const NAPI_PID: u16 = 4;
/// `NETDEV_FAMILY_VERSION`.
const FAMILY_VERSION: u8 = 1;
/// The family's name, resolved to its id through the controller.
const FAMILY_NAME: &str = "netdev";
/// Room for one datagram of a dump (the kernel fills up to 32 KiB).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Asking the kernel failed.
#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    /// The generic netlink socket could not be opened or used.
    #[error("generic netlink socket")]
    Socket(#[source] io::Error),
    /// This kernel has no `netdev` family (Linux 6.8 and later have it
    /// with NAPI objects).
    #[error(
        "this kernel has no netdev generic netlink family (Linux 6.8 or later has its NAPI dump)"
    )]
    NoFamily,
    /// The kernel answered a request with an error.
    #[error("the kernel refused the {request} request")]
    Refused {
        /// Which request.
        request: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A reply did not parse.
    #[error("malformed netlink reply")]
    Malformed(#[source] DecodeError),
}

/// One attribute of a `netdev` message, kept as its type and raw value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Attr {
    kind: u16,
    value: Vec<u8>,
}

impl Attr {
    fn u32(kind: u16, value: u32) -> Attr {
        Attr {
            kind,
            value: value.to_ne_bytes().to_vec(),
        }
    }

    /// The value as a u32 (netlink's host byte order), when it is one.
    fn as_u32(&self) -> Option<u32> {
        Some(u32::from_ne_bytes(self.value.as_slice().try_into().ok()?))
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        self.value.len()
    }

    fn kind(&self) -> u16 {
        self.kind
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.value);
    }
}

/// A `netdev` message: a command and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NetdevMessage {
    cmd: u8,
    attrs: Vec<Attr>,
}

impl NetdevMessage {
    fn attr(&self, kind: u16) -> Option<u32> {
        self.attrs
            .iter()
            .find(|a| a.kind == kind)
            .and_then(Attr::as_u32)
    }
}

impl GenlFamily for NetdevMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for NetdevMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for NetdevMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(buf) {
            let nla: NlaBuffer<&[u8]> = nla?;
            attrs.push(Attr {
                kind: nla.kind(),
                value: nla.value().to_vec(),
            });
        }
        Ok(NetdevMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

/// One NAPI instance of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Napi {
    /// Its id (unique on the machine).
    pub id: u32,
    /// Its kernel thread, while the interface is in threaded mode.
    pub pid: Option<u32>,
}

/// Serialise `message` as a request with `flags`.
fn request_bytes<T>(mut message: NetlinkMessage<T>, flags: u16, seq: u32) -> Vec<u8>
where
    T: netlink_packet_core::NetlinkSerializable,
{
    message.header.flags = flags;
    message.header.sequence_number = seq;
    message.finalize();
    let mut bytes = vec![0u8; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// The controller request that resolves the `netdev` family's id.
fn family_request(seq: u32) -> Vec<u8> {
    let message = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(FAMILY_NAME.to_string())],
    });
    request_bytes(NetlinkMessage::from(message), NLM_F_REQUEST, seq)
}

/// A dump of the NAPI instances of interface `ifindex`, to the `netdev`
/// family whose id is `family_id`.
fn napi_dump_request(family_id: u16, ifindex: u32, seq: u32) -> Vec<u8> {
    let mut message = GenlMessage::from_payload(NetdevMessage {
        cmd: CMD_NAPI_GET,
        attrs: vec![Attr::u32(NAPI_IFINDEX, ifindex)],
    });
    message.set_resolved_family_id(family_id);
    request_bytes(
        NetlinkMessage::from(message),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// What one datagram of replies held.
#[derive(Debug, PartialEq, Eq)]
struct Replies<T> {
    messages: Vec<T>,
    /// The dump's end (`NLMSG_DONE`), or the single answer of a request
    /// that is not a dump, was in it.
    done: bool,
}

/// Parse one datagram of netlink messages of payload `T`; a netlink error
/// message is [`NetdevError::Refused`] (for `request`).
fn parse_datagram<T>(mut buf: &[u8], request: &'static str) -> Result<Replies<T>, NetdevError>
where
    T: netlink_packet_core::NetlinkDeserializable + std::fmt::Debug,
{
    let mut replies = Replies {
        messages: Vec::new(),
        done: false,
    };
    while !buf.is_empty() {
        let message = NetlinkMessage::<T>::deserialize(buf).map_err(NetdevError::Malformed)?;
        let length = usize::try_from(message.header.length).unwrap_or(usize::MAX);
        let NetlinkHeader { flags, .. } = message.header;
        match message.payload {
            NetlinkPayload::Done(_) => replies.done = true,
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => {
                    return Err(NetdevError::Refused {
                        request,
                        source: io::Error::from_raw_os_error(-code.get()),
                    })
                }
                None => replies.done = true,
            },
            NetlinkPayload::InnerMessage(inner) => {
                replies.messages.push(inner);
                // A plain request's answer comes alone, without a DONE.
                if flags & netlink_packet_core::NLM_F_MULTIPART == 0 {
                    replies.done = true;
                }
            }
            // NOOP, OVERRUN: nothing kxdp asked for.
            _ => {}
        }
        // Messages are 4-byte aligned in a datagram.
        let step = length.checked_add(3).map(|l| l & !3).unwrap_or(usize::MAX);
        if length == 0 || step > buf.len() {
            break;
        }
        buf = &buf[step..];
    }
    Ok(replies)
}

/// The family id in the controller's answer.
fn family_id(replies: &[GenlMessage<GenlCtrl>]) -> Option<u16> {
    replies.iter().find_map(|m| {
        m.payload.nlas.iter().find_map(|a| match a {
            GenlCtrlAttrs::FamilyId(id) => Some(*id),
            _ => None,
        })
    })
}

/// The NAPI instances of `ifindex` in a NAPI dump's messages.
fn napis_of(messages: &[GenlMessage<NetdevMessage>], ifindex: u32) -> Vec<Napi> {
    messages
        .iter()
        .map(|m| &m.payload)
        .filter(|m| m.cmd == CMD_NAPI_GET && m.attr(NAPI_IFINDEX) == Some(ifindex))
        .filter_map(|m| {
            Some(Napi {
                id: m.attr(NAPI_ID)?,
                pid: m.attr(NAPI_PID).filter(|&pid| pid != 0),
            })
        })
        .collect()
}

/// A generic netlink socket with the `netdev` family resolved, in the
/// calling thread's network namespace. The kernel answers each request
/// at once; the socket blocks while it does.
#[derive(Debug)]
pub struct NetdevSocket {
    socket: netlink_sys::Socket,
    family: u16,
    seq: u32,
}

impl NetdevSocket {
    /// Open a socket and resolve the family.
    pub fn open() -> Result<NetdevSocket, NetdevError> {
        let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_GENERIC)
            .map_err(NetdevError::Socket)?;
        socket.bind_auto().map_err(NetdevError::Socket)?;
        socket
            .connect(&netlink_sys::SocketAddr::new(0, 0))
            .map_err(NetdevError::Socket)?;
        let mut this = NetdevSocket {
            socket,
            family: 0,
            seq: 0,
        };
        let request = family_request(this.next_seq());
        let replies: Vec<GenlMessage<GenlCtrl>> = match this.exchange(&request, "family") {
            Ok(replies) => replies,
            // ENOENT: no such family.
            Err(NetdevError::Refused { source, .. })
                if source.raw_os_error() == Some(nix::libc::ENOENT) =>
            {
                return Err(NetdevError::NoFamily)
            }
            Err(e) => return Err(e),
        };
        this.family = family_id(&replies).ok_or(NetdevError::NoFamily)?;
        Ok(this)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send `request` and read datagrams until its answer is complete.
    fn exchange<T>(&self, request: &[u8], what: &'static str) -> Result<Vec<T>, NetdevError>
    where
        T: netlink_packet_core::NetlinkDeserializable + std::fmt::Debug,
    {
        self.socket.send(request, 0).map_err(NetdevError::Socket)?;
        let mut messages = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(RECEIVE_BUFFER);
        loop {
            buf.clear();
            self.socket.recv(&mut buf, 0).map_err(NetdevError::Socket)?;
            let replies = parse_datagram::<T>(&buf, what)?;
            messages.extend(replies.messages);
            if replies.done {
                return Ok(messages);
            }
        }
    }

    /// The NAPI instances of interface `ifindex`.
    pub fn napis(&mut self, ifindex: u32) -> Result<Vec<Napi>, NetdevError> {
        let request = napi_dump_request(self.family, ifindex, self.next_seq());
        let messages = self.exchange(&request, "NAPI dump")?;
        Ok(napis_of(&messages, ifindex))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hex_literal::hex;

    /// Recorded on Linux 6.18: the controller's answer to "which id has
    /// `netdev`" (id 0x14, then its version, ops and multicast groups).
    const FAMILY_REPLY: [u8; 284] = hex!(
        "1c0100001000000001000000ea7d0000010200000b0002006e65746465760000"
        "0600010014000000080003000100000008000400000000000800050000000000"
        "a4000600140001000800010001000000080002000e0000001400020008000100"
        "05000000080002000e00000014000300080001000a000000080002000e000000"
        "14000400080001000b000000080002000e00000014000500080001000c000000"
        "080002000c00000014000600080001000d000000080002000b00000014000700"
        "080001000e000000080002000b00000014000800080001000f00000008000200"
        "0a00000038000700180001000800020004000000090001006d676d7400000000"
        "1c00020008000200050000000e000100706167652d706f6f6c000000"
    );

    /// Recorded on Linux 6.18: the NAPI dump of a veth (ifindex 3) with
    /// two queues, GRO on and threaded mode on: NAPI 6066 (thread 31606)
    /// and 6065 (thread 31607), each with its threaded, defer-hard-irqs,
    /// IRQ-suspend and GRO-flush attributes, then DONE.
    const NAPI_DUMP_REPLY: [u8; 172] = hex!(
        "4c0000001400000002000000ea7d00000b01000008000200b217000008000100"
        "03000000080008000100000008000400767b0000080005000000000008000700"
        "0000000008000600000000004c0000001400000002000000ea7d00000b010000"
        "08000200b11700000800010003000000080008000100000008000400777b0000"
        "0800050000000000080007000000000008000600000000001400000003000200"
        "02000000ea7d000000000000"
    );

    #[test]
    fn the_family_request_asks_the_controller_for_netdev() {
        // nlmsghdr: length 32, GENL_ID_CTRL, REQUEST, seq 1, port 0;
        // genlmsghdr: CTRL_CMD_GETFAMILY, version 2; then the name.
        assert_eq!(
            family_request(1),
            hex!("20000000100001000100000000000000030200000b0002006e65746465760000")
        );
    }

    #[test]
    fn the_family_id_is_read_from_the_controllers_answer() {
        let replies = parse_datagram::<GenlMessage<GenlCtrl>>(&FAMILY_REPLY, "family").unwrap();
        assert!(replies.done, "a plain request's answer ends the exchange");
        assert_eq!(family_id(&replies.messages), Some(0x14));
    }

    #[test]
    fn the_napi_dump_request_filters_on_the_interface() {
        // nlmsghdr: length 28, family 0x14, REQUEST | DUMP, seq 2;
        // genlmsghdr: NETDEV_CMD_NAPI_GET, version 1; NETDEV_A_NAPI_IFINDEX 3.
        assert_eq!(
            napi_dump_request(0x14, 3, 2),
            hex!("1c0000001400010302000000000000000b0100000800010003000000")
        );
    }

    #[test]
    fn a_napi_dump_gives_each_napi_and_its_thread() {
        let replies =
            parse_datagram::<GenlMessage<NetdevMessage>>(&NAPI_DUMP_REPLY, "NAPI dump").unwrap();
        assert!(replies.done, "the datagram ends with DONE");
        assert_eq!(replies.messages.len(), 2);
        assert_eq!(
            napis_of(&replies.messages, 3),
            [
                Napi {
                    id: 6066,
                    pid: Some(31606)
                },
                Napi {
                    id: 6065,
                    pid: Some(31607)
                },
            ]
        );
        // Another interface's NAPIs are not this one's.
        assert_eq!(napis_of(&replies.messages, 4), []);
    }

    #[test]
    fn a_napi_without_a_thread_has_no_pid() {
        let message = GenlMessage::from_payload(NetdevMessage {
            cmd: CMD_NAPI_GET,
            attrs: vec![Attr::u32(NAPI_ID, 7), Attr::u32(NAPI_IFINDEX, 3)],
        });
        assert_eq!(napis_of(&[message], 3), [Napi { id: 7, pid: None }]);
    }

    #[test]
    fn a_refusal_carries_the_errno_and_garbage_is_malformed() {
        // NLMSG_ERROR, error -ENOENT (-2), then the offending header.
        let error = hex!(
            "2400000002000001 01000000ea7d0000 feffffff"
            "2000000010000100 0100000000000000"
        );
        match parse_datagram::<GenlMessage<GenlCtrl>>(&error, "family") {
            Err(NetdevError::Refused { request, source }) => {
                assert_eq!(request, "family");
                assert_eq!(source.raw_os_error(), Some(2));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_datagram::<GenlMessage<NetdevMessage>>(&NAPI_DUMP_REPLY[..30], "NAPI dump"),
            Err(NetdevError::Malformed(_))
        ));
    }
}
