"""JupyterLab without friction: the kernel the notebooks name is the one installed, no news
prompt, and a lesson opened in JupyterLab is not marked modified (tools/setup_lab.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json

import nbformat
import pytest

from forgekit.course.lab import PORTABLE_LANGUAGE_INFO, CourseContentsManager, kernel_language_info
from forgekit.course.runner import discover
from tests.conftest import ROOT
from tools import setup_lab


def _run(coroutine):
    """Run a coroutine on a thread of its own: an earlier test (Playwright's sync API) may leave
    an event loop running in this one, where asyncio.run() refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


NOTEBOOKS = discover([ROOT / "notebooks"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_names_the_installed_kernel(path):
    # JupyterLab rewrites a kernelspec that differs from the kernel's and marks the lesson modified.
    meta = nbformat.read(path, as_version=4).metadata
    assert dict(meta.kernelspec) == {"name": setup_lab.KERNEL_NAME, "language": "python",
                                     "display_name": setup_lab.KERNEL_DISPLAY_NAME}, path.name
    assert meta.get("language_info", PORTABLE_LANGUAGE_INFO) == PORTABLE_LANGUAGE_INFO, (
        f"{path.name}: language_info carries a machine's Python version; store only "
        f"{PORTABLE_LANGUAGE_INFO} (`make strip` does)")


@pytest.mark.parametrize("installer", ["Makefile", "binder/postBuild"])
def test_make_and_binder_run_the_lab_setup(installer):
    assert "python tools/setup_lab.py" in (ROOT / installer).read_text()


def test_this_environment_is_set_up_as_make_installs_it():
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyterlab_server.config import get_static_page_config

    spec = KernelSpecManager().get_kernel_spec(setup_lab.KERNEL_NAME)
    assert spec.display_name == setup_lab.KERNEL_DISPLAY_NAME, (
        f"kernel {setup_lab.KERNEL_NAME!r} is {spec.display_name!r} in {spec.resource_dir}; "
        "run `python tools/setup_lab.py` with the environment's python")
    disabled = get_static_page_config(level="all").get("disabledExtensions", {})
    assert all(disabled.get(plugin) for plugin in setup_lab.DISABLED_PLUGINS), disabled
    server = json.loads(setup_lab.server_config_path().read_text())
    assert server["ServerApp"]["contents_manager_class"] == setup_lab.CONTENTS_MANAGER


def test_setup_keeps_existing_settings(tmp_path):
    page = setup_lab.page_config_path(tmp_path)
    page.parent.mkdir(parents=True)
    page.write_text(json.dumps({"disabledExtensions": {"other:plugin": True}, "x": 1}))
    setup_lab.disable_plugins(tmp_path)
    setup_lab.disable_plugins(tmp_path)  # idempotent
    config = json.loads(page.read_text())
    assert config["x"] == 1 and config["disabledExtensions"] == {
        "other:plugin": True, **dict.fromkeys(setup_lab.DISABLED_PLUGINS, True)}
    server = setup_lab.server_config_path(tmp_path)
    server.write_text(json.dumps({"ServerApp": {"port": 9999}}))
    setup_lab.configure_server(tmp_path)
    assert json.loads(server.read_text())["ServerApp"] == {
        "port": 9999, "contents_manager_class": setup_lab.CONTENTS_MANAGER}


def test_language_info_is_what_a_kernel_reports():
    # JupyterLab writes the kernel's language_info into the notebook on open: the contents
    # manager must hand out exactly that, or the lesson is marked modified.
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=setup_lab.KERNEL_NAME)
    try:
        reply = client.kernel_info(reply=True, timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert reply["content"]["language_info"] == kernel_language_info()


def test_contents_manager_fills_on_read_and_stores_the_stub_on_save(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.write(nb, tmp_path / "lesson.ipynb")
    manager = CourseContentsManager(root_dir=str(tmp_path))

    model = _run(manager.get("lesson.ipynb"))
    assert model["content"]["metadata"]["language_info"] == kernel_language_info()
    _run(manager.save({"type": "notebook", "format": "json",
                              "content": model["content"]}, "lesson.ipynb"))
    saved = nbformat.read(tmp_path / "lesson.ipynb", as_version=4)
    assert saved.metadata.language_info == PORTABLE_LANGUAGE_INFO
    assert saved.cells[0].source == "1 + 1"
    listing = _run(manager.get(""))  # folders and other files pass through untouched
    assert [item["name"] for item in listing["content"]] == ["lesson.ipynb"]


def test_strip_keeps_only_the_portable_language_info(tmp_path):
    from tools.strip_notebooks import strip

    nb = nbformat.v4.new_notebook(metadata={"language_info": {"name": "python",
                                                              "version": "3.11.9"}})
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert strip(tmp_path / "n.ipynb") and not strip(tmp_path / "n.ipynb")
    assert nbformat.read(tmp_path / "n.ipynb", as_version=4).metadata.language_info == (
        PORTABLE_LANGUAGE_INFO)


def test_strip_labels_the_parameters_cell_once(tmp_path):
    from tools.strip_notebooks import LABEL, strip

    cell = nbformat.v4.new_code_cell("epochs = 5", metadata={"tags": ["parameters"]})
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), tmp_path / "n.ipynb")
    assert strip(tmp_path / "n.ipynb") and not strip(tmp_path / "n.ipynb")
    source = nbformat.read(tmp_path / "n.ipynb", as_version=4).cells[0].source
    assert source == f"{LABEL}\nepochs = 5"
