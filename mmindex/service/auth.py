"""The service's one secret: a bearer token for the endpoints that change the index.

The token is set when the server starts and compared in constant time. It is read from the
`Authorization: Bearer ...` header only for writes; reads (when `public_read` is off) also accept the
`mmindex_token` cookie, because <img> and <video> elements cannot send headers. Writes never accept
the cookie, so a page on another site cannot make a browser change the index (no CSRF).
Neither the token nor the header is ever logged: uvicorn's access log shows the path and query only.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

COOKIE = "mmindex_token"

_bearer = HTTPBearer(auto_error=False, description="the token given to `mmindex serve --token` / $MMINDEX_TOKEN")
_BEARER = Security(_bearer)  # FastAPI reads dependencies from parameter defaults


class Auth:
    """Token checks used as FastAPI dependencies: `Depends(auth.read)` and `Depends(auth.write)`."""

    def __init__(self, token: str | None, public_read: bool = True):
        # Digests of equal length: compare_digest then leaks nothing about the token's length either.
        self._digest = hashlib.sha256(token.encode()).digest() if token else None
        self.public_read = public_read

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def matches(self, presented: str | None) -> bool:
        """Whether `presented` is the token, in time independent of where they differ."""
        if self._digest is None or not presented:
            return False
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)

    def write(self, creds: HTTPAuthorizationCredentials | None = _BEARER) -> None:
        """Dependency of add/remove: 403 when no token is configured, 401 when it is missing or wrong."""
        if self._digest is None:
            raise HTTPException(403, "writing is disabled: start the server with --token (or $MMINDEX_TOKEN)")
        if creds is None or not self.matches(creds.credentials):
            raise HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": "Bearer"})

    def read(self, request: Request, creds: HTTPAuthorizationCredentials | None = _BEARER) -> None:
        """Dependency of read-only endpoints: open unless the server was started with reads private."""
        if self.public_read:
            return
        presented = creds.credentials if creds is not None else request.cookies.get(COOKIE)
        if not self.matches(presented):
            raise HTTPException(401, "this server needs a token to read", headers={"WWW-Authenticate": "Bearer"})
