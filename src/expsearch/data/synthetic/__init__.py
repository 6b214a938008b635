"""Procedural dashcam clips: the laptop stand-in for the Nexar collision dataset.

    table = generate("results/data/synthetic", n=400, seed=0)            # videos + train.csv
    table = generate(out, n=200, seed=1, variant="fleet", difficulty=Difficulty(noise=6))
    clip = render_clip(clip_rng(0, 42), "near_miss", VARIANTS["default"].camera, Difficulty())
    make_clip("one.mp4", seed=0, index=42, scenario="near_miss", camera=VARIANTS["default"].camera)

`generate` writes `out/videos/<id>.mp4` and `out/train.csv` in the Nexar layout
(`id, time_of_event, time_of_alert, target`), plus `out/scenarios.csv`
(`id, scenario`) for analysis, so the pipeline reads synthetic and real data
with the same code. Clip `i` is rendered from its own generator
`clip_rng(seed, i)` and its scenario from `plan_scenarios`, so any clip can be
regenerated alone; a rerun with the same settings (kept in
`out/synthetic.json`) renders only the videos that are missing.

What is rendered (numpy only, whole clips at a time): a forward camera over a
road in perspective, with lane markings that stream by at the ego speed, a
curving road, sky and hills, roadside trees, poles, signs and buildings, other
road users as boxes whose apparent size is focal * size / distance, the ego
car's hood, occluders (wiper, pole, smudge, a truck alongside), lighting from
dusk to day and sensor noise. The scenarios:

- `collision` (target 1): a road user on a collision course (stopped or slow
  car ahead, a lead car that brakes, a cut-in, a car crossing at a junction);
  its image grows as 1 / time-to-contact until contact at `time_of_event`;
  `time_of_alert` is 0.5 to 1.0 s before it.
- `normal`: a lead car at a slowly varying distance, traffic in other lanes.
- `pass_by`: an oncoming, overtaken or parked car grows and leaves the frame
  sideways.
- `near_miss`: looks dangerous (fast approach) but clears: the ego brakes
  hard, swerves, or the other car gets out of the way.

The pipeline looks at a 6 s window ending at the alert (positives) or at the
end of the video (negatives), so the label is visible in the frames (a road
user ahead still growing at the end of the window) without being trivial:
near misses approach just as fast and clear only 0.3 to 2.5 s before the end
(the cues are the ego braking, the growth slowing, the other car moving
aside), at high speed the car to be hit is still small at the alert, and
noise, darkness and occluders hide part of the evidence.

The submodules, in the order a clip is made:

- `scene`: scenario names, `Camera`, `Variant` and `VARIANTS`, `Difficulty`,
  `RenderedClip`, the road layout and the look of a road user.
- `motion`: the motion plan of each scenario (ego and main road user over time).
- `draw`: anti-aliased boxes, vehicles, roadside objects and their placement.
- `render`: `render_clip`, which turns a plan into frames.
- `dataset`: `generate`, `make_clip`, `plan_scenarios`, `clip_rng`, `clip_id`,
  the settings manifest (`MANIFEST`, `GENERATOR_VERSION`) and resuming.
"""

from .dataset import (
    GENERATOR_VERSION,
    MANIFEST,
    clip_id,
    clip_rng,
    generate,
    make_clip,
    plan_scenarios,
    synthetic_layout,
)
from .render import render_clip
from .scene import (
    CONTACT_M,
    LANE_M,
    NEAR_M,
    NEGATIVE_SCENARIOS,
    SCENARIOS,
    VARIANTS,
    Camera,
    Difficulty,
    RenderedClip,
    Variant,
)

__all__ = [
    "CONTACT_M",
    "GENERATOR_VERSION",
    "LANE_M",
    "MANIFEST",
    "NEAR_M",
    "NEGATIVE_SCENARIOS",
    "SCENARIOS",
    "VARIANTS",
    "Camera",
    "Difficulty",
    "RenderedClip",
    "Variant",
    "clip_id",
    "clip_rng",
    "generate",
    "make_clip",
    "plan_scenarios",
    "render_clip",
    "synthetic_layout",
]
