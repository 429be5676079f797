#!/usr/bin/python3
"""grade-notebook: Homeroom's example grader for the notebook template.

    grade-notebook [--notebook NAME] --answer NAME=VALUE [--answer ...]
                   [--points N] [--timeout SECONDS] [--total-timeout SECONDS]

Finds the student's notebook under the submission (--notebook names its
file, searched anywhere; without it, the only .ipynb), runs it headless
with the python3 kernel (errors do not stop the run), then compares each
answer's variable with VALUE, a Python literal: floats with a relative
tolerance of 1e-6, lists and tuples alike, numpy scalars and arrays as the
Python values they hold. Each answer is one test worth --points. A missing,
invalid or failing notebook is a grade with reasons, not a failure; exit 1
means the grade could not be made (the kernel did not start, the grade
could not be written), exit 2 bad arguments.

The student's code runs in this container as this program's user, so the
expected answers are kept out of its reach (out of the command line it could
read in /proc), and every process it leaves behind is killed before the
grade is written.
"""

import argparse
import ast
import cmath
import ctypes
import json
import keyword
import math
import os
import shutil
import signal
import stat
import sys
import tempfile
import time

ANSWERS_ENV = "_HOMEROOM_GRADE_NOTEBOOK_ANSWERS"
MAX_NOTEBOOK = 32 << 20  # bytes; parsing a notebook takes several times that in memory
MAX_DUMP = 32 << 20
COPY_LIMIT = 16 << 20  # /tmp is a small tmpfs
COPY_FILES = 2000
DUMP_TIMEOUT = 10
MAX_TESTS = 500
MAX_POINTS = 1000000
CHECKPOINTS = ".ipynb_checkpoints"


class Usage(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(prog="grade-notebook", allow_abbrev=False,
                                description="Run a student's notebook and check its answers.")
    p.add_argument("--notebook", metavar="NAME", help="the notebook's file name, searched anywhere under the submission")
    p.add_argument("--answer", action="append", default=[], metavar="NAME=VALUE",
                   help="the variable NAME must equal the Python literal VALUE after the run (repeatable)")
    p.add_argument("--points", metavar="N", type=float, default=1.0, help="points each answer is worth (default 1)")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=20.0,
                   help="seconds one cell may run before it is interrupted (default 20)")
    # Cells are interrupted by --total-timeout at the latest; one that
    # ignores the interrupt is given its timeout once more; reading the
    # answers takes up to DUMP_TIMEOUT, starting the kernel a few seconds.
    # With the defaults that is at most about 95 s, under the grader's
    # default limit of 120 s.
    p.add_argument("--total-timeout", metavar="SECONDS", type=float, default=60.0,
                   help="seconds all cells may run together (default 60); keep it plus --timeout plus 20 "
                        "under the policy's timeoutSeconds")
    p.add_argument("--submission", metavar="DIR", default=os.environ.get("HOMEROOM_SUBMISSION") or "/submission",
                   help="the student's collected files (default $HOMEROOM_SUBMISSION, else /submission)")
    p.add_argument("--out", metavar="FILE", default=os.environ.get("HOMEROOM_GRADE") or "/grade/grade.json",
                   help="where the grade is written (default $HOMEROOM_GRADE, else /grade/grade.json)")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        raise Usage(None) if e.code else e
    if args.notebook is not None:
        n = args.notebook
        if not n or "/" in n or n in (".", "..") or "\0" in n:
            raise Usage("--notebook takes a file name, not a path: %r" % n)
    for name, v in (("--points", args.points), ("--timeout", args.timeout), ("--total-timeout", args.total_timeout)):
        if not math.isfinite(v) or v <= 0:
            raise Usage("%s must be a number above 0" % name)
    if not args.submission or not args.out:
        raise Usage("--submission and --out must not be empty")
    return args


def parse_answers(raw):
    """raw: [NAME=VALUE, ...] -> [(name, text, value)]."""
    answers, seen = [], set()
    for a in raw:
        name, sep, text = a.partition("=")
        if not sep:
            raise Usage("--answer %r: want NAME=VALUE" % a)
        if not name.isidentifier() or keyword.iskeyword(name) or len(name) > 200:
            raise Usage("--answer %r: %r is not a Python variable name" % (a, name))
        if name in seen:
            raise Usage("--answer %s is given twice" % name)
        seen.add(name)
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise Usage("--answer %s: %r is not a Python literal" % (name, text))
        answers.append((name, text, value))
    return answers


def hide_from_student():
    """Makes this process's /proc files (environ, fd, mem) unreadable to the
    student's code, which runs as the same user."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- finding


def find_notebook(sub, name):
    """Returns (path, note) or (None, reason)."""
    found = []
    if os.path.isdir(sub):
        for root, dirs, files in os.walk(sub, onerror=lambda e: None):
            dirs[:] = sorted(d for d in dirs if d != CHECKPOINTS)
            for f in sorted(files):
                if (f == name) if name else f.endswith(".ipynb"):
                    p = os.path.join(root, f)
                    try:
                        if stat.S_ISREG(os.lstat(p).st_mode):
                            found.append(p)
                    except OSError:
                        pass
    rel = lambda p: os.path.relpath(p, sub)
    if not found:
        return None, ("%s was not handed in" % name) if name else "no notebook was handed in"
    if name:
        # The one nearest the top: a copy in a subfolder is the student's spare.
        found.sort(key=lambda p: (p.count(os.sep), p))
        note = ""
        if len(found) > 1:
            note = "Graded %s; %d other %s not graded." % (rel(found[0]), len(found) - 1, name)
        return found[0], note
    if len(found) > 1:
        shown = ", ".join(rel(p) for p in found[:5]) + (", ..." if len(found) > 5 else "")
        return None, "more than one notebook was handed in (%s) and the grader names none" % shown
    return found[0], ""


def load_notebook(path):
    """Returns (notebook, None) or (None, reason)."""
    import nbformat

    base = os.path.basename(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None, "%s is not a regular file" % base
            data = f.read(MAX_NOTEBOOK + 1)
    except OSError:
        return None, "%s could not be read" % base
    if len(data) > MAX_NOTEBOOK:
        return None, "%s is too large (over %d MiB) to be graded" % (base, MAX_NOTEBOOK >> 20)
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return None, "%s is not a notebook: it is not valid JSON" % base
    try:
        nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        cells = nb["cells"]
        ok = isinstance(cells, list) and all(
            isinstance(c, dict) and isinstance(c.get("cell_type"), str) and isinstance(c.get("source"), str)
            for c in cells)
    except Exception:
        ok = False
    if not ok:
        return None, "%s is not a valid notebook" % base
    return nb, None


def workdir(nbdir, scratch):
    """The kernel's working directory: a copy of the notebook's folder, so
    that a notebook that saves a file next to itself (a plot, say) works as
    it did for the student; the folder itself, read-only, if it is too big
    for /tmp."""
    plan, total = [], 0
    for root, dirs, files in os.walk(nbdir, onerror=lambda e: None):
        dirs[:] = [d for d in dirs if d != CHECKPOINTS and not os.path.islink(os.path.join(root, d))]
        for f in files:
            p = os.path.join(root, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            total += st.st_size
            plan.append(p)
            if total > COPY_LIMIT or len(plan) > COPY_FILES:
                return nbdir
    dest = os.path.join(scratch, "work")
    try:
        os.mkdir(dest)
        for p in plan:
            d = os.path.join(dest, os.path.relpath(p, nbdir))
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copyfile(p, d, follow_symlinks=False)
    except OSError:
        shutil.rmtree(dest, ignore_errors=True)
        return nbdir
    return dest


# ---------------------------------------------------------------- running


def bound_names(source):
    """The names a cell's code binds at the top level (best effort: a cell
    that does not parse binds none)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        source = TransformerManager().transform_cell(source)  # %magics and !commands
    except Exception:
        pass
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            return  # their bodies are scopes of their own
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                names.add(a.asname or a.name.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    try:
        visit(tree)
    except RecursionError:
        pass
    return names


# Runs in the kernel after the notebook: writes the answers' values as
# tagged JSON, which this program decodes without evaluating anything the
# student wrote. Builtins come from the builtins module, as a notebook may
# well have a variable named list or type.
DUMP = r'''
def _homeroom_dump(names, path):
    import builtins as b, json
    budget = [200000]
    def enc(v, depth):
        budget[0] -= 1
        if budget[0] < 0 or depth > 32:
            raise ValueError("too large")
        t = b.type(v)
        if b.getattr(t, "__module__", "") == "numpy":
            import numpy
            if b.isinstance(v, numpy.ndarray):
                if v.size > budget[0]:
                    raise ValueError("too large")
                return enc(v.tolist(), depth)
            if b.isinstance(v, numpy.generic):
                return enc(v.item(), depth)
        if v is None:
            return {"t": "none"}
        if t is b.bool:
            return {"t": "bool", "v": v}
        if t is b.int:
            return {"t": "int", "v": b.str(v)}
        if t is b.float:
            return {"t": "float", "v": b.float.__repr__(v)}
        if t is b.complex:
            return {"t": "complex", "v": [b.float.__repr__(v.real), b.float.__repr__(v.imag)]}
        if t is b.str:
            return {"t": "str", "v": v}
        if t is b.bytes:
            return {"t": "bytes", "v": v.hex()}
        if t in (b.list, b.tuple, b.set, b.frozenset):
            return {"t": t.__name__, "v": [enc(x, depth + 1) for x in v]}
        if t is b.dict:
            return {"t": "dict", "v": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
        raise TypeError(t.__name__)
    g, out = b.globals(), {}
    for n in names:
        if n not in g:
            out[n] = {"missing": True}
            continue
        try:
            out[n] = {"value": enc(g[n], 0)}
        except Exception:
            out[n] = {"unsupported": b.str(b.type(g[n]).__name__)[:100]}
    with b.open(path, "w") as f:
        json.dump(out, f)
_homeroom_dump(%(names)r, %(path)r)
del _homeroom_dump
'''


class Stuck(Exception):
    """A cell went on running after it was interrupted."""


def execute(nb, cwd, scratch, names, cell_timeout, total_timeout):
    """Runs the notebook. Returns (status, values, problem, at): status maps
    a cell's index to what became of it ("ok", or why not), values the
    answers' dumped values (None when they could not be read), problem why
    the run ended early ("" if it did not), at the cell it ended at."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    import nbformat

    class Client(NotebookClient):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.current = None  # the index of the cell running
            self.timed_out = set()

        def output(self, outs, msg, display_id, cell_index):
            # Outputs are not graded: keeping them would only let a notebook
            # that prints without end fill this program's memory.
            return None

        async def _async_handle_timeout(self, timeout, cell=None):
            if self.current in self.timed_out:
                raise Stuck()
            self.timed_out.add(self.current)
            return await super()._async_handle_timeout(timeout, cell)

    status, limits = {}, {}

    def executed(cell, cell_index, execute_reply):
        c = (execute_reply or {}).get("content", {})
        if cell_index in client.timed_out:
            status[cell_index] = "was stopped after %d s" % limits.get(cell_index, cell_timeout)
        elif c.get("status") == "error":
            ename = str(c.get("ename", "an error"))[:100]
            evalue = " ".join(str(c.get("evalue", "")).split())[:200]
            status[cell_index] = "raised %s%s" % (ename, ": " + evalue if evalue else "")
        elif c.get("status") not in (None, "ok"):
            status[cell_index] = "did not run to the end"
        else:
            status[cell_index] = "ok"

    deadline = time.monotonic() + total_timeout

    def timeout_for(cell):
        return limits.get(client.current, DUMP_TIMEOUT)

    client = Client(nb, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
                    store_widget_state=False, shutdown_kernel="immediate", timeout_func=timeout_for,
                    resources={"metadata": {"path": cwd}}, on_cell_executed=executed)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    for i in code:
        nb.cells[i].outputs = []
    problem, at = "", None
    dump_path = os.path.join(scratch, "answers.json")
    try:
        with client.setup_kernel():
            for n, i in enumerate(code):
                left = deadline - time.monotonic()
                if left < 1:
                    for j in code[n:]:
                        status[j] = "was not run: the notebook ran out of time"
                    problem, at = "the notebook ran out of time (%d s) before cell %d" % (total_timeout, i + 1), i
                    break
                limits[i] = max(1, int(min(cell_timeout, left)))
                client.current = i
                try:
                    client.execute_cell(nb.cells[i], i)
                except DeadKernelError:
                    status[i] = "stopped the kernel"
                    return status, None, "the kernel died while running cell %d (out of memory?)" % (i + 1), i
                except (Stuck, CellTimeoutError):
                    status[i] = "ran longer than %d s and could not be stopped" % limits[i]
                    return status, None, "cell %d ran longer than %d s and could not be stopped" % (i + 1, limits[i]), i
            dump = nbformat.v4.new_code_cell(DUMP % {"names": list(names), "path": dump_path})
            nb.cells.append(dump)
            client.current = len(nb.cells) - 1
            try:
                client.execute_cell(dump, client.current, store_history=False)
            except (DeadKernelError, Stuck, CellTimeoutError):
                return status, None, "the notebook's variables could not be read after the run", None
    except (DeadKernelError, Stuck, CellTimeoutError):
        return status, None, "the kernel died while the notebook ran", None
    values = read_dump(dump_path)
    if values is None:
        return status, None, "the notebook's variables could not be read after the run", None
    return status, values, problem, at


def read_dump(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_DUMP + 1)
        if len(data) > MAX_DUMP:
            return None
        d = json.loads(data)
        return d if isinstance(d, dict) else None
    except (OSError, ValueError, RecursionError):
        return None


def decode(x, depth=0):
    """The value a dumped answer stands for; ValueError if it is not one."""
    if depth > 40 or not isinstance(x, dict):
        raise ValueError
    t, v = x.get("t"), x.get("v")
    if t == "none":
        return None
    if t == "bool" and isinstance(v, bool):
        return v
    if t == "int" and isinstance(v, str) and len(v) <= 4000:
        return int(v)
    if t == "float" and isinstance(v, str):
        return float(v)
    if t == "complex" and isinstance(v, list) and len(v) == 2:
        return complex(float(v[0]), float(v[1]))
    if t == "str" and isinstance(v, str):
        return v
    if t == "bytes" and isinstance(v, str):
        return bytes.fromhex(v)
    if t in ("list", "tuple", "set", "frozenset") and isinstance(v, list):
        items = [decode(i, depth + 1) for i in v]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[t](items)
    if t == "dict" and isinstance(v, list):
        return {decode(k, depth + 1): decode(i, depth + 1) for k, i in v}
    raise ValueError


def same(got, want):
    """got == want, but floats within a relative 1e-6 and lists and tuples
    alike (a numpy array arrives as a list)."""
    num = (bool, int, float, complex)
    if isinstance(got, num) and isinstance(want, num):
        if isinstance(got, (float, complex)) or isinstance(want, (float, complex)):
            if isinstance(got, complex) or isinstance(want, complex):
                g, w = complex(got), complex(want)
                if any(map(cmath.isnan, (g, w))):
                    return cmath.isnan(g) and cmath.isnan(w)
                return cmath.isclose(g, w, rel_tol=1e-6)
            g, w = float(got), float(want)
            if math.isnan(g) or math.isnan(w):
                return math.isnan(g) and math.isnan(w)
            return math.isclose(g, w, rel_tol=1e-6)
        return got == want
    if isinstance(got, (list, tuple)) and isinstance(want, (list, tuple)):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    if isinstance(got, (set, frozenset)) and isinstance(want, (set, frozenset)):
        return got == want
    return type(got) is type(want) and got == want


# ---------------------------------------------------------------- grading


def whole(x):
    """1 rather than 1.0 in the grade, where the points are whole."""
    return int(x) if float(x).is_integer() else x


def grade(args, answers):
    """Returns the grade (a dict)."""
    points = args.points
    tests = [{"name": n, "score": 0, "maxScore": points} for n, _, _ in answers]
    wrong, missing = [], []

    def result(notes, messages):
        score = sum(t["score"] for t in tests)
        right = sum(1 for t in tests if t["score"] > 0)
        fb = ["%d of %d %s right." % (right, len(tests), "answer" if len(tests) == 1 else "answers")]
        fb += [n for n in notes if n]
        for what, names in (("Wrong", wrong), ("Missing", missing)):
            if names:
                fb.append("%s: %s%s." % (what, ", ".join(names[:20]), ", ..." if len(names) > 20 else ""))
        for t in tests:
            t["message"] = messages.get(t["name"], "")
            t["score"], t["maxScore"] = whole(t["score"]), whole(t["maxScore"])
        return {"score": whole(score), "maxScore": whole(points * len(tests)),
                "feedback": " ".join(fb)[:8000], "tests": tests}

    path, note = find_notebook(args.submission, args.notebook)
    if path is None:
        return result(["Not graded: %s." % note], {n: "not graded: " + note for n, _, _ in answers})
    nb, why = load_notebook(path)
    if nb is None:
        return result([note, "Not graded: %s." % why], {n: "not graded: " + why for n, _, _ in answers})

    ncells = len(nb.cells)
    scratch = tempfile.mkdtemp(prefix="homeroom-grade-")
    cwd = workdir(os.path.dirname(path), scratch)
    status, values, problem, at = execute(nb, cwd, scratch, [n for n, _, _ in answers],
                                          args.timeout, args.total_timeout)

    # The cells that failed, but for the one the problem is about.
    errors = ["Cell %d %s." % (i + 1, s) for i, s in sorted(status.items())
              if s != "ok" and i != at and not s.startswith("was not run")]
    notes = [note, problem[:1].upper() + problem[1:] + "." if problem else ""]
    notes += errors[:3] + (["%d more cells failed." % (len(errors) - 3)] if len(errors) > 3 else [])
    binders = {}  # the last code cell that binds each answer's name
    for i, c in enumerate(nb.cells[:ncells]):
        if c.cell_type == "code":
            for n in bound_names(c.source):
                binders[n] = i
    messages = {}
    for t, (name, _, want) in zip(tests, answers):
        b = binders.get(name)
        d = values.get(name) if values is not None else None
        got, msg = None, None
        if b is not None and status.get(b, "ok") != "ok":
            msg = "%s is missing: cell %d, which sets it, %s" % (name, b + 1, status[b])
        elif values is None:
            msg = "%s is missing: %s" % (name, problem)
        elif not isinstance(d, dict) or d.get("missing"):
            msg = "%s is not set after the notebook runs" % name
        elif "unsupported" in d:
            msg = "%s is of type %s, which cannot be compared with the answer" % (name, str(d["unsupported"])[:100])
        else:
            try:
                got = decode(d.get("value"))
            except (ValueError, TypeError, KeyError, RecursionError):
                msg = "%s could not be read after the notebook runs" % name
        if msg is not None:
            missing.append(name)
        elif same(got, want):
            t["score"] = points
            msg = "right"
        else:
            wrong.append(name)
            msg = "%s does not have the expected value" % name
        messages[name] = msg
    return result(notes, messages)


def stop_student_processes():
    """Kills whatever the notebook left running (a process it started could
    otherwise rewrite the grade after it is written). Only as PID 1, the
    container's init, where kill(-1) reaches no one else's processes."""
    if os.getpid() != 1:
        return
    for _ in range(1000):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            break  # ESRCH: no one is left
        # Everyone orphaned is PID 1's child; a zombie not reaped would be
        # found by kill(-1) again and again.
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.005)


def write_atomic(out, g):
    d = os.path.dirname(os.path.abspath(out))
    data = (json.dumps(g, indent=2, allow_nan=False) + "\n").encode()
    try:
        st = os.lstat(d)
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            os.chmod(d, stat.S_IMODE(st.st_mode) | 0o700)  # the notebook may have taken it away
    except OSError:
        pass
    try:
        # Not a file the notebook left here: rename cannot replace a directory.
        if os.path.isdir(out) and not os.path.islink(out):
            shutil.rmtree(out)
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".grade-", suffix=".json", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def rerun_argv(args):
    argv = ["--submission", args.submission, "--out", args.out, "--points", repr(args.points),
            "--timeout", repr(args.timeout), "--total-timeout", repr(args.total_timeout)]
    if args.notebook is not None:
        argv += ["--notebook", args.notebook]
    return argv


def main(argv):
    # Set when this program runs itself again, answers moved out of argv.
    secret = os.environ.pop(ANSWERS_ENV, None)
    if secret is not None:
        hide_from_student()
    try:
        args = parse_args(argv)
        raw = args.answer
        if secret is not None:
            try:
                raw = json.loads(secret)
            except ValueError:
                raw = None
            if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
                raise Usage("the answers passed on are not a list of strings")
        answers = parse_answers(raw)
        if not answers:
            raise Usage("no --answer NAME=VALUE given")
        if len(answers) > MAX_TESTS or args.points * len(answers) > MAX_POINTS:
            raise Usage("at most %d answers and %d points in all" % (MAX_TESTS, MAX_POINTS))
    except Usage as e:
        if e.args and e.args[0]:
            print("grade-notebook: %s" % e.args[0], file=sys.stderr)
        return 2
    if secret is None:
        # Run again without the answers on the command line, which any
        # process in the container may read in /proc.
        os.environ[ANSWERS_ENV] = json.dumps(raw)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + rerun_argv(args))
        except OSError:
            os.environ.pop(ANSWERS_ENV, None)
            hide_from_student()

    os.environ["MPLBACKEND"] = "Agg"  # no display, and outputs are not kept
    try:
        g = grade(args, answers)
    except Exception as e:
        # Not the student's doing: the kernel did not start, /tmp is full...
        print("grade-notebook: grading failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        stop_student_processes()
        return 1
    stop_student_processes()
    try:
        write_atomic(args.out, g)
    except OSError as e:
        print("grade-notebook: writing the grade: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
