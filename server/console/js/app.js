// The console's shell: sign-in, the hash router, and the top bar.
// Routes: #/ (workflows), #/wf/ID (graph, run, deploy), #/wf/ID/runs, #/wf/ID/runs/EID.

import {api, key, whenUnauthorized, ApiError} from "./api.js";
import {h, clear, field, flash} from "./dom.js";
import {workflowsPage} from "./workflows.js";
import {workflowPage} from "./editor.js";
import {runsPage, runPage} from "./history.js";

const main = document.getElementById("main");
let leave = null;   // the current page's clean-up (stops streams and timers)
let signInReason = "";

whenUnauthorized((error) => {
  key.clear();
  signInReason = `The server refused the key (401: ${error || "unauthorized"}). Paste a valid API key.`;
  route();
});

function signInPage() {
  const input = h("input", {type: "password", name: "key", autocomplete: "off", required: true,
                            spellcheck: "false", placeholder: "af_…"});
  const message = h("p", {class: "error", role: "alert", text: signInReason});
  signInReason = "";
  const form = h("form", {class: "card signin", "aria-labelledby": "signin-title", onsubmit: async (e) => {
    e.preventDefault();
    const k = input.value.trim();
    if (!k) return;
    key.set(k);
    try {
      await api.get("/api/workflows?limit=1");
      route();  // stays on the page the hash names
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) {
        key.clear();
        message.textContent = err.message;
      }
    }
  }}, [
    h("h1", {id: "signin-title", text: "Sign in"}),
    h("p", {text: "Paste an API key. It stays in this browser tab only (sessionStorage) and is sent as a Bearer header; make one with "},
      [h("code", {text: "python3 run.py create-key"}), "."]),
    field("API key", input),
    message,
    h("button", {type: "submit", class: "primary", text: "Sign in"}),
  ]);
  main.append(form);
  input.focus();
}

function nav(parts) {
  const el = document.getElementById("nav");
  clear(el);
  const list = h("ol", {class: "crumbs"});
  for (const [label, href] of parts) {
    list.append(h("li", {}, [href ? h("a", {href, text: label}) : h("span", {"aria-current": "page", text: label})]));
  }
  el.append(list);
}

export async function route() {
  if (leave) { try { leave(); } catch { /* already gone */ } leave = null; }
  clear(main);
  document.querySelectorAll("dialog").forEach((d) => d.remove());
  const signedIn = !!key.get();
  document.getElementById("signout").hidden = !signedIn;
  if (!signedIn) {
    nav([["Sign in", null]]);
    signInPage();
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const ctx = {main, nav, setLeave: (f) => { leave = f; }};
  try {
    if (parts[0] === "wf" && parts[1] && parts[2] === "runs" && parts[3]) await runPage(ctx, parts[1], parts[3]);
    else if (parts[0] === "wf" && parts[1] && parts[2] === "runs") await runsPage(ctx, parts[1]);
    else if (parts[0] === "wf" && parts[1]) await workflowPage(ctx, parts[1]);
    else await workflowsPage(ctx);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    clear(main);
    main.append(h("div", {class: "card"}, [
      h("h1", {text: err.status === 404 ? "Not found" : "Something went wrong"}),
      h("p", {class: "error", role: "alert", text: err.message}),
      h("a", {href: "#/", text: "Back to workflows"}),
    ]));
  }
}

document.getElementById("signout").addEventListener("click", () => {
  key.clear();
  flash("Signed out.");
  location.hash = "#/";
  route();
});
window.addEventListener("hashchange", route);
route();
