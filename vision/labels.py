"""Mapping from a model's own class names to the project's road-user classes."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

VRU_CLASSES: tuple[str, ...] = ("pedestrian", "cyclist", "motorcyclist", "wheelchair", "scooter")

DEFAULT_LABEL_MAP: dict[str, str] = {
    "person": "pedestrian",
    "pedestrian": "pedestrian",
    "bicycle": "cyclist",
    "motorcycle": "motorcyclist",
    "motorbike": "motorcyclist",
    "wheelchair": "wheelchair",
    "scooter": "scooter",
}


class LabelMap:
    """Turns model class ids into project class ids with one array lookup per batch.

    Model classes with no project counterpart map to -1 and are dropped downstream.
    """

    def __init__(
        self,
        model_classes: Mapping[int, str],
        mapping: Mapping[str, str] | None = None,
        project_classes: Sequence[str] = VRU_CLASSES,
    ) -> None:
        self.project_classes = tuple(project_classes)
        mapping = DEFAULT_LABEL_MAP if mapping is None else mapping
        size = max(model_classes, default=-1) + 1
        self.table = np.full(max(size, 1), -1, dtype=np.int64)
        index = {name: i for i, name in enumerate(self.project_classes)}
        for model_id, name in model_classes.items():
            target = mapping.get(name)
            if target is not None and target in index:
                self.table[model_id] = index[target]

    def __call__(self, class_id: np.ndarray) -> np.ndarray:
        class_id = np.asarray(class_id, dtype=np.int64)
        out = np.full(class_id.shape, -1, dtype=np.int64)
        inside = (class_id >= 0) & (class_id < len(self.table))
        out[inside] = self.table[class_id[inside]]
        return out

    def name(self, project_id: int) -> str:
        return self.project_classes[project_id]
