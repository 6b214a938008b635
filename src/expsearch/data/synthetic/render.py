"""Rendering one clip: `render_clip` turns a scenario into frames in stages,
each drawing what it needs from the clip's generator:

1. `timeline`: the event and alert times. These are the first draws of every
   clip, so the data set writer can replay them to label a clip without
   re-rendering it.
2. `_choose_road`, then `plan_motion` (in `motion`): the road layout and the
   scenario's motion plan.
3. `_camera_path`: where the camera is and looks in every frame (road
   curvature, ego heading, shake, braking dip, crash jolt).
4. `_choose_looks`: lighting and the colours of the clip.
5. `_draw_background`: sky, hills and the road surface.
6. `_road_users`, `_choose_occluders`, `roadside_props` (in `draw`) and
   `_paint`: what stands on or beside the road, with its lit colours.
7. `_draw_objects`: road users and roadside objects in perspective.
8. `_draw_fixed_to_camera`: the hood and the occluders.
9. `_sensor_response`: auto-exposure flicker, noise and quantisation.

The stages run in this order because every draw comes from the one
generator: reordering them (or the draws inside one) changes every clip
rendered after the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .draw import draw_prop, draw_vehicle, roadside_props
from .motion import Plan, integral, plan_motion
from .scene import (
    DT,
    LANE_M,
    NEAR_M,
    SCENARIOS,
    Camera,
    Difficulty,
    RenderedClip,
    Road,
    vehicle_shape,
)

_PAINT = np.float32([225, 225, 220])  # white lane markings
_YELLOW = np.float32([225, 185, 60])  # the centre line between the two directions
_TRUNK = {"tree": [80, 60, 45], "sign": [120, 120, 120], "pole": [0, 0, 0]}
_OCCLUDER_KINDS, _OCCLUDER_WEIGHTS = ["wiper", "pole", "smudge", "truck"], [0.2, 0.3, 0.25, 0.25]


def timeline(rng, scenario: str, duration_s: float) -> tuple[float | None, float | None]:
    """The first draws of every clip: event and alert times (None for negatives).
    `generate` replays them to write the label of a clip it does not re-render."""
    if scenario != "collision":
        return None, None
    event = round(float(rng.uniform(duration_s - 1.0, duration_s - 0.2)), 3)
    lead = round(float(rng.uniform(0.5, 1.0)), 3)
    return event, round(event - lead, 3)


def render_clip(
    rng: np.random.Generator,
    scenario: str,
    camera: Camera,
    difficulty: Difficulty,
    duration_s: float = 8.0,
) -> RenderedClip:
    """Render one clip of `scenario`; everything is drawn from `rng`."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}")
    if duration_s < 3.0:
        raise ValueError(f"duration_s must be at least 3 s, not {duration_s}")
    event, alert = timeline(rng, scenario, duration_s)
    clock = _Clock.of(camera, duration_s)
    road = _choose_road(rng)
    v0 = float(rng.uniform(9.0, 20.0) * difficulty.speed)  # the ego's speed at the start, m/s
    x_jitter = float(rng.uniform(-0.4, 0.4))
    plan = plan_motion(rng, scenario, clock.fine, v0, duration_s, event, road, x_jitter)
    path = _camera_path(rng, plan, clock, camera)
    looks = _choose_looks(rng, difficulty, camera)
    img = _draw_background(rng, path, looks, road, plan, camera)

    actors, free, traffic = _road_users(rng, plan, road, clock, v0, path.s)
    # Occluders are chosen here, before the roadside objects, so that the draws
    # stay in the order the data set was made with; they are drawn last.
    occluders, size, truck = _choose_occluders(rng, difficulty, road, free, traffic, clock)
    if truck is not None:
        actors.append(truck)
    props = roadside_props(rng, road, float(path.s[-1]) + 300.0)
    paints = _paint(props, actors, looks, camera.fps)
    object_size = _draw_objects(img, props, actors, paints, path, camera)

    _draw_fixed_to_camera(rng, img, occluders, size, looks, camera, clock)
    return RenderedClip(
        frames=_sensor_response(rng, img, difficulty),
        time_of_event=event,
        time_of_alert=alert,
        target=int(scenario == "collision"),
        scenario=scenario,
        object_size=object_size,
        kind=plan.kind,
        fps=float(camera.fps),
    )


# ---- time, road and camera motion


@dataclass(frozen=True)
class _Clock:
    """The two time axes of a clip: the frames, and the fine grid (`DT`) the
    motion plan lives on."""

    times: np.ndarray  # (T,) frame times, s
    fine: np.ndarray  # the DT grid, s

    @classmethod
    def of(cls, camera: Camera, duration_s: float) -> _Clock:
        n_frames = round(duration_s * camera.fps)
        return cls(
            times=np.arange(n_frames) / camera.fps,
            fine=np.linspace(0.0, duration_s, round(duration_s / DT) + 1),
        )

    @property
    def n_frames(self) -> int:
        return len(self.times)

    def at_frames(self, values: np.ndarray) -> np.ndarray:
        """Values on the fine grid, sampled at the frame times."""
        return np.interp(self.times, self.fine, values)


def _choose_road(rng) -> Road:
    layout = rng.choice(["two_way", "highway", "urban"], p=[0.35, 0.35, 0.3])
    if layout == "two_way":
        return Road(2, 1, 1)
    if layout == "highway":
        n = int(rng.integers(2, 4))
        return Road(n, int(rng.integers(n)), 0)
    n_on = int(rng.integers(1, 3))
    return Road(n_on + 2, n_on + int(rng.integers(2)), n_on)


@dataclass(frozen=True)
class _CameraPath:
    """Per frame, float32 (the background arrays built from these are the
    bulk of the work): distance travelled `s`, lateral offset `e` and heading
    `psi` relative to the road, road curvature `k` (the road is offset by
    k z^2 at distance z), heading in the world (which moves the hills), and
    the image position (cx, cy) of the point straight ahead on the horizon."""

    s: np.ndarray
    e: np.ndarray
    psi: np.ndarray
    k: np.ndarray
    heading_world: np.ndarray
    cx: np.ndarray
    cy: np.ndarray


def _camera_path(rng, plan: Plan, clock: _Clock, camera: Camera) -> _CameraPath:
    times, at_frames = clock.times, clock.at_frames
    s = at_frames(integral(plan.v_ego))
    v_ego = at_frames(plan.v_ego)
    e = at_frames(plan.e_ego)
    psi = np.gradient(e, 1 / camera.fps) / np.maximum(v_ego, 3.0)  # heading from lateral motion
    bend = rng.uniform(-1, 1) / (2 * rng.uniform(250, 2000))  # offset k * z^2, k = 1 / (2R)
    k = bend * (1 + 0.5 * np.sin(2 * np.pi * times / rng.uniform(15, 30) + rng.uniform(0, 6)))
    heading_world = psi + at_frames(integral(2 * bend * plan.v_ego))
    pitch_px, yaw_px = _camera_shake(rng, plan, clock, camera)
    s, e, psi, k = (a.astype(np.float32) for a in (s, e, psi, k))
    return _CameraPath(
        s=s,
        e=e,
        psi=psi,
        k=k,
        heading_world=heading_world.astype(np.float32),
        cx=(camera.width / 2 + yaw_px).astype(np.float32),
        cy=(camera.horizon * camera.height + pitch_px).astype(np.float32),
    )


def _camera_shake(rng, plan: Plan, clock: _Clock, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Pitch and yaw of the image per frame, in pixels: road vibration, the
    nose dipping under braking, and the jolt of a crash."""
    width, height, n_frames, times = camera.width, camera.height, clock.n_frames, clock.times
    shake_amp = rng.uniform(0.2, 0.7) * height / 96
    shake = np.zeros(n_frames)
    for _ in range(3):
        shake += np.sin(2 * np.pi * rng.uniform(0.7, 3.5) * times + rng.uniform(0, 6))
    pitch_px = shake_amp * shake / 2 + 0.4 * shake_amp * rng.standard_normal(n_frames)
    # Hard braking dips the nose (the scene moves up), with the suspension's lag.
    decel = np.clip(-np.gradient(plan.v_ego, DT), 0.0, 12.0)
    lag = np.exp(-np.arange(0, 1.0, DT) / 0.2)
    dip = np.convolve(decel, lag / lag.sum())[: len(clock.fine)]
    pitch_px -= 0.3 * height / 96 * clock.at_frames(dip)
    yaw_px = 0.3 * shake_amp * rng.standard_normal(n_frames)
    if plan.crash_at is not None:
        since = times - plan.crash_at
        jolt = np.where(since > 0, np.exp(-np.clip(since, 0, None) / 0.35), 0.0)
        pitch_px += jolt * 4 * height / 96 * np.sin(2 * np.pi * 6 * since)
        yaw_px += jolt * 3 * width / 160 * np.sin(2 * np.pi * 4 * since + 1)
    return pitch_px, yaw_px


# ---- looks: lighting and colours


@dataclass(frozen=True)
class _Looks:
    """The clip's lighting (`lit`) and the colours of its sky, hills and ground."""

    darkness: float
    scale: np.ndarray  # lit colour = colour * scale + offset
    offset: np.ndarray
    zenith: np.ndarray
    horizon: np.ndarray
    hill: np.ndarray
    grass: np.ndarray
    asphalt: np.ndarray
    shoulder: np.ndarray
    fog_m: np.float32

    def lit(self, color) -> np.ndarray:
        return (np.asarray(color, np.float32) * self.scale + self.offset).astype(np.float32)

    def lights(self) -> dict[str, np.ndarray]:
        """Lamp colours; at dusk the lamps glow instead of being lit like paint."""
        glow = self.darkness > 0.3
        return {
            "tail": np.float32([235, 40, 40]) if glow else self.lit(np.float32([150, 25, 30])),
            "brake": np.float32([255, 70, 60]),
            "head": np.float32([255, 250, 225]) if glow else self.lit(np.float32([225, 225, 210])),
            "blink": np.float32([255, 170, 30]),
        }


def _choose_looks(rng, difficulty: Difficulty, camera: Camera) -> _Looks:
    darkness = float(rng.uniform(0.0, difficulty.lighting))
    gain = 1.0 - 0.78 * darkness
    contrast = 1.0 - 0.35 * darkness * rng.uniform(0.5, 1.0)
    warm = np.array([1.0 + 0.06 * darkness, 1.0, 1.0 - 0.12 * darkness], np.float32)
    temp = 1.0 + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    scale = (gain * contrast * warm * temp * np.asarray(camera.tint, np.float32)).astype(np.float32)
    offset = (gain * (1 - contrast) * 110.0 * warm).astype(np.float32)
    zenith = np.float32(np.float32([70, 120, 200]) + rng.uniform(-20, 20, 3))
    horizon = np.float32(np.float32([195, 208, 222]) + rng.uniform(-20, 15, 3))
    if darkness > 0.3:
        horizon = horizon * np.float32([1.1, 0.85, 0.7])
    hill = np.float32([75, 95, 85]) * np.float32(rng.uniform(0.7, 1.2))
    grass = np.float32([[85, 115, 55], [115, 122, 62], [145, 135, 95], [95, 105, 80]])[
        rng.integers(4)
    ] * np.float32(rng.uniform(0.85, 1.15))
    asphalt = np.float32([1.0, 1.0, 1.03]) * np.float32(rng.uniform(70, 115))
    shoulder = asphalt * np.float32(rng.uniform(1.1, 1.4))
    fog_m = np.float32(rng.uniform(90, 260))
    return _Looks(
        darkness=darkness,
        scale=scale,
        offset=offset,
        zenith=zenith,
        horizon=horizon,
        hill=hill,
        grass=grass,
        asphalt=asphalt,
        shoulder=shoulder,
        fog_m=fog_m,
    )


# ---- background: sky, hills and the ground


def _pixel_centres(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of the pixel centres."""
    rows = np.arange(camera.height, dtype=np.float32) + 0.5
    cols = np.arange(camera.width, dtype=np.float32) + 0.5
    return rows, cols


def _draw_background(rng, path: _CameraPath, looks: _Looks, road: Road, plan: Plan, camera):
    """(T, H, W, 3) float32 frames of sky, hills and ground, lit."""
    img = _draw_sky(rng, path, looks, camera)
    _draw_ground(rng, img, path, looks, road, plan, camera)
    # Only the background is lit here: everything drawn over it later gets
    # colours that are lit already (`_Looks.lit`). As rows of W pixels: numpy
    # broadcasts a (3,) vector over the last axis 3 values at a time, 4x slower.
    rows, width = img.reshape(-1, img.shape[2] * 3), img.shape[2]
    rows *= np.tile(looks.scale, width)
    rows += np.tile(looks.offset, width)
    return img


def _draw_sky(rng, path: _CameraPath, looks: _Looks, camera: Camera) -> np.ndarray:
    """New frames filled with the sky, with hills along the horizon."""
    f, height, width = camera.focal_px, camera.height, camera.width
    rows, cols = _pixel_centres(camera)
    cx, cy, horizon_c = path.cx, path.cy, looks.horizon
    elev = (cy[:, None] - rows[None, :]) / np.float32(f)  # (T, H) angle above the horizon
    sky_mix = np.clip(elev / 0.55, 0, 1) ** 0.7
    sky = horizon_c + sky_mix[..., None] * (looks.zenith - horizon_c)  # (T, H, 3)
    img = np.empty((len(cy), height, width, 3), np.float32)
    img[:] = sky[:, :, None, :]
    # Hills sit at infinity: they only move with the heading, not with the ego.
    top = max(0, math.floor(cy.min() - 0.12 * f))
    low = min(height, math.ceil(cy.max()) + 1)
    azimuth = (cols[None, :] - cx[:, None]) / np.float32(f) + path.heading_world[:, None]  # (T, W)
    hill_phase = rng.uniform(0, 6, 3)
    ridge = 0.025 + np.float32(0.012 * rng.uniform(0.3, 1.5)) * (
        np.sin(3.1 * azimuth + hill_phase[0])
        + 0.6 * np.sin(7.3 * azimuth + hill_phase[1])
        + 0.3 * np.sin(17.0 * azimuth + hill_phase[2])
    )
    band_elev = elev[:, top:low, None]
    hill = (band_elev > 0) & (band_elev < ridge[:, None, :].astype(np.float32))
    img[:, top:low][hill] = 0.55 * looks.hill + 0.45 * horizon_c
    return img


class _Ground:
    """Where the pixels from row `first` down lie on the road plane, per frame
    (T, rows, W): depth and world distance along the road, lateral road
    coordinate, and each pixel's footprint, so that patterns finer than a
    pixel are averaged over it (area coverage) instead of aliasing."""

    def __init__(self, path: _CameraPath, camera: Camera):
        f, cam_h = camera.focal_px, camera.mount_height_m
        rows, cols = _pixel_centres(camera)
        self.first = int(max(0, math.floor(path.cy.min())))
        dy = rows[None, self.first :] - path.cy[:, None]  # (T, Hg): rows below the horizon
        self.visible = dy > 0.05
        depth = np.minimum(np.float32(f * cam_h) / np.maximum(dy, 0.05), 1e4).astype(np.float32)
        self.depth = depth
        self.zw = depth + path.s[:, None]  # world distance along the road
        self.inv_px = (np.float32(f) / depth)[:, :, None]  # pixels per metre across
        self.half_px = (depth / np.float32(2 * f))[:, :, None]  # half a pixel, in metres
        self.row_m = depth * depth / np.float32(f * cam_h)  # ground depth of one row
        col_m = ((cols[None, :] - path.cx[:, None]) / np.float32(f))[:, None, :]  # (T, 1, W)
        psi, e, k = path.psi[:, None], path.e[:, None], path.k[:, None]
        shift = (psi * depth + e - k * depth * depth)[:, :, None]
        self.xr = col_m * depth[:, :, None] + shift  # lateral road coordinate of every pixel
        self.xa, self.xb = self.xr - self.half_px, self.xr + self.half_px

    def cover_x(self, left, right):
        """Fraction of each pixel's footprint inside [left, right] across the road."""
        cover = np.minimum(right, self.xb)
        cover -= np.maximum(left, self.xa)
        cover *= self.inv_px
        return np.clip(cover, 0, 1, out=cover)

    def cover_z(self, near, far):
        """Fraction of each row's depth inside [near, far] along the road."""
        zw, row_m = self.zw, self.row_m
        return np.clip(
            (np.minimum(far, zw + row_m / 2) - np.maximum(near, zw - row_m / 2)) / row_m, 0, 1
        )

    def fade(self, wavelength):
        """Texture that a row cannot resolve averages out."""
        return np.exp(-4.0 * (self.row_m / wavelength) ** 2)


def _draw_ground(rng, img, path: _CameraPath, looks: _Looks, road: Road, plan: Plan, camera):
    """Grass, road, shoulders, tyre tracks and lane markings, fading into the haze."""
    g = _Ground(path, camera)
    zw, xr = g.zw, g.xr
    tex = rng.uniform(0, 6, 4)
    grass_tex = (18 * np.sin(2 * np.pi * zw / 6.3 + tex[0]) * g.fade(6.3))[:, :, None] + np.sin(
        np.float32(2 * np.pi / 4.1) * xr + np.float32(tex[1])
    ) * (10 * np.sin(2 * np.pi * zw / 17.0))[:, :, None]
    road_cov = g.cover_x(road.left_m - 0.8, road.right_m + 0.8)
    cross = _junctions(g, plan.cross_streets)
    if cross is not None:
        road_cov = np.maximum(road_cov, cross)
    asphalt_tex = (6 * np.sin(2 * np.pi * zw / 11.0 + tex[2]) * g.fade(11.0))[:, :, None]
    # Worn tyre tracks, 0.9 m either side of every lane centre, as road_lum =
    # 1 - 0.08 * exp(-((|mod(xr + LANE_M / 2, LANE_M) - LANE_M / 2| - 0.9) / 0.35)^2)
    # * exp(-(half_px / 0.35)^2). The full-size arrays here and in the loop below
    # are updated in place, in the same operations and dtypes as the formulas
    # (so the same values): each temporary is 0.7 M values.
    road_lum = xr + LANE_M / 2
    np.mod(road_lum, LANE_M, out=road_lum)
    road_lum -= LANE_M / 2
    np.abs(road_lum, out=road_lum)
    road_lum -= 0.9
    road_lum /= 0.35
    np.square(road_lum, out=road_lum)
    np.negative(road_lum, out=road_lum)
    np.exp(road_lum, out=road_lum)
    road_lum *= np.exp(-((g.half_px / 0.35) ** 2))
    road_lum *= 0.08
    np.subtract(1, road_lum, out=road_lum)
    shoulder_cov = g.cover_x(road.left_m - 0.1, road.right_m + 0.1)
    np.subtract(1, shoulder_cov, out=shoulder_cov)
    white, yellow_cov = _lane_markings(g, road, cross)
    haze = np.exp(-g.depth / looks.fog_m)[:, :, None]
    clear = 1 - haze
    grass, asphalt, shoulder, horizon_c = looks.grass, looks.asphalt, looks.shoulder, looks.horizon
    channel, step = np.empty(grass_tex.shape, grass_tex.dtype), np.empty_like(grass_tex)
    for c in range(3):
        # channel = grass + grass_tex * tint
        np.multiply(grass_tex, np.float32((0.9, 1.0, 0.6)[c]), out=channel)
        channel += grass[c]
        # channel += road_cov * (surface - channel), surface = asphalt * road_lum
        # + asphalt_tex + shoulder_cov * (shoulder - asphalt)
        np.add(asphalt[c] * road_lum, asphalt_tex, out=step)
        step += shoulder_cov * (shoulder[c] - asphalt[c])
        step -= channel
        step *= road_cov
        channel += step
        # channel += cover * (paint - channel), white then yellow
        for cover, paint in ((white, _PAINT[c]), (yellow_cov, _YELLOW[c])):
            if cover is not None:
                np.subtract(paint, channel, out=step)
                step *= cover
                channel += step
        # channel = channel * haze + horizon * (1 - haze)
        channel *= haze
        channel += horizon_c[c] * clear
        view = img[:, g.first :, :, c]
        np.copyto(view, channel, where=np.broadcast_to(g.visible[:, :, None], view.shape))


def _junctions(g: _Ground, cross_streets: list[float]):
    """Coverage of the cross streets (10 m wide), or None when there are none."""
    cross = None
    for zc in cross_streets:
        junction = g.cover_z(zc - 5.0, zc + 5.0)[:, :, None]
        cross = junction if cross is None else np.maximum(cross, junction)
    return cross


def _lane_markings(g: _Ground, road: Road, cross):
    """Coverage of the white markings (edges, dashed lane lines) and of the
    double yellow centre line (None on a one-way road)."""

    # Dashes: a box filter of the 3 m on / 6 m off pattern over each row's depth.
    def dash_integral(z):
        return np.floor(z / 9.0) * 3.0 + np.minimum(np.mod(z, 9.0), 3.0)

    zw, row_m = g.zw, g.row_m
    dashes = ((dash_integral(zw + row_m / 2) - dash_integral(zw - row_m / 2)) / row_m)[:, :, None]
    white = g.cover_x(road.left_m + 0.1, road.left_m + 0.25) + g.cover_x(
        road.right_m - 0.25, road.right_m - 0.1
    )
    yellow_cov = None
    for j in range(1, road.n_lanes):
        b = road.left_m + j * LANE_M
        if j == road.n_oncoming:
            yellow_cov = g.cover_x(b - 0.2, b - 0.08) + g.cover_x(b + 0.08, b + 0.2)
        else:
            white += g.cover_x(b - 0.07, b + 0.07) * dashes
    if cross is not None:  # no markings across a junction
        white *= 1 - cross
        if yellow_cov is not None:
            yellow_cov *= 1 - cross
    return white, yellow_cov


# ---- what stands on and beside the road


def _road_users(
    rng, plan: Plan, road: Road, clock: _Clock, v0: float, s: np.ndarray
) -> tuple[list[dict], list[int], list[int]]:
    """The main road user (if the plan has one) and up to two cars of other
    traffic in free lanes, with z, x and brake per frame; also the free lanes
    and those the traffic took."""
    n_frames, times = clock.n_frames, clock.times
    actors: list[dict] = []
    if plan.main is not None:
        main = dict(plan.main)
        main["z"], main["x"] = clock.at_frames(main["z"]), clock.at_frames(main["x"])
        main["brake"] = clock.at_frames(main["brake"].astype(float)) > 0.5
        main["main"] = True
        actors.append(main)
    free = [j for j in range(road.n_lanes) if j not in plan.busy_lanes]
    traffic = [int(j) for j in rng.permutation(free)[: rng.integers(0, 3)]] if free else []
    for lane in traffic:
        oncoming = lane < road.n_oncoming
        car = vehicle_shape(rng, "front" if oncoming else "rear")
        if oncoming:
            z = rng.uniform(10, 250) - (v0 + rng.uniform(8, 20)) * times
        else:
            z = rng.uniform(8, 70) + rng.uniform(-2.5, 2.5) * times + v0 * times - s
        car.update(z=z, x=np.full(n_frames, road.center(lane) + rng.uniform(-0.3, 0.3)))
        car.update(brake=np.zeros(n_frames, bool), blink="", main=False)
        actors.append(car)
    return actors, free, traffic


def _choose_occluders(rng, difficulty: Difficulty, road: Road, free, traffic, clock: _Clock):
    """The occluder kinds of the clip, their size factor, and the truck that
    keeps pace alongside (a road user; None unless "truck" is chosen and a
    neighbouring lane is free, else it becomes a pole)."""
    occluders = []
    if rng.random() < difficulty.occlusion:
        occluders.append(str(rng.choice(_OCCLUDER_KINDS, p=_OCCLUDER_WEIGHTS)))
        if rng.random() < difficulty.occlusion**2:
            occluders.append(str(rng.choice(_OCCLUDER_KINDS[:3])))
    size = 0.5 + difficulty.occlusion
    truck = None
    if "truck" in occluders:
        # A truck keeping pace in a neighbouring lane hides one side of the view.
        alongside = [j for j in road.same_way_neighbours() if j in free and j not in traffic]
        if alongside:
            n_frames = clock.n_frames
            truck = vehicle_shape(rng)
            truck.update(style="truck", width=2.5, height=3.4)
            truck.update(
                z=rng.uniform(4.0, 9.0) / size + 0.3 * np.sin(clock.times * rng.uniform(0.3, 0.8)),
                x=np.full(n_frames, road.center(int(rng.choice(alongside)))),
                brake=np.zeros(n_frames, bool),
                blink="",
                main=False,
            )
        else:
            occluders[occluders.index("truck")] = "pole"
    return occluders, size, truck


def _paint(props: list[dict], actors: list[dict], looks: _Looks, fps: float) -> dict:
    """Give every roadside object and road user its lit colours (in place) and
    return the colours they share: lamps, glass, tyres, plates, blink rate."""
    for prop in props:
        prop["paint"] = looks.lit(prop["color"])
        prop["paint_trunk"] = looks.lit(_TRUNK.get(prop["kind"], prop["color"] * 0.55))
    for actor in actors:
        actor["paint"], actor["paint_dark"] = (
            looks.lit(actor["color"]),
            looks.lit(actor["color"] * 0.55),
        )
    return {
        **looks.lights(),
        "glass": looks.lit([45, 55, 68]),
        "black": looks.lit([18, 18, 20]),
        "plate": looks.lit([205, 205, 205]),
        "blink_frames": max(1, round(fps * 0.35)),
    }


# ---- road users and roadside objects in perspective


def _draw_objects(img, props, actors, paints: dict, path: _CameraPath, camera: Camera):
    """Draw every frame's visible objects, far to near so that near things
    cover far ones; return the main road user's apparent height per frame."""
    f = camera.focal_px
    prop_z = np.array([prop["zw"] for prop in props] or [0.0])
    prop_h = np.array([prop["h"] for prop in props] or [0.0])
    object_size = np.zeros(len(img), np.float32)
    for i in range(len(img)):
        frame = img[i]
        for z, thing, is_vehicle in _in_view(i, props, prop_z, prop_h, actors, path.s[i], f):
            box = _screen_box(i, z, thing, is_vehicle, path, camera)
            if box[1] < 0 or box[0] > camera.width or box[2] > camera.height or box[3] < 0:
                continue
            if is_vehicle:
                draw_vehicle(frame, box, thing, paints, i)
                if thing.get("main"):
                    object_size[i] = box[3] - box[2]
            else:
                draw_prop(frame, box, thing)
    return object_size


def _in_view(i, props, prop_z, prop_h, actors, s_now, f) -> list[tuple]:
    """(distance, object, is_vehicle) of what frame i may show, far to near:
    ahead of the camera, not too far, and at least a pixel or so tall."""
    z_now = prop_z - s_now
    seen = np.flatnonzero((z_now > NEAR_M) & (z_now < 180) & (prop_h * f > 1.5 * z_now))
    items = [(z_now[j], props[j], False) for j in seen if props]
    for actor in actors:
        z = actor["z"][i]
        if z > NEAR_M and actor["height"] * f > 0.3 * z:
            items.append((z, actor, True))
    items.sort(key=lambda item: -item[0])
    return items


def _screen_box(i, z, thing: dict, is_vehicle: bool, path: _CameraPath, camera: Camera):
    """(left, right, top, bottom) in pixels of an object z metres ahead in frame i."""
    f, cam_h = camera.focal_px, camera.mount_height_m
    x = thing["x"][i] if is_vehicle else thing["x"]
    x_cam = x - path.e[i] + path.k[i] * z * z - path.psi[i] * z
    u_mid = path.cx[i] + f * x_cam / z
    half = f * thing["width" if is_vehicle else "w"] / (2 * z)
    vb = path.cy[i] + f * cam_h / z
    vt = vb - f * thing["height" if is_vehicle else "h"] / z
    return (u_mid - half, u_mid + half, vt, vb)


# ---- things fixed to the camera: hood and occluders


def _draw_fixed_to_camera(rng, img, occluders, size, looks: _Looks, camera: Camera, clock: _Clock):
    rows, cols = _pixel_centres(camera)
    uu, vv = np.meshgrid(cols, rows)
    if camera.hood > 0:
        _draw_hood(rng, img, uu, vv, looks, camera)
    for kind in occluders:
        if kind == "pole":
            _draw_pole(rng, img, uu, vv, size, looks, camera)
        elif kind == "smudge":
            _draw_smudge(rng, img, uu, vv, size, looks, camera)
        elif kind == "wiper":
            _draw_wiper(rng, img, uu, vv, size, looks, camera, clock.times)
        # "truck" is a road user, drawn with the others.


def _draw_hood(rng, img, uu, vv, looks: _Looks, camera: Camera) -> None:
    """The ego car's bonnet: a curved edge, brighter towards the camera."""
    height, width = camera.height, camera.width
    hood_rows = slice(int(height * (1 - camera.hood)), height)
    hu, hv = uu[hood_rows], vv[hood_rows]
    top = (
        height * (1 - camera.hood)
        + 0.35 * camera.hood * height * ((hu - width / 2) / (width / 2)) ** 2
    )
    alpha = np.clip(hv - top, 0, 1)[..., None]
    shine = np.clip((hv - top) / (camera.hood * height), 0, 1)[..., None]
    hood_c = looks.lit(np.float32([38, 40, 45]) * rng.uniform(0.6, 1.6)) * (1.25 - 0.5 * shine)
    img[:, hood_rows] += alpha[None] * (hood_c[None] - img[:, hood_rows])


def _draw_pole(rng, img, uu, vv, size, looks: _Looks, camera: Camera) -> None:
    """A slanted pole in front of the lens, in every frame."""
    width, height = camera.width, camera.height
    u_p = rng.uniform(0.1, 0.9) * width
    half = rng.uniform(0.02, 0.06) * width * size
    tilt = rng.uniform(-0.3, 0.3)
    dist = np.abs(uu - (u_p + tilt * (vv - height / 2))) - half
    alpha = np.clip(0.5 - dist, 0, 1)[..., None]
    img += alpha[None] * (looks.lit(np.float32([30, 30, 32])) - img)


def _draw_smudge(rng, img, uu, vv, size, looks: _Looks, camera: Camera) -> None:
    """A blurred patch of dirt on the windscreen, in every frame."""
    width, height = camera.width, camera.height
    uc, vc = rng.uniform(0.15, 0.85) * width, rng.uniform(0.2, 0.8) * height
    sigma = rng.uniform(0.08, 0.16) * height * size
    alpha = 0.75 * np.exp(-((uu - uc) ** 2 + (vv - vc) ** 2) / (2 * sigma**2))[..., None]
    img += alpha[None] * (looks.lit(np.float32([110, 100, 85])) - img)


def _draw_wiper(rng, img, uu, vv, size, looks: _Looks, camera: Camera, times) -> None:
    """A wiper blade that sweeps out and back every `period` seconds."""
    width, height = camera.width, camera.height
    pivot = np.array([rng.uniform(0.2, 0.5) * width, height * 1.05])
    length = 1.15 * height * max(size, 0.8)
    period, sweep_s = rng.uniform(1.2, 3.0), rng.uniform(0.6, 1.0)
    phase = rng.uniform(0, period)
    half_w = 0.035 * height * size
    blade = looks.lit(np.float32([15, 15, 15]))
    rel_u, rel_v = uu - pivot[0], vv - pivot[1]
    for i, t in enumerate(times):
        p = ((t + phase) % period) / sweep_s
        if p >= 1:
            continue
        angle = np.pi * (0.95 - 0.9 * (1 - abs(2 * p - 1)))  # out and back
        d = np.array([np.cos(angle), -np.sin(angle)])
        along = np.clip(rel_u * d[0] + rel_v * d[1], 0, length)
        dist = np.hypot(rel_u - along * d[0], rel_v - along * d[1]) - half_w
        alpha = np.clip(0.5 - dist, 0, 1)[..., None]
        img[i] += alpha * (blade - img[i])


# ---- the sensor


def _sensor_response(rng, img, difficulty: Difficulty) -> np.ndarray:
    """Auto-exposure flicker and Gaussian noise, then 8-bit pixels."""
    img *= (1 + 0.015 * rng.standard_normal(len(img))).astype(np.float32)[:, None, None, None]
    if difficulty.noise > 0:
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        noise *= np.float32(difficulty.noise)
        img += noise
    # In place: these are full-clip arrays (3.7 M values at 160x96).
    np.rint(img, out=img)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)
