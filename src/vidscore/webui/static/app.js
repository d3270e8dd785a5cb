// The soundtrack page: submit a job (with upload progress), then follow the session's jobs.
"use strict";
(function () {
  const HEADERS = {"X-Requested-With": "cmt"};
  const form = document.getElementById("job-form");
  const fileInput = document.getElementById("video-file");
  const message = document.getElementById("message");
  const progress = document.getElementById("upload-progress");
  const jobsEl = document.getElementById("jobs");
  const noJobs = document.getElementById("no-jobs");
  const maxBytes = Number(form.dataset.maxBytes);
  const rendered = new Map();   // job id -> JSON of what its card shows
  let timer = null;
  // the job this page submitted last (kept over a reload): the message under the form follows its state
  let followed = sessionStorage.getItem("cmt-followed");
  function follow(id) {
    followed = id;
    if (id) sessionStorage.setItem("cmt-followed", id); else sessionStorage.removeItem("cmt-followed");
  }

  const threshold = document.getElementById("threshold");
  threshold.addEventListener("input", () => {
    document.getElementById("threshold-value").textContent = threshold.value;
  });
  const bpm = document.getElementById("tempo-bpm");
  document.querySelectorAll("input[name=tempo_mode]").forEach((r) =>
    r.addEventListener("change", () => { bpm.disabled = !document.getElementById("tempo-manual").checked; }));

  function say(text, kind) {
    message.textContent = text;
    message.className = kind || "";
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = fileInput.files[0];
    if (!file) { say("Choose a video file first.", "error"); return; }
    if (file.size > maxBytes) {
      say(`The file is too large: uploads are limited to ${form.dataset.maxMb} MB.`, "error");
      return;
    }
    const data = new FormData(form);   // disabled fields (the fixed tempo when automatic) are left out
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    for (const [k, v] of Object.entries(HEADERS)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable) { progress.hidden = false; progress.value = ev.loaded / ev.total; }
    };
    xhr.onload = () => {
      progress.hidden = true;
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { /* not JSON */ }
      if (xhr.status === 201) {
        follow(body.job.id);
        say(stateMessage(body.job), "ok");
        fileInput.value = "";
        refresh();
      } else {
        say(body.error || `The upload failed (HTTP ${xhr.status}).`, "error");
      }
    };
    xhr.onerror = () => {
      progress.hidden = true;
      say("The upload failed: the server did not answer (is the file over the size limit?).", "error");
    };
    say("Uploading…", "");
    xhr.send(data);
  });

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "className") node.className = v; else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function optionsLine(job) {
    return job.summary.join(" · ");
  }

  function stageText(job) {
    if (job.status === "queued") return job.ahead ? `queued (${job.ahead} ahead)` : "queued";
    return job.status === "running" ? job.stage : "";
  }

  // the line under the form, for the job this page submitted: it follows the job's state
  function stateMessage(job) {
    switch (job.status) {
      case "queued": return job.ahead ? `Your job is in the queue (${job.ahead} ahead of it).` : "Your job is in the queue.";
      case "running": return `Your job is running: ${job.stage}.`;
      case "done": return "Your music is ready: play or download it below.";
      case "cancelled": return "Your job was cancelled.";
      default: return `Your job failed: ${job.error || "no reason given"}`;
    }
  }

  async function act(job, what) {
    const url = what === "delete" ? `/api/jobs/${job.id}` : `/api/jobs/${job.id}/${what}`;
    const r = await fetch(url, {method: what === "delete" ? "DELETE" : "POST", headers: HEADERS});
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { say(body.error || `Could not ${what} the job (HTTP ${r.status}).`, "error"); return; }
    if (what === "regenerate") { follow(body.job.id); say(stateMessage(body.job), "ok"); }
    if (what === "delete" && followed === job.id) { follow(null); say("Job deleted.", "ok"); }
    refresh();
  }

  function actions(job) {
    const box = el("div", {className: "job-actions"});
    const button = (what, label) => {
      const b = el("button", {type: "button", className: `job-${what}`}, label);
      b.addEventListener("click", () => { b.disabled = true; act(job, what); });
      box.append(b);
    };
    if (job.status === "queued" || job.status === "running") button("cancel", "Cancel");
    if (job.status !== "running") button("regenerate", "Regenerate (new seed)");
    if (job.status !== "running") button("delete", "Delete");
    return box;
  }

  function songFigure(job, song) {
    const m = song.preview_media || {};
    const facts = [];
    if (song.tempo) facts.push(`${Math.round(song.tempo)} bpm`);
    if (song.n_bars) facts.push(`${song.n_bars} bars`);
    if (song.hit_rate !== null && song.hit_rate !== undefined) facts.push(`visual beats hit: ${Math.round(100 * song.hit_rate)}%`);
    facts.push(m.audio ? `audio: ${m.audio}${m.sample_rate ? " " + m.sample_rate + " Hz" : ""}` : "no audio track");
    const addBtn = el("button", {type: "button", className: "to-listening"}, "add to the listening test");
    addBtn.addEventListener("click", async () => {
      addBtn.disabled = true;
      const r = await fetch(`/api/jobs/${job.id}/songs/${song.k}/listening`, {method: "POST", headers: HEADERS});
      addBtn.textContent = r.ok ? "added to the listening test" : "could not add it";
    });
    return el("figure", {className: "song", "data-k": song.k},
      el("video", {className: "preview", src: song.urls.preview, controls: true, preload: "metadata", playsinline: true}),
      el("figcaption", {},
        el("strong", {}, `Song ${song.k + 1}`), " · ", el("span", {className: "facts"}, facts.join(" · ")),
        el("br"),
        "Download: ",
        el("a", {className: "download-video", href: song.downloads.video, download: ""}, "video (mp4)"), " ",
        el("a", {className: "download-midi", href: song.downloads.midi, download: ""}, "MIDI"), " ",
        el("a", {className: "download-audio", href: song.downloads.audio, download: ""}, "audio (WAV)"), " ",
        el("a", {className: "download-report", href: song.downloads.report, download: ""}, "report (JSON)"), " ",
        ...(song.downloads.stems ? [el("a", {className: "download-stems", href: song.downloads.stems, download: ""},
                                        "stems (zip of WAVs)"), " "] : []),
        addBtn));
  }

  function jobCard(job) {
    const card = el("article", {className: `job panel ${job.status}`, "data-id": job.id, "data-status": job.status},
      el("h3", {}, job.name, " ",
        el("span", {className: `status status-${job.status}`}, job.status)),
      el("p", {className: "stage"}, stageText(job)),
      el("p", {className: "options hint"}, optionsLine(job)));
    if (job.status === "running") {
      card.append(el("progress", {className: "job-progress", max: 1, value: job.progress || 0,
                                  "aria-label": "progress of this stage"}));
    }
    if (job.error) card.append(el("p", {className: "error job-error"}, job.error));
    if (job.results.length) card.append(el("div", {className: "songs"}, ...job.results.map((s) => songFigure(job, s))));
    if (job.beats_url) {
      card.append(el("details", {className: "beats", open: true},
        el("summary", {}, "What the music follows: motion, impact envelope, visual beats and the forced beats"),
        el("a", {href: job.beats_url, target: "_blank", rel: "noopener", title: "open the picture at full size"},
          el("img", {className: "beats", src: job.beats_url, loading: "lazy",
                     alt: "motion and impact envelope over time, with the visual beats and the beats the music was forced to accent"}))));
    }
    card.append(actions(job));
    return card;
  }

  async function refresh() {
    clearTimeout(timer);
    let jobs = [];
    try {
      const r = await fetch("/api/jobs", {cache: "no-store"});
      jobs = (await r.json()).jobs || [];
    } catch (err) {
      timer = setTimeout(refresh, 3000);
      return;
    }
    noJobs.hidden = jobs.length > 0;
    const keep = new Set();
    let prev = null;
    for (const job of jobs) {
      keep.add(job.id);
      const key = JSON.stringify([job.status, stageText(job), job.progress, job.error, job.results.length]);
      let card = jobsEl.querySelector(`article[data-id="${job.id}"]`);
      if (!card || rendered.get(job.id) !== key) {   // redraw only what changed: playing videos keep playing
        const fresh = jobCard(job);
        if (card) card.replaceWith(fresh); else jobsEl.append(fresh);
        card = fresh;
        rendered.set(job.id, key);
      }
      if (prev ? prev.nextSibling !== card : jobsEl.firstChild !== card) {
        if (prev) prev.after(card); else jobsEl.prepend(card);
      }
      prev = card;
    }
    for (const card of [...jobsEl.children]) if (!keep.has(card.dataset.id)) card.remove();
    const mine = jobs.find((j) => j.id === followed);
    if (mine) say(stateMessage(mine), mine.status === "failed" ? "error" : "ok");
    if (jobs.some((j) => j.status === "queued" || j.status === "running")) timer = setTimeout(refresh, 1000);
  }

  refresh();
})();
