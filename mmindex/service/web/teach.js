// mmindex web UI, teaching: "Save as concept" turns the thumbs up and down into a concept of the index
// (POST /api/concepts), then searches it; "Label more" shows the segments its detector most needs judged
// (GET /api/concepts/{name}/proposals), to judge with the same thumbs and save again. Uses app.js's globals.
"use strict";

// The token is asked for once and kept for this tab only (sessionStorage); it is sent only as the
// Authorization header of POST /api/concepts, never in a URL or a cookie.
const TOKEN_KEY = "mmindex-token";

function judged() {
  const positive = [...state.marks].filter(([, v]) => v > 0).map(([k]) => k);
  const negative = [...state.marks].filter(([, v]) => v < 0).map(([k]) => k);
  return { positive, negative };
}

function openSave() {
  const { positive, negative } = judged();
  $("savesummary").textContent = `${positive.length} marked good and ${negative.length} marked wrong teach it; ` +
    "the index samples more counter-examples itself.";
  if (!$("conceptname").value) $("conceptname").value = state.taught || "";
  $("tokenrow").hidden = Boolean(sessionStorage.getItem(TOKEN_KEY));
  $("saveerror").textContent = positive.length ? "" : "Mark at least one good hit (thumbs up) first.";
  $("saveok").disabled = !positive.length;
  $("savedialog").showModal();
  $("conceptname").focus();
}

async function save(e) {
  e.preventDefault();
  const { positive, negative } = judged();
  const name = $("conceptname").value.trim();
  const token = sessionStorage.getItem(TOKEN_KEY) || $("token").value.trim();
  if (!token) { $("tokenrow").hidden = false; $("saveerror").textContent = "Saving needs the server's token."; return; }
  $("saveok").disabled = true;
  $("saveerror").textContent = "Teaching…";
  $("saveerror").classList.add("busy");
  let res;
  try {
    res = await fetch("/api/concepts", {
      method: "POST", body: JSON.stringify({ name, positive, negative }),
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    });
  } catch {
    $("saveerror").textContent = "The server did not answer.";
    $("saveerror").classList.remove("busy");
    $("saveok").disabled = false;
    return;
  }
  $("saveok").disabled = false;
  $("saveerror").classList.remove("busy");
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) {
    if (res.status === 401) { sessionStorage.removeItem(TOKEN_KEY); $("tokenrow").hidden = false; }
    $("saveerror").textContent = body.error || `HTTP ${res.status}`;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  $("conceptname").value = "";
  $("savedialog").close();
  saved(body);
}

// The concept is searchable now: search it, and say what was saved (and which built-in concept it hides).
function saved(body) {
  state.marks.clear();
  state.taught = body.name;
  const hides = body.shadows ? ` · the built-in concept is now ${body.shadows.query}` : "";
  showTeachBar(`Saved “${body.name}” (version ${body.version}) from ${body.training.judged_positive} good and ` +
    `${body.training.judged_negative} wrong${hides}.`);
  state.concept = [body.query]; state.like = []; state.text = ""; state.offset = 0; state.upload = null;
  $("mode").value = "concept";
  $("q").value = body.query;
  run();
}

function showTeachBar(text) {
  $("taught").textContent = text;
  $("teachbar").hidden = !state.taught;
}

// After a search by one concept: if it is one of the index's own (taught or applied), offer "Label more".
let noted = null;
async function noteConcept() {
  const concept = state.concept.length === 1 && !state.like.length && !state.text ? state.concept[0] : null;
  if (concept === noted) return;
  noted = concept;
  if (!concept) { state.taught = null; showTeachBar(""); return; }
  let found = [];
  try {
    const res = await fetch(`/api/concepts?limit=1&q=${encodeURIComponent(concept)}`);
    if (res.ok) found = (await res.json()).concepts;
  } catch { /* no bar, then */ }
  if (noted !== concept) return;  // another search since
  const own = found.length && found[0].source === "trained" && found[0].name.toLowerCase() === concept.toLowerCase();
  if (own) {
    state.taught = found[0].name;
    if ($("teachbar").hidden) showTeachBar(`“${state.taught}” is a concept of this index.`);
  } else if (state.taught && state.taught !== concept) {
    state.taught = null;
    showTeachBar("");
  }
}

async function labelMore() {
  const name = state.taught;
  setStatus(`Finding what “${name}” most needs judged…`);
  let res;
  try {
    res = await fetch(`/api/concepts/${encodeURIComponent(name)}/proposals?n=${PAGE}&strategy=uncertain`);
  } catch { setStatus("The server did not answer.", true); return; }
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) { setStatus(body.error || `HTTP ${res.status}`, true); return; }
  lastHits = body.segments;
  setStatus(body.segments.length
    ? `Judge these ${body.segments.length} for “${body.name}” (what its detector is least sure of), then Save as concept.`
    : `Every segment is judged for “${body.name}”.`);
  if (body.message) $("status").append(" " + body.message);
  $("grid").replaceChildren(...body.segments.map((s, i) => card(s, i + 1)));
  $("grid").dataset.proposals = body.name;
  $("pager").hidden = true;
  updateFeedbackBar();
}

$("save").addEventListener("click", openSave);
$("saveform").addEventListener("submit", save);
$("savecancel").addEventListener("click", () => $("savedialog").close());
$("labelmore").addEventListener("click", labelMore);
