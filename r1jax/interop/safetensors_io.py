"""Lazy safetensors reading and streaming writing, for every dtype checkpoints use.

The format is an 8-byte little-endian header length, a JSON header mapping each tensor
name to {dtype, shape, data_offsets} (offsets relative to the end of the header) and
the raw little-endian bytes. We parse it ourselves so that bfloat16 and float8 tensors
read as `ml_dtypes` arrays (the `safetensors` numpy frontend refuses them), and so a
tensor is a view on a read-only memory map: nothing is read until it is used.

A checkpoint is a directory with `model.safetensors`, or shards listed by a
`*.safetensors.index.json` (`weight_map`: tensor name -> file), or a single file.
`write_checkpoint` streams tensors one at a time into shards of bounded size.

Shape letters: O output rows, I input columns (a linear weight is [O, I]).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import struct
from typing import Any, Callable, Iterable, Sequence

import ml_dtypes
import numpy as np

DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn), "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U64": np.dtype("<u8"), "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit
_OUR_SHARD = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors")


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """Where one tensor lives: file, dtype, shape and absolute byte range."""
  file: str
  dtype: np.dtype
  shape: tuple[int, ...]
  start: int
  end: int


def dtype_name(dtype: Any) -> str:
  """The safetensors name of a numpy dtype ('F32', 'BF16', ...)."""
  dt = np.dtype(dtype)
  if dt not in _NAMES:
    raise ValueError(f"dtype {dt} has no safetensors name; allowed: "
                     f"{sorted(str(d) for d in _NAMES)}.")
  return _NAMES[dt]


def read_header(file: str) -> tuple[dict[str, TensorInfo], dict[str, str]]:
  """Tensor table and `__metadata__` of one .safetensors file (reads only the header)."""
  size = os.path.getsize(file)
  with open(file, "rb") as f:
    raw = f.read(8)
    if len(raw) != 8:
      raise ValueError(f"{file}: too short to be a safetensors file ({size} bytes).")
    (n,) = struct.unpack("<Q", raw)
    if n > _MAX_HEADER or 8 + n > size:
      raise ValueError(f"{file}: header length {n} is invalid for a {size}-byte file.")
    header = json.loads(f.read(n))
  meta = header.pop("__metadata__", None) or {}
  base = 8 + n
  table: dict[str, TensorInfo] = {}
  for name, h in header.items():
    if h["dtype"] not in DTYPES:
      raise ValueError(f"{file}: tensor {name!r} has dtype {h['dtype']!r}; "
                       f"supported: {sorted(DTYPES)}.")
    dt = DTYPES[h["dtype"]]
    shape = tuple(int(s) for s in h["shape"])
    lo, hi = (int(o) for o in h["data_offsets"])
    if hi - lo != math.prod(shape) * dt.itemsize or base + hi > size:
      raise ValueError(f"{file}: tensor {name!r} ({h['dtype']} {list(shape)}) has byte "
                       f"range [{lo}, {hi}) that does not match its shape or the file size.")
    table[name] = TensorInfo(file, dt, shape, base + lo, base + hi)
  return table, meta


class CheckpointReader:
  """Every tensor of a checkpoint by name; `read` returns a lazy memory-mapped view."""

  def __init__(self, path: str):
    self.path = path
    self.files = checkpoint_files(path)
    self.tensors: dict[str, TensorInfo] = {}
    for file in self.files:
      table, _ = read_header(file)
      for name, info in table.items():
        if name in self.tensors:
          raise ValueError(f"Tensor {name!r} appears in both {self.tensors[name].file} and "
                           f"{file}.")
        self.tensors[name] = info
    self._maps: dict[str, np.memmap] = {}

  def __contains__(self, name: str) -> bool:
    return name in self.tensors

  def names(self) -> list[str]:
    return sorted(self.tensors)

  def info(self, name: str) -> TensorInfo:
    """Dtype/shape/location of `name`; KeyError naming the checkpoint if it is absent."""
    if name not in self.tensors:
      raise KeyError(f"Tensor {name!r} is not in the checkpoint at {self.path} "
                     f"({len(self.tensors)} tensors in {len(self.files)} file(s)).")
    return self.tensors[name]

  def read(self, name: str) -> np.ndarray:
    """The tensor as a read-only view on the file (bytes are read on first touch)."""
    info = self.info(name)
    if info.file not in self._maps:
      self._maps[info.file] = np.memmap(info.file, dtype=np.uint8, mode="r")
    flat = self._maps[info.file][info.start:info.end]
    return flat.view(info.dtype).reshape(info.shape)

  def close(self) -> None:
    self._maps.clear()


def checkpoint_files(path: str) -> list[str]:
  """The .safetensors files of a checkpoint (directory, index json or single file)."""
  if os.path.isfile(path):
    if path.endswith(".index.json"):
      return _files_from_index(path)
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"No checkpoint at {path}: expected a directory with "
                            f"model.safetensors or a *.safetensors.index.json.")
  indexes = sorted(glob.glob(os.path.join(path, "*.safetensors.index.json")))
  preferred = os.path.join(path, "model.safetensors.index.json")
  if preferred in indexes:
    return _files_from_index(preferred)
  if len(indexes) == 1:
    return _files_from_index(indexes[0])
  if len(indexes) > 1:
    raise ValueError(f"{path} has several index files {indexes}; pass one of them.")
  files = sorted(glob.glob(os.path.join(path, "*.safetensors")))
  if not files:
    raise FileNotFoundError(f"{path} has no .safetensors files and no "
                            f"*.safetensors.index.json.")
  return files


def _files_from_index(index: str) -> list[str]:
  with open(index) as f:
    weight_map = json.load(f)["weight_map"]
  root = os.path.dirname(index)
  files = []
  for name in sorted(set(weight_map.values())):
    full = os.path.join(root, name)
    if not os.path.exists(full):
      raise FileNotFoundError(f"{index} lists shard {name!r}, which does not exist.")
    files.append(full)
  return files


# ---------------------------------------------------------------------------------------
# Writing


@dataclasses.dataclass(frozen=True)
class TensorEntry:
  """A tensor to write: its bytes come from `produce()` only when its turn comes."""
  name: str
  dtype: np.dtype
  shape: tuple[int, ...]
  produce: Callable[[], np.ndarray]

  @property
  def nbytes(self) -> int:
    return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def write_file(file: str, entries: Sequence[TensorEntry],
               metadata: dict[str, str] | None = None) -> None:
  """Writes one .safetensors file, producing and writing one tensor at a time."""
  header: dict[str, Any] = {"__metadata__": dict(metadata or {})}
  offset = 0
  for e in entries:
    header[e.name] = {"dtype": dtype_name(e.dtype), "shape": list(e.shape),
                      "data_offsets": [offset, offset + e.nbytes]}
    offset += e.nbytes
  raw = json.dumps(header, separators=(",", ":")).encode()
  raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as the reference writer does
  tmp = file + ".tmp"
  with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for e in entries:
      arr = np.asarray(e.produce())
      if arr.shape != tuple(e.shape) or arr.dtype != np.dtype(e.dtype):
        raise ValueError(f"Tensor {e.name!r}: produced {arr.dtype}{list(arr.shape)}, planned "
                         f"{np.dtype(e.dtype)}{list(e.shape)}.")
      f.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
              .tobytes())
  os.replace(tmp, file)


def write_checkpoint(directory: str, entries: Iterable[TensorEntry], *,
                     max_shard_bytes: int = 4 << 30,
                     metadata: dict[str, str] | None = None) -> list[str]:
  """Writes `entries` as model.safetensors, or as numbered shards plus an index json.

  Shards follow the Hugging Face names (model-00001-of-00003.safetensors) and the index
  `model.safetensors.index.json`. Returns the written file names.
  """
  entries = list(entries)
  seen: set[str] = set()
  for e in entries:
    if e.name in seen:
      raise ValueError(f"Tensor {e.name!r} is planned twice.")
    seen.add(e.name)
  shards: list[list[TensorEntry]] = [[]]
  size = 0
  for e in entries:
    if shards[-1] and size + e.nbytes > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(e)
    size += e.nbytes
  os.makedirs(directory, exist_ok=True)
  meta = {"format": "pt", **(metadata or {})}
  if len(shards) == 1:
    names = ["model.safetensors"]
  else:
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
  for stale in glob.glob(os.path.join(directory, "model*.safetensors")):
    # Files of an earlier save into the same directory would be read as part of this one.
    if os.path.basename(stale) not in names and _OUR_SHARD.fullmatch(os.path.basename(stale)):
      os.remove(stale)
  for name, shard in zip(names, shards):
    write_file(os.path.join(directory, name), shard, meta)
  index = os.path.join(directory, "model.safetensors.index.json")
  if len(shards) > 1:
    weight_map = {e.name: name for name, shard in zip(names, shards) for e in shard}
    with open(index, "w") as f:
      json.dump({"metadata": {"total_size": sum(e.nbytes for e in entries)},
                 "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
  elif os.path.exists(index):
    os.remove(index)  # a stale index from an earlier sharded save would shadow the file
  return names
