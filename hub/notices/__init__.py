"""Online inspections (网上巡查) and rectification notices (整改通知), the mall's side.

The police platform asks the hub for evidence with the ``inspect`` command and sends
rectification notices with the ``notice`` command; the hub stores each notice, shows it on the
console, counts it in the compliance status, lets the mall's staff answer it with evidence, and
publishes each notice's state retained on ``<p>/notices/<notice_id>`` (docs/police-link.md).

- ``model``: the notice's states and transitions, command parsing, the retained message (pure);
- ``store``: the store operations, each checking its transition inside the write transaction;
- ``inspect``: gathering an inspection's evidence;
- ``service``: the part that answers the commands, serves the console and watches deadlines.
"""
