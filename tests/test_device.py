"""The one place torch's device is chosen (ser_utils.device): the rule, tested on a CPU."""

import pytest

from ser_utils.device import DeviceError, choose_device, torch_device
from ser_utils.errors import UserError


@pytest.mark.parametrize("requested,cuda,expected", [
    (None, True, "cuda"), (None, False, "cpu"), ("auto", True, "cuda"), ("AUTO", False, "cpu"),
    ("cpu", True, "cpu"), ("cuda", True, "cuda"), ("cuda:1", True, "cuda:1"),
])
def test_choice(requested, cuda, expected):
    assert choose_device(requested, cuda_available=cuda, cuda_count=2) == expected


@pytest.mark.parametrize("requested,cuda,message", [
    ("cuda", False, "no CUDA GPU"), ("cuda:2", True, "2 GPU"), ("cuda:x", True, "cuda:N"),
    ("tpu", True, "not a device"),
])
def test_impossible_requests_are_user_errors(requested, cuda, message):
    with pytest.raises(DeviceError, match=message) as err:
        choose_device(requested, cuda_available=cuda, cuda_count=2)
    assert isinstance(err.value, UserError)


def test_torch_device_follows_this_machine_and_the_environment(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("SER_DEVICE", raising=False)
    assert torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("SER_DEVICE", "cpu")
    assert torch_device() == torch.device("cpu")
