"""The torch references of the light Efficient-3DCNNs, for the parity tests: one copy, in the
package (``src/tools/bench/torch_ref/e3d_light.py``), where the benchmark finds it too."""
from src.tools.bench.torch_ref.e3d_light import *  # noqa: F401,F403
