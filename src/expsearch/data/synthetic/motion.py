"""Scenario motion plans: the kinematics of one clip on a fine time grid
(`DT`), before anything is drawn. `plan_motion` hands a scenario to its
planner (collision, near miss, normal driving, pass-by), which draws its
variant from the clip's generator and returns a `Plan`: the ego speed and
lateral position, the distance, lateral position and brake lights of the
main road user, and the junctions and lanes it occupies. `integral` (also
used by the renderer) and the private `_ramp_speed`, `_anchor` and
`_smoothstep` turn speeds into distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import CONTACT_M, DT, LANE_M, Road, vehicle_shape


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def integral(values: np.ndarray) -> np.ndarray:
    """Running integral over the DT grid, 0 at the start."""
    steps = (values[1:] + values[:-1]) * (DT / 2)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _ramp_speed(tg, v0: float, t0: float, accel: float, v_end: float) -> np.ndarray:
    """Speed v0 until t0, then a constant acceleration (negative: braking) to v_end."""
    v = v0 + accel * np.clip(tg - t0, 0.0, None)
    return np.maximum(v, v_end) if accel < 0 else np.minimum(v, v_end)


@dataclass
class Plan:
    kind: str
    v_ego: np.ndarray  # on the DT grid
    e_ego: np.ndarray  # lateral position of the camera in road coordinates, on the grid
    main: dict | None  # z, x, brake on the grid + appearance hints
    cross_streets: list[float]  # world distances (along the road) of junctions, m
    crash_at: float | None = None
    busy_lanes: tuple[int, ...] = ()


def _anchor(tg, v_rel: np.ndarray, t_anchor: float, z_anchor: float) -> np.ndarray:
    """Distance over time given the closing speed (v_ego - v_actor) and one known point."""
    travelled = integral(v_rel)
    return z_anchor - (travelled - np.interp(t_anchor, tg, travelled))


def plan_motion(
    rng,
    scenario: str,
    tg: np.ndarray,
    v0: float,
    duration_s: float,
    event: float | None,
    road: Road,
    x_jitter: float,
) -> Plan:
    """The motion plan of one clip of `scenario` on the grid `tg`; `v0` is the
    ego's initial speed, `event` the contact time of a collision (None otherwise)
    and `x_jitter` the main road user's lateral offset from its lane centre."""
    if scenario == "collision":
        return _plan_collision(rng, tg, v0, event, road, x_jitter)
    if scenario == "near_miss":
        return _plan_near_miss(rng, tg, v0, duration_s, road, x_jitter)
    if scenario == "normal":
        return _plan_normal(rng, tg, v0, duration_s, road, x_jitter)
    return _plan_pass_by(rng, tg, v0, duration_s, road, x_jitter)


def _plan_collision(rng, tg, v0, te, road: Road, x_jitter) -> Plan:
    kind = str(rng.choice(["stopped", "brake", "cut_in", "crossing"], p=[0.35, 0.3, 0.2, 0.15]))
    if kind == "cut_in" and not road.same_way_neighbours():
        kind = "stopped"
    # Distracted ego: constant speed up to the contact, then a crash stop.
    v_ego = np.where(tg <= te, v0, np.maximum(v0 - (tg - te) * v0 / 0.35, 0.0))
    e_ego = np.zeros_like(tg)
    after = tg > te
    brake = np.zeros_like(tg, dtype=bool)
    cross: list[float] = []
    blink = ""
    shape = vehicle_shape(rng, "side" if kind == "crossing" else "rear")
    x = np.full_like(tg, x_jitter)
    if kind == "stopped":
        v_actor = np.full_like(tg, rng.uniform(0.0, 0.45) * v0)
        if v_actor[0] < 0.5:
            v_actor[:] = 0.0
            blink = "hazard" if rng.random() < 0.3 else ""
        brake[:] = True
    elif kind == "brake":
        decel = rng.uniform(5.0, 9.0)
        v_end = rng.uniform(0.0, 0.35) * v0
        dv = v0 - v_end
        # Brake so that the closing speed is constant over the last 2 s (looming ~ 1/TTC),
        # and start no earlier than 0.5 s.
        low = CONTACT_M + dv * (2.0 + dv / (2 * decel))
        high = CONTACT_M + dv * (te - 0.5) - dv * dv / (2 * decel)
        gap = float(np.clip(rng.uniform(12.0, 32.0), low, max(low, high)))
        t_brake = te - (gap - CONTACT_M + dv * dv / (2 * decel)) / dv
        v_actor = _ramp_speed(tg, v0, t_brake, -decel, v_end)
        brake = tg >= t_brake
    elif kind == "cut_in":
        v_actor = np.full_like(tg, v0 - max(rng.uniform(0.35, 0.6) * v0, min(5.0, v0)))
        lane = int(rng.choice(road.same_way_neighbours()))
        side = road.center(lane)
        t_end = te - rng.uniform(1.0, 2.0)
        duration = rng.uniform(1.5, 2.5)
        x = side + (x_jitter - side) * _smoothstep((tg - (t_end - duration)) / duration)
        blink = "left" if side > 0 else "right"
    else:  # crossing: a car crosses the ego lane at a junction and is hit broadside
        v_actor = np.zeros_like(tg)
        heading = 1 if rng.random() < 0.5 else -1
        v_cross = rng.uniform(5.0, 11.0)
        x = rng.uniform(-0.8, 0.8) + heading * v_cross * np.minimum(tg - te, 0.0)
        shape["heading"] = heading
    v_rel = v_ego - v_actor
    z = _anchor(tg, v_rel, te, CONTACT_M)
    # After the contact the two cars stay locked together.
    z[after] = CONTACT_M - 0.3 * (1 - np.exp(-(tg[after] - te) / 0.1))
    if kind == "crossing":
        x[after] = x[np.searchsorted(tg, te)]
        cross.append(float(integral(v_ego)[np.searchsorted(tg, te)] + CONTACT_M + 1.0))
    main = {"z": z, "x": x, "brake": brake, "blink": blink, **shape}
    lanes = (road.ego_lane,) + ((lane,) if kind == "cut_in" else ())
    return Plan(f"collision/{kind}", v_ego, e_ego, main, cross, crash_at=te, busy_lanes=lanes)


def _plan_near_miss(rng, tg, v0, duration, road: Road, x_jitter) -> Plan:
    kind = str(
        rng.choice(
            ["brake_stop", "swerve", "lead_brake", "cut_in", "crossing"],
            p=[0.3, 0.2, 0.2, 0.15, 0.15],
        )
    )
    if kind == "cut_in" and not road.same_way_neighbours():
        kind = "brake_stop"
    # When the danger is over (closest approach, or the other car out of the
    # way): inside the clip, so the end of the window shows it clearing; the
    # later it is, the more the window looks like a collision in the making.
    t_safe = rng.uniform(duration - 2.5, duration - 0.3)
    e_ego = np.zeros_like(tg)
    brake = np.zeros_like(tg, dtype=bool)
    x = np.full_like(tg, x_jitter)
    cross: list[float] = []
    blink = ""
    lanes = [road.ego_lane]
    shape = vehicle_shape(rng, "side" if kind == "crossing" else "rear")
    d_min = rng.uniform(CONTACT_M + 0.6, CONTACT_M + 4.0)
    if kind in ("brake_stop", "lead_brake"):
        v_end = rng.uniform(0.0, 0.4) * v0
        if v_end < 0.5:
            v_end = 0.0
        # The ego brakes hard enough to match the other's speed by t_safe.
        decel = rng.uniform(5.0, 9.0)
        t_react = max(t_safe - (v0 - v_end) / decel, min(1.0, t_safe / 2))
        decel = (v0 - v_end) / (t_safe - t_react)
        v_ego = _ramp_speed(tg, v0, t_react, -decel, v_end)
        if kind == "brake_stop":  # a slow or stopped car ahead
            v_actor = np.full_like(tg, v_end)
            brake[:] = True
        else:  # the lead brakes first, the ego a moment later and harder
            t_brake = t_react - rng.uniform(0.6, 1.2)
            lead_decel = decel * rng.uniform(0.5, 0.85)
            v_actor = _ramp_speed(tg, v0, t_brake, -lead_decel, v_end)
            brake = tg >= t_brake
        z = _anchor(tg, v_ego - v_actor, 0.0, 0.0)
        z += d_min - z.min()
    elif kind == "swerve":
        v_actor = np.full_like(tg, rng.uniform(0.0, 0.35) * v0)
        brake[:] = True
        ttc = rng.uniform(0.8, 1.6)
        t_react = t_safe - ttc
        v_ego = _ramp_speed(tg, v0, t_react, -rng.uniform(0.0, 3.0), 0.6 * v0)
        z = _anchor(tg, v_ego - v_actor, t_react, CONTACT_M + (v0 - v_actor[0]) * ttc)
        targets = [j for j in (road.ego_lane - 1, road.ego_lane + 1) if 0 <= j < road.n_lanes]
        target = int(rng.choice(targets)) if targets else -1
        side = road.center(target) if targets else 0.9 * LANE_M
        lanes.append(target)
        swerve_s = min(rng.uniform(0.8, 1.4), ttc / 0.6)
        e_ego = side * _smoothstep((tg - t_react) / swerve_s)
    elif kind == "cut_in":
        lane = int(rng.choice(road.same_way_neighbours()))
        lanes.append(lane)
        side = road.center(lane)
        t_react = t_safe - rng.uniform(0.5, 1.0)
        v_actor = _ramp_speed(tg, v0 - rng.uniform(3.0, 6.0), t_react, rng.uniform(1.5, 3.0), v0)
        v_ego = _ramp_speed(tg, v0, t_react, -rng.uniform(3.0, 6.0), 0.5 * v0)
        z = _anchor(tg, v_ego - v_actor, 0.0, 0.0)
        z += rng.uniform(4.0, 7.0) - z.min()
        duration_lc = rng.uniform(1.2, 2.0)
        t_end = t_react - rng.uniform(0.0, 0.5)
        x = side + (x_jitter - side) * _smoothstep((tg - (t_end - duration_lc)) / duration_lc)
        blink = "left" if side > 0 else "right"
    else:  # crossing: the crossing car clears the ego lane just before the ego gets there
        v_actor = np.zeros_like(tg)
        t_react = t_safe - rng.uniform(0.2, 0.8)
        v_ego = _ramp_speed(tg, v0, t_react, -rng.uniform(2.0, 6.0), 0.3 * v0)
        heading = 1 if rng.random() < 0.5 else -1
        v_cross = rng.uniform(6.0, 12.0)
        margin = rng.uniform(0.5, 1.2)  # when the ego would have been there at full speed
        travelled = integral(v_ego)
        z_cross = v0 * (t_safe + margin) + CONTACT_M  # world distance of the junction
        z = z_cross - travelled
        x = heading * v_cross * (tg - t_safe)  # at the ego lane centre at t_safe
        cross.append(float(z_cross + 1.0))
        shape["heading"] = heading
    main = {"z": z, "x": x, "brake": brake, "blink": blink, **shape}
    return Plan(f"near_miss/{kind}", v_ego, e_ego, main, cross, busy_lanes=tuple(lanes))


def _plan_normal(rng, tg, v0, duration, road: Road, x_jitter) -> Plan:
    kind = str(rng.choice(["steady", "closing", "no_lead"], p=[0.65, 0.2, 0.15]))
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(6.0, 15.0)
    v_ego = v0 * (1 + rng.uniform(0.0, 0.08) * np.sin(2 * np.pi * tg / period + phase))
    e_ego = np.zeros_like(tg)
    lanes = [road.ego_lane]
    if rng.random() < 0.2:  # an unhurried lane change
        targets = road.same_way_neighbours()
        if targets:
            lane = int(rng.choice(targets))
            lanes.append(lane)
            start, length = rng.uniform(0.5, max(duration - 3.5, 0.5)), rng.uniform(2.5, 4.0)
            e_ego = road.center(lane) * _smoothstep((tg - start) / length)
    main = None
    if kind != "no_lead":
        gap = rng.uniform(8.0, 45.0)
        if kind == "closing":  # the lead slows a little, the gap settles at a shorter one
            end = gap * rng.uniform(0.5, 0.8)
            start, length = rng.uniform(0.0, max(duration - 4.0, 0.0)), rng.uniform(3.0, 6.0)
            z = gap + (end - gap) * _smoothstep((tg - start) / length)
            brake = (tg > start) & (tg < start + 0.5 * length)
        else:
            wobble = rng.uniform(0.0, 0.2)
            z = gap * (1 + wobble * np.sin(2 * np.pi * tg / rng.uniform(5, 14) + phase + 1))
            brake = np.zeros_like(tg, dtype=bool)
        main = {"z": z, "x": np.full_like(tg, x_jitter), "brake": brake, "blink": ""}
        main.update(vehicle_shape(rng))
    return Plan(f"normal/{kind}", v_ego, e_ego, main, [], busy_lanes=tuple(lanes))


def _plan_pass_by(rng, tg, v0, duration, road: Road, x_jitter) -> Plan:
    options = ["parked"]
    if road.n_oncoming:
        options.append("oncoming")
    if road.same_way_neighbours():
        options.append("overtaken")
    kind = str(rng.choice(options))
    v_ego = np.full_like(tg, v0)
    t_pass = rng.uniform(
        min(4.0, duration - 1.0), duration + 0.8
    )  # when it is level with the camera
    view = "rear"
    blink = ""
    if kind == "oncoming":
        lane = int(rng.integers(road.n_oncoming))
        x0, v_rel, view = road.center(lane), v0 + rng.uniform(8.0, 20.0), "front"
    elif kind == "overtaken":
        lane = int(rng.choice(road.same_way_neighbours()))
        x0, v_rel = road.center(lane), rng.uniform(3.0, 8.0)
    else:
        lane = -1
        x0, v_rel = road.right_m + rng.uniform(0.8, 1.5), v0
        blink = "hazard" if rng.random() < 0.3 else ""
    z = v_rel * (t_pass - tg)
    main = {"z": z, "x": np.full_like(tg, x0 + 0.3 * x_jitter), "brake": np.zeros_like(tg, bool)}
    main.update(vehicle_shape(rng, view), blink=blink)
    lanes = (road.ego_lane,) + ((lane,) if lane >= 0 else ())
    return Plan(f"pass_by/{kind}", v_ego, np.zeros_like(tg), main, [], busy_lanes=lanes)
