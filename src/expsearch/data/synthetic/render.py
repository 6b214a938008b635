"""Rendering one clip: `render_clip` draws a clip of a scenario from its
generator (road layout, motion plan, camera shake, lighting, sky, hills and
road surface, road users and roadside objects in perspective, hood,
occluders, sensor noise) and returns a `RenderedClip`; `_timeline` holds the
first draws of every clip (event and alert times), which the data set writer
replays to label a clip without re-rendering it.
"""

from __future__ import annotations

import math

import numpy as np

from .draw import _draw_prop, _draw_vehicle, _props
from .motion import _integral, _plan_collision, _plan_near_miss, _plan_normal, _plan_pass_by
from .scene import (
    _DT,
    LANE_M,
    NEAR_M,
    SCENARIOS,
    Camera,
    Difficulty,
    RenderedClip,
    _Road,
    _vehicle_shape,
)


def _timeline(rng, scenario: str, duration_s: float) -> tuple[float | None, float | None]:
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
    event, alert = _timeline(rng, scenario, duration_s)
    fps, width, height = camera.fps, camera.width, camera.height
    n_frames = round(duration_s * fps)
    times = np.arange(n_frames) / fps
    tg = np.linspace(0.0, duration_s, round(duration_s / _DT) + 1)
    f = camera.focal_px
    cam_h = camera.mount_height_m

    # ---- road, ego motion and the main road user
    layout = rng.choice(["two_way", "highway", "urban"], p=[0.35, 0.35, 0.3])
    if layout == "two_way":
        road = _Road(2, 1, 1)
    elif layout == "highway":
        n = int(rng.integers(2, 4))
        road = _Road(n, int(rng.integers(n)), 0)
    else:
        n_on = int(rng.integers(1, 3))
        road = _Road(n_on + 2, n_on + int(rng.integers(2)), n_on)
    v0 = float(rng.uniform(9.0, 20.0) * difficulty.speed)
    x_jitter = float(rng.uniform(-0.4, 0.4))
    if scenario == "collision":
        plan = _plan_collision(rng, tg, v0, event, road, x_jitter)
    elif scenario == "near_miss":
        plan = _plan_near_miss(rng, tg, v0, duration_s, road, x_jitter)
    elif scenario == "normal":
        plan = _plan_normal(rng, tg, v0, duration_s, road, x_jitter)
    else:
        plan = _plan_pass_by(rng, tg, v0, duration_s, road, x_jitter)

    def at_frames(values):
        return np.interp(times, tg, values)

    travelled = _integral(plan.v_ego)
    s = at_frames(travelled)
    v_ego = at_frames(plan.v_ego)
    e = at_frames(plan.e_ego)
    psi = np.gradient(e, 1 / fps) / np.maximum(v_ego, 3.0)  # heading from lateral motion
    bend = rng.uniform(-1, 1) / (2 * rng.uniform(250, 2000))  # offset k * z^2, k = 1 / (2R)
    k = bend * (1 + 0.5 * np.sin(2 * np.pi * times / rng.uniform(15, 30) + rng.uniform(0, 6)))
    heading_world = psi + at_frames(_integral(2 * bend * plan.v_ego))

    shake_amp = rng.uniform(0.2, 0.7) * height / 96
    shake = np.zeros(n_frames)
    for _ in range(3):
        shake += np.sin(2 * np.pi * rng.uniform(0.7, 3.5) * times + rng.uniform(0, 6))
    pitch_px = shake_amp * shake / 2 + 0.4 * shake_amp * rng.standard_normal(n_frames)
    # Hard braking dips the nose (the scene moves up), with the suspension's lag.
    decel = np.clip(-np.gradient(plan.v_ego, _DT), 0.0, 12.0)
    lag = np.exp(-np.arange(0, 1.0, _DT) / 0.2)
    dip = np.convolve(decel, lag / lag.sum())[: len(tg)]
    pitch_px -= 0.3 * height / 96 * at_frames(dip)
    yaw_px = 0.3 * shake_amp * rng.standard_normal(n_frames)
    if plan.crash_at is not None:
        since = times - plan.crash_at
        jolt = np.where(since > 0, np.exp(-np.clip(since, 0, None) / 0.35), 0.0)
        pitch_px += jolt * 4 * height / 96 * np.sin(2 * np.pi * 6 * since)
        yaw_px += jolt * 3 * width / 160 * np.sin(2 * np.pi * 4 * since + 1)
    # float32 from here on: the background arrays are the bulk of the work.
    cy = (camera.horizon * height + pitch_px).astype(np.float32)
    cx = (width / 2 + yaw_px).astype(np.float32)
    s, e, psi, k = (a.astype(np.float32) for a in (s, e, psi, k))
    heading_world = heading_world.astype(np.float32)

    # ---- looks: lighting and colours
    darkness = float(rng.uniform(0.0, difficulty.lighting))
    gain = 1.0 - 0.78 * darkness
    contrast = 1.0 - 0.35 * darkness * rng.uniform(0.5, 1.0)
    warm = np.array([1.0 + 0.06 * darkness, 1.0, 1.0 - 0.12 * darkness], np.float32)
    temp = 1.0 + rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    scale = (gain * contrast * warm * temp * np.asarray(camera.tint, np.float32)).astype(np.float32)
    offset = (gain * (1 - contrast) * 110.0 * warm).astype(np.float32)

    def lit(color):
        return (np.asarray(color, np.float32) * scale + offset).astype(np.float32)

    glow = darkness > 0.3
    lights = {
        "tail": np.float32([235, 40, 40]) if glow else lit(np.float32([150, 25, 30])),
        "brake": np.float32([255, 70, 60]),
        "head": np.float32([255, 250, 225]) if glow else lit(np.float32([225, 225, 210])),
        "blink": np.float32([255, 170, 30]),
    }
    zenith = np.float32(np.float32([70, 120, 200]) + rng.uniform(-20, 20, 3))
    horizon_c = np.float32(np.float32([195, 208, 222]) + rng.uniform(-20, 15, 3))
    if darkness > 0.3:
        horizon_c = horizon_c * np.float32([1.1, 0.85, 0.7])
    hill_c = np.float32([75, 95, 85]) * np.float32(rng.uniform(0.7, 1.2))
    grass = np.float32([[85, 115, 55], [115, 122, 62], [145, 135, 95], [95, 105, 80]])[
        rng.integers(4)
    ] * np.float32(rng.uniform(0.85, 1.15))
    asphalt = np.float32([1.0, 1.0, 1.03]) * np.float32(rng.uniform(70, 115))
    shoulder = asphalt * np.float32(rng.uniform(1.1, 1.4))
    paint = np.float32([225, 225, 220])
    yellow = np.float32([225, 185, 60])
    fog_m = np.float32(rng.uniform(90, 260))

    # ---- background: sky and hills, then the ground below the horizon
    rows = np.arange(height, dtype=np.float32) + 0.5
    cols = np.arange(width, dtype=np.float32) + 0.5
    elev = (cy[:, None] - rows[None, :]) / np.float32(f)  # (T, H) angle above the horizon
    sky_mix = np.clip(elev / 0.55, 0, 1) ** 0.7
    sky = horizon_c + sky_mix[..., None] * (zenith - horizon_c)  # (T, H, 3)
    img = np.empty((n_frames, height, width, 3), np.float32)
    img[:] = sky[:, :, None, :]
    # Hills sit at infinity: they only move with the heading, not with the ego.
    top = max(0, math.floor(cy.min() - 0.12 * f))
    low = min(height, math.ceil(cy.max()) + 1)
    azimuth = (cols[None, :] - cx[:, None]) / np.float32(f) + heading_world[:, None]  # (T, W)
    hill_phase = rng.uniform(0, 6, 3)
    ridge = 0.025 + np.float32(0.012 * rng.uniform(0.3, 1.5)) * (
        np.sin(3.1 * azimuth + hill_phase[0])
        + 0.6 * np.sin(7.3 * azimuth + hill_phase[1])
        + 0.3 * np.sin(17.0 * azimuth + hill_phase[2])
    )
    band_elev = elev[:, top:low, None]
    hill = (band_elev > 0) & (band_elev < ridge[:, None, :].astype(np.float32))
    img[:, top:low][hill] = 0.55 * hill_c + 0.45 * horizon_c

    first = int(max(0, math.floor(cy.min())))
    dy = rows[None, first:] - cy[:, None]  # (T, Hg): rows below the horizon
    ground = dy > 0.05
    depth = np.minimum(np.float32(f * cam_h) / np.maximum(dy, 0.05), 1e4).astype(np.float32)
    zw = depth + s[:, None]  # world distance along the road
    inv_px = (np.float32(f) / depth)[:, :, None]  # pixels per metre across
    half_px = (depth / np.float32(2 * f))[:, :, None]  # half a pixel, in metres
    row_m = depth * depth / np.float32(f * cam_h)  # ground depth of one row
    col_m = ((cols[None, :] - cx[:, None]) / np.float32(f))[:, None, :]  # (T, 1, W)
    shift = (psi[:, None] * depth + e[:, None] - k[:, None] * depth * depth)[:, :, None]
    xr = col_m * depth[:, :, None] + shift  # lateral road coordinate of every ground pixel
    xa, xb = xr - half_px, xr + half_px

    def cover_x(left, right):  # fraction of each pixel's footprint inside [left, right]
        return np.clip((np.minimum(right, xb) - np.maximum(left, xa)) * inv_px, 0, 1)

    def fade(wavelength):  # texture that a row cannot resolve averages out
        return np.exp(-4.0 * (row_m / wavelength) ** 2)

    tex = rng.uniform(0, 6, 4)
    grass_tex = (18 * np.sin(2 * np.pi * zw / 6.3 + tex[0]) * fade(6.3))[:, :, None] + np.sin(
        np.float32(2 * np.pi / 4.1) * xr + np.float32(tex[1])
    ) * (10 * np.sin(2 * np.pi * zw / 17.0))[:, :, None]
    road_cov = cover_x(road.left_m - 0.8, road.right_m + 0.8)
    cross = None
    for zc in plan.cross_streets:
        junction = np.clip(
            (np.minimum(zc + 5.0, zw + row_m / 2) - np.maximum(zc - 5.0, zw - row_m / 2)) / row_m,
            0,
            1,
        )[:, :, None]
        cross = junction if cross is None else np.maximum(cross, junction)
    if cross is not None:
        road_cov = np.maximum(road_cov, cross)
    asphalt_tex = (6 * np.sin(2 * np.pi * zw / 11.0 + tex[2]) * fade(11.0))[:, :, None]
    # Worn tyre tracks, 0.9 m either side of every lane centre.
    from_center = np.abs(np.mod(xr + LANE_M / 2, LANE_M) - LANE_M / 2)
    tracks = np.exp(-(((from_center - 0.9) / 0.35) ** 2)) * np.exp(-((half_px / 0.35) ** 2))
    road_lum = 1 - 0.08 * tracks
    shoulder_cov = 1 - cover_x(road.left_m - 0.1, road.right_m + 0.1)

    # Dashes: a box filter of the 3 m on / 6 m off pattern over each row's depth.
    def dash_integral(z):
        return np.floor(z / 9.0) * 3.0 + np.minimum(np.mod(z, 9.0), 3.0)

    dashes = ((dash_integral(zw + row_m / 2) - dash_integral(zw - row_m / 2)) / row_m)[:, :, None]
    white = cover_x(road.left_m + 0.1, road.left_m + 0.25) + cover_x(
        road.right_m - 0.25, road.right_m - 0.1
    )
    yellow_cov = None
    for j in range(1, road.n_lanes):
        b = road.left_m + j * LANE_M
        if j == road.n_oncoming:
            yellow_cov = cover_x(b - 0.2, b - 0.08) + cover_x(b + 0.08, b + 0.2)
        else:
            white += cover_x(b - 0.07, b + 0.07) * dashes
    if cross is not None:  # no markings across a junction
        white *= 1 - cross
        if yellow_cov is not None:
            yellow_cov *= 1 - cross
    haze = np.exp(-depth / fog_m)[:, :, None]
    for c in range(3):
        channel = grass[c] + grass_tex * np.float32((0.9, 1.0, 0.6)[c])
        surface = asphalt[c] * road_lum + asphalt_tex + shoulder_cov * (shoulder[c] - asphalt[c])
        channel += road_cov * (surface - channel)
        channel += white * (paint[c] - channel)
        if yellow_cov is not None:
            channel += yellow_cov * (yellow[c] - channel)
        channel = channel * haze + horizon_c[c] * (1 - haze)
        view = img[:, first:, :, c]
        np.copyto(view, channel, where=np.broadcast_to(ground[:, :, None], view.shape))
    del xr, road_cov, grass_tex, tracks, road_lum, shoulder_cov, white, channel
    img *= scale
    img += offset

    # ---- other road users
    actors: list[dict] = []
    if plan.main is not None:
        main = dict(plan.main)
        main["z"], main["x"] = at_frames(main["z"]), at_frames(main["x"])
        main["brake"] = at_frames(main["brake"].astype(float)) > 0.5
        main["main"] = True
        actors.append(main)
    free = [j for j in range(road.n_lanes) if j not in plan.busy_lanes]
    traffic = [int(j) for j in rng.permutation(free)[: rng.integers(0, 3)]] if free else []
    for lane in traffic:
        oncoming = lane < road.n_oncoming
        car = _vehicle_shape(rng, "front" if oncoming else "rear")
        if oncoming:
            z = rng.uniform(10, 250) - (v0 + rng.uniform(8, 20)) * times
        else:
            z = rng.uniform(8, 70) + rng.uniform(-2.5, 2.5) * times + v0 * times - s
        car.update(z=z, x=np.full(n_frames, road.center(lane) + rng.uniform(-0.3, 0.3)))
        car.update(brake=np.zeros(n_frames, bool), blink="", main=False)
        actors.append(car)

    # ---- occluders (decided now so the draws stay in a fixed order)
    occluders = []
    kinds, weights = ["wiper", "pole", "smudge", "truck"], [0.2, 0.3, 0.25, 0.25]
    if rng.random() < difficulty.occlusion:
        occluders.append(str(rng.choice(kinds, p=weights)))
        if rng.random() < difficulty.occlusion**2:
            occluders.append(str(rng.choice(kinds[:3])))
    size = 0.5 + difficulty.occlusion
    if "truck" in occluders:
        # A truck keeping pace in a neighbouring lane hides one side of the view.
        alongside = [j for j in road.same_way_neighbours() if j in free and j not in traffic]
        if alongside:
            truck = _vehicle_shape(rng)
            truck.update(style="truck", width=2.5, height=3.4)
            truck.update(
                z=rng.uniform(4.0, 9.0) / size + 0.3 * np.sin(times * rng.uniform(0.3, 0.8)),
                x=np.full(n_frames, road.center(int(rng.choice(alongside)))),
                brake=np.zeros(n_frames, bool),
                blink="",
                main=False,
            )
            actors.append(truck)
        else:
            occluders[occluders.index("truck")] = "pole"

    props = _props(rng, road, float(s[-1]) + 300.0)
    trunk = {"tree": [80, 60, 45], "sign": [120, 120, 120], "pole": [0, 0, 0]}
    for prop in props:
        prop["paint"] = lit(prop["color"])
        prop["paint_trunk"] = lit(trunk.get(prop["kind"], prop["color"] * 0.55))
    for actor in actors:
        actor["paint"], actor["paint_dark"] = lit(actor["color"]), lit(actor["color"] * 0.55)
    paints = {
        **lights,
        "glass": lit([45, 55, 68]),
        "black": lit([18, 18, 20]),
        "plate": lit([205, 205, 205]),
        "blink_frames": max(1, round(fps * 0.35)),
    }
    prop_z = np.array([prop["zw"] for prop in props] or [0.0])
    prop_h = np.array([prop["h"] for prop in props] or [0.0])
    object_size = np.zeros(n_frames, np.float32)
    for i in range(n_frames):
        z_now = prop_z - s[i]
        seen = np.flatnonzero((z_now > NEAR_M) & (z_now < 180) & (prop_h * f > 1.5 * z_now))
        items = [(z_now[j], props[j], False) for j in seen if props]
        for actor in actors:
            z = actor["z"][i]
            if z > NEAR_M and actor["height"] * f > 0.3 * z:
                items.append((z, actor, True))
        items.sort(key=lambda item: -item[0])  # far to near: near things cover far ones
        frame = img[i]
        for z, thing, is_vehicle in items:
            x = thing["x"][i] if is_vehicle else thing["x"]
            x_cam = x - e[i] + k[i] * z * z - psi[i] * z
            u_mid = cx[i] + f * x_cam / z
            half = f * thing["width" if is_vehicle else "w"] / (2 * z)
            vb = cy[i] + f * cam_h / z
            vt = vb - f * thing["height" if is_vehicle else "h"] / z
            box = (u_mid - half, u_mid + half, vt, vb)
            if box[1] < 0 or box[0] > width or box[2] > height or box[3] < 0:
                continue
            if is_vehicle:
                _draw_vehicle(frame, box, thing, paints, i)
                if thing.get("main"):
                    object_size[i] = vb - vt
            else:
                _draw_prop(frame, box, thing)

    # ---- things fixed to the camera: hood, occluders
    uu, vv = np.meshgrid(cols, rows)
    hood_rows = slice(int(height * (1 - camera.hood)), height)
    if camera.hood > 0:
        hu, hv = uu[hood_rows], vv[hood_rows]
        top = (
            height * (1 - camera.hood)
            + 0.35 * camera.hood * height * ((hu - width / 2) / (width / 2)) ** 2
        )
        alpha = np.clip(hv - top, 0, 1)[..., None]
        shine = np.clip((hv - top) / (camera.hood * height), 0, 1)[..., None]
        hood_c = lit(np.float32([38, 40, 45]) * rng.uniform(0.6, 1.6)) * (1.25 - 0.5 * shine)
        img[:, hood_rows] += alpha[None] * (hood_c[None] - img[:, hood_rows])
    for kind in occluders:
        if kind == "pole":
            u_p = rng.uniform(0.1, 0.9) * width
            half = rng.uniform(0.02, 0.06) * width * size
            tilt = rng.uniform(-0.3, 0.3)
            dist = np.abs(uu - (u_p + tilt * (vv - height / 2))) - half
            alpha = np.clip(0.5 - dist, 0, 1)[..., None]
            img += alpha[None] * (lit(np.float32([30, 30, 32])) - img)
        elif kind == "smudge":
            uc, vc = rng.uniform(0.15, 0.85) * width, rng.uniform(0.2, 0.8) * height
            sigma = rng.uniform(0.08, 0.16) * height * size
            alpha = 0.75 * np.exp(-((uu - uc) ** 2 + (vv - vc) ** 2) / (2 * sigma**2))[..., None]
            img += alpha[None] * (lit(np.float32([110, 100, 85])) - img)
        elif kind == "wiper":
            pivot = np.array([rng.uniform(0.2, 0.5) * width, height * 1.05])
            length = 1.15 * height * max(size, 0.8)
            period, sweep_s = rng.uniform(1.2, 3.0), rng.uniform(0.6, 1.0)
            phase = rng.uniform(0, period)
            half_w = 0.035 * height * size
            for i in range(n_frames):
                p = ((times[i] + phase) % period) / sweep_s
                if p >= 1:
                    continue
                angle = np.pi * (0.95 - 0.9 * (1 - abs(2 * p - 1)))  # out and back
                d = np.array([np.cos(angle), -np.sin(angle)])
                rel_u, rel_v = uu - pivot[0], vv - pivot[1]
                along = np.clip(rel_u * d[0] + rel_v * d[1], 0, length)
                dist = np.hypot(rel_u - along * d[0], rel_v - along * d[1]) - half_w
                alpha = np.clip(0.5 - dist, 0, 1)[..., None]
                img[i] += alpha * (lit(np.float32([15, 15, 15])) - img[i])

    # ---- sensor: auto-exposure flicker and noise
    img *= (1 + 0.015 * rng.standard_normal(n_frames)).astype(np.float32)[:, None, None, None]
    if difficulty.noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(difficulty.noise)
    frames = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return RenderedClip(
        frames=frames,
        time_of_event=event,
        time_of_alert=alert,
        target=int(scenario == "collision"),
        scenario=scenario,
        object_size=object_size,
        kind=plan.kind,
        fps=float(fps),
    )
