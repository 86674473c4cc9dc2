// The page served at `/` by `pai-kb serve`: search as you type, ask with a streamed answer, related
// notes and index status, all through the same HTTP API other tools use. No framework and no build
// step; everything from the server is put on the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("pai-kb-token") || "", search: null, sources: [] };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new Error("Cannot reach the pai-kb server. Is `pai-kb serve` still running?");
  }
  if (response.status === 401) {
    askForToken();
    throw new Error("This server needs its token.");
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : detail;
    } catch (_) { /* not JSON: keep the status line */ }
    throw new Error(detail);
  }
  return response;
}

function askForToken() {
  const dialog = $("token-dialog");
  if (!dialog.open) dialog.showModal();
}

// -- search ----------------------------------------------------------------------------------------
function filters() {
  const params = new URLSearchParams();
  if ($("type").value) params.append("type", $("type").value);
  for (const tag of $("tag").value.split(/[\s,]+/).filter(Boolean)) params.append("tag", tag.replace(/^#/, ""));
  if ($("path").value.trim()) params.set("path", $("path").value.trim());
  if ($("since").value) params.set("since", $("since").value);
  return params;
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

async function search() {
  const query = $("q").value.trim();
  if (state.search) state.search.abort();
  if (!query) {
    $("results").replaceChildren();
    $("summary").textContent = "";
    return;
  }
  const params = filters();
  params.set("q", query);
  params.set("k", "10");
  params.set("mode", $("mode").value);
  state.search = new AbortController();
  try {
    const response = await api(`search?${params}`, { signal: state.search.signal });
    const body = await response.json();
    showError("");
    renderResults(body.results);
    $("summary").textContent = body.results.length ? `${body.results.length} results` : "No results.";
  } catch (err) {
    if (err.name !== "AbortError") showError(err.message);
  }
}

function place(hit) {
  const at = hit.at_s ?? hit.start_s;  // the moment nearest the query, else the passage's start
  if (at !== null && at !== undefined) return `at ${clock(at)}`;
  return hit.line_start ? `lines ${hit.line_start}–${hit.line_end}` : "";
}

function clock(seconds) {
  const s = Math.floor(seconds);
  const parts = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return (parts[0] ? [parts[0], String(parts[1]).padStart(2, "0")] : [parts[1]])
    .concat(String(parts[2]).padStart(2, "0")).join(":");
}

function links(hit) {
  const out = el("span", { class: "links" });
  if (hit.obsidian_uri) out.append(el("a", { href: hit.obsidian_uri, textContent: "open in Obsidian", class: "open" }));
  if (hit.url && /^https?:/i.test(hit.url)) {
    const label = hit.source_type === "transcript" ? "watch at this time" : "original page";
    out.append(el("a", { href: hit.url, textContent: label, target: "_blank", rel: "noopener noreferrer" }));
  }
  return out;
}

function renderResults(results) {
  const list = $("results");
  list.replaceChildren(...results.map((hit) => {
    const related = el("button", { type: "button", class: "related", textContent: "related" });
    const below = el("ol", { class: "related-list" });
    related.addEventListener("click", () => showRelated(hit, below));
    return el("li", { class: "result", tabIndex: 0, "data-path": hit.path },
      el("div", { class: "title" }, el("strong", { textContent: hit.title || hit.path }),
        el("span", { class: "muted", textContent: ` ${hit.heading.split(" > ").slice(1).join(" › ")}` })),
      el("div", { class: "where muted", textContent: `${hit.path} · ${place(hit)} · ${hit.source_type}` }),
      el("p", { class: "text", textContent: snippet(hit.text) }),
      el("div", { class: "actions" }, links(hit), related),
      below);
  }));
}

function snippet(text) {
  return text.length > 420 ? `${text.slice(0, 420)}…` : text;
}

async function showRelated(hit, target) {
  target.replaceChildren(el("li", { class: "muted", textContent: "Finding related notes…" }));
  try {
    const params = new URLSearchParams({ note: hit.path, k: "5" });
    const body = await (await api(`related?${params}`)).json();
    target.replaceChildren(...(body.results.length ? body.results.map((n) => el("li", {},
      n.obsidian_uri ? el("a", { href: n.obsidian_uri, textContent: n.title || n.path }) : (n.title || n.path),
      n.linked ? el("span", { class: "muted", textContent: " (already linked)" }) : null))
      : [el("li", { class: "muted", textContent: "No related notes." })]));
  } catch (err) {
    target.replaceChildren();
    showError(err.message);
  }
}

// -- ask -------------------------------------------------------------------------------------------
async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const answer = $("answer");
  answer.replaceChildren(el("p", { class: "streaming" }));
  $("sources").replaceChildren();
  $("passage").hidden = true;
  $("ask-button").disabled = true;
  const body = { question, stream: true, no_llm: $("no-llm").checked, k: 8 };
  const params = filters();
  if (params.get("type")) body.types = params.getAll("type");
  if (params.getAll("tag").length) body.tags = params.getAll("tag");
  if (params.get("path")) body.path = params.get("path");
  if (params.get("since")) body.since = params.get("since");
  try {
    const response = await api("ask", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    await readEvents(response, (name, data) => {
      if (name === "token") answer.firstChild.append(JSON.parse(data));
      else if (name === "answer") renderAnswer(JSON.parse(data));
      else if (name === "error") showError(JSON.parse(data));
    });
    showError("");
  } catch (err) {
    showError(err.message);
  } finally {
    $("ask-button").disabled = false;
  }
}

async function readEvents(response, onEvent) {
  // Server-sent events over a POST: EventSource only does GET, so the stream is read by hand.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = (block.match(/^event: (.*)$/m) || [])[1];
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (name) onEvent(name, data);
    }
  }
}

function renderAnswer(result) {
  state.sources = result.citations;
  const byNumber = new Map(result.citations.map((c) => [c.n, c]));
  const text = el("p", { class: result.abstained ? "abstained" : "answer-text" });
  // "[n]" becomes a link to its passage; every other character stays text.
  for (const part of result.answer.split(/(\[\d+\])/)) {
    const cited = part.match(/^\[(\d+)\]$/) && byNumber.get(Number(part.slice(1, -1)));
    text.append(cited ? el("a", { href: `#source-${cited.n}`, class: "cite", textContent: part,
      onclick: (e) => { e.preventDefault(); openPassage(cited); } }) : part);
  }
  const notes = [];
  if (!result.grounded && !result.abstained) notes.push("Not grounded: the answer cites none of your notes.");
  if (result.extractive) notes.push("Passages only: no model was asked.");
  $("answer").replaceChildren(text, ...notes.map((n) => el("p", { class: "muted", textContent: n })));
  $("sources").replaceChildren(...result.citations.map((c) => el("li", { id: `source-${c.n}`, value: c.n },
    el("a", { href: `#source-${c.n}`, textContent: `${c.path}${c.heading ? ` › ${c.heading.split(" > ").slice(1).join(" › ")}` : ""}`,
      onclick: (e) => { e.preventDefault(); openPassage(c); } }),
    el("span", { class: "muted", textContent: ` · ${place(c)}` }), " ", links(c))));
}

async function openPassage(citation) {
  const box = $("passage");
  const range = citation.line_start ? `:${citation.line_start}-${citation.line_end}` : "";
  const path = `notes/${citation.path.split("/").map(encodeURIComponent).join("/")}${range}`;
  try {
    const note = await (await api(`${path}?root=${encodeURIComponent(citation.root)}`)).json();
    box.replaceChildren(el("h3", { textContent: `[${citation.n}] ${citation.path} · ${place(citation)}` }),
      el("pre", { textContent: note.text }), links(citation));
    box.hidden = false;
    box.focus();
  } catch (err) {
    showError(err.message);
  }
}

// -- status ----------------------------------------------------------------------------------------
async function refreshStatus() {
  try {
    const s = await (await api("status")).json();
    const stale = s.out_of_date.new.length + s.out_of_date.changed.length + s.out_of_date.deleted.length;
    const synced = s.last_sync ? `synced ${ago(new Date(s.last_sync))}` : "never synced";
    $("status").textContent = `${s.files} files · ${s.chunks} passages · ${synced}` +
      (stale ? ` · ${stale} files not indexed yet` : " · up to date");
  } catch (err) {
    $("status").textContent = "Index status unavailable.";
    showError(err.message);
  }
}

function ago(date) {
  const minutes = Math.round((Date.now() - date.getTime()) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h ago` : date.toLocaleDateString();
}

// -- keyboard and theme ----------------------------------------------------------------------------
function onKey(event) {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) { event.preventDefault(); $("q").focus(); return; }
  if (event.key === "t" && !typing) { toggleTheme(); return; }
  if (event.key === "Escape" && document.activeElement === $("q")) { $("q").value = ""; search(); return; }
  if (event.key === "Enter" && event.ctrlKey && document.activeElement === $("question")) { ask(event); return; }
  if (event.key === "ArrowDown" || event.key === "ArrowUp") moveThroughResults(event);
  if (event.key === "Enter" && document.activeElement.classList.contains("result")) {
    const open = document.activeElement.querySelector("a.open");
    if (open) open.click();
  }
}

function moveThroughResults(event) {
  const items = [...document.querySelectorAll("#results > li.result")];
  if (!items.length || document.activeElement === $("question")) return;
  event.preventDefault();
  const at = items.indexOf(document.activeElement);
  const next = event.key === "ArrowDown" ? Math.min(at + 1, items.length - 1) : Math.max(at - 1, 0);
  items[next].focus();
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme !== "dark"
    : !matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  localStorage.setItem("pai-kb-theme", document.documentElement.dataset.theme);
}

function start() {
  const theme = localStorage.getItem("pai-kb-theme");
  if (theme) document.documentElement.dataset.theme = theme;
  $("q").addEventListener("input", debounce(search, 150));
  for (const id of ["type", "tag", "path", "since", "mode"]) $(id).addEventListener("change", search);
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("ask-form").addEventListener("submit", ask);
  $("theme").addEventListener("click", toggleTheme);
  $("token-form").addEventListener("submit", () => {
    state.token = $("token").value;
    sessionStorage.setItem("pai-kb-token", state.token);
    refreshStatus();
    search();
  });
  document.addEventListener("keydown", onKey);
  refreshStatus();
  setInterval(refreshStatus, 30000);
}

start();
