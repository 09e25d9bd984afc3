// A run as the console sees it: per-block state fed by SSE events (live) or by the
// stored logs (history), painted on a GraphView and described per block.

import {h, clear, show, ms, when} from "./dom.js";

/** Follows one execution: apply() each SSE event, or load() its stored logs. */
export class RunState {
  constructor(graph, onChange) {
    this.graph = graph;
    this.onChange = onChange || (() => {});
    this.reset();
  }

  reset() {
    this.executionId = null;
    this.blocks = new Map();   // block id -> {block_id, block_type, status, chunks, output, error, duration_ms, ...}
    this.done = false;
    this.result = null;        // the execution_completed or error event
    this.graph.clearStatus();
  }

  info(id) {
    if (!this.blocks.has(id)) this.blocks.set(id, {block_id: id, status: null, chunks: ""});
    return this.blocks.get(id);
  }

  /** One SSE event. */
  apply(ev) {
    const b = ev.block_id !== undefined ? this.info(ev.block_id) : null;
    if (b && ev.block_type) b.block_type = ev.block_type;
    switch (ev.type) {
      case "execution_started": this.executionId = ev.execution_id; break;
      case "block_started": b.status = "running"; b.chunks = ""; break;
      case "block_chunk":
        // llm tokens are text; agent tool steps are objects
        b.chunks += typeof ev.chunk === "string" ? ev.chunk : "\n" + JSON.stringify(ev.chunk) + "\n";
        break;
      case "block_completed": b.status = "completed"; b.output = ev.output; b.duration_ms = ev.duration_ms; break;
      case "block_skipped": b.status = "skipped"; break;
      case "block_failed": b.status = "failed"; b.error = ev.error; b.duration_ms = ev.duration_ms; break;
      case "execution_completed":
      case "error":
        this.done = true;
        this.result = ev;
        if (ev.execution_id) this.executionId = ev.execution_id;
        for (const x of this.blocks.values()) if (x.status === "running") x.status = "cancelled";
        break;
      default: return;
    }
    if (b) this.graph.setStatus(b.block_id, b.status);
    if (ev.type === "error" || ev.type === "execution_completed") {
      for (const x of this.blocks.values()) this.graph.setStatus(x.block_id, x.status);
    }
    this.onChange(ev, b);
  }

  /** Stored logs of an execution (GET .../logs). */
  load(logs) {
    for (const entry of logs) {
      const b = this.info(entry.block_id);
      Object.assign(b, entry);
      this.graph.setStatus(entry.block_id, entry.status);
    }
    this.onChange(null, null);
  }
}

function section(title, value, cls) {
  if (value === undefined || value === null || value === "") return null;
  return h("div", {class: "kv"}, [h("h4", {text: title}), h("pre", {class: cls || "", text: show(value)})]);
}

/** What one block did in a run: status, timing, input, output, stdout, error, live tokens. */
export function blockRunDetails(b) {
  if (!b || !b.status) return h("p", {class: "muted", text: "This block has not run."});
  const facts = [["Status", b.status]];
  if (b.duration_ms !== undefined && b.duration_ms !== null) facts.push(["Duration", ms(b.duration_ms)]);
  if (b.attempts !== undefined) facts.push(["Attempts", String(b.attempts)]);
  if (b.started_at) facts.push(["Started", when(b.started_at)]);
  return h("div", {class: "run-details", dataset: {block: b.block_id}}, [
    h("dl", {class: "facts"}, facts.flatMap(([k, v]) => [h("dt", {text: k}),
      h("dd", {class: k === "Status" ? `status ${v}` : "", text: v})])),
    b.chunks ? section(b.status === "running" ? "Streaming" : "Streamed", b.chunks, "chunks") : null,
    section("Error", b.error, "error-text"),
    section("Output", b.output, "output"),
    section("Input (config after templates)", b.input),
    section("Stdout", b.stdout, "stdout"),
  ]);
}

/** How a run ended: output and duration, or the API's error. */
export function runSummary(state) {
  const r = state.result;
  if (!r) return h("p", {class: "status running", text: state.executionId ? "Running…" : "Starting…"});
  if (r.type === "execution_completed") {
    return h("div", {class: "summary ok"}, [
      h("p", {class: "status completed", text: `Completed in ${ms(r.duration_ms)}`}),
      section("Output", r.output, "output final-output"),
    ]);
  }
  return h("div", {class: "summary bad", role: "alert"}, [
    h("p", {class: "status failed", text: r.error_code === "EXECUTION_TIMEOUT" ? "Timed out" : "Failed"}),
    h("pre", {class: "error-text", text: r.error + (r.block_id ? `\n(block ${r.block_id})` : "")}),
    r.details ? h("ul", {class: "problems"}, r.details.map((d) => h("li", {text: `${d.path}: ${d.message}`}))) : null,
  ]);
}

/** The run's blocks in the order they started: status and duration, each a button selecting it. */
export function blockList(ol, state, selected, onSelect) {
  clear(ol);
  for (const b of state.blocks.values()) {
    ol.append(h("li", {class: `status ${b.status || ""}`, dataset: {block: b.block_id}}, [
      h("button", {type: "button", class: "link", text: b.block_id, "aria-pressed": String(b.block_id === selected),
                   onclick: () => onSelect(b.block_id)}),
      ` ${b.status}${b.duration_ms !== undefined && b.duration_ms !== null ? ` · ${ms(b.duration_ms)}` : ""}`,
    ]));
  }
}
