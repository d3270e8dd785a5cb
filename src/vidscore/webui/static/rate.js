// The rating pages: each clip's form posts its scores (and, for creators, the controls) as JSON.
"use strict";
(function () {
  const HEADERS = {"X-Requested-With": "cmt", "Content-Type": "application/json"};

  // What every form's submit does first: its message line, and the listener's level (asked for
  // when not chosen yet).
  function start(form) {
    const msg = form.querySelector(".msg");
    const say = (text, kind) => { msg.textContent = text; msg.className = `msg ${kind}`; };
    const level = document.querySelector("input[name=level]:checked");
    if (!level) say("First choose your musical background at the top of the page.", "error");
    return {say, level};
  }

  // Post a form's answers as JSON; says what happened and returns whether they were saved.
  async function post(url, body, say) {
    try {
      const r = await fetch(url, {method: "POST", headers: HEADERS, body: JSON.stringify(body)});
      const answer = await r.json().catch(() => ({}));
      say(r.ok ? "Saved." : (answer.error || `Not saved (HTTP ${r.status}).`), r.ok ? "ok" : "error");
      return r.ok;
    } catch (err) {
      say("Not saved: the server did not answer.", "error");
      return false;
    }
  }

  // A/B comparisons: which of the two is better, per criterion
  for (const form of document.querySelectorAll("form.ab")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const {say, level} = start(form);
      if (!level) return;
      const answers = {};
      for (const c of form.querySelectorAll(".choice")) {
        const picked = c.querySelector("input:checked");
        answers[c.dataset.criterion] = picked ? picked.value : "";
      }
      if (Object.values(answers).some((v) => v === "")) { say("Choose A, same or B for every criterion.", "error"); return; }
      await post("/api/comparisons", {item: form.dataset.item, level: level.value, answers}, say);
    });
  }

  for (const form of document.querySelectorAll("form.rating")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const {say, level} = start(form);
      if (!level) return;
      const scores = {};
      for (const s of form.querySelectorAll("select.score")) scores[s.name] = s.value;
      if (Object.values(scores).some((v) => v === "")) { say("Give a score for every criterion.", "error"); return; }
      const controls = {};
      for (const c of form.querySelectorAll(".control")) {
        const picked = c.querySelector("input:checked");
        controls[c.dataset.control] = picked ? picked.value : "";
      }
      if (Object.values(controls).some((v) => v === "")) { say("Say yes, partly or no for every control.", "error"); return; }
      const body = {role: form.dataset.role, item: form.dataset.item, level: level.value, scores};
      if (form.dataset.role === "creator") body.controls = controls;
      if (await post("/api/ratings", body, say)) {
        const h = form.querySelector("h2");
        if (!h.querySelector(".saved")) h.append(" ", Object.assign(document.createElement("span"), {className: "saved", textContent: "rated"}));
      }
    });
  }
})();
