"""Seeded, bounded fuzzing of every decoder that reads a peer's bytes or an operator's file.

Each `Target` pairs a case generator (valid inputs, then mutated: bit flips, truncation, extension,
field tampering, nesting, non-finite and huge values; the generic mutations live in
`scripts.bench.mutations`) with the decoder under test, the decoder's own named error, and a
check of what it accepts. `run_target` classifies every case:

- rejected: the decoder raised its own named error (the clean outcome for bad input),
- crashed: it raised anything else,
- hung: it used more than the per-case bound of CPU time, or ran past that bound times
  WALL_FACTOR on the wall clock (a SIGALRM interrupts it); CPU time keeps a busy machine's
  scheduling out of the verdict, the wall bound still catches a decoder that blocks,
- accepted: it returned, and the result passed the target's check (finite, within bounds);
- unsound: it returned something that failed that check, or rejected the input with a message
  that is not one short line.

Cases run in-process: a subprocess per case is too slow for thousands of cases. That is safe
only because no decoder left parses recursively (the codec's header is flat binary, JSON is
checked for nesting before `json` sees it, tomllib recursion ends in a RecursionError), so a
nested input cannot overflow the C stack and take the runner down with it.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from incentive.keys import KeyFileError, load_key
from node.checkpoint import Checkpoint, CheckpointError
from node.rundir import RunFolder
from node.config import ConfigError, config_from_mapping, dump_config, load_config
from node.datasets import MAX_CLASSES, MAX_FEATURE_ABS, DataError, csv_shard
from node.preprocess import STATS_MAX_ABS, STATS_TENSOR_NAMES, FeatureStats
from p2p.announce import INLINE_MAX_BYTES, KINDS, Announcement, AnnouncementError
from p2p.codec import MAX_ABS, CodecError, decode_update, digest, encode_update
from p2p.identity import IdentityError, load_or_create_keypair

from .mutations import Case, Shapes, blob_cases, compressed_cases, insert_bad_utf8, mutate_bytes, mutate_json_object, random_tensors

CASE_SECONDS = 2.0
WALL_FACTOR = 5
MAX_MESSAGE = 500  # a rejection's message must be one line of at most this many characters
OUTCOMES = ("rejected", "crashed", "hung", "accepted", "unsound")
PEER = "12D3KooWDrY9rCLkPYJnWq9GihJxRYoC3iAf5TRZnQCS2Ks6bnW6"
UPDATE_SHAPES: Shapes = {"net.0.weight": (8, 5), "net.0.bias": (8,), "net.2.weight": (2, 8), "net.2.bias": (2,)}
STATS_FEATURES = 6
STATS_SHAPES: Shapes = {k: (STATS_FEATURES,) for k in STATS_TENSOR_NAMES}
BLOB_LIMIT = 256 * 1024  # max_bytes for blob targets: room for 140 KB of nested junk to reach the header


class CaseTimeout(BaseException):
    """Raised by SIGALRM in a case that overran; a BaseException so no decoder swallows it."""


@dataclass(frozen=True)
class Target:
    name: str
    cases: Callable[[random.Random, Path], Iterator[Case]]  # endless; `run_target` takes what it needs
    decode: Callable[[Case, Path], Any]
    clean: tuple[type[BaseException], ...]  # the decoder's own named errors
    check: Callable[[Any], None]  # raises AssertionError when an accepted result is out of bounds


@dataclass
class Result:
    name: str
    tried: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # named error class -> times raised
    failures: list[str] = field(default_factory=list)  # first few crashed, hung or unsound cases
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.outcomes["crashed"] or self.outcomes["hung"] or self.outcomes["unsound"])

    def as_dict(self) -> dict[str, Any]:
        return {"tried": self.tried, **{k: self.outcomes[k] for k in OUTCOMES}, "seconds": round(self.seconds, 2),
                "errors": dict(self.errors.most_common()), "failures": self.failures}


# --------------------------------------------------------------------------- codec blobs


def _check_tensors(out: dict[str, np.ndarray], bound: float, shapes: Shapes | None) -> None:
    for name, arr in out.items():
        assert arr.dtype == np.float32, f"{name}: dtype {arr.dtype}"
        assert np.all(np.isfinite(arr)), f"{name}: non-finite value accepted"
        assert np.all(np.abs(arr) <= bound), f"{name}: value beyond {bound:g} accepted"
    if shapes is not None:
        assert {k: v.shape for k, v in out.items()} == shapes, "shapes differ from the expected ones"


def _blob_target(name: str, shapes: Shapes, scale: float, bound: float,
                 extra: Callable[[random.Random], bytes] | None = None,
                 generator: Callable[..., Iterator[Case]] | None = None) -> Target:
    """Blobs decoded with the model's shapes (as the exchange does) half of the time, else without.

    `extra`, when given, makes a third of the cases: valid blobs of another origin. `generator`
    makes the blobs (default: dense ones, `blob_cases`).
    """

    def cases(rng: random.Random, _: Path) -> Iterator[Case]:
        for case in (generator or blob_cases)(rng, shapes, scale, bound):
            if extra is not None and rng.random() < 0.3:
                case = Case("origin", extra(rng))
            yield Case(case.label, (case.data, shapes if rng.random() < 0.5 else None))

    def decode(case: Case, _: Path) -> tuple[dict[str, np.ndarray], Shapes | None]:
        data, expected = case.data
        return decode_update(data, expected=expected, max_bytes=BLOB_LIMIT, max_abs=bound), expected

    return Target(name, cases, decode, (CodecError,), lambda got: _check_tensors(got[0], bound, got[1]))


def _real_stats(rng: random.Random) -> bytes:
    """A statistics blob of plausible clinical columns: sums of squares into the 1e9s."""
    gen = np.random.default_rng(rng.randrange(2**32))
    x = gen.standard_normal((rng.randint(1, 500), STATS_FEATURES)) * 10.0 ** gen.integers(0, 4, STATS_FEATURES)
    return encode_update(FeatureStats.of(x).to_tensors(), max_abs=STATS_MAX_ABS)


# --------------------------------------------------------------------------- announcements


def _announcement_base(rng: random.Random) -> dict[str, Any]:
    fields = dict(swarm=rng.choice(("medswarm", "s-1", "A.b_c")), round=rng.randrange(10**6), kind=rng.choice(KINDS),
                  samples=rng.randrange(10**6), codec=rng.choice(("f32", "f16")), sender=PEER)
    if rng.random() < 0.5:  # half of them carry a small blob inline
        ann = Announcement.carrying(rng.randbytes(rng.randint(1, INLINE_MAX_BYTES)), **fields)
    else:
        ann = Announcement(**fields, digest="0x" + rng.randbytes(32).hex(), size=rng.randint(1, 2**40))
    return json.loads(ann.to_bytes())


def _check_announcement(ann: Announcement) -> None:
    assert isinstance(ann, Announcement)
    for name in ("round", "size", "samples", "version"):
        value = getattr(ann, name)
        assert type(value) is int and 0 <= value < 2**63, f"{name} = {value!r}"
    assert Announcement.from_bytes(ann.to_bytes()) == ann, "does not round-trip"
    if (blob := ann.blob) is not None:
        assert len(blob) == ann.size <= INLINE_MAX_BYTES and digest(blob) == ann.digest, "inline blob unchecked"


def _announcement_target() -> Target:
    def cases(rng: random.Random, _: Path) -> Iterator[Case]:
        while True:
            yield mutate_json_object(rng, _announcement_base(rng))

    return Target("announcement", cases, lambda case, _: Announcement.from_bytes(case.data), (AnnouncementError,),
                  _check_announcement)


# --------------------------------------------------------------------------- checkpoints

CHECKPOINT_TASK = "0x" + "1" * 40 + "/1"


def _reset(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _checkpoint_target() -> Target:
    """A checkpoint folder: meta JSON and blob, each mutated; the meta's digest often kept in step."""

    def cases(rng: random.Random, tmp: Path) -> Iterator[Case]:
        blobs = blob_cases(rng, UPDATE_SHAPES, 0.1, MAX_ABS)
        while True:
            folder = tmp / "ckpt"
            _reset(folder)
            run = RunFolder(folder)
            ckpt = Checkpoint(rng.randrange(100), random_tensors(rng, UPDATE_SHAPES, 0.1))
            run.save_checkpoint(ckpt, CHECKPOINT_TASK)
            meta = json.loads(run.checkpoint_meta.read_text())
            op = rng.choice(("valid", "meta", "meta", "blob", "blob", "blob", "directory", "missing"))
            if op == "meta":
                case = mutate_json_object(rng, meta)
                run.checkpoint_meta.write_bytes(case.data)
                op = f"meta:{case.label}"
            elif op == "blob":
                case = next(blobs)
                run.checkpoint_blob.write_bytes(case.data)
                if rng.random() < 0.8:  # in step, so the codec sees the bytes
                    meta |= {"digest": digest(case.data), "bytes": len(case.data)}
                    run.checkpoint_meta.write_text(json.dumps(meta))
                op = f"blob:{case.label}"
            elif op == "directory":
                victim = rng.choice((run.checkpoint_meta, run.checkpoint_blob))
                victim.unlink()
                victim.mkdir()
            elif op == "missing":
                run.checkpoint_blob.unlink()
            yield Case(op, folder)

    def check(ckpt: Checkpoint | None) -> None:
        if ckpt is not None:
            assert type(ckpt.round) is int and ckpt.round >= 0
            _check_tensors(ckpt.tensors, MAX_ABS, UPDATE_SHAPES)

    return Target("checkpoint", cases, lambda case, _: RunFolder(case.data).load_checkpoint(UPDATE_SHAPES, CHECKPOINT_TASK),
                  (CheckpointError,), check)


# --------------------------------------------------------------------------- operator files

TRICKY_TOML = ("nan", "+nan", "-nan", "inf", "-inf", "1e400", "-1e400", "1" + "0" * 30, "-1", "0", "2147483648",
               "9223372036854775807", "-9223372036854775808", "0x7fffffff", "1e-400", "true", '"str"', "[1, 2]",
               "{a = 1}", "1979-05-27", "1.5", '""', '"' + "\\u0000" + '"', "[" * 5000, "[" * 200_000 + "]" * 200_000)


def _config_target() -> Target:
    base = dump_config(config_from_mapping({"name": "fuzz", "data": {"dataset": "heart"}}))
    lines = base.splitlines()
    settings = [i for i, line in enumerate(lines) if " = " in line]

    def cases(rng: random.Random, tmp: Path) -> Iterator[Case]:
        while True:
            text = list(lines)
            op = rng.choice(("valid", "value", "value", "value", "value", "unknown", "duplicate", "drop", "bytes",
                             "utf8", "table"))
            if op == "value":
                i = rng.choice(settings)
                text[i] = text[i].split(" = ")[0] + " = " + rng.choice(TRICKY_TOML)
            elif op == "unknown":
                text.append(rng.choice(("bogus = 1", "[bogus]", "[data.inner]", "data = 1")))
            elif op == "duplicate":
                text.append(text[rng.choice(settings)])
            elif op == "drop":
                text.pop(rng.choice(settings[:1] + settings))
            elif op == "table":
                text.append(rng.choice(("[[swarm]]", "[swarm]", "name = [\"a\"]", 'p2p = {mdns = true}')))
            yield _file_case(rng, op, ("\n".join(text) + "\n").encode(), tmp / "node.toml")

    def check(config: Any) -> None:
        for section in (config.data, config.model, config.training, config.swarm, config.p2p, config.chain):
            for name, value in vars(section).items():
                if isinstance(value, float):
                    assert math.isfinite(value), f"{name} = {value!r}"
                elif isinstance(value, int) and not isinstance(value, bool):
                    assert abs(value) <= 2**31 - 1, f"{name} = {value!r}"
        assert 0 < config.training.lr <= 10 and config.training.batch_size > 0

    return Target("config", cases, lambda case, _: load_config(case.data), (ConfigError,), check)


def _file_case(rng: random.Random, op: str, data: bytes, path: Path) -> Case:
    """Write a loader's input file, byte-mutated or with broken UTF-8 when `op` asks for it."""
    if op == "bytes":
        label, data = mutate_bytes(rng, data)
        op = f"bytes:{label}"
    elif op == "utf8":
        data = insert_bad_utf8(rng, data)
    path.write_bytes(data)
    return Case(op, path)


TRICKY_CELLS = ("1e39", "1e308", "-1e308", "inf", "-inf", "Infinity", "nan", "NaN", "-nan", "", "?", "1e12", "1e13",
                "-1e12", "0x10", "1_000", " 5 ", "\u0661\u0662", "1e-400", "9" * 400, "abc", '"1,2"', "\x00")
TRICKY_LABELS = ("1e18", "1e308", "64", "63", "-1", "0.5", "1.0", "2", "inf", "nan", "", " 1 ", "1e1", "-0")


def _csv_target() -> Target:
    def cases(rng: random.Random, tmp: Path) -> Iterator[Case]:
        while True:
            n_rows, header = rng.randint(2, 30), ["age", "bp", "chol", "label"]
            rows = [[f"{rng.uniform(0, 300):.3f}" for _ in range(3)] + [str(i % 2)] for i in range(n_rows)]
            op = rng.choice(("valid", "cell", "cell", "label", "label", "header", "shape", "bytes", "utf8", "empty"))
            if op == "cell":
                for _ in range(rng.randint(1, 3)):
                    rows[rng.randrange(n_rows)][rng.randrange(3)] = rng.choice(TRICKY_CELLS)
            elif op == "label":
                rows[rng.randrange(n_rows)][3] = rng.choice(TRICKY_LABELS)
            elif op == "header":
                header = rng.choice((["age", "age", "bp", "label"], ["label", "label", "label", "label"],
                                     ["", "bp", "chol", "label"], ["age", "bp", "chol", "outcome"],
                                     ["\ufeffage", "bp", "chol", "label"], ["label"] + ["x"] * 3))
            elif op == "shape":
                row = rows[rng.randrange(n_rows)]
                if rng.random() < 0.5:
                    del row[rng.randrange(len(row)):]
                else:
                    row.extend(["1"] * rng.randint(1, 3))
            text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
            data = text.encode() if op != "empty" else rng.choice((b"", b"\n", b"age,label\n", b"\xef\xbb\xbf"))
            yield _file_case(rng, op, data, tmp / "data.csv")

    def check(data: Any) -> None:
        for shard in (data.train, data.test):
            x = shard.x[~np.isnan(shard.x)]
            assert shard.x.dtype == np.float32 and np.all(np.abs(x) <= MAX_FEATURE_ABS), "feature out of bounds"
            assert np.all((shard.y >= 0) & (shard.y < MAX_CLASSES)), "label out of range"

    return Target("csv", cases, lambda case, _: csv_shard(case.data, "label"), (DataError,), check)


SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _key_file_cases(rng: random.Random, tmp: Path, valid: Callable[[], bytes], specials: tuple[bytes, ...],
                    mode: int) -> Iterator[Case]:
    """Key files: valid, mutated, special contents, or a directory where the file should be."""
    while True:
        path = tmp / "key"
        if path.is_dir():
            path.rmdir()
        op = rng.choice(("valid", "bytes", "bytes", "bytes", "special", "directory"))
        if op == "directory":
            path.unlink(missing_ok=True)
            path.mkdir(mode=0o700)
            yield Case(op, path)
            continue
        data = valid()
        if op == "bytes":
            label, data = mutate_bytes(rng, data)
            op = f"bytes:{label}"
        elif op == "special":
            data = rng.choice(specials)
        path.write_bytes(data)
        path.chmod(mode)
        yield Case(op, path)


def _eth_key_target() -> Target:
    specials = (b"", b"\n", b"0x", b"0x" + b"0" * 64, f"0x{SECP256K1_ORDER:064x}".encode(),
                f"0x{SECP256K1_ORDER - 1:064x}".encode(), b"0x" + b"f" * 64, b"1" * 5000, "é".encode() * 32,
                b"0x" + b"11" * 32 + b"\x00", b"\xff" * 66, b" 0x" + b"ab" * 32 + b" \n")

    def cases(rng: random.Random, tmp: Path) -> Iterator[Case]:
        return _key_file_cases(rng, tmp, lambda: b"0x" + rng.randbytes(31).hex().encode() + b"01\n", specials, 0o600)

    def check(account: Any) -> None:
        assert isinstance(account.address, str) and account.address.startswith("0x") and len(account.address) == 42

    return Target("eth_key", cases, lambda case, _: load_key(case.data), (KeyFileError,), check)


def _p2p_key_target() -> Target:
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.crypto.keys import KeyType

    # protobuf: field 1 = key type (0 RSA, 1 Ed25519, 2 secp256k1, 3 ECDSA), field 2 = key bytes
    other_types = tuple(bytes([8, t, 0x12, 0x20]) + b"\x01" * 32 for t in (0, 2, 3, 99))
    specials = (b"", b"\x00", b"\x08\x01", b"\x08\x01\x12\x00", b"\x08\x01\x12\x20" + b"\x00" * 31,
                b"\x08\x01\x12\xff\xff\xff\xff\x0f", b"x" * 5000, *other_types)

    def cases(rng: random.Random, tmp: Path) -> Iterator[Case]:
        return _key_file_cases(rng, tmp, lambda: Ed25519PrivateKey.from_bytes(rng.randbytes(32)).serialize(),
                               specials, rng.choice((0o600, 0o644)))

    def check(pair: Any) -> None:
        assert pair.private_key.get_type() == KeyType.Ed25519

    return Target("p2p_key", cases, lambda case, _: load_or_create_keypair(case.data), (IdentityError,), check)


# --------------------------------------------------------------------------- runner


def targets() -> dict[str, Target]:
    """Every decoder under test, by name (built on demand: each holds a little state)."""
    made = [_blob_target("blob", UPDATE_SHAPES, 0.1, MAX_ABS),
            _blob_target("compressed", UPDATE_SHAPES, 0.1, MAX_ABS, generator=compressed_cases),
            _blob_target("stats", STATS_SHAPES, 1e3, STATS_MAX_ABS, extra=_real_stats), _announcement_target(),
            _checkpoint_target(), _config_target(), _csv_target(), _eth_key_target(), _p2p_key_target()]
    return {t.name: t for t in made}


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def run_target(target: Target, cases: int, seed: int, case_seconds: float = CASE_SECONDS,
               keep_failures: int = 5) -> Result:
    """Run `cases` seeded cases of `target` in this process and classify each (see the module doc)."""
    result = Result(target.name)
    # SIGALRM can interrupt a case only on the main thread; elsewhere an overrun is still
    # classified as hung once the case returns.
    use_alarm = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{target.name}-") as tmp:
            rng = random.Random(f"{seed}/{target.name}")
            generator = target.cases(rng, Path(tmp))
            for _ in range(cases):
                case = next(generator)
                outcome, detail = _run_case(target, case, Path(tmp), case_seconds, use_alarm)
                result.tried += 1
                result.outcomes[outcome] += 1
                if outcome == "rejected":
                    result.errors[detail] += 1
                elif outcome != "accepted" and len(result.failures) < keep_failures:
                    result.failures.append(f"{outcome} on {case.label}: {detail}")
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    result.seconds = time.perf_counter() - start
    return result


def _run_case(target: Target, case: Case, tmp: Path, seconds: float, use_alarm: bool) -> tuple[str, str]:
    began, cpu = time.perf_counter(), time.thread_time()
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, seconds * WALL_FACTOR)
        try:
            value = target.decode(case, tmp)
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except CaseTimeout:
        return "hung", f"over {seconds * WALL_FACTOR:g} s"
    except target.clean as exc:
        message = str(exc)
        if "\n" in message or len(message) > MAX_MESSAGE:  # the operator must get one clear line
            return "unsound", f"{type(exc).__name__} of {len(message)} chars over several lines: {message[:100]!r}"
        return "rejected", type(exc).__name__
    except Exception as exc:  # anything but the decoder's own error is a crash: that is the finding
        return "crashed", f"{type(exc).__name__}: {str(exc)[:200]}"
    if time.thread_time() - cpu > seconds:
        return "hung", f"took {time.thread_time() - cpu:.1f} s of CPU"
    if time.perf_counter() - began > seconds * WALL_FACTOR:
        return "hung", f"took {time.perf_counter() - began:.1f} s"
    try:
        target.check(value)
    except AssertionError as exc:
        return "unsound", str(exc)[:200]
    return "accepted", ""
