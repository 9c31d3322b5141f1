"""PyTorch networks as workloads: a user's module (``file.py:Name``, ``package.module:Name``) or ``torchvision:NAME``.

The module is built on the ``meta`` device (``with torch.device("meta")``), so no weight is
allocated; a builder that computes with tensors while it builds (torchvision's RegNets round
their widths with ``torch``) is built again with only its parameters and buffers moved to
``meta`` as they are registered. It then runs once in eval mode on a meta input of shape
``(batch, *input_shape)``, traced by :mod:`codesign.workload.torch_trace`, and the op graph is
lowered by :mod:`codesign.workload.lowering`.

``torch`` and ``torchvision`` are imported only here, and only when a PyTorch network is named.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from pathlib import Path
from typing import Any

from codesign.loader import load_object
from codesign.workload.opgraph import OpGraph, WorkloadError

INSTALL_HINT = "pip install codesign[import]"
_SHIM: list = []  # keeps the torchvision op library alive


def require(package: str) -> Any:
    """Import ``package`` (torch, torchvision, onnx) or raise a WorkloadError saying how to install it."""
    try:
        if package == "torch":
            import torch
            return torch
        if package == "torchvision":
            return _torchvision()
        if package == "onnx":
            import onnx
            import onnx.numpy_helper  # noqa: F401
            import onnx.shape_inference  # noqa: F401
            return onnx
    except ImportError as exc:
        raise WorkloadError(f"importing a network needs the {package!r} package ({exc}): {INSTALL_HINT}") from None
    raise ValueError(f"unknown optional package {package!r}")


def _torchvision():
    """torchvision, even where its compiled ops do not load (a CPU-only torch with a CUDA torchvision wheel).

    torchvision 0.28 registers fake kernels for ``torchvision::nms`` and ``qnms`` even when its
    ``_C`` library failed to load, which fails the import; the two schemas are declared first so that
    the import (and every model, none of which uses them) works.
    """
    import torch

    if not _SHIM and not hasattr(torch.ops.torchvision, "nms"):
        try:
            import torchvision  # noqa: F401
            return torchvision
        except RuntimeError:
            import sys

            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                del sys.modules[name]
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _SHIM.append(lib)
    import torchvision

    return torchvision


@contextlib.contextmanager
def _weights_on_meta():
    """Move each parameter and buffer to ``meta`` as a module registers it (init runs on nothing)."""
    import torch

    module_cls = torch.nn.Module
    register_parameter, register_buffer = module_cls.register_parameter, module_cls.register_buffer

    def parameter(self, name, param):
        if param is not None:
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def buffer(self, name, tensor, persistent=True):
        register_buffer(self, name, None if tensor is None else tensor.to("meta"), persistent)

    module_cls.register_parameter, module_cls.register_buffer = parameter, buffer
    try:
        yield
    finally:
        module_cls.register_parameter, module_cls.register_buffer = register_parameter, register_buffer


def build_on_meta(builder, params: dict, where: str):
    """``builder(**params)`` with its weights on the meta device, as an ``nn.Module`` in eval mode."""
    torch = require("torch")
    try:
        with torch.device("meta"):
            module = builder(**params)
    except Exception:
        try:
            with _weights_on_meta():
                module = builder(**params)
        except Exception as exc:
            raise WorkloadError(f"{where}: building the network failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(module, torch.nn.Module):
        raise WorkloadError(f"{where}: expected a torch.nn.Module class or a function returning one, "
                            f"got {type(module).__name__}")
    return module.eval()


def torchvision_model(name: str, params: dict, where: str):
    """The torchvision classifier ``name`` (weights=None) on meta, and its default input shape."""
    tv = require("torchvision")
    models = tv.models.list_models(module=tv.models)
    if name not in models:
        raise WorkloadError(f"{where}: torchvision has no classification model {name!r}; expected one of "
                            f"torchvision.models.list_models(module=torchvision.models), e.g. {', '.join(models[:6])}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet's and inception's notes on their init
        module = build_on_meta(lambda **kw: tv.models.get_model(name, weights=None, **kw), params, where)
    size = getattr(module, "image_size", None)
    if not isinstance(size, int):
        crop = list(tv.models.get_model_weights(name).DEFAULT.transforms().crop_size)
        size = crop if len(crop) == 2 else crop * 2
    else:
        size = [size, size]
    return module, (3, *size)


def user_model(spec: str, params: dict, where: str, base: str | Path | None):
    """The module named by ``file.py:Name`` or ``package.module:Name``, and its file's ``INPUT_SHAPE`` and
    ``INPUT_DTYPE`` (a torch dtype name such as ``"int64"`` for token ids; float32 when absent), or None."""
    obj = load_object(spec, where=where, search_dir=base, error=WorkloadError)
    shape, dtype = (_constant(spec, name, base) for name in ("INPUT_SHAPE", "INPUT_DTYPE"))
    torch = require("torch")
    if dtype is not None and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
        raise WorkloadError(f"{where}: INPUT_DTYPE {dtype!r} is not a torch dtype name (float32, int64, ...)")
    dtype = getattr(torch, dtype) if dtype is not None else None
    if isinstance(obj, torch.nn.Module):
        if params:
            raise WorkloadError(f"{where}: {spec!r} is a module instance; params {sorted(params)} cannot be passed to it")
        return obj.eval(), shape, dtype
    if not callable(obj):
        raise WorkloadError(f"{where}: expected a torch.nn.Module class or a function returning one, got {type(obj).__name__}")
    _check_params(obj, params, where)
    return build_on_meta(obj, params, where), shape, dtype


def _constant(spec: str, name: str, base):
    """The module-level constant ``name`` beside the object ``spec`` names, or None."""
    try:
        return load_object(f"{spec.partition(':')[0]}:{name}", where=spec, search_dir=base, error=WorkloadError)
    except WorkloadError:
        return None


def _check_params(builder, params: dict, where: str) -> None:
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return
    accepted = signature.parameters
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise WorkloadError(f"{where}: {getattr(builder, '__name__', builder)} takes no parameter {unknown[0]!r}; "
                            f"it accepts: {', '.join(accepted) or 'none'}")


def trace_module(module, name: str, source: str, batch: int, input_shape: tuple[int, ...], dtype=None) -> OpGraph:
    """The op graph of ``module`` run on a meta input ``(batch, *input_shape)`` of ``dtype`` (float32 by default)."""
    torch = require("torch")
    from codesign.workload.torch_trace import trace

    graph = OpGraph(name, source, batch)
    try:
        with torch.device("meta"):
            example = torch.zeros((batch, *input_shape), dtype=dtype or torch.float32)
            trace(module, example, graph)
    except WorkloadError:
        raise
    except Exception as exc:
        raise WorkloadError(f"{source}: running the network on an input of shape {(batch, *input_shape)} failed: "
                            f"{type(exc).__name__}: {exc}") from None
    return graph
