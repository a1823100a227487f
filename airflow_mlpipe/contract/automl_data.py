"""The AutoML configuration arguments that carry data: the SDK turns each into a step input under the
argument's name, and the AutoML runtime reads the inputs back by those names. Both sides agree on this list.
"""

from __future__ import annotations

#: config arguments that carry data (added to the step's inputs under the argument's name)
DATA_ARGUMENTS: tuple[str, ...] = ("training_data", "validation_data", "test_data")
