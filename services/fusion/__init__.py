"""Fusion service: enhanced frame sets -> model server (DCA-Net + keypoints) -> per-student observations."""
