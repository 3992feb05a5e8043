#!/usr/bin/env python3
"""Sends and captures raw Ethernet frames with their VLAN tags, for the VLAN tests.

The host kernel strips the outer VLAN tag of received frames into packet metadata (there is
no 8021q module here, but the stack still un-tags); PACKET_AUXDATA gives it back, and this tool
re-inserts it so the caller sees the frame as it was on the wire.

  vlan_probe.py send IFACE DST SRC TAGS PAYLOAD     TAGS: "-" or "8100:10,88a8:30:5" (tpid:vid[:pcp])
  vlan_probe.py recv IFACE SECONDS                  prints one JSON line per frame with ethertype 0x88b5
"""
import json
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
PROBE_TYPE = 0x88B5


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def send(iface, dst, src, tags, payload):
    frame = mac(dst) + mac(src)
    if tags != "-":
        for t in tags.split(","):
            parts = t.split(":")
            tpid, vid = int(parts[0], 16), int(parts[1])
            pcp = int(parts[2]) if len(parts) > 2 else 0
            frame += struct.pack("!HH", tpid, (pcp << 13) | vid)
    frame += struct.pack("!H", PROBE_TYPE) + payload.encode()
    frame = frame.ljust(60, b"\0")
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.send(frame)


def recv(iface, seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, 0))
    deadline = time.time() + seconds
    while True:
        left = deadline - time.time()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data, anc, _flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(64))
        except socket.timeout:
            break
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        for level, kind, cdata in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= 20:
                status, _len, _snap, _mac, _net, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
                if status & TP_STATUS_VLAN_VALID:
                    if not status & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        tags = []
        off = 12
        while off + 4 <= len(data) and struct.unpack("!H", data[off:off + 2])[0] in (0x8100, 0x88A8):
            tpid, tci = struct.unpack("!HH", data[off:off + 4])
            tags.append([tpid, tci & 0xFFF, tci >> 13])
            off += 4
        if off + 2 > len(data) or struct.unpack("!H", data[off:off + 2])[0] != PROBE_TYPE:
            continue
        payload = data[off + 2:].rstrip(b"\0").decode(errors="replace")
        print(json.dumps({"tags": tags, "payload": payload}), flush=True)


def main():
    if sys.argv[1] == "send":
        send(*sys.argv[2:7])
    elif sys.argv[1] == "recv":
        recv(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
