"""Lesson 06's checker: a right HTTP check passes, each typical wrong one fails with its reason.

One planted server (four deployments) is shared by the wrong answers; ``check_deploy_check``
plants its own for the right answer, as the notebook does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from forgekit.exercises import NOT_ANSWERED
from forgekit.exercises import serving_incident as ex


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _version(url: str, name: str) -> int:
    return int(_get(f"{url}/v1/models/{name}/metadata")["model_spec"]["version"])


def _outputs_match(url: str, name: str, expected: dict) -> bool:
    outputs = _post(f"{url}/v1/models/{name}:predict", {"inputs": expected["inputs"]})["outputs"]
    return bool(np.allclose(outputs, expected["outputs"], atol=1e-5))


def right(url, name, expected):
    return _version(url, name) == expected["version"] and _outputs_match(url, name, expected)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    server, expected = ex.plant(tmp_path_factory.mktemp("serving_incident"))
    yield server.rest_url, expected
    server.stop()


def test_the_right_answer_passes_twice_on_one_folder(tmp_path):
    # a learner re-runs the checker cell: each run plants in a new sub-folder
    for _ in range(2):
        feedback = ex.check_deploy_check(right, tmp_path)
        assert feedback.passed, feedback
    assert len(list(tmp_path.iterdir())) == 2


def test_unanswered_and_not_a_function():
    assert ex.check_deploy_check(None, "unused") is NOT_ANSWERED
    feedback = ex.check_deploy_check(42, "unused")
    assert not feedback.passed and "function" in str(feedback)


@pytest.mark.parametrize(("answer", "reason"), [
    (lambda url, name, exp: True, "flat-file"),  # no check at all
    (lambda url, name, exp: _outputs_match(url, name, exp), "renumbered"),  # outputs only
    (lambda url, name, exp: _version(url, name) == exp["version"], "in-place"),  # number only
    (lambda url, name, exp: False, "rejects the healthy"),
    (lambda url, name, exp: _get(f"{url}/v1/model/{name}/metadata"), "HTTPError"),  # wrong path
    (lambda url, name, exp: _version(url, name), "return True"),  # not a bool
])
def test_wrong_answers_fail_with_their_reason(planted, answer, reason):
    url, expected = planted
    feedback = ex.judge(answer, url, expected)
    assert not feedback.passed and reason in str(feedback), feedback


def test_a_forgekit_client_is_refused(planted):
    url, expected = planted

    def with_helper(url, name, exp):
        from forgekit.serving import Client

        return Client(url).metadata(name) is not None

    feedback = ex.judge(with_helper, url, expected)
    assert not feedback.passed and "urllib" in str(feedback), feedback


def test_right_answer_passes_on_the_shared_server_too(planted):
    url, expected = planted
    feedback = ex.judge(right, url, expected)
    assert feedback.passed and f"{expected['renumbered']['model']} (renumbered): version 3" in str(
        feedback), feedback


def test_the_planted_deployments_are_what_the_checker_says(planted):
    url, expected = planted
    m = {role: e["model"] for role, e in expected.items()}
    assert sorted(m.values()) == [f"forecast_{c}" for c in "abcd"]  # the name tells nothing
    assert _version(url, m["healthy"]) == 2 and _outputs_match(url, m["healthy"], expected["healthy"])
    assert _version(url, m["flat"]) == 1  # model.h5 is never read
    assert _version(url, m["in_place"]) == 1
    assert not _outputs_match(url, m["in_place"], expected["in_place"])  # old weights answer
    assert _version(url, m["renumbered"]) == 3
    assert _outputs_match(url, m["renumbered"], expected["renumbered"])


def test_peeking_at_the_model_name_fails(planted):
    url, expected = planted
    feedback = ex.judge(lambda url, name, exp: name == "healthy", url, expected)
    assert not feedback.passed and "rejects the healthy" in str(feedback), feedback


def _pinned(url, name, exp):  # POST .../versions/<expected>:predict: 404 when it is not served
    return _outputs_match(url, f"{name}/versions/{exp['version']}", exp)


def test_a_pinned_version_check_must_catch_the_404(planted):
    url, expected = planted
    feedback = ex.judge(_pinned, url, expected)
    assert not feedback.passed and "must catch urllib.error.HTTPError" in str(feedback), feedback

    def caught(url, name, exp):
        try:
            return _pinned(url, name, exp)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise

    feedback = ex.judge(caught, url, expected)
    assert feedback.passed, feedback


def test_week_data_drifts_and_is_reproducible():
    x0, y0 = ex.week_data(0, 64)
    x0b, y0b = ex.week_data(0, 64)
    assert np.array_equal(x0, x0b) and np.array_equal(y0, y0b)
    x26, y26 = ex.week_data(26, 64, sample_seed=0)
    assert np.array_equal(x0, ex.week_data(0, 64, sample_seed=0)[0])
    assert not np.array_equal(ex.week_data(0, 64, sample_seed=1)[0], x0)  # held-out differs
    assert x26.shape == (64, ex.FEATURES) and y26.shape == (64, 1)


def test_a_year_stale_model_still_beats_predicting_zero():
    # the drift is slow: the week-0 relation still explains week 52 better than a constant
    w_start, _ = np.random.default_rng(0).normal(size=(2, ex.FEATURES, 1))
    x, y = ex.week_data(52, 2048, sample_seed=1)
    assert np.mean((np.tanh(x @ w_start) - y) ** 2) < np.mean(y ** 2)
