"""The police link's MQTT 5 publish properties are packed once and stay what paho packs."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.police.link import FrozenProperties, _properties


def test_frozen_properties_pack_the_same_bytes_and_decode_to_the_same_values() -> None:
    for kind in ("event", "update", "status", "availability", "compliance", "response"):
        props = _properties(PacketTypes.PUBLISH)
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        props.UserProperty = [("kind", kind)]
        frozen = FrozenProperties.of(props)
        packed = frozen.pack()
        assert packed == props.pack()  # type: ignore[no-untyped-call]
        decoded = _properties(PacketTypes.PUBLISH)
        decoded.unpack(packed)  # type: ignore[no-untyped-call]
        # paho declares the property attributes dynamically.
        assert getattr(decoded, "ContentType") == "application/json"  # noqa: B009
        assert getattr(decoded, "PayloadFormatIndicator") == 1  # noqa: B009
        assert getattr(decoded, "UserProperty") == [("kind", kind)]  # noqa: B009
        assert isinstance(frozen, Properties) and frozen.packetType == PacketTypes.PUBLISH
