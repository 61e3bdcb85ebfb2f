"""Component tests: the real ONVIF driver against the camera simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from adapters.errors import AuthFailed, DeviceUnreachable, NotSupported
from adapters.onvif.driver import OnvifCamera, OnvifFault, strip_uri_credentials
from simulators.camera import CameraFarm, SimCamera
from tests.onvif.conftest import USER, make_camera


async def test_connect_reads_device_information(camera: OnvifCamera, sim: SimCamera) -> None:
    assert camera.connected
    assert camera.device_info is not None
    assert camera.device_info.manufacturer == sim.config.manufacturer
    assert camera.device_info.model == sim.config.model
    assert camera.device_info.firmware == sim.config.firmware
    assert camera.clock_offset_s is not None and abs(camera.clock_offset_s) < 2.0
    assert sim.calls["GetServices"] == 1
    assert sim.calls["GetCapabilities"] == 0


async def test_profiles_and_encoder_settings(camera: OnvifCamera, sim: SimCamera) -> None:
    profiles = await camera.get_profiles()
    assert [p.token for p in profiles] == ["Profile_1", "Profile_2"]
    main = profiles[0]
    assert main.encoder is not None
    assert (main.encoder.width, main.encoder.height) == (sim.config.width, sim.config.height)
    assert main.encoder.fps_limit == sim.config.fps
    assert main.encoder.encoding == "H264"
    assert main.video_source_token == "VideoSource_1"
    assert main.has_ptz
    settings = await camera.get_encoder_settings(main.encoder.token)
    assert settings == main.encoder
    sub_stream = profiles[1].encoder
    assert sub_stream is not None and sub_stream.width == sim.config.sub_width


async def test_stream_and_snapshot_uris(camera: OnvifCamera, sim: SimCamera) -> None:
    rtsp = await camera.get_stream_uri("Profile_1")
    assert rtsp.startswith("rtsp://127.0.0.1:")
    http = await camera.get_stream_uri("Profile_1", protocol="HTTP")
    assert http == f"http://127.0.0.1:{sim.port}/onvif/mjpeg?profile=Profile_1"
    snapshot = await camera.get_snapshot_uri("Profile_1")
    assert snapshot == f"http://127.0.0.1:{sim.port}/onvif/snapshot?profile=Profile_1"


async def test_uris_never_carry_credentials(
    camera: OnvifCamera, sim: SimCamera, password: str
) -> None:
    sim.set_faults(["credentials_in_uri"])
    uris = [
        await camera.get_stream_uri("Profile_1"),
        await camera.get_stream_uri("Profile_2", protocol="HTTP"),
        await camera.get_snapshot_uri("Profile_1"),
    ]
    for uri in uris:
        assert uri is not None
        assert password not in uri and "@" not in uri


def test_strip_uri_credentials() -> None:
    assert strip_uri_credentials("rtsp://u:p@h:554/a?x=1") == "rtsp://h:554/a?x=1"
    assert (
        strip_uri_credentials("http://h/snap.jpg?user=u&password=p&ch=1")
        == "http://h/snap.jpg?ch=1"
    )
    assert strip_uri_credentials(None) is None


async def test_snapshot_and_mjpeg_endpoints_need_http_auth(
    camera: OnvifCamera, sim: SimCamera, password: str
) -> None:
    snapshot_uri = await camera.get_snapshot_uri("Profile_1")
    mjpeg_uri = await camera.get_stream_uri("Profile_1", protocol="HTTP")
    assert snapshot_uri is not None
    async with aiohttp.ClientSession() as session:
        async with session.get(snapshot_uri) as resp:
            assert resp.status == 401
        digest = aiohttp.DigestAuthMiddleware(USER, password)
        async with session.get(snapshot_uri, middlewares=(digest,)) as resp:
            assert resp.status == 200
            assert resp.content_type == "image/jpeg"
            assert (await resp.read())[:2] == b"\xff\xd8"
        # Digest only, as cameras ship: right credentials sent as Basic are challenged.
        basic = {"Authorization": aiohttp.encode_basic_auth(USER, password)}
        async with session.get(snapshot_uri, headers=basic) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Digest ")
        async with session.get(mjpeg_uri, middlewares=(digest,)) as resp:
            assert resp.status == 200
            assert resp.content_type == "multipart/x-mixed-replace"
            reader = aiohttp.MultipartReader.from_response(resp)
            part = await reader.next()
            assert isinstance(part, aiohttp.BodyPartReader)
            assert part.headers["Content-Type"] == "image/jpeg"
            assert (await part.read())[:2] == b"\xff\xd8"
        wrong = {"Authorization": aiohttp.encode_basic_auth(USER, "wrong")}
        async with session.get(snapshot_uri, headers=wrong) as resp:
            assert resp.status == 401


async def test_ptz_presets_and_goto(camera: OnvifCamera, sim: SimCamera) -> None:
    presets = await camera.get_presets("Profile_1")
    assert {(p.token, p.name) for p in presets} == set(sim.config.presets.items())
    await camera.goto_preset("Profile_1", "2")
    assert sim.last_preset == "2"
    with pytest.raises(OnvifFault):
        await camera.goto_preset("Profile_1", "no-such-preset")
    assert sim.last_preset == "2"


async def test_relay_outputs_set_and_pulse(camera: OnvifCamera, sim: SimCamera) -> None:
    relays = await camera.get_relay_outputs()
    assert [r.token for r in relays] == list(sim.config.relays)
    assert relays[0].mode == "Bistable" and relays[0].idle_state == "open"
    token = relays[0].token
    await camera.set_relay_output(token, True)
    assert sim.relay_state[token] == "active"
    await camera.set_relay_output(token, False)
    await camera.pulse_relay_output(token, 0.05)
    states = [c.state for c in sim.relay_history]
    assert states == ["active", "inactive", "active", "inactive"]
    assert sim.relay_history[3].at >= sim.relay_history[2].at


async def test_cancelled_pulse_still_releases_the_relay(
    camera: OnvifCamera, sim: SimCamera
) -> None:
    token = sim.config.relays[0]
    task = asyncio.create_task(camera.pulse_relay_output(token, 60))
    async with asyncio.timeout(10):
        await sim.wait_for(lambda s: s.relay_state[token] == "active")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sim.relay_state[token] == "inactive"


async def test_unknown_operation_is_not_supported(camera: OnvifCamera) -> None:
    with pytest.raises(NotSupported):
        await camera.call("devicemgmt", "NoSuchOperation")
    # Known to the WSDL but not implemented by this camera: the camera's own fault.
    with pytest.raises(NotSupported):
        await camera.call("devicemgmt", "GetHostname")


async def test_raw_event_operations(camera: OnvifCamera, sim: SimCamera) -> None:
    props = await camera.call("events", "GetEventProperties")
    assert props.FixedTopicSet is True
    answer = await camera.call(
        "events", "CreatePullPointSubscription", {"InitialTerminationTime": "PT600S"}
    )
    camera.set_pullpoint_address(answer.SubscriptionReference.Address._value_1)
    port = "PullPointSubscription"
    await camera.call("pullpoint", "SetSynchronizationPoint", port_type=port)
    renewed = await camera.call(
        "subscription", "Renew", {"TerminationTime": "PT120S"}, port_type=port
    )
    assert 100 < (renewed.TerminationTime - renewed.CurrentTime).total_seconds() <= 120
    await camera.call("subscription", "Unsubscribe", port_type=port)
    assert sim.subscriptions == []
    assert sim.calls["SetSynchronizationPoint"] == 1


async def test_probe_ok(camera: OnvifCamera, sim: SimCamera) -> None:
    probe = await camera.probe()
    assert probe.reachable and probe.error is None
    assert probe.latency_s is not None and probe.latency_s >= 0
    assert probe.clock_offset_s is not None and abs(probe.clock_offset_s) < 2.0
    assert probe.manufacturer == sim.config.manufacturer
    assert probe.profiles[0].width == sim.config.width
    assert probe.profiles[0].fps_limit == sim.config.fps
    assert probe.stream_uri is not None and probe.stream_uri.startswith("rtsp://")
    assert probe.snapshot_uri is not None


# --- faults ---------------------------------------------------------------------------------


async def test_offline_camera_is_unreachable(sim: SimCamera, password: str) -> None:
    sim.set_faults(["offline"])
    with pytest.raises(DeviceUnreachable) as info:
        async with make_camera(sim, password):
            pass
    assert info.value.device_id == f"cam-{sim.config.name}"


async def test_camera_going_offline_after_connect(camera: OnvifCamera, sim: SimCamera) -> None:
    sim.set_faults(["offline"])
    with pytest.raises(DeviceUnreachable):
        await camera.get_profiles()
    probe = await camera.probe()
    assert not probe.reachable and probe.error_type == "DeviceUnreachable"
    sim.set_faults(clear=["offline"])
    assert (await camera.probe()).reachable


async def test_closed_port_is_unreachable(password: str) -> None:
    async with CameraFarm.uniform(1, username=USER, password=password) as farm:
        port = farm[0].port
    cam = OnvifCamera("gone", "127.0.0.1", port, USER, password, timeout_s=2.0)
    with pytest.raises(DeviceUnreachable):
        await cam.connect()
    assert not cam.connected


async def test_slow_camera_times_out(sim: SimCamera, password: str) -> None:
    sim.set_faults(["slow"], slow_s=30.0)
    with pytest.raises(DeviceUnreachable) as info:
        async with make_camera(sim, password, timeout_s=0.3):
            pass
    assert "no answer" in info.value.message or "longer than" in info.value.message


async def test_a_connect_given_up_during_service_set_up_closes_that_services_session(
    sim: SimCamera, password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Setting a service up parses its WSDL, which takes seconds the first time on a small
    # machine; the library opens the service's HTTP session before. A connect that gives up
    # meanwhile left that session open ("Unclosed client session" at exit).
    from onvif.client import ONVIFService

    made: list[Any] = []
    set_up = ONVIFService.setup

    async def slow_set_up(service: Any) -> None:
        made.append(service)
        await asyncio.sleep(0.5)
        await set_up(service)

    monkeypatch.setattr(ONVIFService, "setup", slow_set_up)
    with pytest.raises(DeviceUnreachable, match="longer than"):
        async with make_camera(sim, password, connect_timeout_s=0.2):
            pass
    assert made, "no service was set up"
    assert [s.binding_key for s in made if not s._session.closed] == []


async def test_auth_failure(sim: SimCamera, password: str) -> None:
    sim.set_faults(["auth_failure"])
    with pytest.raises(AuthFailed):
        async with make_camera(sim, password):
            pass
    assert sim.auth_rejections > 0


async def test_wrong_password(sim: SimCamera) -> None:
    with pytest.raises(AuthFailed):
        async with make_camera(sim, "not-the-password"):
            pass


async def test_probe_reports_auth_failure(camera: OnvifCamera, sim: SimCamera) -> None:
    sim.set_faults(["auth_failure"])
    probe = await camera.probe()
    assert probe.reachable
    assert probe.error_type == "AuthFailed"


@pytest.mark.parametrize("drift", [3600.0, -7200.0])
async def test_clock_drift_is_measured_and_compensated(
    sim: SimCamera, password: str, drift: float
) -> None:
    sim.set_faults(["clock_drift"], clock_drift_s=drift)
    async with make_camera(sim, password) as cam:
        assert cam.clock_offset_s is not None
        assert abs(cam.clock_offset_s - drift) < 2.0
        # Authenticated calls work although the camera rejects tokens outside its window.
        await cam.get_profiles()
        probe = await cam.probe()
        assert probe.error is None
        assert probe.clock_offset_s is not None and abs(probe.clock_offset_s - drift) < 2.0
    assert sim.auth_rejections == 0


async def test_no_get_services_falls_back_to_capabilities(sim: SimCamera, password: str) -> None:
    sim.set_faults(["no_get_services"])
    async with make_camera(sim, password) as cam:
        assert sim.calls["GetCapabilities"] >= 1
        assert await cam.get_profiles()
        assert await cam.get_presets("Profile_1")
        relays = await cam.get_relay_outputs()
        assert relays and relays[0].token == sim.config.relays[0]


async def test_control_api(sim: SimCamera) -> None:
    async with aiohttp.ClientSession(base_url=sim.base_url) as http:
        async with http.post("/sim/faults", json={"set": ["slow"], "slow_s": 1.5}) as resp:
            assert resp.status == 200
            state = await resp.json()
        assert state["faults"] == ["slow"] and state["slow_s"] == 1.5
        async with http.post("/sim/faults", json={"set": ["nonsense"]}) as resp:
            assert resp.status == 400
        async with http.post("/sim/faults", json={"clear": ["slow"]}) as resp:
            assert (await resp.json())["faults"] == []
        async with http.post("/sim/events", json={"kind": "motion", "active": True}) as resp:
            assert resp.status == 200
        async with http.get("/sim/state") as resp:
            state = await resp.json()
        assert state["relay_history"] == [] and state["last_preset"] is None


async def test_cli_requires_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from simulators import camera as camera_sim

    parser = argparse.ArgumentParser()
    camera_sim.configure_parser(parser)
    monkeypatch.delenv("MALLSIM_TEST_PW", raising=False)
    args = parser.parse_args(["--count", "2", "--user", "u", "--password-env", "MALLSIM_TEST_PW"])
    assert await camera_sim.run(args) == 2
    monkeypatch.setenv("MALLSIM_TEST_PW", "secret")
    bad = parser.parse_args(
        ["--user", "u", "--password-env", "MALLSIM_TEST_PW", "--faults", "no_such_fault"]
    )
    assert await camera_sim.run(bad) == 2


async def test_subscription_accepts_absolute_termination_times(
    camera: OnvifCamera, sim: SimCamera
) -> None:
    answer = await camera.call(
        "events",
        "CreatePullPointSubscription",
        {"InitialTerminationTime": "2099-01-01T00:00:00Z"},
    )
    assert answer.TerminationTime.year == 2099
    camera.set_pullpoint_address(answer.SubscriptionReference.Address._value_1)
    renewed = await camera.call(
        "subscription",
        "Renew",
        {"TerminationTime": "2098-06-01T12:00:00Z"},
        port_type="PullPointSubscription",
    )
    assert (renewed.TerminationTime.year, renewed.TerminationTime.month) == (2098, 6)
    assert sim.subscriptions[0].termination.year == 2098
