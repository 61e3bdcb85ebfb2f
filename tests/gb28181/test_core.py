"""The pure cores: the ID rule, MANSCDP in both charsets, SDP, SIP stream framing, Digest."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.gb28181 import manscdp
from adapters.gb28181.ids import GbIdError, assign_channel_ids, make_id, parse_id
from adapters.gb28181.manscdp import AlarmNotice, CatalogItem, ManscdpError
from adapters.gb28181.sdp import build_answer, parse_offer, ssrc_value
from adapters.sip.digest import build_authorization, digest_response, parse_challenge
from adapters.sip.message import SipParseError, StreamFramer, parse_message

SITE = "3402000000"


# --- IDs -------------------------------------------------------------------------------------


def test_channel_ids_follow_the_rule_and_keep_when_devices_are_appended() -> None:
    ids = assign_channel_ids(SITE, ["cam-a", "cam-b"], ["btn-1"])
    assert ids == {
        "cam-a": "34020000001320000001",
        "cam-b": "34020000001320000002",
        "btn-1": "34020000001340000001",
    }
    more = assign_channel_ids(SITE, ["cam-a", "cam-b", "cam-c"], ["btn-1", "btn-2"])
    assert {k: more[k] for k in ids} == ids
    parsed = parse_id(more["cam-c"])
    assert (parsed.site_code, parsed.type_code, parsed.serial) == (SITE, 132, 3)
    assert parsed.civil_code == "340200"


def test_overrides_win_and_clashes_are_named() -> None:
    pinned = "44030500001320000077"
    ids = assign_channel_ids(SITE, ["cam-a"], [], {"cam-a": pinned})
    assert ids["cam-a"] == pinned
    with pytest.raises(GbIdError, match="cam-a and cam-b"):
        assign_channel_ids(SITE, ["cam-a", "cam-b"], [], {"cam-b": "34020000001320000001"})
    with pytest.raises(GbIdError, match="not 20 digits"):
        assign_channel_ids(SITE, ["cam-a"], [], {"cam-a": "12345"})
    with pytest.raises(GbIdError, match="unknown devices: ghost"):
        assign_channel_ids(SITE, ["cam-a"], [], {"ghost": pinned})


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "3402000000132000000",
        "340200000013200000011",
        "3402000000132000000x",
        "３４０２０００００００１３２００００００１",
    ],
)
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(GbIdError):
        parse_id(bad)


def test_make_id_limits() -> None:
    with pytest.raises(GbIdError):
        make_id(SITE, 132, 0)
    with pytest.raises(GbIdError):
        make_id(SITE, 132, 10_000_000)
    with pytest.raises(GbIdError):
        make_id("340200", 132, 1)


# --- MANSCDP ---------------------------------------------------------------------------------


def _item(name: str, n: int = 1) -> CatalogItem:
    return CatalogItem(
        f"340200000013200000{n:02d}", name, "34020000002000000001", "340200", "一楼中庭"
    )


def test_gb2312_body_declares_its_charset_and_degrades_visibly() -> None:
    body = manscdp.encode(
        manscdp.catalog_responses(7, "34020000002000000001", [_item("东门 😀 𠀀")], 4)[0], "GB2312"
    )
    assert body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
    assert "东门 ? ?".encode("gb2312") in body
    parsed = manscdp.parse(body)
    assert (parsed.root, parsed.cmd_type, parsed.sn, parsed.charset) == (
        "Response",
        "Catalog",
        7,
        "GB2312",
    )
    assert parsed.text("DeviceList/Item/Name") == "东门 ? ?"
    assert parsed.text("DeviceList/Item/Address") == "一楼中庭"


def test_utf8_body_keeps_every_character() -> None:
    body = manscdp.encode(
        manscdp.catalog_responses(1, "34020000002000000001", [_item("东门 😀")], 4)[0], "UTF-8"
    )
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert manscdp.parse(body).text("DeviceList/Item/Name") == "东门 😀"


def test_gbk_characters_under_a_gb2312_prolog_are_read() -> None:
    # Platforms declaring GB2312 often send GBK-only characters (here 镕, not in GB2312).
    text = (
        '<?xml version="1.0" encoding="GB2312"?><Query><CmdType>Catalog</CmdType><SN>3</SN>'
        "<DeviceID>1</DeviceID><Name>朱镕</Name></Query>"
    )
    parsed = manscdp.parse(text.encode("gbk"))
    assert parsed.text("Name") == "朱镕"


def test_catalog_is_split_with_sumnum_and_num() -> None:
    items = [_item(f"camera {n}", n) for n in range(1, 11)]
    nodes = manscdp.catalog_responses(9, "34020000002000000001", items, 4)
    parsed = [manscdp.parse(manscdp.encode(n, "GB2312")) for n in nodes]
    assert [p.text("SumNum") for p in parsed] == ["10", "10", "10"]
    assert [p.element.find("DeviceList").get("Num") for p in parsed] == ["4", "4", "2"]  # type: ignore[union-attr]
    ids = [i.findtext("DeviceID") for p in parsed for i in p.element.iterfind("DeviceList/Item")]
    assert ids == [i.device_id for i in items]
    empty = manscdp.catalog_responses(9, "34020000002000000001", [], 4)
    assert (
        len(empty) == 1 and manscdp.parse(manscdp.encode(empty[0], "UTF-8")).text("SumNum") == "0"
    )


def test_alarm_notify_fields() -> None:
    notice = AlarmNotice(
        "e1",
        "34020000001340000001",
        1,
        2,
        1,
        datetime(2026, 12, 3, 1, 2, 3, tzinfo=UTC),
        "紧急报警 <东门>",
        ("34020000001320000001",),
    )
    parsed = manscdp.parse(manscdp.encode(manscdp.alarm_notify(5, notice), "GB2312"))
    assert (parsed.root, parsed.cmd_type, parsed.device_id) == (
        "Notify",
        "Alarm",
        notice.channel_id,
    )
    assert parsed.text("AlarmPriority") == "1" and parsed.text("AlarmMethod") == "2"
    assert parsed.text("Info/AlarmType") == "1"
    assert parsed.text("AlarmDescription") == "紧急报警 <东门>"
    assert parsed.text("AlarmTime") == notice.occurred_at.astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    assert parsed.text("Info/RelatedVideo/DeviceID") == "34020000001320000001"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"not xml at all", "well-formed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Query><CmdType>&a;'
            b"</CmdType><SN>1</SN><DeviceID>1</DeviceID></Query>",
            "DTD",
        ),
        (b"<Foo><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>1</DeviceID></Foo>", "root element"),
        (b"<Query><SN>1</SN><DeviceID>1</DeviceID></Query>", "CmdType"),
        (b"<Query><CmdType>Catalog</CmdType><SN>x</SN><DeviceID>1</DeviceID></Query>", "SN"),
        (b"<Query><CmdType>Catalog</CmdType><SN>1</SN></Query>", "DeviceID"),
        (b'<?xml version="1.0" encoding="EBCDIC-XX"?><Query/>', "charset"),
        (b'<?xml version="1.0" encoding="UTF-8"?><Query>\xff\xfe</Query>', "not valid"),
        (b"<Query>" + b"x" * (300 * 1024) + b"</Query>", "exceeds"),
    ],
)
def test_hostile_bodies_give_clear_errors(body: bytes, reason: str) -> None:
    with pytest.raises(ManscdpError, match=reason):
        manscdp.parse(body)


@settings(deadline=None)  # a loaded machine must not fail a correct parser
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_manscdp_error(data: bytes) -> None:
    with contextlib.suppress(ManscdpError):
        manscdp.parse(data)


@settings(deadline=None)  # a loaded machine must not fail a correct parser
@given(st.text(max_size=60))
def test_any_name_encodes_in_gb2312(name: str) -> None:
    body = manscdp.encode(manscdp.catalog_responses(1, "1", [_item(name)], 1)[0], "GB2312")
    body.decode("gb2312")


def test_ptz_round_trip_and_checks() -> None:
    command = manscdp.parse_ptz(manscdp.build_ptz(pan=1, tilt=-1, zoom=1, speed=0x40))
    assert (command.pan, command.tilt, command.zoom, command.pan_speed) == (1, -1, 1, 0x40)
    assert manscdp.parse_ptz(manscdp.build_ptz()).stop
    assert manscdp.parse_ptz("A50F01820005003C").preset == 5
    for bad in ("A50F01", "B50F010000000000", "A50F0101808000FF", "ZZ0F010000000000"):
        with pytest.raises(ManscdpError):
            manscdp.parse_ptz(bad)


# --- SDP -------------------------------------------------------------------------------------

OFFER_UDP = (
    b"v=0\r\no=34020000002000000001 0 0 IN IP4 10.0.0.5\r\ns=Play\r\nc=IN IP4 10.0.0.5\r\n"
    b"t=0 0\r\nm=video 30000 RTP/AVP 96 98 97\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\n"
    b"a=rtpmap:98 H264/90000\r\na=rtpmap:97 MPEG4/90000\r\ny=0100000001\r\nf=\r\n"
)


def test_offer_udp_and_answer() -> None:
    offer = parse_offer(OFFER_UDP)
    assert (offer.session, offer.address, offer.port, offer.transport) == (
        "Play",
        "10.0.0.5",
        30000,
        "udp",
    )
    assert (offer.ssrc, offer.payload_type, offer.setup) == ("0100000001", 96, None)
    assert ssrc_value(offer.ssrc) == 100000001
    answer = build_answer(
        offer,
        channel_id="34020000001320000001",
        address="10.0.0.9",
        port=4000,
        ssrc=offer.ssrc,
        session_id=1,
    ).decode()
    assert "m=video 4000 RTP/AVP 96" in answer and "a=sendonly" in answer
    assert "y=0100000001" in answer and "a=rtpmap:96 PS/90000" in answer


@pytest.mark.parametrize(("setup", "ours"), [("active", "passive"), ("passive", "active")])
def test_offer_tcp_setup_roles(setup: str, ours: str) -> None:
    body = OFFER_UDP.replace(b"RTP/AVP 96 98 97", b"TCP/RTP/AVP 96").replace(
        b"y=", f"a=setup:{setup}\r\ny=".encode()
    )
    offer = parse_offer(body)
    assert (offer.transport, offer.setup) == ("tcp", setup)
    answer = build_answer(
        offer, channel_id="1", address="10.0.0.9", port=9, ssrc="1", session_id=1
    ).decode()
    assert f"a=setup:{ours}" in answer and "TCP/RTP/AVP 96" in answer


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"v=0\r\n", "no video"),
        (b"m=video 1 RTP/AVP 96\r\n", "no connection"),
        (b"c=IN IP4 1.2.3.4\r\nm=video 99999 RTP/AVP 96\r\n", "bad media"),
        (b"c=IN IP4 1.2.3.4\r\nm=video 1000 RTP/SAVP 96\r\n", "unsupported media transport"),
        (b"c=IN IP4 1.2.3.4\r\nm=video 1000 RTP/AVP 98\r\na=rtpmap:98 H264/90000\r\n", "PS"),
        (b"c=IN IP4 1.2.3.4\r\nm=video 1000 RTP/AVP 96\r\ny=abc\r\n", "SSRC"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_bad_offers(body: bytes, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason):
        parse_offer(body)


@settings(deadline=None)  # a loaded machine must not fail a correct parser
@given(st.binary(max_size=300))
def test_any_sdp_parses_or_raises_sip_parse_error(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse_offer(data)


# --- SIP framing and Digest --------------------------------------------------------------------

MESSAGE = (
    b"MESSAGE sip:1@2 SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4:5060;branch=z9hG4bKa\r\nCall-ID: c\r\n"
    b"CSeq: 1 MESSAGE\r\nContent-Length: 5\r\n\r\nhello"
)


def test_stream_framer_cuts_by_content_length() -> None:
    framer = StreamFramer()
    stream = b"\r\n" + MESSAGE + MESSAGE.replace(b"hello", b"HELLO")
    messages = []
    for i in range(0, len(stream), 7):
        messages += framer.feed(stream[i : i + 7])
    assert [parse_message(m).body for m in messages] == [b"hello", b"HELLO"]


def test_stream_framer_refuses_what_it_cannot_frame() -> None:
    with pytest.raises(SipParseError, match="without Content-Length"):
        StreamFramer().feed(b"MESSAGE sip:1@2 SIP/2.0\r\nCall-ID: c\r\n\r\n")
    with pytest.raises(SipParseError, match="exceeds"):
        StreamFramer(max_size=100).feed(
            MESSAGE.replace(b"Content-Length: 5", b"Content-Length: 500")
        )
    with pytest.raises(SipParseError, match="header longer"):
        StreamFramer(max_size=100).feed(b"x" * 200)


def test_digest_rfc2617_example() -> None:
    # The worked example of RFC 2617 §3.5.
    response = digest_response(
        username="Mufasa", password="Circle Of Life", realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET", uri="/dir/index.html",
        qop="auth", nc="00000001", cnonce="0a4f113b",
    )  # fmt: skip
    assert response == "6629fae49393a05397450978507c4ef1"
    challenge = parse_challenge('Digest realm="3402000000", nonce="abc", algorithm=MD5')
    header = build_authorization(
        challenge, username="u", password="p", method="REGISTER", uri="sip:x"
    )
    assert 'username="u"' in header and 'realm="3402000000"' in header
