#!/usr/bin/env python3
"""Seeds for fuzz_netvsock (layout in fuzz_netvsock.c): run from this folder,
writes corpus_netvsock/*.  Guest-physical X is input byte X - 0x1000 + 1."""
import struct, os

def image(flags, size=0x6000):
    return bytearray([flags]) + bytearray(size)

def put(img, gpa, b):
    img[gpa - 0x1000 + 1: gpa - 0x1000 + 1 + len(b)] = b

def desc(img, q, i, addr, ln, fl, nxt):
    put(img, 0x1000 + q * 0x1000 + 16 * i, struct.pack('<QIHH', addr, ln, fl, nxt))

def avail(img, q, heads):
    base = 0x1800 + q * 0x1000
    put(img, base, struct.pack('<HH', 0, len(heads)))
    for k, h in enumerate(heads):
        put(img, base + 4 + 2 * k, struct.pack('<H', h))

def vhdr(src_cid, dst_cid, sp, dp, ln, typ, op, flags=0, buf_alloc=65536, fwd=0):
    return struct.pack('<QQIIIHHIII', src_cid, dst_cid, sp, dp, ln, typ, op, flags, buf_alloc, fwd)

def eth(n, seed=1):
    return b'\xff' * 6 + b'\x02\x00\x00\x00\x00\x01' + b'\x88\xb5' + bytes((i * 31 + seed) & 0xff for i in range(n - 14))

seeds = {}
# net: one TX frame (header and frame in two descriptors), two RX buffers
img = image(0x20)
desc(img, 1, 0, 0x4000, 12, 1, 1); desc(img, 1, 1, 0x4100, 60, 0, 0); avail(img, 1, [0])
put(img, 0x4100, eth(60))
desc(img, 0, 0, 0x5000, 2048, 2, 0); desc(img, 0, 1, 0x5800, 2048, 2, 0); avail(img, 0, [0, 1])
seeds['net_tx_rx'] = img
# net: mergeable RX into small buffers, EVENT_IDX
img = image(0x26)
for i in range(4):
    desc(img, 0, i, 0x5000 + 0x100 * i, 0x100, 2, 0)
avail(img, 0, [0, 1, 2, 3])
seeds['net_mrg'] = img
# net: a TX loop and an oversized TX chain
img = image(0x20)
desc(img, 1, 0, 0x4000, 12, 1, 0); avail(img, 1, [0])
seeds['net_tx_loop'] = img
img = image(0x20)
desc(img, 1, 0, 0x4000, 0xa000, 1, 1); desc(img, 1, 1, 0x4000, 0x8000, 0, 0); avail(img, 1, [0])
seeds['net_tx_huge'] = img
# net: indirect RX table, tx limiter on
img = image(0xa8)
desc(img, 0, 0, 0x4000, 32, 4, 0); avail(img, 0, [0])
put(img, 0x4000, struct.pack('<QIHHQIHH', 0x5000, 12, 3, 1, 0x5100, 2000, 2, 0))
desc(img, 1, 0, 0x4200, 80, 0, 0); avail(img, 1, [0])
seeds['net_indirect_rl'] = img

def vs(name, pkts, flags=0x21):
    img = image(flags)
    for i in range(3):
        desc(img, 0, i, 0x5000 + 0x100 * i, 0x100, 2, 0)
    avail(img, 0, [0, 1, 2])
    desc(img, 2, 0, 0x6000, 4, 2, 0); avail(img, 2, [0])
    heads = []
    for i, p in enumerate(pkts):
        put(img, 0x4000 + 0x200 * i, p)
        desc(img, 1, i, 0x4000 + 0x200 * i, len(p), 0, 0)
        heads.append(i)
    avail(img, 1, heads)
    seeds[name] = img

vs('vsock_request', [vhdr(3, 2, 100, 200, 0, 1, 1)])
vs('vsock_rw_unknown', [vhdr(3, 2, 100, 200, 10, 1, 5) + b'0123456789'])
vs('vsock_bad_len', [vhdr(3, 2, 100, 200, 1000, 1, 5) + b'x' * 10])
vs('vsock_bad_cid', [vhdr(4, 2, 100, 200, 0, 1, 1), vhdr(3, 7, 1, 2, 0, 1, 1)])
vs('vsock_ops', [vhdr(3, 2, 1, 2, 0, 1, op, flags=3) for op in range(0, 9)])
vs('vsock_bad_type', [vhdr(3, 2, 1, 2, 0, 2, 1)], flags=0x23)
vs('vsock_short', [b'\x03' * 20])
img = image(0x21, 0x100)
put(img, 0x1000, b'CONNECT 52\n')
seeds['vsock_connect_line'] = img

os.makedirs('corpus_netvsock', exist_ok=True)
for k, v in seeds.items():
    with open(os.path.join('corpus_netvsock', k), 'wb') as f:
        f.write(bytes(v))
print(len(seeds), 'seeds')
