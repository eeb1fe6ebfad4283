"""Who a shopper is: a signed-in user, an anonymous web visitor, or a mobile app install.

An anonymous web visitor's id (128 random bits) lives in a signed cookie, ``VISITOR_COOKIE``,
that ``EventMiddleware`` sets on the response: recognizing a visitor writes nothing to the
database, so a first page view answers while the database is slow or locked, and the id
survives the session-key rotation at login (a logout starts a new one). Without the
middleware the id falls back to the Django session (``VISITOR_SESSION_KEY``). An app install's id is issued by the server
(``issue_device_id``: 128 random bits, signed with the site's key, so it cannot be guessed
or made up) and sent back in the API's ``X-Device-Id`` header; the shopper is then
``device:<the random part>``. A device or visitor id is a credential: it reads only
anonymous events, never a signed-in user's, and a signed-in caller's device id is ignored
until an authenticated request links the device to them.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core import signing
from django.http import HttpRequest

#: Session key under which the anonymous visitor id is kept (survives login's key rotation).
VISITOR_SESSION_KEY = "_recommendations_visitor"
DEVICE_PREFIX = "device:"
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]{20,64}$")
DEVICE_SALT = "recommendations.device"


def issue_device_id(random_part: str | None = None) -> str:
    """A new app install's id: 128 random bits (22 URL-safe characters) and the server's
    signature of them. ``random_part`` is for tests and imports that need a fixed one."""
    return signing.Signer(salt=DEVICE_SALT).sign(random_part or secrets.token_urlsafe(16))


def device_key(value: str | None) -> str | None:
    """The random part of a device id this server issued, or None (malformed or forged)."""
    if not value or not DEVICE_ID.match(value):
        return None
    try:
        return signing.Signer(salt=DEVICE_SALT).unsign(value)
    except signing.BadSignature:
        return None


def valid_device_id(value: str) -> bool:
    return device_key(value) is not None


def device_visitor(value: str | None) -> str | None:
    """The visitor key (``Event.session_key``) of a device id this server issued, or None."""
    key = device_key(value)
    return None if key is None else f"{DEVICE_PREFIX}{key}"


def user_id_of(request: HttpRequest | None) -> int | None:
    """The signed-in user's id behind ``request``, or None."""
    user = getattr(request, "user", None)
    return user.pk if user is not None and user.is_authenticated else None


#: The cookie that names an anonymous web visitor (signed; HttpOnly; one year).
VISITOR_COOKIE = "rec_visitor"
VISITOR_COOKIE_AGE = 365 * 86400
VISITOR_SALT = "recommendations.visitor"
#: Request attribute: the visitor id the response must set as the cookie ("" = none yet);
#: present only when ``EventMiddleware`` will write the cookie (see ``expect_visitor_cookie``).
NEW_VISITOR_ATTR = "_recommendations_new_visitor"


def expect_visitor_cookie(request: HttpRequest) -> None:
    """The middleware will set the cookie of a visitor id made in this request."""
    setattr(request, NEW_VISITOR_ATTR, "")


def new_visitor_cookie(request: HttpRequest) -> str:
    """The signed cookie value to set on the response (empty: the cookie stays as it is)."""
    value = getattr(request, NEW_VISITOR_ATTR, "")
    return signing.Signer(salt=VISITOR_SALT).sign(value) if value else ""


def start_new_visitor(request: HttpRequest) -> None:
    """After a logout: the next anonymous events are a new visitor's, not the old account's."""
    if hasattr(request, NEW_VISITOR_ATTR):
        setattr(request, NEW_VISITOR_ATTR, uuid.uuid4().hex)


def _cookie_visitor(request: HttpRequest) -> str:
    value = getattr(request, "COOKIES", {}).get(VISITOR_COOKIE, "")
    if not value:
        return ""
    try:
        visitor = signing.Signer(salt=VISITOR_SALT).unsign(value)
    except signing.BadSignature:
        return ""  # made up or altered: a new visitor
    return visitor if re.fullmatch(r"[0-9a-f]{32}", visitor) else ""


def read_visitor(request: HttpRequest | None) -> str:
    """The anonymous visitor id of this browser, or "" (nothing is created)."""
    if request is None:
        return ""
    made = getattr(request, NEW_VISITOR_ATTR, "")
    if made:
        return made
    if hasattr(request, NEW_VISITOR_ATTR):  # the cookie is ours to read and write
        return _cookie_visitor(request)
    session = getattr(request, "session", None)
    return (session.get(VISITOR_SESSION_KEY, "") if session is not None else "") or ""


def visitor_id(request: HttpRequest) -> str:
    """The anonymous visitor id of this browser, created on first use (in a cookie the
    middleware sets; without the middleware, in the session)."""
    value = read_visitor(request)
    if value:
        return value
    value = uuid.uuid4().hex
    if hasattr(request, NEW_VISITOR_ATTR):
        setattr(request, NEW_VISITOR_ATTR, value)
        return value
    session = getattr(request, "session", None)
    if session is None:
        return ""
    session[VISITOR_SESSION_KEY] = value
    return value


@dataclass(frozen=True)
class Shopper:
    """A signed-in user, an anonymous web visitor, or a mobile device; never someone else."""

    user_id: int | None = None
    visitor: str = ""  # web visitor id, or "device:<id>" for the mobile API
    request: HttpRequest | None = None

    @classmethod
    def from_request(cls, request: HttpRequest | None) -> Shopper:
        """The shopper behind a page request (no visitor id is created just to read)."""
        if request is None:
            return cls()
        return cls(user_id=user_id_of(request), visitor=read_visitor(request), request=request)

    @classmethod
    def from_device(cls, request: HttpRequest, user_id: int | None, device: str | None) -> Shopper:
        """The caller of the mobile API. Anonymous: their device (an id this server issued)
        stands for the visitor. Signed in: the user alone, whatever device id is sent (a
        device joins a user only through ``capture.receivers.link_visitor``)."""
        if user_id is not None:
            return cls(user_id=user_id, request=request)
        visitor = device_visitor(device) or cls.from_request(request).visitor
        return cls(user_id=None, visitor=visitor, request=request)

    @property
    def keys(self) -> list[str]:
        """Per-shopper keys: the account's, and the anonymous visitor's."""
        keys = [f"u:{self.user_id}"] if self.user_id is not None else []
        if self.visitor:
            keys.append(f"s:{self.visitor}")
        return keys

    @property
    def key(self) -> str:
        """One stable key (cache keys, logs never see more than this opaque id)."""
        return self.keys[0] if self.keys else ""

    @property
    def is_known(self) -> bool:
        return bool(self.keys)


def row_shopper(row: Mapping[str, Any]) -> str:
    """The shopper key (``u:<id>`` or ``s:<visitor>``) of an event row read with ``values()``."""
    return f"u:{row['user_id']}" if row["user_id"] is not None else f"s:{row['session_key']}"


def same_shopper(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two event rows are one shopper's: the same account, or the same visitor or
    device (a list shown before signing in and clicked after it is still theirs)."""
    if a["user_id"] is not None and a["user_id"] == b["user_id"]:
        return True
    return bool(a["session_key"]) and a["session_key"] == b["session_key"]


def as_shopper(who: HttpRequest | Shopper | None) -> Shopper:
    """A ``Shopper`` as it is, or the shopper behind a request (None: nobody known)."""
    if isinstance(who, Shopper):
        return who
    return Shopper.from_request(who)
