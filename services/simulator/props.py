"""Desk props (book with turning pages, notebook, pen, phone with a lit screen, cup) and occluders.

Props follow the pose: a pen rides in the writing hand, a phone is held facing the face,
a cup travels to the mouth, a page swings over the book's spine. Every student gets a
random set of props whatever they are doing, so a prop's presence says little; its use
(motion, a lit screen, a hot cup) is the cue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.simulator.body import (
    BOOK_OPEN,
    CUP_HAND,
    DESK_EDGE_FORWARD,
    DESK_TOP_ABOVE_HIP,
    MAT_COVER,
    MAT_CUP,
    PAGE_FLIP,
    PEN_HAND,
    PHONE_HAND,
    PHONE_SCREEN,
    Skeletons,
)
from services.simulator.classroom import (
    PART_BOOK,
    PART_CUP,
    PART_NOTEBOOK,
    PART_OCCLUDER,
    PART_PEN,
    PART_PHONE,
    M,
    Seat,
)
from services.simulator.geometry import cross
from services.simulator.raster import KIND_BOX, KIND_ELLIPSOID, PrimitiveBuffer, Primitives, make_primitives

BOOK_Z = DESK_EDGE_FORWARD + 190.0
DESK_Y = DESK_TOP_ABOVE_HIP


@dataclass(frozen=True)
class DeskProps:
    """Which props lie on one student's desk for a clip, and where (seat frame, mm)."""

    book: bool
    notebook: bool
    pen: bool
    phone: bool
    cup: bool
    side: int  # the student's writing side: +1 right, -1 left
    book_x: float
    phone_x: float
    cup_x: float

    @classmethod
    def sample(cls, rng: np.random.Generator, side: int, *, need: tuple[str, ...] = ()) -> DeskProps:
        book = "book" in need or rng.random() < 0.55
        notebook = "notebook" in need or rng.random() < 0.6
        return cls(
            book=book,
            notebook=notebook,
            pen="pen" in need or rng.random() < 0.7,
            phone="phone" in need or rng.random() < 0.35,
            cup="cup" in need or rng.random() < 0.3,
            side=side,
            book_x=-side * 150.0 if notebook and "book" not in need else 0.0,
            phone_x=side * float(rng.uniform(210.0, 270.0)),
            cup_x=side * 210.0,
        )


def _frame_point(seat_hip: np.ndarray, basis: np.ndarray, x: float, y: float, z: float) -> np.ndarray:
    return seat_hip + basis @ np.array([x, y, z])


def _axes(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """3x3 with columns a, b, c."""
    return np.array([a, b, c]).T


def add_props(
    out: PrimitiveBuffer,
    props: DeskProps,
    seat: Seat,
    sk: Skeletons,
    s: int,
    pose: np.ndarray,
    material_base: int,
) -> None:
    """Props of student ``s`` of ``sk`` in pose ``pose``; ``material_base`` is their first material row."""
    r, u, f = seat.basis[:, 0], seat.basis[:, 1], seat.basis[:, 2]
    hip = seat.hip
    side = props.side
    if props.book:
        spot = _frame_point(hip, seat.basis, props.book_x, DESK_Y, BOOK_Z)
        if pose[BOOK_OPEN] >= 0.5:
            out.add(
                KIND_BOX,
                spot + u * 2.0,
                _axes(r * 160.0, u * 2.0, f * 110.0),
                material_base + MAT_COVER,
                s,
                PART_BOOK,
            )
            out.add(KIND_BOX, spot + u * 8.0, _axes(r * 152.0, u * 6.0, f * 104.0), M["pages"], s, PART_BOOK)
            flip = pose[PAGE_FLIP]
            if 0.0 < flip < 1.0:
                theta = math.pi * flip
                along = r * side * math.cos(theta) + u * math.sin(theta)
                normal = -r * side * math.sin(theta) + u * math.cos(theta)
                out.add(
                    KIND_BOX,
                    spot + u * 15.0 + along * 76.0,
                    _axes(along * 75.0, normal * 1.5, f * 103.0),
                    M["pages"],
                    s,
                    PART_BOOK,
                )
        else:
            out.add(
                KIND_BOX,
                spot + u * 18.0,
                _axes(r * 105.0, u * 18.0, f * 145.0),
                material_base + MAT_COVER,
                s,
                PART_BOOK,
            )
    if props.notebook:
        spot = _frame_point(hip, seat.basis, side * 60.0, DESK_Y + 3.0, DESK_EDGE_FORWARD + 175.0)
        out.add(KIND_BOX, spot, _axes(r * 105.0, u * 3.0, f * 148.0), M["notebook"], s, PART_NOTEBOOK)
    hands = sk.hands[s]
    hand_dir = sk.hand_dir[s]
    if props.pen:
        code = _code(pose[PEN_HAND])
        if code in (1, 2):
            k = code - 1
            axis = hand_dir[k] * 0.45 - u * 0.85 + f * 0.2
            axis /= np.linalg.norm(axis)
            centre = hands[k] - u * 15.0
        else:
            axis = f
            centre = _frame_point(hip, seat.basis, side * 190.0, DESK_Y + 5.0, DESK_EDGE_FORWARD + 150.0)
        a, b = _perpendicular(axis)
        out.add(KIND_ELLIPSOID, centre, _axes(a * 5.0, b * 5.0, axis * 72.0), M["pen"], s, PART_PEN)
    if props.phone:
        code = _code(pose[PHONE_HAND])
        screen = M["screen_on"] if pose[PHONE_SCREEN] >= 0.5 else M["screen_off"]
        if code in (1, 2, 3):
            held = hands.mean(axis=0) if code == 3 else hands[code - 1]
            centre = held + u * 12.0
            normal = sk.head_centre[s] - centre
            normal /= np.linalg.norm(normal)
            length = f - (f @ normal) * normal
            length /= np.linalg.norm(length)
            width = cross(normal, length)
        else:
            centre = _frame_point(hip, seat.basis, props.phone_x, DESK_Y + 4.0, DESK_EDGE_FORWARD + 320.0)
            normal, length, width = u, f, r
        out.add(
            KIND_BOX, centre, _axes(width * 36.0, normal * 4.0, length * 75.0), M["phone_body"], s, PART_PHONE
        )
        out.add(
            KIND_BOX,
            centre + normal * 4.5,
            _axes(width * 32.0, normal * 0.6, length * 68.0),
            screen,
            s,
            PART_PHONE,
        )
    if props.cup:
        code = _code(pose[CUP_HAND])
        if code in (1, 2):
            centre = hands[code - 1] + u * 20.0 - f * 15.0
        else:
            centre = _frame_point(hip, seat.basis, props.cup_x, DESK_Y + 48.0, DESK_EDGE_FORWARD + 200.0)
        out.add(KIND_BOX, centre, _axes(r * 38.0, u * 48.0, f * 38.0), material_base + MAT_CUP, s, PART_CUP)


def _code(value: float) -> int:
    """A discrete prop slot of a pose vector as an int (0, 1, 2, 3)."""
    return int(value + 0.5)


def _perpendicular(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = cross(axis, helper)
    a /= np.linalg.norm(a)
    return a, cross(axis, a)


def _box(centre: np.ndarray, axes: np.ndarray, material: int, owner: int, part: int) -> Primitives:
    return make_primitives(KIND_BOX, centre[None], axes[None], material, owner, part)


def occluder_primitives(rng: np.random.Generator, seats: list[Seat], rate: float) -> Primitives:
    """Open laptops, bags and stacked books on desks: they hide hands and torsos from the camera."""
    parts: list[Primitives] = []
    for seat in seats:
        if rng.random() >= rate:
            continue
        r, u, f = seat.basis[:, 0], seat.basis[:, 1], seat.basis[:, 2]
        kind = rng.choice(["laptop", "bag", "books"], p=[0.5, 0.3, 0.2])
        x = float(rng.uniform(-180.0, 180.0))
        if kind == "laptop":
            base = _frame_point(seat.hip, seat.basis, x, DESK_Y + 8.0, DESK_EDGE_FORWARD + 230.0)
            parts.append(_box(base, _axes(r * 165.0, u * 8.0, f * 115.0), M["laptop"], -1, PART_OCCLUDER))
            tilt = math.radians(rng.uniform(10.0, 25.0))
            lid_up = u * math.cos(tilt) - f * math.sin(tilt)
            lid_normal = f * math.cos(tilt) + u * math.sin(tilt)
            hinge = base + f * 112.0 + u * 8.0
            parts.append(
                _box(
                    hinge + lid_up * 112.0,
                    _axes(r * 165.0, lid_up * 112.0, lid_normal * 5.0),
                    M["laptop"],
                    -1,
                    PART_OCCLUDER,
                )
            )
        elif kind == "bag":
            centre = _frame_point(seat.hip, seat.basis, x, DESK_Y + 130.0, DESK_EDGE_FORWARD + 330.0)
            parts.append(_box(centre, _axes(r * 160.0, u * 130.0, f * 95.0), M["bag"], -1, PART_OCCLUDER))
        else:
            centre = _frame_point(seat.hip, seat.basis, x, DESK_Y + 90.0, DESK_EDGE_FORWARD + 330.0)
            parts.append(_box(centre, _axes(r * 110.0, u * 90.0, f * 150.0), M["pages"], -1, PART_OCCLUDER))
    return Primitives.concat(parts)
