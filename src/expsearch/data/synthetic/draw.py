"""Drawing primitives for one frame: `_fill` blends an anti-aliased
rectangle into the image, `draw_vehicle` and `draw_prop` build a road user
or a roadside object (tree, pole, sign, building) out of such rectangles from
its on-screen box, and `roadside_props` scatters the roadside objects of a
clip along the road. The perspective projection that gives the boxes is in
`render`.
"""

from __future__ import annotations

import math

import numpy as np

from .scene import Road


def _fill(img, u0, u1, v0, v1, color, alpha=1.0) -> None:
    """Blend a rectangle with anti-aliased (area-coverage) edges into img (H, W, 3)."""
    height, width = img.shape[:2]
    # Python floats: the boxes arrive as numpy scalars, whose arithmetic below is
    # several times slower, for the same double-precision values.
    u0, u1, v0, v1 = float(u0), float(u1), float(v0), float(v1)
    iu0, iu1 = max(math.floor(u0), 0), min(math.ceil(u1), width)
    iv0, iv1 = max(math.floor(v0), 0), min(math.ceil(v1), height)
    if iu1 <= iu0 or iv1 <= iv0:
        return
    # Only the border pixels are partly covered; set them with scalar arithmetic.
    cu = [1.0] * (iu1 - iu0)
    cu[0] = min(iu0 + 1, u1) - max(iu0, u0)
    cu[-1] = min(iu1, u1) - max(iu1 - 1, u0)
    cv = [alpha] * (iv1 - iv0)
    cv[0] = alpha * (min(iv0 + 1, v1) - max(iv0, v0))
    cv[-1] = alpha * (min(iv1, v1) - max(iv1 - 1, v0))
    cover = np.multiply.outer(np.array(cv, np.float32), np.array(cu, np.float32))
    # Most rectangles cover a few dozen pixels (3,500 a clip), so the number of
    # numpy calls is the cost: one temporary, updated in place.
    patch = img[iv0:iv1, iu0:iu1]
    step = color - patch
    step *= cover[..., None]
    patch += step


def draw_vehicle(img, box, actor: dict, paints: dict, frame: int) -> None:
    """A road user as a box seen from behind, the front or the side; `paints`
    holds the clip's lit colours and light colours."""
    u0, u1, vt, vb = box
    w, h = u1 - u0, vb - vt
    body, dark, black = actor["paint"], actor["paint_dark"], paints["black"]
    _fill(img, u0 - 0.05 * w, u1 + 0.05 * w, vb - 0.03 * h, vb + 0.05 * h, black, 0.55)
    if h < 3:  # a few pixels: the details would not show
        _fill(img, u0, u1, vt, vb, body)
        return
    view = actor["view"]
    if view == "side":
        front_right = actor.get("heading", 1) > 0
        _fill(img, u0, u1, vt + 0.38 * h, vb - 0.12 * h, body)
        if actor["style"] == "truck":
            _fill(img, u0, u1, vt, vb - 0.12 * h, body)
            cab = (u1 - 0.25 * w, u1 - 0.02 * w) if front_right else (u0 + 0.02 * w, u0 + 0.25 * w)
        else:
            cab = (u0 + 0.22 * w, u1 - 0.3 * w) if front_right else (u0 + 0.3 * w, u1 - 0.22 * w)
        _fill(img, cab[0], cab[1], vt, vt + 0.4 * h, body)
        _fill(
            img, cab[0] + 0.04 * w, cab[1] - 0.04 * w, vt + 0.06 * h, vt + 0.36 * h, paints["glass"]
        )
        for c in (0.2, 0.8):
            _fill(img, u0 + (c - 0.08) * w, u0 + (c + 0.08) * w, vb - 0.3 * h, vb, black)
        head, tail = (u1 - 0.03 * w, u0) if front_right else (u0, u1 - 0.03 * w)
        _fill(img, head, head + 0.03 * w, vt + 0.45 * h, vt + 0.58 * h, paints["head"])
        _fill(img, tail, tail + 0.03 * w, vt + 0.45 * h, vt + 0.58 * h, paints["tail"])
        return
    _fill(img, u0 + 0.04 * w, u0 + 0.24 * w, vb - 0.2 * h, vb, black)
    _fill(img, u1 - 0.24 * w, u1 - 0.04 * w, vb - 0.2 * h, vb, black)
    _fill(img, u0, u1, vt, vb - 0.1 * h, body)
    _fill(img, u0, u1, vb - 0.27 * h, vb - 0.1 * h, dark)
    braking = bool(actor["brake"][frame])
    if actor["style"] == "truck" and view == "rear":
        _fill(img, (u0 + u1) / 2 - 0.01 * w, (u0 + u1) / 2 + 0.01 * w, vt, vb - 0.27 * h, dark)
        lamp_v = (vb - 0.34 * h, vb - 0.27 * h)
    elif view == "rear":
        _fill(img, u0 + 0.12 * w, u1 - 0.12 * w, vt + 0.08 * h, vt + 0.42 * h, paints["glass"])
        lamp_v = (vt + 0.48 * h, vt + 0.6 * h)
    else:  # front: windscreen, grille, headlights
        _fill(img, u0 + 0.1 * w, u1 - 0.1 * w, vt + 0.06 * h, vt + 0.42 * h, paints["glass"])
        _fill(img, u0 + 0.3 * w, u1 - 0.3 * w, vb - 0.45 * h, vb - 0.3 * h, black)
        lamp_v = (vb - 0.5 * h, vb - 0.38 * h)
    lamp = paints["head"] if view == "front" else paints["brake" if braking else "tail"]
    grow = 0.02 * h if braking else 0.0
    for a, b in ((0.03, 0.2), (0.8, 0.97)):
        _fill(img, u0 + a * w, u0 + b * w, lamp_v[0] - grow, lamp_v[1] + grow, lamp)
    blink = actor.get("blink", "")
    if blink and (frame // paints["blink_frames"]) % 2 == 0:
        sides = {"left": [(0.0, 0.1)], "right": [(0.9, 1.0)], "hazard": [(0.0, 0.1), (0.9, 1.0)]}
        for a, b in sides[blink]:
            _fill(img, u0 + a * w, u0 + b * w, lamp_v[0], lamp_v[1], paints["blink"])
    if view == "rear":
        _fill(img, u0 + 0.4 * w, u1 - 0.4 * w, vb - 0.36 * h, vb - 0.28 * h, paints["plate"])


def draw_prop(img, box, prop: dict) -> None:
    u0, u1, vt, vb = box
    w, h = u1 - u0, vb - vt
    kind, paint = prop["kind"], prop["paint"]
    if kind == "tree":
        _fill(img, u0 + 0.42 * w, u1 - 0.42 * w, vt + 0.5 * h, vb, prop["paint_trunk"])
        layers = ((0.0, 0.25, 0.25), (0.2, 0.65, 0.05)) if h > 8 else ((0, 0.65, 0.1),)
        for top, bottom, inset in layers:
            _fill(img, u0 + inset * w, u1 - inset * w, vt + top * h, vt + bottom * h, paint)
    elif kind == "pole":
        _fill(img, u0, u1, vt, vb, paint)
    elif kind == "sign":
        mid = (u0 + u1) / 2
        _fill(img, mid - 0.05 * w, mid + 0.05 * w, vt, vb, prop["paint_trunk"])
        _fill(img, u0, u1, vt, vt + 0.35 * h, paint)
    else:  # building, with rows of windows when near enough to see them
        _fill(img, u0, u1, vt, vb, paint)
        if h > 12 and w > 6:
            rows = max(1, round(h / 8))
            for r in range(rows):
                top = vt + (r + 0.3) * h / rows
                _fill(
                    img, u0 + 0.1 * w, u1 - 0.1 * w, top, top + 0.3 * h / rows, prop["paint_trunk"]
                )


def roadside_props(rng, road: Road, extent_m: float) -> list[dict]:
    """Roadside objects at fixed world distances along the road."""
    setting = rng.choice(["rural", "suburban", "highway"], p=[0.4, 0.35, 0.25])
    props: list[dict] = []
    spacing = rng.uniform(30.0, 50.0)
    pole_side = rng.choice([-1, 1])
    offset = rng.uniform(0, spacing)
    pole_color = np.float32([150, 145, 135]) * rng.uniform(0.6, 1.1)
    for zw in np.arange(offset, extent_m, spacing):
        x = road.right_m + 1.5 if pole_side > 0 else road.left_m - 1.5
        props.append({"kind": "pole", "zw": zw, "x": x, "w": 0.25, "h": 8.0, "color": pole_color})
    density = {"rural": 0.07, "suburban": 0.04, "highway": 0.025}[str(setting)]
    for _ in range(rng.poisson(density * extent_m)):
        side = rng.choice([-1, 1])
        edge = road.right_m if side > 0 else road.left_m
        green = np.float32([40, 85, 40]) * rng.uniform(0.6, 1.3) + rng.uniform(-10, 10, 3)
        props.append(
            {
                "kind": "tree",
                "zw": rng.uniform(0, extent_m),
                "x": edge + side * rng.uniform(3.0, 18.0),
                "w": rng.uniform(3.0, 6.0),
                "h": rng.uniform(5.0, 12.0),
                "color": np.clip(green, 0, 255).astype(np.float32),
            }
        )
    if setting == "suburban":
        for _ in range(rng.poisson(0.03 * extent_m)):
            side = rng.choice([-1, 1])
            edge = road.right_m if side > 0 else road.left_m
            props.append(
                {
                    "kind": "building",
                    "zw": rng.uniform(0, extent_m),
                    "x": edge + side * rng.uniform(9.0, 25.0),
                    "w": rng.uniform(8.0, 20.0),
                    "h": rng.uniform(5.0, 15.0),
                    "color": np.float32(rng.uniform(110, 210, 3)),
                }
            )
    for _ in range(rng.poisson(0.01 * extent_m)):
        props.append(
            {
                "kind": "sign",
                "zw": rng.uniform(0, extent_m),
                "x": road.right_m + rng.uniform(1.0, 2.5),
                "w": rng.uniform(0.7, 1.4),
                "h": rng.uniform(2.2, 3.0),
                "color": np.float32(
                    [[30, 90, 170], [230, 230, 225], [30, 120, 60]][rng.integers(3)]
                ),
            }
        )
    return props
