// The review page's keyboard and saving. Every change is POSTed at once; the server answers with the saved state.
(function () {
  "use strict";
  const $ = (sel) => document.querySelector(sel);
  const csrf = ($('meta[name="csrf-token"]') || {}).content || "";
  const fill = $("#progress-fill");
  if (fill) fill.style.width = fill.dataset.percent + "%";

  const article = $("#item");
  let go = (url) => { window.location.assign(url); };
  const commonKeys = { n: "/next", s: "/stats" };

  if (!article) {  // stats or done page: only navigation
    document.addEventListener("keydown", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (commonKeys[ev.key]) { ev.preventDefault(); go(commonKeys[ev.key]); }
    });
    return;
  }

  const itemId = article.dataset.itemId;
  const cur = $("#current-decision");
  const state = { decision: cur.dataset.decision || null, answer: cur.dataset.answer || "",
                  fluency: cur.dataset.fluency ? parseInt(cur.dataset.fluency, 10) : null,
                  comment: $("#comment").value };
  const status = $("#save-status");
  const fixSelect = $("#fix-answer");
  const players = Array.from(document.querySelectorAll("audio"));
  const player = (n) => document.querySelector('audio[data-n="' + n + '"]');  // clip n's, when its audio is here
  let lastPlayer = null;

  function render() {
    let text = state.decision ? (state.decision === "fix" ? "fix → " + state.answer : state.decision) : "none yet";
    if (state.fluency) text += " · fluency " + state.fluency;
    cur.textContent = text;
    cur.dataset.decision = state.decision || "";
    document.querySelectorAll("[data-decision]").forEach((b) => {
      if (b.tagName === "BUTTON") b.classList.toggle("on", b.dataset.decision === state.decision);
    });
    document.querySelectorAll("[data-fluency]").forEach((b) => {
      b.classList.toggle("on", parseInt(b.dataset.fluency, 10) === state.fluency);
    });
  }

  // Saves go one after another (so the last state pressed is the one stored), with keepalive (so leaving the page
  // does not cancel one); navigation waits for them.
  let saving = Promise.resolve();
  go = (url) => { saving.then(() => window.location.assign(url)); };
  function save() {
    const body = JSON.stringify({ item_id: itemId, decision: state.decision, answer: state.answer,
                                  fluency: state.fluency, comment: state.comment });
    saving = saving.then(() => post(body));
    return saving;
  }
  async function post(body) {
    status.textContent = "saving…";
    status.className = "";
    try {
      const resp = await fetch("/api/decision", {
        method: "POST", credentials: "same-origin", keepalive: true,
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: body,
      });
      const reply = await resp.json();
      if (!resp.ok) throw new Error(reply.error || resp.statusText);
      status.textContent = "saved ✓";
      status.className = "ok";
      article.dataset.saves = String(parseInt(article.dataset.saves || "0", 10) + 1);
      const p = reply.progress;
      $("#progress-text").textContent = p.done + " / " + p.total;
      fill.style.width = p.percent + "%";
    } catch (e) {
      status.textContent = "NOT saved: " + e.message;
      status.className = "error";
    }
  }

  function decide(decision) {
    state.decision = decision;
    state.answer = decision === "fix" && fixSelect ? fixSelect.value : "";
    render();
    return save();
  }
  function setFluency(v) { state.fluency = v; render(); return save(); }

  function play(n) {
    const p = player(n);
    if (!p) return;
    players.forEach((o) => { if (o !== p) o.pause(); });
    p.currentTime = 0;
    p.play();
    lastPlayer = p;
  }
  function toggle() {
    const p = lastPlayer || players[0];
    if (!p) return;
    if (p.paused) { p.play(); } else { p.pause(); }
    lastPlayer = p;
  }

  document.querySelectorAll("button[data-decision]").forEach((b) => b.addEventListener("click", () => decide(b.dataset.decision)));
  document.querySelectorAll("button[data-fluency]").forEach((b) => b.addEventListener("click", () => setFluency(parseInt(b.dataset.fluency, 10))));
  players.forEach((p) => p.addEventListener("play", () => { lastPlayer = p; }));
  if (fixSelect) fixSelect.addEventListener("change", () => { if (state.decision === "fix") decide("fix"); });
  const comment = $("#comment");
  comment.addEventListener("change", () => { state.comment = comment.value; save(); });

  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (t === comment) {
      if (ev.key === "Escape" || (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey))) {
        ev.preventDefault();
        comment.blur();  // fires change → save when the text changed
      }
      return;
    }
    if (t === fixSelect && (ev.key === "Enter" || ev.key === "Escape")) {
      ev.preventDefault();
      fixSelect.blur();
      if (ev.key === "Enter") decide("fix");
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.tagName === "INPUT")) return;
    // Shift + digit n plays clip n (1-9): by the key's position (ev.code), as Shift+3 is "#", "£" or "3" by layout
    const digit = /^(Digit|Numpad)([1-9])$/.exec(ev.code || "");
    if (ev.shiftKey && digit) { ev.preventDefault(); play(parseInt(digit[2], 10) - 1); return; }
    const next = $("#next-link"), prev = $("#prev-link");
    switch (ev.key) {
      case "k": decide("keep"); break;
      case "d": decide("drop"); break;
      case "f":
        if (!fixSelect) return;
        if (fixSelect.options.length === 1) { decide("fix"); } else { fixSelect.focus(); }
        break;
      case "1": case "2": case "3": setFluency(parseInt(ev.key, 10)); break;
      case "e": comment.focus(); break;
      case "a": play(0); break;
      case "b": play(1); break;
      case " ": toggle(); break;
      case "n": case "Enter": go("/next?after=" + encodeURIComponent(itemId)); break;
      case "j": case "ArrowRight": if (next) go(next.getAttribute("href")); break;
      case "h": case "ArrowLeft": if (prev) go(prev.getAttribute("href")); break;
      case "s": go("/stats"); break;
      default: return;
    }
    ev.preventDefault();
  });
  render();
})();
