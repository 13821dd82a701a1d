"""The campus file while a service runs: a valid new version is swapped in whole, a bad one is
refused (logged once) and the version in force stays."""

from __future__ import annotations

import logging
import os

import pytest

from services.common.campus import Camera, Campus, CampusConfigError, Classroom, dump_campus
from services.common.campus_watch import CampusFile


def campus(*cameras: str) -> Campus:
    return Campus(classrooms=(Classroom(id="room-1", cameras=tuple(Camera(id=c) for c in cameras)),))


def replace(path, text: str) -> None:
    """As a ConfigMap update does: a new file renamed over the old one."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_new_camera_is_picked_up_and_a_bad_file_refused(tmp_path, caplog):
    path = tmp_path / "campus.yaml"
    dump_campus(campus("front"), path)
    watched = CampusFile(path, reload_s=0.0)
    assert watched.current.camera("room-1", "front") is not None
    assert not watched.poll(force=True)  # unchanged
    dump_campus(campus("front", "back"), tmp_path / "next.yaml")
    replace(path, (tmp_path / "next.yaml").read_text())
    assert watched.poll(force=True)
    assert watched.current.camera("room-1", "back") is not None
    with caplog.at_level(logging.ERROR, logger="campus"):
        replace(path, "classrooms: [oops")
        assert not watched.poll(force=True) and not watched.poll(force=True)
    assert watched.current.camera("room-1", "back") is not None  # the version in force stays
    refusals = [r for r in caplog.records if r.getMessage().startswith("campus file refused")]
    assert len(refusals) == 1  # logged once per version


def test_checks_are_spaced_and_a_bad_file_at_start_stops_the_service(tmp_path):
    path = tmp_path / "campus.yaml"
    dump_campus(campus("front"), path)
    watched = CampusFile(path, reload_s=3600.0)
    dump_campus(campus("front", "back"), path)
    assert not watched.poll()  # not yet time to look
    assert watched.poll(force=True)
    path.write_text("classrooms: [oops")
    with pytest.raises(CampusConfigError):
        CampusFile(path)
