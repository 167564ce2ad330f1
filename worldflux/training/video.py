"""Videos: MP4 through the optional ``imageio-ffmpeg`` encoder, else a dependency-free GIF writer;
TensorBoard videos; open-loop prediction frames.

MP4 needs ``pip install 'worldflux[video]'`` (``imageio-ffmpeg`` ships its own ffmpeg binary);
without it :func:`write_video` falls back to GIF. The GIF writer quantises frames to a fixed 3-3-2 bit RGB palette and stores every pixel as a
literal LZW code (a clear code is emitted before the code table would grow), which every GIF
decoder reads; files are larger than compressed GIFs but need nothing beyond numpy.

Axis legend: ``T`` time, ``H, W`` height and width, ``C`` channels, ``B`` batch.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_CLEAR, _END, _CODE_BITS = 256, 257, 9
#: Literal codes emitted between clear codes, so the decoder's table never reaches 512 entries.
_RUN = 254


def _palette() -> np.ndarray:
    idx = np.arange(256)
    r = ((idx >> 5) & 7) * 255 // 7
    g = ((idx >> 2) & 7) * 255 // 7
    b = (idx & 3) * 255 // 3
    return np.stack([r, g, b], axis=1).astype(np.uint8)


def _quantise(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.uint16)
    r = (f[..., 0] * 7 + 127) // 255
    g = (f[..., 1] * 7 + 127) // 255
    b = (f[..., 2] * 3 + 127) // 255
    return ((r << 5) | (g << 2) | b).astype(np.uint8)


def _lzw_literal(indices: np.ndarray) -> bytes:
    codes: list[int] = []
    flat = indices.reshape(-1).tolist()
    for start in range(0, len(flat), _RUN):
        codes.append(_CLEAR)
        codes.extend(flat[start : start + _RUN])
    codes.append(_END)
    bits = np.zeros(len(codes) * _CODE_BITS, dtype=np.uint8)
    arr = np.asarray(codes, dtype=np.uint16)
    for i in range(_CODE_BITS):  # little-endian bit packing, as GIF requires
        bits[i::_CODE_BITS] = (arr >> i) & 1
    data = np.packbits(bits, bitorder="little").tobytes()
    out = bytearray()
    for start in range(0, len(data), 255):
        chunk = data[start : start + 255]
        out.append(len(chunk))
        out += chunk
    out.append(0)
    return bytes(out)


def encode_gif(frames: np.ndarray, fps: int = 15) -> bytes:
    """Encode ``frames (T, H, W, 3)`` uint8 as an animated GIF (looping)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        from worldflux.errors import ShapeError

        raise ShapeError(f"frames must be (T, H, W, 3), got {frames.shape}")
    t, h, w, _ = frames.shape
    delay = max(1, round(100 / max(fps, 1)))
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", w, h, 0xF7, 0, 0)  # global colour table of 256 entries
    out += _palette().tobytes()
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for frame in frames:
        out += struct.pack("<BBBBHBB", 0x21, 0xF9, 4, 0, delay, 0, 0)
        out += struct.pack("<BHHHHB", 0x2C, 0, 0, w, h, 0)
        out.append(8)  # minimum code size
        out += _lzw_literal(_quantise(frame))
    out.append(0x3B)
    return bytes(out)


def write_gif(path: str | os.PathLike[str], frames: np.ndarray, fps: int = 15) -> Path:
    """Write ``frames (T, H, W, 3)`` uint8 to ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(encode_gif(frames, fps))
    os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
    os.replace(tmp, target)
    return target


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad ``(T, H, W, 3)`` frames to even height and width (H.264 in yuv420p needs them)."""
    t, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def mp4_available() -> bool:
    """Whether MP4 files can be written (the ``imageio-ffmpeg`` extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("imageio_ffmpeg") is not None


def write_mp4(path: str | os.PathLike[str], frames: np.ndarray, fps: int = 15) -> Path:
    """Write ``frames (T, H, W, 3)`` uint8 as an H.264 MP4 at ``path`` (needs ``imageio-ffmpeg``)."""
    import imageio_ffmpeg

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    frames = _even(np.ascontiguousarray(frames, dtype=np.uint8))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp.mp4")
    writer = imageio_ffmpeg.write_frames(
        str(tmp),
        (frames.shape[2], frames.shape[1]),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=2,
        ffmpeg_log_level="error",
    )
    writer.send(None)  # start the encoder
    for frame in frames:
        writer.send(frame)
    writer.close()
    os.replace(tmp, target)
    return target


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: int = 15) -> Path:
    """Write ``frames (T, H, W, 3)`` uint8 as ``<path>.mp4`` when possible, else ``<path>.gif``.

    ``path`` is given without a suffix; the returned path has the one that was written.
    """
    base = Path(path)
    if mp4_available():
        return write_mp4(base.with_suffix(".mp4"), frames, fps)
    return write_gif(base.with_suffix(".gif"), frames, fps)


def log_video(loggers: list[Any], tag: str, frames: np.ndarray, step: int, fps: int = 15) -> None:
    """Log ``frames (T, H, W, 3)`` as a video to the TensorBoard loggers among ``loggers``.

    TensorBoard shows videos as animated GIF image summaries (what ``SummaryWriter.add_video``
    writes); encoding the GIF here avoids ``add_video``'s ``moviepy`` dependency.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    gif = None
    for logger in loggers:
        writer: Any = getattr(logger, "experiment", None)
        file_writer = getattr(writer, "file_writer", None)
        if file_writer is None or not hasattr(writer, "add_image"):
            continue
        if gif is None:
            gif = encode_gif(frames, fps)
        t, h, w, _ = frames.shape
        image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif)
        file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def to_frames(images: Any) -> np.ndarray:
    """``(..., C, H, W)`` images (uint8, or float in ``[0, 1]``) -> ``(..., H, W, 3)`` uint8."""
    arr = images.detach().float().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.dtype != np.uint8:
        scale = 255.0 if arr.max() <= 1.5 else 1.0
        arr = np.clip(arr * scale, 0, 255).round().astype(np.uint8)
    arr = np.moveaxis(arr, -3, -1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr[..., :3]


def open_loop_frames(
    model: Any, batch: dict[str, Any], context: int, key: str | None = None
) -> np.ndarray:
    """Ground truth | open-loop prediction | error, over time, for a batch of sequences.

    The model filters the first ``context`` steps with ``observe``, then imagines the rest with
    ``rollout`` under the recorded actions, and ``decode`` turns the states into images.

    Returns:
        ``(T - context, B * H, 3 * W, 3)`` uint8 frames (the batch stacked vertically).
    """
    import torch

    def head(x: Any) -> Any:
        return {k: v[:, :context] for k, v in x.items()} if isinstance(x, dict) else x[:, :context]

    obs = batch["obs"]
    image = obs if key is None else obs[key]
    with torch.no_grad():
        _, last = model.observe(head(obs), head(batch["action"]), head(batch["first"]))
        states = model.rollout(last, batch["action"][:, context:])
        pred = model.decode(states)["obs"]
    if isinstance(pred, dict):
        pred = pred[key] if key is not None else next(iter(pred.values()))
    truth = to_frames(image[:, context:]).astype(np.int16)
    guess = to_frames(pred).astype(np.int16)
    error = np.abs(truth - guess)
    row = np.concatenate([truth, guess, error], axis=-2).astype(np.uint8)  # (B, T, H, 3W, 3)
    b, t = row.shape[:2]
    return row.transpose(1, 0, 2, 3, 4).reshape(t, b * row.shape[2], row.shape[3], 3)
