"""SIP/SDP building and parsing, and digest credentials, as pure functions."""

from __future__ import annotations

import pytest

from adapters.broadcast.sip_protocol import (
    SipParseError,
    SipRequest,
    SipResponse,
    build_authorization,
    build_request,
    build_response,
    build_sdp_offer,
    digest_response,
    parse_challenge,
    parse_credentials,
    parse_message,
    parse_sdp_audio,
    parse_sip_uri,
    tag_of,
    uri_of,
    via_branch,
)

# A 200 OK as SIPp 3.6 (Debian's sip-tester, default uas scenario) sent it to the driver.
SIPP_200_OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:57719;branch=z9hG4bK28729c8cfaa9723a;rport\r\n"
    b'From: "mallhub" <sip:mallhub@127.0.0.1>;tag=8a884a9aec6d\r\n'
    b"To: <sip:service@127.0.0.1:15070>;tag=23807SIPpTag011\r\n"
    b"Call-ID: 8e762ca036a7eb0100a6b8b9@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:127.0.0.1:15070;transport=UDP>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length:   130\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 16000 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)


def test_parse_captured_sipp_answer() -> None:
    msg = parse_message(SIPP_200_OK)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.cseq == (1, "INVITE")
    assert msg.call_id == "8e762ca036a7eb0100a6b8b9@127.0.0.1"
    assert tag_of(msg.get("To")) == "23807SIPpTag011"
    assert tag_of(msg.get("From")) == "8a884a9aec6d"
    assert via_branch(msg.require("Via")) == "z9hG4bK28729c8cfaa9723a"
    assert uri_of(msg.require("Contact")) == "sip:127.0.0.1:15070;transport=UDP"
    assert parse_sip_uri(uri_of(msg.require("Contact"))) == (None, "127.0.0.1", 15070)
    assert len(msg.body) == 130
    sdp = parse_sdp_audio(msg.body)
    assert (sdp.address, sdp.port, sdp.payload_types) == ("127.0.0.1", 16000, (0,))
    assert sdp.codec_for(0) == "PCMU"


def test_request_round_trip_with_body() -> None:
    offer = build_sdp_offer("192.0.2.10", 40000, ["PCMU", "PCMA"], session_id=42)
    request = build_request(
        "INVITE",
        "sip:101@192.0.2.1:5060",
        via="SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKabc;rport",
        from_='"mallhub" <sip:mallhub@192.0.2.1>;tag=f1',
        to="<sip:101@192.0.2.1:5060>",
        call_id="c1@192.0.2.10",
        cseq=7,
        contact="<sip:mallhub@192.0.2.10:5070>",
        body=offer,
    )
    wire = request.to_bytes()
    assert wire.startswith(b"INVITE sip:101@192.0.2.1:5060 SIP/2.0\r\n")
    assert f"Content-Length: {len(offer)}\r\n\r\n".encode() in wire
    parsed = parse_message(wire)
    assert isinstance(parsed, SipRequest)
    assert (parsed.method, parsed.uri, parsed.cseq) == (
        "INVITE",
        "sip:101@192.0.2.1:5060",
        (7, "INVITE"),
    )
    assert parsed.get("content-type") == "application/sdp"
    assert parsed.get("Max-Forwards") == "70"
    sdp = parse_sdp_audio(parsed.body)
    assert (sdp.address, sdp.port, sdp.payload_types, sdp.direction) == (
        "192.0.2.10",
        40000,
        (0, 8),
        "sendonly",
    )
    assert "a=ptime:20" in parsed.body.decode()


def test_compact_and_folded_headers_and_body_cut_to_content_length() -> None:
    data = (
        b"BYE sip:mallhub@10.0.0.5:5070 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKx1\r\n"
        b"v: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bKx0\r\n"
        b"f: <sip:1@10.0.0.9>;tag=a\r\n"
        b"t: <sip:mallhub@10.0.0.5>\r\n"
        b" ;tag=b\r\n"
        b"i: call-9\r\n"
        b"CSeq: 2 BYE\r\n"
        b"l: 3\r\n"
        b"\r\n"
        b"abcdef"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert msg.call_id == "call-9"
    assert len(msg.get_all("Via")) == 2
    assert tag_of(msg.get("To")) == "b"
    assert msg.body == b"abc"
    reply = build_response(msg, 200, "OK")
    reparsed = parse_message(reply.to_bytes())
    assert isinstance(reparsed, SipResponse)
    assert reparsed.get_all("Via") == msg.get_all("Via")
    assert reparsed.cseq == (2, "BYE")


def test_response_adds_to_tag_once() -> None:
    request = parse_message(
        b"INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:x@h>;tag=1\r\n"
        b"To: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert isinstance(request, SipRequest)
    first = build_response(request, 180, "Ringing", to_tag="zz")
    assert tag_of(first.get("To")) == "zz"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"SIP/2.0 20 OK\r\n\r\n",
        b"INVITE sip:a SIP/3.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n",
        b"SIP/2.0 200 OK\r\nContent-Length: 50\r\n\r\nshort",
        b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n",
        b"\xff\xfe\r\n\r\n",
    ],
)
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)


def test_cseq_must_be_well_formed() -> None:
    msg = parse_message(b"SIP/2.0 200 OK\r\nCSeq: one INVITE\r\n\r\n")
    with pytest.raises(SipParseError):
        _ = msg.cseq


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:10.1.2.3", (None, "10.1.2.3", 5060)),
        ("sip:10.1.2.3:5080", (None, "10.1.2.3", 5080)),
        ("sip://pa.mall.local:5062/", (None, "pa.mall.local", 5062)),
        ("sip:201@10.1.2.3:5070;transport=udp", ("201", "10.1.2.3", 5070)),
        ("sip:[2001:db8::1]:5061", (None, "2001:db8::1", 5061)),
    ],
)
def test_parse_sip_uri(uri: str, expected: tuple[str | None, str, int]) -> None:
    assert parse_sip_uri(uri) == expected


@pytest.mark.parametrize("uri", ["sip:", "sip:host:0", "sip:host:99999", "sip:host:x"])
def test_parse_sip_uri_rejects(uri: str) -> None:
    with pytest.raises(ValueError):
        parse_sip_uri(uri)


def test_digest_matches_rfc_2617_example() -> None:
    # RFC 2617 section 3.5.
    assert (
        digest_response(
            username="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_digest_without_qop_follows_rfc_2069() -> None:
    # HA1 = MD5("Mufasa:testrealm@host.com:Circle Of Life"), HA2 = MD5("GET:/dir/index.html")
    assert (
        digest_response(
            username="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method="GET",
            uri="/dir/index.html",
        )
        == "670fd8c2df070c60b045671b8b24ff02"
    )


def test_authorization_header_for_a_challenge() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge.qop == ("auth", "auth-int")
    value = build_authorization(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
    )
    params = parse_credentials(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["qop"] == "auth"
    assert params["nc"] == "00000001"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert params["username"] == "Mufasa"


def test_challenge_errors() -> None:
    with pytest.raises(SipParseError):
        parse_challenge('Basic realm="x"')
    with pytest.raises(SipParseError):
        parse_challenge('Digest realm="x"')
    only_int = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    with pytest.raises(ValueError):
        build_authorization(only_int, username="u", password="p", method="INVITE", uri="sip:1@h")


def test_sdp_media_connection_overrides_session_connection() -> None:
    body = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=video 5000 RTP/AVP 96\r\n"
        b"m=audio 6000 RTP/AVP 8 101\r\nc=IN IP4 10.0.0.2/127\r\na=rtpmap:8 PCMA/8000\r\n"
        b"a=recvonly\r\n"
    )
    sdp = parse_sdp_audio(body)
    assert (sdp.address, sdp.port, sdp.payload_types, sdp.direction) == (
        "10.0.0.2",
        6000,
        (8, 101),
        "recvonly",
    )
    assert sdp.codec_for(8) == "PCMA"
    with pytest.raises(SipParseError):
        parse_sdp_audio(b"v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n")
