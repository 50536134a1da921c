// Temporal queries and video-level results in the web UI (issue 19): "then" steps, their window in seconds, the
// "one hit per video" toggle, and a hit's chain as a row of thumbnails. Loaded after app.js, whose state, el(),
// fmtTime(), fmtScore(), openViewer() and run() it uses; app.js calls readSteps(), showSteps() and chainRow().
"use strict";

function addThen(value = "") {
  const input = el("input", { class: "then", type: "search", form: "search", value, "aria-label": "then",
    placeholder: 'then: concept, "text:words" or "like:42"' });
  const item = el("span", { class: "step" }, "then", input, el("button", { type: "button", title: "remove this step",
    "aria-label": "remove this step", onclick: () => { item.remove(); syncSteps(); } }, "×"));
  $("thenlist").append(item);
  syncSteps();
  return input;
}

function syncSteps() { $("withinrow").hidden = !document.querySelector("#thenlist .then"); }

// The steps typed, their window and the toggle, into the query (on submit).
function readSteps() {
  state.then = [...document.querySelectorAll("#thenlist .then")].map((i) => i.value.trim()).filter(Boolean);
  state.within = $("within").value.trim() || "10";  // the server says what is wrong with a bad one
  state.group = $("byvideo").checked ? "video" : "";
}

// The query's steps, window and toggle into the inputs (from the URL).
function showSteps() {
  $("thenlist").replaceChildren();
  state.then.forEach((t) => addThen(t));
  $("within").value = state.within;
  $("byvideo").checked = state.group === "video";
  syncSteps();
}

// A temporal hit's chain: each later step's shot, a thumbnail that opens it in the viewer.
function chainRow(h) {
  const row = el("div", { class: "chain", "aria-label": "followed by" });
  h.then.forEach((c, i) => row.append(el("span", { class: "arrow", "aria-hidden": "true" }, "→"),
    el("button", { type: "button", class: "chainshot", "data-segment": c.segment_id,
      title: `then ${fmtTime(c.start)}–${fmtTime(c.end)} · step score ${fmtScore(c.score)}`,
      onclick: () => openViewer({ ...h, segment_id: c.segment_id, start: c.start, end: c.end, score: c.score, why: null }) },
    el("img", { src: `/api/segments/${c.segment_id}/thumbnail`, alt: `step ${i + 2} at ${fmtTime(c.start)}`, loading: "lazy" }),
    fmtTime(c.start))));
  return row;
}

$("addthen").addEventListener("click", () => addThen().focus());
$("byvideo").addEventListener("change", () => {
  readSteps();
  state.offset = 0;
  if (state.concept.length || state.like.length || state.text) run();
});
showSteps();  // a query's steps from the URL, read by app.js before this file ran
