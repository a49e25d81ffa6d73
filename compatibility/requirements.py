"""What a project wants of its videos, checked strictly so bad input is refused by field."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Numeric features (as ``GET /api/videos/{id}/compatibility`` reports them) with their unit.
NUMERIC = {
    "width": "px", "height": "px", "pixels": "px", "fps": "fps", "duration": "s", "frame_count": "frames",
    "brightness": "", "contrast": "", "sharpness": "", "noise": "", "motion": "", "scene_change_rate": "/min",
}
#: Categorical features and the values they take.
CATEGORICAL = {"codec": None, "day_night": ("day", "night"), "variable_frame_rate": (True, False)}
DENSITY_PREFIX = "density_"  # density_<class>: detections of that class per frame


class RequirementError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class Requirement:
    feature: str
    kind: str  # "range", "equals", "in"
    low: float = -math.inf
    high: float = math.inf
    values: tuple[Any, ...] = field(default_factory=tuple)
    weight: float = 1.0

    @property
    def numeric(self) -> bool:
        return self.feature in NUMERIC or self.feature.startswith(DENSITY_PREFIX)

    def margin(self) -> tuple[float, float]:
        """Soft margins below ``low`` and above ``high``: a quarter of the range, or of the bound.

        A value one margin outside a bound scores 0; in between the score falls linearly.
        """
        span = self.high - self.low if math.isfinite(self.low) and math.isfinite(self.high) else 0.0
        lo = 0.25 * max(span, abs(self.low) if math.isfinite(self.low) else 0.0, 1e-9)
        hi = 0.25 * max(span, abs(self.high) if math.isfinite(self.high) else 0.0, 1e-9)
        return lo, hi


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequirementError("requirement_value", f"{where} must be a finite number")
    return float(value)


def known_feature(name: str) -> bool:
    return name in NUMERIC or name in CATEGORICAL or (name.startswith(DENSITY_PREFIX) and len(name) > 8)


def parse_requirement(requirement_type: str, value: Any, weight: Any = 1.0) -> Requirement:
    """Turn the API's ``{"min", "max"}`` / ``{"equals"}`` / ``{"in"}`` into a :class:`Requirement`."""
    if not isinstance(requirement_type, str) or not known_feature(requirement_type):
        raise RequirementError("requirement_type", f"unknown feature {requirement_type!r}; one of "
                               f"{', '.join([*NUMERIC, *CATEGORICAL])} or density_<class>")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
        raise RequirementError("weight", "weight must be a number above 0")
    if not isinstance(value, dict) or not value:
        raise RequirementError("requirement_value", 'give {"min":, "max":}, {"equals":} or {"in": [...]}')
    keys = set(value)
    numeric = requirement_type in NUMERIC or requirement_type.startswith(DENSITY_PREFIX)
    if keys <= {"min", "max"}:
        if not numeric:
            raise RequirementError("requirement_value", f"{requirement_type} is categorical: use equals or in")
        low = _number(value["min"], "min") if "min" in value else -math.inf
        high = _number(value["max"], "max") if "max" in value else math.inf
        if low > high:
            raise RequirementError("requirement_value", "min must not exceed max")
        return Requirement(requirement_type, "range", low, high, weight=float(weight))
    if keys == {"equals"}:
        target = value["equals"]
        if numeric:
            target = _number(target, "equals")
            return Requirement(requirement_type, "range", target, target, weight=float(weight))
        return Requirement(requirement_type, "in", values=(_category(requirement_type, target),), weight=float(weight))
    if keys == {"in"}:
        options = value["in"]
        if not isinstance(options, list) or not options:
            raise RequirementError("requirement_value", "in must be a non-empty list")
        if numeric:
            return Requirement(requirement_type, "in", values=tuple(_number(v, "in") for v in options),
                               weight=float(weight))
        return Requirement(requirement_type, "in", values=tuple(_category(requirement_type, v) for v in options),
                           weight=float(weight))
    raise RequirementError("requirement_value", f"unexpected keys {sorted(keys)}; use min/max, equals or in")


def _category(feature: str, value: Any) -> Any:
    allowed = CATEGORICAL[feature]
    if allowed is not None and value not in allowed:
        raise RequirementError("requirement_value", f"{feature} takes one of {list(allowed)}")
    if allowed is None and not isinstance(value, str):
        raise RequirementError("requirement_value", f"{feature} values are strings")
    return value
