"""A synthetic camera picture for the fake ONVIF cameras, with switchable video faults.

The healthy picture looks like a mall corridor: a ceiling with lights, a row of shop
fronts, a tiled floor in perspective, people walking, a burned-in clock and the camera
name, and a little sensor noise. Everything static is drawn once from a seed taken from
``seed`` and the camera name, so every camera shows a different view. A frame depends only
on the time ``t`` and the active faults, so tests can render any instant reproducibly.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

VIDEO_FAULTS = (
    "black",
    "frozen",
    "blurred",
    "covered",
    "dark",
    "bright",
    "colour_cast",
    "noise",
    "moved",
    "signal_loss",
)

# The burned-in clock starts here; an arbitrary fixed instant keeps frames reproducible.
CLOCK_EPOCH = 1_714_540_800.0  # 2024-05-01 05:20:00 UTC

_NOISE_BANK = 3
_NOISE_MARGIN = 64
_SENSOR_NOISE_SIGMA = 2.5
# Strokes of 无视频信号 on a 10 x 10 grid, because OpenCV's built-in fonts are Latin only.
_GLYPHS: tuple[tuple[tuple[tuple[float, float], ...], ...], ...] = (
    (  # 无
        ((2, 1.5), (8, 1.5)),
        ((1, 4.5), (9, 4.5)),
        ((5, 1.5), (5, 5), (4.2, 7.2), (2, 9.5)),
        ((5.6, 4.5), (5.6, 8.8), (6.3, 9.4), (9, 9.4), (9, 8)),
    ),
    (  # 视
        ((1.8, 0.6), (2.4, 1.4)),
        ((0.6, 2.8), (3.4, 2.8), (0.8, 6)),
        ((2.2, 4.6), (2.2, 9.6)),
        ((2.6, 5.4), (3.6, 6.4)),
        ((4.8, 1), (8.8, 1), (8.8, 6.2), (4.8, 6.2), (4.8, 1)),
        ((6.8, 2.2), (6.8, 5)),
        ((6, 6.2), (5.4, 8.2), (4.2, 9.6)),
        ((7.6, 6.2), (7.6, 9), (9.6, 9), (9.6, 7.8)),
    ),
    (  # 频
        ((2.2, 0.6), (2.2, 3.4)),
        ((2.2, 1.8), (4, 1.8)),
        ((0.6, 3.4), (4.4, 3.4)),
        ((1, 4.6), (0.6, 6.4)),
        ((2.6, 4.4), (2.6, 6.4), (0.6, 9.6)),
        ((4, 4.6), (2.4, 8.6)),
        ((5, 0.8), (9.6, 0.8)),
        ((7.2, 0.8), (6.6, 2.4)),
        ((5.4, 2.4), (9.2, 2.4), (9.2, 7.2), (5.4, 7.2), (5.4, 2.4)),
        ((7.3, 3.6), (7.3, 6.4)),
        ((6.6, 7.2), (5, 9.6)),
        ((8, 7.2), (9.6, 9.6)),
    ),
    (  # 信
        ((2.8, 0.6), (0.6, 5)),
        ((1.8, 3), (1.8, 9.6)),
        ((5.6, 0.4), (6.6, 1.2)),
        ((4, 2), (9.4, 2)),
        ((4.8, 3.6), (8.6, 3.6)),
        ((4.8, 5), (8.6, 5)),
        ((4.8, 6.6), (8.6, 6.6), (8.6, 9.4), (4.8, 9.4), (4.8, 6.6)),
    ),
    (  # 号
        ((2.6, 0.6), (7.4, 0.6), (7.4, 3), (2.6, 3), (2.6, 0.6)),
        ((0.6, 4.6), (9.4, 4.6)),
        ((3.6, 4.6), (2.8, 6.8), (8.6, 6.8), (8, 9.4), (6.6, 9.6)),
    ),
)


@dataclass(frozen=True)
class _Person:
    depth: float  # 0 = far (near the shop fronts), 1 = near the camera
    speed: float  # fraction of the frame width per second
    phase: float  # fraction of the walking cycle at t = 0
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]


class Scene:
    """One camera's synthetic view.

    ``faults`` holds names from ``VIDEO_FAULTS`` and may be changed at any time. With
    "frozen", the first frame rendered after the switch is returned from then on (its
    clock included, unless ``osd_after_freeze`` is set, as some cameras draw the clock
    over a stuck picture).
    """

    def __init__(self, name: str, width: int = 1280, height: int = 720, seed: int = 0) -> None:
        if width < 64 or height < 48:
            raise ValueError("scene must be at least 64 x 48 pixels")
        self.name = name
        self.width = width
        self.height = height
        self.seed = seed
        self.faults: set[str] = set()
        # When a frozen camera keeps drawing its clock over the stuck picture.
        self.osd_after_freeze = False
        self._seed_key = [seed & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))]
        rng = np.random.default_rng(self._seed_key)
        self._horizon = int(height * rng.uniform(0.5, 0.58))
        self._background = self._draw_background(rng)
        self._people = self._make_people(rng)
        casts = ((0.55, 0.95, 1.45), (1.5, 1.0, 0.55), (0.7, 1.35, 0.7))
        self._cast = casts[int(rng.integers(len(casts)))]
        self._noise_bank = [self._make_noise(rng) for _ in range(_NOISE_BANK)]
        self._lock = threading.Lock()
        self._frozen: NDArray[np.uint8] | None = None
        self._frozen_osd: NDArray[np.uint8] | None = None

    # ---------------------------------------------------------------- public API

    def render(self, t: float) -> NDArray[np.uint8]:
        """Return the BGR frame at scene time ``t`` seconds with the active faults applied.

        Safe to call from several threads at once (a snapshot server and an MJPEG stream).
        """
        faults = frozenset(self.faults)
        unknown = faults.difference(VIDEO_FAULTS)
        if unknown:
            raise ValueError(f"unknown video faults: {sorted(unknown)}")
        if "signal_loss" in faults:
            return self._no_video_card()
        with self._lock:
            if "frozen" not in faults:
                self._frozen = self._frozen_osd = None
            elif self._frozen is not None and self._frozen_osd is not None:
                if not self.osd_after_freeze:
                    return self._frozen_osd.copy()
                picture = self._frozen.copy()
                self._draw_osd(picture, t)
                return picture
            picture = self._picture(t, faults)
            if "frozen" in faults:
                # The first frame rendered after the switch is the one the camera gets stuck on.
                self._frozen = picture.copy()
            self._draw_osd(picture, t)
            if "frozen" in faults:
                self._frozen_osd = picture.copy()
            return picture

    def jpeg(self, t: float, quality: int = 80) -> bytes:
        """Return the frame at ``t`` encoded as a baseline JPEG."""
        ok, buf = cv2.imencode(".jpg", self.render(t), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return bytes(buf.tobytes())

    # ---------------------------------------------------------------- picture

    def _picture(self, t: float, faults: frozenset[str]) -> NDArray[np.uint8]:
        """The camera's image before the on-screen display is burned in."""
        img = self._background.copy()
        self._draw_people(img, t)
        if "moved" in faults:
            img = self._knocked(img)
        if "covered" in faults:
            self._cover(img)
        if "blurred" in faults:
            sigma = 7.0 * self.width / 1280
            img = np.asarray(cv2.GaussianBlur(img, (0, 0), sigma), np.uint8)
        if "black" in faults:
            img = np.full_like(img, 6)
        if "colour_cast" in faults:
            cast = img.astype(np.float32) * np.array(self._cast, np.float32)
            img = cast.clip(0, 255).astype(np.uint8)
        if "dark" in faults:
            img = np.asarray(cv2.convertScaleAbs(img, alpha=0.22, beta=0), np.uint8)
        if "bright" in faults:
            # Washed out: the picture keeps a quarter of its contrast near white.
            img = np.asarray(cv2.convertScaleAbs(img, alpha=0.25, beta=190), np.uint8)
        self._add_sensor_noise(img, t)
        if "noise" in faults:
            rng = np.random.default_rng([*self._seed_key, int(t * 1000) & 0xFFFFFFFF])
            noise = rng.standard_normal(img.shape, dtype=np.float32) * 40.0
            img = (img.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
        return img

    def _knocked(self, img: NDArray[np.uint8]) -> NDArray[np.uint8]:
        w, h = self.width, self.height
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 7.0, 1.08)
        m[0, 2] += 0.12 * w
        m[1, 2] -= 0.08 * h
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return np.asarray(out, dtype=np.uint8)

    def _cover(self, img: NDArray[np.uint8]) -> None:
        """Something (a hand, a cloth) close to the lens: a dark, out-of-focus blob."""
        w, h = self.width, self.height
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(
            mask,
            (int(w * 0.45), int(h * 0.55)),
            (int(w * 0.62), int(h * 0.7)),
            -15,
            0,
            360,
            255,
            -1,
        )
        mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), w / 60), np.uint8)
        ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        blob = np.empty((h, w, 3), np.float32)
        blob[:] = np.array([38, 46, 62], np.float32)
        blob *= 0.85 + 0.3 * ys  # light falls off across the cover, but smoothly
        alpha = (mask.astype(np.float32) / 255.0)[:, :, None]
        img[:] = (img * (1.0 - alpha) + blob * alpha).astype(np.uint8)

    def _add_sensor_noise(self, img: NDArray[np.uint8], t: float) -> None:
        # Each frame takes a different crop of a larger noise field, so consecutive frames
        # never share their noise, as on a real sensor.
        idx = round(t * 25.0)
        mix = (idx * 2654435761 + self._seed_key[1]) & 0xFFFFFFFF
        pos, neg = self._noise_bank[mix % _NOISE_BANK]
        oy, ox = (mix >> 8) % _NOISE_MARGIN, (mix >> 16) % _NOISE_MARGIN
        h, w = self.height, self.width
        cv2.add(img, pos[oy : oy + h, ox : ox + w], dst=img)
        cv2.subtract(img, neg[oy : oy + h, ox : ox + w], dst=img)

    def _make_noise(self, rng: np.random.Generator) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        shape = (self.height + _NOISE_MARGIN, self.width + _NOISE_MARGIN)
        # Single precision, one channel, then widened: a 1080p bank costs a tenth of a second.
        n = np.rint(rng.standard_normal(shape, dtype=np.float32) * _SENSOR_NOISE_SIGMA)
        pos = np.minimum(np.maximum(n, 0), 255).astype(np.uint8)
        neg = np.minimum(np.maximum(-n, 0), 255).astype(np.uint8)
        # Luminance noise, as most sensors show: the same value on all three channels.
        return (
            np.repeat(pos[:, :, None], 3, axis=2),
            np.repeat(neg[:, :, None], 3, axis=2),
        )

    # ---------------------------------------------------------------- static background

    def _draw_background(self, rng: np.random.Generator) -> NDArray[np.uint8]:
        w, h, hz = self.width, self.height, self._horizon
        img = np.zeros((h, w, 3), np.uint8)
        ceiling = int(h * rng.uniform(0.12, 0.18))
        # Ceiling with a row of lights.
        img[:ceiling] = int(rng.uniform(170, 210))
        n_lights = int(rng.integers(3, 7))
        for i in range(n_lights):
            cx = int((i + 0.5) * w / n_lights)
            cv2.rectangle(
                img, (cx - w // 30, ceiling // 3), (cx + w // 30, ceiling // 2), (250, 252, 252), -1
            )
        cv2.line(img, (0, ceiling), (w, ceiling), (90, 90, 95), max(1, h // 240))
        # Shop fronts between the ceiling and the floor.
        x = 0
        while x < w:
            shop_w = int(w * rng.uniform(0.14, 0.3))
            self._draw_shop(img, rng, x, min(w, x + shop_w), ceiling, hz)
            x += shop_w
            pillar = int(w * rng.uniform(0.015, 0.03))
            grey = float(rng.uniform(150, 200))
            cv2.rectangle(img, (x, ceiling), (x + pillar, hz), (grey, grey, grey + 5), -1)
            cv2.line(img, (x, ceiling), (x, hz), (grey * 0.6,) * 3, max(1, w // 640))
            x += pillar
        self._draw_floor(img, rng, hz)
        # Uneven lighting and surface texture so no area of the view is perfectly flat.
        lo = rng.normal(0.0, 1.0, (max(2, h // 40), max(2, w // 40), 1)).astype(np.float32)
        lo = np.asarray(cv2.resize(lo, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)[
            :, :, None
        ]
        grain = rng.normal(0.0, 3.0, (h, w, 1)).astype(np.float32)
        out = (img.astype(np.float32) + lo * 9.0 + grain) * self._vignette()[:, :, None]
        return np.asarray(out.clip(0, 255), dtype=np.uint8)

    def _vignette(self) -> NDArray[np.float32]:
        w, h = self.width, self.height
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
        return np.asarray(1.0 - 0.18 * r2 / 2.0, dtype=np.float32)

    def _draw_shop(
        self,
        img: NDArray[np.uint8],
        rng: np.random.Generator,
        x0: int,
        x1: int,
        top: int,
        bottom: int,
    ) -> None:
        h = bottom - top
        wall = rng.uniform(60, 220, 3)
        cv2.rectangle(img, (x0, top), (x1, bottom), wall.tolist(), -1)
        sign_bottom = top + int(h * rng.uniform(0.18, 0.28))
        sign = rng.uniform(20, 240, 3)
        cv2.rectangle(img, (x0, top), (x1, sign_bottom), sign.tolist(), -1)
        letters = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 8))))
        scale = max(0.3, (sign_bottom - top) / 40.0)
        text_colour = (255 - sign).tolist()
        cv2.putText(
            img,
            letters,
            (x0 + (x1 - x0) // 8, sign_bottom - (sign_bottom - top) // 4),
            cv2.FONT_HERSHEY_DUPLEX,
            scale,
            text_colour,
            max(1, int(scale * 2)),
            cv2.LINE_AA,
        )
        # Shop window with shelves and goods, and a door.
        win_top = sign_bottom + h // 12
        wx0, wx1 = x0 + (x1 - x0) // 12, x1 - (x1 - x0) // 12
        glass = rng.uniform(40, 120, 3)
        cv2.rectangle(img, (wx0, win_top), (wx1, bottom), glass.tolist(), -1)
        shelves = int(rng.integers(2, 5))
        for i in range(1, shelves + 1):
            y = win_top + i * (bottom - win_top) // (shelves + 1)
            cv2.line(img, (wx0, y), (wx1, y), (200, 200, 200), max(1, h // 120))
            for _ in range(int(rng.integers(3, 9))):
                gx = int(rng.integers(wx0, max(wx0 + 1, wx1 - 10)))
                gw = int(rng.integers(4, max(5, (wx1 - wx0) // 6)))
                gh = int(rng.integers(3, max(4, (bottom - win_top) // (shelves + 1))))
                cv2.rectangle(
                    img, (gx, y - gh), (min(wx1, gx + gw), y), rng.uniform(0, 255, 3).tolist(), -1
                )
        door_w = (wx1 - wx0) // 3
        dx = int(rng.integers(wx0, max(wx0 + 1, wx1 - door_w)))
        cv2.rectangle(
            img, (dx, win_top + h // 8), (dx + door_w, bottom), (glass * 0.7).tolist(), -1
        )
        cv2.rectangle(
            img, (dx, win_top + h // 8), (dx + door_w, bottom), (230, 230, 230), max(1, h // 100)
        )
        cv2.rectangle(img, (wx0, win_top), (wx1, bottom), (30, 30, 30), max(1, h // 90))

    def _draw_floor(self, img: NDArray[np.uint8], rng: np.random.Generator, hz: int) -> None:
        w, h = self.width, self.height
        vx = w * rng.uniform(0.35, 0.65)
        eye = h * 0.9
        tile = rng.uniform(0.7, 1.3)
        c1 = rng.uniform(150, 215, 3)
        c2 = c1 * rng.uniform(0.65, 0.85)
        yy, xx = np.mgrid[hz:h, 0:w].astype(np.float32)
        depth = eye / np.maximum(yy - hz + 8.0, 1.0)
        u = (xx - vx) * depth / w * 6.0 / tile
        v = depth * 3.0 / tile
        checker = ((np.floor(u) + np.floor(v)).astype(np.int64) % 2).astype(bool)
        floor = np.where(checker[:, :, None], c1, c2).astype(np.float32)
        # Reflections of the ceiling lights on the polished floor.
        shine = np.exp(-(((xx - vx) / (w * 0.25)) ** 2)) * np.exp(-((yy - hz) / (h * 0.2)))
        floor += shine[:, :, None] * 35.0
        # A slight blur stands in for the lens and keeps distant tiles from aliasing.
        floor = np.asarray(cv2.GaussianBlur(floor, (0, 0), max(0.6, w / 1600)), np.float32)
        img[hz:h] = floor.clip(0, 255).astype(np.uint8)
        cv2.line(img, (0, hz), (w, hz), (60, 60, 60), max(1, h // 300))

    # ---------------------------------------------------------------- moving content

    def _make_people(self, rng: np.random.Generator) -> list[_Person]:
        people = []
        for _ in range(int(rng.integers(4, 7))):
            skin_v = rng.uniform(120, 210)
            people.append(
                _Person(
                    depth=float(rng.uniform(0.05, 0.9)),
                    speed=float(rng.uniform(0.035, 0.09)) * (1 if rng.random() < 0.5 else -1),
                    phase=float(rng.random()),
                    shirt=tuple(int(c) for c in rng.integers(0, 256, 3)),  # type: ignore[arg-type]
                    trousers=tuple(int(c) for c in rng.integers(0, 120, 3)),  # type: ignore[arg-type]
                    skin=(int(skin_v * 0.7), int(skin_v * 0.8), int(skin_v)),
                )
            )
        return people

    def _draw_people(self, img: NDArray[np.uint8], t: float) -> None:
        w, h, hz = self.width, self.height, self._horizon
        # Far people first so near ones overlap them.
        for p in sorted(self._people, key=lambda q: q.depth):
            feet_y = hz + (h - hz) * (0.1 + 0.85 * p.depth)
            tall = (feet_y - hz) * 1.9 + h * 0.08
            # Walk to and fro across a little more than the frame width.
            cycle = (p.phase + t * p.speed / 2.4) % 1.0
            pos = 2 * cycle if cycle < 0.5 else 2 - 2 * cycle
            cx = -0.1 * w + pos * 1.2 * w
            body_w = tall * 0.13
            swing = math.sin(t * 6.0 + p.phase * 10.0) * body_w * 0.6
            hip = (int(cx), int(feet_y - tall * 0.45))
            lw = max(1, int(body_w * 0.45))
            cv2.line(img, hip, (int(cx + swing), int(feet_y)), p.trousers, lw)
            cv2.line(img, hip, (int(cx - swing), int(feet_y)), p.trousers, lw)
            cv2.ellipse(
                img,
                (int(cx), int(feet_y - tall * 0.65)),
                (max(1, int(body_w)), max(1, int(tall * 0.22))),
                0,
                0,
                360,
                p.shirt,
                -1,
            )
            cv2.circle(
                img, (int(cx), int(feet_y - tall * 0.92)), max(1, int(tall * 0.075)), p.skin, -1
            )

    # ---------------------------------------------------------------- overlays

    def _draw_osd(self, img: NDArray[np.uint8], t: float) -> None:
        scale = self.height / 720.0 * 0.9
        thick = max(1, round(scale * 2))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(CLOCK_EPOCH + t))
        x = int(self.width * 0.02)
        y = int(self.height * 0.06)
        _outlined_text(img, stamp, (x, y), scale, thick)
        (tw, _), _ = cv2.getTextSize(self.name, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        _outlined_text(img, self.name, (self.width - tw - x, self.height - y // 2), scale, thick)

    def _no_video_card(self) -> NDArray[np.uint8]:
        w, h = self.width, self.height
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (170, 70, 16)  # the usual recorder blue
        scale = h / 720.0 * 2.0
        thick = max(1, round(scale * 2))
        text = "NO VIDEO"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.putText(
            img,
            text,
            ((w - tw) // 2, h // 2 - th),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )
        size = th * 1.3
        x0 = (w - size * 1.2 * len(_GLYPHS)) / 2
        y0 = h / 2 + th * 0.3
        for i, glyph in enumerate(_GLYPHS):
            for stroke in glyph:
                pts = np.array(
                    [
                        (x0 + i * size * 1.2 + gx * size / 10, y0 + gy * size / 10)
                        for gx, gy in stroke
                    ],
                    np.int32,
                )
                cv2.polylines(img, [pts], False, (255, 255, 255), thick, cv2.LINE_AA)
        small = scale * 0.4
        cv2.putText(
            img,
            self.name,
            (int(w * 0.03), int(h * 0.94)),
            cv2.FONT_HERSHEY_SIMPLEX,
            small,
            (255, 255, 255),
            max(1, thick // 2),
            cv2.LINE_AA,
        )
        return img


def _outlined_text(
    img: NDArray[np.uint8], text: str, org: tuple[int, int], scale: float, thick: int
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, text, org, font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, font, scale, (255, 255, 255), thick, cv2.LINE_AA)
