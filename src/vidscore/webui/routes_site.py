"""What is not a page of its own: the site icon and the health check."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, send_from_directory

from vidscore.webui.web import state

bp = Blueprint("site", __name__)


@bp.get("/favicon.ico")
def favicon():
    return send_from_directory(current_app.static_folder, "favicon.ico", mimetype="image/vnd.microsoft.icon")


@bp.get("/api/health")
def health():
    st = state()
    return jsonify(ok=True, model=st.cfg.model_name, pending=st.jobs.pending())
