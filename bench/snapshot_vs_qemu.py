#!/usr/bin/env python3
"""snapshot_vs_qemu: squib vs QEMU microvm on the same tiny guest (the
snapshot test guest in bench mode: fills 200 MiB, then answers 'p' with
PONG on the serial port), all in one run on this host's /dev/kvm.

Both VMMs get the same guest and the same harness: the guest sleeps in HLT
and wakes on the UART's receive interrupt (irq=1; before session 11 it spun
a delay loop between polls, ~13 ms a round on this host, so a random 0-13 ms
of every restore measured was where that loop happened to be), and the
harness reads each VMM's serial output from a pipe with select (squib's
stdout; QEMU's chardev FIFO, read directly) instead of polling a file.

  squib    pause window: PUT /snapshot/create Full with "squib":
           {"background": true} of the running VM (a live create: squib
           pauses and resumes the guest itself and reports the window as
           GET /snapshot/status pause_us); pause_bg: the client-paused
           background create, PATCH Paused + create + PATCH Resumed (the
           file is written meanwhile, waited for before restore);
           save: PATCH Paused + PUT /snapshot/create Full (foreground,
           durable); restore: process start -> PUT /snapshot/load File with
           squib's defaults (a first load: each chunk verified as it is
           installed) -> 'p' -> PONG; then the same for the remembered
           file, the trusted load ("verify": false, the floor) and the
           mmap load verified whole before the guest runs (the old default)
  QEMU 7.2 -incoming: stop + migrate to exec:cat > file; restore: -incoming
           exec:cat file + cont + 'p' -> PONG
  QEMU 7.2 x-ignore-shared: RAM in a shared file (memory-backend-file,
           share=on), capability x-ignore-shared on both sides: the stream
           holds the device state only, the RAM file is the memory
  QEMU 10 mapped-ram + multifd (Debian bookworm-backports, fetched with
           apt-get download into a cache and unpacked with dpkg-deb -x, never
           installed): migrate to file: with capabilities mapped-ram and
           multifd, restore with -incoming defer + migrate-incoming file:

Ratios: squib's default (verified) restore against the fastest QEMU restore,
and squib's pause window against QEMU's fastest stop+save (goal >= 10x each).

usage: snapshot_vs_qemu.py SQUIB GUEST_DIR [--quick] [--runs N]  (not a ctest)
  QEMU 10 cache: $SQUIB_QEMU10_CACHE (default ~/.cache/squib/qemu10-bpo12);
  SQUIB_QEMU10=0 leaves it out.
"""
import glob, json, os, select, shutil, socket, statistics, subprocess, sys, tempfile, time

SQUIB, GUESTS = sys.argv[1], sys.argv[2]
QUICK = "--quick" in sys.argv
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else (1 if QUICK else 3)
QEMU7 = shutil.which("qemu-system-x86_64")
D = tempfile.mkdtemp(prefix="squib-vsqemu-")
NOTES = []


def fetch_qemu10():
    """QEMU 10 from bookworm-backports, fetched into a cache by
    scripts/qemu10.sh: returns (binary, env, extra args) or None (the reason
    goes to NOTES)."""
    if os.environ.get("SQUIB_QEMU10") == "0":
        NOTES.append("QEMU 10: left out (SQUIB_QEMU10=0)")
        return None
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "qemu10.sh")
    r = subprocess.run(["bash", script, "--quiet"], capture_output=True, text=True)
    if r.returncode:
        NOTES.append("QEMU 10: " + (r.stderr.strip().splitlines() or ["fetch failed"])[-1])
        return None
    binary = r.stdout.strip()
    v = subprocess.run([binary, "--version"], capture_output=True, text=True)
    NOTES.append("QEMU 10: " + v.stdout.splitlines()[0])
    return binary, dict(os.environ), []


class Serial:
    """The guest's serial output as the VMM writes it, read from a pipe as it
    comes (select, no polling): squib's stdout, QEMU's chardev pipe FIFO, the
    same way for both."""

    def __init__(self, fd, what):
        self.fd, self.what, self.buf = fd, what, b""

    def wait(self, needle, timeout=120.0):
        end = time.monotonic() + timeout
        while needle not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise RuntimeError("timeout waiting for %r from %s" % (needle, self.what))
            c = os.read(self.fd, 65536)
            if not c:
                raise RuntimeError("%s closed its serial output before %r" % (self.what, needle))
            self.buf += c
        self.buf = self.buf[self.buf.index(needle) + len(needle):]

    def close(self):
        os.close(self.fd)


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
    sock = "%s/%s.sock" % (D, tag)
    p = subprocess.Popen([SQUIB, "--api-sock", sock, "--level", "Warning"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p, sock, Serial(p.stdout.fileno(), "squib " + tag)


def squib_status(sock):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"GET /snapshot/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        resp += c
    s.close()
    return resp.decode(errors="replace")


def squib_cycle(mib, tag):
    p, sock, ser = squib_spawn(tag + "-a")
    wait_path(sock)
    http(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": mib})
    http(sock, "PUT", "/boot-source", {"kernel_image_path": GUESTS + "/snapguest.elf",
                                       "boot_args": "mode=4 mib=200 irq=1"})
    http(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    ser.wait(b"FILLED")
    # background: the pause window ends when the guest runs again
    t0 = time.monotonic()
    http(sock, "PATCH", "/vm", {"state": "Paused"})
    http(sock, "PUT", "/snapshot/create", {"snapshot_path": "%s/%s-bg.st" % (D, tag),
                                           "mem_file_path": "%s/%s-bg.mem" % (D, tag),
                                           "squib": {"background": True}})
    http(sock, "PATCH", "/vm", {"state": "Resumed"})
    pause = time.monotonic() - t0
    while '"writing"' in squib_status(sock):
        time.sleep(0.001)
    if '"complete"' not in squib_status(sock):
        raise RuntimeError("background snapshot failed: " + squib_status(sock))
    # live: the same create of the running VM; squib pauses it itself and
    # reports the guest's pause window (pause_us)
    http(sock, "PUT", "/snapshot/create", {"snapshot_path": "%s/%s-lv.st" % (D, tag),
                                           "mem_file_path": "%s/%s-lv.mem" % (D, tag),
                                           "squib": {"background": True}})
    while '"writing"' in squib_status(sock):
        time.sleep(0.001)
    st = squib_status(sock)
    if '"complete"' not in st:
        raise RuntimeError("live snapshot failed: " + st)
    live = json.loads(st[st.index("{"):])["pause_us"] / 1e3
    t0 = time.monotonic()
    http(sock, "PATCH", "/vm", {"state": "Paused"})
    http(sock, "PUT", "/snapshot/create", {"snapshot_path": "%s/%s.st" % (D, tag),
                                           "mem_file_path": "%s/%s.mem" % (D, tag)})
    save = time.monotonic() - t0
    p.kill()
    p.wait()
    p.stdout.close()
    out = {"pause": live, "pause_bg": pause * 1e3, "save": save * 1e3}
    # default first load (verified chunk by chunk as installed), then, once
    # it has verified every chunk, the default load of the remembered file;
    # the floor: the trusted load ("verify": false); the old default: mmap
    # verified whole before the guest runs
    vc = "%s/vcache-%s" % (D, tag)
    os.environ["SQB_VERIFY_CACHE"] = vc
    for key, ext in (("restore", None), ("remembered", None), ("trusted", {"verify": False}),
                     ("mmap_verify", {"restore": "mmap"})):
        if key == "mmap_verify":
            shutil.rmtree(vc, ignore_errors=True)
        t1 = time.monotonic()
        p, sock, ser = squib_spawn("%s-%s" % (tag, key))
        wait_path(sock)
        t2 = time.monotonic()
        body = {"snapshot_path": "%s/%s.st" % (D, tag), "resume_vm": True,
                "mem_backend": {"backend_type": "File", "backend_path": "%s/%s.mem" % (D, tag)}}
        if ext:
            body["squib"] = ext
        http(sock, "PUT", "/snapshot/load", body)
        p.stdin.write(b"p")
        p.stdin.flush()
        ser.wait(b"PONG")
        t3 = time.monotonic()
        out[key] = (t3 - t1) * 1e3
        if key == "restore":
            out["load"] = (t3 - t2) * 1e3
            end = time.monotonic() + 30  # the VM verifies the rest, then remembers it
            while not [f for f in glob.glob(vc + "/*") if not f.endswith(".lock")]:
                if time.monotonic() > end:
                    raise RuntimeError("the first load never remembered " + tag)
                time.sleep(0.005)
        p.kill()
        p.wait()
        p.stdout.close()
    del os.environ["SQB_VERIFY_CACHE"]
    for f in glob.glob("%s/%s*" % (D, tag)):
        if os.path.isfile(f):
            os.unlink(f)
    shutil.rmtree(vc, ignore_errors=True)
    return out


# QEMU variants: (label, binary, env, extra args, machine options, shared RAM
# file, capabilities, migration URI kind)
def qemu_variants(q10):
    v = []
    if QEMU7:
        v.append(("QEMU 7.2 -incoming", QEMU7, None, [], "", False, [], "exec"))
        v.append(("QEMU 7.2 x-ignore-shared", QEMU7, None, [], "", True, ["x-ignore-shared"],
                  "exec"))
    if q10:
        # QEMU 10's microvm gives the guest no serial output with ACPI on
        v.append(("QEMU 10 mapped-ram+multifd", q10[0], q10[1], q10[2], ",acpi=off", False,
                  ["mapped-ram", "multifd"], "file"))
    return v


def qemu_args(binary, extra, mopts, mib, tag, ram_file):
    machine = "microvm,x-option-roms=off,rtc=off,isa-serial=on" + mopts
    mem = []
    if ram_file:
        machine += ",memory-backend=ram0"
        mem = ["-object", "memory-backend-file,id=ram0,size=%dM,mem-path=%s,share=on" %
               (mib, ram_file)]
    return [binary] + extra + [
        "-M", machine, "-accel", "kvm", "-cpu", "max,-arch-capabilities", "-m", str(mib),
        "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
        "-kernel", GUESTS + "/snapguest.elf", "-append", "mode=4 mib=200 irq=1",
        "-chardev", "pipe,id=s0,path=%s/%s.ser" % (D, tag), "-serial", "chardev:s0",
        "-qmp", "unix:%s/%s.qmp,server=on,wait=off" % (D, tag)] + mem


def qemu_start(var, mib, tag, extra):
    _, binary, env, args, mopts, shared, _, _ = var
    os.mkfifo("%s/%s.ser.in" % (D, tag))
    os.mkfifo("%s/%s.ser.out" % (D, tag))
    # the output FIFO read directly (QEMU opens both ends O_RDWR): no
    # reader process between QEMU and the harness, as for squib's pipe
    out = Serial(os.open("%s/%s.ser.out" % (D, tag), os.O_RDONLY | os.O_NONBLOCK),
                 "QEMU " + tag)
    ram = "%s/%s.ram" % (D, tag[:-1]) if shared else None
    p = subprocess.Popen(qemu_args(binary, args, mopts, mib, tag, ram) + extra, env=env,
                         stderr=open("%s/%s.err" % (D, tag), "wb"))
    sin = open("%s/%s.ser.in" % (D, tag), "wb", buffering=0)
    return p, sin, out


def qemu_stop(p, sin, out):
    p.kill()
    p.wait()
    out.close()
    sin.close()


def qemu_caps(q, caps):
    if caps:
        q.cmd("migrate-set-capabilities",
              capabilities=[{"capability": c, "state": True} for c in caps])
    if "multifd" in caps:
        q.cmd("migrate-set-parameters", **{"multifd-channels": 4})


def qemu_wait(q):
    while True:
        st = q.cmd("query-migrate").get("status")
        if st == "completed":
            return
        if st in ("failed", "cancelled"):
            raise RuntimeError("QEMU migration " + st + ": " + str(q.cmd("query-migrate")))
        time.sleep(0.0005)


def qemu_cycle(var, mib, tag):
    caps, kind = var[6], var[7]
    img = "%s/%s.qemu" % (D, tag)
    p, sin, out = qemu_start(var, mib, tag + "a", [])
    q = Qmp("%s/%sa.qmp" % (D, tag))
    out.wait(b"FILLED")
    q.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})  # no throttling
    qemu_caps(q, caps)
    t0 = time.monotonic()
    q.cmd("stop")
    q.cmd("migrate", uri=("file:%s" % img) if kind == "file" else "exec:cat > %s" % img)
    qemu_wait(q)
    save = time.monotonic() - t0
    qemu_stop(p, sin, out)
    t1 = time.monotonic()
    p, sin, out = qemu_start(var, mib, tag + "b", ["-incoming", "defer"])
    q = Qmp("%s/%sb.qmp" % (D, tag))
    qemu_caps(q, caps)
    q.cmd("migrate-incoming", uri=("file:%s" % img) if kind == "file" else "exec:cat %s" % img)
    qemu_wait(q)
    q.cmd("cont")
    sin.write(b"p")
    out.wait(b"PONG")
    t2 = time.monotonic()
    qemu_stop(p, sin, out)
    for f in glob.glob("%s/%s*" % (D, tag)):
        os.unlink(f)
    return {"save": save * 1e3, "restore": (t2 - t1) * 1e3}


def main():
    q10 = fetch_qemu10() if not QUICK or os.environ.get("SQUIB_QEMU10") else None
    variants = qemu_variants(q10)
    print("snapshot_vs_qemu: same guest (fills 200 MiB), %d runs, alternating; load %s" %
          (RUNS, open("/proc/loadavg").read().split()[0:3]))
    for n in NOTES:
        print("  " + n)
    for mib in ([256] if QUICK else [256, 1024]):
        res = {"squib": []}
        res.update({v[0]: [] for v in variants})
        for i in range(RUNS):
            res["squib"].append(squib_cycle(mib, "s%d-%d" % (mib, i)))
            for k, v in enumerate(variants):
                try:
                    res[v[0]].append(qemu_cycle(v, mib, "q%d-%d-%d" % (mib, k, i)))
                except (RuntimeError, OSError) as e:
                    print("  %s: %s" % (v[0], e))
        load = open("/proc/loadavg").read().split()[0:3]
        print("\n%d MiB guest, runs %s, load after: %s" % (mib, " / ".join(
            str(i + 1) for i in range(RUNS)), " ".join(load)))
        row = lambda name, key: "  %-28s %-9s %s  (median %.1f ms)" % (
            name, key, " / ".join("%.1f" % r[key] for r in res[name]),
            statistics.median(r[key] for r in res[name])) if res[name] else \
            "  %-28s %-9s -" % (name, key)
        print(row("squib", "pause"))
        print(row("squib", "pause_bg"))
        print(row("squib", "save"))
        print(row("squib", "restore"))
        print(row("squib", "load"))
        print(row("squib", "remembered"))
        print(row("squib", "trusted"))
        print(row("squib", "mmap_verify"))
        for v in variants:
            print(row(v[0], "save"))
            print(row(v[0], "restore"))
        med = lambda name, key: statistics.median(r[key] for r in res[name])
        if res["squib"]:
            print("  squib first verified load (default) %.1f ms vs trusted load %.1f ms: %.2fx "
                  "(goal <= 1.5x); remembered %.2fx; verified whole (old default) %.2fx" % (
                      med("squib", "restore"), med("squib", "trusted"),
                      med("squib", "restore") / med("squib", "trusted"),
                      med("squib", "remembered") / med("squib", "trusted"),
                      med("squib", "mmap_verify") / med("squib", "trusted")))
        done = [v[0] for v in variants if res[v[0]]]
        if done:
            fr = min(done, key=lambda n: med(n, "restore"))
            fs = min(done, key=lambda n: med(n, "save"))
            print("  restore: squib default (verified) %.1f ms vs fastest QEMU (%s) %.1f ms: "
                  "%.1fx (goal >= 10x)" % (med("squib", "restore"), fr, med(fr, "restore"),
                                           med(fr, "restore") / med("squib", "restore")))
            print("  pause:   squib live pause window %.2f ms vs fastest QEMU stop+save "
                  "(%s) %.1f ms: %.1fx (goal >= 10x); client-paused background %.2f ms: "
                  "%.1fx" % (
                      med("squib", "pause"), fs, med(fs, "save"),
                      med(fs, "save") / med("squib", "pause"), med("squib", "pause_bg"),
                      med(fs, "save") / med("squib", "pause_bg")))
    shutil.rmtree(D, ignore_errors=True)


if __name__ == "__main__":
    main()
