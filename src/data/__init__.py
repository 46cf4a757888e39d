"""Video data: registered data sets and transforms, clip readers, sampling and the MindSpore loader.

Importing this package registers every data set (``DATASETS``) and transform (``TRANSFORMS``).
A data set is an index (samples, labels, class names) plus a reader kind (``readers.py``: video
files, frame folders, MindRecord records), whose ``ClipReader`` serves ``load_clip``.
"""
from .auto_augment import AugMix, RandAugment
from .datasets import (HMDB51, UCF101, VIDEO_EXTENSIONS, Kinetics400, Kinetics600, VideoDataset,
                       VideoFolder, VideoList)
from .erasing import RandomErasing
from .errors import DataError, DataStopError, VideoDecodeError
from .labels import load_label_map, save_label_map
from .mixup import MixUpCutMix
from .mindrecord import MindRecordVideo, pack_mindrecord
from .pipeline import BadFileLog, ClipSource, Loader, build_dataset, create_loader, stop_guard
from .rawframes import Jester, RawFrameList, SomethingSomethingV1, windows_to_videos, with_video_protocol
from .readers import (ClipReader, FrameFolderReader, FrameFolders, MindRecordFile, MindRecordReader,
                      VideoFileReader, VideoFiles, VideoReader, check_video, probe_video, read_frames)
from .samplers import RepeatAugSampler
from .sampling import consecutive_clip_indices, eval_clip_indices, frame_step, plan_clip, train_clip_indices
from .transforms import Compose, build_transforms, eval_operations, infer_operations

__all__ = [
    "HMDB51", "UCF101", "VIDEO_EXTENSIONS", "Kinetics400", "Kinetics600", "VideoDataset",
    "VideoFolder", "VideoList", "MindRecordVideo", "pack_mindrecord", "VideoReader", "check_video",
    "probe_video", "read_frames", "DataError", "DataStopError", "VideoDecodeError", "load_label_map",
    "save_label_map", "BadFileLog", "ClipSource", "Loader", "build_dataset", "create_loader", "stop_guard",
    "eval_clip_indices", "frame_step", "train_clip_indices", "Compose", "build_transforms",
    "eval_operations", "infer_operations", "FrameFolders", "Jester", "RawFrameList",
    "SomethingSomethingV1", "windows_to_videos", "consecutive_clip_indices", "with_video_protocol",
    "ClipReader", "VideoFileReader", "FrameFolderReader", "MindRecordReader", "VideoFiles", "MindRecordFile",
    "plan_clip", "RandAugment", "AugMix", "RandomErasing", "MixUpCutMix", "RepeatAugSampler",
]
