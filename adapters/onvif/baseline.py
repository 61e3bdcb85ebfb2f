"""What a camera's picture looks like: the measurements of one frame, and the baseline
learned from frames taken while the camera was known good.

Every measurement works on a small grey copy of the frame (``WORK_WIDTH`` pixels wide) and,
for colour, a tinier colour copy, so it costs a few milliseconds even for 1920 x 1080 input.
The checks in :mod:`adapters.onvif.video` compare a frame's measurements with the baseline's.
All of it is CPU-bound and synchronous.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np
from numpy.typing import NDArray

Frame = NDArray[np.uint8]

WORK_WIDTH = 320
TINY_WIDTH = 80
BASELINE_FORMAT = 1


# ---------------------------------------------------------------------------- measurements


@dataclass(frozen=True, slots=True)
class FrameStats:
    """Global measurements of one prepared frame."""

    mean: float
    std: float
    p_high: float  # 97th percentile of grey
    entropy: float  # of the grey histogram, bits
    sharpness: float  # variance of the Laplacian over variance of the picture
    laplacian_var: float
    edge_density: float  # fraction of Canny edge pixels
    noise: float  # Immerkaer's noise sigma estimate
    lab_a: float
    lab_b: float
    card: float  # fraction of the view that looks like a uniform coloured card


@dataclass(frozen=True, slots=True)
class Prepared:
    grey: NDArray[np.uint8]
    stats: FrameStats
    block_std: NDArray[np.float32]


_BLOCK = 20
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_local = threading.local()


def _orb() -> cv2.ORB:
    # OpenCV algorithm objects are not safe to share between threads.
    orb: cv2.ORB | None = getattr(_local, "orb", None)
    if orb is None:
        orb = cv2.ORB.create(
            nfeatures=400, scaleFactor=1.3, nlevels=4, edgeThreshold=15, patchSize=15
        )
        _local.orb = orb
    return orb


def work_size(width: int, height: int) -> tuple[int, int]:
    w = min(WORK_WIDTH, width)
    h = max(_BLOCK, round(height * w / width))
    return w, h


def shrink(frame: Frame, size: tuple[int, int]) -> Frame:
    """``frame`` as 3-channel BGR at ``size`` (width, height), averaged down (INTER_AREA).

    A frame already at ``size`` is returned as a copy, so frames shrunk to the working size
    as soon as they are read give exactly the measurements of the full-size frames.
    """
    if frame.ndim == 2:
        frame = np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), np.uint8)
    elif frame.shape[2] == 4:
        frame = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR), np.uint8)
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), np.uint8)


def grey_picture(frame: Frame, size: tuple[int, int]) -> NDArray[np.uint8]:
    # Exactly the grey picture _prepare makes, without its measurements: the frozen check
    # needs nothing else from the earlier frames of a burst.
    return np.asarray(cv2.cvtColor(shrink(frame, size), cv2.COLOR_BGR2GRAY), np.uint8)


def prepare(frame: Frame, size: tuple[int, int]) -> Prepared:
    small = shrink(frame, size)
    grey = np.asarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), np.uint8)
    tiny_size = (TINY_WIDTH, max(4, round(size[1] * TINY_WIDTH / size[0])))
    tiny = np.asarray(cv2.resize(small, tiny_size, interpolation=cv2.INTER_AREA), np.uint8)

    mean_m, std_m = cv2.meanStdDev(grey)
    mean, std = float(mean_m[0, 0]), float(std_m[0, 0])
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    prob = hist / hist.sum()
    nz = prob[prob > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    p_high = float(np.searchsorted(np.cumsum(prob), 0.97))

    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    lap_var = float(lap.var())
    sharpness = lap_var / max(std * std, 1.0)
    edges = cv2.Canny(grey, 40, 120)
    edge_density = float(np.count_nonzero(edges)) / edges.size
    conv = cv2.filter2D(grey, cv2.CV_32F, _NOISE_KERNEL)
    inner = np.abs(conv[1:-1, 1:-1])
    noise = float(inner.mean()) * math.sqrt(math.pi / 2.0) / 6.0

    lab = cv2.cvtColor(tiny, cv2.COLOR_BGR2Lab)
    lab_mean = cv2.mean(lab)
    card = _card_fraction(tiny)

    gh, gw = grey.shape[0] // _BLOCK, grey.shape[1] // _BLOCK
    blocks = grey[: gh * _BLOCK, : gw * _BLOCK].reshape(gh, _BLOCK, gw, _BLOCK).astype(np.float32)
    block_std = blocks.std(axis=(1, 3))
    stats = FrameStats(
        mean=mean,
        std=std,
        p_high=p_high,
        entropy=entropy,
        sharpness=sharpness,
        laplacian_var=lap_var,
        edge_density=edge_density,
        noise=noise,
        lab_a=float(lab_mean[1]),
        lab_b=float(lab_mean[2]),
        card=card,
    )
    return Prepared(grey=grey, stats=stats, block_std=block_std)


def _card_fraction(tiny: NDArray[np.uint8]) -> float:
    """Fraction of the picture covered by one flat, saturated colour (a "no video" card)."""
    hsv = cv2.cvtColor(tiny, cv2.COLOR_BGR2HSV)
    sat = (hsv[:, :, 1] > 90) & (hsv[:, :, 2] > 70)
    if not sat.any():
        return 0.0
    v = hsv[:, :, 2]
    kernel = np.ones((3, 3), np.uint8)
    flat = cv2.subtract(cv2.dilate(v, kernel), cv2.erode(v, kernel)) < 14
    hue = hsv[:, :, 0][sat]
    dominant = int(np.bincount(hue // 10, minlength=18).argmax())
    same_hue = np.abs(hsv[:, :, 0].astype(np.int16) // 10 - dominant) <= 1
    return float(np.count_nonzero(sat & flat & same_hue)) / sat.size


# ---------------------------------------------------------------------------- baseline


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the camera's picture looked like when it was known good."""

    width: int  # working size of ``reference``
    height: int
    reference: NDArray[np.uint8]  # median grey picture: people passing by are removed
    stats: FrameStats  # medians over the learning frames
    block_std: NDArray[np.float32]  # texture of each 20 x 20 block of the working picture
    activity: float  # median fraction of the view changing between learning frames
    keypoints: NDArray[np.float32]  # (N, 2) ORB keypoints of ``reference``
    descriptors: NDArray[np.uint8]  # (N, 32)
    frames: int  # how many frames it was learned from

    def to_bytes(self) -> bytes:
        """Serialise for storage (a NumPy ``.npz`` archive without pickles)."""
        meta = {
            "format": BASELINE_FORMAT,
            "width": self.width,
            "height": self.height,
            "activity": self.activity,
            "frames": self.frames,
            "stats": asdict(self.stats),
        }
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            meta=np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8),
            reference=self.reference,
            block_std=self.block_std,
            keypoints=self.keypoints,
            descriptors=self.descriptors,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Baseline:
        """Load what :meth:`to_bytes` wrote; raises ``ValueError`` on anything else."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = json.loads(archive["meta"].tobytes().decode("utf-8"))
                arrays = {
                    k: archive[k] for k in ("reference", "block_std", "keypoints", "descriptors")
                }
            if meta.get("format") != BASELINE_FORMAT:
                raise ValueError(f"unsupported baseline format {meta.get('format')!r}")
            stat_names = {f.name for f in fields(FrameStats)}
            stats = FrameStats(**{k: float(meta["stats"][k]) for k in stat_names})
            baseline = cls(
                width=int(meta["width"]),
                height=int(meta["height"]),
                reference=arrays["reference"].astype(np.uint8),
                stats=stats,
                block_std=arrays["block_std"].astype(np.float32),
                activity=float(meta["activity"]),
                keypoints=arrays["keypoints"].astype(np.float32).reshape(-1, 2),
                descriptors=arrays["descriptors"].astype(np.uint8).reshape(-1, 32),
                frames=int(meta["frames"]),
            )
        except (OSError, EOFError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a video baseline: {exc}") from exc
        if baseline.reference.shape != (baseline.height, baseline.width):
            raise ValueError("baseline reference does not match its size")
        return baseline


def _keypoint_mask(height: int, width: int) -> NDArray[np.uint8]:
    # Cameras burn their clock and name into the top and bottom edges; text corners there
    # never move with the view and would vote against a real move.
    mask = np.full((height, width), 255, np.uint8)
    band = max(1, height // 10)
    mask[:band] = 0
    mask[-band:] = 0
    return mask


def features(grey: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    kps, des = _orb().detectAndCompute(grey, _keypoint_mask(*grey.shape))
    if des is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    pts = np.array([kp.pt for kp in kps], np.float32).reshape(-1, 2)
    return pts, np.asarray(des, np.uint8)


def changed_fraction(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    # A step of 2 grey levels at working size is above rounding jitter but below sensor
    # noise on a live camera, so any live picture changes in more than a sliver.
    diff = cv2.absdiff(a, b)
    return float(np.count_nonzero(diff >= 2)) / diff.size


def learn_baseline(frames: Sequence[Frame]) -> Baseline:
    """Learn a baseline from frames of the camera while it is known good.

    Give several frames spread over some seconds (5-20): the reference picture is their
    per-pixel median, which removes people walking through, and the change between
    consecutive frames tells how lively the picture normally is.
    """
    if not frames:
        raise ValueError("need at least one frame to learn a baseline")
    h0, w0 = frames[0].shape[:2]
    size = work_size(w0, h0)
    prepared = [prepare(f, size) for f in frames]
    stack = np.stack([p.grey for p in prepared])
    reference = np.median(stack, axis=0).astype(np.uint8) if len(prepared) > 1 else stack[0].copy()
    stat_names = [f.name for f in fields(FrameStats)]
    med = {n: float(np.median([getattr(p.stats, n) for p in prepared])) for n in stat_names}
    block_std = np.median(np.stack([p.block_std for p in prepared]), axis=0).astype(np.float32)
    changes = [changed_fraction(a.grey, b.grey) for a, b in itertools.pairwise(prepared)]
    activity = float(np.median(changes)) if changes else float("nan")
    pts, des = features(reference)
    return Baseline(
        width=size[0],
        height=size[1],
        reference=reference,
        stats=FrameStats(**med),
        block_std=block_std,
        activity=activity,
        keypoints=pts,
        descriptors=des,
        frames=len(frames),
    )
