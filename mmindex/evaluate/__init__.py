"""Evaluation: metrics, run/qrels io, reports, and the shot-detection benchmark."""
