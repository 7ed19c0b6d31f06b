"""The package, the selection point, the activation registry and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import crewai_rust
from crewai_rust import _cpu, _selection
from crewai_rust._patcher import Patcher


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, check=False)


def test_import_is_cheap() -> None:
    code = (
        "import sys, json, crewai_rust;"
        "print(json.dumps({m: m in sys.modules for m in "
        "('crewai', 'numpy', 'crewai_rust._speedups', 'orjson', 'sqlite3')}))"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert loaded == {m: False for m in loaded}, loaded


def test_public_api_is_small_and_complete() -> None:
    assert crewai_rust.__version__.count(".") == 2
    for name in crewai_rust.__all__:
        assert hasattr(crewai_rust, name), name
    with pytest.raises(AttributeError):
        crewai_rust.NoSuchThing  # noqa: B018


def test_forcing_pure_python_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_PUREPYTHON", "1")
    assert crewai_rust.speedups_enabled() is False
    info = crewai_rust.build_info()
    assert info["speedups_enabled"] is False
    assert "CREWAI_RUST_PUREPYTHON" in info["reason"]
    assert _selection.use_rust(None) is False
    with pytest.raises(RuntimeError, match="CREWAI_RUST_PUREPYTHON"):
        _selection.use_rust(True)


def test_bad_flag_spelling_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_PUREPYTHON", "maybe")
    with pytest.raises(ValueError, match="CREWAI_RUST_PUREPYTHON"):
        crewai_rust.speedups_enabled()


def test_build_info_reports_the_compiled_module(speedups: types.ModuleType) -> None:
    info = crewai_rust.build_info()
    assert info["speedups_found"] is True
    assert info["speedups_enabled"] is True
    assert info["speedups_version"] == crewai_rust.__version__
    assert info["profile"] in {"release", "debug"}
    assert info["reason"] is None


def test_build_matches_expectation() -> None:
    """CREWAI_RUST_BUILD=1 envs must have the module; the nocargo env must not."""
    expected = os.environ.get("CREWAI_RUST_EXPECT_SPEEDUPS")
    if expected is None and os.environ.get("CREWAI_RUST_BUILD") == "1":
        expected = "1"
    if expected is None:
        pytest.skip("no build expectation set for this environment")
    assert crewai_rust.build_info()["speedups_found"] is (expected == "1"), crewai_rust.build_info()


def test_cpu_features_twins_agree(speedups: types.ModuleType) -> None:
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("the python twin reads /proc/cpuinfo")
    assert speedups.cpu_features() == _cpu.cpu_features()


def test_cpu_features_without_cpuinfo(tmp_path: os.PathLike[str]) -> None:
    assert _cpu.cpu_features(tmp_path / "absent") == []  # type: ignore[operator]
    fake = tmp_path / "cpuinfo"  # type: ignore[operator]
    fake.write_text("processor : 0\nflags : fpu sse4_1 avx2 fma\n\nflags : avx512f\n")
    assert _cpu.cpu_features(fake) == ["avx2", "fma", "sse4.1"]


def test_describe_cpu_names_the_model_every_avx512_subset_and_the_last_level_cache(tmp_path: Path) -> None:
    """Two "Intel(R) Xeon(R) Processor" machines differed by 105 MB against 480 MB of L3 and by
    AVX-512 FP16: a benchmark's machine block must tell them apart."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Some Xeon\nflags\t\t: fpu avx2 fma f16c avx512f avx512_fp16 sse4_1\n"
                       "model name\t: Some Xeon\nflags\t\t: fpu\n")
    cache = tmp_path / "cache"
    for index, level, size in (("index0", 1, "48K"), ("index2", 2, "2048K"), ("index3", 3, "107520K")):
        (cache / index).mkdir(parents=True)
        (cache / index / "level").write_text(f"{level}\n")
        (cache / index / "size").write_text(f"{size}\n")
    described = _cpu.describe_cpu(cpuinfo, cache)
    assert described == {"model": "Some Xeon", "simd": ["avx2", "avx512_fp16", "avx512f", "f16c", "fma"],
                         "l3_bytes": 107520 * 1024}
    assert _cpu.describe_cpu(tmp_path / "absent", tmp_path / "absent") == {"model": "unknown", "simd": [],
                                                                           "l3_bytes": None}


# -- the patcher: exact restoration ------------------------------------------------


class _Base:
    def inherited(self) -> str:
        return "base"


class _Target(_Base):
    def own(self) -> str:
        return "own"


def test_patcher_restores_by_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("crewai_rust_fake_target")
    module.function = lambda: "original"  # type: ignore[attr-defined]
    module.Target = _Target  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    original_function = module.function  # type: ignore[attr-defined]
    original_own = vars(_Target)["own"]

    patcher = Patcher("TEST")
    assert patcher.replace(module.__name__, "function", lambda: "new") is original_function
    patcher.replace(f"{module.__name__}:Target", "own", lambda self: "new own")
    patcher.replace(f"{module.__name__}:Target", "inherited", lambda self: "new inherited")
    assert module.function() == "new"  # type: ignore[attr-defined]
    assert _Target().inherited() == "new inherited"
    assert len(patcher.patched) == 3

    assert patcher.undo_all() == []
    assert module.function is original_function  # type: ignore[attr-defined]
    assert vars(_Target)["own"] is original_own
    assert "inherited" not in vars(_Target), "an inherited attribute must not become an own one"
    assert _Target().inherited() == "base"


def test_patcher_reports_missing_targets(caplog: pytest.LogCaptureFixture) -> None:
    patcher = Patcher("TEST")
    with caplog.at_level("WARNING", logger="crewai_rust"):
        assert patcher.replace("crewai_rust_no_such_module", "x", 1) is None
        assert patcher.replace("crewai_rust._version", "no_such_attr", 1) is None
        assert patcher.resolve("crewai_rust:_no_such.path") is None
    assert [m.target for m in patcher.missing] == [
        "crewai_rust_no_such_module:x",
        "crewai_rust._version:no_such_attr",
        "crewai_rust:_no_such.path",
    ]
    assert len([r for r in caplog.records if "not found" in r.getMessage()]) == 3
    assert patcher.patched == []


def test_patcher_setter_restores_previous_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("crewai_rust_fake_seam")
    module._factory = "user's own factory"  # type: ignore[attr-defined]

    def set_factory(value: object) -> None:
        module._factory = value  # type: ignore[attr-defined]

    module.set_factory = set_factory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    patcher = Patcher("TEST")
    assert patcher.use_setter(f"{module.__name__}:set_factory", f"{module.__name__}:_factory", "ours")
    assert module._factory == "ours"  # type: ignore[attr-defined]
    patcher.undo_all()
    assert module._factory == "user's own factory"  # type: ignore[attr-defined]


# -- the registry ----------------------------------------------------------------


def test_disable_env_makes_patch_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREWAI_RUST_DISABLE", "1")
    state = crewai_rust.patch()
    assert "CREWAI_RUST_DISABLE" in state["disabled"]
    assert not any(c["enabled"] for c in state["components"].values())


def test_component_switch_turns_one_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MEMORY", "TOOLS", "TASKS", "DATABASE", "SERIALIZATION", "RUNTIME"):
        monkeypatch.setenv(f"CREWAI_RUST_{name}", "0")
    state = crewai_rust.patch()
    for comp in state["components"].values():
        assert comp["enabled"] is False
        assert comp["disabled_reason"].startswith("CREWAI_RUST_")


def test_unknown_component_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown component"):
        crewai_rust.patch("warp_drive")
    with pytest.raises(TypeError, match="unknown component"):
        crewai_rust.patch(warp_drive={"speed": 9})


def test_status_cli_prints_build_and_components() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crewai_rust", "status", "--json", "--no-patch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["build_info"]["package_version"] == crewai_rust.__version__
    assert set(data["status"]["components"]) == {"MEMORY", "TOOLS", "TASKS", "DATABASE", "SERIALIZATION", "RUNTIME"}
