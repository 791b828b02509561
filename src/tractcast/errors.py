"""Typed errors; each maps to one HTTP status and a code safe to show a client."""

from __future__ import annotations


class TractcastError(Exception):
    """Base of every error tractcast raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class InvalidInput(TractcastError):
    status = 400
    code = "invalid_input"


class Unauthorized(TractcastError):
    status = 401
    code = "unauthorized"


class Forbidden(TractcastError):
    status = 403
    code = "forbidden"


class NotFound(TractcastError):
    status = 404
    code = "not_found"


class MethodNotAllowed(TractcastError):
    status = 405
    code = "method_not_allowed"


class Conflict(TractcastError):
    status = 409
    code = "conflict"


class PayloadTooLarge(TractcastError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(TractcastError):
    status = 415
    code = "unsupported_media_type"


class DataRejected(TractcastError):
    """A data release that cannot be understood; the last good data version stays in use."""

    status = 422
    code = "data_rejected"


class DataHeld(DataRejected):
    """A release inferred differently from the pinned schema, or rewriting published history:
    held until an admin accepts it; the last good data version stays in use."""

    code = "data_held"


class Unavailable(TractcastError):
    status = 503
    code = "unavailable"


ERRORS_BY_STATUS: dict[int, type[TractcastError]] = {
    cls.status: cls
    for cls in (
        InvalidInput,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        DataRejected,
        Unavailable,
    )
}
