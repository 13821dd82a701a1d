"""Evaluation of trained networks: the paper's tables and robustness study, the replay of a live
session, and the throughput benchmark."""
