"""Lesson 07's checker: the right models.config passes, each typical wrong one fails with its reason.

Every answer that parses is served by the checker on a server of its own, over a copy of the
versions, and judged by what ``/labels/<label>/metadata`` and the status answer over HTTP.
"""

from __future__ import annotations

import numpy as np
import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.exercises import deploying_with_tf_serving as ex


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Versions 1-4 of ``forecast``, plain numbered exports (weights 0.1 * version)."""
    import keras

    folder = tmp_path_factory.mktemp("models") / "forecast"
    for v in (1, 2, 3, 4):
        model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(1)])
        model.set_weights([np.full((4, 1), 0.1 * v, "float32"), np.zeros(1, "float32")])
        model.export(str(folder / str(v)), verbose=False)
    return folder


def config(base, policy, labels=(("stable", 3), ("canary", 4)), name="forecast"):
    label_lines = "".join(f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in labels)
    return (f'model_config_list {{\n  config {{\n    name: "{name}"\n    base_path: "{base}"\n'
            f'    model_platform: "tensorflow"\n    model_version_policy {{ {policy} }}\n'
            f"{label_lines}  }}\n}}\n")


RIGHT = "specific { versions: 3 versions: 4 }"


def test_the_right_config_passes_and_survives_the_next_publish(base, tmp_path):
    feedback = ex.check_promotion(config(base, RIGHT), base, tmp_path / "ex")
    assert feedback.passed, feedback
    assert "un-labelled requests get version 4" in feedback.message
    again = ex.check_promotion(config(base, RIGHT), base, tmp_path / "ex")  # re-run: same folder
    assert again.passed, again
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "3", "4"]  # the lesson's own


def test_no_answer_and_not_text(base, tmp_path):
    assert ex.check_promotion(None, base, tmp_path) is NOT_ANSWERED
    assert "should be the models.config text" in ex.check_promotion(42, base, tmp_path).message


@pytest.mark.parametrize("text, says", [
    ("model_config_list { config { name: forecast } }", "TF Serving would not start on this file"),
])
def test_a_file_the_server_cannot_read(base, tmp_path, text, says):
    feedback = ex.check_promotion(text, base, tmp_path / "ex")
    assert not feedback.passed and says in feedback.message, feedback


def test_text_the_protobuf_reader_refuses_is_a_clear_wrong(base, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from forgekit.serving import config as serving_config

    lenient = [SimpleNamespace(name="forecast", base_path=str(base))]
    monkeypatch.setattr(serving_config, "parse_model_config", lambda text, where: lenient)
    feedback = ex.check_promotion("model_config_list { config {", base, tmp_path / "ex")
    assert not feedback.passed and "TF Serving would not start on this file" in feedback.message


def test_wrong_model_name_and_base_path(base, tmp_path):
    named = ex.check_promotion(config(base, RIGHT, name="model"), base, tmp_path / "a")
    assert not named.passed and "names no model 'forecast'" in named.message
    moved = ex.check_promotion(config(base.parent, RIGHT), base, tmp_path / "b")
    assert not moved.passed and "base_path is" in moved.message


def test_the_lessons_config_left_as_it_was_is_a_404_on_stable(base, tmp_path):
    text = config(base, "latest { num_versions: 2 }", (("stable", 2), ("canary", 3)))
    feedback = ex.check_promotion(text, base, tmp_path / "ex")
    assert not feedback.passed
    assert "Served, GET .../labels/stable/metadata answers 404" in feedback.message, feedback
    assert "Specific(forecast, 2)" in feedback.message


def test_latest_is_right_until_the_next_publish(base, tmp_path):
    feedback = ex.check_promotion(config(base, "latest { num_versions: 2 }"), base,
                                  tmp_path / "ex")
    assert not feedback.passed
    assert feedback.message.startswith("After version 5 was published, GET "
                                       ".../labels/stable/metadata answers 404"), feedback
    assert "right until the next publish" in feedback.message


def test_all_versions_loaded_is_refused(base, tmp_path):
    feedback = ex.check_promotion(config(base, "all {}"), base, tmp_path / "ex")
    assert not feedback.passed and "versions [1, 2, 3, 4] are loaded" in feedback.message, feedback


def test_swapped_labels(base, tmp_path):
    text = config(base, RIGHT, (("stable", 4), ("canary", 3)))
    feedback = ex.check_promotion(text, base, tmp_path / "ex")
    assert not feedback.passed
    assert "/labels/stable answers version 4; it should be 3 (stable and canary swapped?)" \
        in feedback.message, feedback


def test_no_labels_is_unrecognized(base, tmp_path):
    feedback = ex.check_promotion(config(base, RIGHT, ()), base, tmp_path / "ex")
    assert not feedback.passed
    assert "answers 400" in feedback.message and "Unrecognized servable version label: stable" \
        in feedback.message, feedback


@pytest.mark.parametrize("spelling", ["trailing slash", "single quotes"])
def test_any_spelling_of_base_is_served_from_the_copy(base, tmp_path, spelling):
    text = config(f"{base}/", "latest { num_versions: 2 }") if spelling == "trailing slash" \
        else config(base, "latest { num_versions: 2 }").replace(f'"{base}"', f"'{base}'")
    feedback = ex.check_promotion(text, base, tmp_path / "ex")  # latest: v5 must strand stable
    assert not feedback.passed and "right until the next publish" in feedback.message, feedback
    right = ex.check_promotion(config(f"{base}/", RIGHT), base, tmp_path / "ex")
    assert right.passed and "specific[3, 4]" in right.message, right


def test_a_policy_that_lets_the_next_version_in(base, tmp_path):
    text = config(base, "specific { versions: 3 versions: 4 versions: 5 }")
    feedback = ex.check_promotion(text, base, tmp_path / "ex")
    assert not feedback.passed
    assert "versions [3, 4, 5] are loaded and un-labelled requests reach version 5" \
        in feedback.message, feedback
