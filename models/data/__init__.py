"""What the networks read: student crops cut from aligned frames, per-student windows and the
data sets that serve them (SmartClass-Sim, data-set folders, the procedural toy set)."""
