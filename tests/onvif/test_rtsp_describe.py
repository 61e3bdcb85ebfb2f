"""RTSP liveness (DESCRIBE with Digest): the pure parts on known values, and the client against
the simulator's RTSP server and its stream faults."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from adapters.errors import AuthFailed, DeviceUnreachable
from adapters.onvif.driver import OnvifCamera
from adapters.onvif.rtsp import authorization, describe, parse_answer, sdp_codec
from simulators.camera import CameraConfig, CameraFarm, SimCamera

USER = "installer"


def test_digest_answer_matches_rfc_2617() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = authorization(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b"
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_answer_and_sdp_parsing() -> None:
    status, headers, body = parse_answer(
        b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nv=0\r\n"
    )
    assert (status, headers["cseq"], body) == (200, "2", b"v=0\r\n")
    sdp = b"v=0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 96\r\n"
    assert sdp_codec(sdp + b"a=rtpmap:96 H265/90000\r\n") == "H265"
    with pytest.raises(ValueError):
        parse_answer(b"HTTP/1.1 200 OK\r\n\r\n")


@pytest.fixture
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture
async def sim(password: str) -> AsyncIterator[SimCamera]:
    config = CameraConfig("cam", USER, password, width=640, height=360, encoding="H265")
    async with CameraFarm([config]) as farm:
        yield farm[0]


async def test_describe_answers_the_digest_challenge(sim: SimCamera, password: str) -> None:
    got = await describe(sim.rtsp_url(), device_id="c", username=USER, password=password)
    assert got.codec == "H265"
    with pytest.raises(AuthFailed):
        await describe(sim.rtsp_url(), device_id="c", username=USER, password="wrong")


@pytest.mark.parametrize(
    ("fault", "error"),
    [("rtsp_unauthorized", AuthFailed), ("rtsp_refused", DeviceUnreachable)],
)
async def test_the_probe_reports_a_dead_stream_of_a_live_camera(
    sim: SimCamera, password: str, fault: str, error: type[Exception]
) -> None:
    async with OnvifCamera("cam-1", "127.0.0.1", sim.port, USER, password) as cam:
        healthy = await cam.probe()
        assert healthy.error is None and healthy.stream_error is None
        sim.set_faults([fault])
        probe = await cam.probe()
    assert probe.error is None and probe.reachable  # ONVIF still answers
    assert probe.stream_error_type == error.__name__
    assert probe.stream_error is not None and "rtsp://" in probe.stream_error
    assert password not in probe.stream_error


async def test_the_liveness_probe_asks_the_clock_and_the_stream_only(
    sim: SimCamera, password: str
) -> None:
    async with OnvifCamera("cam-1", "127.0.0.1", sim.port, USER, password) as cam:
        full = await cam.probe()
        assert full.error is None and full.profiles and full.stream_uri
        before = dict(sim.calls)
        light = await cam.liveness(full)
        asked = {k: v - before.get(k, 0) for k, v in sim.calls.items() if v != before.get(k, 0)}
        # One SOAP call (the clock); profiles, URIs and device information carried over.
        assert asked == {"GetSystemDateAndTime": 1}
        assert light.error is None and light.stream_error is None
        assert (light.profiles, light.stream_uri, light.model) == (
            full.profiles,
            full.stream_uri,
            full.model,
        )
        assert light.clock_offset_s is not None and light.latency_s is not None

        # A stream that refuses the DESCRIBE: the full probe tells what changed.
        sim.set_faults(["rtsp_unauthorized"])
        light = await cam.liveness(full)
        assert light.error is None and light.stream_error_type == "AuthFailed"
        assert sim.calls["GetProfiles"] == before["GetProfiles"] + 1
        sim.set_faults(["auth_failure"], clear=["rtsp_unauthorized"])  # a new password
        light = await cam.liveness(full)
        assert light.error_type == "AuthFailed" and light.reachable  # as the full probe says

        sim.set_faults(["offline"], clear=["auth_failure"])
        cam.timeout_s = 1.0
        light = await cam.liveness(full)
    # A camera that stopped answering is found by the first liveness probe.
    assert light.error is not None and light.error_type == "DeviceUnreachable"
    assert not light.reachable and light.profiles == ()
