#!/usr/bin/env python3
"""snapshot_vs_qemu: squib vs QEMU microvm on the same tiny guest (the
snapshot test guest in bench mode: fills 200 MiB, then answers 'p' with
PONG on the serial port), in one run on this host's /dev/kvm.

  save:    pause + write the snapshot (squib: PATCH Paused + PUT
           /snapshot/create Full, codec none; QEMU: stop + migrate to a file)
  restore: process start -> guest answers PONG (squib: spawn + PUT
           /snapshot/load mmap + 'p'; QEMU: -incoming from the file + cont + 'p')

usage: snapshot_vs_qemu.py SQUIB GUEST_DIR [--quick]   (not a ctest; QEMU optional)
"""
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

SQUIB, GUESTS = sys.argv[1], sys.argv[2]
QUICK = "--quick" in sys.argv
QEMU = shutil.which("qemu-system-x86_64")
D = tempfile.mkdtemp(prefix="squib-vsqemu-")


def wait_file(path, needle, timeout=120.0, start=0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                if needle in f.read():
                    return True
        except FileNotFoundError:
            pass
        time.sleep(0.0005)
    raise RuntimeError("timeout waiting for %r in %s" % (needle, path))


def wait_path(path, timeout=10.0):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError("no " + path)
        time.sleep(0.0005)


def http(sock, method, path, body=None):
    s = socket.socket(socket.AF_UNIX)
    for i in range(4000):  # the socket file exists before listen()
        try:
            s.connect(sock)
            break
        except ConnectionRefusedError:
            time.sleep(0.0005)
    data = json.dumps(body) if body is not None else ""
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n%s" %
               (method, path, len(data), data)).encode())
    resp = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        resp += c
    s.close()
    code = int(resp.split(b" ", 2)[1])
    if code >= 300:
        raise RuntimeError("%s %s -> %s" % (method, path, resp))
    return code


class Qmp:
    def __init__(self, path):
        wait_path(path)
        self.s = socket.socket(socket.AF_UNIX)
        for _ in range(2000):
            try:
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.001)
        self.f = self.s.makefile("rwb")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r or "error" in r:
                if "error" in r:
                    raise RuntimeError(str(r))
                return r["return"]


def squib_spawn(tag):
    sock, ser = "%s/%s.sock" % (D, tag), "%s/%s.serial" % (D, tag)
    fifo = "%s/%s.in" % (D, tag)
    os.mkfifo(fifo)
    p = subprocess.Popen([SQUIB, "--api-sock", sock, "--level", "Warning"],
                         stdin=subprocess.PIPE, stdout=open(ser, "wb"), stderr=subprocess.DEVNULL)
    return p, sock, ser


def squib_cycle(mib, tag):
    p, sock, ser = squib_spawn(tag + "-a")
    wait_path(sock)
    http(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": mib})
    http(sock, "PUT", "/boot-source", {"kernel_image_path": GUESTS + "/snapguest.elf",
                                       "boot_args": "mode=4 mib=200"})
    http(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    wait_file(ser, b"FILLED")
    t0 = time.monotonic()
    http(sock, "PATCH", "/vm", {"state": "Paused"})
    http(sock, "PUT", "/snapshot/create", {"snapshot_path": "%s/%s.st" % (D, tag),
                                           "mem_file_path": "%s/%s.mem" % (D, tag)})
    save = time.monotonic() - t0
    p.kill()
    p.wait()
    t1 = time.monotonic()
    p, sock, ser = squib_spawn(tag + "-b")
    wait_path(sock)
    t2 = time.monotonic()
    http(sock, "PUT", "/snapshot/load", {
        "snapshot_path": "%s/%s.st" % (D, tag), "resume_vm": True,
        "mem_backend": {"backend_type": "File", "backend_path": "%s/%s.mem" % (D, tag)}})
    p.stdin.write(b"p")
    p.stdin.flush()
    wait_file(ser, b"PONG")
    t3 = time.monotonic()
    p.kill()
    p.wait()
    return save * 1e3, (t3 - t1) * 1e3, (t3 - t2) * 1e3


def qemu_args(mib, tag, extra):
    return [QEMU, "-M", "microvm,x-option-roms=off,rtc=off,isa-serial=on", "-accel", "kvm",
            "-cpu", "max,-arch-capabilities", "-m", str(mib), "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-monitor", "none",
            "-kernel", GUESTS + "/snapguest.elf", "-append", "mode=4 mib=200",
            "-chardev", "pipe,id=s0,path=%s/%s.ser" % (D, tag), "-serial", "chardev:s0",
            "-qmp", "unix:%s/%s.qmp,server=on,wait=off" % (D, tag)] + extra


def qemu_cycle(mib, tag):
    for t in ("a", "b"):
        os.mkfifo("%s/%s%s.ser.in" % (D, tag, t))
        os.mkfifo("%s/%s%s.ser.out" % (D, tag, t))
    out = "%s/%sa.log" % (D, tag)
    p = subprocess.Popen(qemu_args(mib, tag + "a", []), stderr=subprocess.DEVNULL)
    sin = open("%s/%sa.ser.in" % (D, tag), "wb", buffering=0)
    cat = subprocess.Popen(["cat", "%s/%sa.ser.out" % (D, tag)], stdout=open(out, "wb"))
    q = Qmp("%s/%sa.qmp" % (D, tag))
    wait_file(out, b"FILLED")
    q.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})  # no throttling
    t0 = time.monotonic()
    q.cmd("stop")
    q.cmd("migrate", uri="exec:cat > %s/%s.qemu" % (D, tag))
    while q.cmd("query-migrate").get("status") not in ("completed", "failed"):
        time.sleep(0.0005)
    save = time.monotonic() - t0
    p.kill()
    p.wait()
    cat.kill()
    sin.close()
    out = "%s/%sb.log" % (D, tag)
    t1 = time.monotonic()
    p = subprocess.Popen(qemu_args(mib, tag + "b", ["-incoming", "exec:cat %s/%s.qemu" % (D, tag)]),
                         stderr=subprocess.DEVNULL)
    sin = open("%s/%sb.ser.in" % (D, tag), "wb", buffering=0)
    cat = subprocess.Popen(["cat", "%s/%sb.ser.out" % (D, tag)], stdout=open(out, "wb"))
    q = Qmp("%s/%sb.qmp" % (D, tag))
    while q.cmd("query-migrate").get("status") != "completed":
        time.sleep(0.0005)
    q.cmd("cont")
    sin.write(b"p")
    wait_file(out, b"PONG")
    t2 = time.monotonic()
    p.kill()
    p.wait()
    cat.kill()
    sin.close()
    return save * 1e3, (t2 - t1) * 1e3


def main():
    reps = 1 if QUICK else 3
    print("snapshot_vs_qemu: same guest (fills 200 MiB), one run, medians of %d" % reps)
    print("%-8s %-34s %10s %10s" % ("guest", "", "squib", "QEMU 7.2"))
    for mib in ([256] if QUICK else [256, 1024]):
        s = [squib_cycle(mib, "s%d-%d" % (mib, i)) for i in range(reps)]
        qm = [qemu_cycle(mib, "q%d-%d" % (mib, i)) for i in range(reps)] if QEMU else []
        med = lambda v, k: statistics.median(x[k] for x in v) if v else float("nan")
        print("%-8s %-34s %8.1f ms %8.1f ms  (%.2fx)" % (
            "%d MiB" % mib, "save (pause + write)", med(s, 0), med(qm, 0), med(s, 0) / med(qm, 0)))
        print("%-8s %-34s %8.1f ms %8.1f ms  (%.2fx)" % (
            "", "restore: process start -> PONG", med(s, 1), med(qm, 1), med(s, 1) / med(qm, 1)))
        print("%-8s %-34s %8.1f ms" % ("", "squib: load request -> PONG", med(s, 2)))
    shutil.rmtree(D, ignore_errors=True)


if __name__ == "__main__":
    main()
