"""The soundtrack web app and the rating web app (one Flask server, started by src/webapp.py).

Modules, one job each:

* :mod:`webui.media`      uploads checked as videos, browser previews (H.264 + AAC), ffprobe;
* :mod:`webui.jobs`       the job table in SQLite and the single worker thread consuming it;
* :mod:`webui.soundtrack` one job: form options -> pipeline.Options -> songs, WAVs, videos, previews;
* :mod:`webui.ratings`    the ratings and A/B tables in SQLite, CSV exports, summary (mean, sd, n, 95 % CI);
* :mod:`webui.evalset`    the listening-test clips (one sub-folder per model), blind tokens, A/B pairs;
* :mod:`webui.server`     the Flask app: state, cookie settings, request checks, error pages;
* :mod:`webui.routes_soundtrack`, :mod:`webui.routes_listening`, :mod:`webui.routes_site`
                          the routes, one blueprint per part (see each module);
* :mod:`webui.web`        what the routes share: the state, the session id, the rater id.
"""
