"""Any network a user has, as a :class:`Workload`: the one entry :func:`build_workload`.

A network is named by a spec string:

* a zoo name (``resnet50``, see :data:`codesign.workload.zoo.ZOO`);
* ``torchvision:NAME``: any torchvision classification model, built with ``weights=None``;
* ``path/to/file.py:Name`` or ``package.module:Name``: a ``torch.nn.Module`` class (built with
  ``params`` as keyword arguments), a function returning a module, or a module instance; the
  module's file may set ``INPUT_SHAPE`` (one sample's shape) and ``INPUT_DTYPE`` (``"int64"`` for
  token ids);
* ``path/to/model.onnx``: an ONNX file;
* ``path/to/topology.csv``: a SCALE-Sim topology;
* ``path/to/config.json`` or a published model's name (``llama3_8b``, ...): an LLM's Hugging Face
  config, one inference phase (:mod:`codesign.workload.hf_config`; ``params`` are the phase settings).

Relative paths are resolved against ``base`` (a design file's folder). PyTorch and ONNX networks
are read into one operator graph and lowered by one pass (:mod:`codesign.workload.lowering`), so a
module and its ONNX export give the same layers. Imports are cached in-process by spec, file
modification time and arguments.
"""

from __future__ import annotations

import copy
from pathlib import Path

from codesign.workload import zoo
from codesign.workload.hf_config import is_config_spec
from codesign.workload.graph import Workload
from codesign.vocab import UNSUPPORTED
from codesign.workload.lowering import lower
from codesign.workload.opgraph import WorkloadError

SOURCE_KINDS = ("zoo", "torch", "torchvision", "onnx", "scalesim", "llm")
_CACHE: dict[tuple, Workload] = {}
_CACHE_SIZE = 16

__all__ = ["SOURCE_KINDS", "WorkloadError", "build_workload", "source_kind"]


def source_kind(spec: str) -> str:
    """How ``spec`` names a network: ``"zoo"``, ``"torch"``, ``"torchvision"``, ``"onnx"`` or ``"scalesim"``."""
    if not isinstance(spec, str) or not spec.strip():
        raise WorkloadError(f"network {spec!r}: expected a zoo name, 'torchvision:NAME', 'file.py:Name', "
                            "'package.module:Name', a .onnx file or a SCALE-Sim .csv topology")
    lowered = spec.lower()
    if lowered.startswith("torchvision:"):
        return "torchvision"
    if lowered.endswith(".onnx"):
        return "onnx"
    if lowered.endswith(".csv"):
        return "scalesim"
    if is_config_spec(spec):
        return "llm"
    if ":" in spec:
        return "torch"
    if spec in zoo.ZOO:
        return "zoo"
    raise WorkloadError(f"network {spec!r}: not a zoo network ({', '.join(sorted(zoo.ZOO))}); expected one of those, "
                        "'torchvision:NAME', 'file.py:Name', 'package.module:Name', a .onnx file or a .csv topology")


def _path(text: str, base: str | Path | None) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _stamp(spec: str, kind: str, base) -> tuple:
    """What a cached import depends on besides the arguments: the file and its modification time."""
    text = spec.partition(":")[0] if kind == "torch" else spec
    if kind in ("onnx", "scalesim") or text.endswith((".py", ".json")):
        path = _path(text, base)
        try:
            return str(path.resolve()), path.stat().st_mtime
        except OSError:
            return str(path), None
    return (str(base),) if kind == "torch" else ()


def build_workload(spec: str, *, batch: int = 1, precision_bytes: int = 1, params: dict | None = None,
                   input_shape: tuple[int, ...] | None = None, unsupported: str = "error",
                   base: str | Path | None = None) -> Workload:
    """The workload of the network ``spec`` (see the module docs).

    Args:
        spec: the network.
        batch: samples per inference.
        precision_bytes: bytes per operand element.
        params: a zoo builder's keyword arguments, or the module class's or factory's.
        input_shape: one sample's input shape without the batch, e.g. ``(3, 224, 224)``; by default a
            module file's ``INPUT_SHAPE``, a torchvision model's own, or an ONNX file's.
        unsupported: ``"error"`` (an operator the importer cannot map raises) or ``"skip"`` (it is
            skipped, its output aliasing its first input, and listed in ``graph["skipped"]``).
        base: the folder relative paths are resolved against (the design file's).

    Raises:
        WorkloadError: naming the spec or file, the node, the operator and what was expected.
    """
    kind = source_kind(spec)
    for arg, value in (("batch", batch), ("precision_bytes", precision_bytes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise WorkloadError(f"network {spec!r}: {arg} must be a positive integer, got {value!r}")
    if unsupported not in UNSUPPORTED:
        raise WorkloadError(f"network {spec!r}: unsupported={unsupported!r}, expected one of {UNSUPPORTED}")
    params = dict(params or {})
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    key = (spec, kind, _stamp(spec, kind, base), batch, precision_bytes, _freeze(params), shape, unsupported)
    if key not in _CACHE:
        workload = _build(spec, kind, batch, precision_bytes, params, shape, unsupported, base)
        workload.graph["source"] = kind
        workload.graph.setdefault("skipped", [])
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = workload
    return copy.deepcopy(_CACHE[key])


def _build(spec, kind, batch, precision_bytes, params, shape, unsupported, base) -> Workload:
    where = f"network {spec!r}"
    if kind == "zoo":
        if shape is not None:
            raise WorkloadError(f"{where}: a zoo network has a fixed input; input_shape does not apply (use params)")
        try:
            return zoo.build_workload(spec, batch=batch, precision_bytes=precision_bytes, **params)
        except ValueError as exc:
            raise WorkloadError(f"{where}: {exc}") from None
    if kind == "llm":
        from codesign.workload.hf_config import read_config
        from codesign.workload.llm_phases import llm_workload

        if shape is not None:
            raise WorkloadError(f"{where}: an LLM's shapes come from its config; input_shape does not apply (use params)")
        # batch and precision may come with the phase settings too (`codesign workload --param batch=8`)
        batch, precision_bytes = params.pop("batch", batch), params.pop("precision_bytes", precision_bytes)
        return llm_workload(read_config(spec, base), batch=batch, precision_bytes=precision_bytes, **params)
    if kind == "scalesim":
        from codesign.workload.scalesim import read_topology

        if params or shape is not None or batch != 1:
            raise WorkloadError(f"{where}: a SCALE-Sim topology fixes its layers; batch, params and input_shape "
                                "do not apply")
        return read_topology(_path(spec, base), precision_bytes=precision_bytes)
    if kind == "onnx":
        from codesign.workload.onnx_import import read_onnx

        if params:
            raise WorkloadError(f"{where}: an ONNX file takes no params, got {sorted(params)}")
        graph, scale = read_onnx(_path(spec, base), batch=batch, input_shape=shape)
        return lower(graph, precision_bytes=precision_bytes, unsupported=unsupported, scale_batch=scale)
    return _build_torch(spec, kind, batch, precision_bytes, params, shape, unsupported, base)


def _build_torch(spec, kind, batch, precision_bytes, params, shape, unsupported, base) -> Workload:
    from codesign.workload.torch_import import torchvision_model, trace_module, user_model

    where = f"network {spec!r}"
    if kind == "torchvision":
        name = spec.partition(":")[2]
        module, default = torchvision_model(name, params, where)
        dtype = None
    else:
        module, default, dtype = user_model(spec, params, where, base)
        name = spec.rpartition(":")[2]
    shape = shape if shape is not None else default
    if shape is None:
        raise WorkloadError(f"{where}: input_shape is needed (one sample's shape without the batch, e.g. "
                            "[3, 224, 224]); give it, or define INPUT_SHAPE in the module's file")
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise WorkloadError(f"{where}: INPUT_SHAPE must be a sequence of positive integers, got {shape!r}") from None
    graph = trace_module(module, name, spec, batch, shape, dtype)
    return lower(graph, precision_bytes=precision_bytes, unsupported=unsupported)
