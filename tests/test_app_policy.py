"""Server files stay private when the app serves others; the Hub is capped (a mocked Hub, no network)."""

import json
import types
import zipfile
from pathlib import Path

import pytest

from delora_viz.app import handlers, policy
from delora_viz.app.policy import NO_SERVER_DATA, NO_SERVER_PATHS, Policy, is_loopback, parse_auth
from delora_viz.app.session import UiSession
from delora_viz.app.settings import DEFAULTS, SETTINGS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")
SERVED = Policy.for_launch("0.0.0.0", share=False)


def _values(**overrides):
    small = dict(max_steps=2, batch_size=4, max_length=16, eval_every=2, eval_examples=8)
    s = DEFAULTS | small | overrides
    return [s[k] for k in SETTINGS]


def _status(**overrides) -> str:
    return list(handlers.compare(UiSession(), ["lora"], *_values(**overrides)))[-1][0]


class FakeHub:
    """model_info / snapshot_download like huggingface_hub.HfApi, with what each call asked for."""

    def __init__(self, sizes: dict, folder: str | None = None):
        self.sizes, self.folder, self.downloads = sizes, folder, []

    def model_info(self, repo_id, files_metadata=False):
        if repo_id not in self.sizes:
            raise RuntimeError(f"404 {repo_id}")
        files = [("model.safetensors", self.sizes[repo_id]), ("config.json", 700), ("pytorch_model.bin", 10**12)]
        return types.SimpleNamespace(siblings=[types.SimpleNamespace(rfilename=n, size=b) for n, b in files])

    def snapshot_download(self, repo_id, allow_patterns=None):
        self.downloads.append((repo_id, allow_patterns))
        return self.folder


def test_loopback_is_local_and_anything_else_is_served():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and not is_loopback("0.0.0.0")
    local = Policy.for_launch("127.0.0.1", share=False)
    assert not local.served and local.local_paths
    assert Policy.for_launch("127.0.0.1", share=True).served  # --share: the world can reach it
    assert SERVED.served and not SERVED.local_paths and SERVED.hub
    assert Policy.for_launch("0.0.0.0", False, allow_local_paths=True).local_paths


@pytest.mark.parametrize("box", ["model_path", "data"])
def test_served_server_paths_get_one_message_whether_or_not_they_exist(box, tmp_path, monkeypatch):
    monkeypatch.setattr(handlers, "POLICY", SERVED)
    secret = tmp_path / "secret.csv"
    secret.write_text("password,label\nhunter2,1\n")
    monkeypatch.setattr(policy, "hub_api", lambda: FakeHub({}))
    monkeypatch.setattr(policy, "stream_hub_rows", lambda *a: (_ for _ in ()).throw(RuntimeError("offline")))
    messages = {
        path: _status(**{box: path})
        for path in ("/etc/passwd", "/etc/no-such-file", str(secret), str(tmp_path), "../../etc", "~/.ssh/id_rsa")
    }
    expected = NO_SERVER_PATHS if box == "model_path" else NO_SERVER_DATA
    assert set(messages.values()) == {f"⚠️ {expected}"}, messages
    assert not any("hunter2" in m or "password" in m for m in messages.values())


def test_a_relative_name_that_exists_on_the_server_reads_like_a_missing_hub_dataset(monkeypatch, tmp_path):
    monkeypatch.setattr(handlers, "POLICY", SERVED)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "data.csv").write_text("text,label\nsecret,1\n")

    def like_datasets(name, config, split, rows):  # datasets.load_dataset reads a local folder of that name
        if Path(name).exists():
            return [{"text": "secret", "label": i % 2} for i in range(rows)]
        raise FileNotFoundError(name)

    monkeypatch.setattr(policy, "stream_hub_rows", like_datasets)
    here, missing = _status(data="private"), _status(data="nobody/missing")
    assert "could not be streamed" in here and here.replace("private", "X") == missing.replace("nobody/missing", "X")


def test_served_hub_models_are_size_capped_before_any_download(monkeypatch, tiny_bert_dir):
    hub = FakeHub({"big/model": 3 * 2**30, "tiny/bert": 2**20}, folder=tiny_bert_dir)
    monkeypatch.setattr(policy, "hub_api", lambda: hub)
    capped = Policy.for_launch("0.0.0.0", False, limit_model_mb=1024)
    with pytest.raises(ValueError, match="'big/model' is 3072 MB; this server downloads at most 1024 MB"):
        policy.resolve_model("big/model", capped)
    assert hub.downloads == []  # refused before downloading anything (the .bin pickle is not counted)
    with pytest.raises(ValueError, match="not found on the Hugging Face Hub"):
        policy.resolve_model("nobody/nothing", capped)
    assert policy.resolve_model("tiny/bert", capped) == (tiny_bert_dir, "tiny/bert")
    assert hub.downloads == [("tiny/bert", policy.MODEL_FILES)]
    with pytest.raises(ValueError, match="downloads no models"):
        policy.resolve_model("tiny/bert", Policy.for_launch("0.0.0.0", False, hub=False))
    assert policy.resolve_model("minilm", capped) == ("minilm", "sentence-transformers/all-MiniLM-L6-v2")


def test_served_hub_datasets_are_streamed_up_to_the_row_cap(monkeypatch, tmp_path):
    asked = []

    def fake_stream(name, config, split, rows):
        asked.append((name, config, split, rows))
        return [{"text": f"t{i}", "label": i % 2} for i in range(rows)]

    monkeypatch.setattr(policy, "stream_hub_rows", fake_stream)
    capped = Policy.for_launch("0.0.0.0", False, limit_hub_rows=50)
    path = policy.resolve_dataset("org/data:plain@test", capped, tmp_path)
    assert asked == [("org/data", "plain", "test", 50)] and len(Path(path).read_text().splitlines()) == 50
    assert policy.resolve_dataset("bbc-news", capped, tmp_path) == "bbc-news"  # embedded: no download
    with pytest.raises(ValueError, match="downloads no datasets"):
        policy.resolve_dataset("org/data", Policy.for_launch("0.0.0.0", False, hub=False), tmp_path)
    local = Policy.for_launch("127.0.0.1", False)
    assert policy.resolve_dataset("/some/file.csv", local, tmp_path) == "/some/file.csv"  # local: as today


@pytest.mark.slow  # trains twice, 2 steps
def test_served_adapters_name_the_hub_id_not_a_server_folder(monkeypatch, tiny_bert_dir, text_files):
    monkeypatch.setattr(handlers, "POLICY", SERVED)
    monkeypatch.setattr(policy, "hub_api", lambda: FakeHub({"tiny/bert": 2**20}, folder=tiny_bert_dir))
    outputs = list(handlers.compare(UiSession(), ["lora"], *_values(model_path="tiny/bert", upload=text_files["csv"])))
    status, files = outputs[-1][0], outputs[-1][8]
    assert status.startswith("finished"), status
    with zipfile.ZipFile(next(f for f in files if f.endswith("_adapters.zip"))) as z:
        config = json.loads(z.read("lora/adapter_config.json"))
    assert config["base_model_name_or_path"] == "tiny/bert" and tiny_bert_dir not in json.dumps(config)


def test_auth_from_a_pair_or_a_file(tmp_path):
    assert parse_auth("ada:lovelace") == [("ada", "lovelace")] and parse_auth(None) is None
    f = tmp_path / "users"
    f.write_text("# who may train\nada:lovelace\nalan:turing:42\n")
    assert parse_auth(str(f)) == [("ada", "lovelace"), ("alan", "turing:42")]
    with pytest.raises(ValueError, match="USER:PASS"):
        parse_auth("nopassword")


def test_serving_beyond_loopback_without_auth_warns_loudly(monkeypatch, capsys):
    from delora_viz.app import serve

    launched = []
    demo = types.SimpleNamespace(launch=lambda **kw: launched.append(kw))
    monkeypatch.setattr(handlers.SESSIONS, "start_reaper", lambda: None)
    monkeypatch.setattr(handlers, "POLICY", handlers.POLICY)  # restored after the test
    serve.launch(demo, host="0.0.0.0")
    assert "WITHOUT a password" in capsys.readouterr().err and handlers.POLICY.served
    serve.launch(demo, host="0.0.0.0", auth=[("ada", "lovelace")])
    assert "WITHOUT" not in capsys.readouterr().err and launched[-1]["auth"] == [("ada", "lovelace")]
    serve.launch(demo, host="127.0.0.1")
    assert "WITHOUT" not in capsys.readouterr().err and not handlers.POLICY.served
