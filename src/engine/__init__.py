"""Training and evaluation engine (importing it registers losses, optimizers and LR schedules)."""
from . import losses, lr_schedule, optim  # noqa: F401  (registration)
