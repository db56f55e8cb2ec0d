"""Custom Keras classes the lessons save and reload in fresh processes.

They live in an importable module, not in a notebook cell, so a fresh Python process can import
them (or deliberately not) - which is what decides whether a file with custom objects loads.

- :mod:`forgekit.zoo.registered`: a layer, a loss and a subclassed model, registered with
  ``keras.saving.register_keras_serializable(package="forgekit")``.
- :mod:`forgekit.zoo.unregistered`: the same layer written the way notebooks usually write it,
  without registration.
- :mod:`forgekit.zoo.variants`: broken ``get_config`` variants (missing, incomplete).
- :mod:`forgekit.zoo.renamed` and :mod:`forgekit.zoo.moved`: the layer renamed, or moved to
  another module, after a file was saved. Import each only in a fresh process: ``moved``
  registers the same name as ``registered`` and would replace it in the importing process.

Importing ``forgekit.zoo`` itself imports nothing heavy; each submodule imports Keras.

The near-identical class bodies across these modules are deliberate: each module stands for a
separate version of a user's code, and a fresh process imports exactly one of them.
"""
