"""The checkout's public HTTP routes (Starlette). Every page is rendered on the
server from the ledger's CheckoutView with autoescaping templates, sent with a strict
Content-Security-Policy (scripts, styles and images only from this origin; nothing
from anyone else), no referrer (the token is in the URL) and no caching.

    GET /pay/{token}[?option=N]       the payment page (works without JavaScript)
    GET /pay/{token}/live[?option=N]  its live part, as server-sent events
    GET /link/{token}                 a payment link's page (sets the visitor cookie)
    POST /link/{token}                start this visitor's payment (one per visitor and
                                      amount), then 303 to its /pay page; rate-limited
    GET /healthz, /readyz             liveness, and whether the ledger answers
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from paymesh.ledger.v1 import checkout_ledger_service_pb2 as cpb
from paymesh.ledger.v1 import payment_pb2 as pb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.checkout.adapters.ledger_client import CheckoutLedger
from services.checkout.domain.amounts import format_units
from services.checkout.domain.i18n import choose_language, text
from services.checkout.domain.rate_limit import WindowLimit
from services.checkout.metrics import LIVE_STREAMS, PAGES
from services.checkout.page import build_page, current_option
from services.common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, Unavailable

log = structlog.get_logger("checkout.web")
HERE = Path(__file__).parent
TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
MAX_OPTION_DIGITS = 3
VISITOR_COOKIE = "pm_visitor"
VISITOR = re.compile(r"[A-Za-z0-9_-]{32}")
MAX_FORM_BYTES = 1024
MAX_AMOUNT_CHARS = 32
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class CheckoutWeb:
    def __init__(
        self,
        ledger: CheckoutLedger,
        networks: dict[int, str],
        *,
        refresh_seconds: int,
        keepalive_seconds: float,
        requote_per_minute: int,
        ready: Callable[[], Awaitable[bool]],
        link_per_client: int = 10,
        link_per_link: int = 600,
    ) -> None:
        self._ledger = ledger
        self._networks = networks
        self._refresh = refresh_seconds
        self._keepalive = keepalive_seconds
        self._requotes = WindowLimit(requote_per_minute, 60.0)
        self._link_clients = WindowLimit(link_per_client, 60.0)
        self._link_links = WindowLimit(link_per_link, 60.0)
        self._claims = WindowLimit(10, 60.0)  # tries per refund claim and minute
        self._ready = ready
        self._templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            enable_async=False,
            auto_reload=False,  # templates ship with the code: no stat() per render
        )
        self.app = Starlette(
            routes=[
                Route("/pay/{token}", self.page),
                Route("/pay/{token}/live", self.live),
                Route("/link/{token}", self.link, methods=["GET"]),
                Route("/link/{token}", self.start_link_payment, methods=["POST"]),
                Route("/refund/{token}", self.refund, methods=["GET"]),
                Route("/refund/{token}", self.claim_refund, methods=["POST"]),
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ],
            exception_handlers={404: self._not_found_handler, 405: self._not_found_handler},
        )
        self.app.add_middleware(_SecurityHeaders)

    # ------------------------------------------------------------ pages

    async def page(self, request: Request) -> Response:
        language = _language(request)
        token = request.path_params["token"]
        option = _option(request)
        if not TOKEN.fullmatch(token) or option is False:
            return self._not_found(language)
        try:
            view = await self._ledger.get(token)
            requoted = False
            if self._expired_quote(view, option):
                wait = self._requotes.take(request.client.host if request.client else "", time.monotonic())
                if wait:
                    return self._message(language, 429, "unavailable", headers={"Retry-After": str(wait)})
                try:
                    view, requoted = await self._ledger.requote(token)
                except (FailedPrecondition, Unavailable) as err:
                    # A rate missing now, or funds arrived meanwhile: show the payment as it is
                    # (funds are credited at its locked quote, flagged if late), never a dead end.
                    log.info("re-quote not possible now", error=err.message)
                    view = await self._ledger.get(token)
        except NotFound:
            return self._not_found(language)
        except DomainError as err:
            log.warning("ledger unavailable for a page", error=err.message)
            return self._unavailable(language)
        page = build_page(view, language=language, asked=option, networks=self._networks)
        PAGES.labels(page.status).inc()
        live_url = f"/pay/{token}/live" + (f"?option={page.current}" if page.current >= 0 else "")
        html = self._render(
            "page.html", language, page=page, requoted=requoted, live_url=live_url, refresh_seconds=self._refresh
        )
        return HTMLResponse(html)

    async def live(self, request: Request) -> Response:
        language = _language(request)
        token = request.path_params["token"]
        option = _option(request)
        if not TOKEN.fullmatch(token) or option is False:
            return self._not_found(language)
        try:
            await self._ledger.get(token)  # a 404 now, not an event stream that ends at once
        except NotFound:
            return self._not_found(language)
        except DomainError:
            return self._unavailable(language)
        return StreamingResponse(
            self._events(token, option, language),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    async def _events(self, token: str, option: int | None, language: str) -> AsyncIterator[str]:
        """The live part now and after each change, a keep-alive comment when idle,
        `end` at a final status."""
        queue: asyncio.Queue[cpb.CheckoutView | None] = asyncio.Queue(maxsize=64)

        async def read() -> None:
            try:
                async for view in self._ledger.watch(token):
                    await queue.put(view)
            except DomainError as err:
                log.info("live stream ended by the ledger", error=err.message)
            finally:
                await queue.put(None)

        reader = asyncio.create_task(read())
        LIVE_STREAMS.inc()
        last: tuple[int, int] | None = None
        try:
            while True:
                try:
                    view = await asyncio.wait_for(queue.get(), timeout=self._keepalive)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if view is None:
                    yield "event: end\ndata: \n\n"
                    return
                # The first view is sent too: the payment may have changed between the page's
                # render and this stream's start (a skipped "unchanged" view lost an expiry).
                if (view.version, view.confirmations) == last:
                    continue
                last = (view.version, view.confirmations)
                page = build_page(view, language=language, asked=option, networks=self._networks)
                html = self._render("live.html", language, page=page)
                yield "event: update\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
                if page.final:
                    yield "event: end\ndata: \n\n"
                    return
        finally:
            LIVE_STREAMS.dec()
            reader.cancel()

    @staticmethod
    def _expired_quote(view: cpb.CheckoutView, option: int | None) -> bool:
        """A pending priced payment whose shown option's lock window has passed is
        re-quoted when the customer opens the page (never silently in the background)."""
        if view.status != pb.PAYMENT_STATUS_PENDING or not view.options:
            return False
        index = current_option(view, option)
        shown = view.options[index if index is not None else 0]
        return shown.HasField("quote") and shown.quote.expires_at.ToDatetime() <= _utcnow_naive()

    # ------------------------------------------------------------ payment links

    async def link(self, request: Request) -> Response:
        language = _language(request)
        token = request.path_params["token"]
        if not TOKEN.fullmatch(token):
            return self._not_found(language)
        try:
            view = await self._ledger.link(token)
        except NotFound:
            return self._not_found(language)
        except DomainError:
            return self._unavailable(language)
        response = self._link_page(language, token, view)
        if not VISITOR.fullmatch(request.cookies.get(VISITOR_COOKIE, "")):
            response.set_cookie(
                VISITOR_COOKIE,
                secrets.token_urlsafe(24),
                max_age=30 * 86400,
                path="/link",
                httponly=True,
                # Lax: the cookie comes along when the customer arrives from the merchant's
                # site or an email (Strict would make every such arrival a new visitor),
                # and still not on a POST from another site.
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response

    async def start_link_payment(self, request: Request) -> Response:
        """One payment per visitor (the cookie set by the link's page) and amount; a
        resubmitted form gets the same payment. Limited per client address and per link."""
        language = _language(request)
        token = request.path_params["token"]
        if not TOKEN.fullmatch(token):
            return self._not_found(language)
        now = time.monotonic()
        client = request.client.host if request.client else ""
        wait = self._link_clients.take(client, now) or self._link_links.take(token, now)
        if wait:
            return self._message(language, 429, "too_many", headers={"Retry-After": str(wait)})
        form = await _small_form(request)
        if form is None or set(form) - {"amount"} or any(len(v) != 1 for v in form.values()):
            return self._message(language, 400, "bad_form")
        amount = form.get("amount", [""])[0]
        if len(amount) > MAX_AMOUNT_CHARS:
            return self._message(language, 400, "bad_form")
        visitor = request.cookies.get(VISITOR_COOKIE, "")
        if not VISITOR.fullmatch(visitor):
            return self._message(language, 400, "cookies")
        try:
            checkout_token = await self._ledger.open_link(token, visitor, amount)
        except NotFound:
            return self._not_found(language)
        except (InvalidArgument, FailedPrecondition) as err:
            try:
                view = await self._ledger.link(token)
            except DomainError:
                return self._unavailable(language)
            status = 400 if isinstance(err, InvalidArgument) else 409
            return self._link_page(
                language, token, view, error=err.peer_message or err.message, amount=amount, status=status
            )
        except DomainError as err:
            log.warning("ledger unavailable for a payment link", error=err.message)
            return self._unavailable(language)
        return RedirectResponse(f"/pay/{checkout_token}", status_code=303)

    def _link_page(
        self, language: str, token: str, view: cpb.LinkView, *, error: str = "", amount: str = "", status: int = 200
    ) -> Response:
        html = self._render("link.html", language, link=view, action=f"/link/{token}", error=error, amount=amount)
        return HTMLResponse(html, status_code=status)

    # ------------------------------------------------------------ refund claims

    async def refund(self, request: Request) -> Response:
        language = _language(request)
        token = request.path_params["token"]
        if not TOKEN.fullmatch(token):
            return self._not_found(language)
        try:
            claim = await self._ledger.refund_claim(token)
        except NotFound:
            return self._not_found(language)
        except DomainError:
            return self._unavailable(language)
        return self._refund_page(language, token, claim)

    async def claim_refund(self, request: Request) -> Response:
        """The customer's address, entered twice. Limited per client address and per
        claim (a claim is one form: a few tries are plenty)."""
        language = _language(request)
        token = request.path_params["token"]
        if not TOKEN.fullmatch(token):
            return self._not_found(language)
        now = time.monotonic()
        client = request.client.host if request.client else ""
        wait = self._link_clients.take(client, now) or self._claims.take(token, now)
        if wait:
            return self._message(language, 429, "refund_too_many", headers={"Retry-After": str(wait)})
        form = await _small_form(request)
        fields = {"destination", "destination_again"}
        if form is None or set(form) != fields or any(len(v) != 1 or len(v[0]) > 64 for v in form.values()):
            return self._message(language, 400, "bad_form")
        destination, again = form["destination"][0].strip(), form["destination_again"][0].strip()
        try:
            await self._ledger.submit_refund_claim(token, destination, again)
        except NotFound:
            return self._not_found(language)
        except (InvalidArgument, FailedPrecondition) as err:
            try:
                claim = await self._ledger.refund_claim(token)
            except DomainError:
                return self._unavailable(language)
            status = 400 if isinstance(err, InvalidArgument) else 409
            return self._refund_page(
                language, token, claim, error=err.peer_message or err.message, destination=destination, status=status
            )
        except DomainError as err:
            log.warning("ledger unavailable for a refund claim", error=err.message)
            return self._unavailable(language)
        return RedirectResponse(f"/refund/{token}", status_code=303)

    def _refund_page(
        self,
        language: str,
        token: str,
        claim: cpb.RefundClaimView,
        *,
        error: str = "",
        destination: str = "",
        status: int = 200,
    ) -> Response:
        html = self._render(
            "refund.html",
            language,
            claim=claim,
            amount=format_units(int(claim.amount), claim.decimals),
            action=f"/refund/{token}",
            error=error,
            destination=destination,
        )
        return HTMLResponse(html, status_code=status)

    # ------------------------------------------------------------ health

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self, request: Request) -> Response:
        ok = await self._ready()
        return PlainTextResponse("ok" if ok else "ledger unavailable", status_code=200 if ok else 503)

    # ------------------------------------------------------------ rendering

    def _render(self, name: str, language: str, **values: object) -> str:
        def t(key: str, **fields: object) -> str:
            return text(language, key, **fields)

        return self._templates.get_template(name).render(language=language, t=t, **values)

    def _message(self, language: str, status: int, key: str, headers: dict[str, str] | None = None) -> Response:
        heading = text(language, "not_found_title") if status == 404 else "paymesh"
        html = self._render("message.html", language, heading=heading, message=text(language, key))
        return HTMLResponse(html, status_code=status, headers=headers)

    def _unavailable(self, language: str) -> Response:
        """The ledger could not answer: try again in a moment."""
        return self._message(language, 503, "unavailable", headers={"Retry-After": "5"})

    def _not_found(self, language: str) -> Response:
        """The same page for every unknown, malformed or foreign token: nothing says whether a payment exists."""
        return self._message(language, 404, "not_found")

    async def _not_found_handler(self, request: Request, exc: Exception) -> Response:
        return self._not_found(_language(request))


def _language(request: Request) -> str:
    return choose_language(request.headers.get("accept-language", ""))


async def _small_form(request: Request) -> dict[str, list[str]] | None:
    """An urlencoded form of at most MAX_FORM_BYTES, or None (too big, another
    content type, not UTF-8, not a form)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return None


def _option(request: Request) -> int | None | bool:
    """?option=N: None when absent, False when malformed (the page is then a 404)."""
    raw = request.query_params.get("option")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > MAX_OPTION_DIGITS or not raw.isascii():
        return False
    return int(raw)


def _utcnow_naive() -> datetime:
    """Now in UTC without a zone, as protobuf Timestamp.ToDatetime() gives times."""
    return datetime.now(UTC).replace(tzinfo=None)


class _SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (pages, streams, static files, errors)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
