"""Export the example network designs/models/tiny_vit.py:TinyViT to designs/models/tiny_vit.onnx.

    python scripts/make_example_onnx.py [OUT.onnx]

The export is torch's own (``torch.onnx.export(..., dynamo=True)``, which needs onnxscript) at
batch 1 with the module's INPUT_SHAPE; ``build_workload("models/tiny_vit.onnx")`` then gives the
same MAC layers as ``build_workload("models/tiny_vit.py:TinyViT")``. tests/test_import_onnx.py
exports it again and compares.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "designs" / "models" / "tiny_vit.py"
OUT = ROOT / "designs" / "models" / "tiny_vit.onnx"


def export_onnx(module, input_shape, path: Path) -> Path:
    """Write ``module`` (in eval mode, random weights) as ONNX at batch 1."""
    import torch

    module = module.eval()
    example = torch.randn(1, *input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False)
    program.save(str(path))
    return path


def main(out: Path = OUT) -> Path:
    import runpy

    import torch

    torch.manual_seed(0)
    space = runpy.run_path(str(MODULE))
    return export_onnx(space["TinyViT"](), space["INPUT_SHAPE"], out)


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
