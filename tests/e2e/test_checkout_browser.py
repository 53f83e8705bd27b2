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
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
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
    conn = await asyncpg.connect(mesh.env["PAYMESH_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("UPDATE payments SET expires_at = now() WHERE id = $1", payment.payment_id)
    finally:
        await conn.close()
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
        csp = ok.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert ok.headers["referrer-policy"] == "no-referrer" and ok.headers["x-frame-options"] == "DENY"
        # Nothing is loaded from anywhere else: every src and stylesheet is this origin's own.
        assert re.findall(r'(?:src|href)="(/static/[^"]+)"', ok.text) == ["/static/checkout.css", "/static/checkout.js"]
        assert not re.search(r'src="(?:https?:)?//', ok.text)
