"""`privserve serve --replicas N`: Ray (a local instance, or the cluster at
`--ray-address`) runs the replicas; this process starts the application, waits for a
signal and takes it down."""

from __future__ import annotations

import logging
import signal
import threading

import ray
from ray import serve

from privserve.config import Settings
from privserve.replicas.deployments import application

APP_NAME = "privserve"
logger = logging.getLogger(__name__)


def run_on_ray(settings: Settings, host: str, port: int) -> None:
    """Deploys the replicas and their ingress on `host:port` (Ray Serve's proxy binds it),
    returns once a signal (SIGTERM, SIGINT) took them down again."""
    ray.init(
        address=settings.ray.address,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=True,
    )
    # After ray.init, which installs handlers of its own that end the process at once.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(application(settings), name=APP_NAME, route_prefix="/")
        logger.info("%d replicas serving on %s:%d", settings.ray.count, host, port)
        stop.wait()
        serve.delete(APP_NAME)
        serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()
