// NUMINA Layout Editor: a canvas on the node that shows the last run's layout over the pre-generation and
// lets the artist add, move, resize and delete instances. The edits are JSON in the node's hidden `edits`
// widget (saved with the workflow); the backend applies them with numina_core/layout_edits.py, which the
// functions below mirror so the canvas draws exactly what the node will output.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const NODE_TYPE = "NuminaLayoutEditor";
const UI_KEY = "numina_layout";
const FIRST_ADDED = 100;
const REMOVED = -1;
const BACKGROUND = 0;
const TOOLBAR_HEIGHT = 30;
const STATUS_HEIGHT = 64;
const HANDLE_TOKENS = 0.75; // how close (in tokens) a press must be to a corner to resize
const CLICK_SIZE = 3; // tokens: the side of an instance added by a click without dragging

// ---- layout arithmetic, mirroring numina_core/layout_edits.py ------------------------------------------

function rasterize(shape, box, height, width) {
  const [x0, y0, x1, y1] = box;
  const mask = new Uint8Array(height * width);
  const mx = (x0 + x1) / 2, my = (y0 + y1) / 2, rx = (x1 - x0) / 2, ry = (y1 - y0) / 2;
  let any = false;
  for (let y = 0; y < height; y++) {
    const cy = y + 0.5;
    for (let x = 0; x < width; x++) {
      const cx = x + 0.5;
      const inside = shape === "box"
        ? cy >= y0 && cy < y1 && cx >= x0 && cx < x1
        : ((cx - mx) / rx) ** 2 + ((cy - my) / ry) ** 2 <= 1.0;
      if (inside) { mask[y * width + x] = 1; any = true; }
    }
  }
  if (!any) {
    const x = Math.floor(mx), y = Math.floor(my);
    if (x >= 0 && x < width && y >= 0 && y < height) mask[y * width + x] = 1;
  }
  return mask;
}

function transformPixels(pixels, source, box, height, width) {
  const [sx0, sy0, sx1, sy1] = source;
  const [x0, y0, x1, y1] = box;
  const out = new Uint8Array(height * width);
  for (let y = 0; y < height; y++) {
    const cy = y + 0.5;
    if (cy < y0 || cy >= y1) continue;
    const sy = Math.floor(sy0 + ((cy - y0) * (sy1 - sy0)) / (y1 - y0));
    if (sy < 0 || sy >= height) continue;
    for (let x = 0; x < width; x++) {
      const cx = x + 0.5;
      if (cx < x0 || cx >= x1) continue;
      const sx = Math.floor(sx0 + ((cx - x0) * (sx1 - sx0)) / (x1 - x0));
      if (sx >= 0 && sx < width && pixels[sy * width + sx]) out[y * width + x] = 1;
    }
  }
  return out;
}

function boundingBox(masks, height, width) {
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (const mask of masks) {
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      const x = i % width, y = (i - x) / width;
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1];
}

function describe(edit) {
  const where = edit.frame === null || edit.frame === undefined ? "all frames" : `frame ${edit.frame}`;
  return `${edit.op} ${edit.target !== undefined ? `instance ${JSON.stringify(edit.target)}` : edit.shape} of ` +
    `'${edit.noun}' in ${where} (edit ${edit.id})`;
}

// base: {noun: Int32Array F*H*W}; returns {labels, stale, labelsOf} like apply_edits.
function applyEdits(base, grid, edits) {
  const [frames, height, width] = grid;
  const plane = height * width;
  const labels = Object.fromEntries(Object.entries(base).map(([noun, array]) => [noun, Int32Array.from(array)]));
  const stale = [], labelsOf = {};
  const nextLabel = (array) => Math.max(FIRST_ADDED - 1, array.reduce((a, b) => Math.max(a, b), -Infinity)) + 1;
  for (const edit of edits) {
    const fail = (why) => stale.push(`${describe(edit)}: ${why}`);
    const array = labels[edit.noun];
    if (!array) { fail(`the layout has no noun '${edit.noun}'`); continue; }
    const scope = edit.frame === null || edit.frame === undefined ? [...Array(frames).keys()] : [edit.frame];
    if (edit.frame !== null && edit.frame !== undefined && !(edit.frame >= 0 && edit.frame < frames)) {
      fail(`the layout has frames 0–${frames - 1}`); continue;
    }
    if (edit.op === "add") {
      const mask = rasterize(edit.shape, edit.box, height, width);
      if (!mask.some(Boolean)) { fail("the box lies outside the token grid"); continue; }
      const label = nextLabel(array);
      for (const f of scope) for (let i = 0; i < plane; i++) if (mask[i]) array[f * plane + i] = label;
      labelsOf[edit.id] = label;
      continue;
    }
    let label = edit.target;
    if (typeof label === "string") {
      if (!(label in labelsOf)) { fail(`edit '${label}' made no instance`); continue; }
      label = labelsOf[label];
    }
    if (label <= BACKGROUND) { fail("background and removed pixels are no instance"); continue; }
    const present = scope.map((f) => {
      const mask = new Uint8Array(plane);
      for (let i = 0; i < plane; i++) mask[i] = array[f * plane + i] === label ? 1 : 0;
      return mask;
    });
    const source = boundingBox(present, height, width);
    if (!source) { fail("that instance no longer exists"); continue; }
    const vacated = label < FIRST_ADDED ? REMOVED : BACKGROUND;
    const newLabel = edit.op === "move" ? nextLabel(array) : null;
    scope.forEach((f, k) => {
      const moved = newLabel === null ? null : transformPixels(present[k], source, edit.box, height, width);
      for (let i = 0; i < plane; i++) if (present[k][i]) array[f * plane + i] = vacated;
      if (moved) for (let i = 0; i < plane; i++) if (moved[i]) array[f * plane + i] = newLabel;
    });
    if (newLabel !== null) labelsOf[edit.id] = newLabel;
  }
  return { labels, stale, labelsOf };
}

function decodeLabels(encoded) {
  const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
  return Int32Array.from(new Int16Array(bytes.buffer));
}

// Same colours as numina_core/preview.py instance_colour: golden-ratio hue steps, added ones restart at 1.
function instanceColour(label) {
  const hue = ((label >= FIRST_ADDED ? label - (FIRST_ADDED - 1) : label) * 0.61803398875) % 1.0;
  const i = Math.floor(hue * 6), f = hue * 6 - i, v = 255, s = 0.85;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return `rgb(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)})`;
}

// ---- the canvas ---------------------------------------------------------------------------------------

class LayoutEditor {
  constructor(node, editsWidget) {
    this.node = node;
    this.editsWidget = editsWidget;
    this.data = null; // the last run's payload: grid, nouns, base labels, background frames
    this.images = [];
    this.view = { noun: null, frame: null, shape: "ellipse" };
    this.selected = null; // handle of the selected instance: a base label (number) or an edit id (string)
    this.drag = null;
    this.draft = null; // the edit being dragged, drawn before it is committed

    this.element = document.createElement("div");
    this.element.style.cssText = "display:flex;flex-direction:column;gap:4px;width:100%;font:12px sans-serif;color:#ddd;";
    this.toolbar = document.createElement("div");
    this.toolbar.style.cssText = `display:flex;gap:4px;align-items:center;height:${TOOLBAR_HEIGHT - 4}px;`;
    this.nounSelect = this.select("noun", (value) => { this.view.noun = value; this.selected = null; this.render(); });
    this.frameSelect = this.select("frame", (value) => {
      this.view.frame = value === "all" ? null : Number(value); this.selected = null; this.render();
    });
    this.shapeSelect = this.select("shape", (value) => { this.view.shape = value; });
    this.setOptions(this.shapeSelect, [["ellipse", "ellipse"], ["box", "box"]]);
    this.button("Delete", "delete the selected instance (or right-click an instance)", () => this.deleteSelected());
    this.button("Reset", "forget every edit: the output becomes the incoming layout", () => this.reset());
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText = "width:100%;cursor:crosshair;image-rendering:pixelated;background:#111;";
    this.status = document.createElement("div");
    this.status.style.cssText = `white-space:pre-wrap;overflow:auto;height:${STATUS_HEIGHT}px;`;
    this.element.append(this.toolbar, this.canvas, this.status);

    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("contextmenu", (e) => this.onContextMenu(e));
    this.render();
  }

  select(name, onChange) {
    const select = document.createElement("select");
    select.title = name;
    select.dataset.role = name;
    select.addEventListener("change", () => onChange(select.value));
    this.toolbar.append(select);
    return select;
  }

  setOptions(select, options) {
    select.replaceChildren(...options.map(([value, text]) => Object.assign(document.createElement("option"), { value, textContent: text })));
  }

  button(text, title, onClick) {
    const button = document.createElement("button");
    Object.assign(button, { textContent: text, title });
    button.dataset.role = text.toLowerCase();
    button.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
    this.toolbar.append(button);
  }

  // -- state ----------------------------------------------------------------------------------------------

  get edits() {
    try {
      const parsed = JSON.parse(this.editsWidget.value || "[]");
      return Array.isArray(parsed) ? parsed : [];
    } catch {
      return [];
    }
  }

  saveEdits(edits) {
    this.editsWidget.value = JSON.stringify(edits);
    this.editsWidget.callback?.(this.editsWidget.value);
    this.node.setDirtyCanvas?.(true, true);
    this.render();
  }

  setData(payload) {
    const base = Object.fromEntries(Object.entries(payload.base).map(([noun, text]) => [noun, decodeLabels(text)]));
    const result = Object.fromEntries(Object.entries(payload.result).map(([noun, text]) => [noun, decodeLabels(text)]));
    this.data = { ...payload, base, result };
    const [frames] = payload.grid;
    this.setOptions(this.nounSelect, payload.nouns.map((n) => [n, n]));
    if (!payload.nouns.includes(this.view.noun)) this.view.noun = payload.nouns[0] ?? null;
    this.nounSelect.value = this.view.noun ?? "";
    this.setOptions(this.frameSelect, [["all", "all frames"], ...[...Array(frames).keys()].map((f) => [String(f), `frame ${f}`])]);
    if (this.view.frame !== null && this.view.frame >= frames) this.view.frame = null;
    this.frameSelect.value = this.view.frame === null ? "all" : String(this.view.frame);
    this.images = payload.frames.map((file) => {
      const image = new Image();
      image.onload = () => this.render();
      image.src = api.apiURL(`/view?${new URLSearchParams({ filename: file.filename, subfolder: file.subfolder ?? "", type: file.type })}`);
      return image;
    });
    this.resizeNode();
    this.render();
  }

  resizeNode() {
    const height = this.desiredHeight();
    if (this.node.size[1] < height + 80) this.node.setSize([this.node.size[0], height + 80]);
    this.node.setDirtyCanvas?.(true, true);
  }

  desiredHeight() {
    const [, h, w] = this.data ? this.data.grid : [1, 3, 4];
    const width = Math.max(200, this.node.size[0] - 20);
    return TOOLBAR_HEIGHT + Math.round((width * h) / w) + STATUS_HEIGHT + 12;
  }

  // The edited layout as the node will output it (base + edits + the edit being dragged).
  current() {
    const edits = this.draft ? this.withEdit(this.edits, this.draft).edits : this.edits;
    return applyEdits(this.data.base, this.data.grid, edits);
  }

  scopeFrames() {
    return this.view.frame === null ? [...Array(this.data.grid[0]).keys()] : [this.view.frame];
  }

  handleOf(label, labelsOf) {
    const id = Object.keys(labelsOf).find((key) => labelsOf[key] === label);
    return id ?? label;
  }

  labelOf(handle, labelsOf) {
    return typeof handle === "string" ? labelsOf[handle] : handle;
  }

  instanceMasks(labels, label) {
    const [, h, w] = this.data.grid;
    const plane = h * w;
    return this.scopeFrames().map((f) => {
      const mask = new Uint8Array(plane);
      for (let i = 0; i < plane; i++) mask[i] = labels[this.view.noun][f * plane + i] === label ? 1 : 0;
      return mask;
    });
  }

  // The box a drag starts from: the edit's own box when the drag will rewrite that edit, else the instance's.
  boxOf(handle, state) {
    const prior = this.coalescable(this.edits, handle);
    if (prior && prior.box) return [...prior.box];
    const [, h, w] = this.data.grid;
    return boundingBox(this.instanceMasks(state.labels, this.labelOf(handle, state.labelsOf)), h, w);
  }

  // An earlier edit that a new edit of `handle` in the current view rewrites instead of adding another.
  coalescable(edits, handle) {
    if (typeof handle !== "string") return null;
    const index = edits.findIndex((e) => e.id === handle);
    if (index < 0) return null;
    const prior = edits[index];
    const frame = prior.frame ?? null;
    const referenced = edits.slice(index + 1).some((e) => e.target === handle);
    return frame === this.view.frame && !referenced ? prior : null;
  }

  nextId(edits) {
    const used = edits.map((e) => Number(String(e.id).replace(/^e/, ""))).filter(Number.isFinite);
    return `e${Math.max(0, ...used) + 1}`;
  }

  // edits with one more artist action: a move/resize or delete of an added or moved instance rewrites its
  // edit (so undoing an add leaves no trace), anything else is appended.
  withEdit(edits, edit) {
    const next = edits.map((e) => ({ ...e }));
    const prior = this.coalescable(next, edit.target);
    if (prior && edit.op === "move") { prior.box = edit.box; return { edits: next, id: prior.id }; }
    if (prior && edit.op === "delete") {
      const index = next.indexOf(prior);
      if (prior.op === "add") { next.splice(index, 1); return { edits: next, id: null }; }
      next[index] = { op: "delete", id: prior.id, noun: prior.noun, frame: prior.frame, target: prior.target };
      return { edits: next, id: null };
    }
    const id = this.nextId(next);
    next.push({ ...edit, id, noun: this.view.noun, frame: this.view.frame });
    return { edits: next, id: edit.op === "delete" ? null : id };
  }

  commit(edit) {
    const { edits, id } = this.withEdit(this.edits, edit);
    this.selected = id;
    this.saveEdits(edits);
  }

  deleteSelected() {
    if (this.selected === null || !this.data) return;
    this.commit({ op: "delete", target: this.selected });
  }

  reset() {
    this.selected = null;
    this.saveEdits([]);
  }

  // -- pointer ------------------------------------------------------------------------------------------

  tokenAt(event) {
    const rect = this.canvas.getBoundingClientRect();
    const [, h, w] = this.data.grid;
    return [((event.clientX - rect.left) / rect.width) * w, ((event.clientY - rect.top) / rect.height) * h];
  }

  // Client (page) coordinates of a token-grid point: for tests and for anyone scripting the canvas.
  tokenToClient(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    const [, h, w] = this.data.grid;
    return [rect.left + (x / w) * rect.width, rect.top + (y / h) * rect.height];
  }

  hit(state, x, y) {
    const [, h, w] = this.data.grid;
    const tx = Math.floor(x), ty = Math.floor(y);
    if (tx < 0 || ty < 0 || tx >= w || ty >= h) return null;
    for (const f of this.scopeFrames()) {
      const label = state.labels[this.view.noun][f * h * w + ty * w + tx];
      if (label > 0) return this.handleOf(label, state.labelsOf);
    }
    return null;
  }

  onPointerDown(event) {
    event.stopPropagation();
    if (!this.data || !this.view.noun || event.button !== 0) return;
    const [x, y] = this.tokenAt(event);
    const state = this.current();
    if (this.selected !== null) {
      const box = this.boxOf(this.selected, state);
      const corners = box && [[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]];
      const corner = corners?.findIndex(([cx, cy]) => Math.abs(cx - x) <= HANDLE_TOKENS && Math.abs(cy - y) <= HANDLE_TOKENS);
      if (corner >= 0) {
        this.drag = { kind: "resize", handle: this.selected, anchor: corners[3 - corner] };
        this.canvas.setPointerCapture(event.pointerId);
        return;
      }
    }
    const handle = this.hit(state, x, y);
    if (handle !== null) {
      this.selected = handle;
      this.drag = { kind: "move", handle, start: [x, y], box: this.boxOf(handle, state) };
    } else {
      this.selected = null;
      this.drag = { kind: "add", start: [x, y], moved: false };
    }
    this.canvas.setPointerCapture(event.pointerId);
    this.render();
  }

  onPointerMove(event) {
    if (!this.drag) return;
    event.stopPropagation();
    const [x, y] = this.tokenAt(event);
    const drag = this.drag;
    if (drag.kind === "add") {
      const [sx, sy] = drag.start;
      drag.moved ||= Math.abs(x - sx) >= 0.5 || Math.abs(y - sy) >= 0.5;
      if (!drag.moved) return;
      const box = [Math.floor(Math.min(sx, x)), Math.floor(Math.min(sy, y)), Math.ceil(Math.max(sx, x)), Math.ceil(Math.max(sy, y))];
      this.draft = { op: "add", shape: this.view.shape, box };
    } else if (drag.kind === "move") {
      const dx = Math.round(x - drag.start[0]), dy = Math.round(y - drag.start[1]);
      if (dx === 0 && dy === 0) { this.draft = null; this.render(); return; }
      const [x0, y0, x1, y1] = drag.box;
      this.draft = { op: "move", target: drag.handle, box: [x0 + dx, y0 + dy, x1 + dx, y1 + dy] };
    } else {
      const [ax, ay] = drag.anchor;
      const cx = Math.round(x), cy = Math.round(y);
      const box = [Math.min(ax, cx), Math.min(ay, cy), Math.max(ax, cx), Math.max(ay, cy)];
      if (box[2] === box[0]) box[2] = box[0] + 1;
      if (box[3] === box[1]) box[3] = box[1] + 1;
      this.draft = { op: "move", target: drag.handle, box };
    }
    this.render();
  }

  onPointerUp(event) {
    if (!this.drag) return;
    event.stopPropagation();
    const drag = this.drag;
    this.drag = null;
    if (drag.kind === "add" && !drag.moved) {
      const [x, y] = drag.start;
      const half = CLICK_SIZE / 2;
      this.draft = { op: "add", shape: this.view.shape, box: [Math.round(x - half), Math.round(y - half), Math.round(x - half) + CLICK_SIZE, Math.round(y - half) + CLICK_SIZE] };
    }
    const draft = this.draft;
    this.draft = null;
    if (draft) this.commit(draft);
    else this.render();
  }

  onContextMenu(event) {
    event.preventDefault();
    event.stopPropagation();
    if (!this.data || !this.view.noun) return;
    const [x, y] = this.tokenAt(event);
    const handle = this.hit(this.current(), x, y);
    if (handle !== null) this.commit({ op: "delete", target: handle });
  }

  // -- drawing ------------------------------------------------------------------------------------------

  render() {
    const ctx = this.canvas.getContext("2d");
    if (!this.data || !this.view.noun) {
      this.canvas.width = 400; this.canvas.height = 60;
      ctx.fillStyle = "#aaa"; ctx.font = "14px sans-serif";
      ctx.fillText(this.data ? "the layout has no nouns" : "Run the graph once to see the layout here.", 12, 34);
      this.status.textContent = `${this.edits.length} edit(s) stored in the workflow`;
      return;
    }
    const [frames, h, w] = this.data.grid;
    const cell = Math.max(4, Math.floor(640 / Math.max(h, w)));
    this.canvas.width = w * cell; this.canvas.height = h * cell;
    const image = this.images[this.view.frame ?? 0];
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, w * cell, h * cell);
    if (image?.complete && image.naturalWidth) ctx.drawImage(image, 0, 0, w * cell, h * cell);
    const state = this.current();
    const labels = state.labels[this.view.noun];
    const plane = h * w;
    // Per token the label shown: in the all-frames view the first frame holding an instance there.
    const shown = new Int32Array(plane);
    for (const f of this.scopeFrames()) {
      for (let i = 0; i < plane; i++) if (shown[i] <= 0 && labels[f * plane + i] !== 0) shown[i] = labels[f * plane + i];
    }
    ctx.globalAlpha = 0.55;
    for (let i = 0; i < plane; i++) {
      if (shown[i] === 0) continue;
      ctx.fillStyle = shown[i] === REMOVED ? "#3a3a3a" : instanceColour(shown[i]);
      ctx.fillRect((i % w) * cell, Math.floor(i / w) * cell, cell, cell);
    }
    ctx.globalAlpha = 1;
    // Instance borders, so touching instances stay visibly apart; added instances outlined white.
    ctx.lineWidth = 2;
    for (let i = 0; i < plane; i++) {
      const label = shown[i];
      if (label <= 0) continue;
      const x = i % w, y = Math.floor(i / w);
      ctx.strokeStyle = label >= FIRST_ADDED ? "#fff" : "#000";
      const edge = (nx, ny) => nx < 0 || ny < 0 || nx >= w || ny >= h || shown[ny * w + nx] !== label;
      ctx.beginPath();
      if (edge(x, y - 1)) { ctx.moveTo(x * cell, y * cell); ctx.lineTo((x + 1) * cell, y * cell); }
      if (edge(x, y + 1)) { ctx.moveTo(x * cell, (y + 1) * cell); ctx.lineTo((x + 1) * cell, (y + 1) * cell); }
      if (edge(x - 1, y)) { ctx.moveTo(x * cell, y * cell); ctx.lineTo(x * cell, (y + 1) * cell); }
      if (edge(x + 1, y)) { ctx.moveTo((x + 1) * cell, y * cell); ctx.lineTo((x + 1) * cell, (y + 1) * cell); }
      ctx.stroke();
    }
    this.drawLabels(ctx, shown, cell, state);
    this.drawSelection(ctx, cell, state);
    this.drawStatus(state, frames);
  }

  drawLabels(ctx, shown, cell, state) {
    const [, h, w] = this.data.grid;
    const centres = new Map();
    for (let i = 0; i < shown.length; i++) {
      if (shown[i] <= 0) continue;
      const c = centres.get(shown[i]) ?? [0, 0, 0];
      centres.set(shown[i], [c[0] + (i % w), c[1] + Math.floor(i / w), c[2] + 1]);
    }
    ctx.font = `bold ${Math.max(10, Math.min(16, cell))}px sans-serif`;
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (const [label, [sx, sy, n]] of centres) {
      const handle = this.handleOf(label, state.labelsOf);
      const text = typeof handle === "string" ? `+${handle}` : String(label);
      const x = (sx / n + 0.5) * cell, y = (sy / n + 0.5) * cell;
      ctx.fillStyle = "#000"; ctx.fillText(text, x + 1, y + 1);
      ctx.fillStyle = "#fff"; ctx.fillText(text, x, y);
    }
  }

  drawSelection(ctx, cell, state) {
    const box = this.draft?.box ?? (this.selected !== null && this.labelOf(this.selected, state.labelsOf) !== undefined
      ? this.boxOf(this.selected, state) : null);
    if (!box) return;
    const [x0, y0, x1, y1] = box.map((v) => v * cell);
    ctx.setLineDash([6, 4]); ctx.strokeStyle = "#ffeb3b"; ctx.lineWidth = 2;
    if (this.draft?.op === "add" && this.draft.shape === "ellipse") {
      ctx.beginPath();
      ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2, 0, 0, 2 * Math.PI);
      ctx.stroke();
    }
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.setLineDash([]);
    if (this.draft) return;
    ctx.fillStyle = "#ffeb3b";
    for (const [x, y] of [[x0, y0], [x1, y0], [x0, y1], [x1, y1]]) ctx.fillRect(x - 4, y - 4, 8, 8);
  }

  drawStatus(state, frames) {
    const noun = this.view.noun;
    const [, h, w] = this.data.grid;
    const plane = h * w;
    const counts = [...Array(frames).keys()].map((f) => {
      const found = new Set();
      for (let i = 0; i < plane; i++) if (state.labels[noun][f * plane + i] > 0) found.add(state.labels[noun][f * plane + i]);
      return found.size;
    });
    const target = this.data.targets?.[noun];
    const lines = [`${noun}: ${counts.join(" ")}${target !== undefined ? ` (target ${target})` : ""} · ${this.edits.length} edit(s)` +
      " · drag: add · drag instance: move · drag corner: resize · right-click: delete"];
    if (state.stale.length) lines.push(`${state.stale.length} edit(s) no longer apply (redraw or Reset):`, ...state.stale);
    this.status.textContent = lines.join("\n");
    this.status.style.color = state.stale.length ? "#ffb74d" : "#ddd";
  }
}

app.registerExtension({
  name: "numina.LayoutEditor",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      const editsWidget = this.widgets.find((w) => w.name === "edits");
      // The JSON stays a widget (so it is saved with the workflow and sent with the prompt) but is not drawn.
      editsWidget.hidden = true;
      editsWidget.options = { ...editsWidget.options, hidden: true };
      editsWidget.computeSize = () => [0, -4];
      const editor = new LayoutEditor(this, editsWidget);
      this.numinaEditor = editor;
      this.addDOMWidget("layout_canvas", "numina_layout_canvas", editor.element, {
        serialize: false,
        hideOnZoom: false,
        getMinHeight: () => editor.desiredHeight(),
        getHeight: () => editor.desiredHeight(),
      });
      this.setSize([Math.max(this.size[0], 520), editor.desiredHeight() + 80]);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const payload = message?.[UI_KEY]?.[0];
      if (payload) this.numinaEditor?.setData(payload);
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = onConfigure?.apply(this, arguments);
      this.numinaEditor?.render(); // the saved edits arrive with the widget values
      return result;
    };
    const onResize = nodeType.prototype.onResize;
    nodeType.prototype.onResize = function () {
      onResize?.apply(this, arguments);
      this.numinaEditor?.render();
    };
  },
});
