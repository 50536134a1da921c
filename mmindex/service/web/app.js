// mmindex web UI: plain JS over the HTTP API (docs/service.md). No build step, no dependencies.
// Every piece of data goes into the page through textContent or attributes, never innerHTML.
// Teaching concepts ("Save as concept", "Label more") is teach.js, loaded after this file.
"use strict";

const $ = (id) => document.getElementById(id);
const PAGE = 24;
const state = { concept: [], like: [], text: "", offset: 0, explain: true, upload: null, marks: new Map(), taught: null,
  then: [], within: "10", group: "" };  // then, within, group: temporal.js
let features = { text: false, feedback: false, upload: true, write: false };
let lastHits = [];

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// Thumbs icons drawn as SVG: headless and minimal systems often have no emoji font.
const THUMB = "M7 10v11H3V10zM7 10l4-8a3 3 0 0 1 3 3v4h6a2 2 0 0 1 2 2.3l-1.4 8A2 2 0 0 1 18.6 21H7";
function icon(flip) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  if (flip) svg.setAttribute("transform", "rotate(180)");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", THUMB);
  svg.append(path);
  return svg;
}

// A proposal drawn at random (no detector yet) has no score.
const fmtScore = (score) => (score === null || score === undefined ? "–" : score.toFixed(3));

function fmtTime(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

function setStatus(text, isError = false, suggestions = []) {
  const status = $("status");
  status.replaceChildren(text);
  status.classList.toggle("error", isError);
  if (suggestions.length) {
    status.append(" Try: ");
    suggestions.forEach((s, i) => {
      status.append(el("button", { type: "button", class: "link", onclick: () => { $("q").value = s; submit(); } }, s));
      if (i < suggestions.length - 1) status.append(", ");
    });
  }
}

// ---- URL state: a search is a link (back button, sharing) ----------------------------------------
function toParams() {
  const p = new URLSearchParams();
  state.concept.forEach((c) => p.append("concept", c));
  state.like.forEach((l) => p.append("like", l));
  if (state.text) p.set("text", state.text);
  state.then.forEach((t) => p.append("then", t));
  if (state.then.length && state.within !== "10") p.set("within", state.within);
  if (state.group) p.set("group", state.group);
  if (state.offset) p.set("offset", state.offset);
  return p;
}

function fromURL() {
  const p = new URLSearchParams(location.search);
  state.concept = p.getAll("concept");
  state.like = p.getAll("like");
  state.text = p.get("text") || "";
  state.then = p.getAll("then");
  state.within = p.get("within") || "10";
  state.group = p.get("group") || "";
  if (typeof showSteps === "function") showSteps();  // temporal.js, which shows them itself when it comes later
  state.offset = Math.max(0, parseInt(p.get("offset") || "0", 10) || 0);
  state.upload = null;
  $("q").value = state.text || state.concept.join(" AND ");
  if (state.text) $("mode").value = "text";
}

// ---- searching ---------------------------------------------------------------------------------------
async function run(push = true) {
  renderChips();
  const empty = !state.concept.length && !state.like.length && !state.text && !state.upload;
  if (empty) { $("grid").replaceChildren(); $("pager").hidden = true; setStatus("Type a concept, or pick an image."); return; }
  if (push) history.pushState(null, "", "?" + toParams().toString());
  setStatus("Searching…");
  let res;
  try {
    if (state.upload) {
      const form = new FormData();
      form.append("image", state.upload);
      form.append("k", PAGE);
      form.append("offset", state.offset);
      form.append("explain", "true");
      res = await fetch("/api/search", { method: "POST", body: form });
    } else {
      const p = toParams();
      p.set("k", PAGE);
      p.set("explain", "true");
      res = await fetch("/api/search?" + p.toString());
    }
  } catch (e) { setStatus("The server did not answer.", true); return; }
  await show(res);
}

async function show(res) {
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) { setStatus(body.error || `HTTP ${res.status}`, true, body.suggestions || []); return; }
  lastHits = body.hits;
  const first = body.offset + 1, last = body.offset + body.hits.length;
  setStatus(body.hits.length ? `Hits ${first}–${last} · ${body.took_ms.toFixed(0)} ms` : "No hits.");
  if (body.message) $("status").append(" " + body.message);
  const understood = body.explanation ? describe(body.explanation) : "";
  if (understood) $("status").append(el("span", { class: "explanation" }, " · understood as " + understood));
  renderGrid(body.hits);
  noteConcept();  // teach.js: offer "Label more" when the query is one of the index's own concepts
  $("pager").hidden = !(body.offset > 0 || body.next_offset !== null && body.next_offset !== undefined);
  $("prev").disabled = body.offset === 0;
  $("next").disabled = body.next_offset === null || body.next_offset === undefined;
  $("page").textContent = `page ${Math.floor(body.offset / PAGE) + 1}`;
}

// The text-to-concept explanation: which concepts each free text was mapped to, with their weights; a
// compositional text shows its parse, the parts joined by AND ("dog 1.00 AND seashore 0.63, lakeside 0.28").
function describe(explanation) {
  const texts = (explanation.criteria || []).filter((c) => c.kind === "text");
  const concepts = (list) => (list || []).filter((k) => k.weight >= 0.005).slice(0, 6)
    .map((k) => `${k.name} ${k.weight.toFixed(2)}`).join(", ");
  return texts.map((c) => {
    const parts = (c.parse && c.parse.parts) || [];
    const ignored = (c.parse && c.parse.ignored) || [];
    return `“${c.text}” → ` + (parts.length ? parts.map((p) => `(${concepts(p.concepts)})`).join(" AND ")
                                             : concepts(c.concepts))
      + (ignored.length ? ` (left out: ${ignored.join(", ")})` : "");
  }).join(" · ");
}

function submit() {
  const q = $("q").value.trim();
  cancelSuggest();
  state.marks.clear();
  state.offset = 0;
  state.upload = null;
  readSteps();  // temporal.js
  if ($("mode").value === "text") { state.text = q; state.concept = []; }
  else { state.concept = q ? [q] : []; state.text = ""; }
  run();
}

function moreLike(id) {
  state.marks.clear();
  state.concept = []; state.text = ""; state.like = [String(id)]; state.offset = 0; state.upload = null;
  $("q").value = "";
  $("viewer").open && $("viewer").close();
  run();
}

// ---- results -----------------------------------------------------------------------------------------
function renderGrid(hits) {
  const grid = $("grid");
  delete grid.dataset.proposals;  // set by teach.js while the grid shows segments to judge, not hits
  grid.replaceChildren(...hits.map((h, i) => card(h, state.offset + i + 1)));
  updateFeedbackBar();
}

// A file name that is not UTF-8 comes as lone surrogates ("\udce9" for the byte 0xe9, as Python holds it):
// show its bytes escaped ("caf\xe9"), as the command line does. The "u" flag leaves real pairs alone.
const shownPath = (path) => path.replace(/[\udc80-\udcff]/gu, (c) => "\\x" + (c.charCodeAt(0) - 0xdc00).toString(16));

function card(h, rank) {
  const name = shownPath(h.path).split("/").pop();
  const isVideo = h.kind === "video";
  const img = el("img", { src: `/api/segments/${h.segment_id}/thumbnail`, alt: name, loading: "lazy", decoding: "async" });
  const thumb = el("button", { type: "button", class: "thumb", title: `open ${name}`, onclick: () => openViewer(h) }, img);
  if (isVideo) thumb.append(el("span", { class: "badge" }, "▶ " + fmtTime(h.start) + "–" + fmtTime(h.end)));
  const mark = state.marks.get(h.segment_id) || 0;
  const up = el("button", { type: "button", class: "vote up", title: "relevant", "aria-label": "relevant", "aria-pressed": String(mark > 0), onclick: () => vote(h.segment_id, 1) }, icon(false));
  const down = el("button", { type: "button", class: "vote down", title: "not relevant", "aria-label": "not relevant", "aria-pressed": String(mark < 0), onclick: () => vote(h.segment_id, -1) }, icon(true));
  const meta = el("div", { class: "meta" },
    el("span", { class: "rank" }, `#${rank}`),
    el("span", { class: "score", title: "score (higher is better)" }, fmtScore(h.score)),
    el("span", { class: "name", title: shownPath(h.path) }, name));
  if (h.matches) meta.append(el("span", { class: "matches", title: "matching segments in this file" }, `${h.matches} match${h.matches > 1 ? "es" : ""}`));
  const actions = el("div", { class: "actions" },
    el("button", { type: "button", class: "more", onclick: () => moreLike(h.segment_id) }, "More like this"), up, down);
  const li = el("li", { class: "card", "data-segment": h.segment_id, "data-kind": h.kind }, thumb, meta, actions);
  if (h.then) li.append(chainRow(h));  // temporal.js: the shots that follow
  if (h.why) li.append(el("p", { class: "why" }, whyText(h.why)));
  return li;
}

function whyText(why) {
  return Object.entries(why).map(([k, v]) => `${k.replace(/^like:/, "like #")} ${v.toFixed(3)}`).join(" · ");
}

function openViewer(h) {
  const box = $("viewer-media");
  const src = `/api/media/${h.segment_id}`;
  if (h.kind === "video") {
    // The media fragment starts playback at the shot; the server answers the browser's Range requests.
    const v = el("video", { src: `${src}#t=${h.start.toFixed(3)},${h.end.toFixed(3)}`, controls: true, autoplay: true, muted: true, playsinline: true, preload: "auto" });
    v.muted = true;
    box.replaceChildren(v);
  } else {
    box.replaceChildren(el("img", { src, alt: shownPath(h.path) }));
  }
  const when = h.kind === "video" ? ` · shot ${fmtTime(h.start)}–${fmtTime(h.end)}` : "";
  $("viewer-title").textContent = `${shownPath(h.path)}${when} · score ${fmtScore(h.score)}`;
  $("viewer-why").textContent = h.why ? whyText(h.why) : "";
  $("viewer-like").onclick = () => moreLike(h.segment_id);
  $("viewer").showModal();
}

// ---- relevance feedback ----------------------------------------------------------------------------
function vote(id, value) {
  if (state.marks.get(id) === value) state.marks.delete(id); else state.marks.set(id, value);
  const li = document.querySelector(`li[data-segment="${id}"]`);
  if (li) {
    li.querySelector(".up").setAttribute("aria-pressed", String(state.marks.get(id) === 1));
    li.querySelector(".down").setAttribute("aria-pressed", String(state.marks.get(id) === -1));
  }
  updateFeedbackBar();
}

function updateFeedbackBar() {
  const n = state.marks.size;
  $("feedbackbar").hidden = n === 0;
  $("feedbackcount").textContent = `${n} marked`;
  $("save").hidden = !features.write;  // teaching writes to the index: only a server started with a token
}

async function refine() {
  const positive = [...state.marks].filter(([, v]) => v > 0).map(([k]) => k);
  const negative = [...state.marks].filter(([, v]) => v < 0).map(([k]) => k);
  const body = { concept: state.concept, like: state.like.map((l) => parseInt(l, 10)), text: state.text || null, positive, negative, k: PAGE,
    then: state.then, within: parseFloat(state.within) || 10, group: state.group || "segment" };
  setStatus("Refining…");
  const res = await fetch("/api/feedback", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  state.offset = 0;
  await show(res);
}

// ---- examples shown as chips -------------------------------------------------------------------------
function renderChips() {
  const chips = [];
  state.like.forEach((id) => chips.push(el("span", { class: "chip" },
    el("img", { src: `/api/segments/${parseInt(id, 10)}/thumbnail`, alt: "" }), `like #${id}`,
    el("button", { type: "button", title: "remove", "aria-label": `remove example ${id}`, onclick: () => { state.like = state.like.filter((x) => x !== id); state.offset = 0; run(); } }, "×"))));
  if (state.upload) chips.push(el("span", { class: "chip" }, `like ${state.upload.name}`,
    el("button", { type: "button", title: "remove", onclick: () => { state.upload = null; state.offset = 0; run(); } }, "×")));
  $("chips").replaceChildren(...chips);
}

// ---- concept autocomplete ----------------------------------------------------------------------------
let suggestTimer = 0, active = -1, suggestAbort = null;
const OPERATOR = /\s*(?:\bAND\b|\bOR\b|\bNOT\b|[()])\s*/g;

function lastTerm(value) {
  const parts = value.split(OPERATOR);
  return parts[parts.length - 1].replace(/\^[\d.]*$/, "").replace(/^"/, "").trim();
}

function hideSuggest() { $("suggest").hidden = true; active = -1; }

// After a search, a suggestion list still on its way must not open over the results.
let submitted = null;
function cancelSuggest() {
  clearTimeout(suggestTimer);
  if (suggestAbort) suggestAbort.abort();
  submitted = $("q").value;
  hideSuggest();
}

async function suggest() {
  if ($("mode").value === "text") return hideSuggest();
  if ($("q").value === submitted) return;
  const term = lastTerm($("q").value);
  if (term.length < 2) return hideSuggest();
  if (suggestAbort) suggestAbort.abort();
  suggestAbort = new AbortController();
  let res;
  try { res = await fetch(`/api/concepts?limit=8&q=${encodeURIComponent(term)}`, { signal: suggestAbort.signal }); } catch { return; }
  if (!res.ok) return hideSuggest();
  const { concepts } = await res.json();
  const list = $("suggest");
  list.replaceChildren(...concepts.map((c, i) => el("li", { role: "option", id: `s${i}`, "data-name": c.name,
    onmousedown: (e) => { e.preventDefault(); pick(c.name); } },
    el("span", {}, c.name), el("small", {}, c.classes > 1 ? `${c.classes} classes` : c.id))));
  list.hidden = concepts.length === 0 || $("q").value === submitted || document.activeElement !== $("q");
  active = -1;
}

function pick(name) {
  const q = $("q");
  const term = lastTerm(q.value);
  const cut = q.value.lastIndexOf(term);
  q.value = (cut >= 0 ? q.value.slice(0, cut) : "") + name;
  hideSuggest();
  q.focus();
}

$("q").addEventListener("input", () => { submitted = null; clearTimeout(suggestTimer); suggestTimer = setTimeout(suggest, 120); });
$("q").addEventListener("blur", () => setTimeout(hideSuggest, 100));
$("q").addEventListener("keydown", (e) => {
  const items = [...$("suggest").children];
  if ($("suggest").hidden || !items.length) return;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    active = (active + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length;
    items.forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
  } else if (e.key === "Enter" && active >= 0) {
    e.preventDefault();
    pick(items[active].dataset.name);
  } else if (e.key === "Escape") hideSuggest();
});

// ---- wiring ------------------------------------------------------------------------------------------
$("search").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
$("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  state.upload = file; state.concept = []; state.like = []; state.text = ""; state.offset = 0;
  $("q").value = "";
  run(false);
  e.target.value = "";
});
$("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); run(!state.upload); scrollTo(0, 0); });
$("next").addEventListener("click", () => { state.offset += PAGE; run(!state.upload); scrollTo(0, 0); });
$("refine").addEventListener("click", refine);
$("viewer-close").addEventListener("click", () => $("viewer").close());
$("viewer").addEventListener("close", () => $("viewer-media").replaceChildren());
$("viewer").addEventListener("click", (e) => { if (e.target === $("viewer")) $("viewer").close(); });
$("mode").addEventListener("change", () => {
  $("q").placeholder = $("mode").value === "text" ? "describe it in words: a cat on a sofa" : 'concepts: espresso, "cat AND NOT dog", dog^2';
});
window.addEventListener("popstate", () => { fromURL(); run(false); });

// The deferred scripts after this one (teach.js) have all run once the document's content is loaded; the first
// search waits for that, since showing its hits calls into them (the health check need not wait).
const loaded = new Promise((resolve) => document.addEventListener("DOMContentLoaded", resolve, { once: true }));

(async function init() {
  try {
    const res = await fetch("/api/health");
    if (res.ok) features = (await res.json()).features;
  } catch { /* the search itself will report it */ }
  $("mode").hidden = !features.text;
  if (!features.feedback) $("refine").title = "relevance feedback is not available on this server yet";
  fromURL();
  await loaded;
  run(false);
})();
