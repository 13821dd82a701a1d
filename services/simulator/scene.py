"""One classroom over time: students with behaviour tracks, props, the rig, and the rendering of frames.

``ClassroomScene.render(t)`` poses every student at each sensor's own capture time (so a
lagging thermal camera sees a slightly different moment), rasterises the one 3-D scene
into the colour, depth and thermal sensors, applies the sensor models, and derives the
exact ground truth (keypoints with visibility, boxes, labels, facial temperature,
condition tags) and, on request, the clean references in the colour camera's view at the
analysis resolution (well-lit noise-free colour, complete depth, clean thermal).
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from services.common.frames import CapturedFrameSet
from services.common.vocabulary import BEHAVIOURS, NUM_KEYPOINTS
from services.simulator.behaviours import (
    DRINKING_WATER,
    HEAD_DOWN_WRITING,
    NOTE_TAKING,
    PAGE_TURNING,
    PHONE_USAGE,
    Episode,
    Fidget,
    PoseContext,
    behaviour_pose,
    blend_poses,
    fidget_pose,
    idle_motion,
    smoothstep,
)
from services.simulator.body import (
    KEYPOINT_DEPTH_TOLERANCE_MM,
    SHIFT_F,
    SHIFT_R,
    TRUNK_PITCH,
    TRUNK_ROLL,
    BodyArrays,
    Skeletons,
    StudentProfile,
    body_primitives,
    pose_skeletons,
)
from services.simulator.classroom import (
    STATIC_MATERIALS,
    Lighting,
    M,
    MaterialTable,
    RoomClimate,
    RoomLayout,
    Seat,
    build_materials,
    room_palette,
    sample_lighting,
    seat_box_corners,
    static_primitives,
)
from services.simulator.config import Conditions, SimConfig
from services.simulator.geometry import SensorPose
from services.simulator.props import DeskProps, occluder_primitives, props_primitives
from services.simulator.raster import Primitives, Raster, rasterise
from services.simulator.rig import Rig
from services.simulator.sensors import (
    RgbStats,
    ThermalSensorState,
    depth_holes_mask,
    expose_rgb,
    sense_depth,
    sense_thermal,
)

BLEND_S = 0.6  # transition time between two behaviours
_FACE_KEYPOINTS = slice(0, 7)


@dataclass
class Shift:
    """A student shifting in the seat or leaning (student-movement condition)."""

    start: float
    duration: float
    offset: tuple[float, float, float, float]  # shift right, shift forward (mm), trunk roll, pitch (rad)


@dataclass
class BehaviourTrack:
    """A student's behaviour episodes, distractor motions and seat shifts over a session."""

    episodes: list[Episode]
    fidgets: tuple[Fidget, ...] = ()
    shifts: list[Shift] = field(default_factory=list)
    # Live sessions extend their tracks on demand: called with a time the track must cover.
    extend: Callable[[BehaviourTrack, float], None] | None = None

    def at(self, t: float) -> tuple[Episode, Episode | None]:
        """The episode under way at ``t`` (the first one before it starts) and the one before it."""
        if self.extend is not None:
            self.extend(self, t)
        index = 0
        for k, ep in enumerate(self.episodes):
            if ep.start > t:
                break
            index = k
        return self.episodes[index], (self.episodes[index - 1] if index > 0 else None)

    def shift_offset(self, t: float) -> tuple[np.ndarray, bool]:
        offset = np.zeros(4)
        moving = False
        for sh in self.shifts:
            if t >= sh.start + sh.duration:
                offset = np.asarray(sh.offset, float)
            elif t >= sh.start:
                w = smoothstep((t - sh.start) / sh.duration)
                offset = offset + (np.asarray(sh.offset, float) - offset) * w
                moving = True
                break
            else:
                break
        return offset, moving


@dataclass
class SceneStudent:
    profile: StudentProfile
    seat: Seat
    track: BehaviourTrack
    props: DeskProps
    extra: bool = False  # a background extra, not a subject of the data set
    neighbour_side: int = 1
    # Data-set windows are annotated with one label throughout (the clip's label), even
    # when the behaviour begins a few frames into the window.
    fixed_label: int | None = None


@dataclass(slots=True, kw_only=True)
class RenderedFrame(CapturedFrameSet):
    """A frame set of the simulated camera: a captured frame set whose ``annotations`` always hold
    the exact ground truth, with what only a simulator has: on request, the clean references in
    the colour camera's view at the analysis resolution and the render's internals (``debug``)."""

    annotations: dict = field(default_factory=dict)
    reference_rgb: np.ndarray | None = None
    reference_depth_mm: np.ndarray | None = None
    reference_thermal_c: np.ndarray | None = None
    debug: dict | None = None


_StaticEntry = tuple[Primitives, dict[tuple, Raster]]  # a room's primitives, its rasters by sensor pose
_STATIC_CACHE: OrderedDict[tuple, _StaticEntry] = OrderedDict()
_STATIC_CACHE_SIZE = 6


def _pose_key(pose: SensorPose) -> tuple:
    return (pose.intrinsics, pose.rotation.tobytes(), pose.translation.tobytes())


def _static_scene(room: RoomLayout, room_seed: int) -> _StaticEntry:
    """Static primitives of a room and their per-sensor rasters (cached: rooms repeat)."""
    key = (room, room_seed)
    if key in _STATIC_CACHE:
        _STATIC_CACHE.move_to_end(key)
        return _STATIC_CACHE[key]
    prims = static_primitives(room, np.random.default_rng([room_seed, 7]))
    entry: _StaticEntry = (prims, {})
    _STATIC_CACHE[key] = entry
    while len(_STATIC_CACHE) > _STATIC_CACHE_SIZE:
        _STATIC_CACHE.popitem(last=False)
    return entry


def _static_raster(room: RoomLayout, room_seed: int, pose: SensorPose) -> tuple[Primitives, Raster]:
    prims, rasters = _static_scene(room, room_seed)
    key = _pose_key(pose)
    if key not in rasters:
        if len(rasters) >= 12:
            rasters.pop(next(iter(rasters)))
        rasters[key] = rasterise(prims, pose)
    return prims, rasters[key]


def _owner_block(prims: Primitives, first: int, end: int) -> Primitives:
    """The primitives whose owners are in [first, end) (owners sorted), renumbered from 0."""
    lo, hi = np.searchsorted(prims.owner, [first, end])
    return Primitives(
        kind=prims.kind[lo:hi],
        centre=prims.centre[lo:hi],
        axes=prims.axes[lo:hi],
        material=prims.material[lo:hi],
        owner=prims.owner[lo:hi] - np.int32(first),
        part=prims.part[lo:hi],
    )


def emission_for(table: MaterialTable, lighting: Lighting, base: Lighting) -> np.ndarray:
    """Emission of every material under ``lighting``, given the table was built for ``base``."""
    emission = table.emission.copy()
    if base.lights_on and base.level > 0:
        emission[M["light"]] *= lighting.level / base.level if lighting.lights_on else 0.0
    elif lighting.lights_on:
        emission[M["light"]] = 3.0 * lighting.level
    return emission


class ClassroomScene:
    """A classroom session that renders trimodal frame sets at any time (seconds)."""

    def __init__(
        self,
        *,
        config: SimConfig,
        room: RoomLayout,
        room_seed: int,
        rig: Rig,
        students: list[SceneStudent],
        conditions: Conditions,
        seed: int | tuple[int, ...],
    ) -> None:
        self.config = config
        self.room = room
        self.room_seed = room_seed
        self.rig = rig
        self.students = students
        self.seed = seed
        self.body = BodyArrays.of([s.profile for s in students])
        self.palette = room_palette(np.random.default_rng([room_seed, 11]))
        self.set_conditions(conditions)

    # --- conditions -----------------------------------------------------------------------------

    def set_conditions(self, conditions: Conditions, epoch: int = 0) -> None:
        """Apply a set of conditions (lighting, climate, occluders, sensor state) to the scene."""
        rng = np.random.default_rng(np.random.SeedSequence([*np.atleast_1d(self.seed).tolist(), 991, epoch]))
        d = self.config.difficulty
        self.conditions = conditions
        self.lighting = sample_lighting(rng, conditions.low_light)
        self.reference_lighting = Lighting(
            1.0,
            (1.0, 1.0, 1.0),
            self.lighting.ambient,
            self.lighting.key_direction,
            self.lighting.key,
            self.lighting.window,
        )
        self.climate = RoomClimate.sample(rng, conditions.low_thermal_contrast)
        cup_c = [self._cup_temperature(s, rng) for s in self.students]
        covers = [rng.uniform(0.05, 0.7, 3) for _ in self.students]
        self.materials = build_materials(
            self.palette, self.climate, self.lighting, [s.profile for s in self.students], cup_c, covers
        )
        self.reference_emission = emission_for(self.materials, self.reference_lighting, self.lighting)
        rate = d.severe_occluder_rate if conditions.severe_occlusion else d.occluder_rate
        self.occluders = occluder_primitives(rng, [s.seat for s in self.students], rate)
        self.depth_holes = depth_holes_mask(rng, self.config.depth_size) if conditions.depth_holes else None
        self.thermal_state = ThermalSensorState.sample(
            rng, self.config.thermal_size, drift=conditions.thermal_drift, noise_scale=d.thermal_noise_scale
        )
        self.lecturer_phase = rng.uniform(0, 2 * math.pi, 2)
        self._background: dict[str, np.ndarray] = {}

    def _cup_temperature(self, student: SceneStudent, rng: np.random.Generator) -> float:
        for ep in student.track.episodes:
            if ep.behaviour == DRINKING_WATER:
                return ep.cup_temperature_c
        return float(rng.choice([rng.uniform(45.0, 60.0), rng.uniform(10.0, 16.0), rng.uniform(20.0, 24.0)]))

    # --- posing ---------------------------------------------------------------------------------

    def lecturer_position(self, t: float) -> np.ndarray:
        ph = self.lecturer_phase
        x = 1400.0 * math.sin(2 * math.pi * t / 41.0 + ph[0]) + 400.0 * math.sin(
            2 * math.pi * t / 11.0 + ph[1]
        )
        return np.array([x, 1650.0, 700.0])

    def _context(self, student: SceneStudent, lecturer: np.ndarray) -> PoseContext:
        seat = student.seat
        v = lecturer - (seat.hip + seat.basis[:, 1] * 650.0)
        x, y, z = v @ seat.basis[:, 0], v @ seat.basis[:, 1], v @ seat.basis[:, 2]
        return PoseContext(
            lecturer_yaw=math.atan2(x, z),
            lecturer_pitch=-math.atan2(y, math.hypot(x, z)),
            neighbour_side=student.neighbour_side,
        )

    def poses(self, t: float) -> tuple[np.ndarray, list[int], list[bool]]:
        """Pose vectors [S, NUM_POSE] at time ``t``, each student's label index and moving flag."""
        d = self.config.difficulty
        lecturer = self.lecturer_position(t)
        out = []
        labels = []
        moving = []
        for st in self.students:
            ctx = self._context(st, lecturer)
            ep, prev = st.track.at(t)
            p, busy = behaviour_pose(ep, t, st.profile, ctx)
            label = ep.behaviour
            if prev is not None and t - ep.start < BLEND_S:
                p_prev, _ = behaviour_pose(prev, t, st.profile, ctx)
                p = blend_poses(p_prev, p, smoothstep((t - ep.start) / BLEND_S))
            fidget_pose(p, st.track.fidgets, t, busy)
            idle_motion(p, t, st.profile, d.idle_motion)
            offset, is_moving = st.track.shift_offset(t)
            p[SHIFT_R] += offset[0]
            p[SHIFT_F] += offset[1]
            p[TRUNK_ROLL] += offset[2]
            p[TRUNK_PITCH] += offset[3]
            out.append(p)
            labels.append(label)
            moving.append(is_moving)
        return np.asarray(out), labels, moving

    def _dynamic(
        self, times: list[float]
    ) -> list[tuple[Primitives, Skeletons, np.ndarray, list[int], list[bool]]]:
        """Dynamic primitives (bodies, props, occluders), skeletons, poses, labels and moving flags
        at each of ``times``. The instants are posed in one batch of len(times) x S rows: the
        kinematics are row by row, so the values are those of one instant at a time, and a batch
        costs little more than one instant."""
        s_count = len(self.students)
        k = len(times)
        posed = [self.poses(t) for t in times]
        seats = [st.seat for st in self.students]
        hips = np.tile(np.array([seat.hip for seat in seats]), (k, 1))
        bases = np.tile(np.array([seat.basis for seat in seats]), (k, 1, 1))
        body = self._body_rows(k)
        poses = np.concatenate([pose for pose, _, _ in posed])
        sk = pose_skeletons(body, hips, bases, poses)
        n_static = len(STATIC_MATERIALS)
        material_base = np.tile(n_static + 8 * np.arange(s_count), k)
        rows = np.arange(k * s_count)
        # Owners are batch rows here; each instant's block is renumbered to its students.
        bodies = body_primitives(body, sk, material_base, rows)
        props = props_primitives([st.props for st in self.students] * k, seats * k, sk, poses, material_base)
        out = []
        for j, (pose, labels, moving) in enumerate(posed):
            first, end = j * s_count, (j + 1) * s_count
            parts = [_owner_block(bodies, first, end), _owner_block(props, first, end), self.occluders]
            sk_j = Skeletons(**{f.name: getattr(sk, f.name)[first:end] for f in dataclasses.fields(sk)})
            out.append((Primitives.concat(parts), sk_j, pose, labels, moving))
        return out

    def _body_rows(self, k: int) -> BodyArrays:
        """The students' body arrays repeated ``k`` times (one block per posed instant)."""
        if k == 1:
            return self.body
        return BodyArrays(
            **{f.name: np.tile(getattr(self.body, f.name), k) for f in dataclasses.fields(self.body)}
        )

    # --- sensors --------------------------------------------------------------------------------

    def _light_terms(self, pose: SensorPose, lighting: Lighting) -> list[tuple[np.ndarray, float]]:
        return [(pose.rotation @ direction, intensity) for direction, intensity in lighting.directions()]

    def _shade(
        self,
        albedo: np.ndarray,
        emission: np.ndarray,
        normal: np.ndarray,
        pose: SensorPose,
        lighting: Lighting,
    ) -> np.ndarray:
        irradiance = np.full(len(normal), lighting.ambient * lighting.level, np.float32)
        for direction, intensity in self._light_terms(pose, lighting):
            irradiance += np.float32(intensity) * np.maximum(-(normal @ direction.astype(np.float32)), 0.0)
        colour = np.asarray(lighting.colour[::-1], np.float32)  # BGR
        radiance = irradiance[:, None] * colour
        radiance *= albedo
        radiance += emission
        return radiance

    def _background_radiance(
        self, name: str, pose: SensorPose, lighting: Lighting, emission: np.ndarray
    ) -> np.ndarray:
        key = f"rad:{name}"
        if key not in self._background:
            prims, ras = _static_raster(self.room, self.room_seed, pose)
            mat = prims.material[ras.index.reshape(-1)[ras.pixels]]
            w, h = pose.size
            img = np.zeros((h * w, 3), np.float32)
            img[ras.pixels] = self._shade(
                self.materials.albedo[mat].astype(np.float32),
                emission[mat].astype(np.float32),
                ras.normal,
                pose,
                lighting,
            )
            # Faint large-scale shading variation so walls and floors are not perfectly flat.
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            ripple = 1.0 + 0.06 * np.sin(xx / w * 7.0 + 1.3) * np.sin(yy / h * 5.0 + 0.4)
            self._background[key] = img.reshape(h, w, 3) * ripple[:, :, None]
        return self._background[key]

    def _background_temperature(self, name: str, pose: SensorPose) -> np.ndarray:
        key = f"temp:{name}"
        if key not in self._background:
            prims, ras = _static_raster(self.room, self.room_seed, pose)
            self._background[key] = self.materials.temperature[prims.material[ras.index]].astype(np.float32)
        return self._background[key]

    def _radiance(
        self,
        name: str,
        ras: Raster,
        dyn: Primitives,
        pose: SensorPose,
        lighting: Lighting,
        emission: np.ndarray,
    ) -> np.ndarray:
        img = self._background_radiance(name, pose, lighting, emission).copy()
        if len(ras.pixels):
            n_static = self._n_static_prims()
            mat = dyn.material[ras.index.reshape(-1)[ras.pixels] - n_static]
            # Casting the small per-material tables first gives the same float32 values.
            img.reshape(-1, 3)[ras.pixels] = self._shade(
                self.materials.albedo.astype(np.float32)[mat],
                emission.astype(np.float32)[mat],
                ras.normal,
                pose,
                lighting,
            )
        return img

    def _temperature(self, name: str, ras: Raster, dyn: Primitives, pose: SensorPose) -> np.ndarray:
        img = self._background_temperature(name, pose).copy()
        if len(ras.pixels):
            n_static = self._n_static_prims()
            mat = dyn.material[ras.index.reshape(-1)[ras.pixels] - n_static]
            temp = self.materials.temperature.astype(np.float32)[mat]
            grazing = np.float32(1.0) - ras.view_cos
            room = np.float32(self.climate.room_c)
            # Emissivity falls at grazing angles: silhouettes look cooler, skin most visibly.
            skin = self.materials.skin[mat]
            temp = np.where(
                skin,
                temp - np.float32(1.6) * grazing**1.5,
                room + (temp - room) * (np.float32(1.0) - np.float32(0.1) * grazing),
            )
            img.reshape(-1)[ras.pixels] = temp
        return img

    def _n_static_prims(self) -> int:
        prims, _ = _static_scene(self.room, self.room_seed)
        return len(prims)

    def _raster(self, dyn: Primitives, pose: SensorPose, normals: bool = True) -> Raster:
        _, base = _static_raster(self.room, self.room_seed, pose)
        return rasterise(dyn, pose, base=base, index_offset=self._n_static_prims(), normals=normals)

    def _dropout_map(self, name: str, ras: Raster, dyn: Primitives, pose: SensorPose) -> np.ndarray:
        """Per pixel, the chance that the depth sensor returns nothing for the surface it sees."""
        dropout = self.materials.dropout.astype(np.float32)
        key = f"dropout:{name}"
        if key not in self._background:
            prims, static = _static_raster(self.room, self.room_seed, pose)
            self._background[key] = dropout[prims.material[np.maximum(static.index, 0)]]
        img = self._background[key].copy()
        if len(ras.pixels):
            dyn_idx = ras.index.reshape(-1)[ras.pixels] - self._n_static_prims()
            img.reshape(-1)[ras.pixels] = dropout[dyn.material[dyn_idx]]
        return img

    def seat_boxes(self, seats: list[Seat] | None = None) -> dict[str, tuple[float, float, float, float]]:
        """Seat regions in analysis-resolution colour pixels (x0, y0, x1, y1), clipped to the image.

        Generous on purpose: a seat's box holds its student leaning or raising a hand, so
        neighbouring boxes overlap.
        """
        pose = self.rig.analysis
        w, h = pose.size
        boxes = {}
        for seat in sorted(seats or [s.seat for s in self.students], key=lambda s: (s.row, s.column)):
            uv, _ = pose.project(seat_box_corners(seat))
            x0, y0 = np.clip(uv.min(axis=0), [-0.5, -0.5], [w - 0.5, h - 0.5])
            x1, y1 = np.clip(uv.max(axis=0), [-0.5, -0.5], [w - 0.5, h - 0.5])
            boxes[seat.seat_id] = (
                round(float(x0), 2),
                round(float(y0), 2),
                round(float(x1), 2),
                round(float(y1), 2),
            )
        return boxes

    def render(
        self,
        t: float,
        rng: np.random.Generator,
        *,
        sequence: int = 0,
        rgb_ts_us: int | None = None,
        references: bool = False,
        debug: bool = False,
    ) -> RenderedFrame:
        """Frame set ``sequence``, whose colour exposure happens at session time ``t`` (seconds).

        Colour is stamped ``rgb_ts_us`` on the camera's clock (by default the session time in
        microseconds), depth and thermal by their capture lags and clocks (``Rig.timestamps_us``).
        """
        rig = self.rig
        t_depth = t + rig.depth_lag_us * 1e-6
        t_thermal = t + rig.thermal_lag_us * 1e-6
        # Each sensor sees the students at its own capture time; lagging sensors pose them again.
        times = [t] + [
            lagged for lag, lagged in ((rig.depth_lag_us, t_depth), (rig.thermal_lag_us, t_thermal)) if lag
        ]
        dynamic = self._dynamic(times)
        dyn_c, sk_c, poses_c, labels, moving = dynamic[0]
        dyn_d = dynamic[1][0] if rig.depth_lag_us else dyn_c
        dyn_t = dynamic[-1][0] if rig.thermal_lag_us else dyn_c
        # One generator for the three sensors: colour draws first, then depth, then thermal.
        ras_c, rgb, rgb_stats = self._sense_colour(dyn_c, rng)
        ras_d, depth = self._sense_depth(dyn_d, rng)
        ras_t, thermal = self._sense_thermal(dyn_t, rng, t_thermal)
        stamps = rig.timestamps_us(round(t * 1e6) if rgb_ts_us is None else rgb_ts_us)
        frame = RenderedFrame(rgb, depth, thermal, *stamps, sequence=sequence)
        if references:
            self._add_references(frame, ras_c, dyn_c)
        frame.annotations = self._annotate(sk_c, ras_c, dyn_c, labels, moving, depth, t_thermal, rgb_stats)
        if debug:
            frame.debug = {
                "skeletons": sk_c,
                "poses": poses_c,
                "rasters": {"colour": ras_c, "depth": ras_d, "thermal": ras_t},
                "dynamic": {"colour": dyn_c, "depth": dyn_d, "thermal": dyn_t},
                "n_static": self._n_static_prims(),
            }
        return frame

    def _sense_colour(self, dyn: Primitives, rng: np.random.Generator) -> tuple[Raster, np.ndarray, RgbStats]:
        """The colour camera's raster, its exposed image and the exposure's statistics."""
        ras = self._raster(dyn, self.rig.colour)
        radiance = self._radiance("colour", ras, dyn, self.rig.colour, self.lighting, self.materials.emission)
        rgb, rgb_stats = expose_rgb(
            radiance,
            rng,
            low_light=self.conditions.low_light,
            noise_scale=self.config.difficulty.rgb_noise_scale,
        )
        return ras, rgb, rgb_stats

    def _sense_depth(self, dyn: Primitives, rng: np.random.Generator) -> tuple[Raster, np.ndarray]:
        """The depth sensor's raster (no normals) and its depth image with noise, holes and dropout."""
        pose = self.rig.depth
        ras = self._raster(dyn, pose, normals=False)
        depth = sense_depth(
            ras.depth,
            self._dropout_map("depth", ras, dyn, pose),
            rng,
            pose.intrinsics,
            holes=self.depth_holes,
            noise_scale=self.config.difficulty.depth_noise_scale,
            edge_dropout=0.9 if self.conditions.depth_holes else 0.4,
        )
        return ras, depth

    def _sense_thermal(
        self, dyn: Primitives, rng: np.random.Generator, t_thermal: float
    ) -> tuple[Raster, np.ndarray]:
        """The thermal camera's raster and its image at its own capture time (the drift depends on it)."""
        ras = self._raster(dyn, self.rig.thermal)
        thermal = sense_thermal(
            self._temperature("thermal", ras, dyn, self.rig.thermal), rng, self.thermal_state, t_thermal
        )
        return ras, thermal

    def _add_references(self, frame: RenderedFrame, ras_c: Raster, dyn_c: Primitives) -> None:
        """Noise-free images at the analysis resolution under the reference lighting, for training."""
        rig = self.rig
        if rig.analysis.size == rig.colour.size:
            ras_a = ras_c
        else:
            ras_a = self._raster(dyn_c, rig.analysis)
        ref_radiance = self._radiance(
            "analysis", ras_a, dyn_c, rig.analysis, self.reference_lighting, self.reference_emission
        )
        frame.reference_rgb, _ = expose_rgb(ref_radiance, None, low_light=False)
        frame.reference_depth_mm = np.clip(np.rint(ras_a.depth), 0, 65535).astype(np.uint16)
        frame.reference_thermal_c = self._temperature("analysis", ras_a, dyn_c, rig.analysis)

    # --- ground truth ---------------------------------------------------------------------------

    def _annotate(
        self,
        sk: Skeletons,
        ras: Raster,
        dyn: Primitives,
        labels: list[int],
        moving: list[bool],
        depth_mm: np.ndarray,
        t_thermal: float,
        rgb_stats: RgbStats,
    ) -> dict:
        """The ground truth of a frame: conditions, image quality and, per student, label,
        keypoints, body box and tags, from the colour camera's raster ``ras``; the depth image
        and the thermal capture time (session seconds) rate image quality."""
        uv_an, vis = self._keypoint_visibility(sk, ras, dyn)
        boxes = self._body_boxes(ras, dyn)
        uv_list = uv_an.tolist()
        vis_list = vis.tolist()
        students = [
            self._student_truth(st, labels[i], moving[i], uv_list[i], vis_list[i], boxes[i])
            for i, st in enumerate(self.students)
        ]
        return {
            "conditions": self.conditions.tags,
            "image_quality": self._image_quality(depth_mm, t_thermal, rgb_stats),
            "students": students,
        }

    def _keypoint_visibility(
        self, sk: Skeletons, ras: Raster, dyn: Primitives
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints in analysis pixels [S, 17, 2] and their visibility [S, 17]: 2 on the student's
        own visible surface (within the keypoint's depth tolerance), 1 hidden in the image, 0 outside."""
        rig = self.rig
        w, h = rig.colour.size
        s_count = len(self.students)
        kp_world = sk.keypoints.reshape(-1, 3)
        uv_raw, z = rig.colour.project(kp_world)
        uv_an, _ = rig.analysis.project(kp_world)
        col = np.rint(uv_raw[:, 0]).astype(np.int64)
        row = np.rint(uv_raw[:, 1]).astype(np.int64)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h) & (z > 0)
        colc, rowc = np.clip(col, 0, w - 1), np.clip(row, 0, h - 1)
        who = np.repeat(np.arange(s_count), NUM_KEYPOINTS)
        tol = np.tile(KEYPOINT_DEPTH_TOLERANCE_MM, s_count)
        surface = ras.depth[rowc, colc]
        kp_dyn = ras.index[rowc, colc] - self._n_static_prims()
        kp_owner = np.where(kp_dyn >= 0, dyn.owner[np.maximum(kp_dyn, 0)], -1)
        visible = inside & (kp_owner == who) & (surface >= z - tol)
        vis = np.where(visible, 2, np.where(inside, 1, 0)).reshape(s_count, NUM_KEYPOINTS)
        return uv_an.reshape(s_count, NUM_KEYPOINTS, 2), vis

    def _body_boxes(self, ras: Raster, dyn: Primitives) -> list[list[float] | None]:
        """Tight boxes of each student's visible body in analysis pixels (x0, y0, x1, y1); None: unseen."""
        w, h = self.rig.colour.size
        aw, ah = self.rig.analysis.size
        s_count = len(self.students)
        # Every pixel a dynamic primitive shows is in ras.pixels, once.
        dyn_idx = ras.index.reshape(-1)[ras.pixels] - self._n_static_prims()
        body = dyn.part[dyn_idx] < 100
        own = dyn.owner[dyn_idx[body]].astype(np.intp)
        body_pixels = ras.pixels[body]
        ys = body_pixels // w
        xs = body_pixels - ys * w
        none = np.iinfo(np.int64).max
        x0 = np.full(s_count, none, np.int64)
        y0 = np.full(s_count, none, np.int64)
        x1 = np.full(s_count, -1, np.int64)
        y1 = np.full(s_count, -1, np.int64)
        # Same dtypes throughout: ufunc.at's fast path (float targets with int values are 40x slower).
        np.minimum.at(x0, own, xs)
        np.minimum.at(y0, own, ys)
        np.maximum.at(x1, own, xs)
        np.maximum.at(y1, own, ys)
        has_box = (x0 != none).tolist()
        sx, sy = aw / w, ah / h
        # Raw pixel j spans [j - 0.5, j + 0.5]; raw coordinate c maps to (c + 0.5) * scale - 0.5.
        return [
            [
                round(float(x0[i] * sx - 0.5), 2),
                round(float(y0[i] * sy - 0.5), 2),
                round(float((x1[i] + 1.0) * sx - 0.5), 2),
                round(float((y1[i] + 1.0) * sy - 0.5), 2),
            ]
            if has_box[i]
            else None
            for i in range(s_count)
        ]

    @staticmethod
    def _student_truth(
        st: SceneStudent,
        label: int,
        moving: bool,
        uv: list[list[float]],
        vis: list[int],
        box: list[float] | None,
    ) -> dict:
        """One student's annotation; a student with a fixed label keeps it whatever the pose shows."""
        if st.fixed_label is not None:
            label = st.fixed_label
        in_img = sum(v > 0 for v in vis)
        visible_share = sum(v == 2 for v in vis) / max(in_img, 1)
        tags = []
        if visible_share < 0.65:
            tags.append("occluded")
        if moving:
            tags.append("moving")
        return {
            "student_id": st.profile.student_id,
            "seat_id": st.seat.seat_id,
            "label": BEHAVIOURS[label],
            "label_index": int(label),
            "extra": st.extra,
            "keypoints": [[round(u, 2), round(v, 2), k] for (u, v), k in zip(uv, vis, strict=True)],
            "box": box,
            "facial_temperature_c": round(st.profile.face_temperature_c, 2),
            "conditions": tags,
        }

    def _image_quality(self, depth_mm: np.ndarray, t_thermal: float, rgb_stats: RgbStats) -> dict:
        """Per-modality quality labels from the sensor models (good / fair / poor) and their numbers."""
        valid = int(np.count_nonzero(depth_mm)) / depth_mm.size
        drift = abs(self.thermal_state.offset_c(t_thermal))
        if self.conditions.low_thermal_contrast or drift >= 1.0:
            thermal = "poor"
        elif drift >= 0.4:
            thermal = "fair"
        else:
            thermal = "good"
        return {
            "rgb": rgb_stats.quality,
            "rgb_snr_db": round(rgb_stats.snr_db, 2),
            "rgb_brightness": round(rgb_stats.brightness, 3),
            "depth": "poor"
            if self.conditions.depth_holes or valid < 0.4
            else ("good" if valid >= 0.6 else "fair"),
            "depth_valid_fraction": round(valid, 4),
            "thermal": thermal,
            "thermal_offset_c": round(drift, 3),
        }


def busy_props(behaviour: int) -> tuple[str, ...]:
    """Props a behaviour cannot do without."""
    return {
        PAGE_TURNING: ("book",),
        PHONE_USAGE: ("phone",),
        DRINKING_WATER: ("cup",),
        HEAD_DOWN_WRITING: ("notebook", "pen"),
        NOTE_TAKING: ("notebook", "pen"),
    }.get(behaviour, ())
