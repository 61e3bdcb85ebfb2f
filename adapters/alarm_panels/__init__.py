"""SIA DC-09 alarm receiver: Contact ID and SIA-DCS events from panels and emergency buttons.

The protocol core (``protocol``, ``crypto``, ``payload``, ``codes``, ``receiver``,
``supervision``) is pure; ``server`` adds the TCP and UDP transports.
"""

from .config import AccountConfig, ReceiverLimits
from .crypto import InvalidKey, parse_key
from .receiver import FrameProcessor, Verdict
from .server import SiaReceiver
from .stats import ReceiverStats
from .supervision import SupervisionStatus

__all__ = [
    "AccountConfig",
    "FrameProcessor",
    "InvalidKey",
    "ReceiverLimits",
    "ReceiverStats",
    "SiaReceiver",
    "SupervisionStatus",
    "Verdict",
    "parse_key",
]
