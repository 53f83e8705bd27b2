"""The page's words in each language, and the choice of language from the
browser's Accept-Language header (RFC 9110 §12.5.4: ranges with q-values). Pure."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DEFAULT = "en"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Pay {merchant}",
        "pay_to": "Payment to",
        "order": "Order",
        "price": "Price",
        "choose": "Choose how to pay",
        "choose_hint": "Pick the network and the asset you will send.",
        "other_options": "Pay another way",
        "send_exactly": "Send exactly",
        "on_network": "on the {network} network (chain id {chain_id})",
        "only_network": "Send only on {network}. Funds sent on another network do not reach this payment.",
        "to_address": "To this address",
        "copy": "Copy",
        "copied": "Copied",
        "qr_label": "QR code of the payment request for a wallet",
        "open_wallet": "Open in a wallet",
        "expires_in": "Expires in",
        "expired_at": "Expired",
        "status_pending": "Waiting for your payment",
        "status_detected": "Seen on chain: {confirmations} of {required} confirmations",
        "status_detected_plain": "Seen on chain, waiting for confirmations",
        "status_confirmed": "Paid. Thank you!",
        "status_overpaid": "Paid, with more than the amount due. The merchant has been told.",
        "status_underpaid": "Partly paid: {remaining} {asset} is still due",
        "status_expired": "This payment has expired. Do not send funds; ask the merchant for a new one.",
        "status_underpaid_expired": "Partly paid, and the payment has expired. Do not send more; the merchant knows.",
        "status_cancelled": "This payment was cancelled. Do not send funds.",
        "status_paid_after_expiry": "Paid after the payment expired. The merchant has been told and will decide.",
        "status_swept": "Paid. Thank you!",
        "back": "Back to {merchant}",
        "not_found_title": "Not found",
        "not_found": "There is no payment page at this address. Check the link you were given.",
        "unavailable": "The payment service is busy. Reload this page in a moment.",
        "requoted": "The price was converted at a new rate: the amount above is the one to send.",
        "noscript": "This page refreshes itself every {seconds} seconds.",
        "language": "Language",
        "link_pay": "Continue to payment",
        "refund_title": "Refund from {merchant}",
        "refund_from": "Refund from",
        "refund_amount": "Amount",
        "refund_network": "Paid on the {network} network",
        "refund_address": "Your address to receive it",
        "refund_address_again": "The same address again",
        "refund_warning": (
            "Check it twice: the refund is sent on {network} to exactly this address and cannot be undone."
        ),
        "refund_claim": "Send my refund here",
        "refund_claimed": "Thank you: the refund goes to {address}.",
        "refund_closed": "This refund is no longer open.",
        "refund_too_many": "Too many tries from here. Wait a minute and try again.",
        "link_closed": "This payment link no longer takes payments.",
        "amount_label": "Amount ({low} to {high} {currency})",
        "bad_form": "The form could not be read. Reload the page and try again.",
        "too_many": "Too many payments were started from here. Wait a minute and try again.",
        "cookies": "This page needs a cookie to remember your payment. Allow cookies and reload it.",
    },
    "de": {
        "title": "Zahlung an {merchant}",
        "pay_to": "Zahlung an",
        "order": "Bestellung",
        "price": "Preis",
        "choose": "Zahlungsart wählen",
        "choose_hint": "Wählen Sie das Netzwerk und die Währung, die Sie senden.",
        "other_options": "Anders bezahlen",
        "send_exactly": "Senden Sie genau",
        "on_network": "im Netzwerk {network} (Chain-ID {chain_id})",
        "only_network": (
            "Nur im Netzwerk {network} senden. "
            "In einem anderen Netzwerk gesendete Beträge erreichen diese Zahlung nicht."
        ),
        "to_address": "An diese Adresse",
        "copy": "Kopieren",
        "copied": "Kopiert",
        "qr_label": "QR-Code der Zahlungsanforderung für eine Wallet",
        "open_wallet": "In einer Wallet öffnen",
        "expires_in": "Läuft ab in",
        "expired_at": "Abgelaufen",
        "status_pending": "Warte auf Ihre Zahlung",
        "status_detected": "In der Blockchain gesehen: {confirmations} von {required} Bestätigungen",
        "status_detected_plain": "In der Blockchain gesehen, warte auf Bestätigungen",
        "status_confirmed": "Bezahlt. Vielen Dank!",
        "status_overpaid": "Bezahlt, mit mehr als dem fälligen Betrag. Der Händler wurde informiert.",
        "status_underpaid": "Teilweise bezahlt: {remaining} {asset} sind noch offen",
        "status_expired": "Diese Zahlung ist abgelaufen. Senden Sie nichts; bitten Sie den Händler um eine neue.",
        "status_underpaid_expired": "Teilweise bezahlt, und die Zahlung ist abgelaufen. Senden Sie nichts mehr.",
        "status_cancelled": "Diese Zahlung wurde storniert. Senden Sie nichts.",
        "status_paid_after_expiry": "Nach Ablauf bezahlt. Der Händler wurde informiert und entscheidet.",
        "status_swept": "Bezahlt. Vielen Dank!",
        "back": "Zurück zu {merchant}",
        "not_found_title": "Nicht gefunden",
        "not_found": "Unter dieser Adresse gibt es keine Zahlungsseite. Prüfen Sie den erhaltenen Link.",
        "unavailable": "Der Zahlungsdienst ist ausgelastet. Laden Sie die Seite gleich neu.",
        "requoted": "Der Preis wurde zu einem neuen Kurs umgerechnet: Der Betrag oben ist der zu sendende.",
        "noscript": "Diese Seite lädt sich alle {seconds} Sekunden neu.",
        "language": "Sprache",
        "link_pay": "Weiter zur Zahlung",
        "refund_title": "Erstattung von {merchant}",
        "refund_from": "Erstattung von",
        "refund_amount": "Betrag",
        "refund_network": "Bezahlt im Netz {network}",
        "refund_address": "Ihre Adresse für die Erstattung",
        "refund_address_again": "Dieselbe Adresse noch einmal",
        "refund_warning": (
            "Prüfen Sie sie zweimal: Die Erstattung geht im Netz {network} an genau diese Adresse "
            "und lässt sich nicht rückgängig machen."
        ),
        "refund_claim": "Erstattung hierhin senden",
        "refund_claimed": "Danke: Die Erstattung geht an {address}.",
        "refund_closed": "Diese Erstattung ist nicht mehr offen.",
        "refund_too_many": "Zu viele Versuche von hier. Warten Sie eine Minute.",
        "link_closed": "Dieser Zahlungslink nimmt keine Zahlungen mehr an.",
        "amount_label": "Betrag ({low} bis {high} {currency})",
        "bad_form": "Das Formular war nicht lesbar. Laden Sie die Seite neu und versuchen Sie es noch einmal.",
        "too_many": "Von hier wurden zu viele Zahlungen begonnen. Warten Sie eine Minute.",
        "cookies": "Diese Seite braucht ein Cookie für Ihre Zahlung. Erlauben Sie Cookies und laden Sie neu.",
    },
}
LANGUAGES = tuple(TEXTS)


def choose_language(accept_language: str) -> str:
    """The supported language the browser prefers most (`de-CH` matches `de`), or English."""
    best, best_q = DEFAULT, Decimal(0)
    for position, part in enumerate(accept_language.split(",")[:32]):
        fields = part.strip().split(";")
        tag = fields[0].strip().lower()
        q = Decimal(1)
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = Decimal(value.strip())
                except InvalidOperation:
                    q = Decimal(0)
                if not q.is_finite():
                    q = Decimal(0)
        primary = tag.split("-")[0]
        # Earlier ranges win ties (the header's order is the browser's order).
        if primary in TEXTS and q > best_q and 0 < q <= 1:
            best, best_q = primary, q
        elif tag == "*" and q > best_q and position == 0:
            best, best_q = DEFAULT, q
    return best


def text(language: str, key: str, **values: object) -> str:
    words = TEXTS.get(language, TEXTS[DEFAULT])
    return words.get(key, TEXTS[DEFAULT][key]).format(**values)
