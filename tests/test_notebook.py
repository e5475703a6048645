"""The Python API in a real Jupyter kernel: records display as the CLI draws them."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat", reason="the dev extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the dev extra installs nbclient")

PROMPT = "translate English to Spanish: the red house is small"

CELLS = [
    "import t5peek\nmodel = t5peek.Model('demo')\nmodel.params()",
    f"run = model.generate({PROMPT!r}, max_new_tokens=8)\nrun.output_text",
    "run",
    f"model.trace({PROMPT!r}, steps=1)",
    "import sys\n('torch' in sys.modules, type(model.info()).__name__)",
]


@pytest.mark.slow
def test_notebook_runs_and_displays_records(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [cell.outputs for cell in notebook.cells]
    params_html = outputs[0][-1]["data"]["text/html"]
    assert "1,470,976" in params_html and "<pre" in params_html
    assert "1,470,976" in outputs[0][-1]["data"]["text/plain"]
    text = outputs[1][-1]["data"]["text/plain"]
    assert "casa" in text  # the demo translates "house" to "casa"
    run_html = outputs[2][-1]["data"]["text/html"]
    assert "cross-attention" in run_html.lower()
    trace_plain = outputs[3][-1]["data"]["text/plain"]
    assert "EncDecAttention" in trace_plain or "encoder" in trace_plain
    assert "ModelInfo" in outputs[4][-1]["data"]["text/plain"]
