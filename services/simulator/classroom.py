"""The classroom: room, rows of desks and chairs, seats, materials and lighting.

A ``RoomLayout`` fixes the geometry (rows x columns of single desks, an aisle, walls with
windows, a radiator, ceiling lights). Its static primitives are rendered once per sensor
and reused for every frame. ``MaterialTable`` holds, per material, what each sensor needs:
linear reflectance and emission for colour, temperature for thermal, and how often a
Kinect-style sensor loses the pixel (glass, dark hair, glossy screens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.simulator.body import (
    DESK_DEPTH,
    DESK_EDGE_FORWARD,
    HIP_ABOVE_SEAT,
    MAT_COVER,
    MAT_CUP,
    MAT_EYE,
    MAT_HAIR,
    MAT_HAND,
    MAT_SHIRT,
    MAT_SKIN,
    MAT_SLEEVE_END,
    MATERIALS_PER_STUDENT,
    SEAT_HEIGHT,
    StudentProfile,
)
from services.simulator.raster import KIND_BOX, Primitives, box_axes, make_primitives

DESK_HEIGHT = 740.0
DESK_WIDTH = 700.0

# Static materials, by row of the material table.
STATIC_MATERIALS: tuple[str, ...] = (
    "floor",
    "wall",
    "ceiling",
    "desk_top",
    "desk_panel",
    "chair",
    "window",
    "light",
    "door",
    "poster_a",
    "poster_b",
    "poster_c",
    "radiator",
    "laptop",
    "bag",
    "pages",
    "notebook",
    "pen",
    "phone_body",
    "screen_on",
    "screen_off",
)
M = {name: i for i, name in enumerate(STATIC_MATERIALS)}

# Part codes of static and prop primitives (students use codes < 100).
PART_ROOM, PART_DESK, PART_CHAIR, PART_OCCLUDER = 100, 101, 102, 103
PART_BOOK, PART_NOTEBOOK, PART_PEN, PART_PHONE, PART_CUP = 110, 111, 112, 113, 114


@dataclass(frozen=True)
class RoomLayout:
    """Rows x columns of single desks facing the front wall, where the camera hangs."""

    name: str
    rows: int
    columns: int
    seat_pitch: float = 820.0  # mm between seat centres in a row
    row_pitch: float = 960.0
    aisle: float = 650.0  # extra gap in the middle of a row (0 for none)
    height: float = 3200.0

    @property
    def seats(self) -> int:
        return self.rows * self.columns

    def column_x(self) -> np.ndarray:
        x = np.arange(self.columns) * self.seat_pitch
        if self.aisle > 0 and self.columns >= 4:
            x = x + np.where(np.arange(self.columns) >= self.columns // 2, self.aisle, 0.0)
        return x - (x[0] + x[-1]) / 2.0

    @property
    def width(self) -> float:
        xs = self.column_x()
        return float(xs[-1] - xs[0] + 2 * 1300.0)

    @property
    def first_row_z(self) -> float:
        """Hip line of the first row: far enough that the outer seats fit a 90-degree camera."""
        half = (self.column_x()[-1] + 450.0) / 1000.0
        return 1000.0 * max(3.0, half / math.tan(math.radians(40.0)) + 0.9)

    @property
    def depth(self) -> float:
        return self.first_row_z + (self.rows - 1) * self.row_pitch + 1600.0


ROOMS: dict[str, RoomLayout] = {
    "small": RoomLayout("small", rows=3, columns=4),
    "medium": RoomLayout("medium", rows=4, columns=5),
    "large": RoomLayout("large", rows=5, columns=6),
    "hall": RoomLayout("hall", rows=5, columns=8, seat_pitch=780.0),
}


def room_for(students: int) -> RoomLayout:
    """The smallest standard room with at least ``students`` seats."""
    if not 1 <= students <= 40:
        raise ValueError(f"a simulated classroom holds 1 to 40 students, not {students}")
    for room in ROOMS.values():
        if room.seats >= students:
            return room
    raise AssertionError("unreachable: the hall has 40 seats")


@dataclass(frozen=True)
class Seat:
    seat_id: str
    row: int
    column: int
    hip: np.ndarray  # world hip centre of a student sitting upright, mm
    basis: np.ndarray  # 3x3, columns = the student's right, up, forward (world)


def room_seats(room: RoomLayout) -> list[Seat]:
    seats = []
    forward = np.array([0.0, 0.0, -1.0])  # students face the front wall
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    basis = np.stack([right, up, forward], axis=1)
    for r in range(room.rows):
        for c, x in enumerate(room.column_x()):
            hip = np.array([x, SEAT_HEIGHT + HIP_ABOVE_SEAT, room.first_row_z + r * room.row_pitch])
            seats.append(Seat(f"r{r + 1}c{c + 1}", r, c, hip, basis))
    return seats


def _boxes(centres: list, halves: list, rotations: list | None, material: int, part: int) -> Primitives:
    n = len(centres)
    rot = np.stack(rotations) if rotations is not None else np.broadcast_to(np.eye(3), (n, 3, 3))
    return make_primitives(
        KIND_BOX, np.asarray(centres, float), box_axes(rot, np.asarray(halves, float)), material, -1, part
    )


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def static_primitives(room: RoomLayout, rng: np.random.Generator) -> Primitives:
    """Room shell, windows, lights, radiator, posters, desks and chairs (world, mm)."""
    return Primitives.concat(
        [*_room_shell(room), *_wall_fixtures(room, rng), _ceiling_lights(room), *_desks_and_chairs(room)]
    )


def _room_shell(room: RoomLayout) -> list[Primitives]:
    """Floor, ceiling and the four walls, 60 mm slabs just outside the room's volume."""
    w, d, h = room.width, room.depth, room.height
    t = 60.0
    return [
        _boxes([[0.0, -t, d / 2]], [[w / 2 + t, t, d / 2 + t]], None, M["floor"], PART_ROOM),
        _boxes([[0.0, h + t, d / 2]], [[w / 2 + t, t, d / 2 + t]], None, M["ceiling"], PART_ROOM),
        _boxes([[0.0, h / 2, d + t]], [[w / 2 + t, h / 2 + t, t]], None, M["wall"], PART_ROOM),
        _boxes([[-w / 2 - t, h / 2, d / 2]], [[t, h / 2 + t, d / 2 + t]], None, M["wall"], PART_ROOM),
        _boxes([[w / 2 + t, h / 2, d / 2]], [[t, h / 2 + t, d / 2 + t]], None, M["wall"], PART_ROOM),
        _boxes([[0.0, h / 2, -300.0]], [[w / 2 + t, h / 2 + t, t]], None, M["wall"], PART_ROOM),
    ]


def _wall_fixtures(room: RoomLayout, rng: np.random.Generator) -> list[Primitives]:
    """Windows along the left wall, a radiator under them; a door and posters on the back wall."""
    w, d = room.width, room.depth
    n_win = max(2, int(d // 2600))
    zs = np.linspace(1500.0, d - 1200.0, n_win)
    parts = [
        _boxes(
            [[-w / 2 + 5.0, 1750.0, z] for z in zs],
            [[6.0, 650.0, 700.0]] * n_win,
            None,
            M["window"],
            PART_ROOM,
        ),
        _boxes(
            [[-w / 2 + 60.0, 550.0, z] for z in zs],
            [[50.0, 220.0, 600.0]] * n_win,
            None,
            M["radiator"],
            PART_ROOM,
        ),
        _boxes([[w / 2 - 900.0, 1050.0, d - 6.0]], [[480.0, 1050.0, 8.0]], None, M["door"], PART_ROOM),
    ]
    for k, mat in enumerate(("poster_a", "poster_b", "poster_c")):
        x = -w / 2 + 900.0 + k * (w - 2600.0) / 3.0 + rng.uniform(0, 300)
        parts.append(
            _boxes(
                [[x, rng.uniform(1500.0, 1900.0), d - 8.0]],
                [[rng.uniform(250, 450), rng.uniform(300, 450), 6.0]],
                None,
                M[mat],
                PART_ROOM,
            )
        )
    return parts


def _ceiling_lights(room: RoomLayout) -> Primitives:
    """Light panels on a 2.0 x 2.2 m grid under the ceiling."""
    w, d, h = room.width, room.depth, room.height
    lx = np.arange(-w / 2 + 1200.0, w / 2 - 800.0, 2000.0)
    lz = np.arange(1500.0, d - 600.0, 2200.0)
    lights = [[x, h - 10.0, z] for x in lx for z in lz]
    return _boxes(lights, [[300.0, 12.0, 300.0]] * len(lights), None, M["light"], PART_ROOM)


def _desks_and_chairs(room: RoomLayout) -> list[Primitives]:
    """Per seat a desk (top and front panel) before it and a chair (seat and tilted backrest)."""
    desk_c, desk_h, panel_c, panel_h, seat_c, seat_h, back_c, back_h, back_r = (
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    )
    tilt = _rot_x(-0.14)  # backrests lean back
    for seat in room_seats(room):
        x, _, z = seat.hip
        near = z - DESK_EDGE_FORWARD
        desk_c.append([x, DESK_HEIGHT - 14.0, near - DESK_DEPTH / 2])
        desk_h.append([DESK_WIDTH / 2, 14.0, DESK_DEPTH / 2])
        panel_c.append([x, 520.0, near - DESK_DEPTH + 25.0])
        panel_h.append([DESK_WIDTH / 2 - 20.0, 205.0, 9.0])
        seat_c.append([x, SEAT_HEIGHT - 18.0, z + 40.0])
        seat_h.append([220.0, 18.0, 210.0])
        back_c.append([x, SEAT_HEIGHT + 300.0, z + 215.0])
        back_h.append([210.0, 170.0, 12.0])
        back_r.append(tilt)
    return [
        _boxes(desk_c, desk_h, None, M["desk_top"], PART_DESK),
        _boxes(panel_c, panel_h, None, M["desk_panel"], PART_DESK),
        _boxes(seat_c, seat_h, None, M["chair"], PART_CHAIR),
        _boxes(back_c, back_h, back_r, M["chair"], PART_CHAIR),
    ]


def seat_box_corners(seat: Seat) -> np.ndarray:
    """World corners of the volume a seated student can occupy (leaning, raising a hand)."""
    r, u, f = seat.basis[:, 0], seat.basis[:, 1], seat.basis[:, 2]
    corners = []
    for dx in (-420.0, 420.0):
        for dy in (-120.0, 1150.0):
            for df in (-220.0, DESK_EDGE_FORWARD + 260.0):
                corners.append(seat.hip + r * dx + u * dy + f * df)
    return np.asarray(corners)


# --- materials and light ---------------------------------------------------------------------


@dataclass(frozen=True)
class Lighting:
    """Light of one clip: overall level, colour cast, ceiling key light and window light."""

    level: float  # 1 = a normally lit lecture room
    colour: tuple[float, float, float]  # RGB multipliers of the illuminant
    ambient: float
    key_direction: tuple[float, float, float]  # world direction the light travels
    key: float
    window: float  # daylight through the windows (left wall)
    lights_on: bool = True

    @classmethod
    def reference(cls) -> Lighting:
        """The well-lit, neutral light of the clean references."""
        return cls(1.0, (1.0, 1.0, 1.0), 0.5, (0.25, -1.0, 0.35), 0.7, 0.0)

    def directions(self) -> list[tuple[np.ndarray, float]]:
        key = np.asarray(self.key_direction, float)
        key /= np.linalg.norm(key)
        lights = [(key, self.key * self.level)]
        if self.window > 0:
            lights.append(
                (np.array([1.0, -0.35, 0.1]) / math.hypot(1.0, 0.35, 0.1), self.window * self.level)
            )
        return lights


def sample_lighting(rng: np.random.Generator, low_light: bool) -> Lighting:
    if low_light:
        return Lighting(
            level=float(rng.uniform(0.015, 0.06)),
            colour=(1.0, float(rng.uniform(0.75, 0.9)), float(rng.uniform(0.5, 0.7))),
            ambient=float(rng.uniform(0.3, 0.5)),
            key_direction=(float(rng.uniform(-0.5, 0.5)), -1.0, float(rng.uniform(-0.2, 0.6))),
            key=float(rng.uniform(0.4, 0.8)),
            window=float(rng.uniform(0.0, 0.3)),
            lights_on=bool(rng.random() < 0.5),
        )
    return Lighting(
        level=float(rng.uniform(0.7, 1.3)),
        colour=(1.0, float(rng.uniform(0.93, 1.0)), float(rng.uniform(0.85, 1.0))),
        ambient=float(rng.uniform(0.4, 0.6)),
        key_direction=(float(rng.uniform(-0.5, 0.5)), -1.0, float(rng.uniform(-0.2, 0.6))),
        key=float(rng.uniform(0.5, 0.8)),
        window=float(rng.uniform(0.0, 0.7)),
    )


@dataclass
class MaterialTable:
    """Per-material properties, one row per material (static rows first, then 8 per student)."""

    albedo: np.ndarray  # [M, 3] linear reflectance, BGR order (the frames are BGR)
    emission: np.ndarray  # [M, 3] linear BGR emission at light level 1
    temperature: np.ndarray  # [M] degrees Celsius
    skin: np.ndarray  # [M] bool, skin whose apparent temperature falls off at grazing angles
    dropout: np.ndarray  # [M] probability that the depth sensor returns no value


@dataclass(frozen=True)
class RoomClimate:
    room_c: float
    window_c: float
    radiator_c: float

    @classmethod
    def sample(cls, rng: np.random.Generator, low_contrast: bool) -> RoomClimate:
        room = float(rng.uniform(27.0, 30.0) if low_contrast else rng.uniform(20.0, 24.0))
        window = float(room + rng.choice([rng.uniform(-10.0, -4.0), rng.uniform(2.0, 6.0)]))
        radiator = float(rng.uniform(40.0, 55.0) if (rng.random() < 0.5 and not low_contrast) else room + 0.5)
        return cls(room, window, radiator)


def _rgb(values: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    return np.asarray(values, float)[::-1]  # to BGR


def room_palette(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Colours of one room's surfaces (linear reflectance, RGB)."""
    wall = rng.choice([[0.75, 0.73, 0.68], [0.62, 0.68, 0.72], [0.72, 0.66, 0.55], [0.55, 0.6, 0.55]])
    return {
        "floor": np.asarray(rng.choice([[0.25, 0.22, 0.2], [0.35, 0.25, 0.15], [0.3, 0.3, 0.32]])),
        "wall": np.asarray(wall),
        "ceiling": np.array([0.8, 0.8, 0.78]),
        "desk_top": np.asarray(rng.choice([[0.55, 0.4, 0.25], [0.7, 0.7, 0.68], [0.35, 0.35, 0.37]])),
        "desk_panel": np.asarray(rng.choice([[0.3, 0.3, 0.32], [0.45, 0.33, 0.2]])),
        "chair": np.asarray(
            rng.choice([[0.05, 0.1, 0.3], [0.05, 0.05, 0.05], [0.35, 0.05, 0.05], [0.2, 0.25, 0.2]])
        ),
        "window": np.array([0.1, 0.12, 0.14]),
        "light": np.array([0.8, 0.8, 0.8]),
        "door": np.asarray(rng.choice([[0.4, 0.25, 0.12], [0.5, 0.5, 0.52]])),
        "poster_a": rng.uniform(0.1, 0.8, 3),
        "poster_b": rng.uniform(0.1, 0.8, 3),
        "poster_c": rng.uniform(0.1, 0.8, 3),
        "radiator": np.array([0.75, 0.75, 0.75]),
        "laptop": np.array([0.45, 0.45, 0.47]),
        "bag": np.asarray(rng.choice([[0.05, 0.05, 0.06], [0.1, 0.15, 0.35], [0.3, 0.1, 0.1]])),
        "pages": np.array([0.8, 0.79, 0.75]),
        "notebook": np.array([0.78, 0.78, 0.8]),
        "pen": np.array([0.05, 0.05, 0.2]),
        "phone_body": np.array([0.03, 0.03, 0.035]),
        "screen_on": np.array([0.05, 0.05, 0.05]),
        "screen_off": np.array([0.02, 0.02, 0.025]),
    }


def build_materials(
    palette: dict[str, np.ndarray],
    climate: RoomClimate,
    lighting: Lighting,
    students: list[StudentProfile],
    cup_temperatures: list[float],
    cover_colours: list[np.ndarray],
) -> MaterialTable:
    """The room's materials, then MATERIALS_PER_STUDENT rows for each student in order."""
    n_static = len(STATIC_MATERIALS)
    m = n_static + MATERIALS_PER_STUDENT * len(students)
    table = MaterialTable(
        albedo=np.zeros((m, 3)),
        emission=np.zeros((m, 3)),
        temperature=np.full(m, climate.room_c),
        skin=np.zeros(m, bool),
        dropout=np.zeros(m),
    )
    _set_room_materials(table, palette, climate, lighting)
    for k, prof in enumerate(students):
        base = n_static + k * MATERIALS_PER_STUDENT
        _set_student_materials(table, base, prof, climate.room_c, cup_temperatures[k], cover_colours[k])
    return table


def _set_room_materials(
    table: MaterialTable, palette: dict[str, np.ndarray], climate: RoomClimate, lighting: Lighting
) -> None:
    """Colours, temperatures, light and depth dropout of the room's surfaces and props."""
    albedo, emission, temperature, dropout = table.albedo, table.emission, table.temperature, table.dropout
    room = climate.room_c
    for name, i in M.items():
        albedo[i] = _rgb(palette[name])
    temperature[M["floor"]] = room - 0.6
    temperature[M["ceiling"]] = room + 0.8
    temperature[M["chair"]] = room + 0.3
    temperature[M["window"]] = climate.window_c
    temperature[M["radiator"]] = climate.radiator_c
    temperature[M["light"]] = room + 14.0 if lighting.lights_on else room + 1.0
    temperature[M["laptop"]] = room + 10.0
    temperature[M["phone_body"]] = room + 7.0
    temperature[M["screen_on"]] = room + 10.0
    temperature[M["screen_off"]] = room + 5.0
    # Emission is relative to light level 1; the light panels follow the room light.
    if lighting.lights_on:
        emission[M["light"]] = 3.0 * lighting.level
    # Daylight through the windows; at dusk (a low-light lecture) it fades with the room light.
    emission[M["window"]] = _rgb((1.6, 1.7, 1.9)) * lighting.window * min(1.0, 3.0 * lighting.level)
    emission[M["screen_on"]] = _rgb((0.55, 0.65, 0.85)) * 1.2
    dropout[M["window"]] = 1.0
    dropout[M["screen_on"]] = dropout[M["screen_off"]] = 0.6
    dropout[M["phone_body"]] = 0.2
    dropout[M["light"]] = 0.8


def _set_student_materials(
    table: MaterialTable,
    base: int,
    prof: StudentProfile,
    room: float,
    cup_temperature: float,
    cover_colour: np.ndarray,
) -> None:
    """The rows of one student from ``base``: skin, hair, clothes, eyes, cup and book cover."""
    albedo, temperature, skin, dropout = table.albedo, table.temperature, table.skin, table.dropout
    face = prof.face_temperature_c
    albedo[base + MAT_SKIN] = _rgb(prof.skin_rgb)
    albedo[base + MAT_HAND] = _rgb(prof.skin_rgb)
    albedo[base + MAT_HAIR] = _rgb(prof.hair_rgb)
    albedo[base + MAT_SHIRT] = _rgb(prof.shirt_rgb)
    albedo[base + MAT_EYE] = _rgb((0.04, 0.03, 0.03))
    albedo[base + MAT_SLEEVE_END] = _rgb(prof.shirt_rgb if prof.long_sleeves else prof.skin_rgb)
    albedo[base + MAT_CUP] = _rgb(cover_colour * 0.6 + 0.3)
    albedo[base + MAT_COVER] = _rgb(cover_colour)
    hand_c = face - prof.hand_temperature_drop_c
    cloth_c = room + (face - 2.0 - room) * (1.0 - prof.clothing_insulation)
    temperature[base + MAT_SKIN] = face
    temperature[base + MAT_EYE] = face + 0.4  # the inner canthus is the warmest point of a face
    temperature[base + MAT_HAND] = hand_c
    temperature[base + MAT_HAIR] = room + (face - room) * 0.45
    temperature[base + MAT_SHIRT] = cloth_c
    temperature[base + MAT_SLEEVE_END] = cloth_c if prof.long_sleeves else hand_c + 0.5
    temperature[base + MAT_CUP] = cup_temperature
    temperature[base + MAT_COVER] = room
    skin[[base + MAT_SKIN, base + MAT_HAND]] = True
    if not prof.long_sleeves:
        skin[base + MAT_SLEEVE_END] = True
    dark_hair = float(np.mean(prof.hair_rgb)) < 0.06
    dropout[base + MAT_HAIR] = 0.25 if dark_hair else 0.05
    dropout[base + MAT_SHIRT] = 0.06 if float(np.mean(prof.shirt_rgb)) < 0.08 else 0.0
