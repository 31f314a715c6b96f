"""Real loopback DNS servers for the reverse-DNS tests."""

from __future__ import annotations

import ipaddress
import selectors
import socket
import threading
from collections.abc import Iterator

import pytest
from dnslib import PTR, QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer

PTR_RECORDS = {
    "89.160.20.112": "host-89-160-20-112.bredband2.se",
    "2001:db8::1": "v6.example.org",
    "192.0.2.7": "Mixed-Case.Example.NET",
}


class _PtrResolver(BaseResolver):
    """Answers PTR queries from a dict and NXDOMAIN for everything else."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = {
            ipaddress.ip_address(ip).reverse_pointer + ".": name for ip, name in records.items()
        }
        self.lock = threading.Lock()
        self.qnames: list[str] = []

    def resolve(self, request, handler):
        qname = str(request.q.qname)
        with self.lock:
            self.qnames.append(qname)
        reply = request.reply()
        target = self.records.get(qname.lower())
        if request.q.qtype == QTYPE.PTR and target is not None:
            reply.add_answer(RR(request.q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=60))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class RunningDNS:
    """Handle on a test DNS server: its "ip:port" address and the qnames it received."""

    def __init__(self, port: int, resolver: _PtrResolver) -> None:
        self.address = f"127.0.0.1:{port}"
        self._resolver = resolver

    @property
    def queries(self) -> list[str]:
        with self._resolver.lock:
            return list(self._resolver.qnames)


def _start_udp_and_tcp(resolver: _PtrResolver) -> tuple[int, list[DNSServer]]:
    """Start UDP and TCP servers on one free port, retrying if TCP loses the port race."""
    quiet = DNSLogger(logf=lambda _msg: None)
    for _ in range(20):
        udp = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=quiet)
        except OSError:
            udp.server.server_close()
            continue
        return port, [udp, tcp]
    raise RuntimeError("could not find a free port for UDP and TCP")


@pytest.fixture
def dns_server() -> Iterator[RunningDNS]:
    """A real dnslib DNS server on 127.0.0.1 answering PTR_RECORDS."""
    resolver = _PtrResolver(PTR_RECORDS)
    port, servers = _start_udp_and_tcp(resolver)
    # Own threads rather than start_thread(): a short poll interval keeps teardown fast.
    threads = [
        threading.Thread(
            target=server.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        for server in servers
    ]
    for thread in threads:
        thread.start()
    try:
        yield RunningDNS(port, resolver)
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.stop()
            server.server.server_close()
            thread.join(timeout=5)


class SilentDNS:
    """A DNS "server" that reads every query and never answers."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.tcp.bind(("127.0.0.1", port))
            self.tcp.listen()
        except OSError:
            self.tcp.close()
            self.udp.close()
            raise
        self.address = f"127.0.0.1:{port}"
        self.lock = threading.Lock()
        self.received = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.udp, selectors.EVENT_READ)
            sel.register(self.tcp, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    if key.fileobj is self.udp:
                        self.udp.recvfrom(65535)
                        with self.lock:
                            self.received += 1
                    else:
                        conn, _ = self.tcp.accept()
                        self._conns.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in [*self._conns, self.udp, self.tcp]:
            sock.close()


def _silent_server() -> SilentDNS:
    """Bind UDP and TCP to the same free port, retrying if TCP loses the port race."""
    for _ in range(20):
        try:
            return SilentDNS()
        except OSError:
            continue
    raise RuntimeError("could not find a free port for UDP and TCP")


@pytest.fixture
def silent_dns_server() -> Iterator[SilentDNS]:
    """A loopback DNS endpoint that swallows queries without replying."""
    server = _silent_server()
    try:
        yield server
    finally:
        server.close()
