"""A minimal paymesh webhook receiver for merchants (Python standard library only).

    PAYMESH_WEBHOOK_SECRET=whsec_... python examples/verify_webhook.py --port 8000

Point the merchant's webhook URL at http(s)://<your host>:8000/ . Each request
is verified with services/notifier/verify.py (copy that file next to this one
in your own project), deduplicated by event id (deliveries are at least once),
and answered 2xx only once it has been handled: anything else is retried by
paymesh with backoff.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:  # inside the paymesh repository
    from services.notifier.verify import SIGNATURE_HEADER, WebhookVerificationError, verify
except ImportError:  # verify.py copied next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from verify import SIGNATURE_HEADER, WebhookVerificationError, verify  # type: ignore[no-redef]

MAX_BODY = 1024 * 1024


def make_server(
    secret: str, handle: Callable[[dict[str, Any]], None], host: str = "127.0.0.1", port: int = 8000
) -> ThreadingHTTPServer:
    """An HTTP server that verifies paymesh webhooks and passes each new event to `handle`."""
    seen: set[str] = set()  # use your database in production: processed event ids survive restarts

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._reply(413, "too large")
            body = self.rfile.read(length)  # the raw bytes: verify before parsing
            try:
                event = verify(body, self.headers.get(SIGNATURE_HEADER, ""), secret)
            except WebhookVerificationError as exc:
                return self._reply(400, f"rejected: {exc}")
            if event["id"] in seen:
                return self._reply(200, "duplicate, already handled")
            handle(event)
            seen.add(event["id"])
            self._reply(200, "ok")

        def _reply(self, status: int, text: str) -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    secret = os.environ.get("PAYMESH_WEBHOOK_SECRET", "")
    if not secret:
        print("set PAYMESH_WEBHOOK_SECRET to the merchant's webhook secret", file=sys.stderr)
        return 2

    def handle(event: dict[str, Any]) -> None:
        payment = event["data"]["payment"]
        print(
            json.dumps(
                {
                    "event": event["id"],
                    "type": event["type"],
                    "payment": payment.get("payment_id"),
                    "status": payment.get("status"),
                    "amount_confirmed": payment.get("amount_confirmed"),
                }
            )
        )

    server = make_server(secret, handle, args.host, args.port)
    print(f"listening on http://{args.host}:{server.server_address[1]}/", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
