"""The bare FastAPI baseline for the single-record ingress benchmark, run as a child:

    python -m devstack.bench.baseline_app --port P     (settings from MM_*)

One endpoint that reads the body and does one acknowledged produce with the bridge's own
AckedProducer, served by uvicorn exactly as the bridge is (mmstream.serve). No
auth, validation, middleware, CloudEvents headers or logging: bridge/baseline is what those
cost on top of "HTTP in, acks=all produce, HTTP out".
"""

from __future__ import annotations

import argparse
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mmstream import log
from mmstream.kafka.producer import AckedProducer, OutRecord
from mmstream.settings import Settings, get_settings

RAW = "raw.onec.product"


def create_app(settings: Settings) -> FastAPI:
    """The baseline app; it produces to the raw product topic of ``settings``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.producer = AckedProducer(settings.kafka, client_id="mm-bench-baseline")
        try:
            yield
        finally:
            app.state.producer.close()

    app = FastAPI(lifespan=lifespan)
    topic = settings.topic(RAW)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/produce", status_code=202)
    async def produce(request: Request) -> JSONResponse:
        # No key: the bridge keys by Ref_Key, which needs the body parsed; the baseline
        # stays bare, and partitioning costs the producer the same either way.
        delivered = await request.app.state.producer.send(OutRecord(topic, await request.body()))
        return JSONResponse(
            {"partition": delivered.partition, "offset": delivered.offset}, status_code=202
        )

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="devstack.bench.baseline_app")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    from mmstream.serve import serve

    settings = get_settings()
    log.setup("bench-baseline", settings.log_level, settings.log_format)
    serve(create_app(settings), "127.0.0.1", args.port, "bench baseline app", "--port")


if __name__ == "__main__":
    main()
