// History: a workflow's executions (status filter, pages), and one execution block by block,
// followed live while it is still running.

import {api, stream, wfPath, exPath} from "./api.js";
import {h, clear, field, when, ms, show, flash, pager} from "./dom.js";
import {GraphView, autoLayout, needsLayout} from "./graph.js";
import {RunState, blockRunDetails, blockList} from "./run.js";

const PAGE = 25;
const STATUSES = ["running", "completed", "failed", "timeout", "cancelled"];

export async function runsPage(ctx, id) {
  const wf = await api.get(wfPath(id));
  ctx.nav([["Workflows", "#/"], [wf.name, `#/wf/${encodeURIComponent(id)}`], ["History", null]]);
  const state = {offset: 0, status: ""};
  const filter = h("select", {name: "status"}, [h("option", {value: "", text: "All"}),
    ...STATUSES.map((x) => h("option", {value: x, text: x}))]);
  filter.addEventListener("change", () => { state.status = filter.value; state.offset = 0; load(); });
  const list = h("div", {class: "list", "aria-live": "polite"});
  const pages = h("nav", {class: "row pager", "aria-label": "Pages"});
  ctx.main.append(h("section", {class: "page"}, [
    h("div", {class: "row head"}, [h("h1", {text: `History of ${wf.name}`}),
      h("a", {class: "button quiet", href: `#/wf/${encodeURIComponent(id)}`, text: "Graph"})]),
    h("div", {class: "card toolbar"}, [field("Status", filter),
      h("button", {type: "button", class: "quiet", text: "Refresh", onclick: () => load()})]),
    list, pages,
  ]));

  async function load() {
    const q = `limit=${PAGE}&offset=${state.offset}` + (state.status ? `&status=${state.status}` : "");
    const r = await api.get(`${wfPath(id)}/executions?${q}`);
    clear(list);
    if (!r.executions.length) {
      list.append(h("p", {class: "muted", text: state.status ? `No ${state.status} runs.` : "No runs yet."}));
    } else {
      list.append(h("table", {class: "table runs"}, [
        h("thead", {}, [h("tr", {}, ["Started", "Status", "Trigger", "Duration", "Error"].map((t, i) =>
          h("th", {scope: "col", class: i >= 2 ? "wide" : "", text: t})))]),
        h("tbody", {}, r.executions.map((e) => h("tr", {dataset: {id: e.id, status: e.status}}, [
          h("td", {}, [h("a", {href: `#/wf/${encodeURIComponent(id)}/runs/${encodeURIComponent(e.id)}`, text: when(e.started_at)})]),
          h("td", {}, [h("span", {class: `status ${e.status}`, text: e.status})]),
          h("td", {class: "wide", text: e.trigger}),
          h("td", {class: "wide", text: ms(e.duration_ms)}),
          h("td", {class: "wide clip", text: e.error || ""}),
        ]))),
      ]));
    }
    pager(pages, state.offset, PAGE, r.total, (o) => { state.offset = o; load(); }, ["← Newer", "Older →"]);
  }
  await load();
}

export async function runPage(ctx, id, eid) {
  const [wf, ex] = await Promise.all([api.get(wfPath(id)), api.get(exPath(id, eid))]);
  ctx.nav([["Workflows", "#/"], [wf.name, `#/wf/${encodeURIComponent(id)}`],
           ["History", `#/wf/${encodeURIComponent(id)}/runs`], ["Run", null]]);
  // Draw the graph version the run used; when that version is no longer kept, today's
  // graph, plus any block the logs name that is gone now.
  let used = wf;
  if (ex.graph_version) {
    try { used = await api.get(`${wfPath(id)}/versions/${encodeURIComponent(ex.graph_version)}`); } catch { /* pruned */ }
  }
  const blocks = structuredClone(used.blocks), edges = used.edges;
  if (needsLayout(blocks)) { const p = autoLayout(blocks, edges); blocks.forEach((b) => { b.position = p[b.id]; }); }
  let selected = null;
  const graph = new GraphView({editable: false, label: "Graph of this run", onSelect: (b) => select(b)});
  const run = new RunState(graph, () => { drawHead(); drawBlock(); drawList(); });
  const head = h("div", {class: "run-head"});
  const liveNote = h("p", {class: "status running live", role: "status"});
  const detail = h("div", {class: "block-detail", "aria-live": "polite"});
  const list = h("ol", {class: "block-list"});
  ctx.main.append(h("section", {class: "page wf"}, [
    h("div", {class: "row head"}, [h("h1", {text: "Run"}), h("span", {class: "mono muted small", text: eid})]),
    h("div", {class: "split"}, [
      h("div", {class: "canvas-wrap"}, [liveNote, graph.wrap, head]),
      h("aside", {class: "side card", "aria-label": "Block details"}, [h("h2", {text: "Blocks"}), list, detail]),
    ]),
  ]));
  graph.setGraph(blocks, edges);

  function select(bid) {
    selected = bid;
    graph.select(bid);
    drawBlock();
  }

  function drawHead() {
    clear(head);
    const facts = [["Status", ex.status], ["Trigger", ex.trigger], ["Started", when(ex.started_at)],
                   ["Finished", when(ex.finished_at)], ["Duration", ms(ex.duration_ms)]];
    head.append(h("dl", {class: "facts"}, facts.flatMap(([k, v]) => [h("dt", {text: k}),
      h("dd", {class: k === "Status" ? `status ${v}` : "", dataset: {fact: k.toLowerCase()}, text: v})])));
    if (ex.error) head.append(h("pre", {class: "error-text", role: "alert", text: ex.error}));
    head.append(h("div", {class: "kv"}, [h("h4", {text: "Variables"}), h("pre", {text: show(ex.variables)})]));
    if (ex.output !== undefined && ex.output !== null) {
      head.append(h("div", {class: "kv"}, [h("h4", {text: "Output"}), h("pre", {class: "output", text: show(ex.output)})]));
    }
  }

  function drawList() {
    blockList(list, run, selected, select);
  }

  function drawBlock() {
    clear(detail);
    if (!selected) { detail.append(h("p", {class: "muted", text: "Select a block to see its input, output and error."})); return; }
    detail.append(h("h3", {class: "mono", text: selected}), blockRunDetails(run.blocks.get(selected)));
  }

  async function loadStored() {
    const [e2, logs] = await Promise.all([api.get(exPath(id, eid)), api.get(`${exPath(id, eid)}/logs`)]);
    Object.assign(ex, e2);
    for (const entry of logs.logs) {
      if (!blocks.some((b) => b.id === entry.block_id)) {
        const x = Math.max(0, ...blocks.map((b) => b.position.x));
        blocks.push({id: entry.block_id, type: entry.block_type, config: {}, position: {x: x + 240, y: 0}});
        graph.setGraph(blocks, edges);
      }
    }
    run.load(logs.logs);
  }

  await loadStored();
  drawBlock();
  // Still running: follow it live (the re-attach stream replays what happened so far).
  const controller = new AbortController();
  ctx.setLeave(() => controller.abort());
  if (ex.status === "running") {
    liveNote.textContent = "Live: following this run…";
    (async () => {
      try {
        let r = {lastId: null, ended: false};
        for (let tries = 0; !r.ended && tries < 5; tries++) {
          r = await stream("GET", `${exPath(id, eid)}/stream`, undefined, (ev) => run.apply(ev),
                           {signal: controller.signal, lastEventId: r.lastId});
        }
        await loadStored();
        liveNote.textContent = "";
      } catch (err) {
        if (err.name !== "AbortError") flash(err.message, "error");
      }
    })();
  }
}
