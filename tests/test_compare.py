"""``curator compare A B``: the JSON contract, each part on small synthetic sets (leaks, PRDC
against a brute-force reference, class shift, drift and its rule, outside support), the
leak-pair export, the one-line errors, the Compare page under AppTest, and the sandbox pair
made by ``curator download caltech101`` (loopback server, no network)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import digit_images, write_class_folders
from curator.cli import main

KEYS = {"a", "b", "leaks", "prdc", "class_shift", "class_test", "drift", "outside_support"}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> dict:
    """Digits split into A (train) and B (test); B gets an exact copy, a noisy copy under the
    same label, a shifted copy under another label, and three out-of-domain colour images."""
    from curator.analyze import AnalyzeOptions, analyze
    from curator.importers import import_project

    root = tmp_path_factory.mktemp("compare")
    images, labels = digit_images(per_class=24)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    tr, te = order[:150], order[150:]
    write_class_folders(root / "A", images[tr], labels[tr])
    write_class_folders(root / "B", images[te], labels[te])
    a_paths = sorted((root / "A").rglob("*.png"))
    src = {p.name: p for p in a_paths}
    exact, noisy, shifted = a_paths[3], a_paths[40], a_paths[90]
    shutil.copy(exact, root / "B" / exact.parent.name / "exact_copy.png")
    img = np.asarray(Image.open(noisy), np.float32)
    Image.fromarray(np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)).save(
        root / "B" / noisy.parent.name / "noisy_copy.png")
    other = str((int(shifted.parent.name) + 1) % 10)
    Image.fromarray(np.roll(np.asarray(Image.open(shifted)), 4, axis=1)).save(root / "B" / other / "shifted_relabelled.png")
    for j in range(3):
        blob = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(blob).resize((32, 32), Image.BICUBIC).save(root / "B" / str(j) / f"ood_{j}.png")
    projects = {}
    for name in ("A", "B"):
        proj = import_project(root / name, root / f"project_{name}")
        analyze(proj, AnalyzeOptions(workers=0, progress=False, projection="pca", batch_size=64))
        proj.close()
        projects[name] = root / f"project_{name}"
    return {"root": root, "a": projects["A"], "b": projects["B"], "exact": exact, "noisy": noisy, "shifted": shifted,
            "src": src}


@pytest.fixture(scope="module")
def result(splits) -> dict:
    out = cli("compare", splits["a"], splits["b"], "--json", "--top", "0")
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_json_contract(result, splits):
    assert KEYS <= set(result)
    assert result["a"] == {"name": "project_A", "items": 150, "path": str(splits["a"]), "readable": 150}
    assert result["b"]["items"] == 90 + 3 + 3 and result["b"]["name"] == "project_B"
    for row in result["leaks"]:
        assert set(row) >= {"path_a", "path_b", "label_a", "label_b", "kind", "score"}
        assert row["kind"] in ("exact_duplicate", "near_duplicate") and 0 < row["score"] <= 1
    assert set(result["prdc"]) >= {"precision", "recall", "density", "coverage", "k"} and result["prdc"]["k"] == 5
    assert all(0 <= result["prdc"][m] <= 1 for m in ("precision", "recall", "coverage"))
    assert {r["label"] for r in result["class_shift"]} == {str(i) for i in range(10)}
    assert sum(r["count_b"] for r in result["class_shift"]) == 96
    assert abs(sum(r["share_a"] for r in result["class_shift"]) - 1) < 1e-3
    assert set(result["class_test"]) >= {"statistic", "p_value"} and 0 <= result["class_test"]["p_value"] <= 1
    assert {r["metric"] for r in result["drift"]} >= {"brightness", "contrast", "sharpness", "entropy"}
    for r in result["drift"]:
        assert set(r) >= {"metric", "statistic", "p_value", "shifted"} and isinstance(r["shifted"], bool)
    assert len(result["outside_support"]) == 96  # --top 0: every readable B image
    assert all(set(r) >= {"path", "label", "score"} for r in result["outside_support"])
    scores = [r["score"] for r in result["outside_support"]]
    assert scores == sorted(scores, reverse=True)


def test_planted_leaks_found_and_worst_case_first(result, splits):
    found = {(Path(r["path_b"]).name, Path(r["path_a"]).name): r for r in result["leaks"]}
    assert found[("exact_copy.png", splits["exact"].name)]["kind"] == "exact_duplicate"
    assert found[("noisy_copy.png", splits["noisy"].name)]["kind"] == "near_duplicate"
    relabelled = found[("shifted_relabelled.png", splits["shifted"].name)]
    assert relabelled["kind"] == "near_duplicate" and relabelled["label_a"] != relabelled["label_b"]
    # the pair with differing labels is listed first; nothing else is reported
    assert Path(result["leaks"][0]["path_b"]).name == "shifted_relabelled.png"
    assert len({Path(r["path_b"]).name for r in result["leaks"]}) == 3
    assert result["leak_summary"]["labels_differ"] == 1


def test_out_of_domain_images_top_outside_support(result):
    top = [Path(r["path"]).name for r in result["outside_support"][:3]]
    assert sorted(top) == ["ood_0.png", "ood_1.png", "ood_2.png"]
    assert result["outside_support"][2]["score"] > 1


def test_nothing_drifts_between_random_halves(result):
    assert not [r["metric"] for r in result["drift"] if r["shifted"]]


def test_text_report_and_leak_export(splits, tmp_path):
    out = cli("compare", splits["a"], splits["b"], "-o", tmp_path / "leaks.parquet")
    assert out.exit_code == 0, out.output
    assert "WORST CASE: 1 leaked pair carries DIFFERENT labels" in out.output
    assert "shifted_relabelled.png" in out.output and "!! labels differ" in out.output
    assert "PRDC" in out.output and "shifted = p < 0.01 and KS statistic >= 0.1" in out.output
    assert "curator visualize" in out.output and "--compare" in out.output
    pairs = pd.read_parquet(tmp_path / "leaks.parquet")
    assert list(pairs.columns[:6]) == ["path_a", "path_b", "label_a", "label_b", "kind", "score"] and len(pairs) == 3
    out = cli("compare", splits["a"], splits["b"], "--json", "-o", tmp_path / "pairs.txt", "--format", "csv")
    assert out.exit_code == 0
    assert len(pd.read_csv(tmp_path / "pairs.txt")) == 3
    out = cli("compare", splits["a"], splits["b"], "-o", tmp_path / "pairs.xlsx")
    assert out.exit_code == 1 and "rename the output or pass --format" in out.output


def test_mismatched_embeddings_is_one_line(splits, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(splits["b"], other)
    manifest = json.loads((other / "curator.json").read_text())
    manifest["analysis"]["backbone_key"] = "resnet50@224"
    manifest["analysis"]["embedding_dim"] = 2048
    (other / "curator.json").write_text(json.dumps(manifest))
    out = cli("compare", splits["a"], other)
    assert out.exit_code == 1
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "cannot be compared" in lines[0]
    assert f"curator analyze {other} --backbone efficientnet-lite0 --resolution 96" in lines[0]


def test_unanalyzed_project_is_one_line(splits, tmp_path):
    from curator.importers import import_project

    fresh = tmp_path / "fresh"
    import_project(splits["root"] / "B", fresh).close()
    out = cli("compare", fresh, splits["b"])
    assert out.exit_code == 1 and len(out.output.strip().splitlines()) == 1
    assert f"curator analyze {fresh}" in out.output and "not analyzed" in out.output


def test_compare_a_split_with_itself_is_all_leaks(splits):
    out = cli("compare", splits["a"], splits["a"], "--json")
    res = json.loads(out.stdout)
    assert res["leak_summary"]["b_items"] == 150 and res["leak_summary"]["exact_pairs"] >= 150
    assert res["prdc"]["precision"] == 1.0 and res["prdc"]["coverage"] == 1.0
    assert not any(r["shifted"] for r in res["drift"]) and res["class_test"]["p_value"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ parts
def brute_prdc(real, fake, k):
    """The paper's definition with full distance matrices (reference for small sets only)."""
    from scipy.spatial.distance import cdist

    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_real = np.sort(rr, axis=1)[:, k]
    r_fake = np.sort(ff, axis=1)[:, k]
    inside = rf <= r_real[:, None]
    return {"precision": inside.any(axis=0).mean(), "recall": (rf <= r_fake[None, :]).any(axis=1).mean(),
            "density": inside.sum() / (k * len(fake)), "coverage": inside.any(axis=1).mean()}


@pytest.mark.parametrize("shift", [0.0, 0.08])
def test_prdc_matches_the_brute_force_definition(shift):
    from curator.neighbors import normalize
    from curator.prdc import prdc

    rng = np.random.default_rng(1)
    real = normalize(rng.normal(size=(700, 16)) + 3)
    fake = normalize(rng.normal(size=(400, 16)) + 3 + shift * rng.normal(size=16) * 10)
    got, want = prdc(real, fake, 5), brute_prdc(real, fake, 5)
    for key in ("precision", "recall", "density", "coverage"):
        assert got[key] == pytest.approx(want[key], abs=2e-3), key
    if shift:
        assert got["precision"] < 0.6 and got["coverage"] < 0.6
    else:
        assert got["precision"] > 0.6 and 0.7 < got["density"] < 1.3


def test_drift_rule_needs_significance_and_size():
    from curator.shift import drift

    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.1, 60_000)
    tiny = rng.normal(0.503, 0.1, 60_000)  # significant at this size, but a small effect
    big = np.concatenate([rng.normal(0.5, 0.1, 2000), rng.normal(0.65, 0.1, 1000)])  # a third brightened
    rows = {r["metric"]: r for r in drift(pd.DataFrame({"m": base}), pd.DataFrame({"m": tiny}), ["m"])}
    assert rows["m"]["p_value"] < 0.01 and rows["m"]["statistic"] < 0.1 and not rows["m"]["shifted"]
    rows = {r["metric"]: r for r in drift(pd.DataFrame({"m": base}), pd.DataFrame({"m": big}), ["m"])}
    assert rows["m"]["shifted"] and rows["m"]["statistic"] > 0.2
    few = {r["metric"]: r for r in drift(pd.DataFrame({"m": base[:30]}), pd.DataFrame({"m": base[:30] + 0.03}), ["m"])}
    assert not few["m"]["shifted"]  # a large gap on 30 images is not significant


def test_class_shift_names_classes_of_one_split():
    from curator.shift import class_shift

    a = pd.Series(["cat"] * 50 + ["dog"] * 50 + ["emu"] * 5)
    b = pd.Series(["cat"] * 80 + ["dog"] * 20 + ["fox"] * 5 + [None] * 3)
    rows, test = class_shift(a, b)
    assert [r["label"] for r in rows] == ["cat", "dog", "emu", "fox"]
    assert rows[0] == {"label": "cat", "count_a": 50, "count_b": 80, "share_a": 0.4762, "share_b": 0.7619}
    assert test["only_in_a"] == ["emu"] and test["only_in_b"] == ["fox"] and test["p_value"] < 1e-4
    rows, test = class_shift(a, a)
    assert test["p_value"] == pytest.approx(1.0) and not test["only_in_a"]


# ------------------------------------------------------------------------------------ page
def test_compare_page(splits, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from curator.explorer import APP_PATH, page_path

    monkeypatch.setenv("CURATOR_PROJECT", str(splits["a"]))
    monkeypatch.setenv("CURATOR_COMPARE", str(splits["b"]))
    at = AppTest.from_file(str(APP_PATH), default_timeout=180)
    at.run()
    at.switch_page(os.path.relpath(page_path("compare"), APP_PATH.parent))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Leaked B images"] == "3" and metrics["Labels differ"] == "1" and metrics["Shifted metrics"] == "0"
    text = "\n".join(m.value for m in at.markdown)
    assert "**3** leaked pairs (1 exact, 2 near)" in text and ":red[**labels differ**]" in text
    html = "\n".join(h.value for h in at.html)
    assert "shifted_relabelled.png" in html and "ood_" in html  # pairs side by side; outside-support grid
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")
              if "title" in json.loads(c.proto.spec)["layout"]]
    assert any(t.startswith("Brightness: KS") for t in titles)
    # the joint map only once asked for, then coloured by split or class
    assert not [c for c in at.get("plotly_chart") if '"scattergl"' in c.proto.spec]
    at.segmented_control(key="cmp_method").set_value("PCA")
    at.button(key="cmp_draw_map").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    maps = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if '"scattergl"' in c.proto.spec]
    assert len(maps) == 1 and len(maps[0]["data"]) == 2
    assert [t["name"] for t in maps[0]["data"]] == ["A: project_A (150)", "B: project_B (96)"]
    at.segmented_control(key="cmp_colour").set_value("Class")
    at.run()
    maps = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if '"scattergl"' in c.proto.spec]
    assert len(maps[0]["data"]) == 10


def test_compare_page_not_registered_without_second_project(splits, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from curator.explorer import APP_PATH, ui

    monkeypatch.setenv("CURATOR_PROJECT", str(splits["a"]))
    monkeypatch.delenv("CURATOR_COMPARE", raising=False)
    at = AppTest.from_file(str(APP_PATH), default_timeout=120)
    at.run()
    assert not at.exception and "compare" not in ui.PAGES


def test_visualize_compare_checks_embeddings_first(splits, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(splits["b"], other)
    manifest = json.loads((other / "curator.json").read_text())
    manifest["analysis"]["backbone_key"] = "resnet50@224"
    (other / "curator.json").write_text(json.dumps(manifest))
    out = cli("visualize", splits["a"], "--compare", other)
    assert out.exit_code == 1 and "cannot be compared" in out.output


# ------------------------------------------------------------------------------------ sandbox
@pytest.mark.slow  # 18-34 s on a busy 2-core machine (two analyses)
def test_caltech101_sandbox_pair_compares(monkeypatch, tmp_path):
    """``curator download caltech101`` then ``curator compare caltech101-train caltech101-test``."""
    import test_download as td

    srv = td._Server()
    import threading

    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.setenv("CURATOR_MIRROR", srv.url)
        monkeypatch.delenv("CURATOR_CACHE", raising=False)
        monkeypatch.setenv("CURATOR_TIMEOUT", "10")
        td.publish(srv, monkeypatch, td.caltech101, "caltech101", {"caltech-101.zip": td.caltech_zip(td.CALTECH_CLASSES)})
        assert cli("download", "caltech101", "--dir", tmp_path).exit_code == 0
    finally:
        srv.shutdown()
        srv.server_close()
    train, test = tmp_path / "caltech101-train", tmp_path / "caltech101-test"
    out = cli("compare", train, test)
    assert out.exit_code == 1 and f"curator analyze {train}" in out.output  # not analyzed yet: says what to run
    for p in (train, test):
        assert cli("analyze", p, "-q", "--projection", "pca").exit_code == 0
    out = cli("compare", train, test, "--json")
    assert out.exit_code == 0, out.output
    res = json.loads(out.stdout)
    assert res["a"]["items"] + res["b"]["items"] == 66 and res["a"]["items"] > res["b"]["items"]
    assert res["leaks"] == []  # every fixture image is different noise
    assert {r["label"] for r in res["class_shift"]} == {"accordion", "ant", "Faces_easy", "yin_yang"}
    assert res["class_test"]["p_value"] > 0.9  # a stratified split keeps the class shares
    monkeypatch.chdir(tmp_path)
    out = cli("compare", "caltech101-train", "caltech101-test")
    assert out.exit_code == 0 and "LEAKS  0 of caltech101-test's images" in out.output



def test_visualize_compare_passes_the_second_project_to_the_server(splits, monkeypatch):
    """The CLI checks both projects, then serves A with B as the comparison."""
    from curator.explorer import server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda root, port, *, echo, name, compare=None: seen.update(
        root=root, compare=compare) or 0)
    out = cli("visualize", splits["a"], "--compare", splits["b"])
    assert out.exit_code == 0, out.output
    assert seen == {"root": splits["a"], "compare": splits["b"]}


def test_server_child_gets_the_comparison_in_its_environment(splits, monkeypatch):
    from curator.explorer import server

    envs = []

    class Child:  # stands in for the Streamlit child process
        returncode = 0

        def __init__(self, cmd, env, **kwargs):
            envs.append(env)

        def poll(self):
            return 0

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(server.subprocess, "Popen", Child)
    monkeypatch.setattr(server, "wait_ready", lambda proc, url: None)
    monkeypatch.setenv("CURATOR_COMPARE", "/left/over/from/a/shell")
    assert server.serve(splits["a"], echo=lambda m: None, compare=splits["b"]) == 0
    assert envs[-1]["CURATOR_COMPARE"] == str(splits["b"]) and envs[-1]["CURATOR_PROJECT"] == str(splits["a"])
    assert server.serve(splits["a"], echo=lambda m: None) == 0
    assert "CURATOR_COMPARE" not in envs[-1]  # a plain visualize shows no Compare page
