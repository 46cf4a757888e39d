"""The contract every model in the zoo follows, and the per-variant default record.

A model is an ``nn.Cell`` subclass of :class:`VideoClassifier`::

    clip (N, C, T, H, W)
      -> forward_features(x)   backbone features (model-specific shape)
      -> forward_head(x)       (N, num_classes) logits in training; in eval mode whatever the
                               reference returns (X3D: softmax per position, averaged;
                               Efficient-3DCNNs: logits), named by ``eval_output``

plus ``get_classifier()`` / ``reset_classifier(num_classes)``, ``trainable_for(finetune)`` and
``train_mode(finetune)`` (the model owns its freezing, like mmaction2's ``frozen_stages``), and
``flops(shape)`` (multiply-adds of one clip). Each registered variant carries a
:class:`PretrainedCfg` (``net.pretrained_cfg``): the clip geometry and input convention its
weights expect, and ``eval_output``: what the eval-mode output is (``"probabilities"`` or
``"logits"``). The engine turns every view's output into probabilities with
:func:`src.engine.inference.as_probabilities` before showing or combining scores. The engine,
tools and entry points use only this contract, never a model's internal attribute names.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from mindspore import Parameter, nn

from ..errors import UserError
from ..registry import MODELS

FINETUNE_MODES = ("complete", "last_layer")
EVAL_OUTPUTS = ("probabilities", "logits")


@dataclass(frozen=True)
class PretrainedCfg:
    """Default record of one variant (timm's ``pretrained_cfg``): what its weights expect.

    ``value_range`` is the pixel scale fed to ``mean``/``std``: 1.0 (frames / 255, then
    normalised: X3D) or 255.0 (raw 0..255 values minus a mean: the Efficient-3DCNNs weights).
    ``channel_order`` is ``"RGB"`` or ``"BGR"`` (OpenCV-decoded training frames).
    ``target_fps``: frame rate that ``sampling_rate`` refers to (None: source frames as they are).
    ``eval_output``: what the network returns in eval mode, ``"probabilities"`` (a softmax in the
    head, as SlowFast's X3D) or ``"logits"`` (the Efficient-3DCNNs models; their reference test
    applies a softmax per clip).
    """
    num_classes: int
    num_frames: int
    sampling_rate: int
    crop_size: int                      # train crop (the network's pooling is built for it)
    test_short_side: int
    test_crop_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    value_range: float = 1.0
    channel_order: str = "RGB"
    target_fps: Optional[float] = None
    train_jitter: Optional[Tuple[int, int]] = None  # RandomShortSideScale (min, max) of the recipe
    eval_output: str = "logits"         # "probabilities" | "logits" (see EVAL_OUTPUTS)
    dataset: str = ""                   # what the published weights were trained on
    paper: str = ""

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        if self.train_jitter is not None:
            d["train_jitter"] = list(self.train_jitter)
        return d

    def replace(self, **changes: Any) -> "PretrainedCfg":
        return replace(self, **changes)

    def __post_init__(self) -> None:
        if self.eval_output not in EVAL_OUTPUTS:
            raise ValueError(f"eval_output must be one of {EVAL_OUTPUTS}, got {self.eval_output!r}")


class VideoClassifier(nn.Cell):
    """Base class of the zoo's networks (see the module docstring for the contract)."""

    pretrained_cfg: PretrainedCfg

    # -- data flow
    def forward_features(self, x):
        raise NotImplementedError

    def forward_head(self, x):
        raise NotImplementedError

    def construct(self, x):
        return self.forward_head(self.forward_features(x))

    # -- classifier
    def get_classifier(self) -> nn.Cell:
        """The final class projection (the layer fine-tuning re-initialises)."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` classes."""
        raise NotImplementedError

    def classifier_names(self) -> List[str]:
        """Full parameter names of the classifier (skipped when loading weights of another class count)."""
        return [p.name for p in self.get_classifier().get_parameters()]

    @property
    def num_classes(self) -> int:
        return int(self._num_classes)

    @property
    def eval_output(self) -> str:
        """``"probabilities"`` or ``"logits"``: what this network returns in eval mode."""
        return self.pretrained_cfg.eval_output

    # -- freezing (the model owns it)
    def trainable_for(self, finetune: str = "complete") -> List[Parameter]:
        """``complete``: every trainable parameter; ``last_layer``: only the classifier's."""
        check_finetune(finetune)
        if finetune == "complete":
            return list(self.trainable_params())
        return list(self.get_classifier().trainable_params())

    def train_mode(self, finetune: str = "complete") -> None:
        """Training mode; with ``last_layer`` every BatchNorm outside the classifier stays in eval
        mode, so the frozen backbone keeps its statistics (the reference's last_layer does not)."""
        check_finetune(finetune)
        self.set_train(True)
        if finetune == "last_layer":
            head_cells = {id(c) for _, c in self.get_classifier().cells_and_names()}
            for _, cell in self.cells_and_names():
                if isinstance(cell, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) and id(cell) not in head_cells:
                    cell.set_train(False)

    # -- cost
    def flops(self, shape: Optional[Sequence[int]] = None) -> int:
        """Multiply-adds of one clip of ``shape`` (C, T, H, W); default: the variant's train clip."""
        raise NotImplementedError

    def export_problem(self, shape: Sequence[int], fmt: str) -> Optional[str]:
        """Why a clip of ``shape`` (C, T, H, W) cannot be exported to ``fmt`` (None: it can)."""
        return None

    def smaller_clip_problem(self) -> Optional[str]:
        """Why the network cannot train on clips smaller than it was built for (multigrid's
        shapes), None when it can: a cell with ``fixed_window`` pools a window fixed at build time."""
        if any(getattr(c, "fixed_window", False) for _, c in self.cells_and_names()):
            return "pools a window fixed for one clip size (its reference's AvgPool3d)"
        return None

    def prepare_export(self, fmt: str) -> None:
        """Switch to formulations the ``fmt`` (``MINDIR``, ``ONNX``) exporter converts, with the
        same outputs (X3D: the head's pooled positions without ``AvgPool3D`` for ONNX); called by
        the exporter on the network it writes, never on the one it checks against. Default: none."""

    def default_input_shape(self) -> Tuple[int, int, int, int]:
        c = self.pretrained_cfg
        return (3, c.num_frames, c.crop_size, c.crop_size)


# ----------------------------------------------------------------------------- registration
PRETRAINED_CFGS: Dict[str, PretrainedCfg] = {}
RECORD_UPDATES: Dict[str, Callable[[Dict[str, Any]], Dict[str, Any]]] = {}
GEOMETRY_KEYS = ("num_classes", "num_frames", "crop_size")  # model kwargs that change the record


def register_model(cfg: PretrainedCfg, *, signature_of: Optional[Any] = None,
                   record_updates: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None):
    """Register a variant builder under its function name, with its default record::

        @register_model(PretrainedCfg(num_classes=400, num_frames=4, ...), signature_of=create_x3d)
        def x3d_xs(**kwargs) -> X3D: ...

    ``signature_of``: a ``**kwargs`` variant takes the keyword arguments of this builder, so
    unknown config keys are rejected by name before anything is built. ``record_updates(kwargs)``:
    record fields that a builder argument changes (e.g. X3D's ``head_activation="none"`` makes
    the eval output logits).
    """
    def deco(fn):
        import inspect
        if signature_of is not None:
            fn.__signature__ = inspect.signature(signature_of)
        MODELS.register(fn.__name__, _with_norm(fn))
        PRETRAINED_CFGS[fn.__name__] = cfg
        if record_updates is not None:
            RECORD_UPDATES[fn.__name__] = record_updates
        return fn
    return deco


def _with_norm(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The registered builder: ``fn`` plus the ``norm`` keyword every family takes (``model.norm``:
    ``bn`` or ``syncbn``, see ``layers/norm.py``); its BatchNorms are built inside ``use_norm``."""
    import functools
    import inspect
    from .layers.norm import use_norm

    @functools.wraps(fn)
    def build(*args: Any, norm: str = "bn", **kwargs: Any) -> Any:
        with use_norm(norm):
            return fn(*args, **kwargs)

    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    extra = inspect.Parameter("norm", inspect.Parameter.KEYWORD_ONLY, default="bn", annotation=str)
    at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
    build.__signature__ = sig.replace(parameters=params[:at] + [extra] + params[at:])
    return build


def resolve_pretrained_cfg(name: str, model_kwargs: Optional[Dict[str, Any]] = None) -> PretrainedCfg:
    """The record of variant ``name`` with the geometry kwargs of a config's ``model`` section
    applied (``num_classes``, ``num_frames``, ``crop_size``), without building the network."""
    MODELS.get(name)  # unknown names raise the registry's one-line error
    cfg = PRETRAINED_CFGS.get(name)
    if cfg is None:
        raise UserError(f"model '{name}' has no default record; register it with @register_model")
    kwargs = dict(model_kwargs or {})
    changes = {k: kwargs[k] for k in GEOMETRY_KEYS if kwargs.get(k) is not None}
    if name in RECORD_UPDATES:
        changes.update(RECORD_UPDATES[name](kwargs))
    return cfg.replace(**changes) if changes else cfg


def attach_pretrained_cfg(net: "VideoClassifier", name: str, model_kwargs: Dict[str, Any]) -> "VideoClassifier":
    """Set ``net.pretrained_cfg`` and ``net.model_name`` (called by each variant builder)."""
    net.pretrained_cfg = resolve_pretrained_cfg(name, model_kwargs)
    net.model_name = name
    return net


class FlopsSequential(nn.SequentialCell):
    """A sequence of blocks whose ``flops(shape) -> (macs, out_shape)`` chain through it."""

    def flops(self, shape: Tuple[int, int, int, int]) -> Tuple[int, Tuple[int, int, int, int]]:
        total = 0
        for block in self.cell_list:
            macs, shape = block.flops(shape)
            total += macs
        return total, shape


def check_finetune(finetune: str) -> None:
    if finetune not in FINETUNE_MODES:
        raise UserError(f"train.finetune: expected one of {', '.join(FINETUNE_MODES)}, got '{finetune}'")


def count_params(net: nn.Cell) -> int:
    """Trainable parameter count."""
    return int(sum(p.size for p in net.trainable_params()))


__all__ = ["PretrainedCfg", "VideoClassifier", "count_params", "check_finetune", "FINETUNE_MODES", "EVAL_OUTPUTS",
           "register_model", "resolve_pretrained_cfg", "attach_pretrained_cfg", "PRETRAINED_CFGS"]
