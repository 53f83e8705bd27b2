"""What one checkout page shows, built from the ledger's CheckoutView: which option
the customer pays, how much is still to send, the status in the customer's words.
The templates only lay this out (and escape every value)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import segno
from paymesh.ledger.v1 import checkout_ledger_service_pb2 as cpb
from paymesh.ledger.v1 import payment_pb2 as pb

from services.checkout.domain.amounts import format_units
from services.checkout.domain.i18n import text
from services.checkout.domain.payment_uri import payment_uri

STATUS_KEYS = {
    pb.PAYMENT_STATUS_PENDING: "pending",
    pb.PAYMENT_STATUS_DETECTED: "detected",
    pb.PAYMENT_STATUS_CONFIRMED: "confirmed",
    pb.PAYMENT_STATUS_UNDERPAID: "underpaid",
    pb.PAYMENT_STATUS_OVERPAID: "overpaid",
    pb.PAYMENT_STATUS_EXPIRED: "expired",
    pb.PAYMENT_STATUS_CANCELLED: "cancelled",
    pb.PAYMENT_STATUS_PAID_AFTER_EXPIRY: "paid_after_expiry",
    pb.PAYMENT_STATUS_SWEPT: "swept",
}
# Statuses in which the customer is asked to send (the rest show the outcome only).
ASKING = {"pending", "underpaid"}
PAID = {"confirmed", "overpaid", "swept", "paid_after_expiry"}
# A page that stays open ends its live updates at these.
FINAL = {"confirmed", "overpaid", "swept", "paid_after_expiry", "expired", "cancelled"}


@dataclass
class Choice:
    index: int
    asset: str
    network: str
    chain_id: int
    amount: str  # the option's amount due, as a decimal of the asset
    current: bool


@dataclass
class Page:
    language: str
    merchant: str
    order_id: str
    description: str
    price: str  # "19.99 USD", or "" for a payment in base units
    status: str  # a STATUS_KEYS value
    status_text: str
    asking: bool  # show what to send (address, amount, QR)
    paid: bool
    final: bool
    expires_at: str  # ISO 8601, UTC
    return_url: str
    version: int
    choosing: bool  # several options and none chosen yet: the customer picks first
    choices: list[Choice] = field(default_factory=list)
    asset: str = ""
    network: str = ""
    chain_id: int = 0
    amount: str = ""  # what to send now, as a decimal of the asset
    address: str = ""
    uri: str = ""  # EIP-681
    qr_svg: str = ""  # the URI as an SVG QR code (made here, from digits and an address)
    current: int = -1  # the option shown


def current_option(view: cpb.CheckoutView, asked: int | None) -> int | None:
    """The option to show: the one asked for (?option=), else the one the payment's
    funds went to, else the only one; None: the customer chooses first."""
    if asked is not None and 0 <= asked < len(view.options):
        return asked
    for i, o in enumerate(view.options):
        if o.selected and o.status != pb.PAYMENT_OPTION_STATUS_AWAITING:
            return i
    return 0 if len(view.options) == 1 else None


def build_page(view: cpb.CheckoutView, *, language: str, asked: int | None, networks: dict[int, str]) -> Page:
    status = STATUS_KEYS.get(view.status, "pending")
    index = current_option(view, asked)
    page = Page(
        language=language,
        merchant=view.merchant_name,
        order_id=view.merchant_order_id,
        description=view.description,
        price=f"{view.price.amount} {view.price.currency}" if view.HasField("price") else "",
        status=status,
        status_text="",
        asking=status in ASKING and not view.expired,
        paid=status in PAID,
        final=status in FINAL,
        expires_at=view.expires_at.ToDatetime().isoformat() + "Z",
        return_url=view.return_url,
        version=view.version,
        choosing=index is None and status in ASKING and not view.expired,
    )
    page.choices = [
        Choice(
            index=i,
            asset=o.asset,
            network=networks.get(o.chain_id, f"chain {o.chain_id}"),
            chain_id=o.chain_id,
            amount=format_units(int(o.amount_due), o.decimals),
            current=i == index,
        )
        for i, o in enumerate(view.options)
    ]
    remaining = 0
    if index is not None:
        o = view.options[index]
        page.current = index
        page.asset, page.chain_id = o.asset, o.chain_id
        page.network = networks.get(o.chain_id, f"chain {o.chain_id}")
        remaining = max(0, int(o.amount_due) - int(o.amount_received))
        page.amount = format_units(remaining, o.decimals)
        page.address = view.deposit_address
        if page.asking and remaining > 0:
            page.uri = payment_uri(
                chain_id=o.chain_id,
                deposit_address=view.deposit_address,
                amount=remaining,
                token_address=o.token_address or None,
            )
            page.qr_svg = qr_svg(page.uri)
    page.status_text = status_text(page, view, language)
    return page


def status_text(page: Page, view: cpb.CheckoutView, language: str) -> str:
    if page.status == "detected":
        if view.confirmations_required:
            return text(
                language,
                "status_detected",
                confirmations=view.confirmations,
                required=view.confirmations_required,
            )
        return text(language, "status_detected_plain")
    if page.status == "underpaid":
        if view.expired:
            return text(language, "status_underpaid_expired")
        return text(language, "status_underpaid", remaining=page.amount or "?", asset=page.asset)
    return text(language, f"status_{page.status}")


# Making a QR code costs ~4.5 ms of CPU (segno's mask selection, pure Python), about
# everything a page costs; a page is rendered again on every reload and live update
# with the same URI, so the last 1,024 are kept (~8 KiB each). bench/bench_checkout.py.
@lru_cache(maxsize=1024)
def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code: black modules on white, no style attributes
    (the page's Content-Security-Policy allows no inline styles), sized by the page's CSS."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff", omitsize=True)
