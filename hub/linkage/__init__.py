"""Linkage and the alarm lifecycle.

- ``rules``: which rules an event triggers (pure).
- ``actions`` / ``devices``: snapshot, PTZ preset, relay pulse, broadcast, each under a
  timeout with retries, reported as outcomes.
- ``snapshots``: evidence files with sha256, inline or signed-URL attachments,
  ``verify_token`` for the web server.
- ``service``: ``LinkageService`` runs the rules on stored events.
- ``lifecycle``: acknowledge (also the police ``ack`` command), close, latching and
  escalation.
- ``testmode``: test mode entries, expiry and the ingest's ``in_test_mode`` check.
- ``cli``: ``mallhub testmode``.
"""
