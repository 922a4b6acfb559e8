"""Prompt templates, synthetic tasks, dataset builders and readers."""
