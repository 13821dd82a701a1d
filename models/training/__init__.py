"""Losses (section 3.5) and the training loops: end to end, the recogniser probe, the seat-occupancy model."""
