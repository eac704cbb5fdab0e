// Paint with units: the page's logic. Plain JavaScript, no libraries.
// State: the seed (or, for an image the user opened, its inverted z), the layer and the
// list of edits so far. Every request sends them all (the server keeps no state);
// `history` keeps each answer so that Undo needs no request.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, seed: 0, z: null, name: null, layer: null, edits: [],
                history: [], busy: false };
const paint = $("paint");
const ctx = paint.getContext("2d");
let mask = null;  // a canvas at the image's resolution: the stroke being painted
let stroke = null;  // the last pointer position while painting

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function percent(x) { return (100 * x).toFixed(1) + "%"; }

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function concept() {
  const checked = document.querySelector('input[name="concept"]:checked');
  return checked ? checked.value : null;
}

function mode() { return document.querySelector('input[name="mode"]:checked').value; }

function showConcepts() {
  const layer = state.info.layers[state.layer];
  $("grid").textContent = `${layer.grid}x${layer.grid}`;
  const list = $("concepts");
  list.innerHTML = "";
  layer.concepts.forEach((c, i) => {
    const li = document.createElement("li");
    const units = c.units.map((u, j) => `${u} (${c.iou[j].toFixed(3)})`).join(", ");
    li.innerHTML = `<label><input type="radio" name="concept" value="${c.name}"` +
      `${i === 0 ? " checked" : ""}> ${c.name}</label><span class="units">${units}</span>`;
    list.appendChild(li);
  });
}

function show(answer) {
  $("original").src = "data:image/png;base64," + answer.original;
  $("edited").src = "data:image/png;base64," + answer.image;
  $("download-png").href = $("edited").src;
  const stem = state.z ? `paint_${state.name}` : `paint_seed${answer.seed}`;
  $("download-png").download = `${stem}.png`;
  const blob = new Blob([JSON.stringify(answer.record, null, 1)], { type: "application/json" });
  $("download-json").href = URL.createObjectURL(blob);
  $("download-json").download = `${stem}.json`;
  const last = answer.shares[answer.shares.length - 1];
  for (const [id, value] of [["share-before", last && last.before],
                             ["share-after", last && last.after]]) {
    $(id).textContent = last ? percent(value) : "-";
    $(id).dataset.value = last ? value : "";
  }
  $("edit-log").innerHTML = answer.shares.map((s) =>
    `<li>${s.mode} ${s.concept}: ${percent(s.before)} &rarr; ${percent(s.after)}</li>`).join("");
  if (!state.z) $("seed").value = answer.seed;
  document.body.dataset.edits = answer.shares.length;
}

async function refresh() {
  state.busy = true;
  try {
    const origin = state.z ? { z: state.z } : { seed: state.seed };
    const answer = await api("/api/edit", { ...origin, layer: state.layer,
                                            edits: state.edits });
    state.history = state.history.slice(0, state.edits.length);
    state.history[state.edits.length] = answer;
    show(answer);
    const what = state.z ? `your image ${state.name}` : `seed ${answer.seed}`;
    setStatus(`${what}, ${state.edits.length} edit(s); answered in ${answer.ms} ms`);
    return true;
  } catch (e) {
    setStatus(e.message, true);
    return false;
  } finally {
    state.busy = false;
  }
}

function restart() {  // a new seed or layer: no edits
  state.edits = [];
  state.history = [];
  ctx.clearRect(0, 0, paint.width, paint.height);
  refresh();
}

function brushSize() { return Number($("brush").value); }  // display pixels

function startMask() {
  const size = state.info.image_size;
  mask = document.createElement("canvas");
  mask.width = mask.height = size;
  const m = mask.getContext("2d");
  m.lineCap = m.lineJoin = "round";
  m.strokeStyle = m.fillStyle = "#000";
  m.lineWidth = brushSize() * size / paint.width;
  ctx.clearRect(0, 0, paint.width, paint.height);
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.strokeStyle = ctx.fillStyle = mode() === "add" ? "rgb(0, 200, 255)"
                                                      : "rgb(255, 255, 255)";
  ctx.lineWidth = brushSize();
}

function position(event) {
  const box = paint.getBoundingClientRect();
  return [(event.clientX - box.left) * paint.width / box.width,
          (event.clientY - box.top) * paint.height / box.height];
}

function drawTo(point) {
  const scale = state.info.image_size / paint.width;
  const m = mask.getContext("2d");
  const from = stroke || point;
  for (const [c, k] of [[ctx, 1], [m, scale]]) {
    c.beginPath();
    c.moveTo(from[0] * k, from[1] * k);
    c.lineTo(point[0] * k + 0.01, point[1] * k);
    c.stroke();
  }
  stroke = point;
}

function maskRows() {
  const size = state.info.image_size;
  const alpha = mask.getContext("2d").getImageData(0, 0, size, size).data;
  const rows = [];
  let any = false;
  for (let y = 0; y < size; y++) {
    let row = "";
    for (let x = 0; x < size; x++) {
      const on = alpha[4 * (y * size + x) + 3] >= 128;
      any = any || on;
      row += on ? "1" : "0";
    }
    rows.push(row);
  }
  return any ? rows : null;
}

paint.addEventListener("pointerdown", (event) => {
  if (!state.info || state.busy) return;
  if (!concept()) { setStatus("pick a concept first", true); return; }
  paint.setPointerCapture(event.pointerId);
  startMask();
  stroke = null;
  drawTo(position(event));
});

paint.addEventListener("pointermove", (event) => {
  if (stroke) drawTo(position(event));
});

async function endStroke() {
  if (!stroke) return;
  stroke = null;
  const rows = maskRows();
  if (!rows) return;
  state.edits.push({ concept: concept(), mode: mode(), region: { mask: rows } });
  if (!(await refresh())) state.edits.pop();
}

paint.addEventListener("pointerup", endStroke);
paint.addEventListener("pointercancel", endStroke);

$("undo").addEventListener("click", () => {
  if (!state.edits.length) return;
  state.edits.pop();
  const answer = state.history[state.edits.length];
  ctx.clearRect(0, 0, paint.width, paint.height);
  if (answer) { state.history.length = state.edits.length + 1; show(answer); } else refresh();
});
$("reset").addEventListener("click", restart);
$("prev").addEventListener("click", () => {
  state.z = null; state.seed = Math.max(0, state.seed - 1); restart(); });
$("next").addEventListener("click", () => {
  state.z = null; state.seed = Math.min(state.info.max_seed, state.seed + 1); restart(); });
$("seed").addEventListener("change", () => {
  const seed = parseInt($("seed").value, 10);
  if (Number.isInteger(seed) && seed >= 0) { state.z = null; state.seed = seed; restart(); }
});
$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file || state.busy) return;
  state.busy = true;
  setStatus(`inverting ${file.name} (a few seconds)...`);
  try {
    const text = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
      reader.readAsDataURL(file);
    });
    const answer = await api("/api/invert", { image: text.split(",")[1] });
    state.z = answer.z;
    state.name = file.name.replace(/\.[^.]*$/, "");
    document.body.dataset.psnr = answer.psnr;
    state.busy = false;
    restart();
  } catch (e) {
    setStatus(e.message, true);
    state.busy = false;
  }
});
$("layer").addEventListener("change", () => {
  state.layer = $("layer").value; showConcepts(); restart(); });
$("brush").addEventListener("input", () => { $("brush-size").textContent = `${brushSize()} px`; });

async function main() {
  try {
    state.info = await api("/api/info");
  } catch (e) {
    setStatus("cannot reach the server: " + e.message, true);
    return;
  }
  const info = state.info;
  state.layer = info.default_layer;
  $("model").textContent = `${info.image_size}x${info.image_size}, z of ${info.z_dim} dims`;
  for (const name of Object.keys(info.layers)) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    $("layer").appendChild(option);
  }
  $("layer").value = state.layer;
  // Default brush: one and a half cells of the layer, so a stroke covers whole cells.
  const cell = paint.width / info.layers[state.layer].grid;
  $("brush").value = Math.min(128, Math.max(4, Math.round(1.5 * cell)));
  $("brush-size").textContent = `${brushSize()} px`;
  showConcepts();
  await refresh();
  document.body.dataset.ready = "1";
}

main();
