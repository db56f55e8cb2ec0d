"""What is wrong here: ``forgekit doctor`` for the environment or a saved model, the environment
report, and the failure lab (every loader against every kind, predicted and measured)."""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {
    "doctor": "diagnosis", "diagnose_artifact": "diagnosis", "ArtifactDiagnosis": "diagnosis",
})
