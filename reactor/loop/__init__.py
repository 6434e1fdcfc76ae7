"""The reactor: the loop interface and its native implementation.

Exports SelectorLoop, its handles and the minimal Future/Task. Tests: tests/loop/.
"""

from .futures import CancelledError, Future, InvalidStateError, Task
from .handles import Handle, TimerHandle
from .selector import SelectorLoop

__all__ = [
    "CancelledError",
    "Future",
    "Handle",
    "InvalidStateError",
    "SelectorLoop",
    "Task",
    "TimerHandle",
]
