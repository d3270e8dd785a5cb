"""The soundtrack web app and the rating web app, on one server on this machine.

    python src/webapp.py [--host 127.0.0.1 --port 7860 --ckpt PATH --data_dir DIR]

then open http://127.0.0.1:7860/ in a browser.  Soundtrack page (/): upload a video, choose
the visual-beat threshold, tempo, instruments, their sounds (General MIDI programs), key,
genre and emotion (where the model has them), whether to keep the video's own sound, and
the number of songs; jobs run one at a time, show their stage and percentage and the beats
picture, can be cancelled, regenerated with a new seed and deleted, and the page plays and
offers each result for download.  Rating pages: /listen (blind listening test), /create
(rate your own results and the controls; A/B comparisons of two models), /summary, and
/ratings.csv, /comparisons.csv.  Jobs, uploads, results and ratings (SQLite) live in
--data_dir; listening-test clips in --eval_dir, one folder per model.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path

from vidscore import cli

ROOT = Path(__file__).resolve().parents[1]
GENERIC_STEMS = {"model", "best", "last", "checkpoint", "ckpt"}


def default_model_name(ckpt: Path) -> str:
    """exp/bundled/model.pt -> "bundled"; runs/loss_8_params.pt -> "loss_8_params"."""
    return ckpt.parent.name if ckpt.stem in GENERIC_STEMS and ckpt.parent.name else ckpt.stem


def check_port(host: str, port: int) -> None:
    """UserError when ``host:port`` cannot be listened on (werkzeug would exit with its own text)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise cli.UserError(f"--host {host} is not an address of this machine ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise cli.UserError(f"cannot listen on {host}:{port} ({e.strerror or e}); "
                                "pass another --port") from None


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one and prints it)")
    ap.add_argument("--ckpt", default=None, help="model checkpoint (default: the bundled exp/bundled/model.pt)")
    ap.add_argument("--model_name", default=None,
                    help="name the ratings of this server's results are grouped under (default: from --ckpt)")
    ap.add_argument("--data_dir", default=str(ROOT / "webapp_data"),
                    help="jobs, uploads, results and ratings (default: <repo>/webapp_data)")
    ap.add_argument("--eval_dir", default=None,
                    help="listening-test clips, one sub-folder per model (default: DATA_DIR/eval_set)")
    ap.add_argument("--max_upload_mb", type=float, default=200.0, help="largest upload in MB (default 200)")
    ap.add_argument("--max_video_s", type=float, default=600.0, help="longest video in seconds (default 600)")
    ap.add_argument("--max_songs", type=int, default=5, help="most songs per job (default 5)")
    ap.add_argument("--verbose", action="store_true", help="log every HTTP request")
    return ap.parse_args(argv)


def main() -> int:
    args = parse_args()
    from vidscore.generation import job as pipeline

    if not 0 <= args.port <= 65535:
        raise cli.UserError(f"--port must be 0..65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_video_s <= 0 or args.max_songs < 1:
        raise cli.UserError("--max_upload_mb and --max_video_s must be positive and --max_songs at least 1")
    ckpt = Path(args.ckpt) if args.ckpt else pipeline.DEFAULT_CKPT
    if not ckpt.is_file():
        raise cli.UserError(f"no checkpoint at {ckpt}: train one with `python src/main_cp.py --mode train` "
                            "or pass --ckpt pointing at a checkpoint")

    check_port(args.host, args.port)
    from werkzeug.serving import make_server

    from main_cp import HP
    from vidscore.webui import media
    from vidscore.webui.server import AppConfig, create_app

    missing = media.missing_tools()
    if missing:
        raise cli.UserError("the soundtrack app needs " + "; ".join(missing))
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        os.environ.setdefault("CMT_NO_PROGRESS", "1")   # the pages show each job's stage instead
    hp = dict(HP)      # the hyperparameter block reaches the web app: C, sampling, limits, device, dtype
    model = pipeline.load_model(ckpt, hp["device"], hp["dtype"], threads=hp["threads"])   # the CLI's loading step, dtype included
    cfg = AppConfig(data_dir=Path(args.data_dir), model=model, hp=hp,
                    model_name=args.model_name or default_model_name(ckpt),
                    eval_dir=Path(args.eval_dir) if args.eval_dir else None, max_upload_mb=args.max_upload_mb,
                    max_songs=args.max_songs, max_video_s=args.max_video_s)
    try:
        app = create_app(cfg)
    except OSError as e:
        raise cli.UserError(f"cannot use --data_dir {args.data_dir}: {e.strerror or e}") from None
    state = app.extensions["cmt"]
    server = make_server(args.host, args.port, app, threaded=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    if state.requeued:
        print(f"re-queued {state.requeued} job(s) interrupted by the last stop", flush=True)
    print(f"model {cfg.model_name} ({ckpt}); data in {state.data_dir}", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: anyone who can reach this machine can use the app", flush=True)
    print(f"serving on http://{host}:{server.port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped; unfinished jobs run again on the next start", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    cli.run(main)
