"""The campus file: classrooms, their cameras and seat maps, courses and their rosters.

Students are identified by seat: each camera's seat map gives seat regions in
analysis-resolution colour pixels, and each course's roster says which student sits in
which seat. The file is YAML; ``load_campus`` validates it and ``Campus`` answers the
questions services ask (which seats does this camera see, who sits there in this course).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.common.calibration import CameraCalibration


class CampusConfigError(ValueError):
    """The campus file is missing, unreadable or inconsistent."""


class Seat(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in analysis-resolution colour pixels

    @model_validator(mode="after")
    def _box_ordered(self) -> Seat:
        x0, y0, x1, y1 = self.box
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"seat {self.id}: box must have x1 > x0 and y1 > y0")
        return self


class Camera(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    analysis_width: int = Field(default=640, gt=0)
    analysis_height: int = Field(default=360, gt=0)
    calibration: CameraCalibration | None = None
    seats: tuple[Seat, ...] = ()

    @model_validator(mode="after")
    def _unique_seats(self) -> Camera:
        ids = [s.id for s in self.seats]
        if len(ids) != len(set(ids)):
            raise ValueError(f"camera {self.id}: seat ids repeat")
        return self


class Classroom(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    name: str = ""
    building: str = ""
    cameras: tuple[Camera, ...] = ()


class RosterEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    student: str = Field(min_length=1)
    seat: str = Field(min_length=1)


class Course(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    name: str = ""
    classroom: str
    instructors: tuple[str, ...] = ()
    roster: tuple[RosterEntry, ...] = ()


class Campus(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "campus"
    classrooms: tuple[Classroom, ...] = ()
    courses: tuple[Course, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Campus:
        rooms = {c.id: c for c in self.classrooms}
        if len(rooms) != len(self.classrooms):
            raise ValueError("classroom ids repeat")
        if len({c.id for c in self.courses}) != len(self.courses):
            raise ValueError("course ids repeat")
        for course in self.courses:
            if course.classroom not in rooms:
                raise ValueError(f"course {course.id}: unknown classroom {course.classroom}")
            seats = {s.id for cam in rooms[course.classroom].cameras for s in cam.seats}
            for entry in course.roster:
                if entry.seat not in seats:
                    raise ValueError(
                        f"course {course.id}: student {entry.student} has unknown seat {entry.seat}"
                    )
            students = [e.student for e in course.roster]
            if len(students) != len(set(students)):
                raise ValueError(f"course {course.id}: a student appears twice in the roster")
        return self

    @cached_property
    def _cameras(self) -> dict[tuple[str, str], Camera]:
        return {(room.id, cam.id): cam for room in self.classrooms for cam in room.cameras}

    @cached_property
    def _courses(self) -> dict[str, Course]:
        return {c.id: c for c in self.courses}

    def camera(self, classroom_id: str, camera_id: str) -> Camera | None:
        return self._cameras.get((classroom_id, camera_id))

    def course(self, course_id: str) -> Course | None:
        return self._courses.get(course_id)

    def student_in_seat(self, course_id: str, seat_id: str) -> str | None:
        """Who sits in ``seat_id`` in this course, or None for an empty or unassigned seat."""
        course = self.course(course_id)
        if course is None:
            return None
        for entry in course.roster:
            if entry.seat == seat_id:
                return entry.student
        return None


def parse_campus(document: dict) -> Campus:
    try:
        return Campus.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise CampusConfigError(problems) from None


def load_campus(path: str | Path) -> Campus:
    path = Path(path)
    if not path.is_file():
        raise CampusConfigError(f"{path} does not exist")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CampusConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise CampusConfigError(f"{path}: expected a mapping at the top level")
    return parse_campus(document)


def dump_campus(campus: Campus, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(campus.model_dump(mode="json"), sort_keys=False))
