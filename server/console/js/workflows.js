// The workflows list: search, pages (the API's limit/offset), create, rename, delete, badges.

import {api, wfPath} from "./api.js";
import {h, clear, field, badge, when, confirmDialog, promptDialog, flash, pager} from "./dom.js";

const PAGE = 20;

/** Deployed/armed badges for a workflow (armed only while the window is open). */
export function badges(wf) {
  const out = [];
  if (wf.deployed) out.push(badge("deployed", "ok"));
  if (wf.armed_until && new Date(wf.armed_until) > new Date()) out.push(badge("armed", "warn"));
  return out;
}

export async function workflowsPage(ctx) {
  ctx.nav([["Workflows", null]]);
  const state = {offset: 0, query: ""};

  const nameInput = h("input", {type: "text", name: "name", required: true, autocomplete: "off",
                                placeholder: "My workflow"});
  const create = h("form", {class: "row create", onsubmit: async (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    try {
      const wf = await api.post("/api/workflows", {name});
      location.hash = `#/wf/${encodeURIComponent(wf.id)}`;
    } catch (err) { flash(err.message, "error"); }
  }}, [field("New workflow name", nameInput), h("button", {type: "submit", class: "primary", text: "Create"})]);

  const search = h("input", {type: "search", name: "q", autocomplete: "off", placeholder: "Filter by name"});
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.query = search.value.trim().toLowerCase(); state.offset = 0; load(); }, 200);
  });

  const list = h("div", {class: "list", "aria-live": "polite"});
  const pages = h("nav", {class: "row pager", "aria-label": "Pages"});
  ctx.main.append(h("section", {class: "page"}, [
    h("h1", {text: "Workflows"}),
    h("div", {class: "card toolbar"}, [create, field("Search", search)]),
    list, pages,
  ]));

  // Without a search, a page is one API call. The API has no name filter, so a search
  // reads the list in pages of 500 and filters here.
  async function fetchPage() {
    if (!state.query) {
      const r = await api.get(`/api/workflows?limit=${PAGE}&offset=${state.offset}`);
      return {rows: r.workflows, total: r.total};
    }
    const all = [];
    for (let off = 0; ; off += 500) {
      const r = await api.get(`/api/workflows?limit=500&offset=${off}`);
      all.push(...r.workflows);
      if (off + 500 >= r.total || !r.workflows.length) break;
    }
    const hits = all.filter((w) => w.name.toLowerCase().includes(state.query) ||
                                   (w.description || "").toLowerCase().includes(state.query));
    return {rows: hits.slice(state.offset, state.offset + PAGE), total: hits.length};
  }

  async function load() {
    const {rows, total} = await fetchPage();
    if (!rows.length && state.offset > 0 && total > 0) { state.offset = Math.max(0, state.offset - PAGE); return load(); }
    clear(list);
    if (!rows.length) {
      list.append(h("p", {class: "muted", text: state.query ? "No workflow matches." : "No workflows yet: create one above."}));
    } else {
      const table = h("table", {class: "table"}, [
        h("thead", {}, [h("tr", {}, [h("th", {scope: "col", text: "Name"}), h("th", {scope: "col", text: "Status"}),
                                    h("th", {scope: "col", class: "wide", text: "Updated"}),
                                    h("th", {scope: "col", text: "Actions"})])]),
        h("tbody", {}, rows.map(row)),
      ]);
      list.append(table);
    }
    pager(pages, state.offset, PAGE, total, (o) => { state.offset = o; load(); });
  }

  function row(wf) {
    return h("tr", {dataset: {id: wf.id}}, [
      h("td", {}, [h("a", {href: `#/wf/${encodeURIComponent(wf.id)}`, class: "name", text: wf.name}),
                   wf.description ? h("div", {class: "muted small", text: wf.description}) : null]),
      h("td", {}, badges(wf).length ? badges(wf) : [h("span", {class: "muted", text: "draft"})]),
      h("td", {class: "wide", text: when(wf.updated_at)}),
      h("td", {class: "actions"}, [
        h("button", {type: "button", class: "quiet", text: "Rename", "aria-label": `Rename ${wf.name}`,
                     onclick: async () => {
                       const name = await promptDialog("Rename workflow", "Name", wf.name, "Rename");
                       if (!name) return;
                       try { await api.patch(wfPath(wf.id), {name}); flash("Renamed."); load(); }
                       catch (err) { flash(err.message, "error"); }
                     }}),
        h("button", {type: "button", class: "quiet danger-text", text: "Delete", "aria-label": `Delete ${wf.name}`,
                     onclick: async () => {
                       const ok = await confirmDialog("Delete workflow?",
                         `“${wf.name}” and all its runs and logs will be deleted. Running runs are cancelled.`,
                         "Delete", true);
                       if (!ok) return;
                       try { await api.del(wfPath(wf.id)); flash("Deleted."); load(); }
                       catch (err) { flash(err.message, "error"); }
                     }}),
      ]),
    ]);
  }

  await load();
}
