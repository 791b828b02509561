"""Forward a request to one service over kept-alive connections, as nginx's proxy_pass does."""

from __future__ import annotations

from dataclasses import dataclass

import urllib3

# Hop-by-hop headers (RFC 9110 7.6.1) stay on their own connection; the length is recomputed.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)

# What the gateway sets itself on the way up (nginx's proxy_set_header lines).
FORWARDING = frozenset({"x-request-id", "x-real-ip", "x-forwarded-for", "x-forwarded-proto"})


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Upstreams:
    """One kept-alive connection pool per service (nginx's `upstream ... keepalive`)."""

    def __init__(self, addresses: dict[str, str], timeout: float = 30.0) -> None:
        self.addresses = addresses
        # nginx: proxy_connect_timeout 5s, proxy_read_timeout 30s.
        self._timeout = urllib3.Timeout(connect=5.0, read=timeout)
        self._pool = urllib3.PoolManager(maxsize=32, block=False, retries=False)

    def forward(
        self, service: str, method: str, path_qs: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        """The service's answer; urllib3's errors (connection refused, timeout) propagate."""
        url = f"http://{self.addresses[service]}{path_qs}"
        response = self._pool.request(
            method,
            url,
            body=body or None,
            headers=headers,
            timeout=self._timeout,
            redirect=False,
            preload_content=True,
            decode_content=False,
        )
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
        return Answer(response.status, kept, response.data)


def upstream_headers(
    incoming: list[tuple[str, str]], request_id: str, client: str, scheme: str
) -> dict[str, str]:
    """What nginx sends upstream: the caller's headers less hop-by-hop, plus the forwarding ones."""
    replaced = HOP_BY_HOP | FORWARDING
    headers = {k: v for k, v in incoming if k.lower() not in replaced}
    forwarded = next((v for k, v in incoming if k.lower() == "x-forwarded-for"), None)
    headers["X-Request-ID"] = request_id
    headers["X-Real-IP"] = client
    headers["X-Forwarded-For"] = f"{forwarded}, {client}" if forwarded else client
    headers["X-Forwarded-Proto"] = scheme
    return headers
