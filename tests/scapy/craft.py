#!/usr/bin/python3
"""Craft bad (and some good) frames with scapy and send them on one interface.

Used by tests/tests/bad_input.rs, run inside a pod's (or a node's) network
namespace:

    ip netns exec NS /usr/bin/python3 tests/scapy/craft.py '{"case": ..., ...}'

The one argument is a JSON object: `case` (what to build, see CASES),
`iface` (default eth0), `count` (how many times to send the frame list),
and the addresses the case needs (`src_mac`, `dst_mac`, `src_ip`,
`dst_ip`, ...). Prints one JSON line: `{"frames": <frames sent>}`.

Frames are sent through one AF_PACKET socket, as built (no padding, no
checksum fix-ups beyond what each case asks for).
"""

import json
import socket
import sys

from scapy.all import (  # noqa: F401 (scapy's layers register on import)
    ARP,
    ICMP,
    Dot1Q,
    IP,
    TCP,
    UDP,
    Ether,
    IPOption_NOP,
    IPOption_RR,
    Raw,
    fragment,
    raw,
)


def eth(p):
    return Ether(src=p["src_mac"], dst=p["dst_mac"])


def ip(p, **kw):
    return IP(src=p["src_ip"], dst=p["dst_ip"], **kw)


def echo(p, seq=1, payload=b"kxdp-bad-input"):
    return ICMP(type=8, id=0x4B46, seq=seq) / Raw(payload)


def recompute_ip_checksum(header):
    """Ones' complement checksum of an IPv4 header with its checksum field zeroed."""
    header = bytearray(header)
    header[10:12] = b"\x00\x00"
    s = 0
    for i in range(0, len(header), 2):
        s += (header[i] << 8) | header[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    header[10:12] = ((~s) & 0xFFFF).to_bytes(2, "big")
    return bytes(header)


# Each case returns a list of frames (bytes).


def case_ipv4_truncated(p):
    # 12 bytes of a 20-byte IPv4 header.
    return [raw(eth(p) / ip(p) / echo(p))[: 14 + 12]]


def case_ipv4_bad_length(p):
    # Total length 400 in a 60-byte packet.
    return [raw(eth(p) / ip(p, len=400) / echo(p))]


def case_ipv4_bad_checksum(p):
    return [raw(eth(p) / ip(p, chksum=0x1234) / echo(p))]


def case_ihl_past_total_length(p):
    # IHL 15 (a 60-byte header of options) but a total length of 40: the
    # header overlaps what the length says is payload.
    opts = [IPOption_NOP()] * 40
    frame = bytearray(raw(eth(p) / ip(p, options=opts) / UDP(sport=1, dport=2)))
    header = bytearray(frame[14:74])
    header[2:4] = (40).to_bytes(2, "big")
    frame[14:74] = recompute_ip_checksum(bytes(header))
    return [bytes(frame)]


def case_udp_truncated(p):
    # The IP payload holds 4 bytes of an 8-byte UDP header.
    pkt = ip(p, proto=17) / Raw(b"\x30\x39\x00\x35")
    return [raw(eth(p) / pkt)]


def case_udp_length_short(p):
    # UDP length 4, below its own header's 8 bytes.
    return [raw(eth(p) / ip(p) / UDP(sport=12345, dport=53, len=4) / Raw(b"abcd"))]


def case_tcp_offset_past_payload(p):
    # TCP data offset 15 (60 bytes) in a 20-byte segment.
    return [raw(eth(p) / ip(p) / TCP(sport=12345, dport=80, dataofs=15, flags="S"))]


def case_tiny_fragment(p):
    # A first fragment (MF set, offset 0) with 4 bytes of the UDP header.
    return [raw(eth(p) / ip(p, proto=17, flags="MF", frag=0) / Raw(b"\x30\x39\x00\x35"))]


def case_ip_options(p):
    # ICMP echo requests with a record-route and NOP options (IHL 15).
    return [
        raw(eth(p) / ip(p, options=[IPOption_RR(routers=["0.0.0.0"] * 9), IPOption_NOP()]) / echo(p, seq=i))
        for i in range(1, 2)
    ]


def case_fragments(p):
    # One 3000-byte ICMP echo request in 3 fragments of at most 1000 bytes
    # (offset-ordered), id fixed.
    pkt = ip(p, id=0x4B46) / echo(p, payload=bytes(range(256)) * 12)
    return [raw(eth(p) / f) for f in fragment(pkt, fragsize=1000)]


def case_overlapping_fragments(p):
    # Two fragments of one datagram whose byte ranges overlap (0..1000 and
    # 504..1504): kxdp does not reassemble, the receiver's kernel decides.
    body = raw(echo(p, payload=bytes(1500)))
    first = ip(p, id=0x4B47, proto=1, flags="MF", frag=0) / Raw(body[:1000])
    second = ip(p, id=0x4B47, proto=1, frag=63) / Raw(body[504:])
    return [raw(eth(p) / first), raw(eth(p) / second)]


def case_echo(p):
    # A well-formed echo request (the spoofing cases pass other addresses).
    return [raw(eth(p) / ip(p) / echo(p))]


def case_arp(p):
    # who-has target_ip, tell src_ip (broadcast); `sender_mac` and
    # `sender_ip` replace the ARP sender fields (not the Ethernet source).
    return [
        raw(
            Ether(src=p["src_mac"], dst="ff:ff:ff:ff:ff:ff")
            / ARP(
                op=1,
                hwsrc=p.get("sender_mac", p["src_mac"]),
                psrc=p.get("sender_ip", p["src_ip"]),
                pdst=p["target_ip"],
            )
        )
    ]


def sized_echo(p, ip_len, df, **kw):
    # An echo request making an IPv4 packet of `ip_len` bytes, DF as asked.
    return IP(flags="DF" if df else 0, **kw) / echo(p, payload=bytes(ip_len - 20 - 8))


def case_big_echo(p):
    # An echo request of `ip_len` bytes of IPv4 (DF set unless `df` is
    # false): larger than the destination's MTU, within the sender's.
    pkt = sized_echo(p, p["ip_len"], p.get("df", True), src=p["src_ip"], dst=p["dst_ip"])
    return [raw(eth(p) / pkt)]


def case_broadcast(p):
    # A UDP broadcast (the storm sends it `count` times).
    return [
        raw(
            Ether(src=p["src_mac"], dst="ff:ff:ff:ff:ff:ff")
            / IP(src=p["src_ip"], dst="255.255.255.255")
            / UDP(sport=9999, dport=9999)
            / Raw(b"storm" * 4)
        )
    ]


def vxlan_frame(p, inner, vni, flags=0x08, reserved1=0, reserved2=0):
    # The underlay frame: outer Ethernet/IPv4/UDP 4789/VXLAN around `inner`.
    return (
        Ether(src=p["src_mac"], dst=p["dst_mac"])
        / IP(src=p["src_ip"], dst=p["dst_ip"])
        / UDP(sport=49152, dport=4789, chksum=0)
        / Raw(vxlan_header(vni, flags, reserved1, reserved2))
        / inner
    )


def vxlan_header(vni, flags=0x08, reserved1=0, reserved2=0):
    # RFC 7348: flags (I = 0x08, the rest reserved), 24 reserved bits, the
    # 24-bit VNI, 8 reserved bits. Built by hand: scapy's VXLAN layer reads
    # other flag bits as GBP / GPE extensions.
    return (
        bytes([flags])
        + reserved1.to_bytes(3, "big")
        + vni.to_bytes(3, "big")
        + bytes([reserved2])
    )


def inner_echo(p, seq=1):
    # The inner frame: an echo request, with an 802.1Q tag if `inner_vlan`
    # is given (VID, priority `inner_prio`), of `inner_ip_len` bytes of
    # IPv4 (DF set unless `inner_df` is false) if given.
    frame = Ether(src=p["inner_src_mac"], dst=p["inner_dst_mac"])
    if "inner_vlan" in p:
        frame = frame / Dot1Q(vlan=p["inner_vlan"], prio=p.get("inner_prio", 0))
    if "inner_ip_len" in p:
        pkt = sized_echo(
            p,
            p["inner_ip_len"],
            p.get("inner_df", True),
            src=p["inner_src_ip"],
            dst=p["inner_dst_ip"],
        )
        return frame / pkt
    return frame / IP(src=p["inner_src_ip"], dst=p["inner_dst_ip"]) / echo(p, seq=seq)


def case_vxlan(p):
    # VXLAN from the underlay: VNI `vni`, flags `flags` (0x08 = I), the
    # reserved fields as given, around an echo request to a pod.
    return [
        raw(
            vxlan_frame(
                p,
                inner_echo(p),
                p["vni"],
                flags=p.get("flags", 0x08),
                reserved1=p.get("reserved1", 0),
                reserved2=p.get("reserved2", 0),
            )
        )
    ]


def case_nested_vxlan(p):
    # VXLAN in VXLAN: the outer one (VNI `vni`) carries, to a pod, a UDP
    # 4789 datagram that is itself VXLAN around an echo request.
    innermost = inner_echo(p)
    middle = (
        Ether(src=p["inner_src_mac"], dst=p["inner_dst_mac"])
        / IP(src=p["inner_src_ip"], dst=p["inner_dst_ip"])
        / UDP(sport=49153, dport=4789)
        / Raw(vxlan_header(p["vni"]))
        / innermost
    )
    return [raw(vxlan_frame(p, middle, p["vni"]))]


def case_vxlan_fragments(p):
    # `datagrams` VXLAN packets (IPv4 ids `ip_id`, `ip_id` + 1, ...), each
    # sent in IPv4 fragments of at most `fragsize` bytes of payload, first
    # fragment first: what an underlay with a smaller MTU on the way makes
    # of a large VXLAN packet. The first fragment holds the UDP and VXLAN
    # headers; the later ones carry no port.
    frames = []
    for i in range(int(p["datagrams"])):
        outer = (
            IP(src=p["src_ip"], dst=p["dst_ip"], id=(p["ip_id"] + i) & 0xFFFF)
            / UDP(sport=49152, dport=4789, chksum=0)
            / Raw(vxlan_header(p["vni"]))
            / inner_echo(p, seq=i + 1)
        )
        for f in fragment(outer, fragsize=p["fragsize"]):
            frames.append(raw(Ether(src=p["src_mac"], dst=p["dst_mac"]) / f))
    return frames


CASES = {name[len("case_"):]: f for name, f in globals().items() if name.startswith("case_")}


def main():
    params = json.loads(sys.argv[1])
    build = CASES[params["case"]]
    frames = build(params)
    count = int(params.get("count", 1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((params.get("iface", "eth0"), 0))
    sent = 0
    for _ in range(count):
        for f in frames:
            while True:
                try:
                    s.send(f)
                    break
                except BlockingIOError:
                    continue
                except OSError as e:
                    # ENOBUFS: the qdisc is full (a storm); retry.
                    if e.errno == 105:
                        continue
                    raise
            sent += 1
    s.close()
    print(json.dumps({"frames": sent, "per_round": len(frames)}))


if __name__ == "__main__":
    main()
