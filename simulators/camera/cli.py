"""``mallsim camera``: run one or many simulated cameras from the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from simulators.camera.farm import CameraFarm
from simulators.camera.model import (
    ALL_FAULTS,
)

log = logging.getLogger(__name__)


# --- command line ----------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``mallsim camera``."""
    parser.add_argument("--count", type=int, default=1, help="number of cameras (default 1)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--base-port",
        type=int,
        default=0,
        help="first ONVIF/HTTP port; cameras use consecutive ports (0: any)",
    )
    parser.add_argument(
        "--rtsp-base-port",
        type=int,
        default=0,
        help="first RTSP port; cameras use consecutive ports (0: any)",
    )
    parser.add_argument("--user", required=True, help="ONVIF / HTTP / RTSP username")
    parser.add_argument(
        "--password-env",
        required=True,
        metavar="VAR",
        help="name of the environment variable holding the password (never on the command line)",
    )
    parser.add_argument("--name-prefix", default="cam", help="camera names: PREFIX001, ...")
    parser.add_argument("--resolution", default="1920x1080", help="main stream WIDTHxHEIGHT")
    parser.add_argument("--sub-resolution", default="640x360", help="sub-stream WIDTHxHEIGHT")
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264", help="main stream")
    parser.add_argument("--sub-codec", choices=("h264", "h265"), default="h264", help="sub-stream")
    parser.add_argument("--fps", type=int, default=25, help="frame rate of both streams")
    parser.add_argument(
        "--faults",
        default="",
        help=f"comma-separated faults at start: {', '.join(ALL_FAULTS)}",
    )
    parser.add_argument("--slow-s", type=float, default=5.0, help="delay of the 'slow' fault")
    parser.add_argument("--clock-drift-s", type=float, default=0.0, help="offset of 'clock_drift'")
    parser.add_argument(
        "--low-fps", type=int, default=10, help="pictures a second sent with 'low_fps' (10)"
    )
    parser.add_argument(
        "--no-keyframe-s",
        type=float,
        default=10.0,
        help="seconds between key frames with 'no_keyframe' (10)",
    )
    parser.add_argument(
        "--stall-after-s",
        type=float,
        default=0.0,
        help="seconds of video a session gets before 'stall' stops it (0)",
    )
    parser.add_argument(
        "--jpeg-loop",
        type=int,
        default=0,
        metavar="N",
        help="serve a loop of N frames encoded once, like a hardware encoder (0: encode each)",
    )


def _size(text: str, option: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x", 1))
    except ValueError:
        raise ValueError(f"{option} must look like 1920x1080, got {text!r}") from None
    if not (64 <= width <= 4096 and 48 <= height <= 2160) or width % 2 or height % 2:
        raise ValueError(f"{option}: {text} is not an even size from 64x48 to 4096x2160")
    return width, height


async def run(args: argparse.Namespace) -> int:
    """Run ``--count`` cameras until interrupted; prints one line per camera."""
    password = os.environ.get(args.password_env)
    if not password:
        log.error("environment variable %s is not set: no default credentials", args.password_env)
        return 2
    faults = [f.strip() for f in str(args.faults).split(",") if f.strip()]
    unknown = set(faults) - set(ALL_FAULTS)
    if unknown:
        log.error("unknown faults %s; known: %s", sorted(unknown), ", ".join(ALL_FAULTS))
        return 2
    try:
        width, height = _size(str(args.resolution), "--resolution")
        sub_width, sub_height = _size(str(args.sub_resolution), "--sub-resolution")
        if not 1 <= args.fps <= 60 or not 1 <= args.low_fps <= 60:
            raise ValueError("--fps and --low-fps must be from 1 to 60")
        if args.no_keyframe_s <= 0 or args.no_keyframe_s > 60 or args.stall_after_s < 0:
            raise ValueError("--no-keyframe-s must be in (0, 60] and --stall-after-s >= 0")
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    farm = CameraFarm.uniform(
        args.count,
        username=args.user,
        password=password,
        host=args.host,
        base_port=args.base_port,
        rtsp_base_port=args.rtsp_base_port,
        name_prefix=args.name_prefix,
        faults=faults,
        width=width,
        height=height,
        sub_width=sub_width,
        sub_height=sub_height,
        encoding=str(args.codec).upper(),
        sub_encoding=str(args.sub_codec).upper(),
        fps=args.fps,
        slow_s=args.slow_s,
        clock_drift_s=args.clock_drift_s,
        low_fps=args.low_fps,
        no_keyframe_s=args.no_keyframe_s,
        stall_after_s=args.stall_after_s,
        jpeg_loop=max(0, args.jpeg_loop),
    )
    try:
        async with farm:
            if len(farm):
                # Every camera shows the same loops: encode them before anyone asks.
                await farm[0].video_ready()
            for camera in farm:
                print(
                    f"{camera.config.name}\t{camera.base_url}/onvif/device_service\t"
                    f"{camera.rtsp_url('Profile_1')}\tcontrol {camera.base_url}/sim/state",
                    flush=True,
                )
            await asyncio.Event().wait()
    except OSError as exc:
        log.error("cannot start the cameras: %s", exc)
        return 1
    return 0
