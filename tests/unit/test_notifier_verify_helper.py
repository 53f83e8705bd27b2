"""The merchants' verification helper (services/notifier/verify.py, copied into
their projects, so standard library only) and the example receiver built on it.
(The notifier's layering is checked with every service's in test_layout.py.)"""

from __future__ import annotations

import ast
import importlib.util
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from services.notifier.domain.signing import signature_header

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_verify_helper_is_standard_library_only():
    allowed = {"__future__", "hashlib", "hmac", "json", "time", "typing"}
    assert _imports(ROOT / "services/notifier/verify.py") <= allowed


def _load_example():
    spec = importlib.util.spec_from_file_location("verify_webhook_example", ROOT / "examples/verify_webhook.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_example_receiver_verifies_and_deduplicates():
    example = _load_example()
    handled: list[dict] = []
    server = example.make_server("whsec_example", handled.append, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        body = b'{"id":"e-1","type":"payment.confirmed","data":{"payment":{"payment_id":"pay_1"}}}'
        good = {
            "Paymesh-Signature": signature_header("whsec_example", int(time.time()), body),
            "Content-Type": "application/json",
        }
        assert _post(url, body, good) == (200, "ok")
        assert _post(url, body, good) == (200, "duplicate, already handled")
        bad = {"Paymesh-Signature": signature_header("whsec_other", int(time.time()), body)}
        status, text = _post(url, body, bad)
        assert status == 400 and "does not match" in text
        stale = {"Paymesh-Signature": signature_header("whsec_example", int(time.time()) - 3600, body)}
        assert _post(url, body, stale)[0] == 400
        assert [e["id"] for e in handled] == ["e-1"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
