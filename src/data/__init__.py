"""Video data: registered data sets and transforms, decoding, sampling and the MindSpore loader.

Importing this package registers every data set (``DATASETS``) and transform (``TRANSFORMS``).
"""
from .datasets import (HMDB51, UCF101, VIDEO_EXTENSIONS, Kinetics400, Kinetics600, VideoDataset,
                       VideoFolder, VideoList)
from .decode import VideoReader, check_video, probe_video, read_frames
from .errors import DataError, VideoDecodeError
from .labels import load_label_map, save_label_map
from .mindrecord import MindRecordVideo, pack_mindrecord
from .pipeline import BadFileLog, ClipSource, Loader, build_dataset, create_loader
from .rawframes import (FrameFolders, Jester, RawFrameList, SomethingSomethingV1, frame_folders_of,
                        windows_to_videos, with_video_protocol)
from .sampling import consecutive_clip_indices, eval_clip_indices, frame_step, train_clip_indices
from .transforms import Compose, build_transforms, eval_operations, infer_operations

__all__ = [
    "HMDB51", "UCF101", "VIDEO_EXTENSIONS", "Kinetics400", "Kinetics600", "VideoDataset",
    "VideoFolder", "VideoList", "MindRecordVideo", "pack_mindrecord", "VideoReader", "check_video",
    "probe_video", "read_frames", "DataError", "VideoDecodeError", "load_label_map",
    "save_label_map", "BadFileLog", "ClipSource", "Loader", "build_dataset", "create_loader",
    "eval_clip_indices", "frame_step", "train_clip_indices", "Compose", "build_transforms",
    "eval_operations", "infer_operations", "FrameFolders", "Jester", "RawFrameList",
    "SomethingSomethingV1", "frame_folders_of", "windows_to_videos", "consecutive_clip_indices",
    "with_video_protocol",
]
