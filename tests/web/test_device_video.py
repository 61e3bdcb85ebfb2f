"""The device board's video line: what the last video check measured and where the picture
was judged from, or why it could not be read."""

from __future__ import annotations

from hub.web.queries import _video


def test_measured_video_and_picture_source() -> None:
    detail = {
        "stream": {"codec": "H265", "width": 1920, "height": 1080},
        "fps_measured": 24.96,
        "video_source": "rtsp_sub",
    }
    assert _video(detail) == "H265 1920x1080 · 25.0 fps · rtsp_sub"


def test_an_unreadable_stream_says_why() -> None:
    detail = {"stream_error": "stream rtsp://10.0.0.5:554/main: RTSP 401, credentials refused"}
    assert _video(detail) == detail["stream_error"]
    assert _video({}) is None
