"""Bearer-token check for admin actions."""

from __future__ import annotations

import hmac

from tractcast.errors import Forbidden, Unauthorized, Unavailable


def check_admin(authorization: str | None, token: str | None, dev_mode: bool = False) -> None:
    """Raise unless `authorization` carries the admin token (compared in constant time).

    Without a configured token the admin side is off, unless dev mode is explicit.
    """
    if token is None:
        if dev_mode:
            return
        raise Unavailable("admin endpoints are disabled: no TRACTCAST_ADMIN_TOKEN configured")
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("missing bearer token")
    given = authorization[len("Bearer ") :].strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Forbidden("wrong bearer token")
