"""triad.Client against three real `triad serve` processes on this machine.

The module makes keys with `triad keygen --hosts ... --clients owner,reader`, starts the
three servers (`triad serve --id N`, one thread each), and drives them as a model owner
and a data owner would: upload the ONNX fixtures, allow and refuse, classify, and finally
stops the servers with SIGTERM. The command is `$TRIAD_BIN`, else the repository's debug
build, else its release build (`cargo build -p triad`); without one the module is skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np
import pytest

import triad

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "onnx"
# The model owner's models: a small CNN for most tests, and a residual CNN with batch norm
# and its weights in external data (the dynamo export) for the accuracy test.
TINY = FIXTURES / "tiny_cnn_ts.onnx"
RESIDUAL = FIXTURES / "residual_cnn_dynamo.onnx"
READY_SECS = 60.0
STOP_SECS = 10.0


def triad_bin() -> Optional[Path]:
    env = os.environ.get("TRIAD_BIN")
    if env:
        return Path(env)
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "triad"
        if p.is_file():
            return p
    return None


def free_ports(n: int) -> List[int]:
    """`n` distinct ports the OS reports free now (held open together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


@dataclass
class Service:
    exe: Path
    dir: Path
    procs: List[subprocess.Popen[bytes]]
    logs: List[Path]
    stopped: bool = False
    notes: List[str] = field(default_factory=list)

    def client(self, name: str) -> triad.Client:
        return triad.Client(self.dir / f"{name}.toml")

    def stderr(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")


def start(exe: Path, d: Path) -> Service:
    ports = free_ports(6)
    p, c = ports[:3], ports[3:]
    r = run(
        exe,
        "keygen",
        "--hosts", "127.0.0.1,127.0.0.1,127.0.0.1",
        "--ports", ",".join(map(str, p)),
        "--clients", "owner,reader",
        "--client-ports", ",".join(map(str, c)),
        "--out", str(d),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    for f in ("parties.toml", "owner.pem", "owner.key", "owner.toml", "reader.toml"):
        assert (d / f).is_file(), f
    procs, logs = [], []
    for i in range(3):
        log = d / f"serve{i}.log"
        cmd = [str(exe), "serve", "--id", str(i), "--config", str(d / "parties.toml")]
        cmd += ["--max-batch", "64", "--max-wait-ms", "5", "--threads", "1"]
        with open(log, "wb") as err:
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
        logs.append(log)
    svc = Service(exe, d, procs, logs)
    deadline = time.monotonic() + READY_SECS
    for i in range(3):
        while f"party {i}: serving clients at" not in svc.stderr(i):
            if procs[i].poll() is not None or time.monotonic() > deadline:
                stop(svc)
                raise RuntimeError(f"triad serve --id {i} did not start:\n{svc.stderr(i)}")
            time.sleep(0.05)
    return svc


def stop(svc: Service) -> None:
    for p in svc.procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    exe = triad_bin()
    if exe is None and os.environ.get("CI"):
        pytest.fail("CI: no triad binary (TRIAD_BIN, target/debug/triad or target/release/triad)")
    if exe is None:
        pytest.skip("no triad binary: set TRIAD_BIN or run `cargo build -p triad` (target/debug/triad)")
    assert exe.is_file(), f"TRIAD_BIN={exe} is not a file"
    h = run(exe, "serve", "--help")
    assert h.returncode == 0, f"{exe} has no `serve` command (an old build? run `cargo build -p triad`): {h.stderr}"
    # Two tries: a port reported free may be taken by someone else before the servers bind.
    try:
        svc = start(exe, tmp_path_factory.mktemp("service"))
    except RuntimeError as e:
        print(f"retrying with other ports: {e}", file=sys.stderr)
        svc = start(exe, tmp_path_factory.mktemp("service"))
    yield svc
    stop(svc)


@pytest.fixture(scope="module")
def owner(service: Service) -> Iterator[triad.Client]:
    with service.client("owner") as c:
        yield c


@pytest.fixture(scope="module")
def tiny(owner: triad.Client) -> str:
    """The tiny CNN, uploaded by the owner under the id "tiny"."""
    info = owner.upload_model(TINY, "tiny")
    assert info["model"] == "tiny" and info["owner"] == "owner", info
    return "tiny"


def one_line(e: pytest.ExceptionInfo[triad.TriadError]) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def inputs(base: str, n: int, seed: int) -> np.ndarray:
    """`n` inputs near the fixture's (its samples repeated, plus noise), float32."""
    x = np.load(FIXTURES / f"{base}.input.npy")
    rng = np.random.default_rng(seed)
    reps = np.resize(np.arange(len(x)), n)
    y: np.ndarray = (x[reps] + 0.1 * rng.standard_normal((n, *x.shape[1:]))).astype(np.float32)
    return y


def test_upload_describes_the_model(service: Service, owner: triad.Client) -> None:
    info = owner.upload_model(TINY)  # the id defaults to the file's stem
    assert info["model"] == "tiny_cnn_ts", info
    assert info["owner"] == "owner" and info["frac_bits"] == 20, info
    assert info["input"] == [1, 28, 28] and info["output"] == [10], info
    assert info["params"] > 0 and len(info["graph_sha256"]) == 64, info
    assert info["graph_sha256"] in triad.inspect(TINY), "the digest triad inspect prints"
    assert owner.describe("tiny_cnn_ts") == info
    # Uploading again replaces it: a new version, the same graph.
    again = owner.upload_model(TINY)
    assert again["version"] != info["version"] and again["graph_sha256"] == info["graph_sha256"]
    assert owner.describe("tiny_cnn_ts") == again


def test_private_inference_agrees_with_onnxruntime_and_local_mode(owner: triad.Client) -> None:
    info = owner.upload_model(RESIDUAL, "residual")
    assert info["input"] == [3, 16, 16] and info["output"] == [5], info
    # The fixture's 4 inputs against onnxruntime's outputs.
    x4 = np.load(FIXTURES / "residual_cnn.input.npy")
    want = np.load(FIXTURES / "residual_cnn_dynamo.ort.npy")
    y4 = owner.infer("residual", x4)
    assert y4.dtype == np.float64 and y4.shape == want.shape
    assert np.max(np.abs(y4 - want)) < 1e-3, np.max(np.abs(y4 - want))
    # 100 inputs against the local mode (the same model on the same fixed point).
    x = inputs("residual_cnn", 100, seed=7)
    ref = triad.local.infer(RESIDUAL, x)
    top2 = np.sort(ref, axis=1)[:, -2:]
    assert np.min(top2[:, 1] - top2[:, 0]) > 2e-3, "the seed's inputs have no near ties"
    y = owner.infer("residual", x.astype(np.float64))
    assert y.shape == (100, 5)
    assert np.array_equal(y.argmax(axis=1), ref.argmax(axis=1))
    assert np.max(np.abs(y - ref)) < 1e-2, np.max(np.abs(y - ref))


def onnxruntime_outputs(model: Path, x: np.ndarray) -> Optional[np.ndarray]:
    """onnxruntime's outputs for `x`, in chunks of the export's fixed batch; `None` when
    onnxruntime is not installed (CI installs it: there the comparison must run)."""
    try:
        import onnxruntime as ort  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        if os.environ.get("CI"):
            raise
        return None
    sess = ort.InferenceSession(str(model))
    inp = sess.get_inputs()[0]
    b = inp.shape[0] if isinstance(inp.shape[0], int) else len(x)
    assert len(x) % b == 0, (len(x), b)
    outs = [sess.run(None, {inp.name: x[i : i + b]})[0] for i in range(0, len(x), b)]
    return np.concatenate(outs).astype(np.float64)


def test_a_data_owner_classifies_100_images_as_onnxruntime_does(service: Service, owner: triad.Client) -> None:
    # The acceptance check: the model owner uploads a PyTorch-exported CNN (the
    # residual network with batch norm, dynamo exporter, weights in external data), a data
    # owner classifies 100 images and gets onnxruntime's predictions.
    owner.upload_model(RESIDUAL, "residual-ort")
    owner.allow("residual-ort", "reader")
    x = inputs("residual_cnn", 100, seed=11)
    want = onnxruntime_outputs(RESIDUAL, x)
    if want is None:
        pytest.skip("onnxruntime is not installed (pip install onnxruntime)")
    with service.client("reader") as reader:
        y = reader.infer("residual-ort", x)
    assert y.shape == want.shape == (100, 5)
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2e-3  # predictions a 1e-3 error cannot flip
    assert clear.sum() >= 95, clear.sum()
    assert np.array_equal(y.argmax(axis=1)[clear], want.argmax(axis=1)[clear])
    assert np.max(np.abs(y - want)) < 1e-3, np.max(np.abs(y - want))
    owner.refuse("residual-ort", "reader")


def test_reader_needs_the_owners_permission(service: Service, owner: triad.Client, tiny: str) -> None:
    x = inputs("tiny_cnn", 8, seed=1)
    want = owner.infer(tiny, x)
    with service.client("reader") as reader:
        for call in (lambda: reader.infer(tiny, x), lambda: reader.describe(tiny)):
            with pytest.raises(triad.TriadError) as e:
                call()
            assert '"tiny"' in one_line(e) and "reader" in one_line(e), one_line(e)
        # Only the owner allows.
        with pytest.raises(triad.TriadError) as e:
            reader.allow(tiny, "reader")
        assert "owner" in one_line(e)
        owner.allow(tiny, "reader")
        assert reader.describe(tiny) == owner.describe(tiny)
        y = reader.infer(tiny, x)
        assert y.shape == (8, 10) and np.max(np.abs(y - want)) < 1e-3
        owner.refuse(tiny, "reader")
        with pytest.raises(triad.TriadError) as e:
            reader.infer(tiny, x)
        assert '"tiny"' in one_line(e)
        # A refusal is an answer, not a broken connection: the client goes on.
        assert not reader.closed
    with pytest.raises(triad.TriadError) as e:
        owner.allow(tiny, "nobody")
    assert "nobody" in one_line(e)


def test_bad_inputs_are_one_line(owner: triad.Client, tiny: str) -> None:
    x = inputs("tiny_cnn", 2, seed=2)
    with pytest.raises(triad.TriadError) as e:
        owner.infer(tiny, x[:, :, :20])
    assert one_line(e) == 'model "tiny" takes inputs of shape [N, 1, 28, 28], not [2, 1, 20, 28]'
    with pytest.raises(triad.TriadError) as e:
        owner.infer(tiny, x.reshape(-1))
    assert one_line(e).startswith("x: inputs of shape [1568]")
    with pytest.raises(triad.TriadError) as e:
        owner.infer(tiny, x.astype(np.complex64))
    one_line(e)
    bad = x.astype(np.float64)
    bad[1, 0, 3, 4] = np.inf
    with pytest.raises(triad.TriadError) as e:
        owner.infer(tiny, bad)
    one_line(e)
    with pytest.raises(triad.TriadError) as e:
        owner.infer("no_such_model", x)
    assert "no_such_model" in one_line(e)
    # None of these broke the connections.
    assert owner.infer(tiny, x).shape == (2, 10) and not owner.closed


def test_bad_model_files_are_one_line(owner: triad.Client, tmp_path: Path) -> None:
    for name in ("garbage.onnx", "unsupported_op_ts.onnx", "missing_data.onnx"):
        with pytest.raises(triad.TriadError) as e:
            owner.upload_model(FIXTURES / name)
        assert name in one_line(e), one_line(e)
    with pytest.raises(triad.TriadError) as e:
        owner.upload_model(tmp_path / "absent.onnx")
    assert "absent.onnx" in one_line(e)
    with pytest.raises(triad.TriadError) as e:
        owner.upload_model(TINY, frac_bits=-1)
    one_line(e)
    assert not owner.closed


def test_clients_in_parallel(service: Service, owner: triad.Client, tiny: str) -> None:
    owner.allow(tiny, "reader")
    xs = [inputs("tiny_cnn", 40, seed=10 + i) for i in range(4)]
    want = [triad.local.infer(TINY, x) for x in xs]
    got: List[Optional[np.ndarray]] = [None] * len(xs)
    errors: List[BaseException] = []
    readers = [service.client("reader"), service.client("reader")]
    clients = [owner, readers[0], readers[1], readers[1]]  # two threads share one client
    start = threading.Barrier(len(xs))

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(2):
                got[i] = clients[i].infer(tiny, xs[i])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for y, w in zip(got, want):
        assert y is not None and y.shape == w.shape
        assert np.max(np.abs(y - w)) < 1e-3
        # The same classes, except where the reference's top two are within the tolerance.
        top2 = np.sort(w, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2e-3
        assert clear.sum() >= len(w) // 2
        assert np.array_equal(y.argmax(axis=1)[clear], w.argmax(axis=1)[clear])
    for r in readers:
        r.close()
        assert r.closed
    owner.refuse(tiny, "reader")


def test_unenrolled_client_is_refused(service: Service, tiny: str, tmp_path: Path) -> None:
    r = run(service.exe, "keygen", "--client", "stranger", "--servers", str(service.dir / "parties.toml"),
            "--out", str(tmp_path))  # fmt: skip
    if r.returncode != 0 and "--servers" in r.stderr:
        pytest.skip(f"triad keygen --client --servers is not there: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    with pytest.raises(triad.TriadError) as e:
        # TLS 1.3: the servers' refusal of the certificate may come at the first request.
        with triad.Client(tmp_path / "stranger.toml") as stranger:
            stranger.describe(tiny)
    one_line(e)
    # A client file that names a certificate the servers did not enrol, by hand: the same.
    (tmp_path / "handmade.toml").write_text(
        (service.dir / "reader.toml").read_text().replace("reader.pem", "stranger.pem").replace("reader.key", "stranger.key")
    )
    with pytest.raises(triad.TriadError) as e:
        with triad.Client(tmp_path / "handmade.toml") as stranger:
            stranger.describe(tiny)
    one_line(e)


def test_bad_client_files_are_one_line(service: Service, tmp_path: Path) -> None:
    with pytest.raises(triad.TriadError) as e:
        triad.Client(tmp_path / "absent.toml")
    assert "absent.toml" in one_line(e)
    (tmp_path / "bad.toml").write_text("cert = [\n")
    with pytest.raises(triad.TriadError) as e:
        triad.Client(tmp_path / "bad.toml")
    assert one_line(e).startswith("client file:")
    # No server listening at the addresses: one line naming the server.
    text = (service.dir / "owner.toml").read_text()
    port = free_ports(1)[0]
    dead = text
    for line in text.splitlines():
        if line.startswith("address = "):
            dead = dead.replace(line, f'address = "127.0.0.1:{port}"')
    (tmp_path / "dead.toml").write_text(dead.replace('"owner.', f'"{service.dir}/owner.'))
    with pytest.raises(triad.TriadError) as e:
        triad.Client(tmp_path / "dead.toml")
    assert "party 0" in one_line(e), one_line(e)


def test_close_and_context_manager(service: Service, tiny: str) -> None:
    c = service.client("owner")
    assert not c.closed and "open" in repr(c) and c.config == service.dir / "owner.toml"
    with c as same:
        assert same is c
        assert same.describe(tiny)["model"] == tiny
    assert c.closed and "closed" in repr(c)
    with pytest.raises(triad.TriadError) as e:
        c.describe(tiny)
    assert one_line(e) == "this triad.Client is closed"
    c.close()  # twice is harmless


def test_sigterm_stops_the_servers(service: Service, owner: triad.Client, tiny: str) -> None:
    """Last: SIGTERM while a request may be in flight; every server exits 0 within 10 s."""
    x = inputs("tiny_cnn", 64, seed=3)
    want = owner.infer(tiny, x)
    result: List[object] = []

    def late() -> None:
        try:
            result.append(owner.infer(tiny, x))
        except triad.TriadError as e:
            result.append(e)

    t = threading.Thread(target=late)
    t.start()
    time.sleep(0.02)
    for p in service.procs:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECS
    for i, p in enumerate(service.procs):
        try:
            rc = p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"server {i} still running {STOP_SECS} s after SIGTERM:\n{service.stderr(i)}")
        assert rc == 0, f"server {i} exited {rc}:\n{service.stderr(i)}"
        assert service.stderr(i).strip(), f"server {i} printed no summary"
    t.join(30)
    # The request in flight was either answered, correctly, or failed with one line.
    assert len(result) == 1
    print(f"the request in flight at SIGTERM: {result[0]!r:.200}")
    if isinstance(result[0], np.ndarray):
        assert np.max(np.abs(result[0] - want)) < 1e-3
    else:
        assert isinstance(result[0], triad.TriadError) and "\n" not in str(result[0])
    # The servers are gone: one line, and the client is closed.
    with pytest.raises(triad.TriadError) as e:
        owner.describe(tiny)
    print(f"after the servers stopped: {one_line(e)}")
    assert owner.closed
    for i in range(3):
        print(service.stderr(i).strip().splitlines()[-1])
