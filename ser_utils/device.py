"""Where torch code runs: the one place the device is chosen (CUDA when available, else the CPU).

``SER_DEVICE`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) overrides the choice, e.g. to keep a GPU
machine on the CPU for a run that must match the CPU-made reference files bit for bit. Keras and
TensorFlow pick their own device (a GPU when TensorFlow was installed with CUDA support); see the
README, "Run it", for installing either framework's GPU build.
"""

from __future__ import annotations

import os

from .errors import UserError

#: Environment variable that overrides the automatic choice.
DEVICE_ENV = "SER_DEVICE"


class DeviceError(UserError, ValueError):
    """A device was asked for that this machine does not have, or that is not a torch device name."""


def choose_device(requested: str | None, *, cuda_available: bool, cuda_count: int = 1) -> str:
    """The torch device name for ``requested`` (``None``/``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``).

    ``auto`` is ``"cuda"`` when ``cuda_available``, else ``"cpu"``. Asking for a CUDA device this
    machine lacks raises :class:`DeviceError` (a silent fallback would make a GPU run quietly
    slow). Pure: the facts about the machine are arguments, so the rule is tested on any CPU.
    """
    name = (requested or "auto").strip().lower()
    if name == "auto":
        return "cuda" if cuda_available else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise DeviceError(f"{DEVICE_ENV}={requested!r}: write cuda:N with a GPU number, e.g. cuda:0")
        if not cuda_available:
            raise DeviceError(f"{DEVICE_ENV}={requested!r} but torch sees no CUDA GPU here; install torch's CUDA "
                              f"build (README, 'Run it') or set {DEVICE_ENV}=cpu")
        if index and int(index) >= cuda_count:
            raise DeviceError(f"{DEVICE_ENV}={requested!r} but this machine has {cuda_count} GPU(s): cuda:0 to "
                              f"cuda:{cuda_count - 1}")
        return name
    raise DeviceError(f"{DEVICE_ENV}={requested!r} is not a device: use auto, cpu, cuda or cuda:N")


def torch_device(requested: str | None = None):
    """The ``torch.device`` to run on: ``requested``, else ``SER_DEVICE``, else CUDA when available."""
    import torch

    cuda = torch.cuda.is_available()
    name = choose_device(requested if requested is not None else os.environ.get(DEVICE_ENV),
                         cuda_available=cuda, cuda_count=torch.cuda.device_count() if cuda else 0)
    return torch.device(name)
