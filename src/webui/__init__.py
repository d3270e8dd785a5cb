"""The soundtrack web app and the rating web app (one Flask server, started by src/webapp.py).

Modules, one job each:

* :mod:`webui.media`      uploads checked as videos, browser previews (H.264 + AAC), ffprobe;
* :mod:`webui.jobs`       the job table in SQLite and the single worker thread consuming it;
* :mod:`webui.soundtrack` one job: form options -> pipeline.Options -> songs, WAVs, videos, previews;
* :mod:`webui.ratings`    the ratings table in SQLite, its CSV export and per-model summary;
* :mod:`webui.evalset`    the listening-test clips (a folder of videos, one sub-folder per model);
* :mod:`webui.server`     the Flask app: pages, JSON endpoints, sessions, file downloads.
"""
