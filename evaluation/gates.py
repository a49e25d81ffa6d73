"""Regression gates: declarative pass/fail rules over a validation run's aggregated metrics.

A gate is a dict::

    {"metric": "recall", "class": "cyclist", "slice": {"daylight": "night"}, "min": 0.85}
    {"metric": "ap50", "max_drop": 0.01, "vs": "baseline", "significant": true}
    {"metric": "latency_p90", "max": 0.5}

- ``metric``: one of ``HEADLINE`` (``ap``, ``ap50``, ``precision``, ``recall``, ``f1``, ``mota``,
  ``idf1``, ``hota``, ``latency_median``, ``latency_p90``; latencies are lower-is-better).
- ``class`` (optional): a class name; ``slice`` (optional): one ``{key: value}`` of the run's
  slices (video attributes or ``object_height``).
- at least one bound: ``min`` / ``max`` (on the value), ``max_drop`` (the largest allowed worsening
  against the baseline run; needs ``"vs": "baseline"`` and a baseline).
- ``significant`` (default false): a bound fails only when the bootstrap interval says so: for
  ``min`` the whole interval lies below it, for ``max`` above it, for ``max_drop`` the drop is
  beyond it *and* the paired comparison's verdict is ``regressed``.

``validate_gates`` returns field errors keyed ``gates.<index>.<field>`` (empty when every gate
is good), for a 422 before a run is queued. ``evaluate_gates`` takes ``aggregate``'s result and
``compare_runs``' result (or None) and returns ``{"gate_status": "passed" | "failed", "gates":
[{"index", "gate", "status", "value", "interval", "reason"}]}``; a gate whose number is undefined
or rests on too little data fails, saying why.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .runs import HEADLINE

BOUNDS = ("min", "max", "max_drop")
FIELDS = {"metric", "class", "slice", "vs", "significant", *BOUNDS}


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def validate_gates(
    gates: Any,
    class_names: Sequence[str],
    slice_keys: Mapping[str, Sequence[str]] | Iterable[str],
    has_baseline: bool,
) -> dict[str, list[str]]:
    """Field errors by gate index; ``slice_keys`` is the known keys, or keys to their known
    values (then a value must be one of them)."""
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not isinstance(gates, list):
        return {"gates": ["must be a list of gates"]}
    known_values = dict(slice_keys) if isinstance(slice_keys, Mapping) else {k: None for k in slice_keys}
    for i, gate in enumerate(gates):
        at = f"gates.{i}"
        if not isinstance(gate, Mapping):
            err(at, "must be an object")
            continue
        for extra in sorted(set(gate) - FIELDS):
            err(f"{at}.{extra}", "unknown field")
        metric = gate.get("metric")
        if metric is None:
            err(f"{at}.metric", "missing")
        elif metric not in HEADLINE:
            err(f"{at}.metric", f"unknown metric {metric!r}; one of {', '.join(HEADLINE)}")
        if "class" in gate and gate["class"] not in class_names:
            err(f"{at}.class", f"unknown class {gate['class']!r}; one of {', '.join(class_names)}")
        if "slice" in gate:
            sl = gate["slice"]
            if not isinstance(sl, Mapping) or len(sl) != 1:
                err(f"{at}.slice", "must be one {key: value}")
            else:
                (key, value), = sl.items()
                if key not in known_values:
                    err(f"{at}.slice", f"unknown slice key {key!r}; one of {', '.join(known_values) or 'none'}")
                elif known_values[key] is not None and str(value) not in known_values[key]:
                    err(f"{at}.slice", f"unknown value {value!r} of slice {key!r}")
        present = [b for b in BOUNDS if b in gate]
        if not present:
            err(at, "needs at least one of min, max, max_drop")
        for b in present:
            if not _is_number(gate[b]):
                err(f"{at}.{b}", "must be a number")
            elif b == "max_drop" and gate[b] < 0:
                err(f"{at}.{b}", "must not be negative")
        if "significant" in gate and not isinstance(gate["significant"], bool):
            err(f"{at}.significant", "must be true or false")
        if "vs" in gate and gate["vs"] != "baseline":
            err(f"{at}.vs", "the only comparison is 'baseline'")
        if "max_drop" in gate and gate.get("vs") != "baseline":
            err(f"{at}.vs", "max_drop needs vs: baseline")
        if gate.get("vs") == "baseline" and not has_baseline:
            err(f"{at}.vs", "vs: baseline but the run has no baseline")
    return errors


def _part(root: Mapping[str, Any], gate: Mapping[str, Any], comparison: bool) -> tuple[Any, str | None]:
    """The scope (and class) a gate speaks of, or why there is none."""
    scope: Any = root if comparison else root.get("overall")
    if "slice" in gate:
        (key, value), = gate["slice"].items()
        scope = root.get("slices", {}).get(key, {}).get(str(value))
        if scope is None:
            return None, f"the run has no slice {key}={value}"
    if scope.get("insufficient"):
        return None, f"insufficient data: {scope['reason']}"
    if "class" in gate:
        scope = scope.get("per_class", {}).get(gate["class"])
        if scope is None:
            return None, f"the run has no class {gate['class']}"
        if scope.get("insufficient"):
            return None, f"insufficient data: {scope['reason']}"
    return scope, None


def evaluate_gates(gates: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any],
                   comparison: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every gate's value, interval, status and reason; ``gate_status`` failed if any fails."""
    out = []
    for i, gate in enumerate(gates):
        metric = gate["metric"]
        higher = HEADLINE[metric]
        significant = bool(gate.get("significant", False))
        row: dict[str, Any] = {"index": i, "gate": dict(gate), "status": "passed", "value": None, "interval": None,
                               "reason": None}
        reasons: list[str] = []
        part, why = _part(metrics, gate, comparison=False)
        if why:
            reasons.append(why)
        else:
            value, iv = part["headline"][metric], part["intervals"].get(metric)
            row["value"], row["interval"] = value, iv
            if value is None:
                reasons.append(f"{metric} is undefined here")
            if value is not None and "min" in gate:
                below = (iv is not None and iv["high"] < gate["min"]) if significant else value < gate["min"]
                if below:
                    reasons.append(f"{metric} {value:.4g} below min {gate['min']:g}"
                                   + (f" (interval up to {iv['high']:.4g})" if significant else ""))
            if value is not None and "max" in gate:
                above = (iv is not None and iv["low"] > gate["max"]) if significant else value > gate["max"]
                if above:
                    reasons.append(f"{metric} {value:.4g} above max {gate['max']:g}"
                                   + (f" (interval from {iv['low']:.4g})" if significant else ""))
        if "max_drop" in gate:
            if comparison is None:
                reasons.append("no baseline comparison")
            else:
                cpart, cwhy = _part(comparison, gate, comparison=True)
                if cwhy:
                    reasons.append(cwhy)
                else:
                    c = (cpart.get("metrics") or cpart)[metric]
                    row["baseline"], row["difference"], row["difference_interval"] = (
                        c["baseline"], c["difference"], c["interval"])
                    row["verdict"] = c["verdict"]
                    if c["difference"] is None:
                        reasons.append(f"{metric} difference is undefined")
                    else:
                        drop = -c["difference"] if higher else c["difference"]
                        if drop > gate["max_drop"] and (not significant or c["verdict"] == "regressed"):
                            reasons.append(f"{metric} dropped by {drop:.4g}, more than {gate['max_drop']:g}"
                                           + (" (significant)" if significant else ""))
        if reasons:
            row["status"], row["reason"] = "failed", "; ".join(reasons)
        out.append(row)
    return {"gate_status": "failed" if any(r["status"] == "failed" for r in out) else "passed", "gates": out}
