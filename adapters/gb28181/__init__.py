"""GB/T 28181-2016 lower-level platform: the mall joins the police video network ("国标级联").

Pure cores (``ids``, ``manscdp``, ``sdp``, ``ps``, ``adapters.sip``) are separate from the
transports (``transport``) and from the long-lived client (``platform``: registration,
keepalive, queries, alarms, live video).
"""
