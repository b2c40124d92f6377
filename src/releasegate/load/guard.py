"""The connection guard inside the locust child process (``netguard.Policy`` at connect time).

The target is judged in the parent before the run; inside the child every TCP connection a
user opens is judged again, so a locustfile that requests an absolute URL elsewhere cannot
send load there. Installed by ``locust_main`` when ``RELEASEGATE_LOAD_GUARD`` is set.
"""

from __future__ import annotations

from typing import Any


class ConnectGuard:
    """The connection guard inside the locust process: every TCP connection its users open
    goes to loopback, to an address the parent judged for the target (``pinned``), or to
    what the spec's ``allowed_hosts`` allow (``netguard.Policy``). A locustfile that asks for
    another host (an absolute URL elsewhere) gets ``ConnectionRefusedError``: a failed
    request, counted in ``refused`` and in the final line (the check is then an ERROR)."""

    def __init__(self, allowed_hosts: list[str], pinned: list[str]) -> None:
        import ipaddress

        from ..netguard import Policy

        self.policy = Policy.from_hosts(allowed_hosts)
        self.pinned = {ipaddress.ip_address(a) for a in pinned}
        self.refused = 0
        self.last_refusal = ""

    def why_not(self, host: str) -> str | None:
        import ipaddress
        import socket

        try:
            addresses = [ipaddress.ip_address(host.split("%", 1)[0])]
        except ValueError:
            try:
                infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
            except OSError:
                return None  # it will not connect anyway
            addresses = [ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos]
        for address in addresses:
            if address in self.pinned:
                continue
            why = self.policy.effective().refusal(address, by_name=False)
            if why:
                return f"refusing load traffic to {host}: {why}"
        return None

    def install(self) -> None:
        import socket

        guard = self
        original = socket.socket.connect
        original_ex = socket.socket.connect_ex

        def check(sock: Any, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
                why = guard.why_not(str(address[0]))
                if why:
                    guard.refused += 1
                    guard.last_refusal = why
                    raise ConnectionRefusedError(why)

        def connect(sock: Any, address: Any) -> Any:
            check(sock, address)
            return original(sock, address)

        def connect_ex(sock: Any, address: Any) -> Any:
            check(sock, address)
            return original_ex(sock, address)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
