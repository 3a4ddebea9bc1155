"""Datasets: the CoT corpus (Parquet), and later the SFT/RL data pipelines."""
