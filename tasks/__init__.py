"""The built-in tasks, registered on import (see tasks/base.py; a plugin registers its own the same way)."""
from tasks import conductivity, knowledge, mt, pos  # noqa: F401
from tasks.base import TASKS, Task, active, register  # noqa: F401
