#!/usr/bin/env python3
"""dnsquery.py SERVER NAME [EXPECTED_IP]: one DNS A query over UDP.

Exits 0 when SERVER answers NAME with an A record (equal to EXPECTED_IP if
given), 1 otherwise. up.sh waits on it for the cluster DNS; it needs no dig.
"""
import random
import socket
import struct
import sys


def query(server, name, timeout=1.0):
    qid = random.randrange(1 << 16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    q += struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(q, (server, 53))
    data, _ = s.recvfrom(4096)
    rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid or flags & 0xF:
        return []
    i = 12
    for _ in range(qd):  # skip the question
        while data[i]:
            i += data[i] + 1
        i += 5
    ips = []
    for _ in range(an):
        if data[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while data[i]:
                i += data[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            ips.append(socket.inet_ntoa(data[i:i + 4]))
        i += rdlen
    return ips


if __name__ == "__main__":
    ips = query(sys.argv[1], sys.argv[2])
    print(" ".join(ips))
    ok = bool(ips) and (len(sys.argv) < 4 or sys.argv[3] in ips)
    sys.exit(0 if ok else 1)
