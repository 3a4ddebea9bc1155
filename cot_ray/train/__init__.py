"""Stages I-III on Ray Train: one training loop; the stages differ only in their data."""
