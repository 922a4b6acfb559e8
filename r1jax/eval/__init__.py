"""Evaluation: pass@k, cons@k, benchmark runners and reports."""
