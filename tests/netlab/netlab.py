#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""netlab: tern across real Linux NATs (issue 4, "NAT traversal for real").

It builds the lab (labnet.py: network namespaces, veth links, nftables NATs of chosen RFC 4787
behaviours), verifies every NAT with probes before trusting it (probe.py), starts coturn (a
generated configuration: long-term user, UDP, TCP and TLS listeners, two addresses for RFC
5780) and tern-signal on the lab's "internet", checks coturn, then runs tern peers
(netlab_peer) across every pair of behaviours and prints the connectivity matrix. Everything
it creates is removed at the end, also on failure, on a signal, and (through a reaper process)
when the driver itself is killed.

Output is TAP-like: "ok N - ..." / "not ok N - ...", with "# TODO" for cases that need a
capability the stack does not have yet (srflx or relay candidates, measured by gathering in the
lab first) and "# SKIP" for those not run in the CI subset for that reason; it ends with
"N passed, N failed". It exits 1 if the lab cannot be built or verified, or any case that the
stack can do fails.

Usage: netlab.py --peer netlab_peer --impair netlab_impair --signal tern-signal
                 [--logs DIR] [--full] [--only REGEX] [--list]
                 [--send tern-send --recv tern-recv [--files-mib N]]
"""

import argparse
import contextlib
import itertools
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import labnet  # noqa: E402
import netlab_files  # noqa: E402
import probe  # noqa: E402
from labnet import Host, Lab, LabError, Nat, SERVER_IPS  # noqa: E402

SRV = SERVER_IPS[0]
TURN_USER, TURN_PASS, REALM = "netlab", "lab-secret", "netlab.test"
TURN_USER2, TURN_PASS2 = "netlab2", "other-secret"  # a second long-term user
STUN_URL = "stun:%s:%d" % (SRV, labnet.TURN_PORT)
TURN_URLS = [
    "turn:%s:%s@%s:%d?transport=udp" % (TURN_USER, TURN_PASS, SRV, labnet.TURN_PORT),
    "turn:%s:%s@%s:%d?transport=tcp" % (TURN_USER, TURN_PASS, SRV, labnet.TURN_PORT),
    "turns:%s:%s@%s:%d?transport=tcp" % (TURN_USER, TURN_PASS, SRV, labnet.TURNS_PORT),
]
ALL_SERVERS = [STUN_URL] + TURN_URLS

# The matrix's behaviours, in its order; each exists twice (sides a and b), so that a
# behaviour can be paired with itself through two different boxes.
BEHAVIOURS = ["public", "eif", "adf", "apdf", "sym", "cgn", "udpblock"]
ABOUT = {
    "public": "no NAT: a host on the internet",
    "eif": "EIM, endpoint-independent filtering (full cone)",
    "adf": "EIM, address-dependent filtering (restricted cone)",
    "apdf": "EIM, address and port dependent filtering (port-restricted cone, a home router)",
    "sym": "endpoint-dependent mapping (symmetric), APDF",
    "cgn": "double NAT: a home EIM/APDF NAT behind a carrier NAT in 100.64.0.0/10",
    "udpblock": "all UDP blocked, TCP only to the TURN server's TCP and TLS ports",
}


# ---- reporting ----

class Report:
    def __init__(self):
        self.n = 0
        self.passed = self.failed = self.todo = self.skipped = 0

    def out(self, text=""):
        print(text, flush=True)

    def check(self, ok, name, detail="", todo=None, skip=None):
        self.n += 1
        if skip:
            self.skipped += 1
            self.out("ok %d - %s # SKIP %s" % (self.n, name, skip))
            return True
        line = "%s %d - %s%s" % ("ok" if ok else "not ok", self.n, name,
                                 (" (%s)" % detail) if detail else "")
        if todo:
            line += " # TODO %s" % todo
            self.todo += 1
        elif ok:
            self.passed += 1
        else:
            self.failed += 1
        self.out(line)
        return ok


# ---- the lab ----

def build(lab):
    lab.build_internet()
    for side in "ab":
        lab.add_host(Host("public-" + side))
        nats = [Nat("eif-" + side, "eim", "eif"), Nat("adf-" + side, "eim", "adf"),
                Nat("apdf-" + side, "eim", "apdf"), Nat("sym-" + side, "edm", "apdf")]
        # RFC 6888: a carrier NAT is EIM and hairpins (REQ-1, REQ-9).
        carrier = Nat("carrier-" + side, "eim", "adf", hairpin=True, carrier=True)
        lab.add_nat(carrier)
        nats.append(Nat("cgn-" + side, "eim", "apdf", upstream=carrier))
        nats.append(Nat("udpblock-" + side, "none", "apdf", udp_blocked=True))
        for nat in nats:
            lab.add_nat(nat)
            lab.add_host(Host(nat.name, nat))
    # Specials: a second host on apdf-a's LAN; two isolated LAN segments behind one NAT, with
    # and without hairpinning; a second home behind carrier-a; a host with two uplinks.
    lab.add_host(Host("apdf-a2", lab.nats["apdf-a"]))
    for name, hairpin in (("hairpin", True), ("nohairpin", False)):
        nat = lab.add_nat(Nat(name, "eim", "apdf", hairpin=hairpin, lans=2))
        lab.add_host(Host(name + "-0", nat, lan=0))
        lab.add_host(Host(name + "-1", nat, lan=1))
    home = lab.add_nat(Nat("cgn-a2", "eim", "apdf", upstream=lab.nats["carrier-a"]))
    lab.add_host(Host("cgn-a2", home))
    multi = lab.add_host(Host("multi"))
    lab.add_public_interface(multi, "br0")


RANK = {"eif": 0, "adf": 1, "apdf": 2}


def expected_nat(host):
    """What the probes must see from a host: (mapping, public ip, filtering) or None (no UDP)."""
    if host.public:
        return "eim", host.ip, "eif"
    chain, nat = [], host.nat
    while nat:
        chain.append(nat)
        nat = nat.upstream
    if any(n.udp_blocked for n in chain):
        return None
    mapping = "eim" if all(n.mapping == "eim" for n in chain) else "edm"
    filtering = max((n.filtering for n in chain), key=RANK.get)
    return mapping, host.nat.public_ip, filtering


def verify_lab(lab, rep, reflector):
    """Every NAT's mapping, filtering and hairpinning as configured, or the run fails."""
    ok = True
    admits = {"eif": (True, True), "adf": (True, False), "apdf": (False, False)}
    for host in lab.hosts.values():
        want = expected_nat(host)
        ns = "h-" + host.name
        for _, addr, _ in host.extra:
            # A multihomed host: what leaves from each address leaves by its own uplink.
            maps = probe.measure_mapping(lab, reflector, ns, SERVER_IPS, addr)
            ok &= rep.check(all(m and m[0] == addr for m in maps),
                            "lab: %s's second uplink sends from %s" % (host.name, addr),
                            "seen %s" % maps)
        maps = probe.measure_mapping(lab, reflector, ns, SERVER_IPS, host.ip)
        if want is None:
            ok &= rep.check(maps == [None] * 3, "lab: %s sends no UDP out" % host.name,
                            "answers: %s" % maps)
            continue
        mapping, pub, filtering = want
        got_ips = {m[0] for m in maps if m}
        ports = [m[1] for m in maps if m]
        if None in maps or got_ips != {pub}:
            ok &= rep.check(False, "lab: %s maps to %s" % (host.name, pub), "seen %s" % maps)
            continue
        if mapping == "eim":
            good = len(set(ports)) == 1
            what = "one mapping %s:%d for 3 destinations" % (pub, ports[0])
        else:
            good = len(set(ports)) == 3
            what = "3 mappings for 3 destinations: %s" % ports
        ok &= rep.check(good, "lab: %s mapping %s" % (host.name, mapping.upper()),
                        what if good else "seen %s" % maps)
        m, got = probe.measure_filtering(lab, reflector, ns, SERVER_IPS)
        port_in, addr_in = admits[filtering]
        good = got == {"same": True, "port": port_in, "addr": addr_in}
        ok &= rep.check(good, "lab: %s filtering %s" % (host.name, filtering.upper()),
                        "in: reply %s, other port %s, other address %s" % (
                            got.get("same"), got.get("port"), got.get("addr")))
    for x, y, want in (("hairpin-0", "hairpin-1", True), ("nohairpin-0", "nohairpin-1", False),
                       ("cgn-a", "cgn-a2", True)):
        arrived, src, mx = probe.measure_hairpin(lab, reflector, "h-" + x, "h-" + y, SERVER_IPS)
        if want:
            good = arrived and src == mx
            detail = "%s saw %s, %s's mapping %s" % (y, src, x, mx)
        else:
            good = arrived is False
            detail = "nothing arrived" if good else "arrived from %s" % (src,)
        ok &= rep.check(good, "lab: %s -> %s's public mapping %s" % (
            x, y, "hairpins with the sender's mapping" if want else "is dropped"), detail)
    # Private addresses are private: the internet does not route 10.0.0.0/8 or 100.64.0.0/10.
    target = lab.hosts["apdf-a"]
    listener = probe.udp_socket(lab, "h-apdf-a", target.ip)
    sender = probe.udp_socket(lab, "h-public-a")
    sender.sendto(b"private?", listener.getsockname())
    leaked = probe.drain(listener, 0.2)
    listener.close()
    sender.close()
    ok &= rep.check(not leaked, "lab: a private address is unreachable from the internet")
    return ok


def wait_until(fn, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(step)
    return False


def start_servers(lab, args, rep, workdir):
    """coturn and tern-signal on the servers' namespace. @return False if either fails."""
    cert, key = os.path.join(workdir, "turn-cert.pem"), os.path.join(workdir, "turn-key.pem")
    lab.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
             "/CN=turn.netlab.test", "-addext",
             "subjectAltName=IP:%s,IP:%s" % SERVER_IPS, "-keyout", key, "-out", cert])
    conf = os.path.join(workdir, "turnserver.conf")
    with open(conf, "w") as f:
        f.write("\n".join([
            "# Generated by tests/netlab/netlab.py for one run; never /etc/turnserver.conf.",
            "listening-ip=%s" % SERVER_IPS[0],
            "listening-ip=%s" % SERVER_IPS[1],  # two addresses: RFC 5780 alternate address
            "relay-ip=%s" % SRV,
            "listening-port=%d" % labnet.TURN_PORT,
            "tls-listening-port=%d" % labnet.TURNS_PORT,
            "min-port=49152", "max-port=65535",
            "realm=%s" % REALM, "lt-cred-mech", "user=%s:%s" % (TURN_USER, TURN_PASS),
            "user=%s:%s" % (TURN_USER2, TURN_PASS2),
            "fingerprint", "no-cli", "no-multicast-peers",
            "cert=%s" % cert, "pkey=%s" % key,
            "userdb=%s" % os.path.join(workdir, "turndb"),
            "pidfile=%s" % os.path.join(workdir, "turnserver.pid"),
            "log-file=stdout", "simple-log", "verbose", ""]))
    lab.spawn("srv", "coturn", ["turnserver", "-c", conf])
    lab.spawn("srv", "tern-signal", [args.signal, "--listen", "%s:%d" % (SRV, labnet.SIGNAL_PORT),
                                     "--no-stun"])

    def stun_up():
        try:
            t = probe.StunTransport(lab, "h-public-a", (SRV, labnet.TURN_PORT), "udp")
            try:
                probe.stun_binding(t)
                return True
            finally:
                t.close()
        except (OSError, LabError):
            return False

    ok = rep.check(wait_until(stun_up, 10), "servers: coturn answers STUN on %s:%d" % (
        SRV, labnet.TURN_PORT))
    ok &= rep.check(wait_until(lambda: probe.tcp_reachable(
        lab, "h-public-a", (SRV, labnet.SIGNAL_PORT)), 10),
        "servers: tern-signal listens on %s:%d" % (SRV, labnet.SIGNAL_PORT))
    return ok


def verify_turn(lab, rep):
    """coturn works as the tests need it, from behind the lab's NATs."""
    ok = True
    for host, server, kind in (("apdf-a", (SRV, labnet.TURN_PORT), "udp"),
                               ("apdf-a", (SERVER_IPS[1], labnet.TURN_PORT), "udp")):
        try:
            t = probe.StunTransport(lab, "h-" + host, server, kind)
            mapped = probe.stun_binding(t)
            t.close()
            good = mapped[0] == lab.nats[host].public_ip
            detail = "mapped %s:%d" % mapped
        except (OSError, LabError) as e:
            good, detail = False, str(e)
        ok &= rep.check(good, "turn: Binding over %s to %s:%d from %s" % (
            kind, server[0], server[1], host), detail)
    peer = probe.udp_socket(lab, "h-public-a")
    peer_addr = (lab.hosts["public-a"].ip, peer.getsockname()[1])
    for host, port, kind, user, password in (
            ("apdf-a", labnet.TURN_PORT, "udp", TURN_USER, TURN_PASS),
            ("sym-a", labnet.TURN_PORT, "udp", TURN_USER2, TURN_PASS2),
            ("udpblock-a", labnet.TURN_PORT, "tcp", TURN_USER, TURN_PASS),
            ("udpblock-a", labnet.TURNS_PORT, "tls", TURN_USER2, TURN_PASS2),
            ("apdf-a", labnet.TURN_PORT, "udp", TURN_USER, "wrong")):
        try:
            t = probe.StunTransport(lab, "h-" + host, (SRV, port), kind)
            try:
                relayed = probe.turn_relay_check(t, user, password, peer, peer_addr)
            finally:
                t.close()
            good, detail = True, "relayed %s:%d" % relayed
        except (OSError, LabError) as e:
            good, detail = False, str(e)
        if password == "wrong":
            ok &= rep.check(not good and "401" in detail,
                            "turn: Allocate with a wrong password is refused", detail)
            continue
        ok &= rep.check(good, "turn: Allocate over %s from %s as %s relays both ways" % (
            kind, host, user), detail)
    peer.close()
    # The UDP-blocking firewall lets TCP through to the TURN ports only.
    with lab.inside("srv"):
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind((SRV, probe.REFLECTOR_PORTS[0]))
        other.listen(4)
    for host in ("udpblock-a", "udpblock-b"):
        good = probe.tcp_reachable(lab, "h-" + host, (SRV, labnet.TURNS_PORT)) and \
            not probe.tcp_reachable(lab, "h-" + host, (SRV, probe.REFLECTOR_PORTS[0]), 0.3)
        ok &= rep.check(good, "lab: %s reaches TCP %d, not TCP %d" % (
            host, labnet.TURNS_PORT, probe.REFLECTOR_PORTS[0]))
    other.close()
    return ok


def natdiscovery(lab, rep, hosts):
    """A second opinion: coturn's RFC 5780 client classifies the NATs the same way."""
    want = {"eim": "Endpoint Independent Mapping", "edm": "Address and Port Dependent Mapping",
            "eif": "Endpoint Independent Filtering", "adf": "Address Dependent Filtering",
            "apdf": "Address and Port Dependent Filtering"}
    for name in hosts:
        host = lab.hosts[name]
        mapping, _, filtering = expected_nat(host)
        with lab.inside("h-" + name):
            p = subprocess.run(["turnutils_natdiscovery", "-m", "-f", SRV],
                               capture_output=True, text=True, timeout=60)
        text = p.stdout + p.stderr
        with open(os.path.join(lab.logdir, "natdiscovery-%s.log" % name), "w") as f:
            f.write(text)
        good = want[mapping] in text and want[filtering] in text
        found = re.findall(r"NAT with ([A-Za-z ]+ (?:Mapping|Filtering))", text)
        rep.check(good, "natdiscovery: %s is %s, %s" % (name, want[mapping], want[filtering]),
                  "it says: %s" % ("; ".join(found) or "nothing (see its log)"))


# ---- tern peers ----

class Peer:
    """A netlab_peer process in a host's namespace, its stdout read line by line."""

    def __init__(self, lab, host, name, argv):
        self.lab = lab
        self.name = name
        self.proc = lab.spawn("h-" + host, name, argv, stdin=subprocess.PIPE)
        self.lines = []
        self.pending = ""
        self.log = open(os.path.join(lab.logdir, name + ".out"), "a")
        self.t0 = time.monotonic()

    def _read(self, timeout):
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not r:
            return False
        chunk = os.read(fd, 65536).decode(errors="replace")
        if not chunk:
            return None
        self.pending += chunk
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.lines.append(line)
            self.log.write("%8.3f %s\n" % (time.monotonic() - self.t0, line))
            self.log.flush()
        return True

    def expect(self, pattern, timeout, start=0):
        """Wait for a line matching pattern (from line index start). @return the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for i in range(seen, len(self.lines)):
                m = rx.search(self.lines[i])
                if m:
                    return m
            seen = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or self._read(left) is None:
                return None

    def pump(self, seconds=0.0):
        deadline = time.monotonic() + seconds
        while self._read(max(0.0, deadline - time.monotonic())):
            pass

    def send(self, line):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def candidates(self):
        return [ln.split()[1:] for ln in self.lines if ln.startswith("candidate ")
                and ln != "candidate end"]

    def finish(self, quit=True):
        """Quit (or SIGTERM) and wait. @return the exit status."""
        if quit:
            self.send("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.pump(0)
        code = self.lab.stop(self.proc)
        self.log.close()
        return code


def server_argv(args, servers):
    argv = []
    for url in servers:
        argv += ["--ice-server", url]
    if any(u.startswith("turns:") for u in servers):
        # The lab's coturn has a self-signed certificate naming its addresses.
        argv += ["--turn-ca", os.path.join(args.logs, "turn-cert.pem")]
    return argv


def peer_argv(args, role, room, servers, extra=()):
    return [args.peer, "--signal", "ws://%s:%d/ws/%s" % (SRV, labnet.SIGNAL_PORT, room), role] \
        + server_argv(args, servers) + list(extra)


PAIR_LINE = r"^pair (\S+) (\S+) (\S+) (\S+) (\d+)$"


def checking_to_direct(lines):
    """ms from "ice checking" to the first ICE state line followed by a direct pair, or None."""
    start = None
    for i, line in enumerate(lines):
        w = line.split()
        if w[:2] == ["ice", "checking"] and start is None:
            start = float(w[2])
        elif w[:1] == ["ice"] and w[1] in ("connected", "completed") and start is not None \
                and i + 1 < len(lines):
            p = lines[i + 1].split()
            if p[:1] == ["pair"] and "relay" not in p[1:3]:
                return float(w[2]) - start
    return None


def path_of(pair):
    """('host'|'direct'|'relay', "ltype/rtype") of a 'pair' line's match."""
    lt, rt = pair.group(1), pair.group(2)
    if "relay" in (lt, rt):
        kind = "relay"
    elif lt == rt == "host":
        kind = "host"
    else:
        kind = "direct"
    return kind, "%s/%s" % (lt, rt)


class Case:
    """One connection between two hosts, and what RFC 4787 reasoning says it must do."""

    def __init__(self, name, a, b, expect, why, servers=None, needs=(), send=(20, 1200),
                 impair=None, open_timeout=15.0, group="special", rtt_ms=None, extra=()):
        self.name, self.a, self.b = name, a, b
        self.extra = list(extra)  # more netlab_peer options, for both peers
        self.rtt_ms = rtt_ms  # the round trip the impairment makes, to count checks in
        self.direct_ms = None  # from ICE checking to the first direct pair in use
        self.expect, self.why = expect, why
        self.servers = ALL_SERVERS if servers is None else servers
        self.needs = needs
        self.send = send
        self.impair = impair  # (hosts whose wires are impaired, netlab_impair options)
        self.open_timeout = open_timeout
        self.group = group
        self.result = None  # (cell text, ok)


def run_case(lab, args, case, seq):
    """Connect a (offering) to b (answering), check the channel and the path; both peers
    must then exit cleanly. @return (ok, detail, matrix cell)."""
    room = "c%d" % seq
    impairers, peers = [], []
    try:
        if case.impair:
            hosts, opts = case.impair
            for h in hosts:
                wire = lab.hosts[h].wire
                impairers.append((wire, lab.impair(wire, args.impair, opts + ["--seed", str(seq + 1)])))
        ok, detail, cell = drive_case(lab, args, case, room, peers)
    finally:
        # The offerer quits (it reads stdin); the answerer ends on SIGTERM.
        codes = [(p.name, p.finish(quit=p is peers[0])) for p in reversed(peers)]
        for wire, proc in impairers:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
            stats = proc.stdout.read()
            lab.unimpair(wire, proc)
            with open(os.path.join(lab.logdir, room + "-impair.log"), "a") as f:
                f.write("%s: %s" % (wire, stats))
    bad = ["%s exited with %s" % (n, c) for n, c in codes if c != 0]
    if bad:
        ok, detail = False, "%s; %s" % (detail, ", ".join(bad))
    return ok, detail, cell


def drive_case(lab, args, case, room, peers):
    ans = Peer(lab, case.b, "%s-%s-answer" % (room, case.b),
               peer_argv(args, "--answer", room, case.servers, case.extra))
    peers.append(ans)
    if not ans.expect(r"^joined ", 10):
        return False, "the answering peer did not join the room", "no-join"
    off = Peer(lab, case.a, "%s-%s-offer" % (room, case.a),
               peer_argv(args, "--offer", room, case.servers, case.extra))
    peers.insert(0, off)
    m = off.expect(r"^(open netlab|ice failed|pc failed) ([\d.]+)", case.open_timeout)
    if case.expect == "failed":
        ok = bool(m) and m.group(1) != "open netlab"
        detail = ("reported %s after %s ms" % (m.group(1), m.group(2))) if m else \
            "no verdict within %.0f s" % case.open_timeout
        return ok, detail, ("failed %.0fs" % (float(m.group(2)) / 1000)) if ok else "?"
    if not m or m.group(1) != "open netlab":
        return False, ("%s at %s ms" % (m.group(1), m.group(2))) if m else \
            "no channel within %.0f s" % case.open_timeout, "failed"
    open_ms = float(m.group(2))
    # ICE may use a valid pair before nomination ends (RFC 8445 §8.1.1) and switch to the
    # nominated one: the path it chose is the pair once it says completed.
    first = off.expect(PAIR_LINE, 0)
    off.expect(r"^ice completed", 10 if case.impair else 3)
    mark = len(off.lines)
    off.send("pair")
    pair = off.expect(PAIR_LINE, 5, mark)
    if not pair:
        return False, "no selected pair", "no-pair"
    kind, types = path_of(pair)
    case.direct_ms = checking_to_direct(off.lines)
    switched = ""
    if first and path_of(first)[1] != types:
        switched = "; %s used first, until nomination" % path_of(first)[1]
    cell = "%s%s %.0f" % (types, "*" if switched else "", open_ms)
    n, size = case.send
    t_send = time.monotonic()
    off.send("send %d %d" % (n, size))
    echoed = off.expect(r"^(echoed|bad|error) ", 90)
    echo_ms = (time.monotonic() - t_send) * 1000
    if not echoed:
        off.send("progress")
        prog = off.expect(r"^progress (\d+) (\d+) (\d+)", 2)
        return False, "%s: the echo did not complete in 90 s (%s)" % (
            cell, "%s sent, %s echoed, %s bytes buffered" % prog.groups() if prog
            else "no progress report"), cell
    if echoed.group(1) != "echoed":
        return False, "%s: %s" % (cell, echoed.string), cell
    ok = kind == case.expect
    detail = "%s path %s, %s -> %s, open %.0f ms, %d x %d bytes echoed in %.0f ms%s" % (
        kind, types, pair.group(3), pair.group(4), open_ms, n, size, echo_ms, switched)
    if not ok:
        detail = "expected %s; %s" % (case.expect, detail)
    return ok, detail, cell


# ---- cases ----

def expected_path(x, y):
    """(path, why) for behaviours x offering and y answering, from RFC 4787 reasoning, when
    both have STUN and TURN (UDP, TCP and TLS) configured."""
    if x == y == "public":
        return "host", "both on the internet: host candidates reach each other", ()
    if "udpblock" in (x, y):
        return "relay", ("no UDP leaves a UDP-blocked network: its only candidate is a relay "
                         "reached over TURN/TCP or TLS"), ("relay",)
    if "public" in (x, y):
        return "direct", ("the NATed side's check reaches the public host's host candidate; "
                          "every answer is a reply its NAT lets in (prflx/srflx)"), ()
    if x == y == "sym":
        return "relay", ("both map per destination: neither learns the port the other uses "
                         "for it, and each filter admits only what it sent to"), ("relay",)
    if "sym" in (x, y):
        other = y if x == "sym" else x
        if other in ("eif", "adf"):
            return "direct", ("the symmetric side's check comes from a new port; %s admits it "
                              "(%s), and the answer is a reply the symmetric NAT lets in; "
                              "the other side learns it as prflx" % (
                                  other.upper(), "any source" if other == "eif"
                                  else "its address was sent to already")), ("srflx",)
        return "relay", ("%s admits only the exact address and port it sent to, and the "
                         "symmetric side's port for it cannot be known" % (
                             "APDF" if other == "apdf" else "the home NAT (APDF) behind the CGN")),\
            ("relay",)
    return "direct", ("both map independently of the destination (EIM): each side's check to "
                      "the other's srflx opens its own filter, so the crossing checks meet"),\
        ("srflx",)


def make_cases(full):
    cases = []
    pairs = itertools.product(BEHAVIOURS, BEHAVIOURS) if full else \
        itertools.combinations_with_replacement(BEHAVIOURS, 2)
    for x, y in pairs:
        path, why, needs = expected_path(x, y)
        cases.append(Case("matrix %s-a x %s-b" % (x, y), x + "-a", y + "-b", path, why,
                          needs=needs, group="matrix"))
    cases += [
        Case("same LAN: apdf-a x apdf-a2", "apdf-a", "apdf-a2", "host",
             "one LAN segment: host candidates reach each other, no NAT on the path"),
        Case("same NAT, isolated segments, hairpinning", "hairpin-0", "hairpin-1", "direct",
             "the segments do not route to each other; the NAT turns packets to its public "
             "address back with the sender's mapping (RFC 4787 REQ-9): srflx/prflx",
             needs=("srflx",)),
        Case("same NAT, isolated segments, no hairpinning", "nohairpin-0", "nohairpin-1",
             "relay", "the segments do not route to each other and the NAT drops packets to "
             "its own public address: only TURN remains", needs=("relay",)),
        Case("two homes behind one carrier NAT", "cgn-a", "cgn-a2", "direct",
             "the carrier NAT hairpins (RFC 6888 REQ-9) and both homes are EIM: srflx",
             needs=("srflx",)),
        Case("TURN over TLS only: udpblock-a x udpblock-b with one turns: server", "udpblock-a",
             "udpblock-b", "relay", "only TLS to port 5349 gets out of either network: relays "
             "allocated over TLS on both sides", servers=[TURN_URLS[2]], needs=("relay",)),
        Case("relay-only policy: eif-a x eif-b", "eif-a", "eif-b", "relay",
             "iceTransportPolicy relay: no host or srflx candidate may be used, though a direct "
             "path exists", needs=("relay",), extra=["--relay-only"]),
        Case("no possible path: sym-a x sym-b without STUN or TURN", "sym-a", "sym-b",
             "failed", "host candidates are private and unroutable, and no server is "
             "configured: ICE must say failed", servers=[], open_timeout=60.0),
        Case("no possible path: apdf-a x udpblock-b without TURN", "apdf-a", "udpblock-b",
             "failed", "the UDP-blocked side can reach nothing without TURN: ICE must say "
             "failed", servers=[STUN_URL], open_timeout=60.0),
    ]
    impair_all = ["--loss", "10", "--delay", "100", "--jitter", "10", "--reorder", "5",
                  "--gap", "30"]
    # 256 KiB each way across 10% loss at 200 ms round trips takes ~15 s (Mathis: about
    # 1.2 * MSS / (RTT * sqrt(p)), 25 KB/s); 1 MiB for the single impairments.
    bulk = (64, 4096)
    cases += [
        Case("first checks dropped by filtering NATs: apdf-a x apdf-b, 100 ms delay on one link",
             "apdf-a", "apdf-b", "direct", "both EIM: direct; each side's first check is dropped "
             "by the other's filter, which the crossing check opens (RFC 8445 triggered checks: "
             "one round trip, not a retransmission timeout)", needs=("srflx",),
             impair=(["apdf-a"], ["--delay", "100"]), rtt_ms=200),
        Case("impaired (10% loss both ways, 100 ms delay, reordering): public-a x public-b",
             "public-a", "public-b", "host", "both public: host; loss and delay must not "
             "change the choice, and a reliable channel loses nothing", send=bulk,
             impair=(["public-a"], impair_all), open_timeout=30.0),
        Case("impaired (10% loss both ways, 100 ms delay, reordering): apdf-a x apdf-b",
             "apdf-a", "apdf-b", "direct", "both EIM: direct through the NATs (srflx), never "
             "the relay, however lossy", send=bulk, needs=("srflx",),
             impair=(["apdf-a"], impair_all), open_timeout=30.0),
    ]
    if full:
        for label, opts in (("10% loss", ["--loss", "10"]), ("100 ms delay", ["--delay", "100"]),
                            ("20% reordering", ["--reorder", "20", "--gap", "15"])):
            cases.append(Case("impaired (%s): public-a x eif-b" % label, "public-a", "eif-b",
                              "direct", "a NATed peer with a public one: direct",
                              send=(256, 4096),
                              impair=(["eif-b"], opts), open_timeout=30.0))
        cases.append(Case("impaired on both links (10% loss both ways, 100 ms delay, "
                          "reordering): apdf-a x apdf-b", "apdf-a", "apdf-b", "direct",
                          "both EIM: direct through the NATs, never the relay, even when every "
                          "first check is lost on both sides", send=(32, 4096), needs=("srflx",),
                          impair=(["apdf-a", "apdf-b"], impair_all), open_timeout=30.0))
        cases.append(Case("impaired (10% loss, 100 ms delay): sym-a x udpblock-b", "sym-a",
                          "udpblock-b", "relay", "the UDP-blocked side needs TURN", send=bulk,
                          needs=("relay",), impair=(["sym-a"], impair_all), open_timeout=30.0))
    return cases


def run_cut(lab, args, rep, seq, mend_after, restart=False):
    """A link cut in the middle of a session.
    mend_after: seconds until the link returns (None: never). restart: an ICE restart over the
    other path of a multihomed host once the first is cut."""
    a, b = ("multi", "public-b") if restart else ("public-a", "public-b")
    room = "cut%d" % seq
    opts = ["--disconnected-ms", "2000", "--failed-ms", "8000"]
    ans = Peer(lab, b, "%s-%s-answer" % (room, b), peer_argv(args, "--answer", room, [], opts))
    off = None
    wire = None
    try:
        if not ans.expect(r"^joined ", 10):
            return rep.check(False, "cut: the answering peer joined")
        off = Peer(lab, a, "%s-%s-offer" % (room, a), peer_argv(args, "--offer", room, [], opts))
        if not off.expect(r"^open netlab", 15):
            return rep.check(False, "cut: %s x %s opened" % (a, b))
        off.expect(r"^ice completed", 3)
        mark = len(off.lines)
        off.send("pair")
        pair = off.expect(r"^pair (\S+) (\S+) (\S+):\d+ (\S+) ", 5, mark)
        local_ip = pair.group(3) if pair else ""
        host = lab.hosts[a]
        wire = host.wire
        for _, addr, w in host.extra:
            if addr == local_ip:
                wire = w
        mark = len(off.lines)
        lab.cut(wire)
        t_cut = time.monotonic()
        disc = off.expect(r"^ice disconnected", 6, mark)
        if restart:
            rep.check(bool(disc), "restart: %s's path %s cut: disconnected" % (a, local_ip),
                      "after %.1f s" % (time.monotonic() - t_cut) if disc else "")
            mark = len(off.lines)
            off.send("restart")
            back = off.expect(r"^ice (connected|completed)", 15, mark)
            off.send("pair")
            pair2 = off.expect(r"^pair (\S+) (\S+) (\S+):\d+ (\S+) ", 5, mark)
            new_ip = pair2.group(3) if pair2 else None
            off.send("send 20 1200")
            echoed = off.expect(r"^(echoed|bad|error) ", 20, mark)
            good = bool(back) and new_ip not in (None, local_ip) and bool(echoed) and \
                echoed.group(1) == "echoed"
            return rep.check(good, "restart: an ICE restart carries on over the other uplink",
                             "new pair from %s, echo %s" % (
                                 new_ip, echoed.group(1) if echoed else "none"))
        rep.check(bool(disc), "cut: %s's link cut: ice disconnected" % a,
                  "after %.1f s" % (time.monotonic() - t_cut) if disc else "no state change")
        if mend_after is None:
            failed = off.expect(r"^ice failed", 20, mark)
            return rep.check(bool(failed), "cut: the link never returns: ice failed",
                             "after %.1f s" % (time.monotonic() - t_cut) if failed else
                             "still %s" % [ln for ln in off.lines[mark:] if ln.startswith("ice")])
        time.sleep(max(0.0, mend_after - (time.monotonic() - t_cut)))
        lab.mend(wire)
        wire = None
        back = off.expect(r"^ice (connected|completed)", 10, mark)
        off.send("send 20 1200")
        echoed = off.expect(r"^(echoed|bad|error) ", 20, mark)
        return rep.check(bool(back) and bool(echoed) and echoed.group(1) == "echoed",
                         "cut: the link returns after %.0f s: connected, messages flow" %
                         mend_after, "%s, echo %s" % (
                             back.group(0) if back else "not reconnected",
                             echoed.group(1) if echoed else "none"))
    finally:
        if wire:
            lab.mend(wire)
        if off:
            off.finish()
        ans.finish(quit=False)


def gather_probe(lab, args, host, servers):
    """Which candidate types the stack gathers from a host. @return the set of types."""
    argv = [args.peer, "--gather", "--gather-ms", "4000"] + server_argv(args, servers)
    p = Peer(lab, host, "gather-" + host, argv)
    p.expect(r"^(gathered|gather-timeout|error) ", 8)
    p.finish(quit=False)
    return p


def capabilities(lab, args, rep):
    caps = set()
    p = gather_probe(lab, args, "apdf-a", ALL_SERVERS)
    cands = p.candidates()
    types = {c[0] for c in cands}
    rep.check("host" in types, "gather: host candidates on apdf-a",
              ", ".join(" ".join(c) for c in cands))
    pub = lab.nats["apdf-a"].public_ip
    srflx = [c for c in cands if c[0] == "srflx"]
    rep.check(bool(srflx) and all(c[2].startswith(pub + ":") for c in srflx),
              "gather: a srflx candidate with apdf-a's public address %s" % pub,
              ", ".join(c[2] for c in srflx), todo=None if srflx else
              "the stack gathers no server-reflexive candidates yet")
    relay = [c for c in cands if c[0] == "relay"]
    rep.check(bool(relay) and all(c[2].startswith(SRV + ":") for c in relay),
              "gather: a relay candidate on coturn %s from apdf-a" % SRV,
              ", ".join(c[2] for c in relay), todo=None if relay else
              "the stack gathers no relay candidates yet")
    if srflx:
        caps.add("srflx")
    if relay:
        caps.add("relay")
    p = gather_probe(lab, args, "udpblock-a", ALL_SERVERS)
    relay = [c for c in p.candidates() if c[0] == "relay"]
    m = p.expect(r"^(gathered|gather-timeout) ([\d.]+)", 0)
    rep.check(bool(relay), "gather: a relay candidate over TURN/TCP or TLS from udpblock-a",
              "%s; %s" % (", ".join(c[2] for c in relay) or "none", m.group(0) if m else ""),
              todo=None if relay else "the stack gathers no relay candidates over TCP/TLS yet")
    if not relay and "relay" in caps:
        caps.discard("relay")  # a relay case may involve the UDP-blocked side
    return caps


def print_matrix(rep, cases, full):
    cells = {(c.a[:-2], c.b[:-2]): c for c in cases if c.group == "matrix"}
    width = 17
    rep.out()
    rep.out("# connectivity matrix: offerer (rows, side a) x answerer (columns, side b);")
    rep.out("# each cell: selected pair local/remote type and ms from offer to open;")
    rep.out("# '*': ICE used another kind of pair first, until nomination ended; '!' marks an")
    rep.out("# unexpected path; 'skip' needs a candidate type the stack does not gather")
    rep.out("# %-9s" % "" + "".join("%-*s" % (width, b) for b in BEHAVIOURS))
    for a in BEHAVIOURS:
        row = "# %-9s" % a
        for b in BEHAVIOURS:
            c = cells.get((a, b))
            row += "%-*s" % (width, (c.result[0] + ("" if c.result[1] else " !"))
                             if c and c.result else "")
        rep.out(row)
    rep.out("# expected (RFC 4787 reasoning, with STUN and TURN on both sides):")
    for a in BEHAVIOURS:
        rep.out("# %-9s" % a + "".join("%-*s" % (width, cells[(a, b)].expect)
                                       if (a, b) in cells else " " * width for b in BEHAVIOURS))
    rep.out("# behaviours: " + "; ".join("%s = %s" % (k, v) for k, v in ABOUT.items()))
    direct = [c for c in cases if c.result and c.result[1] and c.expect in ("host", "direct")
              and not c.impair and c.open_ms is not None]
    relay = [c for c in cases if c.result and c.result[1] and c.expect == "relay"
             and not c.impair and c.open_ms is not None]
    for c in cases:
        if c.rtt_ms and c.direct_ms is not None:
            rep.out("# aim: a dropped check costs one round trip: %s: ICE checking to the direct "
                    "pair in %.0f ms, %.1f round trips of %d ms (an upper bound: it includes "
                    "gathering the srflx candidate across the delay and trickling it)" % (
                        c.name, c.direct_ms, c.direct_ms / c.rtt_ms, c.rtt_ms))
    blocked = [c for c in relay if "udpblock" in c.a + c.b]
    for label, group, aim in (("direct", direct, 200), ("relayed", relay, 500),
                              ("UDP-blocked (TURN over TCP/TLS)", blocked, 1000)):
        if group:
            worst = max(group, key=lambda c: c.open_ms)
            rep.out("# aim: every %s pair open in under %d ms: slowest %.0f ms (%s), %d of %d "
                    "under" % (label, aim, worst.open_ms, worst.name,
                               sum(c.open_ms < aim for c in group), len(group)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", required=True, help="netlab_peer")
    ap.add_argument("--impair", required=True, help="netlab_impair")
    ap.add_argument("--signal", required=True, help="tern-signal")
    ap.add_argument("--logs", default=os.path.join(os.getcwd(), "netlab-logs"))
    ap.add_argument("--full", action="store_true",
                    help="the whole matrix in both directions, every impairment, natdiscovery on more NATs, "
                    "and cases whose capability is missing run (as TODO) instead of skipped")
    ap.add_argument("--only", help="run only the cases whose name matches this regex")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--send", help="tern-send, for the file-transfer cases (netlab_files.py)")
    ap.add_argument("--recv", help="tern-recv, for the file-transfer cases")
    ap.add_argument("--files-mib", type=int, default=1024,
                    help="MiB of the file-transfer cases' large file (default 1024)")
    ap.add_argument("--recv-max-rss-mib", type=int, default=netlab_files.RECV_MAX_RSS_MIB,
                    help="bound on tern-recv's peak resident memory in the file-transfer cases "
                         "(default %d)" % netlab_files.RECV_MAX_RSS_MIB)
    args = ap.parse_args()
    if args.full is False and os.environ.get("TERN_NETLAB_FULL"):
        args.full = True
    cases = make_cases(args.full)
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]
    if args.list:
        for c in cases:
            print("%-60s expect %-6s %s" % (c.name, c.expect, c.why))
        return 0
    rep = Report()
    if os.geteuid() != 0:
        rep.out("not ok 1 - the NAT lab needs root (network namespaces, nftables)")
        return 1
    missing = [t for t in ("ip", "nft", "turnserver", "turnutils_natdiscovery", "openssl")
               if not shutil.which(t)]
    missing += [p for p in (args.peer, args.impair, args.signal) if not os.access(p, os.X_OK)]
    missing += [p for p in (args.send, args.recv) if p and not os.access(p, os.X_OK)]
    if missing:
        rep.out("not ok 1 - missing: %s (scripts/setup.sh test installs the tools)" %
                ", ".join(missing))
        return 1
    # The peers' ICE decisions go to their logs (LOGDIR/cN-HOST-offer.log), for diagnosis.
    os.environ.setdefault("TERN_LOG", "ice=debug")
    shutil.rmtree(args.logs, ignore_errors=True)
    os.makedirs(args.logs)
    labnet.remove_stale()

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    lab = Lab(args.logs)
    reaper = labnet.start_reaper(lab.prefix)
    t_start = time.monotonic()
    try:
        return run(lab, args, rep, cases, t_start)
    except LabError as e:
        rep.check(False, "the lab could not be built or run", str(e))
        return 1
    except SystemExit:
        rep.out("# stopped by a signal: removing the lab")
        raise
    finally:
        lab.close()
        labnet.stop_reaper(reaper)
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split() if n.startswith(lab.prefix)]
        if left:
            print("# namespaces left behind: %s" % left, flush=True)


def run(lab, args, rep, cases, t_start):
    rep.out("# netlab: building the lab (logs in %s)" % args.logs)
    build(lab)
    rep.check(True, "lab: built %d namespaces (%d NATs, %d hosts)" % (
        len(lab.namespaces), len(lab.nats), len(lab.hosts)),
        "%.1f s" % (time.monotonic() - t_start))
    reflector = probe.Reflector(lab, SERVER_IPS)
    lab_ok = verify_lab(lab, rep, reflector)
    reflector.close()
    lab_ok &= start_servers(lab, args, rep, args.logs)
    if lab_ok:
        lab_ok &= verify_turn(lab, rep)
    if lab_ok:
        natdiscovery(lab, rep, ["eif-a", "adf-a", "apdf-a", "sym-a"] +
                     (["eif-b", "adf-b", "apdf-b", "sym-b", "cgn-a"] if args.full else []))
    rep.out("# lab built and verified in %.1f s" % (time.monotonic() - t_start))
    if not lab_ok:
        rep.out("# the lab is not what it claims to be: no tern case runs on it")
        rep.out("%d passed, %d failed" % (rep.passed, rep.failed))
        return 1
    caps = capabilities(lab, args, rep)
    rep.out("# the stack gathers: %s" % (", ".join(sorted({"host"} | caps))))
    for seq, case in enumerate(cases):
        case.open_ms = None
        missing = [n for n in case.needs if n not in caps]
        todo = missing and "needs %s candidates, which the stack does not gather yet" % \
            " and ".join(missing)
        if missing and not args.full:
            case.result = ("skip", True)
            rep.check(True, case.name, skip=todo)
            continue
        t = time.monotonic()
        ok, detail, cell = run_case(lab, args, case, seq)
        m = re.search(r" (\d+(?:\.\d+)?)$", cell or "")
        case.open_ms = float(m.group(1)) if m and ok else None
        case.result = (cell, ok)
        rep.check(ok, case.name, "%s; %.1f s" % (detail, time.monotonic() - t), todo=todo)
        rep.out("#   why %s: %s" % (case.expect, case.why))
    if not args.only or re.search(args.only, "cut"):
        run_cut(lab, args, rep, 1, mend_after=4.0)
        run_cut(lab, args, rep, 2, mend_after=None)
        run_cut(lab, args, rep, 3, mend_after=None, restart=True)
    netlab_files.run_files_cases(lab, args, rep, "ws://%s:%d/ws" % (SRV, labnet.SIGNAL_PORT),
                                 STUN_URL, TURN_URLS, caps)
    print_matrix(rep, cases, args.full)
    rep.out("# %d todo, %d skipped; %.0f s in all" % (rep.todo, rep.skipped,
                                                       time.monotonic() - t_start))
    rep.out("%d passed, %d failed" % (rep.passed, rep.failed))
    return 0 if rep.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
