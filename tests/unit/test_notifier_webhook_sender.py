"""The webhook sender (adapters/webhook_sender.py) on loopback: TLS keeps the
merchant's host name (SNI, certificate check, Host header) while the socket
goes to the checked address; the SSRF guard judges every resolved address,
whatever the name."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import httpcore
import pytest

from services.notifier.adapters.webhook_sender import BlockedAddress, GuardedBackend, WebhookSender
from services.notifier.domain.records import FailureKind

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def sender(**kw) -> WebhookSender:
    kw.setdefault("allow_private", True)
    return WebhookSender(
        request_timeout=5,
        connect_timeout=2,
        connections_per_endpoint=2,
        max_response_bytes=1024,
        user_agent="test",
        **kw,
    )


async def test_tls_uses_the_host_name_while_connecting_to_the_checked_address(localhost_cert):
    cert, key = localhost_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    seen: dict[str, object] = {}

    def on_sni(sock, name, ctx):
        seen["sni"] = name

    server_ctx.sni_callback = on_sni

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen["peer"] = writer.get_extra_info("peername")[0]
        seen["host"] = next(
            line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n") if line.lower().startswith(b"host:")
        )
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    s = sender(ssl_context=client_ctx)
    try:
        result = await s.send(f"https://localhost:{port}/hook", b"{}", {"Paymesh-Event-Id": "e"}, key="m")
        assert result.ok and result.status_code == 204, result
        assert seen == {"sni": "localhost", "peer": "127.0.0.1", "host": f"localhost:{port}"}

        # The certificate is really checked: it does not name 127.0.0.1.
        bad = await s.send(f"https://127.0.0.1:{port}/hook", b"{}", {}, key="m2")
        assert bad.failure is FailureKind.NETWORK and "certificate" in bad.error.lower(), bad
    finally:
        await s.aclose()
        server.close()


class FakeInner:
    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # noqa: ASYNC109
        self.connected.append((host, port))
        raise httpcore.ConnectError("fake: no network in unit tests")


def guarded(answers: list[str], allow_private: bool = False) -> tuple[GuardedBackend, FakeInner]:
    backend = GuardedBackend(allow_private=allow_private, resolve_timeout=1)
    inner = FakeInner()
    backend._inner = inner  # type: ignore[assignment]

    async def resolve(host: str, port: int) -> list[str]:
        return answers

    backend._resolve = resolve  # type: ignore[method-assign]
    return backend, inner


async def test_a_public_name_resolving_to_a_private_address_is_refused():
    backend, inner = guarded(["10.0.0.5"])
    with pytest.raises(BlockedAddress, match=r"hooks\.example\.com resolves to 10\.0\.0\.5 \(private\)"):
        await backend.connect_tcp("hooks.example.com", 443)
    assert inner.connected == []  # never dialled


async def test_only_checked_addresses_are_dialled():
    backend, inner = guarded(["127.0.0.1", "93.184.216.34", "169.254.169.254", "2606:4700::1"])
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("hooks.example.com", 443)
    assert inner.connected == [("93.184.216.34", 443), ("2606:4700::1", 443)]

    backend, inner = guarded(["169.254.169.254"], allow_private=True)
    with pytest.raises(BlockedAddress, match="metadata"):
        await backend.connect_tcp("metadata.internal", 80)
    assert inner.connected == []
