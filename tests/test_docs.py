"""The documentation runs as written: README.md and docs/*.md.

* Every shell command of a fenced ``bash`` / ``sh`` / ``shell`` block (each non-comment line,
  ``\\`` continuations joined) or ``console`` block (lines starting with ``$ ``) is checked:
  ``python X.py ...`` and ``python -m src.tools.Y ...`` are parsed by the entry point's own
  ``parse_args(argv)`` (tools that only have ``main(argv)``: every ``--option`` used must appear
  in their ``--help``), so an unknown or misspelt flag fails; ``KEY=VALUE`` overrides must be
  dotted keys, and with a config file that exists they must load against its schema;
  ``bash scripts/*.sh`` must name an existing script, and the words the script forwards to
  ``train.py`` / ``eval.py`` are parsed the same way; ``pip install -r FILE`` needs FILE.
* A short allow-list of cheap commands is run end to end (placeholders substituted) and must
  exit 0.
* README.md is at most 12 KiB; every relative link (and its #anchor) resolves.
* The model-zoo tables agree with the code's parameter and FLOP counts.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import mindspore  # noqa: F401  (before anything that imports decord)
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from src.config import load_config  # noqa: E402
from src.errors import UserError  # noqa: E402

README = ROOT / "README.md"
DOC_FILES = [README] + sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 12 * 1024
SHELL_LANGS = {"bash", "sh", "shell"}
FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")
OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")
ENV_ASSIGN = re.compile(r"^[A-Z_][A-Z0-9_]*=")


# ----------------------------------------------------------------------------- extraction
def fenced_blocks(text: str) -> List[Tuple[str, int, List[str]]]:
    """``(language, first line number, lines)`` of every fenced block."""
    blocks, lang, start, body = [], None, 0, []
    for no, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if lang is None:
            if m:
                lang, start, body = m.group(1).lower(), no + 1, []
        elif m and not m.group(1):
            blocks.append((lang, start, body))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"unclosed code fence opened before line {start}"
    return blocks


def _join_continuations(lines: List[Tuple[int, str]]) -> List[Tuple[int, str]]:
    out: List[Tuple[int, str]] = []
    pending: Optional[Tuple[int, str]] = None
    for no, line in lines:
        if pending is not None:
            no, line = pending[0], pending[1] + " " + line.strip()
            pending = None
        if line.rstrip().endswith("\\"):
            pending = (no, line.rstrip()[:-1].rstrip())
            continue
        out.append((no, line.strip()))
    assert pending is None, f"line {pending[0]}: continuation '\\' at the end of a block"
    return out


def shell_commands(text: str) -> List[Tuple[int, str]]:
    """``(line number, command)`` of every command in the shell/console blocks of ``text``."""
    found: List[Tuple[int, str]] = []
    for lang, start, body in fenced_blocks(text):
        numbered = list(enumerate(body, start))
        if lang in SHELL_LANGS:
            lines = [(no, ln) for no, ln in numbered]
            cmds = _join_continuations(lines)
        elif lang == "console":
            lines, inside = [], False
            for no, ln in numbered:
                if ln.startswith("$ "):
                    lines.append((no, ln[2:]))
                    inside = ln.rstrip().endswith("\\")
                elif inside:
                    lines.append((no, ln))
                    inside = ln.rstrip().endswith("\\")
            cmds = _join_continuations(lines)
        else:
            continue
        for no, cmd in cmds:
            if cmd and not cmd.startswith("#"):
                found.append((no, cmd))
    return found


def all_commands() -> List[Tuple[str, str]]:
    out = []
    for path in DOC_FILES:
        for no, cmd in shell_commands(path.read_text(encoding="utf-8")):
            out.append((f"{path.relative_to(ROOT)}:{no}", cmd))
    return out


COMMANDS = all_commands()


def split_command(cmd: str) -> List[str]:
    """Words of a command; leading ``NAME=value`` environment assignments dropped."""
    words = shlex.split(cmd, comments=True)
    while words and ENV_ASSIGN.match(words[0]):
        words.pop(0)
    return words


# ----------------------------------------------------------------------------- parse checks
@lru_cache(maxsize=None)
def entry_module(target: str):
    """``train.py`` (a file at the repository root) or ``src.tools.x`` (a module)."""
    if target.endswith(".py"):
        path = ROOT / target
        assert path.is_file(), f"{target}: no such file"
        spec = importlib.util.spec_from_file_location(f"_docs_entry_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def _option_value(argv: List[str], name: str) -> Optional[str]:
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def check_overrides(where: str, overrides: List[str], config: Optional[str]) -> None:
    bad = [o for o in overrides if not OVERRIDE.match(o)]
    assert not bad, f"{where}: not dotted KEY=VALUE overrides: {bad}"
    if config and (ROOT / config).is_file():
        try:
            load_config(str(ROOT / config), overrides)
        except UserError as e:
            pytest.fail(f"{where}: config {config} with {overrides} does not load: {e}")


def parse_entry(where: str, target: str, argv: List[str]) -> None:
    """Parse ``argv`` the way ``python target argv`` would, without running it."""
    module = entry_module(target)
    if "--help" in argv or "-h" in argv:
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
            (module.parse_args if hasattr(module, "parse_args") else module.main)(list(argv))
        assert exc.value.code in (0, None), f"{where}: {target} {argv} exited {exc.value.code}"
        return
    if hasattr(module, "parse_args"):
        try:
            args = module.parse_args(list(argv))
        except SystemExit as e:
            pytest.fail(f"{where}: {target} rejects its arguments {argv} (exit {e.code})")
        except UserError as e:
            pytest.fail(f"{where}: {target} rejects its arguments {argv}: {e}")
        overrides = list(getattr(args, "overrides", None) or []) + list(getattr(args, "extra_overrides", None) or [])
        check_overrides(where, overrides, getattr(args, "config", None))
        return
    # no parse_args: every option used must be one the tool's --help lists
    assert hasattr(module, "main"), f"{where}: {target} has neither parse_args nor main"
    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code in (0, None), f"{where}: {target} --help exited {exc.value.code}"
    help_text = text.getvalue()
    for word in argv:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), \
                f"{where}: {target} has no option {flag} (see its --help)"
    check_overrides(where, [w for w in argv if OVERRIDE.match(w) and not w.startswith("-")],
                    _option_value(argv, "--config"))


def _script_forward(script: str, args: List[str]) -> Optional[Tuple[str, List[str]]]:
    """What ``bash script args`` runs: (entry point, its argv), as the script builds it."""
    if script == "scripts/train_standalone.sh":
        if not args:
            return None  # the demo: fixed commands inside the script
        assert len(args) >= 2, "train_standalone.sh takes no arguments or CONFIG DATA_PATH [...]"
        return "train.py", ["--config", args[0], f"data_loader.train.dataset.root={args[1]}",
                            f"data_loader.eval.dataset.root={args[1]}", *args[2:]]
    if script == "scripts/train_distribute.sh":
        assert len(args) >= 2, "train_distribute.sh takes CONFIG DATA_PATH [NUM_WORKERS] [...]"
        rest = args[2:]
        if rest and rest[0].isdigit():
            rest = rest[1:]
        return "train.py", ["--config", args[0], f"data_loader.train.dataset.root={args[1]}",
                            f"data_loader.eval.dataset.root={args[1]}", *rest]
    if script == "scripts/eval_standalone.sh":
        assert len(args) >= 3, "eval_standalone.sh takes CONFIG DATA_PATH CKPT [...]"
        return "eval.py", ["--config", args[0], "--ckpt", args[2],
                           f"data_loader.eval.dataset.root={args[1]}", *args[3:]]
    return None


def check_command(where: str, cmd: str) -> None:
    words = split_command(cmd)
    assert words, f"{where}: empty command"
    odd = [w for w in words if w.startswith(("[", "(")) or "|" in w or w in (";", "&&", ">", "<")]
    assert not odd, (f"{where}: {odd} - write one runnable command per line in shell blocks "
                     f"(put usage synopses in a plain ``` block)")
    prog, args = words[0], words[1:]
    if prog in ("python", "python3") and args[:2] == ["-m", "pip"]:
        prog, args = "pip", args[2:]
    if prog == "pip":
        assert args and args[0] == "install", f"{where}: only 'pip install' is expected, got {cmd!r}"
        for i, word in enumerate(args):
            if word in ("-r", "--requirement"):
                assert (ROOT / args[i + 1]).is_file(), f"{where}: no requirements file {args[i + 1]}"
            if word in ("-e", "--editable"):
                target = ROOT / args[i + 1]
                assert (target / "pyproject.toml").is_file() or (target / "setup.py").is_file(), \
                    f"{where}: 'pip install -e {args[i + 1]}' needs a pyproject.toml there"
        return
    if prog in ("python", "python3"):
        assert args, f"{where}: bare python"
        if args[:2] == ["-m", "pytest"]:
            for word in args[2:]:
                if not word.startswith("-"):
                    assert (ROOT / word.split("::")[0]).exists(), f"{where}: no test path {word}"
            return
        if args[0] == "-m":
            assert len(args) > 1 and args[1].startswith("src."), f"{where}: unexpected module in {cmd!r}"
            parse_entry(where, args[1], args[2:])
            return
        assert args[0].endswith(".py"), f"{where}: unexpected python invocation {cmd!r}"
        parse_entry(where, args[0], args[1:])
        return
    if prog == "bash":
        assert args, f"{where}: bare bash"
        script = args[0]
        assert (ROOT / script).is_file(), f"{where}: no script {script}"
        forwarded = _script_forward(script, args[1:])
        if forwarded:
            parse_entry(where, *forwarded)
        return
    pytest.fail(f"{where}: unknown command {prog!r} in {cmd!r} (expected python, bash or pip)")


def test_docs_have_commands():
    """The extraction finds the README's user commands (guards against a broken extractor)."""
    readme = [cmd for where, cmd in COMMANDS if where.startswith("README.md:")]
    for expected in ("bash scripts/train_standalone.sh", "python -m pytest -q -n2 --dist=loadfile tests",
                     "pip install -r requirements.txt"):
        assert expected in readme, f"README.md: command {expected!r} not found among {readme}"
    assert any(c.startswith("bash scripts/train_distribute.sh ") for c in readme)
    assert any(c.startswith("bash scripts/eval_standalone.sh ") for c in readme)
    assert any(c.startswith("python infer.py ") for c in readme)


@pytest.mark.parametrize("where,cmd", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_parses(where, cmd):
    check_command(where, cmd)


def test_extractor_handles_console_continuations_and_comments():
    text = ("```console\n$ python train.py --config a.yaml \\\n    --device CPU\noutput line\n"
            "$ bash scripts/x.sh\n```\n```bash\n# a comment\npython -m src.tools.y --a 1  # trailing\n```\n"
            "```\nnot a command\n```\n")
    got = [c for _, c in shell_commands(text)]
    assert got == ["python train.py --config a.yaml --device CPU", "bash scripts/x.sh",
                   "python -m src.tools.y --a 1  # trailing"]
    assert split_command(got[2]) == ["python", "-m", "src.tools.y", "--a", "1"]
    assert split_command("DEMO_DATA=/tmp/d bash scripts/x.sh") == ["bash", "scripts/x.sh"]


def test_unknown_option_is_caught():
    """The parse check fails for a misspelt flag (a check that cannot fail would be useless)."""
    with pytest.raises(pytest.fail.Exception):
        check_command("t", "python train.py --config src/config/x3d_xs.yaml --outptu DIR")
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check_command("t", "python -m src.tools.model_info --config src/config/x3d_xs.yaml --crops 182")
    with pytest.raises(AssertionError):
        check_command("t", "python -m src.tools.model_info --config src/config/x3d_xs.yaml [--crop 182]")


# ----------------------------------------------------------------------------- end to end
# Cheap commands that are run for real; any command with --help is run too.
RUN_PREFIXES = ("python -m src.tools.model_info ", "python -m src.tools.build_list ")


def _sandbox(tmp_path: Path) -> Path:
    """A working directory that sees the repository (symlinks), so run-time litter stays out of it."""
    work = tmp_path / "work"
    work.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "output", "demo_data"):
            (work / entry.name).symlink_to(entry)
    return work


def _substitute(words: List[str], tmp_path: Path) -> List[str]:
    data = tmp_path / "videos"
    for cls in ("cat", "dog"):
        (data / cls).mkdir(parents=True, exist_ok=True)
        (data / cls / "a.mp4").write_bytes(b"")
    values: Dict[str, str] = {"DATA_DIR": str(data), "OUT.txt": str(tmp_path / "lists" / "out.txt")}
    return [values.get(w, w) for w in words]


def _run_list() -> List[Tuple[str, str]]:
    seen, out = set(), []
    for where, cmd in COMMANDS:
        key = " ".join(split_command(cmd))
        if key not in seen and (cmd.startswith(RUN_PREFIXES) or "--help" in split_command(cmd)):
            seen.add(key)
            out.append((where, cmd))
    return out


RUN = _run_list()  # each distinct command once


def test_run_list_not_empty():
    assert any(c.startswith("python -m src.tools.model_info ") for _, c in RUN)


@pytest.mark.parametrize("where,cmd", RUN, ids=[w for w, _ in RUN])
def test_command_runs(where, cmd, tmp_path):
    words = _substitute(split_command(cmd), tmp_path)
    assert words[0] in ("python", "python3")
    proc = subprocess.run([sys.executable, *words[1:]], cwd=_sandbox(tmp_path), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{where}: {cmd!r} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    if "src.tools.build_list" in cmd:
        lines = (tmp_path / "lists" / "out.txt").read_text().splitlines()
        assert lines == ["../videos/cat/a.mp4 0", "../videos/dog/a.mp4 1"]
    if "src.tools.model_info" in cmd:
        assert re.search(r"^params: \d+$", proc.stdout, re.M), proc.stdout


# ----------------------------------------------------------------------------- size and links
def test_readme_size():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, more than {README_MAX_BYTES}"


def github_anchor(heading: str) -> str:
    """GitHub's heading id: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set:
    heads = re.findall(r"^#{1,6}\s+(.*)$", _strip_code_keep_heads(path.read_text(encoding="utf-8")), re.M)
    return {github_anchor(h) for h in heads}


def _strip_code_keep_heads(text: str) -> str:
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def test_github_anchor():
    assert github_anchor("Transforms (`src/data/transforms.py`)") == "transforms-srcdatatransformspy"
    assert github_anchor("Errors and exit status") == "errors-and-exit-status"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_relative_links_resolve(doc):
    text = doc.read_text(encoding="utf-8")
    body = _strip_code_keep_heads(text)  # fenced code holds no links
    broken = []
    for target in LINK.findall(body):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = doc if not path_part else (doc.parent / path_part).resolve()
        if not dest.exists():
            broken.append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors_of(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"


REPO_PATH = re.compile(r"^(?:src|tests|scripts|docs)/[\w./-]*$")


@pytest.mark.parametrize("doc", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_named_repository_files_exist(doc):
    """Inline-code paths such as `src/models/fold.py` name files that exist."""
    body = _strip_code_keep_heads(doc.read_text(encoding="utf-8"))
    missing = sorted({p for p in re.findall(r"`([^`\s]+)`", body)
                      if REPO_PATH.match(p) and not (ROOT / p).exists()})
    assert not missing, f"{doc.relative_to(ROOT)}: no such files: {missing}"


# ----------------------------------------------------------------------------- zoo tables
VARIANT = re.compile(r"^(?:x3d[_-](xs|s|m|l))$", re.I)


@lru_cache(maxsize=None)
def model_counts(variant: str) -> Tuple[int, float, float]:
    """(params, GFLOPs at the train crop, GFLOPs at the test crop) of the code's model."""
    from src.models import build_model, count_params
    cfg = load_config(str(ROOT / "src" / "config" / f"{variant}.yaml"))
    net = build_model(cfg.model)
    rec = net.pretrained_cfg
    t = rec.num_frames
    train = net.flops((3, t, rec.crop_size, rec.crop_size)) / 1e9
    test = net.flops((3, t, rec.test_crop_size, rec.test_crop_size)) / 1e9
    return count_params(net), train, test


def zoo_rows() -> List[Tuple[str, str, Dict[str, str]]]:
    """Rows naming an X3D variant in tables that have a params and a GFLOPs column."""
    rows = []
    for doc in DOC_FILES:
        lines = _strip_code_keep_heads(doc.read_text(encoding="utf-8")).splitlines()
        for i, line in enumerate(lines):
            if not (line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[i + 1])):
                continue
            header = [c.strip() for c in line.strip("|").split("|")]
            if not any(h == "params" for h in header) or not any(h.startswith("GFLOPs") for h in header):
                continue
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                m = VARIANT.match(cells[0])
                if m:
                    rows.append((f"{doc.relative_to(ROOT)}", f"x3d_{m.group(1).lower()}", dict(zip(header, cells))))
    return rows


def _agrees(text: str, value: float) -> bool:
    """``text`` is ``value`` rounded to the decimals ``text`` shows."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-12


def test_zoo_tables_match_the_code():
    rows = zoo_rows()
    assert {v for d, v, _ in rows if d == "README.md"} == {"x3d_xs", "x3d_s", "x3d_m", "x3d_l"}
    for doc, variant, row in rows:
        params, train, test = model_counts(variant)
        assert int(row["params"].replace(",", "")) == params, f"{doc} {variant}: params {row['params']} vs {params}"
        gflops = next(v for k, v in row.items() if k.startswith("GFLOPs"))
        shown = [s.strip() for s in gflops.split("/")]
        assert len(shown) == 2, f"{doc} {variant}: expected 'train / test' GFLOPs, got {gflops}"
        assert _agrees(shown[0], train), f"{doc} {variant}: train-crop GFLOPs {shown[0]} vs {train:.4f}"
        assert _agrees(shown[1], test), f"{doc} {variant}: test-crop GFLOPs {shown[1]} vs {test:.4f}"
