"""Which section 3.2 parameters ship: the ones that enhance real photographs best.

Parameters learned end to end (the paper recipe, section 3.5) fit the simulator's frames; a
classroom camera sees real ones. So learned parameters become a checkpoint's
``enhancement.json`` (what the enhancement service loads) only when they beat the section 3.2
defaults on real photographs that no training ever sees: colour photographs that
scikit-image ships (never simulator frames), darkened and noised as a dim classroom camera
captures them (``synthetic.low_light``: exposure and vignetting, shot and read noise), each at
two light levels. The figure is the mean PSNR / SSIM of the enhanced capture against the
photograph. Otherwise the defaults ship, and the report (``enhancement.report.json``) keeps
both sets and both figures.

``python -m services.enhancement.photos PARAMS.json [...]`` prints the figures of each file
beside the defaults'; ``--ship DIR`` applies the rule to ``DIR/enhancement.json`` in place.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.enhancement.params import EnhancementParams

# real colour photographs in the scikit-image wheel (no download); none is a simulator frame
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")


def _photo(name: str) -> np.ndarray:
    """One of PHOTOS as RGB uint8."""
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(skimage.data, name)()


# (exposure, vignetting falloff) of a dim classroom: lights dimmed for a projector, and darker
LIGHT_LEVELS = ((0.12, 0.5), (0.05, 0.0))
ANALYSIS_SIZE = (640, 360)
REPORT_JSON = "enhancement.report.json"


@dataclass(frozen=True)
class PhotoQuality:
    psnr_db: float
    ssim: float
    images: int

    def beats(self, other: PhotoQuality) -> bool:
        """Better PSNR and no worse SSIM (a higher PSNR bought with structure is not better)."""
        return self.psnr_db > other.psnr_db and self.ssim >= other.ssim


def dim_captures(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(dim capture, photograph) pairs, BGR uint8 at the analysis size, the same for every call."""
    import cv2

    from services.enhancement.synthetic import low_light

    pairs = []
    for i, name in enumerate(PHOTOS):
        photo = np.ascontiguousarray(_photo(name)[..., :3][..., ::-1])
        clean = cv2.resize(photo, ANALYSIS_SIZE, interpolation=cv2.INTER_AREA)
        for j, (exposure, falloff) in enumerate(LIGHT_LEVELS):
            rng = np.random.default_rng([seed, i, j])
            pairs.append((low_light(clean, rng, exposure=exposure, falloff=falloff), clean))
    return pairs


def photo_quality(
    params: EnhancementParams, pairs: list[tuple[np.ndarray, np.ndarray]] | None = None
) -> PhotoQuality:
    """Mean PSNR / SSIM of section 3.2's colour enhancement with ``params`` on the real photographs."""
    from services.enhancement.metrics import psnr, ssim
    from services.enhancement.pipeline import Enhancer

    pairs = dim_captures() if pairs is None else pairs
    enhancer = Enhancer(params)
    psnrs, ssims = [], []
    for dim, clean in pairs:
        out = enhancer.enhance_colour(dim, ANALYSIS_SIZE)
        psnrs.append(psnr(out, clean))
        ssims.append(ssim(out, clean))
    return PhotoQuality(float(np.mean(psnrs)), float(np.mean(ssims)), len(pairs))


def choose_shipped(candidate: EnhancementParams) -> tuple[EnhancementParams, dict[str, Any]]:
    """(the parameters to ship, the report): ``candidate`` if it beats the defaults on the real
    photographs, else the defaults."""
    defaults = EnhancementParams()
    pairs = dim_captures()
    ours = photo_quality(candidate, pairs)
    base = ours if candidate == defaults else photo_quality(defaults, pairs)
    wins = candidate != defaults and ours.beats(base)
    report = {
        "rule": "learned section 3.2 parameters ship only if they beat the defaults on real photographs "
        "(higher PSNR, no lower SSIM)",
        "photos": f"scikit-image {', '.join(PHOTOS)}; dimmed and noised at (exposure, falloff) {list(LIGHT_LEVELS)}; "
        f"{ANALYSIS_SIZE[0]}x{ANALYSIS_SIZE[1]}",
        "defaults": asdict(base),
        "candidate": asdict(ours),
        "candidate_params": asdict(candidate),
        "shipped": "candidate" if wins else "defaults",
    }
    return (candidate if wins else defaults), report


def ship(directory: str | Path, candidate: EnhancementParams) -> dict[str, Any]:
    """Write DIR/enhancement.json by the rule and DIR/enhancement.report.json beside it."""
    directory = Path(directory)
    shipped, report = choose_shipped(candidate)
    shipped.to_json(directory / "enhancement.json")
    (directory / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.enhancement.photos", description=__doc__)
    parser.add_argument("params", nargs="*", type=Path, help="enhancement.json files to measure")
    parser.add_argument("--ship", type=Path, help="apply the rule to DIR/enhancement.json in place")
    args = parser.parse_args(argv)
    try:
        if args.ship is not None:
            report = ship(args.ship, EnhancementParams.from_json(args.ship / "enhancement.json"))
            print(json.dumps({k: report[k] for k in ("defaults", "candidate", "shipped")}))
            return 0
        pairs = dim_captures()
        rows = [("section 3.2 defaults", EnhancementParams())]
        rows += [(str(p), EnhancementParams.from_json(p)) for p in args.params]
        print(
            f"{'parameters':<60} {'PSNR dB':>8} {'SSIM':>7}  ({len(pairs)} dim captures of {len(PHOTOS)} photographs)"
        )
        for name, params in rows:
            q = photo_quality(params, pairs)
            print(f"{name:<60} {q.psnr_db:8.2f} {q.ssim:7.3f}")
    except (OSError, ValueError) as exc:
        print(f"enhancement photos: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
