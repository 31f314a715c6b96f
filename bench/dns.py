"""A loopback DNS server answering PTR queries, so no reverse lookup leaves the machine."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from dnslib import PTR, QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class _PtrResolver(BaseResolver):
    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = {ipaddress.ip_address(ip).reverse_pointer + ".": name
                      for ip, name in names.items()}
        self.lock = threading.Lock()
        self.queries = 0

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        with self.lock:
            self.queries += 1
        reply = request.reply()
        target = self.names.get(str(request.q.qname).lower())
        if request.q.qtype == QTYPE.PTR and target is not None:
            reply.add_answer(RR(request.q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=3600))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@contextmanager
def ptr_server(names: Mapping[str, str]) -> Iterator[tuple[str, _PtrResolver]]:
    """Serve PTR records for `names` (ip -> host name) on 127.0.0.1; yield "ip:port"."""
    resolver = _PtrResolver(names)
    quiet = DNSLogger(logf=lambda _msg: None)
    server = DNSServer(resolver, address="127.0.0.1", port=0, logger=quiet)
    thread = threading.Thread(target=server.server.serve_forever,
                              kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}", resolver
    finally:
        server.stop()
        server.server.server_close()
        thread.join(timeout=5)
