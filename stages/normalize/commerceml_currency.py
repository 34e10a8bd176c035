"""CommerceML ``Валюта`` -> an ISO 4217 code. Pure.

1С writes the currency as its own short name (``руб``, ``руб.``), as the numeric code of its
Валюты catalog (``643``) or as the ISO code, depending on the configuration and on what the
user typed into the catalog; sites send ``RUB``. The canonical entities store the ISO code,
so analysts and Bitrix24 (whose CURRENCY_ID is one) see one spelling.
"""

from __future__ import annotations

from stages.normalize.oddities import Unnormalizable, text

# Lower-case spellings seen in 1С catalogs and site exports -> ISO 4217 code. Numeric
# codes are the ISO numeric ones 1С keeps in Валюты.Code.
_KNOWN: dict[str, str] = {
    **dict.fromkeys(
        ("руб", "руб.", "рубль", "рублей", "рубли", "р.", "₽", "rub", "rur", "643", "810"), "RUB"
    ),
    **dict.fromkeys(("usd", "$", "840", "доллар", "долл", "долл.", "дол.", "доллар сша"), "USD"),
    **dict.fromkeys(("eur", "€", "978", "евро"), "EUR"),
    **dict.fromkeys(("kzt", "₸", "398", "тенге", "тг", "тг."), "KZT"),
    **dict.fromkeys(("byn", "byr", "933", "бел. руб", "бел.руб.", "бел. руб.", "бел руб"), "BYN"),
    **dict.fromkeys(("uah", "₴", "980", "грн", "грн.", "гривна"), "UAH"),
    **dict.fromkeys(("cny", "156", "юань"), "CNY"),
}


def iso_currency(raw: object, field: str = "currency") -> str:
    """The ISO code of a CommerceML currency; '' when none is given. A known spelling is
    mapped, an ISO-looking three-letter Latin code is kept (upper case); anything else is
    refused (Unnormalizable) rather than stored as text no later stage can use."""
    value = " ".join(text(raw).split())
    if not value:
        return ""
    mapped = _KNOWN.get(value.casefold())
    if mapped:
        return mapped
    if len(value) == 3 and value.isascii() and value.isalpha():
        return value.upper()
    raise Unnormalizable(
        f"{field}: unknown currency {value[:40]!r} (expected an ISO 4217 code "
        "or a known 1С name such as руб)"
    )
