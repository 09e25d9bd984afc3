// The graph, drawn by hand in SVG: blocks at their positions, edges as curves with
// condition handles labelled. Blocks can be selected (click, Enter) and, when editable,
// moved (drag, or arrow keys on the selected block).

import {s, clear} from "./dom.js";

export const NODE_W = 172, NODE_H = 60;
const PAD = 40, GAP_X = 240, GAP_Y = 96;

export const TYPES = ["starter", "webhook", "schedule", "condition", "code", "http", "llm", "agent", "response"];

/** Positions for every block: layered left to right by longest path from the roots. */
export function autoLayout(blocks, edges) {
  const ids = blocks.map((b) => b.id);
  const known = new Set(ids);
  const incoming = new Map(ids.map((id) => [id, []]));
  for (const e of edges) if (known.has(e.source) && known.has(e.target)) incoming.get(e.target).push(e.source);
  const layer = new Map();
  const depth = (id, seen) => {
    if (layer.has(id)) return layer.get(id);
    if (seen.has(id)) return 0; // a cycle: the API will say so on save
    seen.add(id);
    const d = Math.max(-1, ...incoming.get(id).map((p) => depth(p, seen))) + 1;
    layer.set(id, d);
    return d;
  };
  ids.forEach((id) => depth(id, new Set()));
  const rows = new Map();
  const out = {};
  for (const id of ids) {
    const l = layer.get(id);
    const r = rows.get(l) || 0;
    rows.set(l, r + 1);
    out[id] = {x: l * GAP_X, y: r * GAP_Y};
  }
  return out;
}

/** True when the saved positions say nothing (every block at the same spot). */
export function needsLayout(blocks) {
  if (blocks.length < 2) return false;
  const p0 = blocks[0].position || {x: 0, y: 0};
  return blocks.every((b) => (b.position?.x ?? 0) === (p0.x ?? 0) && (b.position?.y ?? 0) === (p0.y ?? 0));
}

export class GraphView {
  /** opts: {editable, label, onSelect(id), onMove(id, {x, y})} */
  constructor(opts) {
    this.opts = opts;
    this.blocks = [];
    this.edges = [];
    this.selected = null;
    this.status = new Map();        // block id -> run status
    this.problems = new Set();      // block ids the API complained about
    this.edgeProblems = new Set();  // "source->target" keys
    this.svg = s("svg", {class: "graph", role: "group", "aria-label": opts.label || "Workflow graph"});
    // Narrow screens start with the whole graph scaled to the width; the button toggles.
    this.fit = window.matchMedia("(max-width: 900px)").matches;
    this.fitButton = document.createElement("button");
    this.fitButton.type = "button";
    this.fitButton.className = "quiet small fit-toggle";
    this.fitButton.addEventListener("click", () => { this.fit = !this.fit; this.render(); });
    this.canvas = document.createElement("div");
    this.canvas.className = "canvas";
    this.canvas.append(this.svg);
    this.wrap = document.createElement("div");
    this.wrap.className = "graph-box";
    this.wrap.append(this.fitButton, this.canvas);
  }

  setGraph(blocks, edges) {
    this.blocks = blocks;
    this.edges = edges;
    this.render();
  }

  select(id) {
    this.selected = id;
    for (const g of this.svg.querySelectorAll("g.node")) g.classList.toggle("selected", g.dataset.id === id);
  }

  setStatus(id, status) {
    this.status.set(id, status);
    const g = this.nodeEl(id);
    if (g) this.paintStatus(g, id);
  }

  clearStatus() {
    this.status.clear();
    this.render();
  }

  setProblems(blockIds, edgeKeys) {
    this.problems = new Set(blockIds);
    this.edgeProblems = new Set(edgeKeys);
    this.render();
  }

  nodeEl(id) {
    return [...this.svg.querySelectorAll("g.node")].find((g) => g.dataset.id === id) || null;
  }

  pos(b) {
    return {x: b.position?.x ?? 0, y: b.position?.y ?? 0};
  }

  render() {
    clear(this.svg);
    const xs = this.blocks.map((b) => this.pos(b).x), ys = this.blocks.map((b) => this.pos(b).y);
    const minX = Math.min(0, ...xs) - PAD, minY = Math.min(0, ...ys) - PAD;
    const maxX = Math.max(NODE_W, ...xs.map((x) => x + NODE_W)) + PAD;
    const maxY = Math.max(NODE_H, ...ys.map((y) => y + NODE_H)) + PAD;
    const w = maxX - minX, hgt = maxY - minY;
    this.svg.setAttribute("viewBox", `${minX} ${minY} ${w} ${hgt}`);
    this.svg.setAttribute("width", this.fit ? "100%" : w);
    this.svg.setAttribute("height", this.fit ? "100%" : hgt);
    this.svg.classList.toggle("fitted", this.fit);
    this.fitButton.textContent = this.fit ? "Actual size" : "Fit to width";
    this.svg.append(s("defs", {}, [
      s("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
                   orient: "auto-start-reverse"}, [s("path", {d: "M0,0 L10,5 L0,10 z", class: "arrowhead"})]),
    ]));
    this.edgeLayer = s("g", {class: "edges"});
    this.svg.append(this.edgeLayer);
    this.drawEdges();
    const nodes = s("g", {class: "nodes"});
    for (const b of this.blocks) nodes.append(this.drawNode(b));
    this.svg.append(nodes);
    if (!this.blocks.length) {
      this.svg.append(s("text", {x: 0, y: 30, class: "empty", text: "No blocks yet."}));
    }
  }

  drawEdges() {
    clear(this.edgeLayer);
    const byId = new Map(this.blocks.map((b) => [b.id, b]));
    for (const e of this.edges) {
      const a = byId.get(e.source), b = byId.get(e.target);
      if (!a || !b) continue;
      const p = this.pos(a), q = this.pos(b);
      const x1 = p.x + NODE_W, y1 = p.y + NODE_H / 2, x2 = q.x, y2 = q.y + NODE_H / 2;
      const dx = Math.max(40, Math.abs(x2 - x1) / 2);
      const key = `${e.source}->${e.target}`;
      const g = s("g", {class: "edge" + (this.edgeProblems.has(key) ? " problem" : ""),
                        dataset: {source: e.source, target: e.target, handle: e.source_handle || ""}}, [
        s("title", {text: `${e.source} → ${e.target}${e.source_handle ? ` (${e.source_handle})` : ""}`}),
        s("path", {d: `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)"}),
      ]);
      if (e.source_handle) {
        const t = 0.6, mx = (1 - t) ** 3 * x1 + 3 * (1 - t) ** 2 * t * (x1 + dx) + 3 * (1 - t) * t * t * (x2 - dx) + t ** 3 * x2;
        const my = (1 - t) ** 3 * y1 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t * t * y2 + t ** 3 * y2;
        const label = e.source_handle.length > 18 ? e.source_handle.slice(0, 17) + "…" : e.source_handle;
        const w = label.length * 7 + 12;
        g.append(s("rect", {class: "handle-bg", x: mx - w / 2, y: my - 10, width: w, height: 20, rx: 10}),
                 s("text", {class: "handle", x: mx, y: my + 4, "text-anchor": "middle", text: label}));
      }
      this.edgeLayer.append(g);
    }
  }

  drawNode(b) {
    const {x, y} = this.pos(b);
    const id = b.id.length > 20 ? b.id.slice(0, 19) + "…" : b.id;
    const g = s("g", {class: `node type-${b.type}` + (b.id === this.selected ? " selected" : "") +
                             (this.problems.has(b.id) ? " problem" : ""),
                      transform: `translate(${x},${y})`, tabindex: 0, role: "button",
                      dataset: {id: b.id, type: b.type}}, [
      s("title", {text: `${b.id} (${b.type})`}),
      s("rect", {class: "body", width: NODE_W, height: NODE_H, rx: 8}),
      s("rect", {class: "stripe", width: 8, height: NODE_H, rx: 3}),
      s("text", {class: "id", x: 18, y: 25, text: id}),
      s("text", {class: "meta", x: 18, y: 45}),
    ]);
    this.paintStatus(g, b.id);
    g.addEventListener("keydown", (ev) => this.onKey(ev, b));
    g.addEventListener("pointerdown", (ev) => this.onPointerDown(ev, b, g));
    return g;
  }

  paintStatus(g, id) {
    const st = this.status.get(id);
    const b = this.blocks.find((x) => x.id === id);
    if (st) g.dataset.status = st; else delete g.dataset.status;
    const meta = g.querySelector("text.meta");
    meta.textContent = (b ? b.type : "") + (st ? ` · ${st}` : "") + (this.problems.has(id) ? " · problem" : "");
    g.setAttribute("aria-label", `Block ${id}, ${meta.textContent}`);
  }

  onKey(ev, b) {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      this.opts.onSelect?.(b.id);
      return;
    }
    const step = ev.shiftKey ? 50 : 10;
    const moves = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]};
    if (this.opts.editable && moves[ev.key] && this.selected === b.id) {
      ev.preventDefault();
      const p = this.pos(b);
      b.position = {x: p.x + moves[ev.key][0], y: p.y + moves[ev.key][1]};
      this.render();
      this.nodeEl(b.id)?.focus();
      this.opts.onMove?.(b.id, b.position);
    }
  }

  onPointerDown(ev, b, g) {
    if (ev.button !== 0) return;
    const ctm = this.svg.getScreenCTM().inverse();
    const toSvg = (e) => new DOMPoint(e.clientX, e.clientY).matrixTransform(ctm);
    const start = toSvg(ev), p0 = this.pos(b);
    let moved = false;
    const move = (e) => {
      if (!this.opts.editable) return;
      const p = toSvg(e);
      const dx = p.x - start.x, dy = p.y - start.y;
      if (!moved && Math.hypot(dx, dy) < 4) return;
      moved = true;
      b.position = {x: Math.round((p0.x + dx) / 10) * 10, y: Math.round((p0.y + dy) / 10) * 10};
      g.setAttribute("transform", `translate(${b.position.x},${b.position.y})`);
      this.drawEdges();
    };
    const up = () => {
      g.removeEventListener("pointermove", move);
      g.removeEventListener("pointerup", up);
      g.removeEventListener("pointercancel", up);
      if (moved) {
        this.render();
        this.opts.onMove?.(b.id, b.position);
      }
      this.opts.onSelect?.(b.id);
    };
    g.setPointerCapture(ev.pointerId);
    g.addEventListener("pointermove", move);
    g.addEventListener("pointerup", up);
    g.addEventListener("pointercancel", up);
    ev.preventDefault();
  }
}
