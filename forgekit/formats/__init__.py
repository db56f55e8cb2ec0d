"""What format a saved model is in, decided by content: the registry of artifact kinds, detection, and one
parser per container (.keras zip, HDF5, SavedModel protobuf, checkpoint index, serving base, ...)."""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {
    "detect_format": "detect", "FormatInfo": "info", "KINDS": "kinds", "Kind": "kinds",
    "how_to_load": "kinds", "endpoint_for": "kinds", "extension_kinds": "kinds",
    "keras_suffix": "kinds", "keras_reads_name": "kinds", "version_numbers": "serving_base",
    "read_configs": "configs", "stored_configs": "configs",
})
