"""A third-party virtual ONVIF camera for tests: ipycam 1.3.0 (ONVIF over HTTP and its own
RTSP server, H.264 encoded by an FFmpeg child process), fed with a moving picture.

Run as ``python -m tests.support.ipycam_camera --fps 10 --lifetime 120``: it prints
``<onvif port> <rtsp port>`` on one line once serving, feeds frames at ``--fps`` (the camera
itself is configured for 25 fps, so ONVIF keeps claiming 25 whatever arrives) and stops by
itself after ``--lifetime`` seconds or when its standard input closes. ipycam lives in its own
process so its threads and its FFmpeg child end with it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import numpy as np

from hub.broker import free_port

CONFIGURED_FPS = 25
MAIN = (640, 360)
SUB = (320, 180)
"""Small pictures: ipycam encodes in Python and FFmpeg children, and must keep up with 25 fps
on a busy test machine for the delivered rate to be the one fed."""


def _picture(i: int, width: int, height: int) -> np.ndarray:
    # A textured, lit scene with a block crossing it: every frame differs from the last.
    y, x = np.mgrid[0:height, 0:width]
    base = ((x // 40 + y // 40) % 2 * 90 + 60).astype(np.uint8)
    frame = np.dstack([base, (base * 0.8).astype(np.uint8), (base * 0.6).astype(np.uint8)])
    left = (i * 12) % (width - 80)
    frame[height // 3 : height // 3 + 80, left : left + 80] = (40, 200, 230)
    return frame


def main() -> int:
    from ipycam import CameraConfig, IPCamera  # type: ignore[import-untyped]

    p = argparse.ArgumentParser()
    p.add_argument("--fps", type=float, default=CONFIGURED_FPS)
    p.add_argument("--lifetime", type=float, default=120.0)
    args = p.parse_args()
    cfg = CameraConfig()
    cfg.local_ip = "127.0.0.1"
    cfg.onvif_port, cfg.rtsp_port = free_port(), free_port()
    cfg.web_port, cfg.rtmp_port, cfg.go2rtc_api_port = free_port(), free_port(), free_port()
    cfg.main_width, cfg.main_height, cfg.main_fps = *MAIN, CONFIGURED_FPS
    cfg.sub_width, cfg.sub_height, cfg.sub_fps = *SUB, CONFIGURED_FPS
    cfg.hw_accel = "cpu"
    camera = IPCamera(cfg)
    if not camera.start():
        print("ipycam did not start", file=sys.stderr)
        return 1
    print(cfg.onvif_port, cfg.rtsp_port, flush=True)
    closed = threading.Event()

    def wait_for_stdin_to_close() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=wait_for_stdin_to_close, daemon=True).start()
    pictures = [_picture(i, *MAIN) for i in range(50)]
    started = time.monotonic()
    i = 0
    try:
        while not closed.is_set() and time.monotonic() - started < args.lifetime:
            camera.stream(pictures[i % len(pictures)].copy())
            i += 1
            time.sleep(max(0.0, started + i / args.fps - time.monotonic()))
    finally:
        camera.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
