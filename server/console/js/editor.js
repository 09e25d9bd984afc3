// A workflow's page: the graph to look at and edit, a block's config, Run, and Deploy.

import {api, stream, wfPath, ApiError} from "./api.js";
import {h, add, clear, field, badge, flash} from "./dom.js";
import {GraphView, TYPES, autoLayout, needsLayout, NODE_W} from "./graph.js";
import {RunState, blockRunDetails, runSummary, blockList} from "./run.js";
import {deployPanel} from "./deploy.js";
import {badges} from "./workflows.js";

// What a new block starts with: valid for its type, ready to be edited.
const TEMPLATES = {
  starter: {},
  webhook: {},
  response: {data: {}},
  condition: {conditions: [{id: "yes", expression: "True"}]},
  code: {code: "return {\"ok\": True}"},
  http: {method: "GET", url: "https://example.com"},
  llm: {prompt: "Say hello"},
  agent: {prompt: "Say hello", tools: []},
  schedule: {cron: "0 * * * *", timezone: "UTC"},
};

// The engine's block types, as the API's own OpenAPI document lists them (no key needed).
let typesOnce = null;
function blockTypes() {
  typesOnce ??= fetch("/api/openapi.json").then((r) => r.json())
    .then((doc) => {
      const names = doc.components.schemas.Block.properties.type.enum;
      return [...TYPES.filter((t) => names.includes(t)), ...names.filter((t) => !TYPES.includes(t))];
    })
    .catch(() => TYPES);
  return typesOnce;
}

/** A tab list whose panels stay in the DOM (hidden), so their state survives switching. */
function tabs(names, onSwitch) {
  const list = h("div", {class: "tabs", role: "tablist"});
  const panels = {};
  const buttons = {};
  const pick = (name) => {
    for (const n of names) {
      buttons[n].setAttribute("aria-selected", String(n === name));
      buttons[n].tabIndex = n === name ? 0 : -1;
      panels[n].hidden = n !== name;
    }
    onSwitch?.(name);
  };
  names.forEach((n, i) => {
    buttons[n] = h("button", {type: "button", role: "tab", id: `tab-${n}`, "aria-controls": `panel-${n}`,
                              text: n[0].toUpperCase() + n.slice(1), onclick: () => pick(n)});
    buttons[n].addEventListener("keydown", (e) => {
      const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (d) { const next = names[(i + d + names.length) % names.length]; pick(next); buttons[next].focus(); }
    });
    list.append(buttons[n]);
    panels[n] = h("section", {role: "tabpanel", id: `panel-${n}`, "aria-labelledby": `tab-${n}`, class: "panel"});
  });
  return {list, panels, pick};
}

export async function workflowPage(ctx, id) {
  let wf = await api.get(wfPath(id));
  const st = {
    blocks: structuredClone(wf.blocks), edges: structuredClone(wf.edges),
    dirty: false, selected: null,
    problems: {blocks: new Map(), edges: new Map(), other: []},
  };
  if (needsLayout(st.blocks)) {
    const p = autoLayout(st.blocks, st.edges);
    st.blocks.forEach((b) => { b.position = p[b.id]; });
  }
  ctx.nav([["Workflows", "#/"], [wf.name, null]]);

  const graph = new GraphView({
    editable: true, label: `Graph of ${wf.name}`,
    onSelect: (bid) => selectBlock(bid),
    onMove: () => markDirty(),
  });
  const run = new RunState(graph, (ev, b) => onRunEvent(ev, b));
  let controller = null;   // aborts the run's stream when leaving the page
  let deploy = null;

  // --- header and toolbar --------------------------------------------------
  const title = h("h1", {text: wf.name});
  const headBadges = h("span", {class: "badges"}, badges(wf));
  const dirtyNote = h("span", {class: "muted", role: "status"});
  const problemsBox = h("div", {class: "problems-box", role: "alert"});

  const typeSelect = h("select", {name: "type"}, (await blockTypes()).map((t) => h("option", {value: t, text: t})));
  const idInput = h("input", {type: "text", name: "block-id", autocomplete: "off", placeholder: "auto", size: 10});
  const addForm = h("form", {class: "row add-block", onsubmit: (e) => { e.preventDefault(); addBlock(); }}, [
    field("Block type", typeSelect), field("Block id", idInput),
    h("button", {type: "submit", text: "Add block"}),
  ]);
  const saveBtn = h("button", {type: "button", class: "primary", text: "Save", onclick: () => save()});

  const tab = tabs(["block", "run", "deploy"]);
  ctx.main.append(h("section", {class: "page wf"}, [
    h("div", {class: "row head"}, [title, headBadges,
      h("a", {class: "button quiet", href: `#/wf/${encodeURIComponent(id)}/runs`, text: "History"})]),
    h("div", {class: "card toolbar"}, [
      addForm,
      h("div", {class: "row"}, [
        h("button", {type: "button", class: "quiet", text: "Auto layout", onclick: () => {
          const p = autoLayout(st.blocks, st.edges);
          st.blocks.forEach((b) => { b.position = p[b.id]; });
          graph.render(); markDirty();
        }}),
        saveBtn, dirtyNote,
      ]),
    ]),
    problemsBox,
    h("div", {class: "split"}, [
      h("div", {class: "canvas-wrap"}, [graph.wrap, h("p", {class: "muted small hint",
        text: "Drag blocks to move them, or select one and use the arrow keys. Tab reaches every block."})]),
      h("aside", {class: "side card", "aria-label": "Details"}, [tab.list, ...Object.values(tab.panels)]),
    ]),
  ]));
  graph.setGraph(st.blocks, st.edges);

  // --- editing ---------------------------------------------------------------
  function markDirty() {
    st.dirty = true;
    dirtyNote.textContent = "Unsaved changes";
  }

  function uniqueId(base) {
    let n = 1, cand = base;
    while (st.blocks.some((b) => b.id === cand)) cand = `${base}_${++n}`;
    return cand;
  }

  function addBlock() {
    const type = typeSelect.value;
    const bid = idInput.value.trim() || uniqueId(type === "starter" ? "start" : type);
    if (st.blocks.some((b) => b.id === bid)) { flash(`A block “${bid}” already exists.`, "error"); return; }
    // a trigger goes in the first column; another block right of the selected one, or of everything
    const ref = st.blocks.find((b) => b.id === st.selected);
    const step = 240;  // NODE_W and a gap, on the 10 px grid blocks snap to
    const trigger = ["starter", "webhook", "schedule"].includes(type);
    const xs = st.blocks.map((b) => b.position.x);
    const x = trigger ? Math.min(0, ...xs) : ref ? ref.position.x + step : Math.max(-step, ...xs) + step;
    let y = ref && !trigger ? ref.position.y : 0;
    while (st.blocks.some((b) => Math.abs(b.position.x - x) < NODE_W && Math.abs(b.position.y - y) < 70)) y += 90;
    st.blocks.push({id: bid, type, config: structuredClone(TEMPLATES[type] || {}), position: {x, y}});
    idInput.value = "";
    markDirty();
    graph.render();
    selectBlock(bid);
    flash(`Added ${type} block “${bid}”.`);
  }

  function removeBlock(bid) {
    st.blocks = st.blocks.filter((b) => b.id !== bid);
    st.edges = st.edges.filter((e) => e.source !== bid && e.target !== bid);
    graph.setGraph(st.blocks, st.edges);
    markDirty();
    selectBlock(null);
  }

  function addEdge(source, target, handle) {
    const e = {source, target};
    if (handle) e.source_handle = handle;
    if (st.edges.some((x) => x.source === source && x.target === target && (x.source_handle || "") === (handle || ""))) {
      flash("That edge already exists.", "error");
      return;
    }
    st.edges.push(e);
    graph.setGraph(st.blocks, st.edges);
    markDirty();
    selectBlock(source);
  }

  function removeEdge(edge) {
    st.edges = st.edges.filter((x) => x !== edge);
    graph.setGraph(st.blocks, st.edges);
    markDirty();
    selectBlock(st.selected);
  }

  // --- saving, with the API's validation details on what they name ----------
  function showProblems(details) {
    st.problems = {blocks: new Map(), edges: new Map(), other: []};
    for (const d of details || []) {
      const text = `${d.path}: ${d.message}`;
      if (d.block_id !== undefined) {
        if (!st.problems.blocks.has(d.block_id)) st.problems.blocks.set(d.block_id, []);
        st.problems.blocks.get(d.block_id).push(text);
      } else if (d.source !== undefined && d.target !== undefined) {
        const k = `${d.source}->${d.target}`;
        if (!st.problems.edges.has(k)) st.problems.edges.set(k, []);
        st.problems.edges.get(k).push(text);
      } else st.problems.other.push(text);
    }
    graph.setProblems([...st.problems.blocks.keys()], [...st.problems.edges.keys()]);
    clear(problemsBox);
    const n = (details || []).length;
    if (!n) return;
    const items = [];
    for (const [bid, msgs] of st.problems.blocks) for (const m of msgs) {
      items.push(h("li", {}, [h("button", {type: "button", class: "link", text: `Block ${bid}`,
                                           onclick: () => { selectBlock(bid); graph.nodeEl(bid)?.focus(); }}), ` — ${m}`]));
    }
    for (const [k, msgs] of st.problems.edges) for (const m of msgs) {
      const src = k.split("->")[0];
      items.push(h("li", {}, [h("button", {type: "button", class: "link", text: `Edge ${k.replace("->", " → ")}`,
                                           onclick: () => selectBlock(src)}), ` — ${m}`]));
    }
    for (const m of st.problems.other) items.push(h("li", {text: m}));
    problemsBox.append(h("p", {text: `The API did not save the graph: ${n} problem${n > 1 ? "s" : ""}.`}),
                       h("ul", {class: "problems"}, items));
  }

  async function save() {
    const body = {
      blocks: st.blocks.map((b) => ({id: b.id, type: b.type, config: b.config, position: b.position})),
      edges: st.edges.map((e) => (e.source_handle ? {source: e.source, target: e.target, source_handle: e.source_handle}
                                                   : {source: e.source, target: e.target})),
    };
    saveBtn.disabled = true;
    try {
      wf = await api.put(`${wfPath(id)}/graph`, body);
      // keep the server's view (webhook ids/urls), but the positions we show
      st.blocks = structuredClone(wf.blocks);
      st.edges = structuredClone(wf.edges);
      st.dirty = false;
      dirtyNote.textContent = "Saved";
      showProblems([]);
      graph.setGraph(st.blocks, st.edges);
      selectBlock(st.selected);
      redrawDeploy();
      flash("Graph saved.");
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.body.details) {
        showProblems(err.body.details);
        selectBlock(st.selected);
        flash(err.message, "error");
      } else {
        showProblems([{path: "graph", message: err.message}]);
        flash(err.message, "error");
      }
      return false;
    } finally {
      saveBtn.disabled = false;
    }
  }

  // --- the block tab -----------------------------------------------------------
  let runBox = null;   // the selected block's run details, refreshed on run events

  function selectBlock(bid) {
    st.selected = st.blocks.some((b) => b.id === bid) ? bid : null;
    graph.select(st.selected);
    drawBlockTab();
    if (st.selected) tab.pick("block");
  }

  function drawBlockTab() {
    const panel = tab.panels.block;
    clear(panel);
    runBox = null;
    const b = st.blocks.find((x) => x.id === st.selected);
    if (!b) {
      panel.append(h("p", {class: "muted", text: st.blocks.length
        ? "Select a block (click it, or Tab to it and press Enter) to see and edit its config."
        : "Add a starter block to begin: runs start there."}));
      return;
    }
    const probs = st.problems.blocks.get(b.id) || [];
    const config = h("textarea", {name: "config", rows: 10, spellcheck: "false", class: "mono",
                                  value: JSON.stringify(b.config, null, 2)});
    const configErr = h("p", {class: "error", role: "alert"});
    const others = st.blocks.filter((x) => x.id !== b.id && !["starter", "webhook", "schedule"].includes(x.type));
    const target = h("select", {name: "target"}, others.map((x) => h("option", {value: x.id, text: x.id})));
    const handles = b.type === "condition"
      ? [...((Array.isArray(b.config.conditions) ? b.config.conditions : []).map((c) => c && c.id).filter(Boolean)), "else"] : [];
    const listId = `handles-${Math.random().toString(36).slice(2)}`;
    const handle = h("input", {type: "text", name: "handle", list: listId, autocomplete: "off",
                               placeholder: b.type === "condition" ? handles.join(" / ") : "(none)"});
    const outgoing = st.edges.filter((e) => e.source === b.id), incoming = st.edges.filter((e) => e.target === b.id);
    const edgeItem = (e, label) => {
      const k = `${e.source}->${e.target}`;
      const eprobs = st.problems.edges.get(k) || [];
      return h("li", {class: eprobs.length ? "problem" : ""}, [
        h("span", {text: label}),
        h("button", {type: "button", class: "quiet small", text: "Remove", "aria-label": `Remove edge ${label}`,
                     onclick: () => removeEdge(e)}),
        eprobs.length ? h("ul", {class: "problems"}, eprobs.map((m) => h("li", {text: m}))) : null,
      ]);
    };
    runBox = h("div", {class: "block-run"});
    add(panel,
      h("h2", {}, [h("span", {class: "mono", text: b.id}), " ", badge(b.type, `type-${b.type}`)]),
      probs.length ? h("ul", {class: "problems", role: "alert"}, probs.map((m) => h("li", {text: m}))) : null,
      b.webhook_url ? field("Webhook URL", h("input", {type: "text", readonly: true, value: b.webhook_url, class: "mono"})) : null,
      h("form", {onsubmit: (e) => {
        e.preventDefault();
        let parsed;
        try { parsed = JSON.parse(config.value); } catch (err) { configErr.textContent = `Not valid JSON: ${err.message}`; return; }
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) { configErr.textContent = "The config must be a JSON object."; return; }
        b.config = parsed;
        markDirty();
        configErr.textContent = "";
        flash(`Config of “${b.id}” applied; Save to store it.`);
        drawBlockTab();
      }}, [
        field("Config (JSON)", config, "Strings may use {{ block_id.path }} and {{ variables.name }}."),
        configErr,
        h("div", {class: "row"}, [h("button", {type: "submit", text: "Apply config"}),
          h("button", {type: "button", class: "danger-text quiet", text: "Remove block", onclick: () => removeBlock(b.id)})]),
      ]),
      h("h3", {text: "Edges"}),
      outgoing.length || incoming.length ? h("ul", {class: "edges-list"}, [
        ...incoming.map((e) => edgeItem(e, `${e.source} → ${e.target}${e.source_handle ? ` [${e.source_handle}]` : ""}`)),
        ...outgoing.map((e) => edgeItem(e, `${e.source} → ${e.target}${e.source_handle ? ` [${e.source_handle}]` : ""}`)),
      ]) : h("p", {class: "muted", text: "No edges."}),
      others.length ? h("form", {class: "row add-edge", onsubmit: (e) => {
        e.preventDefault();
        addEdge(b.id, target.value, handle.value.trim());
      }}, [
        field("Connect to", target),
        b.type === "condition" ? field("Branch (handle)", handle) : null,
        h("datalist", {id: listId}, handles.map((x) => h("option", {value: x}))),
        h("button", {type: "submit", text: "Add edge"}),
      ]) : null,
      h("h3", {text: "Last run"}),
      runBox,
    );
    drawRunBox();
  }

  function drawRunBox() {
    if (!runBox || !st.selected) return;
    clear(runBox);
    runBox.append(blockRunDetails(run.blocks.get(st.selected)));
  }

  // --- the run tab -------------------------------------------------------------
  const starter = st.blocks.find((b) => b.type === "starter");
  const defaults = {};
  for (const inp of (starter && Array.isArray(starter.config.inputs) ? starter.config.inputs : [])) {
    if (inp && inp.name) defaults[inp.name] = inp.default ?? null;
  }
  const vars = h("textarea", {name: "variables", rows: 5, spellcheck: "false", class: "mono",
                              value: JSON.stringify(defaults, null, 2)});
  const varsErr = h("p", {class: "error", role: "alert"});
  // the API's `timeout`: a run ends `timeout` after that many seconds (empty: the server's maximum)
  const timeoutInput = h("input", {type: "number", name: "timeout", step: "any", inputmode: "decimal",
                                   placeholder: "server maximum", class: "narrow"});
  const runBtn = h("button", {type: "submit", class: "primary", text: "Run workflow"});
  const cancelBtn = h("button", {type: "button", text: "Cancel run", disabled: true, onclick: async () => {
    if (!run.executionId) return;
    try { await api.post(`${wfPath(id)}/executions/${encodeURIComponent(run.executionId)}/cancel`); }
    catch (err) { flash(err.message, "error"); }
  }});
  const summary = h("div", {class: "run-summary", "aria-live": "polite"});
  const blocksRun = h("ol", {class: "block-list"});
  tab.panels.run.append(
    h("form", {onsubmit: (e) => { e.preventDefault(); startRun(); }}, [
      field("Variables (JSON)", vars, "Passed as {\"variables\": …} to /execute/stream."),
      varsErr,
      field("Timeout (seconds)", timeoutInput, "Optional; at most the server's own limit."),
      h("div", {class: "row"}, [runBtn, cancelBtn]),
    ]),
    summary, blocksRun,
  );

  function drawBlockList() {
    blockList(blocksRun, run, st.selected, selectBlock);
  }

  function onRunEvent(ev, b) {
    if (ev && ev.type !== "block_chunk") { clear(summary); summary.append(runSummary(run)); drawBlockList(); }
    if (b && b.block_id === st.selected) {
      // tokens: append to the streaming <pre> instead of redrawing the panel
      const pre = runBox && runBox.querySelector("pre.chunks");
      if (ev.type === "block_chunk" && pre) pre.textContent = b.chunks; else drawRunBox();
    }
  }

  async function startRun() {
    let variables;
    try { variables = JSON.parse(vars.value || "{}"); } catch (err) { varsErr.textContent = `Not valid JSON: ${err.message}`; return; }
    if (!variables || typeof variables !== "object" || Array.isArray(variables)) { varsErr.textContent = "Variables must be a JSON object."; return; }
    const body = {variables};
    if (timeoutInput.value.trim() !== "") {
      const t = Number(timeoutInput.value);
      if (!(t > 0)) { varsErr.textContent = "The timeout must be a positive number of seconds."; return; }
      body.timeout = t;
    }
    varsErr.textContent = "";
    if (st.dirty && !(await save())) { flash("Fix the graph before running: the run uses the saved graph.", "error"); return; }
    run.reset();
    clear(summary); summary.append(runSummary(run)); clear(blocksRun);
    drawRunBox();
    runBtn.disabled = true; cancelBtn.disabled = false;
    controller = new AbortController();
    try {
      let r = await stream("POST", `${wfPath(id)}/execute/stream`, body, (ev) => run.apply(ev), {signal: controller.signal});
      // a stream that broke off without its end event: re-attach from the last id seen
      for (let tries = 0; !r.ended && run.executionId && tries < 5; tries++) {
        r = await stream("GET", `${wfPath(id)}/executions/${encodeURIComponent(run.executionId)}/stream`, undefined,
                         (ev) => run.apply(ev), {signal: controller.signal, lastEventId: r.lastId});
      }
    } catch (err) {
      if (err.name !== "AbortError") { clear(summary); summary.append(h("p", {class: "error", role: "alert", text: err.message})); }
    } finally {
      runBtn.disabled = false; cancelBtn.disabled = true;
    }
  }

  // --- the deploy tab ------------------------------------------------------------
  function redrawDeploy() {
    deploy?.stop();
    deploy = deployPanel(wf, (w) => { clear(headBadges); headBadges.append(...badges(w)); });
    clear(tab.panels.deploy);
    tab.panels.deploy.append(deploy.el);
  }

  redrawDeploy();
  selectBlock(null);
  tab.pick("block");
  ctx.setLeave(() => { controller?.abort(); deploy?.stop(); });
}
