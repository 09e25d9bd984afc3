// Building DOM nodes. Data only ever goes in as text (textContent, attributes), never as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of [].concat(children || [])) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** h("button", {class: "x", onclick: f}, ["Text"]): an HTML element. */
export function h(tag, attrs, children) {
  return fill(document.createElement(tag), attrs, children);
}

/** s("rect", {x: 1}): an SVG element. */
export function s(tag, attrs, children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** A value as readable text: strings as they are, everything else as indented JSON. */
export function show(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

export function ms(n) {
  if (n === null || n === undefined) return "—";
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(2)} s`;
}

/** A <label> with its control; ids keep them tied for screen readers. */
let fieldSeq = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const parts = [h("label", {for: id, text: label}), control];
  if (hint) {
    const hid = `${id}-hint`;
    control.setAttribute("aria-describedby", hid);
    parts.push(h("small", {id: hid, class: "hint", text: hint}));
  }
  return h("div", {class: "field"}, parts);
}

export function badge(text, kind) {
  return h("span", {class: `badge ${kind || ""}`, text});
}

/** A modal <dialog>: resolves true on confirm, false on cancel/Escape. */
export function confirmDialog(title, message, confirmLabel, danger) {
  return new Promise((resolve) => {
    const dlg = h("dialog", {class: "dialog", "aria-labelledby": "dlg-title"});
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    fill(dlg, {}, [
      h("h2", {id: "dlg-title", text: title}),
      h("p", {text: message}),
      h("div", {class: "row end"}, [
        h("button", {type: "button", class: "quiet", text: "Cancel", onclick: () => done(false)}),
        h("button", {type: "button", class: danger ? "danger" : "primary", text: confirmLabel,
                     "data-confirm": "1", onclick: () => done(true)}),
      ]),
    ]);
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
    dlg.querySelector("[data-confirm]").focus();
  });
}

/** A modal asking for one line of text; resolves the text or null. */
export function promptDialog(title, label, value, submitLabel) {
  return new Promise((resolve) => {
    const input = h("input", {type: "text", value: value || "", required: true, autocomplete: "off"});
    const dlg = h("dialog", {class: "dialog", "aria-labelledby": "dlg-title"});
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    const form = h("form", {onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) done(input.value.trim()); }}, [
      h("h2", {id: "dlg-title", text: title}),
      field(label, input),
      h("div", {class: "row end"}, [
        h("button", {type: "button", class: "quiet", text: "Cancel", onclick: () => done(null)}),
        h("button", {type: "submit", class: "primary", text: submitLabel}),
      ]),
    ]);
    dlg.append(form);
    dlg.addEventListener("cancel", (e) => { e.preventDefault(); done(null); });
    document.body.append(dlg);
    dlg.showModal();
    input.select();
  });
}

let flashTimer = null;
/** A short message in the live region at the top. */
export function flash(message, kind) {
  const el = document.getElementById("flash");
  clear(el);
  el.className = kind || "";
  if (message) el.append(h("span", {text: message}));
  clearTimeout(flashTimer);
  if (message && kind !== "error") flashTimer = setTimeout(() => { clear(el); el.className = ""; }, 4000);
}

/** Append children, skipping null/false (Node.append would write them as text). */
export function add(el, ...children) {
  return fill(el, {}, children);
}

/** Fill a pager <nav>: back, "first–last of total", forward; go(newOffset) loads a page. */
export function pager(nav, offset, size, total, go, [back, forward] = ["← Previous", "Next →"]) {
  clear(nav);
  const first = total ? offset + 1 : 0, last = Math.min(total, offset + size);
  nav.append(
    h("button", {type: "button", class: "quiet", text: back, disabled: offset === 0,
                 onclick: () => go(Math.max(0, offset - size))}),
    h("span", {class: "muted", text: `${first}–${last} of ${total}`}),
    h("button", {type: "button", class: "quiet", text: forward, disabled: last >= total,
                 onclick: () => go(offset + size)}),
  );
}
