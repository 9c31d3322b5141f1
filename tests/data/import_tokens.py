"""A network whose input is token ids: INPUT_DTYPE says so."""

from import_nets import TokenClassifier  # noqa: F401  (this folder is on the path while loading)

INPUT_SHAPE = (12,)
INPUT_DTYPE = "int64"
