// The cbir search page: the collection on load, its near-duplicate groups, and search by image
// (upload, or a click on any image) or by colors, showing ranked thumbnails.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, last: null, maxColors: 5, seq: 0, next: null, dupOffset: 0, dupQuery: null };
const DEFAULT_COLORS = ["#e0c080", "#3060c0", "#2f8f3a", "#c03030", "#f0f0f0"];

function params() {
  const k = Math.max(1, Math.min(Number($("k").value) || 20, state.info ? state.info.max_k : 200));
  return new URLSearchParams({ k: String(k), metric: $("metric").value || "chi2" });
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function paletteStrip(element, palette) {
  element.replaceChildren();
  const total = palette.reduce((sum, color) => sum + color.proportion, 0) || 1;
  for (const color of palette) {
    const swatch = document.createElement("span");
    swatch.style.background = color.hex;
    swatch.style.flexGrow = String(color.proportion / total);
    swatch.title = `${color.hex} ${(100 * color.proportion).toFixed(1)}%`;
    element.append(swatch);
  }
}

async function run(request, describe) {
  state.last = { request, describe };
  showView("results");
  const seq = ++state.seq; // only the latest query may draw: answers can arrive out of order
  setStatus("Searching…");
  let response;
  try {
    response = await request(params());
  } catch (error) {
    if (seq === state.seq) setStatus(`The server did not answer: ${error}`, true);
    return;
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON, e.g. a plain 413 */ }
  if (seq !== state.seq) return;
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    setStatus(`Search failed: ${message}`, true);
    return;
  }
  describe(body.query);
  render(body);
}

function showQuery(query, imageUrl) {
  $("query-summary").hidden = false;
  if (imageUrl) $("query-image").src = imageUrl; else $("query-image").removeAttribute("src");
  $("query-label").textContent = query.label;
  paletteStrip($("query-palette"), query.palette);
}

function render(body) {
  const list = $("results");
  list.replaceChildren();
  for (const result of body.results) {
    const item = document.createElement("li");
    item.className = "result";
    item.tabIndex = 0;
    item.dataset.id = String(result.id);
    item.title = `${result.path}\nclick to search by this image`;

    const thumb = document.createElement("div");
    thumb.className = "thumb";
    const img = document.createElement("img");
    img.src = result.thumbnail;
    img.alt = result.name;
    img.loading = "lazy";
    thumb.append(img);

    const meta = document.createElement("div");
    meta.className = "meta";
    const line = document.createElement("div");
    line.className = "line";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = result.name;
    const distance = document.createElement("span");
    distance.className = "distance";
    distance.textContent = result.distance.toFixed(4);
    line.append(name, distance);
    const strip = document.createElement("div");
    strip.className = "palette";
    paletteStrip(strip, result.palette);
    meta.append(line, strip);

    item.append(thumb, meta);
    const open = () => searchSimilar(result);
    item.addEventListener("click", open);
    item.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    list.append(item);
  }
  const n = body.results.length;
  setStatus(`${n} result${n === 1 ? "" : "s"} by ${body.metric} in ${body.milliseconds.toFixed(0)} ms`);
}

// --- query by image -------------------------------------------------------------------
function searchFile(file) {
  if (!file) return;
  if (state.info && file.size > state.info.max_upload_bytes) {
    setStatus(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; the limit is ${(state.info.max_upload_bytes / 1e6).toFixed(0)} MB.`, true);
    return;
  }
  const url = URL.createObjectURL(file);
  $("preview").src = url;
  $("preview").hidden = false;
  run(
    (query) => {
      const form = new FormData();
      form.append("image", file, file.name);
      return fetch(`/api/search?${query}`, { method: "POST", body: form });
    },
    (echo) => showQuery(echo, null), // the drop zone already shows the picture
  );
}

function searchSimilar(result) {
  window.scrollTo({ top: 0, behavior: "smooth" });
  $("preview").hidden = true;
  run(
    (query) => fetch(`/api/images/${result.id}/similar?${query}`),
    (echo) => showQuery(echo, result.thumbnail),
  );
}

// --- the collection and its duplicates ------------------------------------------------
function showView(name) {
  if (name === "results") $("view-results").hidden = false;
  for (const view of ["collection", "duplicates", "results"]) {
    $(`view-${view}`).setAttribute("aria-selected", String(view === name));
    $(`pane-${view}`).hidden = view !== name;
  }
}

function thumbnail(image) {
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  const img = document.createElement("img");
  img.src = image.thumbnail;
  img.alt = image.name;
  img.loading = "lazy";
  thumb.append(img);
  return thumb;
}

function clickToSearch(element, image) {
  element.tabIndex = 0;
  element.dataset.id = String(image.id);
  element.title = `${image.path}\nclick to search by this image`;
  const open = () => searchSimilar(image);
  element.addEventListener("click", open);
  element.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
}

function formatBytes(size) {
  if (size >= 1e6) return `${(size / 1e6).toFixed(1)} MB`;
  if (size >= 1e3) return `${Math.round(size / 1e3)} KB`;
  return `${size} B`;
}

async function getJson(url) {
  const response = await fetch(url);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new Error(body && body.error ? body.error : `${response.status} ${response.statusText}`);
  return body;
}

async function loadImages() {
  const query = new URLSearchParams({ limit: "60" });
  if (state.next !== null) query.set("before", String(state.next));
  let body;
  try {
    body = await getJson(`/api/images?${query}`);
  } catch (error) {
    $("collection-count").textContent = `Cannot list the collection: ${error.message}`;
    return;
  }
  for (const image of body.images) {
    const tile = document.createElement("li");
    tile.className = "tile";
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = image.name;
    tile.append(thumbnail(image), name);
    clickToSearch(tile, image);
    $("grid").append(tile);
  }
  state.next = body.next;
  const shown = $("grid").children.length;
  $("collection-count").textContent = `${body.total.toLocaleString()} images, newest first (${shown.toLocaleString()} shown)`;
  $("more-images").hidden = body.next === null;
}

async function loadDuplicates(fresh) {
  if (fresh) {
    const value = $("dup-threshold").value.trim();
    state.dupQuery = value === "" ? {} : { threshold: value };
    state.dupOffset = 0;
    $("groups").replaceChildren();
  }
  const query = new URLSearchParams({ ...state.dupQuery, offset: String(state.dupOffset), limit: "30" });
  $("dup-status").textContent = "Looking for near-duplicates…";
  let body;
  try {
    body = await getJson(`/api/duplicates?${query}`);
  } catch (error) {
    $("dup-status").textContent = `Failed: ${error.message}`;
    return;
  }
  $("dup-threshold").value = String(body.threshold);
  for (const group of body.groups) {
    const item = document.createElement("li");
    item.className = "group";
    const title = document.createElement("h3");
    title.textContent = `${group.images.length} images`;
    const members = document.createElement("div");
    members.className = "members";
    for (const image of group.images) {
      const figure = document.createElement("figure");
      figure.className = "dup";
      figure.style.margin = "0";
      const meta = document.createElement("figcaption");
      meta.className = "meta";
      const lines = [
        ["name", image.name],
        ["dims", `${image.width}×${image.height} · ${formatBytes(image.size)}`],
        ["distance", image.distance === 0 ? "centre" : `distance ${image.distance.toFixed(4)}`],
        ["path", image.path],
      ];
      for (const [cls, text] of lines) {
        const line = document.createElement("span");
        line.className = cls;
        line.textContent = text;
        meta.append(line);
      }
      figure.append(thumbnail(image), meta);
      clickToSearch(figure, image);
      members.append(figure);
    }
    item.append(title, members);
    $("groups").append(item);
  }
  state.dupOffset += body.groups.length;
  const n = body.total_groups;
  const veto = body.veto === null || body.veto === undefined ? "" : `, unless hashes differ in more than ${body.veto}`;
  const hashes = body.hamming === null || body.hamming === undefined ? "" : ` or hashes within ${body.hamming} bits${veto}`;
  $("dup-status").textContent = n
    ? `${n.toLocaleString()} group${n === 1 ? "" : "s"} (${body.pairs.toLocaleString()} pairs) within ${body.threshold} by ${body.metric}${hashes}`
    : `No near-duplicates within ${body.threshold} by ${body.metric}${hashes}`;
  $("more-groups").hidden = state.dupOffset >= n;
}

// --- query by colors ------------------------------------------------------------------
function colorRows() {
  return [...$("color-rows").querySelectorAll("li")];
}

function updateWeights() {
  const rows = colorRows();
  const total = rows.reduce((sum, row) => sum + Number(row.querySelector("input[type=range]").value), 0) || 1;
  for (const row of rows) {
    const value = Number(row.querySelector("input[type=range]").value);
    row.querySelector("output").textContent = `${Math.round((100 * value) / total)}%`;
  }
  $("add-color").disabled = rows.length >= state.maxColors;
  for (const row of rows) row.querySelector(".remove").disabled = rows.length <= 1;
}

function addColor(hex, weight = 50) {
  if (colorRows().length >= state.maxColors) return;
  const row = document.createElement("li");
  row.innerHTML =
    '<input type="color" aria-label="color">' +
    '<input type="range" min="1" max="100" aria-label="weight">' +
    "<output></output>" +
    '<button type="button" class="remove" aria-label="remove this color">×</button>';
  row.querySelector("input[type=color]").value = hex;
  row.querySelector("input[type=range]").value = String(weight);
  row.querySelector(".remove").addEventListener("click", () => { row.remove(); updateWeights(); scheduleColors(); });
  row.addEventListener("input", () => { updateWeights(); scheduleColors(); });
  $("color-rows").append(row);
  updateWeights();
}

let colorTimer = null;
function scheduleColors() {
  clearTimeout(colorTimer);
  colorTimer = setTimeout(searchColors, 350);
}

function searchColors() {
  clearTimeout(colorTimer);
  const colors = colorRows().map((row) => ({
    hex: row.querySelector("input[type=color]").value,
    weight: Number(row.querySelector("input[type=range]").value),
  }));
  run(
    (query) => fetch(`/api/search/colors?${query}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ colors }),
    }),
    (echo) => showQuery(echo, null),
  );
}

// --- wiring ---------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of ["image", "colors"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`pane-${tab}`).hidden = tab !== name;
  }
}

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    state.info = await response.json();
  } catch (error) {
    setStatus(`Cannot reach the server: ${error}`, true);
    return;
  }
  const info = state.info;
  state.maxColors = info.max_colors;
  $("max-colors").textContent = String(info.max_colors);
  $("k").max = String(info.max_k);
  $("info").textContent = `${info.images.toLocaleString()} images · ${info.codebook_size} colors · ${info.layout}`;
  const select = $("metric");
  select.replaceChildren(...info.metrics.map((metric) => new Option(metric, metric, false, metric === info.default_metric)));
}

function init() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => searchFile(event.target.files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    searchFile(event.dataTransfer.files[0]);
  });
  $("tab-image").addEventListener("click", () => selectTab("image"));
  $("tab-colors").addEventListener("click", () => selectTab("colors"));
  $("add-color").addEventListener("click", () => {
    addColor(DEFAULT_COLORS[colorRows().length % DEFAULT_COLORS.length]);
    scheduleColors();
  });
  $("search-colors").addEventListener("click", searchColors);
  for (const id of ["metric", "k"]) {
    $(id).addEventListener("change", () => { if (state.last) run(state.last.request, state.last.describe); });
  }
  $("view-collection").addEventListener("click", () => showView("collection"));
  $("view-results").addEventListener("click", () => showView("results"));
  $("view-duplicates").addEventListener("click", () => {
    showView("duplicates");
    if (state.dupQuery === null) loadDuplicates(true);
  });
  $("dup-run").addEventListener("click", () => loadDuplicates(true));
  $("dup-threshold").addEventListener("keydown", (event) => { if (event.key === "Enter") loadDuplicates(true); });
  $("more-images").addEventListener("click", loadImages);
  $("more-groups").addEventListener("click", () => loadDuplicates(false));
  loadImages();
  addColor(DEFAULT_COLORS[0], 60);
  addColor(DEFAULT_COLORS[1], 40);
  loadInfo();
}

init();
