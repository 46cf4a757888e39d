"""The torch MoViNet reference (facts sheet re-implementation), for the parity tests: one copy, in the
package (``src/tools/bench/torch_ref/movinet.py``), where the stream benchmark finds it too."""
from src.tools.bench.torch_ref.movinet import *  # noqa: F401,F403
