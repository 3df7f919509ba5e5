"""Company domains: one normalisation for every place the sync compares or sends a customer's domain.

HubSpot's ``domain`` company property, a website URL (``Customer.Account.WebsiteUrl``, HubSpot's
``website``) and Partner Central's ``CustomerAccountData.Domain`` all name a customer by its domain, each
written its own way (``https://WWW.Example.com/about``, ``example.com.``). Matching a new company to one
HubSpot already has (:mod:`cosell_sync.writers.hubspot`) and sending a company's domain to a customer
account (:mod:`cosell_sync.customer_accounts`) both go through :func:`normalize_domain`, so the two can
never disagree on what counts as the same customer.
"""

from __future__ import annotations

import re
from typing import Any

from cosell_sync.common import clean

#: A host name: dot-separated labels of letters, digits and inner hyphens, at least two labels.
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")
#: DNS limit on a whole name.
MAX_DOMAIN_LENGTH = 253


def normalize_domain(value: Any) -> str | None:
    """The bare, lower-case domain of a domain or a website URL; None when there is none.

    Lower-cases, strips the scheme (``https://``), any user info, the path, query and fragment, the
    port, a trailing dot and a leading ``www.``. What is left must be a host name (two labels or more,
    at most 253 characters): an IP address, ``localhost`` or free text gives None, never a guess.

    Args:
        value: a HubSpot ``domain``, a website URL, or anything empty.

    Returns:
        ``example.com`` for ``https://WWW.Example.com/about``, ``example.com.`` or ``example.com``.
    """
    text = (clean(value) or "").strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    elif text.startswith("//"):
        text = text[2:]
    text = re.split(r"[/?#]", text, maxsplit=1)[0]
    text = text.rsplit("@", 1)[-1]  # user info: http://user@host
    text = text.split(":", 1)[0].rstrip(".")  # the port, then the root dot
    if text.startswith("www."):
        text = text[4:]
    if not text or len(text) > MAX_DOMAIN_LENGTH or not _DOMAIN.fullmatch(text):
        return None
    if text.replace(".", "").isdigit():
        return None  # an IPv4 address is not a customer's domain
    return text
