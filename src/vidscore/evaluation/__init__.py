"""Evaluation: objective metrics (metrics), the report of evaluate.py (report) and its plots."""
