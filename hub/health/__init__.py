"""Device health: probes on a schedule, a debounced state per device, and ``mallhub check``.

- ``state``: the pure state machine (online / degraded / offline / unknown, debounced).
- ``probes`` / ``video``: one probe per device type; video checks with learned baselines.
- ``scheduler``: intervals with jitter, bounded concurrency, per-probe budgets.
- ``service``: ``HealthService``, wiring probes → states → store, events, availability, bus.
- ``store``: the writer operations (probe rows, state rows, baselines, retention).
- ``check`` / ``cli``: the technician's one-shot check.

``device_state.detail`` keys other parts read: ``clock_offset_s`` (float), ``resolution``
([w, h]), ``fps_limit``, ``fps_measured`` (floats), ``findings`` (video checks: check, ok,
score, threshold, message_zh, message_en), ``supervision`` (panels: ok / lost / unknown),
``broadcast_ok`` (bool), ``latency_ms``; also ``problems``, ``reason`` and ``fix``.
"""
