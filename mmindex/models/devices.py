"""Where an image model runs (the CLI's `--device`): the CPU, or a CUDA GPU.

"cpu", "cuda", "cuda:N", or "auto": a GPU when one answers, else the CPU. ONNX Runtime runs the model on a
GPU through its CUDA execution provider, which only its GPU build has (`onnxruntime-gpu`, installed in place of
`onnxruntime`: both install the same module, so `pip uninstall onnxruntime` first); the PyTorch backend
(`--runtime torch`) uses PyTorch's CUDA build. Deciding "auto" costs no
PyTorch import: it asks ONNX Runtime which providers it has, and a session whose CUDA provider cannot start
falls back to the CPU (ONNX Runtime does so itself), which "auto" accepts and "cuda" refuses.
"""

from __future__ import annotations

import re

from mmindex.errors import ModelError

DEVICE_HELP = "auto (a CUDA GPU when one answers, else the CPU), cpu, cuda or cuda:N."
_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
CUDA_PROVIDER = "CUDAExecutionProvider"
GPU_INSTALL = "pip uninstall onnxruntime && pip install onnxruntime-gpu"


def check(device: str) -> str:
    """`device` if it is "auto", "cpu", "cuda" or "cuda:N"; `ModelError` otherwise."""
    if not _PATTERN.fullmatch(device):
        raise ModelError(f"unknown device {device!r}: use {DEVICE_HELP}")
    return device


def gpu_index(device: str) -> int:
    """N of "cuda:N" (0 for "cuda" and "auto")."""
    return int(device.partition(":")[2] or 0)


def may_be_gpu(device: str) -> bool:
    """Whether `device` may turn out to be a GPU: "cuda[:N]", or "auto" with ONNX Runtime's GPU build installed."""
    if device == "auto":
        import onnxruntime as ort  # deferred: see onnx_session

        return CUDA_PROVIDER in ort.get_available_providers()
    return device.startswith("cuda")


def onnx_session(path, opts, device: str):
    """An ONNX Runtime session over the model file `path` on `device`, and the device it runs on ("cpu" or
    "cuda:N"). `ModelError` when a GPU was asked for ("cuda[:N]") and none can be used, saying why."""
    import onnxruntime as ort  # deferred: 0.2 s, and only a model run needs it

    check(device)
    has_cuda = CUDA_PROVIDER in ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"]), "cpu"
    if not has_cuda:
        raise ModelError(f"--device {device}: this ONNX Runtime has no CUDA provider; install its GPU build "
                         f"in its place ({GPU_INSTALL}), or use --runtime torch with PyTorch's CUDA build")
    index = gpu_index(device)
    providers = [(CUDA_PROVIDER, {"device_id": index}), "CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    if session.get_providers()[0] == CUDA_PROVIDER:
        return session, f"cuda:{index}"
    if device == "auto":  # ONNX Runtime fell back to the CPU (no driver, no GPU): that is what auto asks for
        return session, "cpu"
    raise ModelError(f"--device {device}: ONNX Runtime's CUDA provider did not start (no GPU or CUDA driver "
                     "found); use --device cpu or auto")
