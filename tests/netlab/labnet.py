# SPDX-License-Identifier: MIT
"""The NAT lab's network: network namespaces joined by veth links and bridges, with nftables
NATs whose RFC 4787 behaviour is chosen per box, all built here and all removed by close().

Everything lives in namespaces named PREFIX-NAME, where PREFIX is "tnl" and the driver's PID,
so that a later run can recognise (and remove) what a run killed with SIGKILL left behind.
Nothing is created in the host namespace: veth pairs are made directly inside the lab's
namespaces, and the lab has no link to the host namespace at all, so no packet of the lab can
leave it (TESTING.md, the network rule).

The python process itself enters namespaces (setns) to create sockets there: a socket stays in
the namespace it was made in, so the verification (probe.py) runs in-process, and processes
spawned while inside a namespace start there.

Topology (addresses are documentation and private ranges):

    srv 203.0.113.10, .11 (coturn, tern-signal, the reflector)
      |
    inet: br0 203.0.113.1/24 ---- NAT WANs 203.0.113.100+
          br1 198.51.100.1/24 --- public hosts 198.51.100.10+
                                   |
    NAT box: wan0, LAN bridges lan0 (10.N.0.1/24), lan1 (10.N.1.1/24) ...
                                   |
    wire (a two-port bridge, or netlab_impair, or a cut) -- host eth0 10.N.K.10+

A carrier NAT (CGN) has one LAN bridge in 100.64.N.0/24 where home NATs put their WAN.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

INET_BR0 = "203.0.113.1"
INET_BR1 = "198.51.100.1"
SERVER_IPS = ("203.0.113.10", "203.0.113.11")
# Ports the lab's firewalls treat as the TURN server's and the signaling server's (TCP).
TURN_PORT, TURNS_PORT, SIGNAL_PORT = 3478, 5349, 8080


class LabError(Exception):
    """The lab could not be built or does not behave as configured."""


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


class Nat:
    """One NAT (or firewall) box and what it is meant to do (RFC 4787 vocabulary).

    mapping: "eim" (endpoint-independent, pinned by a dynamic map), "edm" (endpoint-dependent:
    a new external port per destination), or "none" (a firewall that only masquerades TCP).
    filtering: "eif", "adf" (address-dependent) or "apdf" (address and port dependent).
    hairpin: LAN packets to the box's own public address are turned back (else dropped).
    udp_blocked: all UDP from the LAN is dropped, TCP is allowed only to the TURN server's
    ports and the signaling port.
    """

    def __init__(self, name, mapping, filtering, hairpin=False, udp_blocked=False,
                 upstream=None, lans=1, isolate_lans=True, carrier=False):
        self.name = name
        self.carrier = carrier  # a CGN: its LAN is in 100.64.0.0/10, home NATs behind it
        self.mapping = mapping
        self.filtering = filtering
        self.hairpin = hairpin
        self.udp_blocked = udp_blocked
        self.upstream = upstream  # None: the internet; else the carrier Nat in front of it
        self.nlans = lans
        self.isolate_lans = isolate_lans
        self.index = 0  # set by the lab
        self.wan_ip = None
        self.wan_gw = None
        self.lan_nets = []  # (network prefix "10.N.K", router address)
        self.homes = []  # Nats behind this one (a carrier NAT)
        self.hosts = []

    @property
    def public_ip(self):
        """The address the internet sees: the outermost NAT's WAN address."""
        return self.upstream.public_ip if self.upstream else self.wan_ip

    def describe(self):
        if self.udp_blocked:
            return "UDP blocked, TCP only to TURN"
        text = "%s mapping, %s filtering, hairpin %s" % (
            self.mapping.upper(), self.filtering.upper(), "on" if self.hairpin else "off")
        if self.upstream:
            text += ", behind %s" % self.upstream.name
        return text


class Host:
    """A host: behind a NAT's LAN, or public on the internet's second segment."""

    def __init__(self, name, nat=None, lan=0):
        self.name = name
        self.nat = nat
        self.lan = lan
        self.ip = None
        self.gw = None
        self.extra = []  # further interfaces (name, ip/prefix, gateway, wire)
        self.wire = "w-" + name

    @property
    def public(self):
        return self.nat is None


class Lab:
    """The namespaces, links, rulesets and processes of one run, and their removal."""

    def __init__(self, logdir, log=print):
        self.prefix = "tnl%d" % os.getpid()
        self.logdir = logdir
        self.log = log
        self.namespaces = []
        self.procs = []  # (name, Popen) of every process started
        self.nats = {}
        self.hosts = {}
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._nat_count = 0
        self._public_count = 0
        self._cgn_count = 0
        self._inet_ports = 0

    # ---- namespaces ----

    def ns(self, short):
        return "%s-%s" % (self.prefix, short)

    @contextlib.contextmanager
    def inside(self, short):
        """Run the block inside namespace `short` (sockets made there stay there)."""
        fd = os.open("/run/netns/" + self.ns(short), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(fd)
            try:
                yield
            finally:
                _setns(self._home)
        finally:
            os.close(fd)

    def run(self, argv, stdin=None):
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True)
        if p.returncode != 0:
            raise LabError("%s: %s" % (" ".join(argv), (p.stderr or p.stdout).strip()))
        return p.stdout

    def ip(self, short, *args):
        return self.run(["ip", "-n", self.ns(short)] + list(args))

    def sysctl(self, short, values):
        """Set sysctls inside a namespace (/proc/sys/net is per namespace of the opener)."""
        with self.inside(short):
            for key, value in values.items():
                path = "/proc/sys/" + key.replace(".", "/")
                if os.path.exists(path):
                    with open(path, "w") as f:
                        f.write(str(value))

    def add_ns(self, short, router=False, bridges=False):
        self.run(["ip", "netns", "add", self.ns(short)])
        self.namespaces.append(short)
        # No IPv6 in the lab: only IPv4 NAT behaviours are modelled, and no stray neighbour
        # discovery or link-local candidates blur the results. New interfaces inherit this.
        self.sysctl(short, {
            "net.ipv6.conf.all.disable_ipv6": 1,
            "net.ipv6.conf.default.disable_ipv6": 1,
            "net.ipv4.conf.all.rp_filter": 0,
            "net.ipv4.conf.default.rp_filter": 0,
        })
        if router:
            self.sysctl(short, {"net.ipv4.ip_forward": 1})
        if bridges:
            # br_netfilter is built in: without this, bridged frames would go through the
            # box's conntrack and NAT as if routed (TESTING.md).
            self.sysctl(short, {
                "net.bridge.bridge-nf-call-iptables": 0,
                "net.bridge.bridge-nf-call-arptables": 0,
                "net.bridge.bridge-nf-call-ip6tables": 0,
            })
        self.ip(short, "link", "set", "lo", "up")

    def veth(self, ns1, if1, ns2, if2):
        self.run(["ip", "link", "add", "name", if1, "netns", self.ns(ns1), "type", "veth", "peer",
                  "name", if2, "netns", self.ns(ns2)])

    def bridge(self, short, name, addr=None):
        self.ip(short, "link", "add", "name", name, "type", "bridge")
        if addr:
            self.ip(short, "addr", "add", addr, "dev", name)
        self.ip(short, "link", "set", name, "up")

    def nft(self, short, ruleset):
        self.run(["ip", "netns", "exec", self.ns(short), "nft", "-f", "-"], stdin=ruleset)

    # ---- processes ----

    def spawn(self, short, name, argv, stdin=None):
        """Start a process inside a namespace; its stdout and stderr go to LOGDIR/NAME.log
        unless stdin is subprocess.PIPE (then stdout is a pipe too, for the driver)."""
        logf = open(os.path.join(self.logdir, name + ".log"), "a")
        piped = stdin == subprocess.PIPE
        with self.inside(short):
            p = subprocess.Popen(argv, stdin=stdin if piped else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if piped else logf, stderr=logf,
                                 text=True, bufsize=1, start_new_session=True)
        logf.close()
        self.procs.append((name, p))
        return p

    def stop(self, p, grace=3.0):
        """End one process this lab started: SIGTERM, a grace period, SIGKILL. @return code."""
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        self.procs = [(n, q) for n, q in self.procs if q is not p]
        for f in (p.stdin, p.stdout):
            if f:
                with contextlib.suppress(OSError):
                    f.close()
        return p.returncode

    # ---- removal ----

    def close(self):
        """Remove everything: processes first (by PID), then the namespaces."""
        for _, p in list(self.procs):
            self.stop(p, grace=2.0)
        for short in reversed(self.namespaces):
            _remove_ns(self.ns(short))
        self.namespaces = []
        os.close(self._home)

    # ---- topology ----

    def build_internet(self):
        self.add_ns("inet", router=True, bridges=True)
        self.bridge("inet", "br0", INET_BR0 + "/24")
        self.bridge("inet", "br1", INET_BR1 + "/24")
        self.nft("inet", INET_RULES)
        self.add_ns("srv")
        self.veth("srv", "eth0", "inet", "s0")
        self.ip("inet", "link", "set", "s0", "master", "br0", "up")
        for a in SERVER_IPS:
            self.ip("srv", "addr", "add", a + "/24", "dev", "eth0")
        self.ip("srv", "link", "set", "eth0", "up")
        self.ip("srv", "route", "add", "default", "via", INET_BR0)

    def add_nat(self, nat):
        """Build a NAT box: its WAN on the internet (or a carrier NAT's LAN), its LANs."""
        self._nat_count += 1
        nat.index = self._nat_count
        self.nats[nat.name] = nat
        short = "n-" + nat.name
        self.add_ns(short, router=True, bridges=True)
        if nat.upstream is None:
            self._inet_ports += 1
            nat.wan_ip = "203.0.113.%d" % (100 + nat.index)
            nat.wan_gw = INET_BR0
            up_ns, up_br, port = "inet", "br0", "p%d" % self._inet_ports
        else:
            up = nat.upstream
            up.homes.append(nat)
            nat.wan_ip = "%s.%d" % (up.lan_nets[0][0], 10 + len(up.homes))
            nat.wan_gw = up.lan_nets[0][1]
            up_ns, up_br, port = "n-" + up.name, "lan0", "h%d" % len(up.homes)
        self.veth(short, "wan0", up_ns, port)
        self.ip(up_ns, "link", "set", port, "master", up_br, "up")
        self.ip(short, "addr", "add", nat.wan_ip + "/24", "dev", "wan0")
        self.ip(short, "link", "set", "wan0", "up")
        self.ip(short, "route", "add", "default", "via", nat.wan_gw)
        for k in range(nat.nlans):
            if nat.carrier:
                # RFC 6598 shared address space between a carrier NAT and its customers.
                self._cgn_count += 1
                net = "100.64.%d" % self._cgn_count
            else:
                net = "10.%d.%d" % (nat.index, k)
            router = net + ".1"
            nat.lan_nets.append((net, router))
            self.bridge(short, "lan%d" % k, router + "/24")
        self.nft(short, nat_rules(nat))
        return nat

    def add_host(self, host):
        """Build a host behind its NAT's LAN (or on the internet) through its wire."""
        self.hosts[host.name] = host
        short = "h-" + host.name
        self.add_ns(short)
        self.add_ns(host.wire, bridges=True)
        if host.public:
            self._public_count += 1
            self._inet_ports += 1
            host.ip = "198.51.100.%d" % (9 + self._public_count)
            host.gw = INET_BR1
            router_ns, router_br, port = "inet", "br1", "p%d" % self._inet_ports
        else:
            nat = host.nat
            nat.hosts.append(host)
            net, host.gw = nat.lan_nets[host.lan]
            host.ip = "%s.%d" % (net, 9 + len(nat.hosts))
            router_ns, router_br, port = "n-" + nat.name, "lan%d" % host.lan, \
                "q%d" % len(nat.hosts)
        self._wire(short, "eth0", host.wire, router_ns, router_br, port)
        self.ip(short, "addr", "add", host.ip + "/24", "dev", "eth0")
        self.ip(short, "link", "set", "eth0", "up")
        self.ip(short, "route", "add", "default", "via", host.gw)
        return host

    def add_public_interface(self, host, segment):
        """Give a public host a second interface, on br0 (203.0.113.0/24), with source routing
        so that what is sent from its address leaves by it (a multihomed host)."""
        short = "h-" + host.name
        self._inet_ports += 1
        ifname = "eth%d" % (1 + len(host.extra))
        wire = "%s%d" % (host.wire, 1 + len(host.extra))
        addr = "203.0.113.%d" % (50 + len(self.hosts) + len(host.extra))
        self.add_ns(wire, bridges=True)
        self._wire(short, ifname, wire, "inet", segment, "p%d" % self._inet_ports)
        self.ip(short, "addr", "add", addr + "/24", "dev", ifname)
        self.ip(short, "link", "set", ifname, "up")
        table = str(100 + len(host.extra))
        self.ip(short, "route", "add", "default", "via", INET_BR0, "dev", ifname, "table",
                table)
        self.ip(short, "rule", "add", "from", addr, "table", table)
        host.extra.append((ifname, addr, wire))
        return addr

    def _wire(self, host_ns, host_if, wire, router_ns, router_br, port):
        """host_if <-> [wire: i0 -bridge- i1] <-> router_br port."""
        self.veth(host_ns, host_if, wire, "i0")
        self.veth(wire, "i1", router_ns, port)
        self.bridge(wire, "wbr")
        for i in ("i0", "i1"):
            self.ip(wire, "link", "set", i, "master", "wbr", "up")
        self.ip(router_ns, "link", "set", port, "master", router_br, "up")

    # ---- link control ----

    def cut(self, wire, udp_only=True):
        """Drop what crosses a wire (UDP only by default, so signaling survives)."""
        match = "ether type ip ip protocol udp " if udp_only else ""
        self.nft(wire, "table bridge cut {\n chain routed { type filter hook forward priority 0;"
                 " policy accept; %sdrop; }\n}\n" % match)

    def mend(self, wire):
        self.run(["ip", "netns", "exec", self.ns(wire), "nft", "delete", "table", "bridge",
                  "cut"])

    def impair(self, wire, impair_bin, args):
        """Replace a wire's bridge with netlab_impair. @return the process (stop() to end)."""
        for i in ("i0", "i1"):
            self.ip(wire, "link", "set", i, "nomaster")
        p = self.spawn(wire, wire + "-impair", [impair_bin, "i0", "i1"] + args,
                       stdin=subprocess.PIPE)
        line = p.stdout.readline().strip()
        if line != "ready":
            raise LabError("netlab_impair on %s did not start (%r)" % (wire, line))
        return p

    def unimpair(self, wire, proc):
        self.stop(proc)
        for i in ("i0", "i1"):
            self.ip(wire, "link", "set", i, "master", "wbr")


def _remove_ns(name):
    """End the processes still in a namespace (all started by the lab), then remove it."""
    for attempt in range(20):
        p = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        pids = [int(x) for x in p.stdout.split()] if p.returncode == 0 else []
        if not pids:
            break
        sig = signal.SIGTERM if attempt < 10 else signal.SIGKILL
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(0.1)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def remove_stale():
    """Remove namespaces of earlier runs whose driver is gone (a SIGKILL, a ctest timeout)."""
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith("tnl") or "-" not in name:
            continue
        pid = name[3:name.index("-")]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that run is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _remove_ns(name)


# The internet routes between its two segments and forwards nothing else: it has no default
# route, so nothing can leave the lab even in principle.
INET_RULES = """
table ip lab {
  chain routed { type filter hook forward priority filter; policy drop;
    iifname { "br0", "br1" } oifname { "br0", "br1" } accept
  }
}
"""


def nat_rules(nat):
    """The nftables ruleset of a NAT box (TESTING.md: how each RFC 4787 behaviour is exact).

    EIM: the first flow of a private address and port is masqueraded (the kernel keeps the
    port when it is free); a filter chain at srcnat + 10 sees the translated packet and the
    conntrack's original source and pins that mapping in @eim; every later flow of that source
    is SNATed through @eim, whatever its destination (RFC 4787 REQ-1). @rev maps the public
    port back to the private address and port, for inbound flows and hairpinning.
    EDM: `masquerade random`, a new external port per destination.
    Filtering: APDF is plain conntrack (only replies get in); EIF DNATs any new inbound flow
    to a pinned mapping through @rev; ADF does so only from remote addresses the mapping has
    sent to (@peers). The box's own WAN input drops everything unsolicited, so a peer's early
    punch never creates a conntrack entry on the box that would steal the host's mapping.
    Hairpinning: LAN packets to the public address are DNATed through @rev and SNATed to the
    sender's mapping, so the receiver sees the sender's public address (RFC 4787 REQ-9);
    without it they are dropped.
    """
    lans = ", ".join('"lan%d"' % k for k in range(nat.nlans))
    nets = ", ".join("%s.0/24" % n for n, _ in nat.lan_nets)
    pub = nat.wan_ip
    pre, post, rec, fwd = [], [], [], []
    if nat.mapping == "eim":
        post.append('oifname "wan0" ip saddr { %s } snat ip to ip saddr . udp sport map @eim'
                    % nets)
        rec.append('oifname "wan0" meta l4proto udp ct direction original update @eim '
                   '{ ct original ip saddr . ct original proto-src : ip saddr . udp sport }')
        rec.append('oifname "wan0" meta l4proto udp ct direction original update @rev '
                   '{ udp sport : ct original ip saddr . ct original proto-src }')
        if nat.filtering == "adf":
            rec.append('oifname "wan0" meta l4proto udp ct direction original update @peers '
                       '{ udp sport . ip daddr }')
            pre.append('iifname "wan0" ip daddr %s udp dport . ip saddr @peers '
                       'dnat ip to udp dport map @rev' % pub)
        elif nat.filtering == "eif":
            pre.append('iifname "wan0" ip daddr %s dnat ip to udp dport map @rev' % pub)
        post.append('oifname "wan0" ip saddr { %s } masquerade' % nets)
    elif nat.mapping == "edm":
        post.append('oifname "wan0" ip saddr { %s } masquerade random' % nets)
    else:
        post.append('oifname "wan0" ip saddr { %s } masquerade' % nets)
    if nat.hairpin and nat.mapping == "eim":
        pre.append('iifname { %s } ip daddr %s dnat ip to udp dport map @rev' % (lans, pub))
        post.append('ct status dnat oifname { %s } ip saddr { %s } '
                    'snat ip to ip saddr . udp sport map @eim' % (lans, nets))
        post.append('ct status dnat oifname { %s } ip saddr { %s } snat ip to %s'
                    % (lans, nets, pub))
    fwd.append("ct state established,related accept")
    if nat.udp_blocked:
        fwd.append('iifname { %s } oifname "wan0" ip daddr %s tcp dport { %d, %d, %d } accept'
                   % (lans, SERVER_IPS[0], TURN_PORT, TURNS_PORT, SIGNAL_PORT))
    else:
        fwd.append('iifname { %s } oifname "wan0" accept' % lans)
        fwd.append("ct status dnat accept")
    if not nat.isolate_lans:
        fwd.append('iifname { %s } oifname { %s } accept' % (lans, lans))
    ind = "\n    "
    return """
table ip lab {
  map eim { type ipv4_addr . inet_service : ipv4_addr . inet_service; flags dynamic, timeout;
            timeout 300s; }
  map rev { type inet_service : ipv4_addr . inet_service; flags dynamic, timeout; timeout 300s; }
  set peers { type inet_service . ipv4_addr; flags dynamic, timeout; timeout 300s; }
  chain prenat { type nat hook prerouting priority dstnat; policy accept;%s
  }
  chain postnat { type nat hook postrouting priority srcnat; policy accept;%s
  }
  chain record { type filter hook postrouting priority srcnat + 10; policy accept;%s
  }
  chain routed { type filter hook forward priority filter; policy drop;%s
  }
  chain local { type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    iifname { %s } accept
  }
}
""" % ("".join(ind + r for r in pre), "".join(ind + r for r in post),
       "".join(ind + r for r in rec), "".join(ind + r for r in fwd), lans)


def remove_prefix(prefix):
    """Remove every namespace whose name starts with prefix + "-"."""
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix + "-"):
            _remove_ns(name)


def start_reaper(prefix):
    """A process of its own session that removes the run's namespaces when the driver dies,
    however it dies (a SIGKILL from a test timeout included): it waits for the end of a pipe
    that only the driver holds open."""
    import sys
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--reap", prefix],
                         stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    os.close(r)
    os.set_inheritable(w, False)
    return p, w


def stop_reaper(reaper):
    p, w = reaper
    os.close(w)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--reap":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while os.read(0, 1):
            pass
        remove_prefix(sys.argv[2])
