"""forgekit.sizes: the parts are read from the files, and add up to the bytes on disk."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import keras
    import numpy as np

    folder = tmp_path_factory.mktemp("sizes")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    model.save(folder / "m.keras")
    model.save_weights(folder / "m.weights.h5")
    model.export(folder / "export", verbose=False)
    bare = keras.Sequential.from_config(model.get_config())  # no optimizer
    bare.set_weights(model.get_weights())
    bare.save_weights(folder / "bare.weights.h5")
    return folder, model


def test_breakdown_counts_weights_and_optimizer_slots(saved):
    from forgekit.sizes import breakdown

    folder, model = saved
    raw = sum(w.nbytes for w in model.get_weights())
    for name in ("m.keras", "m.weights.h5"):
        b = breakdown(folder / name)
        assert b.weights == raw and b.optimizer >= 2 * raw and b.duplicate == 0
        assert sum(b.parts().values()) == b.total == (folder / name).stat().st_size
    bare = breakdown(folder / "bare.weights.h5")
    assert bare.weights == raw and bare.optimizer == 0 and bare.overhead > 0


def test_export_duplicates_are_found_by_value(saved):
    import tensorflow as tf

    from forgekit.sizes import breakdown, checkpoint_arrays, duplicated_variables

    folder, model = saved
    pairs = duplicated_variables(folder / "export")
    arrays = checkpoint_arrays(folder / "export" / "variables" / "variables")
    assert len(pairs) == len(model.weights)
    for first, second in pairs:
        assert first.startswith("variables/") and second.startswith("_all_variables/")
        assert tf.reduce_all(arrays[first] == arrays[second])
    b = breakdown(folder / "export")
    assert b.duplicate == b.weights == sum(w.nbytes for w in model.get_weights())


def test_stacked_bars_draws_one_bar_per_artifact_and_part(saved):
    import matplotlib

    matplotlib.use("Agg")
    from forgekit.sizes import PARTS, breakdown, stacked_bars

    folder, _ = saved
    parts = {n: breakdown(folder / n) for n in ("m.keras", "export")}
    fig = stacked_bars(parts, title="bytes by part")
    ax = fig.axes[0]
    assert len(ax.patches) == len(parts) * len(PARTS) and ax.get_title() == "bytes by part"
    # binary units, named as such; the legend names only the parts these files have
    assert ax.get_xlabel() == "size on disk (KiB)", ax.get_xlabel()
    assert all(t.get_text().endswith(" KiB") for t in ax.texts)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(" (≤ ")[0] for t in legend] == [
        "weights", "optimizer slots", "duplicate", "overhead"], legend
    # a part too thin to see names its size: this tiny model's weights are, its overhead is not
    assert legend[0].startswith("weights (≤ ") and legend[0].endswith(" B)"), legend
    assert legend[-1] == "overhead", legend
    weights_only = stacked_bars({n: breakdown(folder / n) for n in ("bare.weights.h5",)}, title="t")
    assert [t.get_text().split(" (≤ ")[0] for t in weights_only.axes[0].get_legend().get_texts()
            ] == ["weights", "overhead"]


def test_details_collapses_html_and_text():
    from forgekit.details import details

    class Rich:
        def _repr_html_(self):
            return "<table><tr><td>x</td></tr></table>"

    closed = details("what each loader said", Rich())._repr_html_()
    assert closed.startswith("<details><summary><b>what each loader said</b>")
    assert "<table>" in closed and closed.endswith("</details>")
    plain = details("a <b>", "line one\nline two")
    assert "&lt;b&gt;" in plain._repr_html_() and "<pre" in plain._repr_html_()
    assert str(plain) == "a <b>\nline one\nline two"
