"""Video analysis for CMT: visual beats, visual tempo and motion speed (SPEC section 6).

    meta = analyse_video("clip.mp4")             # the metadata.json dict
    rows = metadata_to_rows(meta)                # inference npz rows (R, 6)
    npz = video_to_npz("clip.mp4", "inference")  # both steps, files written

Modules: decode (frames), flow (Farneback, motion speed, directogram), features (the
parallel flow pass), timeline (VFR -> uniform grid), envelope, beats, tempo,
metadata (json + npz rows), cache, analysis, visualize, pipeline.
"""
from vidscore.video.analysis import analyse, analyse_video
from vidscore.video.metadata import (ROW_BARBEAT, ROW_DENSITY, ROW_I_BEAT, ROW_N_BEAT, ROW_P_BEAT,  # noqa: F401
                                 ROW_STRENGTH, load_metadata, metadata_path, metadata_to_rows, npz_path,
                                 save_npz)
from vidscore.video.pipeline import video_to_npz

__all__ = ["analyse", "analyse_video", "metadata_to_rows", "load_metadata", "video_to_npz",
           "metadata_path", "npz_path", "save_npz",
           "ROW_BARBEAT", "ROW_DENSITY", "ROW_STRENGTH", "ROW_I_BEAT", "ROW_N_BEAT", "ROW_P_BEAT"]
