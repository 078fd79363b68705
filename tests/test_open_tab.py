"""The app's Open tab: its handlers (path policy, bad uploads) and, in a real headless browser, an uploaded
history rendered as plots and a table (Debian's chromium via Playwright; never `playwright install`)."""

import socket
from pathlib import Path

import pytest
import torch

from delora_viz.app.open_tab import NO_PATHS, adapter_view, histories_view
from delora_viz.delora.layer import add_delora
from delora_viz.instruments.history import load_history
from delora_viz.instruments.track import Tracker

ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def _history(path: Path, init: str = "peft") -> Path:
    """A DeLoRA run of 6 steps on a two-layer net, recorded by the Tracker into `path`."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    add_delora(net, ["0", "2"], r=2, delora_lambda=1.0, init=init)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.05)
    with Tracker(net, path=path).watch(opt):
        for _ in range(6):
            net(torch.randn(8, 16)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    return path


def test_histories_view_draws_runs_and_a_last_step_table(tmp_path):
    a = _history(tmp_path / "peft-init.jsonl")
    b = _history(tmp_path / "paper-init.csv", init="paper")
    status, figs, table = histories_view([str(a), str(b)])
    assert status.startswith("2 run(s): peft-init, paper-init") and "no loss" in status
    assert list(figs)[:3] == ["update_norm", "angles", "lambda"] and "heatmap_paper-init" in figs
    assert len(table) == 4 and set(table["step"]) == {6} and set(table["method"]) == {"delora", "delora-paper"}
    history = load_history(a)
    last = history[history["step"] == 6].set_index("layer")["delta_fro"]
    shown = table[table["run"] == "peft-init"].set_index("layer")["delta_fro"]
    assert shown.to_dict() == {k: float(f"{v:.4g}") for k, v in last.items()}


def test_bad_upload_says_which_file_without_its_server_folder(tmp_path):
    bad = tmp_path / "secret-folder" / "notes.csv"
    bad.parent.mkdir()
    bad.write_text("a,b\n1,2\n")
    status, figs, table = histories_view([str(bad)])
    assert "notes.csv: not a tracker history" in status and "secret-folder" not in status
    assert figs == {} and table.empty


def test_naming_an_adapter_is_refused_unless_the_path_policy_allows(tmp_path):
    status, figs, _ = adapter_view(str(tmp_path), "", allow_local_paths=False)
    assert status == NO_PATHS and figs == {}
    status, figs, _ = adapter_view(str(tmp_path), "", allow_local_paths=True)
    assert "not a PEFT adapter folder" in status and figs == {}


@pytest.mark.slow
@pytest.mark.browser
def test_open_tab_renders_an_uploaded_history_in_a_browser(tmp_path, chromium):
    import gradio as gr

    from delora_viz.app.open_tab import open_tab

    history = _history(tmp_path / "delora-run.jsonl")
    with gr.Blocks(analytics_enabled=False) as demo, gr.Tab("Open", id="open"):
        open_tab(allow_local_paths=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#open-upload")
        assert page.locator("#open-adapter").count() == 0 or not page.locator("#open-adapter").is_visible()
        page.locator("#open-upload input[type=file]").set_input_files(str(history))
        page.wait_for_function(
            "() => /1 run\\(s\\): delora-run/.test(document.querySelector('#open-status').innerText)",
            timeout=60_000,
        )
        for i in range(5):  # update_norm, angles, lambda, direction, heatmap: each drawn as an image
            page.wait_for_selector(f"#open-plot-{i} img", timeout=30_000)
        assert page.locator("#open-plot-5").count() == 0 or not page.locator("#open-plot-5").is_visible()
        page.wait_for_selector("#open-table", timeout=30_000)
        table = page.locator("#open-table").inner_text()
        assert "delora-run" in table and "delta_fro" in table and table.count("delora-run") == 2, table
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "open_tab.png"), full_page=True)
        page.close()
    finally:
        demo.close()
