#!/usr/bin/env python3
"""Seeds for fuzz_mmds (tests/mmds/corpus): each file is a sequence of guest
frames, a 2-byte big-endian length then the frame.  fuzz_mmds seeds the
stack's ISNs with 0x5eed, so the conversations here can acknowledge the
stack's sequence numbers; its responder answers 40 + (len * 7) % 4000 bytes."""
import os
import struct
import sys

MMDS = bytes([169, 254, 169, 254])
GUEST = bytes([10, 0, 0, 2])
MMDS_MAC = bytes([6, 1, 0x23, 0x45, 0x67, 1])
GUEST_MAC = bytes([2, 0x11, 0x22, 0x33, 0x44, 0x55])
M32 = 0xFFFFFFFF


class Isn:
    def __init__(self, seed=0x5EED):
        self.x = seed

    def next(self):
        x = self.x
        x ^= (x << 13) & M32
        x ^= x >> 17
        x ^= (x << 5) & M32
        self.x = x
        return x


def csum(b, acc=0):
    if len(b) % 2:
        b += b"\0"
    for i in range(0, len(b), 2):
        acc += (b[i] << 8) | b[i + 1]
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return ~acc & 0xFFFF


def tcp(sport, seq, ack, flags, win, data=b"", mss=None, dport=80):
    opt = struct.pack("!BBH", 2, 4, mss) if mss else b""
    hl = 20 + len(opt)
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & M32, ack & M32, (hl // 4) << 4,
                      flags, win, 0, 0) + opt + data
    ph = GUEST + MMDS + struct.pack("!BBH", 0, 6, len(seg))
    c = csum(ph + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 0, 0x4000, 64, 6, 0, GUEST, MMDS)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return MMDS_MAC + GUEST_MAC + b"\x08\x00" + ip + seg


def arp(tpa):
    return (b"\xff" * 6 + GUEST_MAC + b"\x08\x06" +
            struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + GUEST_MAC + GUEST + b"\0" * 6 + tpa)


def rec(frames):
    return b"".join(struct.pack("!H", len(f)) + f for f in frames)


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
GET = b"GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nAccept: */*\r\n\r\n"


def conversation(req_parts, win=64240, mss=1460, fin=True):
    isn = Isn().next()
    seq, port = 1000, 45000
    f = [tcp(port, seq, 0, SYN, win, mss=mss)]
    seq += 1
    f.append(tcp(port, seq, isn + 1, ACK, win))
    for p in req_parts:
        f.append(tcp(port, seq, isn + 1, ACK | PSH, win, p))
        seq += len(p)
    req = b"".join(req_parts)
    req_len = req.index(b"\r\n\r\n") + 4  # the stack passes the head only
    resp = 40 + (req_len * 7) % 4000
    acked = 0
    while acked < resp:  # acknowledge window by window
        acked = min(resp, acked + win)
        f.append(tcp(port, seq, isn + 1 + acked, ACK, win))
    if fin:
        f.append(tcp(port, seq, isn + 1 + resp, FIN | ACK, win))
    return f


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {
        "arp_request": [arp(MMDS)],
        "syn": [tcp(40000, 1, 0, SYN, 64240, mss=1460)],
        "get_one_segment": conversation([GET]),
        "get_split_small_window": conversation([GET[:20], GET[20:]], win=600, mss=536),
        "content_length_body": conversation(
            [b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 100\r\n\r\nsome body"]),
        "rst_and_other_port": [tcp(40001, 5, 0, SYN, 1000), tcp(40001, 6, 0, RST, 0),
                               tcp(40002, 5, 9, ACK, 1000, dport=81),
                               tcp(40003, 5, 9, ACK, 1000, b"x")],
        "garbage": [MMDS_MAC + GUEST_MAC + b"\x08\x00" + bytes([0x4f, 0xff]) + b"\xa5" * 14 +
                    MMDS + b"\x5a" * 37,
                    MMDS_MAC + GUEST_MAC + b"\x08\x06" + b"\x00" * 10],
    }
    for name, frames in seeds.items():
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(rec(frames))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus"))
