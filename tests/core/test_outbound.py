"""The outbound guard, against real sockets on loopback and a resolver we control."""

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.core import outbound
from app.core.outbound import OutboundPolicy, UnsafeUrl, guarded_client, resolve_safe

HTTP_OK = OutboundPolicy(allow_http=True)


class Receiver:
    """A tiny keep-alive HTTP/1.1 server that counts connections and records requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        self.response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        self.port = 0
        self.server_names: list[str | None] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                lines = head.split("\r\n")[1:]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (ln.split(":", 1) for ln in lines if ln)
                }
                self.requests.append(headers)
                await reader.readexactly(int(headers.get("content-length", "0")))
                writer.write(self.response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


async def _serve(receiver: Receiver, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=tls)
    receiver.port = server.sockets[0].getsockname()[1]
    return server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await _serve(receiver)
    yield receiver
    server.close()
    await server.wait_closed()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Hostname -> addresses, instead of real DNS (there is none here); edit it mid-test."""
    records: dict[str, list[str]] = {}

    async def fake_resolve(host: str, port: int) -> list[str]:
        if host not in records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(records[host])

    monkeypatch.setattr(outbound, "_resolve", fake_resolve)
    return records


# These go through the real getaddrinfo: IP literals and /etc/hosts need no network.
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "private address"),
        ("https://127.0.0.1/", "private address"),
        ("https://[::1]/", "private address"),
        ("https://10.0.0.1/", "private address"),
        ("https://172.16.5.4/", "private address"),
        ("https://192.168.1.1/", "private address"),
        ("https://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("https://[fd00:ec2::254]/", "cloud metadata"),
        ("https://100.100.100.200/", "cloud metadata"),
        ("https://[::ffff:127.0.0.1]/", "private address"),
        ("https://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("https://[2002:7f00:1::]/", "private address"),  # 6to4 around 127.0.0.1
        ("https://[64:ff9b::a00:1]/", "private address"),  # NAT64 around 10.0.0.1
        ("https://[fe80::1]/", "private address"),
        ("https://[fc00::1]/", "private address"),
        ("https://0.0.0.0/", "private address"),
        ("https://[::]/", "private address"),
        ("https://100.64.0.1/", "private address"),
        ("https://224.0.0.1/", "private address"),
        ("https://240.0.0.1/", "private address"),
        ("https://2130706433/", "private address"),  # 127.0.0.1 written as one number
        ("https://0x7f.1/", "private address"),
        ("https://localhost/", "private address"),
        ("https://LOCALHOST:8443/", "private address"),
        ("ftp://x/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("https://user:s3cret@example.com/", "credentials"),
        ("https:///path", "no host"),
        ("https://[zz::1]/", "not valid"),
        ("https://example.com:99999/", "port not allowed"),
        ("https://example.com:0/", "port not allowed"),
    ],
)
async def test_refuses_urls_that_reach_inside(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason) as caught:
        await resolve_safe(url, HTTP_OK)
    assert "s3cret" not in str(caught.value)


async def test_refuses_plain_http_unless_the_policy_allows_it(dns: dict[str, list[str]]) -> None:
    dns["good.example"] = ["93.184.216.34"]
    with pytest.raises(UnsafeUrl, match="only https"):
        await resolve_safe("http://good.example/hook", OutboundPolicy())
    target = await resolve_safe("http://good.example/hook", HTTP_OK)
    assert target.port == 80


async def test_judges_hostnames_by_what_they_resolve_to(dns: dict[str, list[str]]) -> None:
    dns["evil.example"] = ["127.0.0.1"]
    dns["mixed.example"] = ["93.184.216.34", "10.1.2.3"]
    dns["good.example"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    dns["nat64.example"] = ["64:ff9b::5db8:d822"]  # 93.184.216.34 seen from IPv6-only

    with pytest.raises(UnsafeUrl, match="private address"):
        await resolve_safe("https://evil.example/hook", OutboundPolicy())
    with pytest.raises(UnsafeUrl, match="private address"):
        await resolve_safe("https://mixed.example/hook", OutboundPolicy())
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await resolve_safe("https://nowhere.example/hook", OutboundPolicy())

    target = await resolve_safe("https://Good.Example/hook?x=1", OutboundPolicy())
    assert target == outbound.SafeTarget(
        url="https://good.example/hook?x=1",
        host="good.example",
        port=443,
        addresses=("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"),
    )
    assert (await resolve_safe("https://nat64.example/", OutboundPolicy())).addresses


async def test_allowed_hosts_are_explicit_exact_and_case_insensitive(
    dns: dict[str, list[str]],
) -> None:
    dns.update({h: ["127.0.0.1"] for h in ("rebind.example", "x.rebind.example", "meta.example")})
    dns["127.0.0.1"] = ["127.0.0.1"]
    dns["meta.example"] = ["169.254.169.254"]
    policy = OutboundPolicy(
        allow_http=True,
        allowed_hosts=frozenset(
            {"127.0.0.1", "Rebind.Example", "hooks.example:8443", "meta.example"}
        ),
    )
    dns["hooks.example"] = ["10.0.0.7"]

    assert (await resolve_safe("http://127.0.0.1:9000/", policy)).addresses == ("127.0.0.1",)
    assert (await resolve_safe("https://REBIND.example/", policy)).host == "rebind.example"
    assert (await resolve_safe("https://hooks.example:8443/", policy)).port == 8443
    with pytest.raises(UnsafeUrl, match="private address"):  # only that port was allowed
        await resolve_safe("https://hooks.example/", policy)
    with pytest.raises(UnsafeUrl, match="private address"):  # no suffix matching
        await resolve_safe("https://x.rebind.example/", policy)
    with pytest.raises(UnsafeUrl, match="cloud metadata"):  # never, even when allowed
        await resolve_safe("https://meta.example/", policy)


async def test_the_check_happens_again_when_connecting(
    dns: dict[str, list[str]], receiver: Receiver
) -> None:
    policy = OutboundPolicy(allow_http=True, allowed_hosts=frozenset({"rebind.example"}))
    dns["rebind.example"] = ["127.0.0.1"]
    async with guarded_client(policy) as client:
        response = await client.post(f"http://rebind.example:{receiver.port}/hook", json={})
        assert response.status_code == 200
        assert receiver.requests[-1]["host"] == f"rebind.example:{receiver.port}"
        assert receiver.requests[-1]["user-agent"] == "HomeworkAPI-Webhooks/1"

        # Validated while public, then rebound to loopback before the request goes out.
        dns["other.example"] = ["93.184.216.34"]
        await resolve_safe("http://other.example/", policy)
        dns["other.example"] = ["127.0.0.1"]
        hits = (receiver.connections, len(receiver.requests))
        with pytest.raises(UnsafeUrl, match="private address"):
            await client.post(f"http://other.example:{receiver.port}/hook", json={})
        assert (receiver.connections, len(receiver.requests)) == hits


async def test_connections_are_pooled_per_hostname_never_across(
    dns: dict[str, list[str]], receiver: Receiver
) -> None:
    # Two tenants behind one address (a CDN) must not share a connection: the TLS session
    # was checked for the other one's name, and CDNs refuse a Host that differs from SNI.
    dns["a.example"] = dns["b.example"] = ["127.0.0.1"]
    policy = OutboundPolicy(allow_http=True, allowed_hosts=frozenset({"a.example", "b.example"}))
    async with guarded_client(policy) as client:
        for host in ("a.example", "a.example", "b.example", "b.example"):
            assert (await client.get(f"http://{host}:{receiver.port}/")).status_code == 200
    assert receiver.connections == 2
    assert [r["host"].split(":")[0] for r in receiver.requests] == [
        "a.example",
        "a.example",
        "b.example",
        "b.example",
    ]


async def test_redirects_come_back_unfollowed(
    dns: dict[str, list[str]], receiver: Receiver
) -> None:
    dns["rebind.example"] = ["127.0.0.1"]
    receiver.response = (
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    policy = OutboundPolicy(allow_http=True, allowed_hosts=frozenset({"rebind.example"}))
    async with guarded_client(policy) as client:
        response = await client.post(f"http://rebind.example:{receiver.port}/hook", json={})
        assert response.status_code == 302
        assert response.headers["location"] == "http://169.254.169.254/latest/meta-data"
        assert response.next_request is not None  # httpx saw the redirect and left it alone
    assert len(receiver.requests) == 1


async def test_each_request_is_checked_not_only_the_client(
    dns: dict[str, list[str]], receiver: Receiver
) -> None:
    dns["rebind.example"] = ["127.0.0.1"]
    policy = OutboundPolicy(allowed_hosts=frozenset({"rebind.example"}))  # https only
    async with guarded_client(policy, headers={"User-Agent": "custom/2"}) as client:
        with pytest.raises(UnsafeUrl, match="only https"):
            await client.get(f"http://rebind.example:{receiver.port}/")
        with pytest.raises(UnsafeUrl, match="credentials"):
            await client.get(f"https://u:p@rebind.example:{receiver.port}/")
        assert client.headers["user-agent"] == "custom/2"
        assert client.follow_redirects is False
        assert client.timeout == httpx.Timeout(15.0)
    assert receiver.connections == 0


def test_guarded_client_refuses_options_that_bypass_the_guard() -> None:
    for option in ("transport", "mounts", "proxy", "follow_redirects"):
        bypass: dict[str, Any] = {option: None}
        with pytest.raises(TypeError, match=option):
            guarded_client(OutboundPolicy(), **bypass)


def _tls_contexts(tmp_path: Path, hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a certificate for hostname: (server context, client context)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Outbound test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    )
    return server, client


async def test_tls_is_checked_for_the_hostname_not_the_address(
    dns: dict[str, list[str]], tmp_path: Path
) -> None:
    server_tls, client_tls = _tls_contexts(tmp_path, "tls.example")
    receiver = Receiver()
    server_tls.sni_callback = lambda sock, name, ctx: receiver.server_names.append(name)
    server = await _serve(receiver, tls=server_tls)
    dns["tls.example"] = dns["wrong.example"] = ["127.0.0.1"]
    policy = OutboundPolicy(allowed_hosts=frozenset({"tls.example", "wrong.example"}))
    try:
        async with guarded_client(policy, verify=client_tls) as client:
            response = await client.get(f"https://tls.example:{receiver.port}/")
            assert response.status_code == 200
            assert receiver.server_names == ["tls.example"]
            assert receiver.requests[-1]["host"] == f"tls.example:{receiver.port}"
            # Same address, a name the certificate does not cover: refused by TLS.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://wrong.example:{receiver.port}/")
        assert len(receiver.requests) == 1
    finally:
        server.close()
        await server.wait_closed()
