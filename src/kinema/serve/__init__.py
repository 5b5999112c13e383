"""``kinema serve``: an HTTP worker with token auth that runs the same job specs as the other
surfaces, so a laptop can send heavy model work to a GPU box (see ``docs/serve.md``). Like every
surface it parses input, reports progress and calls ``kinema.app``; it never imports another
surface: the CLI's ``kinema serve`` command checks its options and is handed :func:`serve` by the
composition layer (``kinema.entry``). FastAPI and uvicorn are imported only when it starts.
"""

from __future__ import annotations

from pathlib import Path


def serve(*, host: str, port: int, token: str | None, workers: int, max_upload_mb: int,
          store: Path, models: dict[str, Path] | None = None, ray: bool = False,
          max_store_gb: float | None = None) -> None:
    """Run the worker on ``host:port`` until interrupted, storing blobs and results in
    ``store``; ``models`` are folders jobs may name besides the registry's models; with
    ``ray`` each job runs in a Ray task (``$KINEMA_RAY``'s cluster, else a local one);
    ``max_store_gb`` bounds the stored blobs (least recently used forgotten first)."""
    from kinema.core.extras import require

    for module in ("fastapi", "uvicorn"):
        require(module, "serve", feature="kinema serve")
    import uvicorn

    from kinema.serve.app import create_app

    if ray:
        from kinema.app.ray_pool import connect

        connect()  # an unreachable cluster is one error now, not on the first job
    limit = None if max_store_gb is None else int(max_store_gb * 2**30)
    app = create_app(store, token, max_upload_mb, workers=workers, models=models, ray=ray,
                     max_store_bytes=limit)
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
