"""Compatibility of videos with projects: measured features, requirements, scores, assignment.

Pure library (numpy, OpenCV, SciPy): no Flask, Celery or database.
"""
from .assignment import Proposal, assign
from .features import EXTRACTOR_VERSION, content_features
from .requirements import CATEGORICAL, NUMERIC, Requirement, RequirementError, parse_requirement
from .scoring import explain, score_matrix

__all__ = ["CATEGORICAL", "EXTRACTOR_VERSION", "NUMERIC", "Proposal", "Requirement", "RequirementError", "assign",
           "content_features", "explain", "parse_requirement", "score_matrix"]
