"""Where http blocks and agent http tools may connect (CONTRACT §11).

`NetPolicy.refusal(address, port)` judges one numeric address; http_request
resolves names itself, asks about every address a name gave and every
redirect target, and connects only to an address it asked about.

Always refused: link-local and cloud metadata addresses, and this server's
own listening address and port. `deny` adds networks; `allow` overrides
both. An address is compared in one normal form: IPv6 scope dropped,
IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address.
"""

import ipaddress
import socket

METADATA = tuple(ipaddress.ip_network(n) for n in
                 ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"))


def cidrs(raw) -> tuple:
    """Networks from a comma- or space-separated list ('10.0.0.0/8, ::1'). ValueError names a bad one."""
    if isinstance(raw, (tuple, list)):
        items = raw
    else:
        items = (raw or "").replace(",", " ").split()
    nets = []
    for item in items:
        try:
            nets.append(item if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network))
                        else ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP network (CIDR such as 10.0.0.0/8)") from None
    return tuple(nets)


def normal(address):
    """An ip_address in the form we compare: no IPv6 scope, IPv4-mapped as IPv4."""
    if not isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address = ipaddress.ip_address(str(address).split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def listen_addresses(host, port):
    """The (address, port) pairs `bind_sockets(port, host)` would listen on."""
    if not port:
        return ()
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return ()
    return tuple((info[4][0], info[4][1]) for info in infos)


def _is_local(address):
    """Is `address` one of this host's own (so a wildcard listener answers on it)?"""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))   # only an address of this host can be bound
        return True
    except OSError:
        return False


class NetPolicy:
    """Immutable: the allow and deny networks and the server's own listening addresses."""

    def __init__(self, allow=(), deny=(), own=()):
        self.allow = cidrs(allow)
        self.deny = cidrs(deny)
        self.own = tuple((normal(a), int(p)) for a, p in own)

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.http_allow, settings.http_deny,
                   listen_addresses(settings.host, settings.port))

    def listening_on(self, own):
        """The same policy for a server listening on `own`: (address, port) pairs."""
        return NetPolicy(self.allow, self.deny, own)

    def refusal(self, address, port):
        """Why connecting to `address`:`port` is refused (a sentence naming it), or None."""
        ip = normal(address)
        shown = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
        if any(ip in net for net in self.allow if net.version == ip.version):
            return None
        if any(ip in net for net in METADATA if net.version == ip.version):
            return f"{shown} is a link-local or cloud metadata address"
        if self._is_own(ip, port):
            return f"{shown} is this server itself"
        for net in self.deny:
            if net.version == ip.version and ip in net:
                return f"{shown} is in ACTORFLOW_HTTP_DENY ({net})"
        return None

    def _is_own(self, ip, port):
        for own, own_port in self.own:
            if port != own_port:
                continue
            if own.is_unspecified:              # 0.0.0.0 or ::, any address of this host
                if _is_local(ip):
                    return True
            elif own.is_loopback:               # 127.x, ::1, 0.0.0.0 all reach it
                if ip.is_loopback or ip.is_unspecified:
                    return True
            elif ip == own or ip.is_unspecified:
                return True
        return False
