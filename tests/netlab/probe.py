# SPDX-License-Identifier: MIT
"""Verification of the lab before any tern test trusts it: in-process UDP probes between
sockets made inside the lab's namespaces, and a minimal STUN/TURN client (RFC 8489, 8656) to
check coturn.

NAT behaviour (RFC 4787) is measured, not assumed:
- mapping: one socket behind the NAT sends to three server endpoints (two ports of one
  address, and another address); each sees the packet's source, the NAT's mapping for that
  destination. All equal: endpoint-independent; all different: endpoint-dependent.
- filtering: a fresh socket sends to one server endpoint; then that endpoint, another port of
  its address and another address all send to the mapping. Which of them get in tells EIF,
  ADF or APDF.
- hairpinning: a host sends to another host's public mapping, behind the same NAT; whether it
  arrives, and from which source, tells whether the NAT hairpins (with the sender's mapping).
"""

import hashlib
import hmac
import os
import select
import socket
import ssl
import struct
import time

from labnet import LabError

MAGIC = 0x2112A442
REFLECTOR_PORTS = (4000, 4001)


class Reflector:
    """UDP sockets on the servers' addresses that tell every sender its source address."""

    def __init__(self, lab, ips):
        self.socks = {}
        with lab.inside("srv"):
            for ip in ips:
                for port in REFLECTOR_PORTS:
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((ip, port))
                    s.setblocking(False)
                    self.socks[(ip, port)] = s

    def close(self):
        for s in self.socks.values():
            s.close()

    def serve(self):
        """Answer every pending probe with the address it came from. @return {src: server}."""
        seen = {}
        for ep, s in self.socks.items():
            while True:
                try:
                    data, src = s.recvfrom(2048)
                except BlockingIOError:
                    break
                if data.startswith(b"probe"):
                    s.sendto(b"seen %s %d" % (src[0].encode(), src[1]), src)
                    seen[src] = ep
        return seen


def _wait_readable(socks, timeout):
    r, _, _ = select.select(socks, [], [], timeout)
    return r


def exchange(reflector, client, dest, timeout=0.5):
    """Send a probe from client to dest; serve it; @return the mapped (ip, port) or None."""
    client.sendto(b"probe", dest)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = _wait_readable(list(reflector.socks.values()) + [client], 0.05)
        if any(s is not client for s in ready):
            reflector.serve()
        if client in ready:
            try:
                data, src = client.recvfrom(2048)
            except BlockingIOError:
                continue
            if src == dest and data.startswith(b"seen "):
                _, ip, port = data.decode().split()
                return (ip, int(port))
    return None


def drain(sock, window):
    """Everything sock receives within window seconds: [(data, src)]."""
    got = []
    deadline = time.monotonic() + window
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not _wait_readable([sock], left):
            return got
        try:
            got.append(sock.recvfrom(2048))
        except BlockingIOError:
            pass


def udp_socket(lab, host_ns, bind_ip="0.0.0.0"):
    with lab.inside(host_ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((bind_ip, 0))
        s.setblocking(False)
    return s


def measure_mapping(lab, reflector, host_ns, servers, bind_ip="0.0.0.0"):
    """@return the mappings seen by (A:p0, A:p1, B:p0) from one socket, None where lost."""
    s = udp_socket(lab, host_ns, bind_ip)
    try:
        a, b = servers
        return [exchange(reflector, s, d) for d in
                ((a, REFLECTOR_PORTS[0]), (a, REFLECTOR_PORTS[1]), (b, REFLECTOR_PORTS[0]))]
    finally:
        s.close()


def measure_filtering(lab, reflector, host_ns, servers, window=0.2):
    """@return (mapping, {"same": bool, "port": bool, "addr": bool}): which senders got in after
    the host sent to servers[0]:p0 only (same endpoint, other port, other address)."""
    s = udp_socket(lab, host_ns)
    try:
        a, b = servers
        m = exchange(reflector, s, (a, REFLECTOR_PORTS[0]))
        if not m:
            return None, {}
        senders = {"same": (a, REFLECTOR_PORTS[0]), "port": (a, REFLECTOR_PORTS[1]),
                   "addr": (b, REFLECTOR_PORTS[0])}
        for name, ep in senders.items():
            reflector.socks[ep].sendto(b"unsolicited " + name.encode(), m)
        arrived = drain(s, window)
        return m, {name: any(src == ep for _, src in arrived) for name, ep in senders.items()}
    finally:
        s.close()


def measure_hairpin(lab, reflector, ns_x, ns_y, servers, window=0.2):
    """X sends to Y's public mapping. @return (arrived, source Y saw, X's mapping)."""
    x = udp_socket(lab, ns_x)
    y = udp_socket(lab, ns_y)
    try:
        dest = (servers[0], REFLECTOR_PORTS[0])
        mx, my = exchange(reflector, x, dest), exchange(reflector, y, dest)
        if not mx or not my:
            return None, None, mx
        # Y opens its side first, as ICE does: its own send to X's mapping.
        y.sendto(b"open", mx)
        x.sendto(b"hairpin", my)
        got = [src for data, src in drain(y, window) if data == b"hairpin"]
        return bool(got), got[0] if got else None, mx
    finally:
        x.close()
        y.close()


def tcp_reachable(lab, host_ns, dest, timeout=0.5):
    with lab.inside(host_ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(dest)
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- STUN / TURN (RFC 8489, RFC 8656) ----

BINDING, ALLOCATE, SEND, DATA, CREATE_PERMISSION = 0x001, 0x003, 0x006, 0x007, 0x008
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110
A_USERNAME, A_MI, A_ERROR, A_REALM, A_NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
A_XOR_PEER, A_DATA, A_XOR_RELAYED, A_TRANSPORT, A_XOR_MAPPED = 0x0012, 0x0013, 0x0016, 0x0019, 0x0020


def _msg_type(method, cls):
    return ((method & 0xF80) << 2) | ((method & 0x070) << 1) | (method & 0x00F) | \
        ((cls & 0x100) << 0) | ((cls & 0x010) << 0)


def _attr(t, v):
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)


def _xor_addr(ip, port):
    packed = socket.inet_aton(ip)
    x = bytes(a ^ b for a, b in zip(packed, struct.pack("!I", MAGIC)))
    return struct.pack("!BBH", 0, 1, port ^ (MAGIC >> 16)) + x


def _parse_xor_addr(v):
    port = struct.unpack("!H", v[2:4])[0] ^ (MAGIC >> 16)
    ip = bytes(a ^ b for a, b in zip(v[4:8], struct.pack("!I", MAGIC)))
    return socket.inet_ntoa(ip), port


def stun_message(method, cls, attrs, key=None, tid=None):
    tid = tid or os.urandom(12)
    body = b"".join(_attr(t, v) for t, v in attrs)
    if key is not None:
        head = struct.pack("!HHI", _msg_type(method, cls), len(body) + 24, MAGIC) + tid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        body += _attr(A_MI, mac)
    return struct.pack("!HHI", _msg_type(method, cls), len(body), MAGIC) + tid + body, tid


def parse_stun(data):
    """@return (method, class, tid, {type: value}) or None."""
    if len(data) < 20:
        return None
    t, length, magic = struct.unpack("!HHI", data[:8])
    if magic != MAGIC or len(data) < 20 + length:
        return None
    method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    cls = t & 0x0110
    attrs, off = {}, 20
    while off + 4 <= 20 + length:
        at, al = struct.unpack("!HH", data[off:off + 4])
        attrs.setdefault(at, data[off + 4:off + 4 + al])
        off += 4 + al + (4 - al % 4) % 4
    return method, cls, data[8:20], attrs


class StunTransport:
    """One STUN association: UDP (connected socket), TCP or TLS (RFC 8489 §6.2 framing)."""

    def __init__(self, lab, host_ns, server, kind):
        self.kind = kind
        with lab.inside(host_ns):
            self.sock = socket.socket(socket.AF_INET,
                                      socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
        self.sock.settimeout(2.0)
        self.sock.connect(server)
        if kind == "tls":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the lab's self-signed certificate
            self.sock = ctx.wrap_socket(self.sock)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def recv(self, timeout=1.0):
        self.sock.settimeout(timeout)
        if self.kind == "udp":
            return self.sock.recv(4096)
        while True:
            if len(self.buf) >= 20:
                n = 20 + struct.unpack("!H", self.buf[2:4])[0]
                if len(self.buf) >= n:
                    msg, self.buf = self.buf[:n], self.buf[n:]
                    return msg
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk

    def transact(self, msg, tid, tries=3):
        for _ in range(tries if self.kind == "udp" else 1):
            self.send(msg)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    got = parse_stun(self.recv(max(0.05, deadline - time.monotonic())))
                except socket.timeout:
                    break
                if got and got[2] == tid:
                    return got
        raise LabError("no STUN answer over %s" % self.kind)


def stun_binding(t):
    """@return the XOR-MAPPED-ADDRESS of a Binding request."""
    msg, tid = stun_message(BINDING, REQUEST, [])
    _, cls, _, attrs = t.transact(msg, tid)
    if cls != SUCCESS or A_XOR_MAPPED not in attrs:
        raise LabError("Binding failed")
    return _parse_xor_addr(attrs[A_XOR_MAPPED])


def turn_relay_check(t, user, password, peer_sock, peer_addr):
    """Allocate (long-term credentials), permit peer_addr, send to it through the relay and
    get its answer back. @return the relayed address."""
    msg, tid = stun_message(ALLOCATE, REQUEST, [(A_TRANSPORT, b"\x11\0\0\0")])
    _, cls, _, attrs = t.transact(msg, tid)
    if cls != ERROR or A_NONCE not in attrs or A_REALM not in attrs:
        raise LabError("Allocate without credentials was not challenged (401)")
    realm, nonce = attrs[A_REALM], attrs[A_NONCE]
    key = hashlib.md5(b"%s:%s:%s" % (user.encode(), realm, password.encode())).digest()
    cred = [(A_USERNAME, user.encode()), (A_REALM, realm), (A_NONCE, nonce)]
    msg, tid = stun_message(ALLOCATE, REQUEST, [(A_TRANSPORT, b"\x11\0\0\0")] + cred, key)
    _, cls, _, attrs = t.transact(msg, tid)
    if cls != SUCCESS or A_XOR_RELAYED not in attrs:
        code = attrs.get(A_ERROR, b"\0\0\0\0")
        raise LabError("Allocate failed: %d %s" % (code[2] * 100 + code[3], code[4:]))
    relayed = _parse_xor_addr(attrs[A_XOR_RELAYED])
    msg, tid = stun_message(CREATE_PERMISSION, REQUEST,
                            [(A_XOR_PEER, _xor_addr(*peer_addr))] + cred, key)
    _, cls, _, _ = t.transact(msg, tid)
    if cls != SUCCESS:
        raise LabError("CreatePermission failed")
    ind, _ = stun_message(SEND, INDICATION, [(A_XOR_PEER, _xor_addr(*peer_addr)),
                                             (A_DATA, b"through the relay")])
    t.send(ind)
    got = drain(peer_sock, 1.0)
    if not any(d == b"through the relay" and src == relayed for d, src in got):
        raise LabError("the peer got nothing from the relay %s:%d" % relayed)
    peer_sock.sendto(b"and back", relayed)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            m = parse_stun(t.recv(0.2))
        except socket.timeout:
            continue
        if m and m[0] == DATA and m[3].get(A_DATA) == b"and back":
            return relayed
    raise LabError("no Data indication from the relay")
