"""What a clip is made of: the scenario names, the dashcams (`Camera`) and the
data set variants built on them (`Variant`, `VARIANTS`), the difficulty knobs
(`Difficulty`), the rendered result (`RenderedClip`), the road layout (`Road`:
lanes in metres from the ego lane) and the look of a road user
(`vehicle_shape`). Also the shared constants of the geometry and the
kinematics: lane width, contact distance, nearest drawn distance and the
kinematics time step `DT`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCENARIOS = ("collision", "normal", "pass_by", "near_miss")
NEGATIVE_SCENARIOS = SCENARIOS[1:]

LANE_M = 3.5
CONTACT_M = 2.2  # camera to the ego car's front bumper: a road user this close touches it
NEAR_M = 0.5  # nothing closer than this is drawn (it is beside or behind the camera)
DT = 0.01  # time step of the kinematics (frames are sampled from it)


@dataclass(frozen=True)
class Camera:
    """A dashcam: image size, frame rate, horizontal field of view, mounting."""

    name: str
    width: int
    height: int
    fps: float
    fov_deg: float
    mount_height_m: float = 1.3
    horizon: float = 0.45  # horizon row, as a fraction of the height from the top
    hood: float = 0.1  # fraction of the rows covered by the ego car's hood
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # sensor colour response

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"camera {self.name}: width and height must be even and positive")
        if not 30 <= self.fov_deg <= 150:
            raise ValueError(f"camera {self.name}: fov_deg must be in [30, 150]")
        if self.fps <= 0:
            raise ValueError(f"camera {self.name}: fps must be positive")

    @property
    def focal_px(self) -> float:
        return self.width / 2 / math.tan(math.radians(self.fov_deg) / 2)


@dataclass(frozen=True)
class Variant:
    """A camera together with its label mix: the positive fraction and the
    relative weights of the negative scenarios."""

    camera: Camera
    positive_fraction: float
    negative_mix: tuple[tuple[str, float], ...]


VARIANTS: dict[str, Variant] = {
    "default": Variant(
        camera=Camera(name="default", width=160, height=96, fps=10.0, fov_deg=90.0),
        positive_fraction=0.5,
        negative_mix=(("normal", 0.4), ("pass_by", 0.3), ("near_miss", 0.3)),
    ),
    # A wide-angle camera mounted high on a van, triggered by harsh braking:
    # fewer collisions, many near misses.
    "fleet": Variant(
        camera=Camera(
            name="fleet",
            width=192,
            height=108,
            fps=15.0,
            fov_deg=120.0,
            mount_height_m=2.2,
            horizon=0.4,
            hood=0.04,
            tint=(0.92, 1.0, 1.1),
        ),
        positive_fraction=0.3,
        negative_mix=(("normal", 0.3), ("pass_by", 0.2), ("near_miss", 0.5)),
    ),
}


@dataclass(frozen=True)
class Difficulty:
    """Knobs that make the clips harder to classify. 0 turns a knob off."""

    noise: float = 3.0  # std of the Gaussian pixel noise, in 0-255 units
    lighting: float = 0.3  # per-clip darkness drawn from [0, lighting]: 0 all day, 1 down to night
    speed: float = 0.5  # multiplies the ego-speed range (9-20 m/s), hence closing speeds
    occlusion: float = 0.15  # chance that a clip has an occluder; larger also means bigger ones
    positive_fraction: float | None = None  # class balance; None: the variant's own

    def __post_init__(self) -> None:
        for name in ("noise", "lighting", "occlusion"):
            if getattr(self, name) < 0:
                raise ValueError(f"difficulty {name} must be >= 0")
        if not 0 <= self.lighting <= 1 or not 0 <= self.occlusion <= 1:
            raise ValueError("difficulty lighting and occlusion must be in [0, 1]")
        if not 0.2 <= self.speed <= 3:
            raise ValueError("difficulty speed must be in [0.2, 3]")
        if self.positive_fraction is not None and not 0 <= self.positive_fraction <= 1:
            raise ValueError("difficulty positive_fraction must be in [0, 1]")


@dataclass(frozen=True)
class RenderedClip:
    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    time_of_event: float | None
    time_of_alert: float | None
    target: int
    scenario: str
    object_size: np.ndarray  # (T,) apparent height (px) of the main road user, 0 when absent
    kind: str  # the scenario's variant, e.g. "collision/cut_in"
    fps: float


@dataclass
class Road:
    n_lanes: int
    ego_lane: int  # lanes are numbered left to right; the first n_oncoming go the other way
    n_oncoming: int

    def center(self, lane: int) -> float:
        return (lane - self.ego_lane) * LANE_M

    @property
    def left_m(self) -> float:
        return self.center(0) - LANE_M / 2

    @property
    def right_m(self) -> float:
        return self.center(self.n_lanes - 1) + LANE_M / 2

    def same_way_neighbours(self) -> list[int]:
        return [
            j for j in (self.ego_lane - 1, self.ego_lane + 1) if self.n_oncoming <= j < self.n_lanes
        ]


_PALETTE = np.array(
    [
        [235, 235, 232], [200, 202, 205], [150, 152, 158], [40, 42, 46], [25, 25, 28],
        [160, 30, 30], [30, 60, 140], [70, 110, 160], [40, 90, 60], [200, 170, 60],
        [120, 80, 50], [230, 120, 40],
    ],
    dtype=np.float32,
)  # fmt: skip


def vehicle_shape(rng, view: str = "rear") -> dict:
    style = rng.choice(["car", "suv", "truck"], p=[0.6, 0.27, 0.13])
    if style == "truck":
        width, height = rng.uniform(2.3, 2.55), rng.uniform(2.6, 3.4)
    elif style == "suv":
        width, height = rng.uniform(1.8, 2.0), rng.uniform(1.65, 1.85)
    else:
        width, height = rng.uniform(1.65, 1.9), rng.uniform(1.35, 1.55)
    if view == "side":
        width = {"truck": 7.0, "suv": 4.8, "car": 4.4}[str(style)] * rng.uniform(0.9, 1.1)
    color = _PALETTE[rng.integers(len(_PALETTE))] * rng.uniform(0.85, 1.1)
    return {
        "width": float(width),
        "height": float(height),
        "style": "truck" if style == "truck" else "car",
        "color": np.clip(color, 0, 255),
        "view": view,
    }
