"""EnhancementParams: defaults validate, JSON round trip, eq. 2 normalisation, clear errors."""

import json
from dataclasses import asdict, replace

import pytest

from services.enhancement.params import EnhancementParams


def test_json_round_trip(tmp_path) -> None:
    params = replace(EnhancementParams(), lambda1=0.3, lambda2=0.7, small_eps=3.5, chroma_radius=2)
    path = tmp_path / "enhancement.json"
    params.to_json(path)
    assert EnhancementParams.from_json(path) == params


def test_lambdas_are_normalised_on_load(tmp_path) -> None:
    path = tmp_path / "enhancement.json"
    path.write_text(json.dumps({"lambda1": 2.0, "lambda2": 6.0}))
    params = EnhancementParams.from_json(path)
    assert (params.lambda1, params.lambda2) == pytest.approx((0.25, 0.75))


def test_missing_keys_take_defaults_and_types_are_coerced(tmp_path) -> None:
    path = tmp_path / "enhancement.json"
    path.write_text(json.dumps({"small_radius": 2.0, "white_target": 1}))
    params = EnhancementParams.from_json(path)
    assert params.small_radius == 2 and isinstance(params.small_radius, int)
    assert params.white_target == 1.0 and isinstance(params.white_target, float)
    assert params.large_radius == EnhancementParams().large_radius


@pytest.mark.parametrize(
    "values, message",
    [
        ({"unknown_knob": 1}, "unknown enhancement parameters: unknown_knob"),
        ({"lambda1": -1.0, "lambda2": 1.0}, "non-negative"),
        ({"small_radius": 0}, "small_radius must be > 0"),
        ({"illumination_gamma": 1.5}, "illumination_gamma must be in (0, 1]"),
        ({"thermal_low_percentile": 99, "thermal_high_percentile": 1}, "thermal percentiles"),
        ({"small_eps": float("nan")}, "small_eps must be finite"),
    ],
)
def test_bad_values_are_named(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        EnhancementParams.from_dict(values)


def test_unreadable_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "enhancement.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read enhancement parameters"):
        EnhancementParams.from_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        EnhancementParams.from_json(path)


def test_every_field_is_in_the_json(tmp_path) -> None:
    path = tmp_path / "p.json"
    EnhancementParams().to_json(path)
    assert set(json.loads(path.read_text())) == set(asdict(EnhancementParams()))
