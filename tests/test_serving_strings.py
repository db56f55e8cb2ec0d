"""A model with its string preprocessing inside the export takes strings over REST and gRPC.

A ``StringLookup`` layer in the model (keras-team/keras#19396): clients send the raw strings, as
JSON strings over REST and as a ``DT_STRING`` tensor over gRPC, and get the model's own answer;
``publish`` needs canary inputs for a string input (it cannot invent them) and then verifies.
"""

from __future__ import annotations

import numpy as np
import pytest

from forgekit.serving import InProcessServer
from forgekit.serving import deploy as dp
from forgekit.serving.verify import verify_deployment


def colour_model():
    import keras

    lookup = keras.layers.StringLookup(vocabulary=["red", "green", "blue"], output_mode="one_hot")
    colour = keras.Input((1,), dtype="string", name="colour")
    score = keras.layers.Dense(1, name="score")(keras.layers.Flatten()(lookup(colour)))
    return keras.Model(colour, score)


def test_string_inputs_are_served_over_rest_and_grpc(tmp_path):
    import tensorflow as tf

    model = colour_model()
    with pytest.raises(dp.DeployError, match="canary_inputs"):
        dp.publish(model, tmp_path / "colours")  # no values can be invented for a string input
    record = dp.publish(model, tmp_path / "colours",
                        canary_inputs={"colour": np.array([["red"], ["blue"]])})
    assert record.signature["inputs"] == {"colour": ["DT_STRING", [-1, 1]]}
    rows = [["red"], ["green"], ["never seen"]]  # the last one maps to the OOV index
    expected = model(tf.constant(rows)).numpy()
    with InProcessServer(tmp_path / "colours", "colours",
                         file_system_poll_wait_seconds=0.05) as server:
        for transport in ("rest", "grpc"):
            with server.client(transport) as client:
                columns = client.predict("colours", inputs={"colour": rows})["outputs"]
                by_rows = client.predict("colours", rows)["predictions"]
                assert np.allclose(columns, expected, atol=1e-6), transport
                assert np.allclose(by_rows, expected, atol=1e-6), transport
                assert verify_deployment(client, "colours", record).ok, transport
