#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/.

Deterministic (the same files every run); Python's standard library only.
Seeds:
- the golden VXLAN frames of dataplane/fixtures/*.pcap (outer frames, and
  their inner frames for the parser);
- hand-made frames addressed to the pods of dataplane/tests/fixtures/node1.yaml
  and config/examples/two-tenants.yaml (pod to pod, to a remote node, to a
  blackhole, ARP and neighbour solicitation for the gateway, VXLAN from the
  remote node, VLAN tags, IPv4 options, fragments, IPv6 extension headers);
- for the pipeline, choices it builds well-formed frames from;
- the example configurations, and one with services, policies and chains;
- a few fixed byte strings for the table-update sequences.

Usage: tests/fuzz/make-corpus.py   (from anywhere; overwrites the seeds)
"""

import hashlib
import ipaddress
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ip4(text):
    return ipaddress.IPv4Address(text).packed


def ip6(text):
    return ipaddress.IPv6Address(text).packed


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def eth(dst, src, ethertype, payload, vlan=None):
    head = mac(dst) + mac(src)
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, ttl=64, options=b"", frag=0x4000, ident=1):
    ihl = 5 + len(options) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), ident, frag,
        ttl, proto, 0, ip4(src), ip4(dst)) + options
    header = header[:10] + struct.pack("!H", csum(header)) + header[12:]
    return header + payload


def ipv6(src, dst, next_header, payload, hop_limit=64):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, hop_limit,
                       ip6(src), ip6(dst)) + payload


def pseudo4(src, dst, proto, length):
    return ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, length)


def pseudo6(src, dst, proto, length):
    return ip6(src) + ip6(dst) + struct.pack("!IxxxB", length, proto)


def udp(sport, dport, payload, pseudo=None):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if pseudo is not None:
        seg = seg[:6] + struct.pack("!H", csum(pseudo(len(seg)) + seg) or 0xFFFF) + seg[8:]
    return seg


def tcp_syn(sport, dport, pseudo):
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    return seg[:16] + struct.pack("!H", csum(pseudo(len(seg)) + seg)) + seg[18:]


def icmp_echo(ident, seq, data=b"ping"):
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def icmpv6(src, dst, msg):
    total = pseudo6(src, dst, 58, len(msg)) + msg
    return msg[:2] + struct.pack("!H", csum(total)) + msg[4:]


def udp4_frame(dmac, smac, src, dst, payload=b"hello", sport=1000, dport=2000, **kw):
    seg = udp(sport, dport, payload, lambda n: pseudo4(src, dst, 17, n))
    return eth(dmac, smac, 0x0800, ipv4(src, dst, 17, seg, **kw))


def udp6_frame(dmac, smac, src, dst, payload=b"hello6"):
    seg = udp(1000, 2000, payload, lambda n: pseudo6(src, dst, 17, n))
    return eth(dmac, smac, 0x86DD, ipv6(src, dst, 17, seg))


def arp_request(smac, sender_ip, target_ip):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac(smac), ip4(sender_ip),
                       b"\0" * 6, ip4(target_ip))
    return eth("ff:ff:ff:ff:ff:ff", smac, 0x0806, body)


def neighbour_solicitation(smac, src, target):
    solicited = ipaddress.IPv6Address(
        int(ipaddress.IPv6Address("ff02::1:ff00:0")) | (int(ipaddress.IPv6Address(target)) & 0xFFFFFF))
    dmac = "33:33:" + ":".join("%02x" % b for b in solicited.packed[12:])
    msg = struct.pack("!BBHI16s", 135, 0, 0, 0, ip6(target)) + struct.pack("!BB6s", 1, 1, mac(smac))
    msg = icmpv6(src, str(solicited), msg)
    return eth(dmac, smac, 0x86DD, ipv6(src, str(solicited), 58, msg, hop_limit=255))


def vxlan(outer_src, outer_dst, vni, inner, src_mac="02:00:00:00:00:02",
          dst_mac="02:00:00:00:00:01", flags=0x08):
    header = struct.pack("!B3xI", flags, vni << 8)
    seg = udp(51000, 4789, header + inner)
    return eth(dst_mac, src_mac, 0x0800, ipv4(outer_src, outer_dst, 17, seg))


def node1_frames():
    """Frames for dataplane/tests/fixtures/node1.yaml: pod-a on port 1 (vpa)."""
    pod_a, vpa = "02:00:00:01:01:0a", "02:00:00:00:01:0a"
    frames = {
        "pod-a-to-pod-b-udp": udp4_frame(vpa, pod_a, "10.244.1.2", "10.244.1.3"),
        "pod-a-to-remote-tcp-syn": eth(vpa, pod_a, 0x0800, ipv4(
            "10.244.1.2", "10.244.2.7", 6,
            tcp_syn(40000, 80, lambda n: pseudo4("10.244.1.2", "10.244.2.7", 6, n)))),
        "pod-a-to-pod-b-icmp": eth(vpa, pod_a, 0x0800, ipv4(
            "10.244.1.2", "10.244.1.3", 1, icmp_echo(7, 1))),
        "pod-a-to-remote-udp6": udp6_frame(vpa, pod_a, "fd00:10:244:1::2", "fd00:10:244:2::5"),
        "pod-a-arp-gateway": arp_request(pod_a, "10.244.1.2", "10.244.1.1"),
        "pod-a-ns-gateway": neighbour_solicitation(pod_a, "fd00:10:244:1::2", "fd00:10:244:1::1"),
        "pod-a-vlan": udp4_frame(vpa, pod_a, "10.244.1.2", "10.244.1.3")[:12]
        + struct.pack("!HH", 0x8100, 5)
        + udp4_frame(vpa, pod_a, "10.244.1.2", "10.244.1.3")[12:],
        "pod-a-ipv4-options": udp4_frame(vpa, pod_a, "10.244.1.2", "10.244.1.3",
                                         options=b"\x01\x01\x01\x00"),
        "pod-a-first-fragment": udp4_frame(vpa, pod_a, "10.244.1.2", "10.244.2.7",
                                           payload=b"x" * 40, frag=0x2000),
        "pod-a-ttl-1": udp4_frame(vpa, pod_a, "10.244.1.2", "10.244.1.3", ttl=1),
        "pod-a-hop-by-hop": eth(vpa, pod_a, 0x86DD, ipv6(
            "fd00:10:244:1::2", "fd00:10:244:2::5", 0,
            bytes([17, 0, 1, 4, 0, 0, 0, 0])
            + udp(1000, 2000, b"hbh", lambda n: pseudo6(
                "fd00:10:244:1::2", "fd00:10:244:2::5", 17, n)))),
        "pod-a-ipv6-fragment": eth(vpa, pod_a, 0x86DD, ipv6(
            "fd00:10:244:1::2", "fd00:10:244:2::5", 44,
            struct.pack("!BBHI", 17, 0, 1, 0x1234) + udp(1000, 2000, b"frag"))),
        "vxlan-node2-to-pod-a": vxlan(
            "192.168.100.2", "192.168.100.1", 100,
            udp4_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "10.244.2.7", "10.244.1.2")),
        "vxlan-node2-to-pod-a-v6": vxlan(
            "192.168.100.2", "192.168.100.1", 100,
            udp6_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "fd00:10:244:2::5",
                       "fd00:10:244:1::2")),
        "vxlan-unknown-vni": vxlan(
            "192.168.100.2", "192.168.100.1", 4242,
            udp4_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "10.244.2.7", "10.244.1.2")),
        "underlay-node-traffic": udp4_frame("02:00:00:00:00:01", "02:00:00:00:00:02",
                                            "192.168.100.2", "192.168.100.1", dport=22),
    }
    return frames


def two_tenants_frames():
    """Frames for config/examples/two-tenants.yaml."""
    blue_a, vblue_a = "02:00:00:10:01:00", "02:00:00:11:01:00"
    red_a, vred_a = "02:00:00:10:01:01", "02:00:00:11:01:01"
    inner = lambda dst: udp4_frame("02:00:00:01:01:00", "02:00:00:01:02:00", "10.244.2.9", dst)
    return {
        "blue-a-to-blackhole": udp4_frame(vblue_a, blue_a, "10.244.1.10", "10.99.1.1"),
        "blue-a-to-remote": udp4_frame(vblue_a, blue_a, "10.244.1.10", "10.244.2.5"),
        "blue-a-arp-gateway": arp_request(blue_a, "10.244.1.10", "10.244.1.1"),
        "red-a-to-red-b": udp4_frame(vred_a, red_a, "10.244.1.10", "10.244.1.11"),
        "red-a-to-egress-route": udp4_frame(vred_a, red_a, "10.244.1.10", "10.250.0.1"),
        "vxlan-red-to-red-b": vxlan("192.168.100.2", "192.168.100.1", 200, inner("10.244.1.11"),
                                    dst_mac="02:00:00:01:01:00", src_mac="02:00:00:01:02:00"),
        "vxlan-blue-to-blue-a": vxlan("192.168.100.2", "192.168.100.1", 100, inner("10.244.1.10"),
                                      dst_mac="02:00:00:01:01:00", src_mac="02:00:00:01:02:00"),
        "vxlan-red-to-red-a": vxlan("192.168.100.2", "192.168.100.1", 200, inner("10.244.1.10"),
                                    dst_mac="02:00:00:01:01:00", src_mac="02:00:00:01:02:00"),
        "vxlan-blue-to-red-b": vxlan("192.168.100.2", "192.168.100.1", 100, inner("10.244.1.11"),
                                     dst_mac="02:00:00:01:01:00", src_mac="02:00:00:01:02:00"),
    }


def pcap_frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frames, at = [], 24
    while at + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[at:at + 16])
        frames.append(data[at + 16:at + 16 + incl])
        at += 16 + incl
    return frames


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def main():
    fixtures = os.path.join(ROOT, "dataplane", "fixtures")
    for name in sorted(os.listdir(fixtures)):
        if not name.endswith(".pcap"):
            continue
        stem = name[:-len(".pcap")]
        for i, frame in enumerate(pcap_frames(os.path.join(fixtures, name))):
            write("vxlan_decap", "%s-%d" % (stem, i), frame)
            write("packet_parse", "%s-%d" % (stem, i), frame)
            write("packet_parse", "%s-%d-inner" % (stem, i), frame[50:])
            # The pipeline runs the inner frame too (as if a pod sent it).
            write("pipeline_frame", "%s-%d-inner" % (stem, i), bytes([0, 128]) + frame[50:])

    # Headroom byte 128: the frame at offset 256, as AF_XDP places it.
    for name, frame in node1_frames().items():
        write("packet_parse", "node1-" + name, frame)
        write("pipeline_frame", "node1-" + name, bytes([0, 128]) + frame)
        if name.startswith("vxlan"):
            write("vxlan_decap", "node1-" + name, frame)
    write("pipeline_frame", "node1-pod-a-to-remote-no-headroom",
          bytes([0, 10]) + node1_frames()["pod-a-to-remote-tcp-syn"])
    for name, frame in two_tenants_frames().items():
        write("packet_parse", "two-tenants-" + name, frame)
        write("pipeline_frame", "two-tenants-" + name, bytes([1, 128]) + frame)

    # Structured inputs (flag bit 6): [kind, source, destination, ttl, payload]
    # choices that the target turns into well-formed frames.
    for which, table_set in ((0x40, "node1"), (0x41, "two-tenants")):
        for kind in range(4):
            for choice in range(3):
                write("pipeline_frame", "built-%s-kind%d-%d" % (table_set, kind, choice),
                      bytes([which, 128, kind, choice, 3 * choice + kind, 64]) + b"payload")

    configs = [
        ("example-two-node-node1.yaml", "config/examples/two-node/node1.yaml"),
        ("example-two-node-node2.yaml", "config/examples/two-node/node2.yaml"),
        ("example-two-tenants.yaml", "config/examples/two-tenants.yaml"),
        ("fixture-node1.yaml", "dataplane/tests/fixtures/node1.yaml"),
        ("fixture-two-tenants.yaml", "dataplane/tests/fixtures/two-tenants.yaml"),
    ]
    for name, path in configs:
        with open(os.path.join(ROOT, path), "rb") as f:
            write("config_yaml", name, f.read())
    with open(os.path.join(HERE, "seeds", "services-policies-chains.yaml"), "rb") as f:
        write("config_yaml", "services-policies-chains.yaml", f.read())

    rng = random.Random(7)
    for i in range(8):
        data = bytes(rng.randrange(256) for _ in range(32 + 32 * i))
        write("table_updates", "random-%d-%s" % (i, hashlib.sha1(data).hexdigest()[:8]), data)


if __name__ == "__main__":
    main()
