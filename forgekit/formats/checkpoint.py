"""tf.train.Checkpoint prefixes (prefix.index + prefix.data-*) and the folders holding them.

The .index is a TensorFlow table file; its footer magic tells a complete one from a cut one.
"""

from __future__ import annotations

import re
from pathlib import Path

from forgekit.errors import CorruptArtifactError
from forgekit.formats import bounded
from forgekit.formats.info import FormatInfo
from forgekit.formats.kinds import DATA_SHARD

# TensorFlow's table files (checkpoint and SavedModel variable indexes) end with this magic.
TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")


def check_table(index: Path, what: str, root: Path, kind: str) -> bytes:
    """Read a TF table file (.index) and verify its footer magic: truncation check."""
    data = bounded.read_bytes(index, bounded.PROTO_LIMIT, root=root, expected=kind)
    if len(data) < 48 or data[-8:] != TABLE_MAGIC:
        raise CorruptArtifactError(
            f"{what} {index.name} is {'empty' if not data else 'truncated or corrupt'} "
            f"({len(data)} bytes, no table footer)",
            path=root,
            found=f"corrupt {kind}",
            expected=kind,
            fix="save it again; a partial copy or an interrupted save leaves this",
        )
    return data


def _checkpoint_prefix_in(p: Path) -> Path | None:
    """The checkpoint prefix a folder points to: its ``checkpoint`` state file, else the newest
    ``*.index``."""
    state = p / "checkpoint"
    if state.is_file():
        # a damaged state file matches nothing and falls back to the newest index
        raw = bounded.read_bytes(state, bounded.JSON_LIMIT, root=p, expected="tf_checkpoint")
        text = raw.decode("utf-8", errors="replace")
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', text, re.M)
        if match:
            prefix = Path(match.group(1))
            return prefix if prefix.is_absolute() else p / prefix
    indexes = sorted(p.glob("*.index"), key=lambda f: f.stat().st_mtime)
    return Path(str(indexes[-1]).removesuffix(".index")) if indexes else None


def matches_dir(p: Path) -> bool:
    """A ``checkpoint`` state file or an ``*.index`` in the folder."""
    return (p / "checkpoint").is_file() or any(p.glob("*.index"))


def inspect_dir(p: Path) -> FormatInfo:
    """The checkpoint the folder's state file names (else its newest index)."""
    prefix = _checkpoint_prefix_in(p)
    if prefix is None:
        raise CorruptArtifactError(
            "the checkpoint state file names no model_checkpoint_path",
            path=p,
            found="corrupt tf_checkpoint",
            expected="tf_checkpoint",
            fix="pass the prefix explicitly, e.g. tf.train.latest_checkpoint(folder)",
        )
    info = inspect_prefix(prefix, p)
    if len(list(p.glob("*.index"))) > 1:
        info.warnings.append(f"several checkpoints here; the latest is {prefix.name!r}")
    return info


def inspect_prefix(prefix: Path, given: Path) -> FormatInfo:
    """Check the index footer and every data shard of ``prefix``; ``given`` is the path typed."""
    index = Path(f"{prefix}.index")
    if not index.is_file():
        raise CorruptArtifactError(
            f"the checkpoint state points to {prefix.name!r}, but {index.name} is missing",
            path=given,
            found="incomplete tf_checkpoint",
            expected="tf_checkpoint",
            fix="copy the whole checkpoint folder again",
        )
    data = check_table(index, "checkpoint index", given, "tf_checkpoint")
    shards = sorted(prefix.parent.glob(f"{prefix.name}.data-*"))
    for shard in shards:  # TensorFlow opens them by name: a FIFO would block the restore
        bounded.check_regular(shard, root=given, expected="tf_checkpoint")
    expected_shards = 0
    if shards:
        match = DATA_SHARD.search(shards[0].name)
        expected_shards = int(match.group(2)) if match else 0
    if not shards or len(shards) < expected_shards:
        raise CorruptArtifactError(
            f"data shards missing: found {len(shards)} of {max(expected_shards, 1)} "
            f"{prefix.name}.data-* files",
            path=given,
            found="incomplete tf_checkpoint",
            expected="tf_checkpoint",
            fix="copy every file of the checkpoint (the .index and all .data-* shards)",
        )
    warnings = []
    if given != prefix and not given.is_dir():
        warnings.append(f"TF expects the checkpoint prefix {str(prefix)!r}, not one of its files")
    return FormatInfo(
        "tf_checkpoint",
        given,
        index.stat().st_size + sum(s.stat().st_size for s in shards),
        # Heuristic that costs no TF import: variable keys are stored in the index in clear.
        has_optimizer=b"optimizer" in data,
        warnings=warnings,
        details={"prefix": str(prefix), "load_path": str(prefix), "shards": len(shards)},
    )

