# SPDX-License-Identifier: MIT
"""netlab's file-transfer cases (examples/web/FILE-PROTOCOL.md): tern-send and tern-recv meet
in a tern-signal room across real NATs of the lab, and move files of 0 B, 1 B, 1 MiB and a
large one (1 GiB; --files-mib sets it), whose contents are compared afterwards.

- a port-restricted pair (apdf-a x apdf-b: EIM with address-and-port-dependent filtering on
  both sides): the transfer must take the direct path through the NATs (srflx or prflx);
- a relayed pair (sym-a x sym-b: both map per destination, so only TURN connects them): the
  transfer goes through coturn.

Each run checks both programs' exit status, that every file arrived intact, the path type in
both summaries, and that tern-recv's peak resident memory stayed bounded (VmHWM, sampled while
it runs) however large the file. The files live in a temporary folder removed afterwards.
netlab.py calls run_files_cases() after its other cases.
"""

import os
import random
import re
import shutil
import tempfile
import time

# The receiver's peak resident memory: far below the large file, whatever its size
# (--recv-max-rss-mib; CMake raises it for sanitizer builds, whose quarantine and shadow memory
# hold a few hundred MiB of their own, still well under the 1 GiB file).
RECV_MAX_RSS_MIB = 64


def make_file(path, size, seed):
    """A file of size bytes of seeded pseudo-random content (no two blocks alike)."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        done = 0
        while done < size:
            n = min(1 << 20, size - done)
            f.write(rng.randbytes(n))
            done += n


def same(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def peak_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class FilesCase:
    def __init__(self, name, a, b, expect, why, servers):
        self.name, self.a, self.b, self.expect, self.why, self.servers = \
            name, a, b, expect, why, servers


def run_one(lab, args, rep, case, seq, servers_argv, signal_url, big_mib):
    room = "files%d" % seq
    work = tempfile.mkdtemp(prefix="tern-netlab-files-")
    try:
        src, out = os.path.join(work, "src"), os.path.join(work, "out")
        os.makedirs(src)
        sizes = {"zero.bin": 0, "one.bin": 1, "mebi.bin": 1 << 20, "large.bin": big_mib << 20}
        for i, (n, size) in enumerate(sizes.items()):
            make_file(os.path.join(src, n), size, i)
        url = "%s/%s" % (signal_url, room)
        recv_log, send_log = "%s-recv-%s" % (room, case.b), "%s-send-%s" % (room, case.a)
        recv = lab.spawn("h-" + case.b, recv_log,
                         [args.recv, "--signal", url, "--out", out, "--answer", "--quiet"]
                         + servers_argv)
        time.sleep(0.5)  # in the room first: the sender is the newcomer it offers to
        t0 = time.monotonic()
        send = lab.spawn("h-" + case.a, send_log,
                         [args.send, "--signal", url, "--offer", "--quiet"]
                         + servers_argv + [os.path.join(src, n) for n in sizes])
        peak = 0
        deadline = t0 + 600
        while time.monotonic() < deadline and (send.poll() is None or recv.poll() is None):
            peak = max(peak, peak_rss_kib(recv.pid))
            time.sleep(0.05)
        secs = time.monotonic() - t0
        send_code, recv_code = lab.stop(send), lab.stop(recv)
        s_out = read(os.path.join(lab.logdir, send_log + ".log"))
        r_out = read(os.path.join(lab.logdir, recv_log + ".log"))
        bad = []
        if send_code != 0 or recv_code != 0:
            bad.append("tern-send exited %s, tern-recv %s" % (send_code, recv_code))
        for n in sizes:
            got = os.path.join(out, n)
            if not os.path.exists(got) or not same(os.path.join(src, n), got):
                bad.append("%s %s" % (n, "differs" if os.path.exists(got) else "missing"))
        paths = [re.search(r"path (\w+) \(([^)]*)\)", t) for t in (s_out, r_out)]
        kinds = [m.group(1) if m else "?" for m in paths]
        if any(k != case.expect for k in kinds):
            bad.append("path %s at the sender, %s at the receiver, expected %s" % (
                kinds[0], kinds[1], case.expect))
        bound_kib = args.recv_max_rss_mib * 1024
        if peak == 0 or peak > bound_kib:
            bad.append("tern-recv's peak memory %d KiB (bound %d KiB)" % (peak, bound_kib))
        rate = re.search(r"([\d.]+) MB/s average", s_out)
        detail = "%s; %d MiB and 3 small files in %.1f s (%s MB/s), tern-recv's peak %d KiB; %s" % (
            "; ".join(bad) or "all intact", big_mib, secs, rate.group(1) if rate else "?", peak,
            paths[0].group(2) if paths[0] else "no path")
        rep.check(not bad, case.name, detail)
        rep.out("#   why %s: %s" % (case.expect, case.why))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_files_cases(lab, args, rep, signal_url, stun_url, turn_urls, caps):
    """The file cases, if tern-send and tern-recv were given (--send, --recv)."""
    if not args.send or not args.recv:
        rep.out("# no --send/--recv: the file-transfer cases are not part of this run")
        return
    servers = [stun_url] + [u for u in turn_urls if not u.startswith("turns:")]
    servers_argv = [x for u in servers for x in ("--ice-server", u)]
    cases = [
        FilesCase("files: tern-send apdf-a x tern-recv apdf-b (port-restricted pair)", "apdf-a",
                  "apdf-b", "srflx", "both EIM with port-restricted filtering: the crossing "
                  "checks open both filters, a direct path through the NATs", servers),
        FilesCase("files: tern-send sym-a x tern-recv sym-b (relayed pair)", "sym-a", "sym-b",
                  "relay", "both map per destination and filter by address and port: only TURN "
                  "connects them", servers),
    ]
    for seq, case in enumerate(cases):
        if args.only and not re.search(args.only, case.name):
            continue
        need = "relay" if case.expect == "relay" else "srflx"
        if need not in caps:
            rep.check(True, case.name, skip="needs %s candidates, which the stack does not "
                      "gather yet" % need)
            continue
        run_one(lab, args, rep, case, seq, servers_argv, signal_url, args.files_mib)
