"""The torch references of SqueezeNet / ResNet / ResNeXt (Efficient-3DCNNs), for the parity tests:
one copy, in the package (``src/tools/bench/torch_ref/e3d_heavy.py``), where the benchmark finds it too."""
from src.tools.bench.torch_ref.e3d_heavy import *  # noqa: F401,F403
