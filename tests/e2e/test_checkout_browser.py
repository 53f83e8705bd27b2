"""The checkout pages in a real headless Chromium (tests/support/browser.py) against
the whole mesh as separate processes (ledger, listener, sweeper, notifier,
checkout) on anvil: payments are paid for real from anvil dev accounts and the
listener finds them, as in production. Every wait is bounded; nothing asserts a
duration. Screenshots of the main states go to docs/img/ (shown in the README)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import grpc
import httpx
import pytest
import pytest_asyncio
from eth_utils import to_checksum_address as to_checksum
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_link_service_pb2 as lpb
from paymesh.ledger.v1 import payment_link_service_pb2_grpc as lgrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc
from playwright.async_api import async_playwright

from tests.e2e.conftest import local_mesh
from tests.support.browser import LAUNCH_ARGS, chromium_path
from tests.support.chain import Chain
from tests.support.ledger import create_merchant, eventually, fresh_xpub
from tools.pay import TOKEN_ADDRESS

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(300)]

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
XSS_NAME = '<script>alert("name")</script><img src=x onerror=alert(1)>'
XSS_DESCRIPTION = '"><svg onload=alert(2)><b>bold?</b>'
REFRESH = 3  # seconds: how often a page without JavaScript reloads (PAYMESH_REFRESH_SECONDS)
DESKTOP = {"width": 1280, "height": 900}
MOBILE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def mesh(stack_dir: Path):
    with local_mesh(stack_dir, PAYMESH_REFRESH_SECONDS=str(REFRESH)) as local:
        yield local


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser():
    path = chromium_path()  # fails, naming the package, when there is none
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def chain(mesh):
    node = Chain(mesh.env["PAYMESH_ANVIL_RPC_URL"])
    try:
        yield node
    finally:
        await node.aclose()


async def new_shop(mesh, name: str):
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            name=name,
            derivation_path=f"m/44'/60'/{account}'",
            treasuries=[apb.Treasury(chain_id=31337, address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8")],
        )
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        merchant.payments = type(merchant.payments)(channel)
        yield merchant


@pytest_asyncio.fixture(loop_scope="session")
async def shop(mesh):
    async for merchant in new_shop(mesh, "Corner Coffee"):
        yield merchant


@pytest_asyncio.fixture(loop_scope="session")
async def other_shop(mesh):
    async for merchant in new_shop(mesh, "Another shop"):
        yield merchant


@pytest_asyncio.fixture(loop_scope="session")
async def xss_shop(mesh):
    async for merchant in new_shop(mesh, XSS_NAME):
        yield merchant


async def create(shop, **fields) -> pb.Payment:
    fields.setdefault("description", "2 coffees")
    reply = await shop.payments.CreatePayment(spb.CreatePaymentRequest(**fields), metadata=shop.auth)
    return reply.payment


def priced(**fields) -> dict:
    return {
        "price": pb.Money(currency="USD", amount="30.00"),
        "options": [spb.AcceptedAsset(chain_id=31337, asset="ETH"), spb.AcceptedAsset(chain_id=31337, asset="TUSD")],
        **fields,
    }


async def status_of(page) -> str:
    return await page.get_attribute("#status", "data-status") or ""


PAID = ("confirmed", "swept")  # the sweeper may sweep a paid payment before the next look


async def wait_status(page, *wanted: str, timeout: float = 60) -> None:
    async def check():
        return await status_of(page) in wanted

    await eventually(check, timeout=timeout, interval=0.2)


async def requested(page) -> tuple[str, int]:
    """(to, amount) of the EIP-681 link the page offers."""
    uri = await page.get_attribute("#wallet-link", "href")
    native = re.fullmatch(r"ethereum:(0x[0-9a-fA-F]{40})@31337\?value=(\d+)", uri or "")
    if native:
        return native.group(1), int(native.group(2))
    token = re.fullmatch(rf"ethereum:{TOKEN_ADDRESS}@31337/transfer\?address=(0x[0-9a-fA-F]{{40}})&uint256=(\d+)", uri)
    assert token, uri
    return token.group(1), int(token.group(2))


async def test_pick_the_second_option_pay_it_and_see_paid_without_a_reload(mesh, chain, browser, shop):
    payment = await create(shop, **priced(return_url="https://shop.example/thanks"))
    assert payment.checkout_url.startswith(f"http://127.0.0.1:{mesh.ports['checkout']}/pay/")
    context = await browser.new_context(viewport=MOBILE, locale="en-US")
    page = await context.new_page()
    await page.goto(payment.checkout_url)
    assert await page.locator("#choose").is_visible()  # several options: the customer picks first
    await page.screenshot(path=str(IMG / "checkout-choose-mobile.png"), full_page=True)
    await page.locator(".choice", has_text="TUSD").click()
    await page.wait_for_selector("#wallet-link")
    assert await page.text_content("#amount") == "30" and await page.text_content("#asset") == "TUSD"
    assert "anvil" in (await page.text_content("#network") or "")
    assert await page.input_value("#address") == payment.deposit_address
    assert await page.locator(".qr svg").count() == 1
    await page.screenshot(path=str(IMG / "checkout-pay-mobile.png"), full_page=True)
    to, amount = await requested(page)
    assert (to, amount) == (payment.deposit_address, 30_000_000)
    await page.evaluate("window.__still_this_page = true")
    await chain.send_token(to, amount)
    await wait_status(page, "detected")
    await wait_status(page, *PAID)
    assert await page.evaluate("window.__still_this_page === true")  # live: no reload happened
    assert "Paid" in (await page.text_content("#status-text") or "")
    assert await page.get_attribute("#return", "href") == "https://shop.example/thanks"
    await page.screenshot(path=str(IMG / "checkout-paid-mobile.png"), full_page=True)
    await context.close()


async def test_an_underpaid_payment_shows_what_is_still_due(mesh, chain, browser, shop):
    payment = await create(shop, chain_id=31337, asset="ETH", amount=str(10**16))
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(payment.checkout_url)
    await page.screenshot(path=str(IMG / "checkout-pay-desktop.png"), full_page=True)
    to, amount = await requested(page)
    assert amount == 10**16
    await chain.send_eth(to, 4 * 10**15)
    await wait_status(page, "underpaid")
    assert await page.text_content("#amount") == "0.006"
    assert (await requested(page)) == (payment.deposit_address, 6 * 10**15)  # a new QR for the rest
    assert "0.006 ETH is still due" in (await page.text_content("#status-text") or "")
    await page.screenshot(path=str(IMG / "checkout-underpaid-desktop.png"), full_page=True)
    await chain.send_eth(to, 6 * 10**15)
    await wait_status(page, *PAID)
    await context.close()


async def test_an_expired_page(mesh, browser, shop):
    payment = await create(shop, chain_id=31337, asset="ETH", amount="1000")
    await expire_now(mesh, payment.payment_id)
    context = await browser.new_context(viewport=DESKTOP, locale="de-DE", extra_http_headers={"Accept-Language": "de"})
    page = await context.new_page()
    await page.goto(payment.checkout_url)
    await wait_status(page, "expired", timeout=30)
    assert await page.locator("#wallet-link").count() == 0  # nothing to send any more
    assert "abgelaufen" in (await page.text_content("#status-text") or "")  # German, from Accept-Language
    await page.screenshot(path=str(IMG / "checkout-expired-desktop.png"), full_page=True)
    await context.close()


async def test_merchant_text_is_inert(mesh, browser, xss_shop):
    payment = await create(xss_shop, chain_id=31337, asset="ETH", amount="1000", description=XSS_DESCRIPTION)
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), asyncio.ensure_future(dialog.dismiss())))
    await page.goto(payment.checkout_url)
    assert await page.text_content("#merchant") == XSS_NAME
    assert await page.text_content("#description") == XSS_DESCRIPTION
    assert await page.locator("script").count() == 1  # only the checkout's own, from its own origin
    assert await page.locator("main img, main svg[onload]").count() == 0
    await page.wait_for_timeout(500)  # give an injected handler its chance to fire (not a timing assertion)
    assert dialogs == []
    await context.close()


async def test_the_page_works_without_javascript(mesh, chain, browser, shop):
    payment = await create(shop, chain_id=31337, asset="ETH", amount=str(10**15))
    context = await browser.new_context(viewport=MOBILE, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(payment.checkout_url)
    refresh = page.locator('noscript meta[http-equiv="refresh"]')
    assert await refresh.count() == 1 and await refresh.get_attribute("content") == str(REFRESH)
    to, amount = await requested(page)
    await chain.send_eth(to, amount)

    # No script runs: the page's own meta refresh reloads it until it shows the payment paid.
    await page.wait_for_selector(", ".join(f'#status[data-status="{s}"]' for s in PAID), timeout=60_000)
    assert await page.locator('noscript meta[http-equiv="refresh"]').count() == 0  # final: no more reloads
    await context.close()


async def test_unknown_and_malformed_tokens_are_one_plain_404(mesh, shop):
    base = f"http://127.0.0.1:{mesh.ports['checkout']}"
    payment = await create(shop, chain_id=31337, asset="ETH", amount="1000")
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        bodies = set()
        for path in (
            "/pay/" + "A" * 32,
            "/pay/short",
            "/pay/" + payment.payment_id,  # the payment id is not a token
            f"/pay/{payment.checkout_token}?option=x",
            f"/pay/{payment.checkout_token}?option=99999",
            "/pay/%3Cscript%3E",
            "/nothing-here",
        ):
            reply = await client.get(path)
            assert reply.status_code == 404, path
            assert "script" not in reply.text.lower() or "/static/" not in reply.text
            bodies.add(reply.text)
        assert len(bodies) == 1  # one answer: nothing tells whether a payment exists
        ok = await client.get(f"/pay/{payment.checkout_token}")
        assert ok.status_code == 200
        # An option number the payment does not have shows the payment's own page.
        assert (await client.get(f"/pay/{payment.checkout_token}?option=5")).status_code == 200
        csp = ok.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert ok.headers["referrer-policy"] == "no-referrer" and ok.headers["x-frame-options"] == "DENY"
        # Nothing is loaded from anywhere else: every src and stylesheet is this origin's own.
        assert re.findall(r'(?:src|href)="(/static/[^"]+)"', ok.text) == ["/static/checkout.css", "/static/checkout.js"]
        assert not re.search(r'src="(?:https?:)?//', ok.text)


# ---------------------------------------------------------------- payment links


async def create_link(mesh, shop, **fields):
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        stub = lgrpc.PaymentLinkServiceStub(channel)
        fields.setdefault(
            "options",
            [spb.AcceptedAsset(chain_id=31337, asset="ETH"), spb.AcceptedAsset(chain_id=31337, asset="TUSD")],
        )
        reply = await stub.CreatePaymentLink(lpb.CreatePaymentLinkRequest(**fields), metadata=shop.auth)
        return reply.link


async def link_uses(mesh, shop, link_id: str) -> int:
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        reply = await lgrpc.PaymentLinkServiceStub(channel).GetPaymentLink(
            lpb.GetPaymentLinkRequest(link_id=link_id), metadata=shop.auth
        )
    return reply.link.uses


def visitor(address: str) -> dict:
    """A browser context as one visitor from one address (the checkout believes
    X-Forwarded-For from loopback, as from a reverse proxy)."""
    return {"viewport": MOBILE, "extra_http_headers": {"X-Forwarded-For": address}}


async def test_a_payment_link_creates_one_payment_per_visitor_and_not_two_on_reload(mesh, browser, shop):
    link = await create_link(mesh, shop, description="Sticker pack", price=pb.Money(currency="USD", amount="5.00"))
    assert link.url == f"http://127.0.0.1:{mesh.ports['checkout']}/link/{link.token}"
    tokens = []
    for address in ("198.51.100.1", "198.51.100.2"):  # two visitors
        context = await browser.new_context(**visitor(address))
        page = await context.new_page()
        await page.goto(link.url)
        assert await page.text_content("#price") == "5.00 USD"
        assert await page.text_content("#description") == "Sticker pack"
        await page.click("#pay")
        await page.wait_for_url(re.compile(r".*/pay/[A-Za-z0-9_-]+$"))
        first = page.url
        await page.reload()  # a reload shows the same payment
        assert page.url == first and await page.locator("#choose").is_visible()
        await page.goto(link.url)  # back to the link, pay again: still the same payment
        await page.click("#pay")
        await page.wait_for_url(re.compile(r".*/pay/[A-Za-z0-9_-]+$"))
        assert page.url == first
        tokens.append(first)
        await context.close()
    assert tokens[0] != tokens[1]  # each visitor their own payment
    assert await link_uses(mesh, shop, link.link_id) == 2


async def test_a_link_with_an_amount_the_customer_enters(mesh, browser, shop):
    link = await create_link(
        mesh,
        shop,
        description="Tip jar",
        min_price=pb.Money(currency="USD", amount="1.00"),
        max_price=pb.Money(currency="USD", amount="50.00"),
    )
    context = await browser.new_context(**visitor("198.51.100.3"))
    page = await context.new_page()
    await page.goto(link.url)
    await page.fill("#amount", "75")
    await page.click("#pay")
    assert "between 1.00 USD and 50.00 USD" in (await page.text_content("#error") or "")
    assert await link_uses(mesh, shop, link.link_id) == 0  # nothing created
    await page.fill("#amount", "12.50")
    await page.click("#pay")
    await page.wait_for_url(re.compile(r".*/pay/[A-Za-z0-9_-]+$"))
    assert await page.text_content("#price") == "12.50 USD"
    assert await link_uses(mesh, shop, link.link_id) == 1
    await context.close()


async def test_link_input_is_checked_and_starting_payments_is_rate_limited(mesh, shop):
    link = await create_link(mesh, shop, price=pb.Money(currency="USD", amount="2.00"), max_uses=100)
    base = f"http://127.0.0.1:{mesh.ports['checkout']}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient(base_url=base, timeout=10, headers={"X-Forwarded-For": "198.51.100.9"}) as client:
        page = await client.get(f"/link/{link.token}")
        assert page.status_code == 200 and "pm_visitor" in page.headers["set-cookie"]
        assert "samesite=lax" in page.headers["set-cookie"].lower() and "httponly" in page.headers["set-cookie"].lower()
        bad = [
            await client.post(f"/link/{link.token}", content="amount=" + "9" * 2000, headers=form),  # oversized
            await client.post(f"/link/{link.token}", content=b"\xff\xfe", headers=form),  # not UTF-8
            await client.post(f"/link/{link.token}", json={"amount": "1"}),  # not a form
            await client.post(f"/link/{link.token}", content="amount=1&evil=2", headers=form),  # unknown field
        ]
        assert [r.status_code for r in bad] == [400, 400, 400, 400]
        async with httpx.AsyncClient(
            base_url=base, timeout=10, headers={"X-Forwarded-For": "198.51.100.10"}
        ) as cookieless:
            refused = await cookieless.post(f"/link/{link.token}", content="", headers=form)
            assert refused.status_code == 400 and "cookie" in refused.text
        unknown = await client.get("/link/" + "B" * 32)
        assert unknown.status_code == 404
        assert await link_uses(mesh, shop, link.link_id) == 0  # nothing stored by any of these
        codes = []
        for _ in range(12):  # bounded: more than one client address may start per minute (10)
            reply = await client.post(f"/link/{link.token}", content="", headers=form, follow_redirects=False)
            codes.append(reply.status_code)
            if reply.status_code == 429:
                assert int(reply.headers["retry-after"]) >= 1
                break
        assert 429 in codes and set(codes[:-1]) <= {303, 400}
        assert await link_uses(mesh, shop, link.link_id) == 1  # one visitor, one amount: one payment


USD5 = pb.Money(currency="USD", amount="5.00")
BAD_LINKS = [
    (dict(), "give price"),
    (dict(price=USD5, min_price=USD5, max_price=USD5), "not both"),
    (dict(min_price=USD5), "both min_price and max_price"),
    (dict(min_price=USD5, max_price=pb.Money(currency="EUR", amount="9.00")), "use one currency"),
    (dict(min_price=pb.Money(currency="USD", amount="9.00"), max_price=USD5), "is above max_price"),
    (dict(price=pb.Money(currency="USD", amount="1.999")), "price: "),
    (dict(price=USD5, options=[]), "say what the link's payments accept"),  # no options at all
    (dict(price=USD5, return_url="javascript:alert(1)"), "return_url"),
    (dict(price=USD5, max_uses=1_000_001), "max_uses"),
    (dict(price=USD5, description="x" * 513), "description"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_LINKS)
async def test_bad_links_are_refused(mesh, shop, fields, message):
    # create_link adds ETH and TUSD options unless the case names its own (options=[]: none).
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create_link(mesh, shop, **fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert message in err.value.details(), err.value.details()


async def test_a_deactivated_or_used_up_link_creates_nothing(mesh, shop, other_shop):
    once = await create_link(mesh, shop, price=USD5, max_uses=1, idempotency_key="once")
    again = await create_link(mesh, shop, price=USD5, max_uses=1, idempotency_key="once")
    assert again.link_id == once.link_id  # an idempotent retry
    base = f"http://127.0.0.1:{mesh.ports['checkout']}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for address in ("203.0.113.1", "203.0.113.2"):
        async with httpx.AsyncClient(base_url=base, timeout=10, headers={"X-Forwarded-For": address}) as client:
            await client.get(f"/link/{once.token}")
            reply = await client.post(f"/link/{once.token}", content="", headers=form)
            codes = reply.status_code
            if address.endswith(".1"):
                assert codes == 303 and reply.headers["location"].startswith("/pay/")
            else:
                assert codes == 409 and "used up" in reply.text  # the one use is taken
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        stub = lgrpc.PaymentLinkServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:  # another merchant's link is not found
            await stub.GetPaymentLink(lpb.GetPaymentLinkRequest(link_id=once.link_id), metadata=other_shop.auth)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        reply = await stub.DeactivatePaymentLink(
            lpb.DeactivatePaymentLinkRequest(link_id=once.link_id), metadata=shop.auth
        )
        assert not reply.link.active and reply.link.uses == 1
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await client.get(f"/link/{once.token}")).status_code == 404


async def expire_now(mesh, payment_id: str) -> None:
    conn = await asyncpg.connect(mesh.env["PAYMESH_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("UPDATE payments SET expires_at = now() WHERE id = $1", payment_id)
    finally:
        await conn.close()


async def test_an_expired_underpaid_page_asks_for_nothing_more(mesh, chain, browser, shop):
    payment = await create(shop, chain_id=31337, asset="ETH", amount=str(10**16))
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(payment.checkout_url)
    to, _ = await requested(page)
    await chain.send_eth(to, 10**15)
    await wait_status(page, "underpaid")
    await expire_now(mesh, payment.payment_id)

    async def stopped_asking():
        await page.reload()
        return await page.locator("#wallet-link").count() == 0

    await eventually(stopped_asking, timeout=30, interval=0.5)
    assert "expired" in (await page.text_content("#status-text") or "")
    await context.close()


async def test_a_visitor_back_after_their_link_payment_expired_gets_a_new_one(mesh, browser, shop):
    link = await create_link(mesh, shop, price=pb.Money(currency="USD", amount="3.00"))
    context = await browser.new_context(**visitor("198.51.100.77"))
    page = await context.new_page()
    await page.goto(link.url)
    await page.click("#pay")
    await page.wait_for_url(re.compile(r".*/pay/[A-Za-z0-9_-]+$"))
    first = page.url
    token = first.rsplit("/", 1)[1]
    conn = await asyncpg.connect(mesh.env["PAYMESH_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://"))
    try:
        payment_id = await conn.fetchval("SELECT id FROM payments WHERE checkout_token = $1", token)
    finally:
        await conn.close()
    await expire_now(mesh, payment_id)
    await page.goto(first)
    await wait_status(page, "expired", timeout=30)
    await page.goto(link.url)
    await page.click("#pay")
    await page.wait_for_url(re.compile(r".*/pay/[A-Za-z0-9_-]+$"))
    assert page.url != first  # a new payment: the old one ended unpaid
    assert await link_uses(mesh, shop, link.link_id) == 1  # the expired one gave its use back
    await context.close()


async def test_paid_on_two_options_shows_overpaid_and_paid_after_expiry_shows_late(mesh, chain, browser, shop):
    payment = await create(shop, **priced())
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(payment.checkout_url + "?option=0")
    to, amount = await requested(page)  # the ETH option
    await chain.send_eth(to, amount)
    await wait_status(page, *PAID)
    await chain.send_token(to, 30_000_000)  # and the TUSD option as well

    async def overpaid():  # a paid page is final (its live updates ended): the customer reloads
        await page.reload()
        return await status_of(page) in ("overpaid", "swept")

    await eventually(overpaid, timeout=60, interval=0.5)
    if await status_of(page) == "overpaid":
        assert "more than the amount due" in (await page.text_content("#status-text") or "")

    late = await create(shop, chain_id=31337, asset="ETH", amount=str(10**15))
    await expire_now(mesh, late.payment_id)
    await page.goto(late.checkout_url)
    await wait_status(page, "expired", timeout=30)
    await chain.send_eth(late.deposit_address, 10**15)  # funds after the expiry: kept, and said so

    async def late_paid():  # an expired page is final too: the customer reloads
        await page.reload()
        return await status_of(page) in ("paid_after_expiry", "swept")

    await eventually(late_paid, timeout=60, interval=0.5)
    if await status_of(page) == "paid_after_expiry":
        assert "after the payment expired" in (await page.text_content("#status-text") or "")
    await context.close()


async def test_a_refund_claim_link_lets_the_customer_enter_their_address_twice(mesh, chain, browser, shop):
    """An overpaid payment's excess refunded with a claim link: the customer opens the
    refund's page, mistypes the second address (refused, nothing stored), then enters it
    twice; the refund is sent to exactly that address, once. The merchant's reason is
    shown as text, never markup."""
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        payouts = psgrpc.PayoutServiceStub(channel)
        wallet = (
            await payouts.GetPayoutWallet(pspb.GetPayoutWalletRequest(chain_id=31337), metadata=shop.auth)
        ).address
        await chain.send_eth(wallet, 10**16)  # in case the sweeper swept first: the refund then leaves from here
        payment = await create(shop, chain_id=31337, asset="ETH", amount=str(10**16))
        await chain.send_eth(payment.deposit_address, 10**16 + 3 * 10**15)

        async def overpaid():
            p = (
                await shop.payments.GetPayment(spb.GetPaymentRequest(payment_id=payment.payment_id), metadata=shop.auth)
            ).payment
            return p.status in (pb.PAYMENT_STATUS_OVERPAID, pb.PAYMENT_STATUS_SWEPT)

        await eventually(overpaid, timeout=60, interval=0.2)
        refund = (
            await payouts.CreateRefund(
                pspb.CreateRefundRequest(
                    payment_id=payment.payment_id,
                    mode=pspb.REFUND_AMOUNT_EXCESS,
                    claim_link=True,
                    reason=XSS_DESCRIPTION,
                ),
                metadata=shop.auth,
            )
        ).refund
        assert refund.state == popb.PAYOUT_STATE_AWAITING_CLAIM and refund.destination == ""
        assert refund.claim_url.startswith(f"http://127.0.0.1:{mesh.ports['checkout']}/refund/")
        customer = "0x" + "3c" * 20
        context = await browser.new_context(viewport=MOBILE)
        page = await context.new_page()
        alerts: list[str] = []
        page.on("dialog", lambda d: alerts.append(d.message))
        await page.goto(refund.claim_url)
        assert await page.text_content("#amount") == "0.003 ETH"
        assert await page.text_content("#reason") == XSS_DESCRIPTION  # shown as text
        await page.fill("#destination", customer)
        await page.fill("#destination_again", "0x" + "3d" * 20)
        await page.click("#claim")
        assert "differ" in (await page.text_content("#error"))
        stored = (await payouts.GetRefund(pspb.GetRefundRequest(refund_id=refund.payout_id), metadata=shop.auth)).refund
        assert stored.state == popb.PAYOUT_STATE_AWAITING_CLAIM and stored.destination == ""
        await page.fill("#destination_again", customer)
        await page.screenshot(path=str(IMG / "checkout-refund-claim.png"), full_page=True)
        await page.click("#claim")
        await page.wait_for_selector("#claimed")
        assert to_checksum(customer) in await page.text_content("#claimed")
        await context.close()
        assert alerts == []

        async def sent():
            r = (await payouts.GetRefund(pspb.GetRefundRequest(refund_id=refund.payout_id), metadata=shop.auth)).refund
            return r if r.state == popb.PAYOUT_STATE_CONFIRMED else None

        done = await eventually(sent, timeout=90, interval=0.3)
        assert done.destination == to_checksum(customer)
        assert int(await chain.rpc("eth_getBalance", customer, "latest"), 16) == 3 * 10**15
        # The page cannot be claimed again, and a wrong token is the one plain 404.
        async with httpx.AsyncClient() as http:
            again = await http.post(refund.claim_url, data={"destination": customer, "destination_again": customer})
            assert again.status_code == 409
            missing = await http.get(refund.claim_url[:-4] + "AAAA")
            assert missing.status_code == 404
