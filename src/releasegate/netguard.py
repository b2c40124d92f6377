"""Where traffic may go: loopback always, anywhere else only where the spec's ``allowed_hosts``
says. Every outbound connection of a gate (HTTP target, redirect hop, proxy, database) is
judged by one ``Policy``.

* **Loopback** (127.0.0.0/8, ::1, the name ``localhost``) is always allowed.
* **allowed_hosts** entries: exact host names (case-insensitive, trailing dot ignored, IDNA
  normalised: ``exämple.com`` is ``xn--exmple-cua.com``), wildcards ``*.example.com``
  (subdomains only, not the apex), IP addresses and networks (``10.0.0.0/8``, ``fd00::/8``).
  No entry means loopback only; ``RELEASEGATE_LOOPBACK_ONLY=1`` means loopback only whatever
  the spec says (tests and the demo set it).
* **Addresses, not spellings.** A host name is allowed when it matches a name entry, or when
  every address it resolves to is loopback or inside an IP/network entry. Even a name entry
  never leads to an unspecified (0.0.0.0, ::), multicast, broadcast or link-local address
  (169.254.0.0/16, where cloud metadata answers, and fe80::/10) unless an IP/network entry
  inside that range names it. IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is judged as its IPv4
  address (what the socket reaches); 6to4 and NAT64 (``64:ff9b::/96``) addresses as
  themselves *and* as the IPv4 address they embed: both must be allowed.
* **Resolve once, pin.** ``Policy.resolve`` looks a name up once, judges every address and
  returns them; the caller connects to exactly those (``dial``), so a DNS answer that changes
  between the check and the connection (DNS rebinding) cannot move the connection.

A refusal is a ``TargetRefused`` naming the host, the address it resolved to and the fix.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

import idna
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .errors import TargetRefused
from .redact import redact_text

LOOPBACK_ONLY_ENV = "RELEASEGATE_LOOPBACK_ONLY"
FIX = "add it to allowed_hosts in the spec"
LOOPBACK_NAMES = frozenset({"localhost"})

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
AddrInfo: TypeAlias = tuple[Any, ...]  # one getaddrinfo() entry: family, type, proto, _, sockaddr

#: A lookup never waits longer than this, whatever the caller's deadline.
MAX_LOOKUP_S = 10.0


def getaddrinfo_within(
    host: str,
    port: int | None,
    family: int = 0,
    type_: int = 0,
    flags: int = 0,
    timeout: float | None = None,
) -> list[AddrInfo]:
    """``socket.getaddrinfo``, bounded: a resolver that does not answer within ``timeout``
    (at most ``MAX_LOOKUP_S``) is a ``TimeoutError``. The C call cannot be interrupted, so it
    runs on a daemon thread that is left to end by itself."""
    limit = MAX_LOOKUP_S if timeout is None else max(0.0, min(timeout, MAX_LOOKUP_S))
    box: dict[str, Any] = {}
    done = threading.Event()

    def look_up() -> None:
        try:
            box["infos"] = socket.getaddrinfo(host, port, family, type_, 0, flags)
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err
        finally:
            done.set()

    threading.Thread(target=look_up, name="rg-lookup", daemon=True).start()
    if not done.wait(limit):
        raise TimeoutError(f"looking up {host!r} took more than {limit:.3g}s")
    if "error" in box:
        raise box["error"]
    infos: list[AddrInfo] = box["infos"]
    return infos


# Addresses a name never leads to unless an IP/network entry within the range names them.
_GUARDED: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(net), what)
    for net, what in (
        ("169.254.0.0/16", "link-local (cloud metadata answers at 169.254.169.254)"),
        ("fe80::/10", "link-local"),
        ("0.0.0.0/8", "unspecified ('this host')"),
        ("::/128", "unspecified ('this host')"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("255.255.255.255/32", "broadcast"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# A last label of digits or hex is no DNS name but an IP address spelt for inet_aton.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


def loopback_only() -> bool:
    """Whether every connection must stay on loopback (tests and demos set this)."""
    return os.environ.get(LOOPBACK_ONLY_ENV, "") not in ("", "0", "false", "no")


@functools.lru_cache(maxsize=1024)
def literal_address(host: str) -> Address | None:
    """The IP address ``host`` spells in canonical form (``[::1]``, ``127.0.0.1.``), or None."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text.rstrip(".") if ":" not in text else text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def normalize_name(host: str) -> str:
    """``host`` as compared with ``allowed_hosts``: lower case, no trailing dot, IDNA (ASCII).

    ``ValueError`` when it is no host name (empty label, a character no name has).
    """
    name = host[:-1] if host.endswith(".") else host
    name = name.lower()
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as err:
            raise ValueError(
                f"{host!r} is not a valid internationalised host name ({err})"
            ) from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{host!r} is not a host name (labels of letters, digits, '-' and '_', separated by"
            " single dots)"
        )
    return name


def _forms(address: Address) -> tuple[Address, ...]:
    """What connecting to ``address`` reaches: each form must be allowed (module doc)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return (mapped,)
        if address.sixtofour is not None:
            return (address, address.sixtofour)
        if address in _NAT64:
            return (address, ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return (address,)


def _guarded(address: Address) -> tuple[Network, str] | None:
    for network, what in _GUARDED:
        if address.version == network.version and address in network:
            return network, what
    return None


def _entry(text: str, index: int) -> tuple[str, str | Network]:
    """One ``allowed_hosts`` entry as ("name" | "suffix" | "network", value); ValueError."""
    where = f"entry {text!r}" if isinstance(text, str) else f"entry {index + 1}"
    if not isinstance(text, str) or not text:
        raise ValueError(f"{where}: an entry must be a host name, an IP address or a network")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"{where} has spaces: write the host alone, e.g. api.example.com")
    if "://" in text:
        try:
            host = parse_url(text).host or "api.example.com"
        except LocationParseError:
            host = "api.example.com"
        raise ValueError(f"{where} is a URL: write its host alone, e.g. {host!r}")
    if "@" in text:
        raise ValueError(f"{where} has a user part: write the host alone, e.g. api.example.com")
    if "/" in text:
        try:
            return "network", ipaddress.ip_network(text, strict=True)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"{where} has a path or is no network: write a host (api.example.com) or a"
                " network in CIDR form (10.0.0.0/8, fd00::/8)"
            ) from None
        raise ValueError(f"{where} has host bits set: did you mean {str(loose)!r}?")
    address = literal_address(text)
    if address is not None and "%" not in text:
        return "network", ipaddress.ip_network(address)
    if "%" in text:
        raise ValueError(
            f"{where} has a zone (%...): allowed_hosts names addresses without one; write"
            f" {text.split('%', 1)[0].strip('[]')!r}"
        )
    if ":" in text:
        head = text.rsplit(":", 1)[0].strip("[]")
        raise ValueError(
            f"{where} has a port (or is a malformed IPv6 address): allowed_hosts names hosts,"
            f" any port; write {head!r}"
        )
    if text == "*":
        raise ValueError(
            f"{where} would allow every host: list the hosts (api.example.com, *.example.com)"
            " or networks (10.0.0.0/8) gate traffic may reach"
        )
    wildcard = text.startswith("*.")
    rest = text[2:] if wildcard else text
    if "*" in rest:
        raise ValueError(
            f"{where}: a wildcard may only be a whole leading label, as in *.example.com"
        )
    try:
        name = normalize_name(rest)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        raise ValueError(
            f"{where} is no host name and no IP address in dotted form: write an address as"
            " a.b.c.d (e.g. 10.0.0.1) or a network as 10.0.0.0/8"
        )
    if wildcard:
        if "." not in name:
            raise ValueError(
                f"{where} is too broad: it matches every host of a top-level domain; name the"
                f" domain, e.g. '*.example.{name}'"
            )
        return "suffix", "." + name
    return "name", name


def validate_allowed_hosts(entries: Sequence[str]) -> list[str]:
    """Check every entry (the spec's validator); ``ValueError`` naming the entry and the fix."""
    for index, text in enumerate(entries):
        _entry(text, index)
    return list(entries)


@dataclass(frozen=True, slots=True)
class Policy:
    """Where traffic may go: loopback plus ``allowed_hosts``. ``Policy()`` is loopback only."""

    entries: tuple[str, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()

    @classmethod
    def from_hosts(cls, entries: Iterable[str]) -> Policy:
        """The policy of ``allowed_hosts`` entries; ``ValueError`` for a bad one."""
        written = tuple(entries)
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[Network] = []
        for index, text in enumerate(written):
            kind, value = _entry(text, index)
            if kind == "name":
                names.add(str(value))
            elif kind == "suffix":
                suffixes.append(str(value))
            else:
                assert not isinstance(value, str)
                networks.append(value)
        return cls(written, frozenset(names), tuple(suffixes), tuple(networks))

    @property
    def is_loopback_only(self) -> bool:
        return not (self.names or self.suffixes or self.networks)

    def effective(self) -> Policy:
        """This policy, or loopback only when ``RELEASEGATE_LOOPBACK_ONLY`` is set."""
        if self.is_loopback_only or not loopback_only():
            return self
        return LOOPBACK

    def allows_name(self, name: str) -> bool:
        """Whether the normalised ``name`` matches a name or wildcard entry."""
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)

    def refusal(self, address: Address, *, by_name: bool) -> str | None:
        """Why connecting to ``address`` is refused, or None. ``by_name``: it is what a name
        allowed by a name entry resolved to."""
        for form in _forms(address):
            if form.is_loopback:
                continue
            guarded = _guarded(form)
            if any(
                form.version == net.version
                and form in net
                and (guarded is None or net.subnet_of(guarded[0]))  # type: ignore[arg-type]
                for net in self.networks
            ):
                continue
            if guarded is not None:
                return (
                    f"{form} is {guarded[1]}, refused even for a host in allowed_hosts."
                    f" Fix: only if you mean it, add '{form}' to allowed_hosts in the spec"
                )
            if not by_name:
                return self._not_allowed(str(form) if form != address else "")
        return None

    def _not_allowed(self, form: str) -> str:
        reached = f" (it reaches {form})" if form else ""
        if self.is_loopback_only:
            forced = (
                f" ({LOOPBACK_ONLY_ENV} is set: loopback only, whatever allowed_hosts says)"
                if loopback_only()
                else ""
            )
            return (
                f"only loopback targets (127.0.0.0/8, ::1, localhost) are allowed here{reached}"
                f"{forced}. Fix: point it at a local deployment, or {FIX}"
            )
        listed = ", ".join(self.entries)
        return f"it is not in allowed_hosts ({listed}){reached}. Fix: {FIX}"

    def _raise(self, host: str, address: Address | None, purpose: str, why: str) -> NoReturn:
        shown = (
            host
            if address is None or literal_address(host) == address
            else (f"{host} (resolves to {address})")
        )
        raise TargetRefused(f"refusing to send {purpose} to {shown!r}: {why}")

    def check_url(self, url: str, purpose: str) -> str:
        """Judge the host of ``url`` as urllib3 (and so requests) parses it; return the host.

        The early check of a request: an IP address is judged, a name allowed by name or
        ``localhost`` passes (the connection judges its addresses), any other name is looked
        up and every address judged. ``TargetRefused`` when refused or unparseable.
        """
        try:
            host = parse_url(url).host
        except LocationParseError as err:
            raise TargetRefused(
                redact_text(f"refusing to send {purpose} to {url[:200]!r}: not a URL ({err})")
            ) from None
        if not host:
            shown = redact_text(url)[:200]
            raise TargetRefused(f"refusing to send {purpose} to {shown!r}: the URL has no host")
        self.check_host(host, purpose)
        return host

    def check_host(self, host: str, purpose: str) -> None:
        """The early check of ``host`` (see ``check_url``); resolution failures are left to
        the connection, which reports them as such."""
        policy = self.effective()
        address = literal_address(host)
        if address is not None:
            why = policy.refusal(address, by_name=False)
            if why:
                policy._raise(host, None, purpose, why)
            return
        name = _name_or_refuse(host, purpose)
        if name in LOOPBACK_NAMES or policy.allows_name(name):
            return
        try:
            infos = getaddrinfo_within(host, None, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError):  # TimeoutError included: the connection will say
            return
        policy._judge_all(host, infos, purpose, by_name=False)

    def resolve(
        self,
        host: str,
        port: int | None,
        purpose: str,
        family: int = socket.AF_UNSPEC,
        timeout: float | None = None,
    ) -> list[AddrInfo]:
        """Look ``host`` up once (within ``timeout``), judge every address, return them all
        (to connect to).

        An IP address needs no lookup. ``TargetRefused`` when any address is refused;
        ``socket.gaierror`` when the name does not resolve; ``TimeoutError`` when the resolver
        does not answer in time.
        """
        policy = self.effective()
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        address = literal_address(host)
        if address is not None:
            why = policy.refusal(address, by_name=False)
            if why:
                policy._raise(host, None, purpose, why)
            if isinstance(address, ipaddress.IPv4Address) and family in (0, socket.AF_INET):
                # The fast path: nothing to look up, nothing to parse again.
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (str(address), port))]
            infos = socket.getaddrinfo(
                bare, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
            )
            policy._judge_all(host, infos, purpose, by_name=False)
            return infos
        name = _name_or_refuse(host, purpose)
        try:
            infos = getaddrinfo_within(bare, port, family, socket.SOCK_STREAM, timeout=timeout)
        except UnicodeError as err:
            raise TargetRefused(f"refusing to send {purpose} to {host!r}: {err}") from None
        policy._judge_all(host, infos, purpose, by_name=policy.allows_name(name))
        return infos

    def _judge_all(self, host: str, infos: list[AddrInfo], purpose: str, by_name: bool) -> None:
        if not infos:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} resolved to no address")
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            why = self.refusal(address, by_name=by_name)
            if why:
                self._raise(host, address, purpose, why)


LOOPBACK = Policy()


def _name_or_refuse(host: str, purpose: str) -> str:
    try:
        name = normalize_name(host)
    except ValueError as err:
        raise TargetRefused(f"refusing to send {purpose} to {host[:200]!r}: {err}") from None
    if _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]):
        raise TargetRefused(
            f"refusing to send {purpose} to {host!r}: an IP address must be written in"
            " dotted form a.b.c.d (e.g. 127.0.0.1), not as one number, octal, hex or short"
        )
    return name


def dial(
    infos: Sequence[AddrInfo],
    timeout: float | None,
    source_address: tuple[str, int] | None = None,
    options: Iterable[tuple[int, int, int | bytes]] = (),
) -> socket.socket:
    """Connect to the first of the checked addresses ``infos`` that answers (as
    ``socket.create_connection`` would, without looking anything up again)."""
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            for option in options:
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as err:
            error = err
            sock.close()
    if error is None:
        raise OSError("no address to connect to")
    try:
        raise error
    finally:
        error = None


def is_loopback_literal(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``, without looking anything up."""
    address = literal_address(host)
    if address is not None:
        return all(form.is_loopback for form in _forms(address))
    return host.lower().rstrip(".") in LOOPBACK_NAMES


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is loopback: a loopback address, ``localhost``, or a name all of whose
    addresses are loopback."""
    address = literal_address(host)
    if address is not None:
        return all(form.is_loopback for form in _forms(address))
    try:
        if normalize_name(host) in LOOPBACK_NAMES:
            return True
        infos = getaddrinfo_within(host, None)
    except (OSError, UnicodeError, ValueError):
        return False
    return bool(infos) and all(
        form.is_loopback for i in infos for form in _forms(ipaddress.ip_address(i[4][0]))
    )


def ensure_loopback(url: str, purpose: str) -> None:
    """Raise ``TargetRefused`` unless the host of ``url`` is loopback (whatever the spec
    allows: for traffic that must never leave the machine, such as fuzzing)."""
    LOOPBACK.check_url(url, purpose)
