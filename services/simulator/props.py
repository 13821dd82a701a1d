"""Desk props (book with turning pages, notebook, pen, phone with a lit screen, cup) and occluders.

Props follow the pose: a pen rides in the writing hand, a phone is held facing the face,
a cup travels to the mouth, a page swings over the book's spine. Every student gets a
random set of props whatever they are doing, so a prop's presence says little; its use
(motion, a lit screen, a hot cup) is the cue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
from services.simulator.raster import KIND_BOX, KIND_ELLIPSOID, Primitives, make_primitives

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


def _frame_points(hips: np.ndarray, bases: np.ndarray, local: np.ndarray) -> np.ndarray:
    """``_frame_point`` for N seats at once: hips [N, 3], bases [N, 3, 3], local points [N, 3]."""
    # matmul runs the same BLAS kernel per matrix as the one-seat product, so values are equal.
    return hips + np.matmul(bases, local[:, :, None])[:, :, 0]


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows of v [N, 3] divided by their norms (the same values as v / np.linalg.norm(v) per row)."""
    return v / np.sqrt(np.vecdot(v, v))[:, None]


def _axes(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """3x3 with columns a, b, c (or [N, 3, 3] for rows of vectors)."""
    if a.ndim == 2:
        return np.stack([a, b, c], axis=2)
    return np.array([a, b, c]).T


# A student's props in the order they are listed, which is also their order as primitives.
_BOOK_COVER, _BOOK_PAGES, _BOOK_PAGE, _NOTEBOOK, _PEN, _PHONE_BODY, _PHONE_SCREEN, _CUP = range(8)
_SLOTS = 8


_Piece = tuple[np.ndarray, int, int, np.ndarray, np.ndarray, np.ndarray | int, int]


@dataclass
class _Desks:
    """All S students' seat frames, poses and desk props, and the prop primitives made so far
    (``pieces``: the students, slot, kind, centres, axes, material and part of one batch)."""

    desk_props: list[DeskProps]
    sk: Skeletons
    poses: np.ndarray
    hips: np.ndarray
    bases: np.ndarray
    side: np.ndarray
    mats: np.ndarray
    pieces: list[_Piece] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        desk_props: list[DeskProps],
        seats: list[Seat],
        sk: Skeletons,
        poses: np.ndarray,
        material_base: np.ndarray,
    ) -> _Desks:
        return cls(
            desk_props,
            sk,
            poses,
            hips=np.array([seat.hip for seat in seats]),
            bases=np.array([seat.basis for seat in seats]),
            side=np.array([float(p.side) for p in desk_props]),
            mats=np.asarray(material_base, np.int64),
        )

    @property
    def r(self) -> np.ndarray:
        return self.bases[:, :, 0]

    @property
    def u(self) -> np.ndarray:
        return self.bases[:, :, 1]

    @property
    def f(self) -> np.ndarray:
        return self.bases[:, :, 2]

    def add(
        self,
        who: np.ndarray,
        slot: int,
        kind: int,
        centre: np.ndarray,
        axes: np.ndarray,
        material: np.ndarray | int,
        part: int,
    ) -> None:
        if len(who):
            self.pieces.append((who, slot, kind, centre, axes, material, part))

    def having(self, name: str) -> np.ndarray:
        """The students whose desk has prop ``name``."""
        return np.flatnonzero(np.array([getattr(p, name) for p in self.desk_props], bool))

    def code(self, slot: int) -> np.ndarray:
        """A discrete prop slot of the poses as ints (0, 1, 2, 3): int(value + 0.5)."""
        return (self.poses[:, slot] + 0.5).astype(np.int64)

    def on_desk(self, who: np.ndarray, x: np.ndarray | list[float], y: float, z: float) -> np.ndarray:
        """Points at (x, y, z) of the seat frames of students ``who`` (x per student)."""
        local = np.stack([x, np.full(len(who), y), np.full(len(who), z)], 1)
        return _frame_points(self.hips[who], self.bases[who], local)


def props_primitives(
    desk_props: list[DeskProps],
    seats: list[Seat],
    sk: Skeletons,
    poses: np.ndarray,
    material_base: np.ndarray,
) -> Primitives:
    """The props of all S students of ``sk`` in poses [S, NUM_POSE], student by student;
    ``material_base[s]`` is student s's first material row."""
    if len(desk_props) == 0:
        return Primitives.empty()
    desks = _Desks.of(desk_props, seats, sk, poses, material_base)
    _add_books(desks)
    _add_notebooks(desks)
    _add_pens(desks)
    _add_phones(desks)
    _add_cups(desks)
    return _student_by_student(desks.pieces)


def _add_books(d: _Desks) -> None:
    """Open books (cover, pages and a page turning over the spine) and closed ones."""
    book = d.having("book")
    if not len(book):
        return
    spot = d.on_desk(book, [d.desk_props[s].book_x for s in book], DESK_Y, BOOK_Z)
    is_open = d.poses[book, BOOK_OPEN] >= 0.5
    o, c = np.flatnonzero(is_open), np.flatnonzero(~is_open)
    ro, uo, fo = d.r[book[o]], d.u[book[o]], d.f[book[o]]
    d.add(
        book[o],
        _BOOK_COVER,
        KIND_BOX,
        spot[o] + uo * 2.0,
        _axes(ro * 160.0, uo * 2.0, fo * 110.0),
        d.mats[book[o]] + MAT_COVER,
        PART_BOOK,
    )
    d.add(
        book[o],
        _BOOK_PAGES,
        KIND_BOX,
        spot[o] + uo * 8.0,
        _axes(ro * 152.0, uo * 6.0, fo * 104.0),
        M["pages"],
        PART_BOOK,
    )
    _add_turning_pages(d, book[o], spot[o])
    rc, uc, fc = d.r[book[c]], d.u[book[c]], d.f[book[c]]
    d.add(
        book[c],
        _BOOK_COVER,
        KIND_BOX,
        spot[c] + uc * 18.0,
        _axes(rc * 105.0, uc * 18.0, fc * 145.0),
        d.mats[book[c]] + MAT_COVER,
        PART_BOOK,
    )


def _add_turning_pages(d: _Desks, open_books: np.ndarray, spot: np.ndarray) -> None:
    """The page of an open book that is on its way over the spine (0 < PAGE_FLIP < 1)."""
    flip = d.poses[open_books, PAGE_FLIP]
    turning = np.flatnonzero((flip > 0.0) & (flip < 1.0))
    if not len(turning):
        return
    # libm's cos and sin per turning page (a few at most): NumPy's SIMD ones can differ
    # in the last bit from what one student at a time gives.
    theta = [math.pi * flip[k] for k in turning]
    cos = np.array([math.cos(a) for a in theta])[:, None]
    sin = np.array([math.sin(a) for a in theta])[:, None]
    who = open_books[turning]
    rt, ut, ft = d.r[who], d.u[who], d.f[who]
    st = d.side[who][:, None]
    along = rt * st * cos + ut * sin
    normal = -rt * st * sin + ut * cos
    d.add(
        who,
        _BOOK_PAGE,
        KIND_BOX,
        spot[turning] + ut * 15.0 + along * 76.0,
        _axes(along * 75.0, normal * 1.5, ft * 103.0),
        M["pages"],
        PART_BOOK,
    )


def _add_notebooks(d: _Desks) -> None:
    notebook = d.having("notebook")
    if not len(notebook):
        return
    spot = d.on_desk(notebook, d.side[notebook] * 60.0, DESK_Y + 3.0, DESK_EDGE_FORWARD + 175.0)
    rn, un, fn = d.r[notebook], d.u[notebook], d.f[notebook]
    d.add(
        notebook,
        _NOTEBOOK,
        KIND_BOX,
        spot,
        _axes(rn * 105.0, un * 3.0, fn * 148.0),
        M["notebook"],
        PART_NOTEBOOK,
    )


def _add_pens(d: _Desks) -> None:
    """A pen rides in the writing hand, tip down to the paper, or lies beside the notebook."""
    pen = d.having("pen")
    if not len(pen):
        return
    hand = d.code(PEN_HAND)[pen]
    held = np.isin(hand, (1, 2))
    k = np.where(held, hand - 1, 0)
    hand_dir = d.sk.hand_dir[pen, k]
    axis = d.f[pen].copy()
    centre = np.empty((len(pen), 3))
    h = np.flatnonzero(held)
    axis[h] = _unit(hand_dir[h] * 0.45 - d.u[pen[h]] * 0.85 + d.f[pen[h]] * 0.2)
    centre[h] = d.sk.hands[pen[h], k[h]] - d.u[pen[h]] * 15.0
    rest = pen[np.flatnonzero(~held)]
    centre[~held] = d.on_desk(rest, d.side[rest] * 190.0, DESK_Y + 5.0, DESK_EDGE_FORWARD + 150.0)
    a, b = _perpendiculars(axis)
    d.add(pen, _PEN, KIND_ELLIPSOID, centre, _axes(a * 5.0, b * 5.0, axis * 72.0), M["pen"], PART_PEN)


def _add_phones(d: _Desks) -> None:
    """A phone held in one or both hands faces the head; one on the desk lies flat, screen up."""
    phone = d.having("phone")
    if not len(phone):
        return
    hand = d.code(PHONE_HAND)[phone]
    screen = np.where(d.poses[phone, PHONE_SCREEN] >= 0.5, M["screen_on"], M["screen_off"])
    centre = np.empty((len(phone), 3))
    normal, length, width = d.u[phone].copy(), d.f[phone].copy(), d.r[phone].copy()
    in_hand = np.isin(hand, (1, 2, 3))
    h = np.flatnonzero(in_hand)
    if len(h):
        hands = d.sk.hands[phone[h]]
        both = hand[h] == 3
        held = np.where(
            both[:, None], hands.mean(axis=1), hands[np.arange(len(h)), np.clip(hand[h] - 1, 0, 1)]
        )
        centre[h] = held + d.u[phone[h]] * 12.0
        nh = _unit(d.sk.head_centre[phone[h]] - centre[h])
        fh = d.f[phone[h]]
        lh = _unit(fh - np.vecdot(fh, nh)[:, None] * nh)
        normal[h], length[h], width[h] = nh, lh, cross(nh, lh)
    rest = phone[~in_hand]
    centre[~in_hand] = d.on_desk(
        rest, [d.desk_props[s].phone_x for s in rest], DESK_Y + 4.0, DESK_EDGE_FORWARD + 320.0
    )
    d.add(
        phone,
        _PHONE_BODY,
        KIND_BOX,
        centre,
        _axes(width * 36.0, normal * 4.0, length * 75.0),
        M["phone_body"],
        PART_PHONE,
    )
    d.add(
        phone,
        _PHONE_SCREEN,
        KIND_BOX,
        centre + normal * 4.5,
        _axes(width * 32.0, normal * 0.6, length * 68.0),
        screen,
        PART_PHONE,
    )


def _add_cups(d: _Desks) -> None:
    """A cup in the drinking hand, or standing on the desk top."""
    cup = d.having("cup")
    if not len(cup):
        return
    hand = d.code(CUP_HAND)[cup]
    centre = np.empty((len(cup), 3))
    in_hand = np.isin(hand, (1, 2))
    h = np.flatnonzero(in_hand)
    centre[h] = d.sk.hands[cup[h], hand[h] - 1] + d.u[cup[h]] * 20.0 - d.f[cup[h]] * 15.0
    rest = cup[~in_hand]
    centre[~in_hand] = d.on_desk(
        rest, [d.desk_props[s].cup_x for s in rest], DESK_Y + 48.0, DESK_EDGE_FORWARD + 200.0
    )
    rc, uc, fc = d.r[cup], d.u[cup], d.f[cup]
    d.add(
        cup, _CUP, KIND_BOX, centre, _axes(rc * 38.0, uc * 48.0, fc * 38.0), d.mats[cup] + MAT_CUP, PART_CUP
    )


def _student_by_student(pieces: list[_Piece]) -> Primitives:
    """The pieces as one Primitives, ordered by student and then by prop slot."""
    if not pieces:
        return Primitives.empty()
    who = np.concatenate([pc[0] for pc in pieces])
    order = np.argsort(
        who * _SLOTS + np.concatenate([np.full(len(pc[0]), pc[1]) for pc in pieces]), kind="stable"
    )
    return Primitives(
        kind=np.concatenate([np.full(len(pc[0]), pc[2], np.int8) for pc in pieces])[order],
        centre=np.concatenate([pc[3] for pc in pieces])[order],
        axes=np.concatenate([pc[4] for pc in pieces])[order],
        material=np.concatenate(
            [np.broadcast_to(np.asarray(pc[5], np.int32), (len(pc[0]),)) for pc in pieces]
        )[order],
        owner=who[order].astype(np.int32),
        part=np.concatenate([np.full(len(pc[0]), pc[6], np.int16) for pc in pieces])[order],
    )


def _perpendiculars(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to each unit axis [N, 3] and to each other."""
    helper = np.where(
        (np.abs(axis[:, 0]) < 0.9)[:, None], np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    )
    a = _unit(cross(axis, helper))
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
