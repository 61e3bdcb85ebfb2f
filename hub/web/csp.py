"""The Content-Security-Policy of every answer, and the one exception the printable
report needs: its stylesheet is inline (the same file is written by ``mallhub compliance``
for printing offline), so the answer that serves it allows that one block by a nonce."""

from __future__ import annotations

import secrets

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def style_nonce() -> str:
    """A fresh nonce for one answer's inline stylesheet."""
    return secrets.token_urlsafe(18)


def csp_with_style_nonce(nonce: str) -> str:
    """The policy, also allowing the ``<style nonce=…>`` block of this one answer."""
    return CSP.replace("style-src 'self'", f"style-src 'self' 'nonce-{nonce}'")
