// Deploy, undeploy and arm; the webhook URLs and secrets to copy; the arm window counting down.

import {api, wfPath} from "./api.js";
import {h, clear, field, when, flash} from "./dom.js";

/** Copy text: the async clipboard API, else select-and-copy from the given input. */
export async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!input) return false;
    input.type = "text";
    input.select();
    return document.execCommand("copy");
  }
}

function left(until) {
  const s = Math.max(0, Math.round((new Date(until) - Date.now()) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** The deploy panel for a saved workflow `wf` (with blocks); `reload()` refetches the page data. */
export function deployPanel(wf, reload) {
  const box = h("div", {class: "deploy"});
  let timer = null;
  const hooks = (wf.blocks || []).filter((b) => b.type === "webhook" && b.config && b.config.webhook_id);

  const act = (what, path) => async () => {
    try {
      const r = await api.post(`${wfPath(wf.id)}/${path}`);
      if (path === "deploy") { wf.deployed = true; wf.deployed_at = r.deployed_at; }
      if (path === "undeploy") { wf.deployed = false; wf.armed_until = null; }
      if (path === "arm") wf.armed_until = r.armed_until;
      flash(what);
      draw();
      reload?.(wf);
    } catch (err) { flash(err.message, "error"); }
  };

  const countdown = h("p", {class: "countdown", role: "timer", "aria-live": "off"});
  let ticks = 0;
  function tick() {
    // every 5 s, ask whether the armed call came (the arm is then used up: armed_until null)
    if (++ticks % 5 === 0 && wf.armed_until) {
      api.get(wfPath(wf.id)).then((w) => {
        if (w.armed_until !== wf.armed_until) { wf.armed_until = w.armed_until; draw(); reload?.(wf); }
      }).catch(() => {});
    }
    const open = wf.armed_until && new Date(wf.armed_until) > Date.now();
    countdown.className = "countdown" + (open ? " armed" : "");
    countdown.textContent = open ? `Armed: ${left(wf.armed_until)} left (one call)`
      : wf.armed_until ? "Not armed (the last window ran out)" : "Not armed";
    if (!open) { clearInterval(timer); timer = null; }
  }

  function draw() {
    clear(box);
    box.append(
      h("p", {class: "status-line", text: wf.deployed ? `Deployed since ${when(wf.deployed_at)}` : "Not deployed"}),
      h("div", {class: "row"}, [
        wf.deployed
          ? h("button", {type: "button", text: "Undeploy", onclick: act("Undeployed.", "undeploy")})
          : h("button", {type: "button", class: "primary", text: "Deploy", onclick: act("Deployed.", "deploy")}),
        h("button", {type: "button", class: wf.deployed ? "primary" : "", text: "Arm webhook",
                     disabled: !wf.deployed || !hooks.length, onclick: act("Armed.", "arm")}),
      ]),
      countdown,
    );
    if (!hooks.length) {
      box.append(h("p", {class: "muted", text: "Add a webhook block and save the graph to get a webhook URL."}));
    }
    for (const b of hooks) {
      const url = h("input", {type: "text", readonly: true, value: b.webhook_url || "", class: "mono", dataset: {role: "webhook-url"}});
      const secret = h("input", {type: "password", readonly: true, value: b.config.webhook_secret || "", class: "mono"});
      const copied = h("span", {class: "muted small", role: "status"});
      const copyBtn = (label, input, what) => h("button", {type: "button", class: "quiet", text: label, onclick: async () => {
        const ok = await copy(input.value, input);
        copied.textContent = ok ? `${what} copied.` : `Could not copy: select the ${what.toLowerCase()} and copy it.`;
      }});
      box.append(h("fieldset", {class: "hook"}, [
        h("legend", {text: `Webhook block “${b.id}”`}),
        field("Webhook URL", url),
        h("div", {class: "row"}, [copyBtn("Copy URL", url, "URL")]),
        field("Secret (send as X-Webhook-Secret)", secret),
        h("div", {class: "row"}, [
          h("button", {type: "button", class: "quiet", text: "Show secret", onclick: (e) => {
            secret.type = secret.type === "password" ? "text" : "password";
            e.target.textContent = secret.type === "password" ? "Show secret" : "Hide secret";
          }}),
          copyBtn("Copy secret", secret, "Secret"),
        ]),
        copied,
        h("details", {}, [h("summary", {text: "Call it with curl"}),
          h("pre", {class: "mono small", text: `curl -X POST '${b.webhook_url}' \\\n  -H 'X-Webhook-Secret: <secret>' \\\n  -H 'Content-Type: application/json' -d '{"x": 1}'`})]),
      ]));
    }
    tick();
    if (!timer && wf.armed_until && new Date(wf.armed_until) > Date.now()) timer = setInterval(tick, 1000);
  }

  draw();
  return {el: box, stop: () => { clearInterval(timer); timer = null; }};
}
