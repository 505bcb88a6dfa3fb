"""Outbound HTTP to URLs that tenants give us (webhook endpoints, their JWKS URL).

Such a URL is called from inside our network, so a hostile tenant could aim it at loopback,
the private network or the cloud metadata service, directly or through a hostname that
resolves there, possibly only after we validated it (DNS rebinding). The guard therefore runs
where the socket is opened: the connection pool's network backend resolves the hostname,
checks every address and connects to a checked address. Connecting by hostname (not by a URL
rewritten to an IP) keeps TLS SNI and certificate checks on the hostname and keeps pooled
connections per hostname, so two tenants behind one CDN address never share a connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Verify = ssl.SSLContext | bool
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Refused even for allowed_hosts: no receiver is ever one of these, and an allowed on-premise
# name whose DNS is taken over must not become a way to read cloud credentials.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure host platform; a public-looking address
        "192.0.0.192",  # Oracle Cloud
    )
)
# Not covered by `is_global` in every Python patch release.
_ALSO_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # shared address space (carrier-grade NAT)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64: the IPv4 inside is unknowable
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """The URL may not be called from our network. The message names the reason only."""


@dataclass(frozen=True)
class OutboundPolicy:
    allow_http: bool = False
    # Hostnames or IP literals, optionally "host:port" ("[::1]:8080" for IPv6), that may
    # resolve to non-public addresses: tests and on-premise receivers, set by operators.
    allowed_hosts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SafeTarget:
    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


async def _resolve(host: str, port: int) -> list[str]:
    """All addresses of host. The one place that does DNS, so tests can replace it."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv6 form carries, which is where packets really go."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        # An IPv6-only network reaches public IPv4 hosts through these, so judge the inside.
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _unwrapped(ip: _IPAddress) -> _IPAddress:
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    return ip if inner is None else inner


def _is_blocked(ip: _IPAddress) -> bool:
    ip = _unwrapped(ip)
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast  # is_global is true for most multicast
        or ip.is_unspecified
        or ip.is_reserved
        or any(ip in net for net in _ALSO_BLOCKED)
    )


def _is_allowed_host(host: str, port: int, policy: OutboundPolicy) -> bool:
    host = host.lower()
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    allowed = {entry.lower() for entry in policy.allowed_hosts}
    return host in allowed or hostport in allowed


def _check_url(url: httpx.URL, policy: OutboundPolicy) -> tuple[str, int]:
    """Everything that can be refused without DNS; returns (host, port)."""
    if url.scheme not in _DEFAULT_PORTS:
        raise UnsafeUrl("only http and https URLs are allowed")
    if url.scheme == "http" and not policy.allow_http:
        raise UnsafeUrl("only https URLs are allowed")
    if url.userinfo:
        raise UnsafeUrl("the URL has credentials in it")
    # raw_host is the IDNA (ASCII) form DNS needs, and IPv6 without brackets.
    host = url.raw_host.decode("ascii")
    if not host:
        raise UnsafeUrl("the URL has no host")
    port = _DEFAULT_PORTS[url.scheme] if url.port is None else url.port
    if not 0 < port < 65536:  # httpx.URL accepts any number
        raise UnsafeUrl("port not allowed")
    return host, port


async def _safe_addresses(host: str, port: int, policy: OutboundPolicy) -> tuple[str, ...]:
    try:
        resolved = await _resolve(host, port)
    except (OSError, UnicodeError):
        raise UnsafeUrl("the host does not resolve") from None
    if not resolved:
        raise UnsafeUrl("the host does not resolve")
    allowed = _is_allowed_host(host, port, policy)
    for address in resolved:
        ip = ipaddress.ip_address(address)
        if ip in _METADATA or _unwrapped(ip) in _METADATA:
            raise UnsafeUrl("the host resolves to a cloud metadata address")
        # ANY bad address refuses the host: we cannot know which one a connect would pick.
        if not allowed and _is_blocked(ip):
            raise UnsafeUrl("the host resolves to a private address")
    return tuple(dict.fromkeys(resolved))


async def resolve_safe(url: str, policy: OutboundPolicy) -> SafeTarget:
    """Validate url and its addresses now (e.g. when a tenant saves it). Raises UnsafeUrl.

    Passing here does not make a later request safe, DNS can change: send through
    guarded_client(), which checks again when it connects.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise UnsafeUrl("the URL is not valid") from None
    host, port = _check_url(parsed, policy)
    addresses = await _safe_addresses(host, port, policy)
    return SafeTarget(url=str(parsed), host=host, port=port, addresses=addresses)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens a TCP connection only to an address that passed the policy just now."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            # A hanging resolver must not outlast the caller's connect timeout.
            async with asyncio.timeout(timeout):
                addresses = await _safe_addresses(host, port, self._policy)
        except TimeoutError:
            raise httpcore.ConnectTimeout("the host did not resolve in time") from None
        failure: Exception | None = None
        for address in addresses:  # the resolver's order, falling back like a browser would
            try:
                return await self._network.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # _safe_addresses never returns an empty tuple
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that refuses unsafe URLs per request and unsafe addresses per
    connection (raising UnsafeUrl), and never follows redirects."""

    def __init__(self, policy: OutboundPolicy, *, verify: _Verify = True) -> None:
        self._policy = policy
        ssl_context = httpx.create_ssl_context(verify=verify)  # built once: loading CAs is slow
        self._inner = httpx.AsyncHTTPTransport(verify=ssl_context)
        # httpx has no public way to give its pool a network backend, so swap in the same
        # pool it builds (ssl context, default limits) with ours. Fail loudly, never open,
        # if a later httpx stops keeping the pool there.
        if not isinstance(getattr(self._inner, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("this httpx version keeps its connection pool elsewhere")
        self._inner._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,  # httpx's default limits
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _check_url(request.url, self._policy)
        # httpcore never follows redirects; a 3xx goes back to the caller as it is.
        return await self._inner.handle_async_request(request)

    async def __aenter__(self) -> GuardedTransport:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        await self._inner.aclose()


def guarded_client(
    policy: OutboundPolicy,
    *,
    timeout: float = 15.0,
    verify: _Verify = True,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An AsyncClient for tenant-given URLs: guarded, no redirects, a bounded timeout.

    verify goes to the transport (AsyncClient ignores its own once a transport is given),
    e.g. an SSLContext trusting an on-premise CA. Raises TypeError for options that would
    route requests around the guard.
    """
    for option in ("transport", "mounts", "proxy", "follow_redirects"):
        if option in kwargs:
            raise TypeError(f"guarded_client() does not accept {option!r}")
    headers = httpx.Headers({"User-Agent": "HomeworkAPI-Webhooks/1"})
    headers.update(kwargs.pop("headers", None) or {})
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, verify=verify),
        follow_redirects=False,
        timeout=timeout,
        headers=headers,
        **kwargs,
    )


class _GuardedResolver(AbstractResolver):
    """aiohttp's resolver, under the same policy: the connector connects only to addresses
    that passed it just now (its DNS cache is off, so every new connection asks again)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await _safe_addresses(host, port, self._policy)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


class GuardedPoster:
    """POSTs to tenant-given URLs for the webhook dispatcher, under the same guard as
    guarded_client() (URL checked per request, addresses per connection, no redirects, no
    proxies from the environment), over aiohttp: a seventh of httpx's CPU per request, which
    one worker process's thousand deliveries a second needs. Made on first use, inside the
    event loop that uses it."""

    def __init__(self, policy: OutboundPolicy, *, limit: int = 100, verify: _Verify = True):
        self._policy = policy
        self._limit = limit
        self._verify = verify
        self._session: aiohttp.ClientSession | None = None
        self._checked: set[str] = set()

    def post(
        self, url: str, *, body: bytes, headers: dict[str, str]
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        if url not in self._checked:  # the check needs no DNS: its verdict holds for the URL
            try:
                _check_url(httpx.URL(url), self._policy)
            except httpx.InvalidURL:
                raise UnsafeUrl("the URL is not valid") from None
            if len(self._checked) >= 10_000:
                self._checked.clear()
            self._checked.add(url)
        return self._opened().post(url, data=body, headers=headers, allow_redirects=False)

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            ssl_context = httpx.create_ssl_context(verify=self._verify)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=_GuardedResolver(self._policy),
                    use_dns_cache=False,
                    limit=self._limit,
                    ssl=ssl_context,
                ),
                headers={"User-Agent": "HomeworkAPI-Webhooks/1"},
                skip_auto_headers=("Accept-Encoding",),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
