"""Generation: one job from video to songs (job), the control rules (generate), calibration, retrieval."""
