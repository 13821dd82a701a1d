"""The domain's fixed vocabulary: the 10 behaviours of the paper and the 17 upper-body keypoints.

Every part of the suite (simulator, models, services, dashboard) takes these lists from
here, so label indices and keypoint order never drift apart.
"""

from __future__ import annotations

# Section 4.1, Table 2: the 10 fine-grained learning behaviours, in label-index order.
BEHAVIOURS: tuple[str, ...] = (
    "hand_raising",
    "page_turning",
    "head_down_writing",
    "chin_resting",
    "attentive_listening",
    "phone_usage",
    "note_taking",
    "drinking_water",
    "side_conversation",
    "upright_sitting",
)
BEHAVIOUR_INDEX: dict[str, int] = {name: i for i, name in enumerate(BEHAVIOURS)}
NUM_BEHAVIOURS = len(BEHAVIOURS)

# The 17 upper-body keypoints (section 3.4), in index order. docs/keypoints.md has the figure.
KEYPOINTS: tuple[str, ...] = (
    "head_top",
    "nose",
    "chin",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "neck",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
    "chest",
)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINTS)}
NUM_KEYPOINTS = len(KEYPOINTS)

# Keypoints on the head: thermal imaging refines these (section 3.4).
HEAD_KEYPOINTS: tuple[int, ...] = tuple(KEYPOINT_INDEX[k] for k in KEYPOINTS[:7])

# The arms below the shoulders: the points the behaviours turn on (optional arm refinement).
ARM_KEYPOINTS: tuple[int, ...] = tuple(
    KEYPOINT_INDEX[k]
    for k in ("left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand")
)

# Skeleton edges: the fixed physical graph that the dynamic graph of eq. 7 starts from.
SKELETON_EDGES: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b])
    for a, b in (
        ("head_top", "nose"),
        ("nose", "chin"),
        ("nose", "left_eye"),
        ("nose", "right_eye"),
        ("left_eye", "left_ear"),
        ("right_eye", "right_ear"),
        ("chin", "neck"),
        ("neck", "left_shoulder"),
        ("neck", "right_shoulder"),
        ("neck", "chest"),
        ("left_shoulder", "left_elbow"),
        ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"),
        ("right_elbow", "right_wrist"),
        ("left_wrist", "left_hand"),
        ("right_wrist", "right_hand"),
        ("left_shoulder", "chest"),
        ("right_shoulder", "chest"),
    )
)

# Left/right pairs, for horizontal-flip augmentation.
FLIP_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_INDEX[f"left_{p}"], KEYPOINT_INDEX[f"right_{p}"])
    for p in ("eye", "ear", "shoulder", "elbow", "wrist", "hand")
)

# Recognition window (docs/contracts.md): 16 frames on an 8 fps grid (2 s), one event per
# student every 8 frames (1 s). Checkpoints record their own values; these are the defaults.
WINDOW_FRAMES = 16
WINDOW_FPS = 8.0
HOP_FRAMES = 8
# a frame's slot on that grid is capture_ts_us // SLOT_US (services/recognition/windows.py)
SLOT_US = round(1e6 / WINDOW_FPS)
