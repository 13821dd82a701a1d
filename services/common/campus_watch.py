"""The campus file, reloaded while a service runs: classrooms, cameras, seat maps and rosters
added or removed take effect without a restart.

A service checks the file every ``<PREFIX>_CAMPUS_RELOAD_S`` seconds (its size, modification
time and, when those change, its content). A new version that loads is swapped in whole; one
that does not (bad YAML, a camera without calibration, a seat outside its image...) is refused
with its reason in the log, once per version, and the version in force stays. Edit the file by
writing a new one and renaming it over the old (what a ConfigMap update does), so that a reader
never sees half of it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from services.common.campus import Campus, CampusConfigError, load_campus


class CampusFile:
    """``current`` is always a valid campus: the newest version of the file that loaded."""

    def __init__(self, path: str | Path, *, reload_s: float = 5.0, log: logging.Logger | None = None) -> None:
        self.path = Path(path)
        self.reload_s = reload_s
        self.log = log or logging.getLogger("campus")
        self.current: Campus = load_campus(self.path)  # a bad file at start stops the service
        self.loaded_at = time.time()
        self._digest = self._read_digest()
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self._refused: str | None = None  # digest of the last version refused (logged once)

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def poll(self, *, force: bool = False) -> bool:
        """Reload if the file changed and the new version is valid; True when ``current`` changed."""
        now = time.monotonic()
        if not force and (self.reload_s <= 0 or now - self._checked < self.reload_s):
            return False
        self._checked = now
        stamp = self._stat()
        if stamp == self._stamp and not force:
            return False
        self._stamp = stamp
        digest = self._read_digest()
        if digest is None:
            if self._refused != "missing":
                self._refused = "missing"
                self.log.error(
                    "campus file is gone; keeping the campus in force", extra={"path": str(self.path)}
                )
            return False
        if digest == self._digest:
            return False
        try:
            campus = load_campus(self.path)
        except CampusConfigError as exc:
            if self._refused != digest:
                self._refused = digest
                self.log.error(
                    "campus file refused; keeping the campus in force",
                    extra={"path": str(self.path), "error": str(exc)},
                )
            return False
        self.current, self._digest, self._refused, self.loaded_at = campus, digest, None, time.time()
        self.log.info(
            "campus reloaded",
            extra={
                "path": str(self.path),
                "classrooms": len(campus.classrooms),
                "cameras": sum(len(c.cameras) for c in campus.classrooms),
                "courses": len(campus.courses),
            },
        )
        return True

    def describe(self) -> str:
        """For reasons that name the campus: which file, loaded when."""
        return (
            f"{self.path} as loaded at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(self.loaded_at))} UTC"
        )
