"""SavedModel folders: saved_model.pb (signatures, tags, root objects) and variables/."""

from __future__ import annotations

from pathlib import Path

from forgekit.errors import CorruptArtifactError
from forgekit.formats import bounded, protobuf
from forgekit.formats.checkpoint import check_table
from forgekit.formats.info import FormatInfo, dir_size


def matches_dir(p: Path) -> bool:
    """A saved_model.pb (or .pbtxt) in the folder."""
    return (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists()


def inspect_dir(p: Path) -> FormatInfo:
    """Check the files are complete, then read the protobuf's signatures and root objects."""
    def corrupt(reason: str) -> CorruptArtifactError:
        return CorruptArtifactError(
            reason,
            path=p,
            found="incomplete savedmodel",
            expected="savedmodel",
            fix="export it again with model.export(path), or copy the whole folder again",
        )

    pb = p / "saved_model.pb"
    if not pb.exists():
        raise corrupt("only a saved_model.pbtxt (text) is here; forgekit reads saved_model.pb")
    if not pb.is_file():
        raise corrupt("saved_model.pb is not a file")
    # TensorFlow opens every file here by name: a FIFO or a device anywhere would hang it
    bounded.check_tree(p, expected="savedmodel")
    raw = bounded.read_bytes(pb, bounded.PROTO_LIMIT, root=p, expected="savedmodel")
    if not raw:
        raise corrupt("saved_model.pb is empty (0 bytes)")
    # Files first: cheap, and no TensorFlow import for an incomplete copy.
    variables = p / "variables"
    if not variables.is_dir():
        raise corrupt("the variables/ folder is missing (the weights live there)")
    index = variables / "variables.index"
    if not index.is_file():
        raise corrupt("variables/variables.index is missing")
    check_table(index, "variables/", p, "savedmodel")
    if not list(variables.glob("variables.data-*")):
        raise corrupt("variables/ has an index but no variables.data-* shard")
    try:
        meta_graphs = protobuf.fields(raw).get(2, [])  # SavedModel.meta_graphs
        graph = protobuf.fields(meta_graphs[0]) if meta_graphs else {}
        meta_info = protobuf.fields(graph.get(1, [b""])[0])  # MetaGraphDef.meta_info_def
        # signature_def is a map: entries of (1: key, 2: SignatureDef)
        signature_keys = [protobuf.text(protobuf.fields(entry).get(1, [b""])[0])
                          for entry in graph.get(5, [])]
        # object_graph_def.nodes[0] is the root object; its children are its attributes
        nodes = protobuf.fields(graph.get(7, [b""])[0]).get(1, [])
        children = {protobuf.text(protobuf.fields(ref).get(2, [b""])[0])
                    for ref in (protobuf.fields(nodes[0]).get(1, []) if nodes else [])}
        tags = [protobuf.text(t) for t in meta_info.get(4, [])]
        tf_version = protobuf.text(meta_info.get(5, [b""])[0])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise corrupt(f"saved_model.pb does not parse as a SavedModel protobuf ({exc})") from exc
    if not meta_graphs:
        raise corrupt("saved_model.pb parses but holds no MetaGraph")
    writer = "tf.saved_model.save / model.export"
    if (p / "keras_metadata.pb").exists():
        writer = "Keras 2 (tf-keras) model.save"
    info = FormatInfo(
        "savedmodel",
        p,
        dir_size(p),
        has_optimizer="optimizer" in children,
        signatures=sorted(k for k in signature_keys if not k.startswith("__")),
        details={
            "writer": writer,
            "tags": tags,
            "tensorflow_version": tf_version or None,
            "fingerprint": (p / "fingerprint.pb").exists(),
            "entries": sorted(e.name for e in p.iterdir()),
        },
    )
    return info


def keras_metadata(p: Path) -> list[dict]:
    """The Keras objects a Keras 2 SavedModel describes in ``keras_metadata.pb``: one JSON dict
    per saved object (the model first), each with its ``class_name`` and ``config``.

    ``tf_keras.models.load_model`` rebuilds the model from these configs (Lambda bytecode
    included); ``tf.saved_model.load`` never reads them. ``[]`` when there is no such file.
    """
    import json

    meta = p / "keras_metadata.pb"
    if not meta.exists():
        return []
    raw = bounded.read_bytes(meta, bounded.JSON_LIMIT, root=p, expected="savedmodel")
    objects = []
    for node in protobuf.fields(raw).get(1, []):  # SavedMetadata.nodes
        metadata = protobuf.fields(node).get(5, [b""])[0]  # SavedObject.metadata (JSON)
        if metadata:
            doc = json.loads(protobuf.text(metadata))
            if isinstance(doc, dict):
                objects.append(doc)
    return objects

